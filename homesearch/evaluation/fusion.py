"""Offline fusion study: the ranking service's score fusion applied to precomputed score matrices.

Per query, each signal s returns its top-K candidates with raw scores x_s(d) (K = ``depth``).
Candidates = union over signals; F(d) = sum_s w_s * n_s(d). The per-signal normalisation n_s is
the service's own ``services.ranking.fusion.normalize`` (minmax, zscore, dbsf, max: formulas in
that module), applied per query over s's top-K; a candidate absent from s's top-K gets the value
of the pool minimum, as in the service. Extra spellings here:

  raw     n_s = x_s (absent -> min_K): the naive baseline the service never uses
  a+b     dense signals (text, image) normalised with a, lexical (bm25) with b; ``SERVICE_DEFAULT``
          names what ``FusionDefaults`` (services/ranking/config.py, the one source of fusion
          defaults) selects
  rrf     n_s = 1 / (k + rank_s(d)), rank from 1 within s's top-K, k = ``FusionDefaults.rrf_k``

Ties broken by product order.
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np

from homesearch.evaluation.metrics import evaluate_scores
from services.ranking.config import FusionDefaults
from services.ranking.fusion import normalize as service_normalize

DEFAULTS = FusionDefaults()
#: what the ranking service does by default, spelled as a method of this module
SERVICE_DEFAULT = f"{DEFAULTS.normalization}+{DEFAULTS.lexical_normalization}"
METHODS = ("raw", "minmax", "zscore", "dbsf", "dbsf+max", "minmax+max", "rrf")
LEXICAL = {"bm25", "tfidf", "lexical"}


def _norm_for(method: str, signal: str) -> str:
    """``a+b``: dense signals use a, lexical signals b (the ranking service's dense/lexical split)."""
    if "+" in method:
        dense, lex = method.split("+")
        return lex if signal in LEXICAL else dense
    return method


def normalise(x: np.ndarray, method: str, depth: int) -> np.ndarray:
    """x (Q, G) raw scores of one signal -> (Q, G) normalised contributions per ``method``
    (before the weight), computed from each row's top-``depth`` candidates.

    Every method but ``raw`` is the ranking service's own code: ``services.ranking.fusion.normalize``
    per query (a candidate outside the top-K gets the pool-minimum value it returns), and RRF with
    the service's ``FusionDefaults.rrf_k``. ``raw`` is the naive baseline the service never uses."""
    q, g = x.shape
    k = min(depth, g)
    top = np.argpartition(-x, k - 1, axis=1)[:, :k]
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(q):
        cols = top[i]
        scores = x[i, cols]
        if method == "raw":
            out[i] = scores.min()
            out[i, cols] = scores
        elif method == "rrf":
            order = cols[np.argsort(-scores, kind="stable")]
            out[i, order] = 1.0 / (DEFAULTS.rrf_k + np.arange(1, k + 1))
        else:
            normed, floor = service_normalize(scores.tolist(), method)
            out[i] = floor
            out[i, cols] = normed
    return out


_CACHE: dict[tuple[int, str, int], tuple[np.ndarray, np.ndarray]] = {}


def _normalised(x: np.ndarray, method: str, depth: int) -> np.ndarray:
    """``normalise`` memoised per matrix object: a weight grid reuses each (signal, method) often."""
    key = (id(x), method, depth)
    hit = _CACHE.get(key)
    if hit is None or hit[0] is not x:
        if len(_CACHE) > 256:
            _CACHE.clear()
        hit = _CACHE[key] = (x, normalise(x, method, depth))
    return hit[1]


def fuse(signals: Mapping[str, np.ndarray], weights: Mapping[str, float], method: str, depth: int = 50) -> np.ndarray:
    out = None
    for name, w in weights.items():
        if w == 0:
            continue
        c = w * _normalised(signals[name], _norm_for(method, name), depth)
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
