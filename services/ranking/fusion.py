"""Score-level fusion of per-signal candidate lists.

Why normalise: raw cosines of different signals live on different scales (image
cosines spread ~2.5x more per query than text cosines, docs/architecture.md),
so a raw weighted sum lets the noisiest signal decide and fusion ends up worse
than text alone. Each signal's scores are therefore normalised *per query over
its own candidate pool* before weighting:

- ``dbsf``: distribution-based, (s - (mu - 3 sigma)) / (6 sigma) clipped
  to [0, 1]; robust to one outlier and bounded, so ``score_threshold`` stays meaningful.
- ``minmax``: (s - min) / (max - min).
- ``zscore``: (s - mu) / sigma (unbounded).
- ``max``: s / max, for signals with a true zero (BM25: no query term matched);
  a missing candidate then scores 0, not the pool minimum. Distribution-based
  methods would stretch two near-equal BM25 scores to opposite ends of [0, 1].

A candidate missing from a signal's list gets that signal's pool minimum (it
scored below everything the index returned), except when the product cannot
have the signal at all (no photo => no image vector): then the signal is left
out and the product's remaining weights are renormalised, so products without
photos are ranked on their text signals rather than punished.

RRF ignores scores: sum of w / (k + rank).

Which method and weights apply by default is stated once, in ``config.FusionDefaults``
(today: min-max for dense signals, ``max`` for BM25).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from services.ranking.config import FusionDefaults
from services.ranking.index.schema import Candidate

_EPS = 1e-9
_DEFAULTS = FusionDefaults()


@dataclass
class FusedHit:
    product_id: str
    score: float
    payload: dict
    raw: dict[str, float] = field(default_factory=dict)  # signal -> raw score (explain)
    normalized: dict[str, float] = field(default_factory=dict)  # signal -> normalised score
    boosts: dict[str, float] = field(default_factory=dict)  # additive boosts after fusion (add_boost)


def add_boost(hits: list[FusedHit], name: str, match: Callable[[FusedHit], float], weight: float) -> list[FusedHit]:
    """Adds ``weight * match(hit)`` to each hit's fused score (recorded in ``hit.boosts[name]`` for
    explain) and re-sorts; the photo colour / material boosts and the category match use it."""
    for h in hits:
        m = match(h)
        if m > 0:
            h.boosts[name] = weight * m
            h.score += weight * m
    return sorted(hits, key=lambda h: (-h.score, h.product_id))


def normalize(scores: list[float], method: str) -> tuple[list[float], float]:
    """Normalised scores and the normalised value of the pool minimum (for missing candidates)."""
    if not scores:
        return [], 0.0
    if method == "max":
        hi = max(scores)
        if hi <= _EPS:
            return [0.0] * len(scores), 0.0
        return [max(0.0, s / hi) for s in scores], 0.0
    lo = min(scores)
    if method == "minmax":
        hi = max(scores)
        span = hi - lo
        if span < _EPS:
            return [1.0] * len(scores), 1.0
        return [(s - lo) / span for s in scores], 0.0
    mu = sum(scores) / len(scores)
    sigma = math.sqrt(sum((s - mu) ** 2 for s in scores) / len(scores))
    if sigma < _EPS:
        return [1.0] * len(scores), 1.0
    if method == "zscore":
        return [(s - mu) / sigma for s in scores], (lo - mu) / sigma
    if method == "dbsf":
        base, width = mu - 3 * sigma, 6 * sigma

        def f(s: float) -> float:
            return min(1.0, max(0.0, (s - base) / width))

        return [f(s) for s in scores], f(lo)
    raise ValueError(f"unknown normalization {method!r}")


def fuse_weighted(
    lists: dict[str, list[Candidate]],
    weights: dict[str, float],
    method: str | None = None,
    unavailable: dict[str, set[str]] | None = None,
    methods: dict[str, str] | None = None,
) -> list[FusedHit]:
    """Weighted sum of per-signal normalised scores.

    ``unavailable[signal]`` holds product ids that cannot have that signal
    (e.g. no photo); for them the signal's weight is dropped and the rest renormalised.
    ``method`` defaults to ``FusionDefaults.normalization``; ``methods`` overrides it per signal
    (e.g. ``{"lexical": "max"}``).
    """
    method = method or _DEFAULTS.normalization
    methods = methods or {}
    unavailable = unavailable or {}
    active = {s: w for s, w in weights.items() if w > 0 and s in lists}
    pool: dict[str, FusedHit] = {}
    norm_by_signal: dict[str, dict[str, float]] = {}
    floor: dict[str, float] = {}
    for signal, cands in lists.items():
        normed, floor[signal] = normalize([c.score for c in cands], methods.get(signal, method))
        norm_by_signal[signal] = {}
        for c, n in zip(cands, normed):
            hit = pool.get(c.product_id)
            if hit is None:
                hit = pool[c.product_id] = FusedHit(c.product_id, 0.0, c.payload)
            hit.raw[signal] = c.score
            norm_by_signal[signal][c.product_id] = n
    for pid, hit in pool.items():
        total, wsum = 0.0, 0.0
        for signal, w in active.items():
            if pid in unavailable.get(signal, ()):
                continue
            n = norm_by_signal[signal].get(pid, floor[signal])
            hit.normalized[signal] = n
            total += w * n
            wsum += w
        hit.score = total / wsum if wsum > 0 else 0.0
    return sorted(pool.values(), key=lambda h: (-h.score, h.product_id))


def fuse_rrf(lists: dict[str, list[Candidate]], weights: dict[str, float], k: int | None = None) -> list[FusedHit]:
    """Weighted reciprocal rank fusion; scores are only used for explain output."""
    k = _DEFAULTS.rrf_k if k is None else k
    pool: dict[str, FusedHit] = {}
    for signal, cands in lists.items():
        w = weights.get(signal, 0.0)
        for rank, c in enumerate(cands, start=1):
            hit = pool.get(c.product_id)
            if hit is None:
                hit = pool[c.product_id] = FusedHit(c.product_id, 0.0, c.payload)
            hit.raw[signal] = c.score
            if w > 0:
                contribution = w / (k + rank)
                hit.normalized[signal] = contribution
                hit.score += contribution
    return sorted(pool.values(), key=lambda h: (-h.score, h.product_id))
