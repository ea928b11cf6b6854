"""Checks of the issue-13 request fields (similar, regions, facets), shared by gateway and ranking.

One function so the public gateway and the internal ranking service can never disagree on
what is valid: the gateway rejects early with the same message ranking would send.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from services.ranking.index.schema import normalize_attr_key
from homesearch.v1 import search_pb2

MAX_PRODUCT_ID_BYTES = 256
MAX_FACET_ATTRIBUTES = 50
MAX_FACET_EDGES = 50
MAX_FACET_LIMIT = 200
MAX_REGIONS = 30


def journey_field_errors(
    req: search_pb2.SearchRequest, known_keys: Callable[[Iterable[str]], set[str] | None] | None = None
) -> str | None:
    """The first problem with the similar/region/facet fields, or None.

    ``known_keys(requested)`` returns the index's attribute keys (None = unknown: skip that check).
    """
    pid = req.similar_to_product_id
    if pid:
        if not pid.strip():
            return "similar_to_product_id is whitespace-only"
        if len(pid.encode("utf-8")) > MAX_PRODUCT_ID_BYTES:
            return f"similar_to_product_id is too long: at most {MAX_PRODUCT_ID_BYTES} bytes"
        if req.image:
            return "similar_to_product_id cannot be combined with image: the named product is the reference"
    if req.similar_scope not in search_pb2.SimilarScope.values():
        return f"similar_scope has unknown value {req.similar_scope}"
    if req.similar_scope and not pid:
        return "similar_scope needs similar_to_product_id"
    if req.region_mode not in search_pb2.RegionMode.values():
        return f"region_mode has unknown value {req.region_mode}"
    if req.region_mode == search_pb2.REGION_MODE_ON and not req.image:
        return "region_mode ON needs an image"
    if not 0 <= req.max_regions <= MAX_REGIONS:
        return f"max_regions must be between 0 and {MAX_REGIONS} (0 = service default), got {req.max_regions}"
    return _facet_errors(req.facets, known_keys) if req.HasField("facets") else None


def _facet_errors(spec: search_pb2.FacetSpec, known_keys) -> str | None:
    if len(spec.attributes) > MAX_FACET_ATTRIBUTES:
        return f"facets.attributes has {len(spec.attributes)} keys, at most {MAX_FACET_ATTRIBUTES}"
    if any(not normalize_attr_key(k) for k in spec.attributes):
        return "facets.attributes contains an empty key"
    if spec.attributes and known_keys is not None:
        known = known_keys([normalize_attr_key(k) for k in spec.attributes])
        if known is not None:
            unknown = [k for k in spec.attributes if normalize_attr_key(k) not in known]
            if unknown:
                return (
                    f"unknown facets.attributes key {unknown[0]!r}; known keys: {', '.join(sorted(known)) or '(none)'}"
                )
    edges = list(spec.price_edges)
    if len(edges) > MAX_FACET_EDGES:
        return f"facets.price_edges has {len(edges)} entries, at most {MAX_FACET_EDGES}"
    if any(not math.isfinite(e) or e < 0 for e in edges):
        return "facets.price_edges must be finite numbers >= 0"
    if any(b <= a for a, b in zip(edges, edges[1:])):
        return "facets.price_edges must be strictly increasing"
    if not 0 <= spec.limit <= MAX_FACET_LIMIT:
        return f"facets.limit must be between 0 and {MAX_FACET_LIMIT} (0 = default 20), got {spec.limit}"
    return None
