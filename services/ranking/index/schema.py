"""What one product looks like in the index, independent of the Qdrant backend.

One product = one point, so a single upsert writes all of its vectors and
payload atomically (no half-written product is ever visible):

- point id: ``uuid5(PRODUCT_NAMESPACE, product_id)`` (Qdrant ids must be ints or
  UUIDs; uuid5 is stable across processes and replicas, so re-upserts replace).
- named dense vector ``text``: e5 passage embedding of title/category/attributes/description.
- named dense multivector ``image``: one row per photo, compared with MAX_SIM, so a
  query matches a product through its best-matching photo. Products without photos
  have no ``image`` vector at all (they cannot match image signals; fusion treats the
  signal as absent for them rather than as a bad score).
- named dense multivector ``visual``: the photo->photo descriptor (``services.encoders.models.visual``),
  two rows per photo (whole photo, tight foreground crop). A photo query searches it once per
  query region and keeps each product's best score (MAX_SIM would sum over the query rows).
  Products indexed by encoders without the descriptor have no ``visual`` vector.
- sparse vector ``bm25``: BM25 term frequencies (+ Chinese enrichment); IDF is
  applied by Qdrant (``Modifier.IDF``) so it stays correct as the catalog changes.

Attribute filter semantics (documented for the gateway and storefronts): keys
and values are compared case-insensitively after trimming; a filter value
matches when it equals the whole attribute value or one of its comma/slash
separated parts ("white" matches color "white, pine"). Keys are normalised to
``[a-z0-9_]`` and stored under ``attr.<key>`` as a list of match values, each
key keyword-indexed. The original attributes are kept for display.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

PRODUCT_NAMESPACE = uuid.UUID("6f1c3a52-8f0e-4d3b-9a57-2f3d1f7c9e01")
SCHEMA_VERSION = 1  # bump when payload/vector layout changes (part of the content hash)

TEXT_VECTOR = "text"
IMAGE_VECTOR = "image"
VISUAL_VECTOR = "visual"
VISUAL_DIM = 512
MULTIVECTORS = (IMAGE_VECTOR, VISUAL_VECTOR)  # queried with a one-row query multivector
BM25_VECTOR = "bm25"

ATTR_PREFIX = "attr"
# Keyword-indexed payload fields. Stock is filtered through the keyword shadow
# ``stock`` ("in"/"out"): qdrant-edge-py 0.9 never matches MatchValue(bool)
# (bool index or not), so the bool ``in_stock`` is kept for display only.
# ``category`` (display form) is indexed for the category facet; filters use ``category_key``.
KEYWORD_FIELDS = ("product_id", "category_key", "category", "stock")
FLOAT_FIELDS = ("price",)
# What a search hit needs to render (the rest of the payload stays in the index); attributes
# feed composed-query matching ("this one, but in green"); ``photo_color`` / ``photo_material`` the photo boosts.
RESULT_PAYLOAD = ["product_id", "title", "category", "price", "image_uri", "n_images", "attributes", "photo_color",
                  "photo_material"]
# Named colours estimated from the main photo at ingestion (ingest/photo_colour.py): the payload
# field ``photo_color`` holds ``[{"name", "fraction"}]`` for display and the boost; the names are also
# stored as the attribute key ``photo_color`` (``attr.photo_color``) so filters and facets work on it
# like on any catalog attribute. The key is reserved: a catalog attribute of that name is replaced.
PHOTO_COLOR = "photo_color"
# Material estimated from the main photo's vectors at ingestion (ingest/photo_material.py), the same
# way: payload ``photo_material`` = ``[{"name", "p"}]`` (label, probe probability), attribute key
# ``photo_material`` = the kept labels (filter, facet). Reserved like ``photo_color``.
PHOTO_MATERIAL = "photo_material"
STOCK_IN = "in"
STOCK_OUT = "out"

_KEY_RE = re.compile(r"[^a-z0-9_]+")
_PART_RE = re.compile(r"[,/;|]")


def point_id(product_id: str) -> str:
    """Stable Qdrant point id for a catalog product id."""
    return str(uuid.uuid5(PRODUCT_NAMESPACE, product_id))


def normalize_attr_key(key: str) -> str:
    """``"Main Colour"`` -> ``"main_colour"``; empty when nothing usable remains."""
    return _KEY_RE.sub("_", key.strip().lower()).strip("_")


def normalize_value(value: str) -> str:
    return " ".join(value.strip().lower().split())


def attr_match_values(value: str) -> list[str]:
    """The whole value plus its separated parts, normalised and de-duplicated."""
    whole = normalize_value(value)
    values = [whole] if whole else []
    for part in _PART_RE.split(value):
        p = normalize_value(part)
        if p and p not in values:
            values.append(p)
    return values


def attr_field(key: str) -> str:
    return f"{ATTR_PREFIX}.{key}"


@dataclass
class SparseVec:
    indices: list[int]
    values: list[float]


@dataclass
class IndexedProduct:
    """Everything written for one product (the backend turns it into one point)."""

    product_id: str
    text_vector: list[float]
    image_vectors: list[list[float]]  # empty: product has no photo
    bm25: SparseVec
    payload: dict[str, Any]
    visual_vectors: list[list[float]] = field(default_factory=list)  # empty: no photo / no descriptor

    @property
    def point_id(self) -> str:
        return point_id(self.product_id)


@dataclass
class SearchFilter:
    """Backend-neutral filter; applied inside the index, never after top-k."""

    categories: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)  # normalised key -> value
    min_price: float | None = None
    max_price: float | None = None
    below_price: float | None = None  # exclusive upper bound (price facet buckets)
    in_stock_only: bool = False
    exclude_ids: list[str] = field(default_factory=list)
    exclude_categories: list[str] = field(default_factory=list)  # "complete the look": never these

    def is_empty(self) -> bool:
        return not (
            self.categories
            or self.attributes
            or self.min_price is not None
            or self.max_price is not None
            or self.below_price is not None
            or self.in_stock_only
            or self.exclude_ids
            or self.exclude_categories
        )


@dataclass
class SignalQuery:
    """One nearest-neighbour search of the batch that a Rank call sends to the index."""

    signal: str  # fusion name: "text", "image", "lexical", ...
    using: str  # vector name in the index
    dense: list[float] | None = None
    sparse: SparseVec | None = None
    limit: int = 50


@dataclass
class StoredProduct:
    """A product as the index holds it: payload plus its stored named vectors."""

    product_id: str
    payload: dict[str, Any]
    vectors: dict[str, Any]  # name -> dense list, multivector (list of lists) or sparse


@dataclass
class Candidate:
    product_id: str
    score: float
    payload: dict[str, Any]


def build_payload(
    *,
    product_id: str,
    title: str,
    description: str,
    category: str,
    attributes: dict[str, str],
    price: float | None,
    currency: str,
    in_stock: bool | None,
    image_uris: list[str],
    n_images: int,
    content_hash: str,
    model_version: str,
    photo_colors: list[tuple[str, float]] | None = None,
    photo_materials: list[tuple[str, float]] | None = None,
) -> dict[str, Any]:
    attr: dict[str, list[str]] = {}
    for key, value in attributes.items():
        nk = normalize_attr_key(key)
        if nk:
            attr.setdefault(nk, [])
            attr[nk] += [v for v in attr_match_values(value) if v not in attr[nk]]
    payload: dict[str, Any] = {
        "product_id": product_id,
        "title": title,
        "description": description,
        "category": category,
        "category_key": normalize_value(category),
        "attributes": dict(attributes),
        ATTR_PREFIX: attr,
        "currency": currency,
        "image_uri": image_uris[0] if image_uris else "",
        "image_uris": list(image_uris),
        "n_images": n_images,
        "content_hash": content_hash,
        "model_version": model_version,
        "schema_version": SCHEMA_VERSION,
    }
    if photo_colors:
        payload[PHOTO_COLOR] = [{"name": n, "fraction": round(float(f), 3)} for n, f in photo_colors]
        attr[PHOTO_COLOR] = [normalize_value(n) for n, _f in photo_colors]
    if photo_materials:
        payload[PHOTO_MATERIAL] = [{"name": n, "p": round(float(f), 3)} for n, f in photo_materials]
        attr[PHOTO_MATERIAL] = [normalize_value(n) for n, _f in photo_materials]
    if price is not None:
        payload["price"] = float(price)
    if in_stock is not None:
        payload["in_stock"] = bool(in_stock)
        payload["stock"] = STOCK_IN if in_stock else STOCK_OUT
    return payload


def content_hash(fields: dict[str, Any], images: list[bytes], model_version: str) -> str:
    """Hash of everything that determines what gets written; equal hash => skip re-embedding."""
    h = hashlib.sha256()
    h.update(f"v{SCHEMA_VERSION}|{model_version}|".encode())
    h.update(json.dumps(fields, sort_keys=True, ensure_ascii=False, default=_json_default).encode())
    for img in images:
        h.update(b"|img|")
        h.update(hashlib.sha256(img).digest())
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")
