"""Per-part shopper-photo metrics: a photo counts in every part its product belongs to."""

from __future__ import annotations

from homesearch.evaluation.photo_parts import by_part, photo_part_names


def test_parts_of_a_product():
    line = {"a": "train", "b": "dev", "c": "test", "d": "train"}
    typ = {"a": "train", "b": "train", "c": "train", "d": "test"}
    assert photo_part_names("a", line, typ) == ["tune"]
    assert photo_part_names("b", line, typ) == ["tune", "line-heldout"]
    assert photo_part_names("c", line, typ) == ["line-heldout", "line-test"]
    assert photo_part_names("d", line, typ) == ["type-heldout"]  # tuned on no photo of a held-out type


def test_hit_at_1_and_recall_at_10_per_part():
    line = {"a": "train", "c": "test"}
    typ = {"a": "train", "c": "train"}
    runs = {"q1": ["a", "x"], "q2": ["x"] * 9 + ["c"], "q3": []}
    qrels = {"q1": ["a"], "q2": ["c"], "q3": ["a"]}
    m = by_part(runs, qrels, line, typ)
    assert m["all"] == {"n": 3, "hit@1": 0.3333, "recall@10": 0.6667}
    assert m["tune"] == {"n": 2, "hit@1": 0.5, "recall@10": 0.5}
    assert m["line-test"] == {"n": 1, "hit@1": 0.0, "recall@10": 1.0}
