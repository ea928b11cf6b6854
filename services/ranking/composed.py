"""Composed queries: a reference product (from the photo or an id) plus a textual change.

Why a re-rank and not a vector mix: the untrained mix of the text and photo vectors found
the line but rarely the variant (Hit@1 0.24). The photo pins the identity well (its best
image match is almost always the pictured product or a variant of it), and the variants of
a product share its title and category in any catalog. So the candidates are the fused
photo results plus the reference's *siblings* (same title, same category), and each is
scored by how well its attributes match the parsed modifiers (modifiers.py):

    score = MATCH * match + SIBLING * sibling * match + BASE * base

with ``base`` the candidate's fused photo score (0..1). A sibling that matches comes first,
then other products that match, then the rest by photo similarity.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from services.ranking.fusion import FusedHit
from services.ranking.index.base import VectorIndex
from services.ranking.index.schema import SearchFilter, normalize_value
from services.ranking.modifiers import Modifiers, mentions, phrase_match, size_measure

MATCH_WEIGHT = 2.0
SIBLING_WEIGHT = 1.0
BASE_WEIGHT = 0.5
MAX_SIBLINGS_SCAN = 1000


@dataclass
class Reference:
    """The product the shopper points at, and how it was found."""

    product_id: str
    payload: dict
    how: str  # "photo match 0.98" or "named by id"
    vectors: dict = field(default_factory=dict)  # stored vectors (by id only)


def sibling_key(payload: dict) -> tuple[str, str]:
    return normalize_value(payload.get("title", "")), normalize_value(payload.get("category", ""))


def find_siblings(index: VectorIndex, ref: Reference, flt: SearchFilter) -> list[dict]:
    """Payloads of the reference's variants (same title and category) that pass ``flt``."""
    cat = ref.payload.get("category", "")
    if not cat or (flt.categories and normalize_value(cat) not in {normalize_value(c) for c in flt.categories}):
        return []
    key = sibling_key(ref.payload)
    scoped = replace(flt, categories=[cat])  # keeps exclude_categories: 'other categories' has no siblings
    return [p for p in index.scroll(scoped, MAX_SIBLINGS_SCAN) if sibling_key(p) == key]


def match_score(mods: Modifiers, payload: dict, ref_size: float | None) -> float:
    """How well one product realises the requested change, 0..1 (mean of the asked parts)."""
    parts: list[float] = []
    attrs = payload.get("attributes") or {}
    if mods.phrase:
        parts.append(phrase_match(mods.phrase, attrs))
    if mods.size:
        size = size_measure(attrs)
        if size is None or ref_size is None:
            parts.append(0.0)
        else:
            parts.append(1.0 if (size - ref_size) * mods.size > 0 else 0.0)
    if mods.without:
        parts.append(0.0 if mentions(mods.without, payload) else 1.0)
    return sum(parts) / len(parts) if parts else 0.0


def rerank(fused: list[FusedHit], ref: Reference, siblings: list[dict], mods: Modifiers) -> list[FusedHit]:
    """Candidates (fused hits + siblings) ordered by the composed score; raw parts kept for explain."""
    pool = {h.product_id: h for h in fused}
    for p in siblings:
        pid = p["product_id"]
        if pid not in pool:
            pool[pid] = FusedHit(pid, 0.0, p)
    sibling_ids = {p["product_id"] for p in siblings} | {ref.product_id}
    ref_size = size_measure(ref.payload.get("attributes") or {})
    out = []
    for pid, h in pool.items():
        match = match_score(mods, h.payload, ref_size)
        sib = 1.0 if pid in sibling_ids else 0.0
        base = h.score
        score = MATCH_WEIGHT * match + SIBLING_WEIGHT * sib * match + BASE_WEIGHT * base
        hit = FusedHit(pid, score, h.payload, dict(h.raw), dict(h.normalized))
        hit.raw["modifier_match"] = match
        hit.raw["sibling"] = sib
        hit.normalized["base"] = base
        out.append(hit)
    return sorted(out, key=lambda x: (-x.score, x.product_id))


def describe(ref: Reference, mods: Modifiers, n_siblings: int) -> str:
    return (
        f"composed query: reference {ref.product_id} {ref.payload.get('title', '')!r} ({ref.how}), "
        f"{n_siblings} sibling variant(s); text read as: {mods.describe()}"
    )
