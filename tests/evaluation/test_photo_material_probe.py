"""Choosing the material probe's L2 strength: the cross-validated score of each strength is the
mean over several assignments of product lines to folds, so one lucky split cannot pick it."""

from __future__ import annotations

import numpy as np
import pytest

from homesearch.evaluation import photo_material as pm


def _data(n: int = 160, d: int = 12, labels: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, labels, n)
    x = rng.normal(size=(n, d)).astype(np.float32) + 0.8 * np.eye(labels, d, dtype=np.float32)[y]
    groups = [f"LINE{i // 4}" for i in range(n)]  # lines of 4 products
    return x, y, groups, labels


def test_l2_scores_are_the_mean_over_line_to_fold_assignments():
    pytest.importorskip("torch")
    x, y, groups, k = _data()
    best, scores, oof = pm.choose_l2(x, y, groups, k, repeats=3)
    # assignment r > 0 is the first assignment of lines renamed "r:<line>"
    single = [pm.choose_l2(x, y, [f"{r}:{g}" if r else g for g in groups], k, repeats=1) for r in range(3)]
    for l2 in pm.L2_GRID:
        assert scores[str(l2)] == pytest.approx(np.mean([s[1][str(l2)] for s in single]), abs=1e-3)
    assert best == max(pm.L2_GRID, key=lambda v: scores[str(v)])
    assert oof.shape == (len(y), k)  # out-of-fold logits of every product, for the temperature
    spread = [max(s[1][str(l2)] for s in single) - min(s[1][str(l2)] for s in single) for l2 in pm.L2_GRID]
    assert max(spread) > 0  # the assignments do disagree: there is noise to average
