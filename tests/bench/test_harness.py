"""Harness logic only (statistics, recall, synthetic data, rendering): no timing assertions.
Performance goals live in the benchmarks (``homesearch bench``), never in unit tests."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench.harness import (
    SuiteResult,
    Table,
    closed_loop,
    latency_summary,
    markdown_table,
    percentile,
    ratio,
    recall_at_k,
    to_json,
)
from bench.search import targets, unique_text
from bench.synthetic import SyntheticCatalog, SyntheticSpec, exact_topk

SMALL = SyntheticSpec(dim=32, n_categories=12, families_per_category=3, seed=7)


# -- percentiles ---------------------------------------------------------------------------
@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    xs = list(np.random.default_rng(3).exponential(5.0, 257))
    assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)), rel=1e-12)


def test_percentile_edge_cases() -> None:
    assert percentile([4.0], 99) == 4.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([3, 1, 2], 50) == 2  # unsorted input
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_is_in_milliseconds() -> None:
    s = latency_summary([0.001, 0.002, 0.003, 0.004])
    assert s["n"] == 4 and s["p50_ms"] == pytest.approx(2.5) and s["max_ms"] == pytest.approx(4.0)
    assert math.isnan(latency_summary([])["p50_ms"])


def test_ratio_handles_missing_and_zero() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) is None and ratio(None, 1.0) is None and ratio(float("nan"), 1.0) is None


# -- recall --------------------------------------------------------------------------------
def test_recall_at_k_counts_overlap_not_order() -> None:
    exact = [[1, 2, 3, 4], [5, 6, 7, 8]]
    approx = [[4, 3, 2, 1], [5, 6, 9, 10]]
    assert recall_at_k(approx, exact, k=4) == pytest.approx((1.0 + 0.5) / 2)
    assert recall_at_k(approx, exact, k=2) == pytest.approx((0.0 + 1.0) / 2)  # only the top-2 of each count


def test_recall_skips_empty_truth_and_checks_lengths() -> None:
    assert recall_at_k([[1], [2]], [[], [2]], k=10) == 1.0
    assert math.isnan(recall_at_k([[1]], [[]], k=10))
    with pytest.raises(ValueError):
        recall_at_k([[1]], [[1], [2]])


def test_exact_topk_and_recall_on_tiny_synthetic_set() -> None:
    cat = SyntheticCatalog(SMALL)
    a = cat.arrays(500)
    q = cat.queries(20)
    top = exact_topk(a["vectors"], q["vectors"], k=10)
    # brute-force reference
    scores = q["vectors"] @ a["vectors"].T
    ref = np.argsort(-scores, axis=1)[:, :10]
    assert recall_at_k(top.tolist(), ref.tolist(), k=10) == 1.0
    assert (np.diff(np.take_along_axis(scores, top, 1), axis=1) <= 1e-6).all()  # best first
    # a degraded result (drop the best hit) has recall 0.9
    worse = [row[1:] + [-1] for row in top.tolist()]
    assert recall_at_k(worse, ref.tolist(), k=10) == pytest.approx(0.9)


def test_exact_topk_with_mask_only_returns_allowed_rows() -> None:
    cat = SyntheticCatalog(SMALL)
    a = cat.arrays(300)
    q = cat.queries(5)
    mask = a["category"] == 0
    top = exact_topk(a["vectors"], q["vectors"], k=10, mask=mask)
    allowed = set(np.flatnonzero(mask).tolist())
    for row in top.tolist():
        got = [i for i in row if i >= 0]
        assert got and set(got) <= allowed
        assert len(got) == min(10, len(allowed))


# -- synthetic data ------------------------------------------------------------------------
def test_synthetic_is_deterministic_and_sizes_nest() -> None:
    a1 = SyntheticCatalog(SMALL).arrays(1200)
    a2 = SyntheticCatalog(SMALL).arrays(1200)
    small = SyntheticCatalog(SMALL).arrays(700)
    for k in a1:
        assert np.array_equal(a1[k], a2[k])
        assert np.array_equal(a1[k][:700], small[k])
    other = SyntheticCatalog(SyntheticSpec(**{**SMALL.__dict__, "seed": 8})).arrays(100)
    assert not np.array_equal(other["vectors"], a1["vectors"][:100])
    q1, q2 = SyntheticCatalog(SMALL).queries(10), SyntheticCatalog(SMALL).queries(10)
    assert np.array_equal(q1["vectors"], q2["vectors"])


def test_synthetic_vectors_are_unit_and_clustered() -> None:
    cat = SyntheticCatalog(SMALL)
    a = cat.arrays(2000)
    v = a["vectors"]
    assert v.dtype == np.float32 and v.shape == (2000, 32)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v[:200] @ v.T
    same = a["category"][:200, None] == a["category"][None, :]
    assert sims[same].mean() > sims[~same].mean() + 0.2  # categories are real clusters


def test_synthetic_payload_fields_are_realistic() -> None:
    cat = SyntheticCatalog(SMALL)
    a = cat.arrays(50)
    f = cat.payload_fields(3, int(a["category"][3]), int(a["family"][3]), float(a["price"][3]), bool(a["in_stock"][3]))
    assert f["category"] == cat.names[int(a["category"][3])]
    assert set(f["attributes"]) == {"color", "material", "style"}
    assert f["price"] > 0 and isinstance(f["in_stock"], bool) and f["title"].endswith(f["category"])
    assert cat.product_id(3) == "syn-0000003"


def test_unique_query_texts_do_not_repeat() -> None:
    texts = [unique_text(i) for i in range(30_000)]
    assert len(set(texts)) == len(texts)


# -- closed loop (logic, not speed) --------------------------------------------------------
def test_closed_loop_counts_requests_and_errors() -> None:
    seen: list[int] = []

    def call(i: int) -> None:
        seen.append(i)
        if i % 5 == 0:
            raise RuntimeError("boom")

    r = closed_loop(call, 4, duration_s=30.0, max_requests=50)
    assert r.requests == 50 and r.errors == 10 and r.error_kinds == {"RuntimeError": 10}
    assert sorted(seen) == list(range(50))  # every number once, no duplicates across workers
    s = r.summary()
    assert s["concurrency"] == 4 and s["n"] == 40 and s["errors"] == 10


# -- rendering -----------------------------------------------------------------------------
def test_markdown_table_rendering() -> None:
    md = markdown_table(["a", "b", "c"], [{"a": 1.23456, "b": "x|y", "c": None}, {"a": 123.4, "b": True}],
                        headers={"a": "A ms"})
    lines = md.splitlines()
    assert lines[0] == "| A ms | b | c |"
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| 1.23 | x\\|y | – |"
    assert lines[3] == "| 123 | yes | – |"


def test_suite_result_markdown_and_strict_json() -> None:
    t = Table("Latency", ["n", "p50_ms"], [{"n": 1, "p50_ms": float("nan")}], notes=["a note"])
    r = SuiteResult("search", tables=[t], data={"x": float("inf")}, meta={"cpus": 2})
    md = r.markdown()
    assert md.startswith("## search") and "### Latency" in md and "- a note" in md and "| 1 | – |" in md
    doc = json.loads(to_json(r.to_dict()))  # NaN/inf -> null, so strict parsers accept it
    assert doc["data"]["x"] is None and doc["tables"][0]["rows"][0]["p50_ms"] is None


def _row(state: str, c: int, qps: float, errors: int = 0, kinds: dict | None = None) -> dict:
    row = {"query": "text", "cache": state, "target": "gateway", "concurrency": c, "p50_ms": 10.0,
           "p99_ms": 20.0, "qps": qps, "errors": errors}
    if kinds:
        row["error_kinds"] = json.dumps(kinds)
    return row


def test_overload_target_accepts_admission_refusals_but_no_other_error() -> None:
    """c=16 cache misses overload 2 cores by design: refusals are the admission control working."""
    base = [_row("miss", 1, 40.0)]
    refused = {t["target"]: t["met"] for t in targets(base + [_row("miss", 16, 39.0, 120, {"RESOURCE_EXHAUSTED": 120})])}
    assert refused["text miss, c=16 (overload): no errors but admission refusals, accepted QPS >= 0.9x c=1"]
    failing = targets(base + [_row("miss", 16, 39.0, 121, {"RESOURCE_EXHAUSTED": 120, "DEADLINE_EXCEEDED": 1})])
    assert not [t for t in failing if t["target"].startswith("text miss, c=16")][0]["met"]
    slow = targets(base + [_row("miss", 16, 20.0, 0)])
    assert not [t for t in slow if t["target"].startswith("text miss, c=16")][0]["met"]
    hits = targets([_row("hit", 16, 150.0, 1, {"RESOURCE_EXHAUSTED": 1})])
    assert not hits[0]["met"], "a refused cache hit is an error: hits must not queue behind misses"
