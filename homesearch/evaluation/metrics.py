"""Ranking metrics as defined in docs/formats.md (binary relevance).

Per query: Recall@k = |relevant ∩ top-k| / |relevant|; MRR@10 = 1/rank of the first relevant hit
within the top 10 (0 if none); nDCG@10 = DCG@10 / IDCG@10 with gain 1 for a relevant id at rank r
discounted by 1/log2(r+1), IDCG over min(|relevant|, 10) hits. Averaged over queries.
Queries without relevant ids are skipped (not counted in ``n``).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

METRIC_NAMES = ("recall@1", "recall@10", "mrr@10", "ndcg@10")


def query_metrics(ranked: Sequence[str], relevant: Iterable[str]) -> dict[str, float]:
    rel = set(relevant)
    if not rel:
        raise ValueError("query has no relevant ids")
    top = list(ranked[:10])
    hits = [1 if r in rel else 0 for r in top]
    rr = 0.0
    for i, h in enumerate(hits):
        if h:
            rr = 1.0 / (i + 1)
            break
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), 10)))
    return {
        "recall@1": sum(hits[:1]) / len(rel),
        "recall@10": sum(hits) / len(rel),
        "mrr@10": rr,
        "ndcg@10": dcg / idcg,
    }


def evaluate(runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Iterable[str]]) -> dict:
    """runs: query id -> ranked product ids; qrels: query id -> relevant ids.

    Returns a JSON-serialisable report ``{"n": int, "recall@1": ..., ...}``. A query in qrels that
    has no run counts as all-zero (a system that returns nothing is wrong, not excused).
    """
    sums = dict.fromkeys(METRIC_NAMES, 0.0)
    n = 0
    for qid, rel in qrels.items():
        rel = list(rel)
        if not rel:
            continue
        m = query_metrics(list(runs.get(qid, [])), rel)
        for k in METRIC_NAMES:
            sums[k] += m[k]
        n += 1
    report = {k: (round(v / n, 6) if n else 0.0) for k, v in sums.items()}
    report["n"] = n
    return report


def evaluate_scores(scores: np.ndarray, gallery_ids: Sequence[str], qrels: Sequence[Iterable[str]], k: int = 10) -> dict:
    """Dense variant: scores (Q, G) higher = better; qrels[i] = relevant ids of query i."""
    gallery_ids = np.asarray(gallery_ids)
    kk = min(k, scores.shape[1])
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    order = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable"), 1)
    runs = {str(i): list(gallery_ids[order[i]]) for i in range(scores.shape[0])}
    return evaluate(runs, {str(i): list(r) for i, r in enumerate(qrels)})
