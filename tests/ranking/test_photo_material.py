"""Photo material pieces without a service: the material words of catalog text and of English and
Chinese queries, the probe file (keyed by tower version, absent = off), the bounded boost, and the
implicit-material set (no material word left in the indexed text; only decisive categories)."""

from __future__ import annotations

import numpy as np
import pytest

from homesearch.evaluation.sets import implicit_material_queries, material_terms, strip_material_words
from services.ranking.fusion import FusedHit
from services.ranking.ingest.photo_material import MaterialProbe, main_photo_material, probe_for, probe_key
from services.ranking.material_words import label_of_product, labels_of_text, query_labels, stated_labels
from services.ranking.photo_boost import apply_material_boost, describe_material, material_match


@pytest.mark.parametrize(
    ("text", "labels"),
    [("oak veneer", ["wood"]), ("stainless steel", ["metal"]), ("clear glass, cork", ["glass", "wood"]),
     ("porcelain white", []), ("white stained oak effect", []), ("seagrass, black", ["rattan"]),
     ("Made from 100% cotton", ["fabric"]), ("chrome-plated", ["metal"]), ("white", [])],
)
def test_catalog_material_words(text, labels):
    assert labels_of_text(text) == labels


def test_cached_labels_are_handed_out_as_copies():
    # labels_of_text is cached per text: a caller that edits its list must not change the next answer
    first = labels_of_text("clear glass, cork")
    first.append("metal")
    assert labels_of_text("clear glass, cork") == ["glass", "wood"]
    p = {"title": "X Table", "attributes": {"color": "oak veneer", "material": "steel"}}
    stated_labels(p).clear()
    assert stated_labels(p) == ["wood", "metal"]


def test_training_label_prefers_the_color_attribute():
    p = {"title": "X Chair", "description": "Seat in polyester fabric.", "attributes": {"color": "beech"}}
    assert label_of_product(p) == "wood"
    assert label_of_product({"title": "X Chair", "description": "Seat in polyester fabric."}) == "fabric"
    assert label_of_product({"title": "X Chair", "attributes": {"color": "white"}}) is None


def test_query_material_words_english_and_chinese():
    assert query_labels("wooden chair") == ["wood"]
    assert query_labels("玻璃花瓶") == ["glass"]
    assert query_labels("藤编篮子") == ["rattan"]
    assert query_labels("不锈钢锅") == ["metal"]
    assert query_labels("白色沙发") == [] and query_labels("white sofa") == []


def _probe(tmp_path, key="img__vis") -> MaterialProbe:
    d = 4
    w = np.zeros((d, 2), np.float32)
    w[0, 0], w[1, 1] = 5.0, 5.0
    return MaterialProbe(key, ("wood", "metal"), np.zeros(d, np.float32), np.ones(d, np.float32), w, np.zeros(2, np.float32))


def test_probe_round_trip_and_absent_version_is_off(tmp_path):
    probe = _probe(tmp_path, probe_key("img", "vis"))
    probe.save(tmp_path / f"{probe.key}.npz")
    loaded = MaterialProbe.load(probe.key, tmp_path)
    assert loaded is not None and loaded.id == probe.id and loaded.labels == ("wood", "metal")
    assert probe_for("img", "vis", tmp_path) is not None
    assert probe_for("img", "other-visual", tmp_path) is None  # another tower version: estimate off
    assert probe_key("img", "") == "" and probe_for("img", "", tmp_path) is None
    # first photo = its vector + its first two visual rows (probe_features: rows, then the vector)
    est = main_photo_material(loaded, [np.zeros(2)], [np.array([1.0]), np.array([0.0])])
    assert est is not None and est[0][0] == "wood" and est[0][1] > 0.9
    assert main_photo_material(None, [np.zeros(2)], [np.ones(1), np.ones(1)]) is None
    assert main_photo_material(loaded, [np.zeros(5)], [np.ones(1), np.ones(1)]) is None  # wrong size: left out


def test_material_boost_is_bounded_and_reads_the_probability():
    wood = [{"name": "wood", "p": 0.9}]
    metal = [{"name": "metal", "p": 0.35}, {"name": "wood", "p": 0.3}]
    assert material_match(["wood"], wood, 0.7) == 1.0
    assert material_match(["wood"], metal, 0.7) == pytest.approx(0.3 / 0.7)
    assert material_match(["glass"], wood, 0.7) == 0.0
    hits = [FusedHit("a", 0.80, {"photo_material": metal}), FusedHit("b", 0.75, {"photo_material": wood}), FusedHit("c", 0.7, {})]
    out = apply_material_boost(hits, ["wood"], weight=0.2, full=0.7)
    assert [h.product_id for h in out] == ["b", "a", "c"]
    assert out[0].boosts["photo_material"] == pytest.approx(0.2) and "photo_material" not in out[2].boosts
    assert apply_material_boost(hits, [], 0.2, 0.7) is hits
    assert describe_material(wood) == "photo material: wood 90%" and "none" in describe_material(None)


def test_stated_material_beats_the_photo_estimate():
    """A product whose own text names its material is boosted by that statement, not by a probe
    that may be wrong; only unstated products are judged by their photo."""
    glass_photo = [{"name": "glass", "p": 0.95}]
    oak = {"title": "LISABO Table", "attributes": {"color": "ash veneer"}, "photo_material": glass_photo}
    glass = {"title": "GLIVARP Table", "attributes": {"color": "transparent glass, chrome-plated"},
             "photo_material": [{"name": "wood", "p": 0.9}]}
    unstated = {"title": "Table", "attributes": {"color": "white"}, "photo_material": glass_photo}
    assert stated_labels(oak) == ["wood"] and stated_labels(glass)[0] == "glass" and stated_labels(unstated) == []
    hits = [FusedHit("oak", 0.9, oak), FusedHit("glass", 0.8, glass), FusedHit("unstated", 0.7, unstated)]
    out = apply_material_boost(hits, ["glass"], weight=0.3, full=0.7)
    assert [h.product_id for h in out] == ["glass", "unstated", "oak"]
    assert "photo_material" not in next(h for h in out if h.product_id == "oak").boosts


def test_implicit_material_set_strips_every_material_word_and_keeps_decisive_categories():
    catalog = [
        {"id": "1", "title": "A Chair", "category": "Chair", "description": "Solid wood frame.", "attributes": {"color": "beech, white"}},
        {"id": "2", "title": "B Chair", "category": "Chair", "description": "Frame in powder-coated steel.", "attributes": {"color": "black"}},
        {"id": "3", "title": "C Chair", "category": "Chair", "description": "", "attributes": {"color": "rattan"}},
        {"id": "4", "title": "D Vase", "category": "Vase", "description": "Mouth-blown glass.", "attributes": {"color": "clear glass"}},
        {"id": "5", "title": "E Wine glass", "category": "Wine glass", "description": "", "attributes": {"color": "clear glass"}},
        {"id": "6", "title": "F Wine glass", "category": "Wine glass", "description": "Tempered.", "attributes": {"color": "grey"}},
    ]
    queries = implicit_material_queries(catalog)
    assert {q["text"]: q["relevant"] for q in queries} == {"metal chair": ["2"], "rattan chair": ["3"], "wooden chair": ["1"]}
    stripped = strip_material_words(catalog)
    assert stripped[0]["attributes"] == {"color": "white"} and stripped[0]["description"] == "frame."
    assert all(label_of_product(p) is None for p in stripped)
    assert "white" not in material_terms() and "stainless steel" in material_terms()
