import json
import math

import numpy as np
import pytest

from homesearch.evaluation.metrics import evaluate, evaluate_scores, query_metrics


def test_single_relevant_at_rank_3():
    m = query_metrics(["a", "b", "x", "c"], ["x"])
    assert m["recall@1"] == 0
    assert m["recall@10"] == 1
    assert m["mrr@10"] == pytest.approx(1 / 3)
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(4))  # idcg = 1


def test_two_relevant_one_found_at_top():
    m = query_metrics(["x", "b", "c"], ["x", "y"])
    assert m["recall@1"] == 0.5
    assert m["recall@10"] == 0.5
    assert m["mrr@10"] == 1.0
    assert m["ndcg@10"] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_hit_after_rank_10_counts_nothing():
    ranked = [f"n{i}" for i in range(10)] + ["x"]
    assert query_metrics(ranked, ["x"]) == {"recall@1": 0, "recall@10": 0, "mrr@10": 0, "ndcg@10": 0}


def test_ideal_dcg_capped_at_10():
    rel = [f"r{i}" for i in range(12)]
    assert query_metrics(rel, rel)["ndcg@10"] == pytest.approx(1.0)
    assert query_metrics(rel, rel)["recall@10"] == pytest.approx(10 / 12)


def test_evaluate_averages_and_is_json():
    rep = evaluate({"q1": ["a"], "q2": ["z", "b"]}, {"q1": ["a"], "q2": ["b"], "q3": [], "q4": ["c"]})
    assert rep["n"] == 3  # q3 has no relevant ids: skipped; q4 has no run: all zero
    assert rep["recall@10"] == pytest.approx(2 / 3)
    assert rep["mrr@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    json.dumps(rep)


def test_evaluate_scores_matches_ranked_lists():
    s = np.array([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    rep = evaluate_scores(s, ["a", "b", "c"], [["c"], ["a"]])
    assert rep["recall@1"] == 0.5
    assert rep["mrr@10"] == pytest.approx((0.5 + 1) / 2)
