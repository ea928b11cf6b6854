"""Similar products by id ("more like this", "complete the look") and the photo's reference product.

A similar-products search needs no encoder call: the product's own stored vectors are the
query (its text vector against product texts, its main photo against product photos), so
it costs one index round trip. The product itself is excluded and the scope becomes a filter
inside the index: ``SAME_CATEGORY`` = its category only, ``OTHER_CATEGORIES`` = a must-not on
its category, so "complete the look" can never return the own category.
"""

from __future__ import annotations

from dataclasses import replace

from services.ranking.composed import Reference
from services.ranking.index.schema import IMAGE_VECTOR, TEXT_VECTOR, Candidate, SearchFilter, SignalQuery
from services.ranking.query import IMAGE, TEXT, QueryPlan
from homesearch.v1 import search_pb2

_SCOPES = {
    search_pb2.SIMILAR_SCOPE_UNSPECIFIED: "any category",
    search_pb2.SIMILAR_SCOPE_SAME_CATEGORY: "same category",
    search_pb2.SIMILAR_SCOPE_OTHER_CATEGORIES: "other categories",
}


def scope_name(scope: int) -> str:
    return _SCOPES.get(scope, "any category")


def scope_filter(flt: SearchFilter, payload: dict, scope: int) -> SearchFilter:
    """The request filter plus: never the product itself, and the category scope."""
    out = replace(flt, exclude_ids=[*flt.exclude_ids, payload["product_id"]])
    category = payload.get("category", "")
    if scope == search_pb2.SIMILAR_SCOPE_SAME_CATEGORY:
        out = replace(out, categories=[category])
    elif scope == search_pb2.SIMILAR_SCOPE_OTHER_CATEGORIES and category:
        out = replace(out, exclude_categories=[*out.exclude_categories, category])
    return out


def similar_plan(ref: Reference, limit: int) -> QueryPlan:
    """Index searches with the reference's stored vectors (text; main photo when it has one)."""
    queries: list[SignalQuery] = []
    text = ref.vectors.get(TEXT_VECTOR)
    if text:
        queries.append(SignalQuery(TEXT, TEXT_VECTOR, dense=list(text), limit=limit))
    photos = ref.vectors.get(IMAGE_VECTOR)
    if photos:
        queries.append(SignalQuery(IMAGE, IMAGE_VECTOR, dense=list(photos[0]), limit=limit))
    return QueryPlan(queries=queries, kind="similar")


def photo_reference(plan: QueryPlan, results: list[list[Candidate]]) -> Reference | None:
    """The best photo match of an image query: the product the shopper most likely shows (the
    ``visual`` identity signal when the encoders serve it, else the text-space photo vector)."""
    signals = {q.signal for q in plan.queries}
    want = "visual" if "visual" in signals else IMAGE
    for q, cands in zip(plan.queries, results):
        if q.signal == want and cands:
            top = cands[0]
            return Reference(top.product_id, top.payload, f"photo match {top.score:.3f}")
    return None
