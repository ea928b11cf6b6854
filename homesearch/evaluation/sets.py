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


# --- implicit material ----------------------------------------------------------------------------
# The English word an implicit-material query uses for each label ("<word> <type>").
MATERIAL_QUERY_WORD = {"wood": "wooden", "metal": "metal", "glass": "glass", "rattan": "rattan", "fabric": "fabric",
                       "ceramic": "ceramic", "plastic": "plastic"}


# Glossary renderings of material terms that are colours or ordinary words on their own.
_NOT_MATERIAL = {"white", "natural", "soft", "down", "handmade", "mirror"}


def material_terms() -> list[str]:
    """English material words to strip: every phrase of the photo-material table (including the
    non-material look phrases such as "oak effect", which still give the look away) and the
    glossary's material terms, longest first."""
    from services.ranking.language.glossary import get_glossary
    from services.ranking.material_words import MATERIAL_WORDS

    terms = set(MATERIAL_WORDS)
    for e in get_glossary().entries:
        if e.kind == "material":
            terms.add(e.en.lower())
            terms.update(a.lower() for a in e.alts)
    return sorted((t for t in terms if len(t) > 2 and t not in _NOT_MATERIAL), key=len, reverse=True)


def strip_material_words(catalog: Sequence[dict]) -> list[dict]:
    """Copies of the products with every material word removed from title, description and the
    ``color`` / ``material`` attributes (IKEA states the material in ``color``: "oak veneer"), so
    only the photo can tell the material. The category is kept: it is the type the query names
    (categories that name a material are left out of the queries, ``implicit_material_queries``)."""
    import re

    pat = re.compile(r"(?<![\w\-])(" + "|".join(re.escape(t) for t in material_terms()) + r")(?![\w\-])", re.IGNORECASE)

    def strip(text: str) -> str:
        return " ".join(pat.sub(" ", text).replace(" ,", ",").split()).strip(" ,")

    out = []
    for p in catalog:
        q = dict(p)
        for key in ("title", "description"):
            if q.get(key):
                q[key] = strip(q[key]) or q[key]
        attrs = dict(p.get("attributes") or {})
        for key in ("color", "material"):
            if attrs.get(key):
                attrs[key] = strip(attrs[key])
        q["attributes"] = {k: v for k, v in attrs.items() if v}
        out.append(q)
    return out


def implicit_material_queries(catalog: Sequence[dict], min_distractors: int = 1, part_of=None) -> list[dict]:
    """``<material> <type>`` queries over ``catalog`` (the gallery, before stripping): one per
    (category, material label) held by a product whose text names its material
    (``material_words.label_of_product``), kept only when the category also holds at least
    ``min_distractors`` products of *another* known material (elsewhere a type match alone answers).
    Relevant = the gallery products of that category and label. Categories naming a material
    themselves ("Glass-door cabinet") are left out. ``part_of(category)`` -> "dev" | "test" puts each
    query in a part (default: a hash of the category, so dev and test never share a type)."""
    import zlib

    from services.ranking.material_words import label_of_product, labels_of_text

    if part_of is None:
        part_of = lambda c: "dev" if zlib.crc32(c.lower().encode()) % 2 == 0 else "test"  # noqa: E731
    by_cat: dict[str, dict[str, list[str]]] = {}
    for p in catalog:
        label = label_of_product(p)
        cat = (p.get("category") or "").strip()
        if label and cat and not labels_of_text(cat):
            by_cat.setdefault(cat, {}).setdefault(label, []).append(p["id"])
    out = []
    for cat in sorted(by_cat):
        for label in sorted(by_cat[cat]):
            others = sum(len(v) for k, v in by_cat[cat].items() if k != label)
            if others < min_distractors:
                continue
            out.append({"id": f"m-{zlib.crc32(f'{cat}|{label}'.encode()):08x}", "text": f"{MATERIAL_QUERY_WORD[label]} {cat.lower()}",
                        "relevant": sorted(by_cat[cat][label]), "material": label, "category": cat, "part": part_of(cat)})
    return out
