"""The offline merge study must reproduce the served merge, and its variants must do what they say."""

from __future__ import annotations

import numpy as np

from homesearch.evaluation.scene_merge_study import box_iou, category_key, ndcg_at_10, round_robin
from services.ranking.regions import merge
from services.ranking.index.schema import Candidate


def _matrix(seed: int = 0, windows: int = 30, products: int = 40) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"p{j}" for j in range(products)], rng.normal(size=(windows, products)).astype(np.float32)


def test_plain_round_robin_is_the_served_merge() -> None:
    for seed in range(5):
        ids, scores = _matrix(seed)
        order = np.argsort(-scores, axis=1, kind="stable")
        results = [[Candidate(ids[j], float(scores[r, j]), {}) for j in order[r]] for r in range(len(scores))]
        boxes = [(0.0, 0.0, 1.0, 1.0)] * len(scores)
        _regions, merged = merge(boxes, results, depth=25)
        assert round_robin(ids, scores, depth=25)[: len(merged)] == [h.product_id for h in merged]


def test_category_cap_limits_repeats_in_the_first_places_only() -> None:
    ids, scores = _matrix(1)
    cats = {p: "rug" if int(p[1:]) % 2 else f"c{p}" for p in ids}  # half the products are rugs
    plain = round_robin(ids, scores, depth=30, categories=cats)
    capped = round_robin(ids, scores, depth=30, categories=cats, cap=1)
    assert sum(cats[p] == "rug" for p in plain[:10]) > 1  # the data gives the cap work to do
    assert sum(cats[p] == "rug" for p in capped[:10]) == 1
    assert len(set(capped)) == len(capped)
    assert sum(cats[p] == "rug" for p in capped) > 1  # later places are not capped


def test_nms_drops_windows_that_overlap_a_better_one() -> None:
    ids = ["a", "b", "c"]
    # window 0 and 1 are the same box; window 1 (worse) would give "b" in round 1
    scores = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.0], [0.0, 0.1, 0.7]], dtype=np.float32)
    boxes = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], dtype=np.float32)
    iou = box_iou(boxes)
    assert np.allclose(np.diag(iou), 1.0) and iou[0, 2] == 0.0
    assert round_robin(ids, scores, depth=3)[:3] == ["a", "b", "c"]
    assert round_robin(ids, scores, depth=3, iou=iou, nms=0.5)[:2] == ["a", "c"]


def test_helpers() -> None:
    assert category_key("Rug, braided") == category_key("rug, flatwoven") == "rug"
    assert ndcg_at_10(["x", "a"], ["a"]) == 1 / np.log2(3)
    assert ndcg_at_10(["a", "b"], ["a", "b"]) == 1.0
