"""Fusion arithmetic (pure functions, no services)."""

from __future__ import annotations

import pytest

from services.ranking.fusion import fuse_rrf, fuse_weighted, normalize
from services.ranking.index.schema import Candidate


def _c(pid: str, score: float) -> Candidate:
    return Candidate(pid, score, {"product_id": pid})


@pytest.mark.parametrize("method", ["dbsf", "minmax", "zscore"])
def test_normalize_is_monotonic_and_floor_is_minimum(method):
    scores = [0.9, 0.5, 0.7, 0.1]
    normed, floor = normalize(scores, method)
    order = sorted(range(4), key=lambda i: -scores[i])
    assert sorted(range(4), key=lambda i: -normed[i]) == order
    assert floor == pytest.approx(min(normed))


def test_normalize_degenerate_pool():
    assert normalize([], "dbsf") == ([], 0.0)
    assert normalize([0.3, 0.3], "minmax") == ([1.0, 1.0], 1.0)


def test_wide_spread_signal_does_not_dominate_after_normalisation():
    # Text separates a from b a little (narrow spread); image is noisy with a wide spread.
    text = [_c("a", 0.86), _c("b", 0.84), _c("c", 0.83), _c("d", 0.82)]
    image = [_c("b", 0.60), _c("a", 0.45), _c("d", 0.40), _c("c", 0.30)]
    fused = fuse_weighted({"text": text, "image": image}, {"text": 0.7, "image": 0.3}, method="minmax")
    assert fused[0].product_id == "a"
    # Raw-cosine fusion would have let the image signal win:
    raw = {p: 0.7 * t.score for t in text for p in [t.product_id]}
    for i in image:
        raw[i.product_id] += 0.3 * i.score
    assert max(raw, key=raw.get) == "b"


def test_missing_candidate_gets_pool_minimum_and_unavailable_signal_is_dropped():
    text = [_c("a", 0.9), _c("b", 0.8), _c("nophoto", 0.85)]
    image = [_c("a", 0.7), _c("x", 0.6), _c("y", 0.2)]
    fused = {h.product_id: h for h in fuse_weighted(
        {"text": text, "image": image}, {"text": 0.5, "image": 0.5}, method="minmax",
        unavailable={"image": {"nophoto"}},
    )}
    assert fused["b"].normalized["image"] == 0.0  # not an image candidate => pool minimum
    assert "image" not in fused["nophoto"].normalized  # cannot have the signal => weight renormalised
    assert fused["nophoto"].score == pytest.approx(fused["nophoto"].normalized["text"])


def test_rrf_weights_ranks():
    a = [_c("a", 1.0), _c("b", 0.5)]
    b = [_c("b", 9.0), _c("a", 1.0)]
    fused = fuse_rrf({"text": a, "lexical": b}, {"text": 1.0, "lexical": 2.0}, k=60)
    assert fused[0].product_id == "b"
    assert fused[0].score == pytest.approx(1 / 62 + 2 / 61)


def test_max_normalisation_keeps_bm25_zero_meaningful():
    lex = [_c("a", 2.1), _c("b", 1.9)]
    dense = [_c("a", 0.80), _c("b", 0.80), _c("c", 0.80)]
    fused = {h.product_id: h for h in fuse_weighted(
        {"lexical": lex, "text": dense}, {"lexical": 1.0, "text": 1.0}, methods={"lexical": "max"})}
    assert fused["b"].normalized["lexical"] == pytest.approx(1.9 / 2.1)
    assert fused["c"].normalized["lexical"] == 0.0  # no term matched


def test_region_searches_of_one_signal_merge_by_best_score():
    """A photo query runs one visual search per region; each product keeps its best region."""
    from services.ranking.index.schema import Candidate, SignalQuery
    from services.ranking.query import merge_signal_lists

    qs = [SignalQuery("image", "visual", dense=[1.0], limit=2), SignalQuery("text", "text", dense=[1.0], limit=2),
          SignalQuery("image", "visual", dense=[0.5], limit=2)]
    res = [[Candidate("a", 0.9, {}), Candidate("b", 0.2, {})], [Candidate("a", 0.3, {})],
           [Candidate("b", 0.95, {}), Candidate("c", 0.5, {})]]
    merged_q, lists = merge_signal_lists(qs, res)
    assert [q.signal for q in merged_q] == ["image", "text"]
    assert [(c.product_id, c.score) for c in lists[0]] == [("b", 0.95), ("a", 0.9)]  # cut to the limit
    assert [c.product_id for c in lists[1]] == ["a"]
