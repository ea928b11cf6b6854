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
    from homesearch.ranking.index.schema import normalize_attr_key

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


def _values(product: dict, key: str) -> set[str]:
    from homesearch.ranking.index.schema import attr_match_values, normalize_attr_key

    out: set[str] = set()
    for k, v in (product.get("attributes") or {}).items():
        if normalize_attr_key(k) == normalize_attr_key(key) and v:
            out.update(attr_match_values(v))
    return out


def implicit_attribute_queries(catalog: Sequence[dict], queries: Sequence[dict], key: str = "color") -> list[dict]:
    """The queries only the photo can answer once ``key`` is stripped from the product text: the
    query names one of its relevant products' ``key`` values (``"white bed"``), and the catalog has
    another product of the same type whose ``key`` differs, so the type alone does not decide.
    (Most IKEA types have one product, where text alone already wins: those queries measure
    nothing about the photo and are left out.)"""
    from homesearch.evaluation.split import product_type

    by_id = {p["id"]: p for p in catalog}
    values_of_type: dict[str, set[frozenset[str]]] = {}
    for p in catalog:
        values_of_type.setdefault(product_type(p), set()).add(frozenset(_values(p, key)))
    out = []
    for q in queries:
        rel = [by_id[r] for r in q.get("relevant", []) if r in by_id]
        text = " " + " ".join((q.get("text") or "").lower().split()) + " "
        if not rel or not text.strip():
            continue
        named = any(f" {v} " in text or text.startswith(f" {v}") for p in rel for v in _values(p, key))
        ambiguous = any(len(values_of_type[product_type(p)]) > 1 for p in rel)
        if named and ambiguous:
            out.append(q)
    return out
