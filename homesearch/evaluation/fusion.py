"""Score-level fusion as the ranking service applies it, simulated offline in numpy.

Per query, each signal s returns its top-K candidates with raw scores x_s(d) (K = ``depth``).
Candidates = union over signals. Methods (w_s = per-signal weight):

  raw     F(d) = sum_s w_s * x_s(d)                       absent from s's top-K -> min_K(x_s)
  minmax  F(d) = sum_s w_s * (x_s(d) - min_K) / (max_K - min_K)            absent -> 0
  zscore  F(d) = sum_s w_s * (x_s(d) - mean_K) / std_K        absent -> (min_K - mean_K) / std_K
  dbsf    F(d) = sum_s w_s * clip((x_s(d) - (mean_K - 3 std_K)) / (6 std_K), 0, 1)
                                                        absent -> the value of min_K
  max     F(d) = sum_s w_s * max(0, x_s(d) / max_K)               absent -> 0 (for BM25)
  a+b     dense signals (text, image) normalised with a, lexical (bm25) with b; "dbsf+max" is
          services/ranking/fusion.py's default (normalization=dbsf, lexical_normalization=max)
  rrf     F(d) = sum_s w_s / (k + rank_s(d))   rank from 1 within s's top-K, k = 60;  absent -> 0

min_K / max_K / mean_K / std_K are taken over signal s's own top-K scores for that query
(std_K population std; a zero range/std -> the term contributes 0). Ties broken by product order.
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np

from homesearch.evaluation.metrics import evaluate_scores

METHODS = ("raw", "minmax", "zscore", "dbsf", "dbsf+max", "minmax+max", "rrf")
RRF_K = 60
LEXICAL = {"bm25", "tfidf", "lexical"}


def _norm_for(method: str, signal: str) -> str:
    """``a+b``: dense signals use a, lexical signals b (the ranking service's dense/lexical split)."""
    if "+" in method:
        dense, lex = method.split("+")
        return lex if signal in LEXICAL else dense
    return method


def normalise(x: np.ndarray, method: str, depth: int) -> np.ndarray:
    """x (Q, G) raw scores of one signal -> (Q, G) normalised contributions per ``method``
    (before the weight), computed from each row's top-``depth`` candidates as the module doc says."""
    q, g = x.shape
    k = min(depth, g)
    top = np.argpartition(-x, k - 1, axis=1)[:, :k]
    in_top = np.zeros_like(x, dtype=bool)
    np.put_along_axis(in_top, top, True, axis=1)
    tv = np.take_along_axis(x, top, 1)
    if method == "raw":
        return np.where(in_top, x, tv.min(1, keepdims=True))
    if method == "minmax":
        lo, hi = tv.min(1, keepdims=True), tv.max(1, keepdims=True)
        rng = np.where(hi - lo > 0, hi - lo, np.inf)
        return np.where(in_top, (x - lo) / rng, 0.0)
    if method == "zscore":
        mu, sd = tv.mean(1, keepdims=True), tv.std(1, keepdims=True)
        sd = np.where(sd > 0, sd, np.inf)
        return np.where(in_top, (x - mu) / sd, (tv.min(1, keepdims=True) - mu) / sd)
    if method == "dbsf":
        mu, sd = tv.mean(1, keepdims=True), tv.std(1, keepdims=True)
        base, width = mu - 3 * sd, np.where(sd > 0, 6 * sd, np.inf)
        f = lambda v: np.clip((v - base) / width, 0.0, 1.0)  # noqa: E731
        return np.where(in_top, f(x), f(tv.min(1, keepdims=True)))
    if method == "max":
        hi = tv.max(1, keepdims=True)
        hi = np.where(hi > 1e-9, hi, np.inf)
        return np.where(in_top, np.maximum(0.0, x / hi), 0.0)
    if method == "rrf":
        order = np.argsort(-x, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, g + 1)[None, :].repeat(q, 0), axis=1)
        return np.where(in_top, 1.0 / (RRF_K + ranks), 0.0)
    raise ValueError(method)


def fuse(signals: Mapping[str, np.ndarray], weights: Mapping[str, float], method: str, depth: int = 50) -> np.ndarray:
    out = None
    for name, w in weights.items():
        if w == 0:
            continue
        c = w * normalise(signals[name], _norm_for(method, name), depth)
        out = c if out is None else out + c
    return out


def weight_grid(names: Sequence[str], step: float = 0.1) -> list[dict[str, float]]:
    n = round(1 / step)
    grid = []
    for combo in itertools.product(range(n + 1), repeat=len(names)):
        if sum(combo) == n:
            grid.append({nm: round(c * step, 4) for nm, c in zip(names, combo)})
    return grid


def study(
    conditions: Mapping[str, tuple[Mapping[str, np.ndarray], Sequence[Sequence[str]], Mapping[str, np.ndarray], Sequence[Sequence[str]]]],
    gallery_ids: Sequence[str], depth: int = 50, step: float = 0.1, objective: str = "ndcg@10",
    methods: Sequence[str] = METHODS,
) -> dict:
    """conditions: name -> (signals_dev, qrels_dev, signals_test, qrels_test).

    For each method one weight vector is chosen on dev, maximising the mean ``objective`` over the
    conditions (ties -> mean recall@10, then grid order); dev and test metrics are reported per
    condition, with single signals and equal weights for reference."""
    first = next(iter(conditions.values()))
    names = list(first[0])
    grid = weight_grid(names, step)
    res: dict = {"signals": names, "depth": depth, "objective": objective, "grid_step": step,
                 "single": {c: {} for c in conditions}, "methods": {}}
    for c, (sd, qd, stt, qt) in conditions.items():
        for nm in names:
            res["single"][c][nm] = {"dev": evaluate_scores(sd[nm], gallery_ids, qd),
                                    "test": evaluate_scores(stt[nm], gallery_ids, qt)}
    for m in methods:
        best, best_key = None, None
        for w in grid:
            rs = [evaluate_scores(fuse(sd, w, m, depth), gallery_ids, qd) for sd, qd, _, _ in conditions.values()]
            key = (float(np.mean([r[objective] for r in rs])), float(np.mean([r["recall@10"] for r in rs])))
            if best_key is None or key > best_key:
                best, best_key = w, key
        out = {"weights": best, "dev_objective_mean": round(best_key[0], 6)}
        for c, (sd, qd, stt, qt) in conditions.items():
            out[c] = {"dev": evaluate_scores(fuse(sd, best, m, depth), gallery_ids, qd),
                      "test": evaluate_scores(fuse(stt, best, m, depth), gallery_ids, qt),
                      "equal_weights_test": evaluate_scores(fuse(stt, {n: 1 / len(names) for n in names}, m, depth), gallery_ids, qt)}
        res["methods"][m] = out
    return res
