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
