"""The offline photo-query study's ranking and white balance (homesearch.evaluation.photo_query_study)."""

from __future__ import annotations

import numpy as np

from homesearch.evaluation.photo_query_study import VARIANTS, Gallery, grayworld


def _unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, np.float32)
    return v / np.linalg.norm(v)


def test_products_rank_by_their_best_row_against_any_query_row():
    g = Gallery(["a", "b", "c"], [np.stack([_unit(1, 0, 0), _unit(0, 1, 0)]),  # a: 2 rows
                                  np.stack([_unit(1, 1, 0)]),
                                  np.stack([_unit(0, 0, 1)])])
    assert g.rank(np.stack([_unit(0, 1, 0)])) == ["a", "b", "c"]  # a's second row matches exactly
    assert set(g.rank(np.stack([_unit(0, 0, 1), _unit(1, 1, 0)]), k=2)) == {"b", "c"}  # each row finds its own product
    assert g.rank(np.stack([_unit(1, 0.1, 0)]), k=1) == ["a"]


def test_grayworld_removes_a_colour_cast_and_keeps_a_grey_image():
    grey = np.full((4, 4, 3), 120, np.uint8)
    assert np.array_equal(grayworld(grey), grey)
    cast = grey.astype(np.float32) * np.asarray([1.3, 1.0, 0.7])
    balanced = grayworld(cast.astype(np.uint8)).reshape(-1, 3).mean(axis=0)
    assert np.ptp(balanced) <= 1.0


def test_variants_combine_the_rows_they_name():
    rows = {"base": np.zeros((52, 4)), "flip": np.ones((52, 4)), "grayworld": np.zeros((52, 4)), "scene": np.zeros((149, 4))}
    assert VARIANTS["base+flip"](rows).shape == (104, 4)
    assert VARIANTS["base+flip224"](rows).shape == (54, 4) and VARIANTS["base+flip224"](rows)[52:].min() == 1
    assert VARIANTS["base+scene"](rows).shape == (201, 4)
