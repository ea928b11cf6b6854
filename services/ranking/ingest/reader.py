"""Reads the catalog JSONL format (docs/formats.md) into validated records.

Bad lines (invalid JSON, missing id/title, wrong types, an id already seen in
the file) are reported with their line number and skipped: one broken line must
not stop a 100k-product import.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CatalogRecord:
    line: int
    id: str
    title: str
    description: str = ""
    category: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    price: float | None = None
    currency: str = ""
    in_stock: bool | None = None
    image_refs: list[str] = field(default_factory=list)  # main photo first, de-duplicated
    unknown_fields: list[str] = field(default_factory=list)  # reported as warnings, ignored


@dataclass
class LineError:
    line: int
    product_id: str
    message: str


def _str(d: dict, key: str) -> str:
    v = d.get(key, "")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise ValueError(f"{key!r} must be a string")
    return v


KNOWN_FIELDS = frozenset(
    {"id", "title", "description", "category", "attributes", "price", "currency", "in_stock", "image", "images"}
)


def parse_record(obj: object, line: int) -> CatalogRecord:
    if not isinstance(obj, dict):
        raise ValueError("line is not a JSON object")
    pid = obj.get("id")
    if isinstance(pid, (int, float)) and not isinstance(pid, bool):
        pid = str(pid)
    if not isinstance(pid, str) or not pid.strip():
        raise ValueError("missing or empty 'id'")
    title = obj.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("missing or empty 'title'")
    attrs_raw = obj.get("attributes") or {}
    if not isinstance(attrs_raw, dict):
        raise ValueError("'attributes' must be an object")
    attributes = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in attrs_raw.items() if v is not None}
    price = obj.get("price")
    if price is not None:
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price < 0:
            raise ValueError("'price' must be a non-negative number")
        price = float(price)
    in_stock = obj.get("in_stock")
    if in_stock is not None and not isinstance(in_stock, bool):
        raise ValueError("'in_stock' must be true or false")
    refs: list[str] = []
    main = obj.get("image")
    extra = obj.get("images") or []
    if main is not None and not isinstance(main, str):
        raise ValueError("'image' must be a string")
    if not isinstance(extra, list) or not all(isinstance(x, str) for x in extra):
        raise ValueError("'images' must be a list of strings")
    for ref in [main, *extra]:
        if ref and ref not in refs:
            refs.append(ref)
    return CatalogRecord(
        line=line,
        id=pid.strip(),
        title=title.strip(),
        description=_str(obj, "description"),
        category=_str(obj, "category"),
        attributes=attributes,
        price=price,
        currency=_str(obj, "currency"),
        in_stock=in_stock,
        image_refs=refs,
        unknown_fields=sorted(str(k) for k in obj if k not in KNOWN_FIELDS),
    )


def read_catalog(path: str | Path) -> Iterator[CatalogRecord | LineError]:
    """Yields a record or a LineError per non-blank line, in file order."""
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="strict") as f:
        lineno = 0
        while True:
            lineno += 1
            try:
                raw = f.readline()
            except UnicodeDecodeError as exc:
                yield LineError(lineno, "", f"invalid UTF-8: {exc.reason}")
                continue
            if not raw:
                return
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield LineError(lineno, "", f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            try:
                rec = parse_record(obj, lineno)
            except ValueError as exc:
                pid = obj.get("id") if isinstance(obj, dict) else ""
                yield LineError(lineno, pid if isinstance(pid, str) else str(pid or ""), str(exc))
                continue
            if rec.id in seen:
                yield LineError(lineno, rec.id, f"duplicate id (first seen on line {seen[rec.id]})")
                continue
            seen[rec.id] = lineno
            yield rec
