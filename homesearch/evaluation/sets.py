"""Dev evaluation sets built from a catalog: the implicit-attribute condition and catalog rewriting.

Implicit attribute: real catalogs often do not state in their text what the photo shows (colour,
material). The IKEA dev catalog states colour in ``attributes.color``, and its queries are
``<colour> <type>``; indexing it *without* that attribute leaves the text to answer only the type,
so the fused score can beat text alone only through the photo. ``strip_attributes`` makes that
catalog; the queries stay as they are.

The held-out splits (by product line, by product type) live in ``split.py``; the shopper photos are
plain image queries (``photos.jsonl``) and need nothing here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path


def strip_attributes(catalog: Sequence[dict], keys: Iterable[str]) -> list[dict]:
    """Copies of the products without the named attributes (keys compared case-insensitively,
    as the index normalises them), so neither the dense text nor BM25 sees them."""
    from services.ranking.index.schema import normalize_attr_key

    drop = {normalize_attr_key(k) for k in keys}
    out = []
    for p in catalog:
        q = dict(p)
        attrs = p.get("attributes") or {}
        q["attributes"] = {k: v for k, v in attrs.items() if normalize_attr_key(k) not in drop}
        out.append(q)
    return out


def _absolute(ref: str, base: Path) -> str:
    return ref if "://" in ref or Path(ref).is_absolute() else str((base / ref).resolve())


def write_catalog(catalog: Sequence[dict], base: Path, dest: Path) -> Path:
    """Writes ``catalog`` as JSONL at ``dest`` with image references made absolute against
    ``base`` (the original catalog's folder), so the copy can live anywhere."""
    with open(dest, "w", encoding="utf-8") as f:
        for p in catalog:
            p = dict(p)
            if p.get("image"):
                p["image"] = _absolute(p["image"], base)
            if p.get("images"):
                p["images"] = [_absolute(x, base) for x in p["images"]]
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    return dest


# Glossary colour terms that are not a colour on their own (or would strip ordinary words).
_NOT_COLOUR = {"colour", "coloured pencil", "dark", "light", "matt", "high-gloss", "frosted", "stained",
               "transparent", "colourless", "assorted colours", "multicolour", "vintage", "antique", "gloss"}


def colour_terms() -> list[str]:
    """English colour words to strip: the glossary's colour terms (``kind`` colour, preferred and
    alternative renderings) and the photo palette's phrase table, longest first."""
    from services.ranking.colour_words import COLOUR_WORDS
    from services.ranking.language.glossary import get_glossary

    terms = set(COLOUR_WORDS)
    for e in get_glossary().entries:
        if e.kind == "colour":
            terms.add(e.en.lower())
            terms.update(a.lower() for a in e.alts)
    return sorted((t for t in terms if t and t not in _NOT_COLOUR), key=len, reverse=True)


def strip_colour_words(catalog: Sequence[dict]) -> list[dict]:
    """Copies of the products with every colour word removed from title and description (the honest
    implicit-attribute set: with ``attributes.color`` gone, the text must not name the colour
    elsewhere). Whole words only, case-insensitive; the gap is collapsed."""
    import re

    pat = re.compile(r"(?<![\w\-])(" + "|".join(re.escape(t) for t in colour_terms()) + r")(?![\w\-])", re.IGNORECASE)
    out = []
    for p in catalog:
        q = dict(p)
        for key in ("title", "description"):
            if q.get(key):
                q[key] = " ".join(pat.sub(" ", q[key]).split()) or q[key]
        out.append(q)
    return out


def colour_decisive(queries: Sequence[dict], qrels: dict[str, list[str]], catalog: Sequence[dict],
                    text_field: str = "text", min_distractors: int = 1) -> set[str]:
    """Ids of the queries where only the colour can decide: the query names a colour, and the
    gallery (``catalog``) holds a non-relevant product of a relevant product's category whose
    colour differs. On the others a type match alone finds every relevant product, so text alone
    answers them even without colour (the reason a colour-stripped set alone is not honest).

    ``min_distractors``: how many such other-colour products the category must hold. With fewer than
    10, a type match alone still puts every relevant product in the top 10 (R@10 counts it), so
    ``min_distractors=10`` is the set where R@10 itself needs the colour."""
    from services.ranking.colour_words import palette_names

    by_cat: dict[str, list[dict]] = {}
    for p in catalog:
        by_cat.setdefault((p.get("category") or "").lower(), []).append(p)
    colour_of = {p["id"]: (p.get("attributes") or {}).get("color", "").lower() for p in catalog}
    cat_of = {p["id"]: (p.get("category") or "").lower() for p in catalog}
    out = set()
    for q in queries:
        rel = set(qrels.get(q["id"], []))
        if not rel or not palette_names(q.get(text_field) or ""):
            continue
        rel_colours = {colour_of.get(r, "") for r in rel}
        for r in rel:
            others = [o for o in by_cat.get(cat_of.get(r, ""), []) if o["id"] not in rel and colour_of[o["id"]] not in rel_colours]
            if len(others) >= min_distractors:
                out.add(q["id"])
                break
    return out
