"""Facet counts for the filter sidebar, computed inside the index.

Counts are over every product that matches the request's filter (the whole filtered
catalog, not the returned page): that is what a sidebar shows next to each choice, and it
is independent of the query, so a shopper sees how many products a refinement leaves.

- categories and attribute values come from the index's facet API (Qdrant Edge
  ``EdgeShard.facet``, Qdrant server ``/facet``), exact counts, on keyword-indexed fields;
- an attribute value counts as the filter matches it: ``color=white`` matches
  ``"white, pine"``, so that product counts for ``white, pine``, ``white`` and ``pine``
  (selecting a value then yields exactly its count);
- price buckets are exact filtered counts (the facet API has no ranges), one per bucket:
  ``[.., e0)``, ``[e0, e1)``, ..., ``[en, ..)``, intersected with the request's price bounds.
"""

from __future__ import annotations

from dataclasses import replace

from services.ranking.index.base import VectorIndex
from services.ranking.index.schema import SearchFilter, attr_field, normalize_attr_key
from homesearch.v1 import search_pb2

DEFAULT_FACET_LIMIT = 20


def wants_facets(spec: search_pb2.FacetSpec) -> bool:
    return bool(spec.categories or spec.attributes or spec.price_edges)


def price_label(lo: float | None, hi: float | None) -> str:
    return f"{'*' if lo is None else format(lo, 'g')}-{'*' if hi is None else format(hi, 'g')}"


def compute_facets(index: VectorIndex, flt: SearchFilter, spec: search_pb2.FacetSpec) -> list[search_pb2.Facet]:
    """The facets ``spec`` asks for, over the products matching ``flt``."""
    limit = spec.limit or DEFAULT_FACET_LIMIT
    out: list[search_pb2.Facet] = []
    if spec.categories:
        out.append(_keyword_facet("category", index.facet("category", flt, limit)))
    for key in spec.attributes:
        nk = normalize_attr_key(key)
        out.append(_keyword_facet(f"attributes.{nk}", index.facet(attr_field(nk), flt, limit)))
    if spec.price_edges:
        out.append(_price_facet(index, flt, list(spec.price_edges)))
    return out


def _keyword_facet(name: str, hits: list[tuple[str, int]]) -> search_pb2.Facet:
    facet = search_pb2.Facet(field=name)
    for value, count in sorted(hits, key=lambda vc: (-vc[1], vc[0])):
        facet.values.append(search_pb2.FacetValue(value=value, count=count))
    return facet


def _price_facet(index: VectorIndex, flt: SearchFilter, edges: list[float]) -> search_pb2.Facet:
    facet = search_pb2.Facet(field="price")
    bounds: list[float | None] = [None, *edges, None]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        # A product without a price never matches a range condition, so it is never counted.
        lower = lo if flt.min_price is None else (flt.min_price if lo is None else max(lo, flt.min_price))
        bucket = replace(flt, min_price=lower, below_price=hi)
        value = search_pb2.FacetValue(value=price_label(lo, hi), count=index.count_matching(bucket))
        if lo is not None:
            value.min_price = lo
        if hi is not None:
            value.max_price = hi
        facet.values.append(value)
    return facet
