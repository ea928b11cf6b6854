import numpy as np
import pytest

from homesearch.evaluation import fusion
from homesearch.evaluation.baselines import BM25, TfIdf, image_to_image_scores, image_to_image_task, tokenize


def test_normalise_formulas_hand_computed():
    x = np.array([[0.9, 0.5, 0.1, 0.3]])
    mm = fusion.normalise(x, "minmax", depth=3)  # top-3 = .9 .5 .3
    assert mm[0] == pytest.approx([1.0, 1 / 3, 0.0, 0.0])
    z = fusion.normalise(x, "zscore", depth=3)
    mu, sd = np.mean([0.9, 0.5, 0.3]), np.std([0.9, 0.5, 0.3])
    assert z[0] == pytest.approx([(0.9 - mu) / sd, (0.5 - mu) / sd, (0.3 - mu) / sd, (0.3 - mu) / sd])
    r = fusion.normalise(x, "rrf", depth=3)
    assert r[0] == pytest.approx([1 / 61, 1 / 62, 0.0, 1 / 63])
    raw = fusion.normalise(x, "raw", depth=2)
    assert raw[0] == pytest.approx([0.9, 0.5, 0.5, 0.5])


def test_calibration_stops_the_wide_signal_dominating():
    # signal a ranks item 0 first with tiny spread, b ranks item 1 first with huge spread
    a = np.array([[0.52, 0.50, 0.49]])
    b = np.array([[0.0, 0.9, 0.1]])
    raw = fusion.fuse({"a": a, "b": b}, {"a": 0.7, "b": 0.3}, "raw")
    mm = fusion.fuse({"a": a, "b": b}, {"a": 0.7, "b": 0.3}, "minmax")
    assert raw.argmax() == 1 and mm.argmax() == 0


def test_weight_grid_sums_to_one():
    g = fusion.weight_grid(["a", "b", "c"], 0.25)
    assert len(g) == 15 and all(abs(sum(w.values()) - 1) < 1e-9 for w in g)


def test_bm25_and_tfidf_rank_the_matching_doc_first():
    docs = ["white pine bed", "black oak table", "white table lamp"]
    for m in (BM25(docs), TfIdf(docs)):
        s = m.scores(["oak table", "pine bed"])
        assert s[0].argmax() == 1 and s[1].argmax() == 0
    assert tokenize("KURA Bed, 90x200 cm") == ["kura", "bed", "90x200", "cm"]


def test_image_to_image_task_excludes_self():
    prods = [{"id": "a", "category": "Bed", "attributes": {"color": "white"}},
             {"id": "b", "category": "Bed", "attributes": {"color": "white"}},
             {"id": "c", "category": "Lamp", "attributes": {"color": "white"}}]
    qi, rel = image_to_image_task(prods)
    assert qi == [0, 1] and rel == [["b"], ["a"]]
    s = image_to_image_scores(np.eye(3), qi)
    assert np.isneginf(s[0, 0]) and np.isneginf(s[1, 1])
