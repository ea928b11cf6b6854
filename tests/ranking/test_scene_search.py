"""Shop the look on the visual descriptor: the boxes the ranking service gives each scene row
are the windows the image graph pools, and the hubness-corrected scores are what the doc says
(``cos - mean of the top-k cosines to the dev bank``, a product's best photo)."""

from __future__ import annotations

import numpy as np
import pytest

from services.encoders.models.scene_windows import (
    SCENE_CELLS,
    SCENE_SIZE,
    SCENE_STRIDE,
    SCENE_WINDOWS,
    scene_boxes,
    scene_region_count,
    window_boxes,
)
from services.ranking.scene_search import HubBank, foreground_rows, hub_scores, load_type_centre, score_windows


def test_scene_geometry_is_149_windows_of_a_20x20_map():
    assert SCENE_SIZE == 640 and SCENE_CELLS == 20 and SCENE_WINDOWS == (5, 7, 9) and SCENE_STRIDE == 2
    assert scene_region_count() == 64 + 49 + 36 == 149


def test_box_of_each_row_is_the_window_the_graph_pools():
    """Row r of ``regional_gem`` (what the scene graph outputs, before whitening) is GeM over
    exactly the cells of box r, for a map whose every cell is different."""
    torch = pytest.importorskip("torch")
    from services.encoders.models.visual import regional_gem

    g = torch.Generator().manual_seed(0)
    fmap = torch.rand((1, 6, SCENE_CELLS, SCENE_CELLS), generator=g) * 3 + 0.01
    rows = regional_gem(fmap, SCENE_WINDOWS, SCENE_STRIDE, p=3.0)[0]
    boxes = window_boxes(SCENE_CELLS, SCENE_WINDOWS, SCENE_STRIDE)
    assert rows.shape[0] == len(boxes) == 149
    for r, (x0, y0, x1, y1) in enumerate(boxes):
        c0, r0, c1, r1 = (round(v * SCENE_CELLS) for v in (x0, y0, x1, y1))
        want = fmap[0, :, r0:r1, c0:c1].pow(3).mean(dim=(1, 2)).pow(1 / 3)
        assert torch.allclose(rows[r], want, rtol=1e-4), r
    # a window whose cells differ from its neighbour's really gives another row
    assert not torch.allclose(rows[0], rows[1])


def test_visual_head_scene_rows_use_the_same_windows():
    torch = pytest.importorskip("torch")
    from services.encoders.models.visual import DEFAULT_VISUAL_DIR, load_visual

    head = load_visual(DEFAULT_VISUAL_DIR)
    if head is None:
        pytest.skip("no visual head installed")
    fmap = torch.rand((2, 1280, SCENE_CELLS, SCENE_CELLS))
    # the shipped rows also read middle-block statistics: the block maps of the same pass, as many
    # times finer than the last map (stride 32) as Lite0's stages make them (blocks 5-10 at stride 16:
    # twice the cells; 11-15 as many; 3-4 at stride 8; 1-2 at stride 4)
    def finer(b: int) -> int:
        return 1 if b >= 11 else 2 if b >= 5 else 4 if b >= 3 else 8

    channels = head.card.block_stats.get("channels", [])
    maps = [torch.randn((2, c, SCENE_CELLS * finer(b), SCENE_CELLS * finer(b)))
            for b, c in zip(head.card.stat_blocks, channels)]
    if maps:
        with pytest.raises(ValueError, match="block statistics"):
            head.scene_rows(fmap)
    out = head.scene_rows(fmap, maps)
    assert out.shape == (2, scene_region_count(), head.card.dim)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2, scene_region_count()), atol=1e-4)


def test_scene_boxes_map_the_padded_square_back_to_the_photo():
    square = scene_boxes(1000, 1000)
    np.testing.assert_allclose(square, window_boxes(SCENE_CELLS, SCENE_WINDOWS, SCENE_STRIDE))
    # landscape 2:1 -> 640x320 centred: rows 0..159 and 480..639 of the square are padding
    wide = scene_boxes(1200, 600)
    first = wide[0]  # cells x 0..5, y 0..5 = 0..160 px: entirely in the top padding -> clipped to y = 0
    assert first == pytest.approx((0.0, 0.0, 0.25, 0.0))
    mid = wide[64 + 49 + 3 * 6 + 2]  # 9-cell window at x = 4 cells, y = 6 cells: 128..416 x 192..480 px
    assert mid == pytest.approx((128 / 640, (192 - 160) / 320, 416 / 640, (480 - 160) / 320))
    for b in wide:
        assert 0.0 <= b[0] <= b[2] <= 1.0 and 0.0 <= b[1] <= b[3] <= 1.0
    with pytest.raises(ValueError):
        scene_boxes(0, 10)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_hub_score_is_mean_of_top_k_cosines_to_the_bank():
    rng = np.random.default_rng(1)
    bank, rows = _unit(rng.normal(size=(300, 16))), _unit(rng.normal(size=(5, 16)))
    got = hub_scores(rows, bank, k=20)
    for i in range(5):
        want = np.sort(bank @ rows[i])[-20:].mean()
        assert got[i] == pytest.approx(want, abs=1e-6)
    assert hub_scores(rows, bank, k=1000) == pytest.approx((rows @ bank.T).mean(axis=1), abs=1e-6)


def test_corrected_score_is_cos_minus_hub_of_the_best_photo():
    rng = np.random.default_rng(2)
    bank = _unit(rng.normal(size=(200, 8)))
    windows = _unit(rng.normal(size=(4, 8)))
    a = _unit(rng.normal(size=(1, 8)))
    b = _unit(rng.normal(size=(2, 8)))  # two photos
    hub = HubBank(bank, "v", k=10)
    sc = score_windows(windows, {"a": a, "b": b, "none": np.zeros((0, 8))}, hub)
    assert sc.ids == ["a", "b"]  # a product without rows is no candidate
    ha, hb = hub_scores(a, bank, 10), hub_scores(b, bank, 10)
    np.testing.assert_allclose(sc.scores[:, 0], windows @ a[0] - ha[0], atol=1e-6)
    per_photo = windows @ b.T - hb[None, :]
    np.testing.assert_allclose(sc.scores[:, 1], per_photo.max(axis=1), atol=1e-6)
    chosen = per_photo.argmax(axis=1)
    np.testing.assert_allclose(sc.cosine[:, 1], (windows @ b.T)[np.arange(4), chosen], atol=1e-6)
    # the correction changes the order: a hub (close to every bank window) drops below a product
    # the bank does not resemble, although the window is closer to the hub
    h, o = np.eye(8)[0], np.eye(8)[1]
    crowd = HubBank(_unit(h + 0.1 * rng.normal(size=(200, 8)) * (1 - o)), "v", k=10)
    w = _unit(0.55 * h + 0.45 * o)[None]
    raw = score_windows(w, {"o": o[None], "hub": h[None]}, HubBank(None, "v"))
    fixed = score_windows(w, {"o": o[None], "hub": h[None]}, crowd)
    assert raw.scores[0, 1] > raw.scores[0, 0] and fixed.scores[0, 0] > fixed.scores[0, 1]
    # cached hub scores are the same numbers
    np.testing.assert_allclose(hub.hubs(b), hb, atol=1e-6)


def test_no_bank_means_no_correction_and_foreground_rows_are_the_odd_rows():
    hub = HubBank.load("no-such-visual-version")
    assert not hub.active and hub.hubs(np.ones((3, 4))).tolist() == [0.0, 0.0, 0.0]
    stored = [[0.0] * 3, [1.0] * 3, [2.0] * 3, [3.0] * 3]  # whole, fg, whole, fg
    assert foreground_rows(stored).tolist() == [[1.0] * 3, [3.0] * 3]
    assert foreground_rows(None).shape == (0, 0)


def test_the_shipped_bank_matches_the_default_visual_version():
    from services.encoders.models.visual import DEFAULT_VISUAL_DIR, visual_version

    version = visual_version(DEFAULT_VISUAL_DIR)
    if not version:
        pytest.skip("no visual head installed")
    hub = HubBank.load(version)
    assert hub.active, f"no scene bank shipped for {version} (homesearch.evaluation.scene_bank)"
    assert hub.bank.shape[1] == 512 and hub.bank.shape[0] % scene_region_count() == 0
    np.testing.assert_allclose(np.linalg.norm(hub.bank, axis=1), 1.0, atol=2e-3)


def test_type_term_adds_weighted_centred_text_space_similarity_of_the_chosen_photo():
    """score = cos - hub + w * (window type vector . product image row), best photo; the term
    reorders a window's products toward the one of the right type; a product whose image rows do
    not line up with its photos gets no term; weight 0 is the visual score alone."""
    rng = np.random.default_rng(3)
    bank = _unit(rng.normal(size=(100, 8)))
    hub = HubBank(bank, "v", k=10)
    windows = _unit(rng.normal(size=(3, 8)))
    types = rng.normal(size=(3, 5))
    vis = {"a": _unit(rng.normal(size=(1, 8))), "b": _unit(rng.normal(size=(2, 8))), "c": _unit(rng.normal(size=(1, 8)))}
    imgs = {"a": _unit(rng.normal(size=(1, 5))), "b": _unit(rng.normal(size=(2, 5))), "c": _unit(rng.normal(size=(3, 5)))}
    plain = score_windows(windows, vis, hub)
    assert plain.types is None
    same = score_windows(windows, vis, hub, window_types=types, product_images=imgs, type_weight=0.0)
    np.testing.assert_array_equal(same.scores, plain.scores)
    sc = score_windows(windows, vis, hub, window_types=types, product_images=imgs, type_weight=0.3)
    per_photo = windows @ vis["b"].T - hub_scores(vis["b"], bank, 10)[None, :] + 0.3 * types @ imgs["b"].T
    np.testing.assert_allclose(sc.scores[:, 1], per_photo.max(axis=1), atol=1e-6)
    np.testing.assert_allclose(sc.types[:, 1], (types @ imgs["b"].T)[np.arange(3), per_photo.argmax(axis=1)], atol=1e-6)
    np.testing.assert_allclose(sc.scores[:, 0], plain.scores[:, 0] + 0.3 * (types @ imgs["a"].T)[:, 0], atol=1e-6)
    np.testing.assert_allclose(sc.scores[:, 2], plain.scores[:, 2], atol=1e-6)  # 3 image rows for 1 photo: no term
    # the term decides between two products equally close on the visual rows
    w = _unit(np.ones((1, 8)))
    twin = {"lamp": w.copy(), "rug": w.copy()}
    t = np.eye(5)[:1]
    got = score_windows(w, twin, HubBank(None, "v"), window_types=t,
                        product_images={"lamp": np.eye(5)[:1], "rug": np.eye(5)[1:2]}, type_weight=0.3)
    assert got.scores[0, 0] == pytest.approx(got.scores[0, 1] + 0.3)


def test_the_shipped_type_centre_matches_the_default_image_tower():
    from services.encoders.models.spec import ModelSpec

    version = ModelSpec().image_version()
    centre = load_type_centre(version)
    assert centre is not None, f"no type centre shipped for {version} (homesearch.evaluation.scene_bank)"
    assert centre.shape == (384,) and centre.dtype == np.float32
    assert 0.1 < float(np.linalg.norm(centre)) < 1.0  # a mean of unit vectors, not one of them
    assert load_type_centre("no-such-image-version") is None
