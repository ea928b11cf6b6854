"""The pieces of the shopper-photo projection training (synthetic photos, regions, fitting, export);
small and CPU-only (the backbone is exercised only by the end-to-end run at the bottom)."""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest
from PIL import Image

from services.encoders.training import shopper_synth as synth
from services.encoders.training import visual_regions as vr
from services.encoders.training import visual_shopper as vs


def _studio(colour=(200, 20, 20)) -> Image.Image:
    im = Image.new("RGB", (200, 200), "white")
    im.paste(Image.new("RGB", (120, 80), colour), (40, 60))
    return im


def test_shopper_photo_pastes_the_product_inside_its_box_and_is_deterministic():
    scene = Image.new("RGB", (400, 300), (20, 20, 200))
    a = synth.shopper_photo(_studio(), scene, random.Random(3))
    b = synth.shopper_photo(_studio(), scene, random.Random(3))
    assert a is not None and b is not None
    assert a.box == b.box and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    x0, y0, x1, y1 = a.box
    assert 0 <= x0 < x1 <= synth.PHOTO_SIZE and 0 <= y0 < y1 <= synth.PHOTO_SIZE
    px = np.asarray(a.image).astype(int)
    red = (px[..., 0] > px[..., 2] + 40)  # product pixels (re-lit red) vs the blue room
    inside = np.zeros(red.shape, bool)
    inside[y0:y1, x0:x1] = True
    assert red[inside].mean() > 0.2
    assert red[~inside].mean() < 0.01  # nothing of the product (nor its white studio) outside the box
    white = px.min(axis=2) > 230
    assert white[inside].mean() < 0.05  # the studio white is cut away, not pasted


def test_shopper_photo_without_foreground_is_none():
    assert synth.shopper_photo(Image.new("RGB", (100, 100), "white"), Image.new("RGB", (300, 300)), random.Random(0)) is None


def test_scene_part_is_a_stable_hash_split():
    ids = [f"s{i:04d}" for i in range(200)]
    parts = [synth.scene_part(i) for i in ids]
    assert parts == [synth.scene_part(i) for i in ids]
    assert 60 < parts.count("train") < 140
    assert parts != [synth.scene_part(i, seed=1) for i in ids]


def test_regional_gem_is_the_gem_of_each_window():
    rng = np.random.default_rng(0)
    m = rng.random((8, 14, 14)).astype(np.float32)
    wins = vr.windows()
    assert len(wins) == 50
    out = vr.regional_gem(m, wins)
    for i in (0, 27, 49):
        y, x, s = wins[i]
        np.testing.assert_allclose(out[i], vr.gem(m[:, y : y + s, x : x + s]), rtol=1e-4)


def test_best_cover_finds_the_window_matching_the_box():
    wins = vr.windows()
    for i in (3, 30, 45):
        y, x, s = wins[i]
        box = (x * 32 + 4, y * 32 + 4, (x + s) * 32 - 4, (y + s) * 32 - 4)
        assert vr.best_cover(box, 448, wins) == i


def test_pca_whitening_whitens():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 20)) * np.linspace(0.1, 5, 20)
    mu, p = vs.pca_whitening(x, dim=10, shrinkage=1.0)
    z = (x - mu) @ p
    np.testing.assert_allclose(np.cov(z.T, bias=True), np.eye(10), atol=1e-3)


def test_gallery_subset_keeps_targets_and_siblings():
    rng = np.random.default_rng(0)
    sib = [np.array([1]), np.array([0]), np.array([], dtype=np.int64), np.array([], dtype=np.int64)] + [np.array([], dtype=np.int64)] * 16
    g, t = vs._gallery_subset(np.array([0, 3, 0]), 20, 6, rng, sib)
    assert len(g) == 6 and len(set(g.tolist())) == 6
    assert {0, 1, 3} <= set(g.tolist())
    assert [int(g[i]) for i in t] == [0, 3, 0]


def _toy(seed=0, n_gal=40, dim=32, n_q=240, noise_seed=None):
    """Gallery items in a low-variance subspace; queries = the item + a strong nuisance (the room)
    in the high-variance subspace, with one clean region among several cluttered ones."""
    rng = np.random.default_rng(seed)
    scale = np.r_[np.full(dim // 2, 0.3), np.full(dim // 2, 3.0)]
    gal = vr.l2n(rng.normal(size=(n_gal, dim)) * np.r_[np.ones(dim // 2), np.full(dim // 2, 0.3)])
    if noise_seed is not None:  # same gallery, other photos
        rng = np.random.default_rng(noise_seed)
    labels = rng.integers(0, n_gal, n_q)
    regs = np.empty((n_q, 4, dim), np.float32)
    for i, g in enumerate(labels):
        for r in range(4):
            regs[i, r] = gal[g] * (1.0 if r == 0 else 0.2) + rng.normal(size=dim) * scale * 0.3
    return vr.l2n(regs), np.zeros(n_q, np.int64), labels, gal.astype(np.float32)


def test_train_projection_learns_to_ignore_the_nuisance_and_is_deterministic():
    regs, pos, labels, gal = _toy()
    mu0, p0 = vs.pca_whitening(np.concatenate([gal, gal]), dim=16, shrinkage=0.5)
    cfg = vs.TrainConfig(epochs=8, lr=5e-3, batch_size=48, negatives=40, regions_per_step=0)
    mean, proj, losses = vs.train_projection(regs, pos, labels, gal, gal, mu0, p0, cfg, progress=False)
    assert losses[-1] < losses[0]
    test_regs, _, test_labels, test_gal = _toy(seed=0, n_q=80, noise_seed=99)
    assert np.array_equal(test_gal, gal)
    rel = [{int(g)} for g in test_labels]
    before = vs.ranks(list(test_regs), rel, gal, gal, mu0, p0)
    after = vs.ranks(list(test_regs), rel, gal, gal, mean, proj)
    assert (after == 0).mean() > (before == 0).mean() + 0.1
    again = vs.train_projection(regs, pos, labels, gal, gal, mu0, p0, cfg, progress=False)
    np.testing.assert_array_equal(again[1], proj)


def test_export_writes_the_visual_format_with_a_content_version(tmp_path):
    from safetensors.numpy import load_file

    mean, proj = np.arange(1280, dtype=np.float32), np.ones((1280, 512), np.float32)
    d = vs.export(tmp_path, mean, proj, {"metrics": {"x": 1}})
    blob = (d / "whitening.safetensors").read_bytes()
    assert d.name == f"visual-shop-{hashlib.sha1(blob).hexdigest()[:8]}"
    w = load_file(str(d / "whitening.safetensors"))
    assert w["mean"].shape == (1280,) and w["projection"].shape == (1280, 512) and w["projection"].dtype == np.float32
    card = json.loads((d / "visual.json").read_text())
    assert card["format"] == "homesearch-visual/1" and card["version"] == d.name
    assert card["windows"] == [5, 7, 9] and card["stride"] == 2 and card["dim"] == 512 and card["metrics"] == {"x": 1}


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as e:
        vs.build_parser().parse_args(["--help"])
    assert e.value.code == 0
    assert "--per-product" in capsys.readouterr().out


def test_strong_augmentation_keeps_the_product_in_its_box_and_differs_from_base():
    scene = Image.new("RGB", (400, 300), (20, 20, 200))
    a = synth.shopper_photo(_studio(), scene, random.Random(5), aug=synth.STRONG)
    b = synth.shopper_photo(_studio(), scene, random.Random(5), aug=synth.STRONG)
    base = synth.shopper_photo(_studio(), scene, random.Random(5))
    assert a is not None and b is not None and base is not None
    assert a.box == b.box and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    x0, y0, x1, y1 = a.box
    assert 0 <= x0 < x1 <= synth.PHOTO_SIZE and 0 <= y0 < y1 <= synth.PHOTO_SIZE
    assert not np.array_equal(np.asarray(a.image), np.asarray(base.image))


def test_eval_parts_hold_out_products_of_any_split_and_no_training_scene():
    from types import SimpleNamespace

    catalog = [{"id": f"p{i}"} for i in range(6)]
    line = SimpleNamespace(product_part={"p0": "dev", "p1": "train", "p2": "train", "p3": "test", "p4": "train", "p5": "train"})
    kind = SimpleNamespace(product_part={"p0": "train", "p1": "dev", "p2": "train", "p3": "train", "p4": "train", "p5": "train"})
    scenes = [{"id": f"s{i:04d}"} for i in range(40)]
    products, eval_scenes = vs.eval_parts(catalog, [line, kind], scenes, scene_seed=0)
    assert [p["id"] for p in products] == ["p0", "p1", "p3"]
    train_ids = {s["id"] for s in scenes if synth.scene_part(s["id"], 0) == "train"}
    assert eval_scenes and not train_ids & {s["id"] for s in eval_scenes}
    assert len(eval_scenes) + len(train_ids) == len(scenes)


def test_synth_heldout_metrics_rank_only_the_splits_held_out_products():
    from types import SimpleNamespace

    regs, _, labels, gal = _toy(seed=0, n_q=60, noise_seed=5)
    ids = np.array([f"p{g}" for g in labels])
    index = {f"p{g}": g for g in range(len(gal))}
    held = {f"p{g}" for g in range(0, len(gal), 3)}
    spl = SimpleNamespace(product_part={p: ("dev" if p in held else "train") for p in index})
    mu, proj = vs.pca_whitening(np.concatenate([gal, gal]), dim=16, shrinkage=0.5)
    got = vs.synth_heldout_metrics(regs, ids, spl, index, gal, gal, mu, proj)
    keep = [i for i, p in enumerate(ids) if p in held]
    want = vs.metrics(vs.ranks([regs[i] for i in keep], [{int(labels[i])} for i in keep], gal, gal, mu, proj))
    assert got == want and got["n"] == len(keep) < len(ids)


def test_normalise_scales_the_statistics_and_leaves_plain_gem_alone():
    rng = np.random.default_rng(0)
    gem_rows = vr.l2n(rng.random((50, 1280)).astype(np.float32))
    stats = rng.normal(3.0, 5.0, (50, 8)).astype(np.float32)
    rows = np.concatenate([gem_rows, stats], axis=1)
    sm, ss = vs.stats_normaliser(rows, 2.0)
    z = (stats - sm) * ss
    np.testing.assert_allclose(np.sqrt((z**2).sum(1)).mean(), 2.0, rtol=0.1)  # the statistics weigh ~ weight
    out = vs.normalise(rows.astype(np.float16), sm, ss, chunk=7)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), vr.l2n(np.concatenate([gem_rows, z], axis=1)), atol=2e-3)
    assert vs.normalise(gem_rows, None, None) is gem_rows


def test_block_stats_projection_is_servable(tmp_path):
    """Training's descriptors with `--block-stats 10,14`, normalised and projected, are the rows the
    served tower computes from the same pixels: global (index) and regional (query) rows, and the
    card + weights `export` writes load as such a visual head."""
    import torch

    pytest.importorskip("efficientnet_lite_pytorch")
    from services.encoders.models.block_stats import block_channels, block_stats_card, forward_with_blocks
    from services.encoders.models.effnet_image import EffNetImageEncoder
    from services.encoders.models.visual import load_visual

    enc0 = EffNetImageEncoder()  # the default head; its backbone stands in for the training ONNX session

    class TorchBackbone:
        def __call__(self, pixels):
            with torch.inference_mode():
                fmap, maps = forward_with_blocks(enc0.backbone, torch.stack(list(pixels)), (10, 14))
            return fmap.numpy(), [m.numpy() for m in maps]

    bb = TorchBackbone()
    photos = [synth.shopper_photo(_studio(c), Image.new("RGB", (500, 400), (90, 120, 60)), random.Random(i)).image
              for i, c in enumerate([(200, 20, 20), (20, 160, 40)])]
    idx_px = [vr.pad_square(_studio(c), 224) for c in [(200, 20, 20), (30, 30, 30), (240, 200, 10)]]
    whole = vs.global_descriptors(bb, idx_px)
    regs = vs.photo_regions(photos, bb)
    assert whole.shape == (3, 1888) and regs.shape == (2, 50, 1888)

    rng = np.random.default_rng(0)
    sm, ss = vs.stats_normaliser(np.concatenate([whole, regs[0]]), 2.0)
    mean, proj = rng.normal(0, 0.01, 1888).astype(np.float32), rng.normal(size=(1888, 512)).astype(np.float32)
    card = {"block_stats": block_stats_card((10, 14), block_channels(enc0.backbone, (10, 14)))}
    d = vs.export(tmp_path, mean, proj, card, stats=(sm, ss))
    head = load_visual(d)
    assert head is not None and head.card.stat_blocks == (10, 14) and head.card.stats_dim == 608

    def trained(x):
        return vr.l2n((vs.normalise(x, sm, ss) - mean) @ proj)

    enc = EffNetImageEncoder(visual_dir=d)
    assert enc.pass_blocks == (10, 14)
    with torch.inference_mode():
        served_whole = enc.graph_forward(torch.stack(idx_px), **enc.graph_extra_inputs(torch.stack(idx_px)))[1]
        served_regs = enc.visual_region_forward(torch.stack([vr.pad_square(p, 448) for p in photos]))
    np.testing.assert_allclose(served_whole.numpy(), trained(whole), atol=2e-4)
    np.testing.assert_allclose(served_regs.numpy(), trained(regs), atol=2e-4)


def test_visual_cards_with_bad_block_stats_are_refused(tmp_path):
    from services.encoders.models.visual import VisualFormatError, load_visual

    rng = np.random.default_rng(0)
    mean, proj = np.zeros(1888, np.float32), rng.normal(size=(1888, 512)).astype(np.float32)
    stats = (np.zeros(608, np.float32), np.ones(608, np.float32))
    good = {"blocks": [10, 14], "channels": [112, 192], "method": "mean-std-v1"}
    d = vs.export(tmp_path / "a", mean, proj, {"block_stats": {**good, "method": "mean-v0"}}, stats=stats)
    with pytest.raises(VisualFormatError, match="not implemented"):
        load_visual(d)
    d = vs.export(tmp_path / "b", mean, proj, {"block_stats": good})  # no stats_mean / stats_scale
    with pytest.raises(VisualFormatError, match="stats_mean"):
        load_visual(d)
    d = vs.export(tmp_path / "c", mean[:1280], proj[:1280], {"block_stats": good}, stats=stats)  # GeM-sized weights
    with pytest.raises(VisualFormatError, match="whitening shapes"):
        load_visual(d)


def test_block_stats_option_takes_lite0_blocks_only(capsys):
    assert vs.build_parser().parse_args(["--catalog", "c.jsonl", "--block-stats", "14,10"]).block_stats == (10, 14)
    with pytest.raises(SystemExit):
        vs.build_parser().parse_args(["--catalog", "c.jsonl", "--block-stats", "16"])
    assert "blocks 0..15" in capsys.readouterr().err


def test_one_ahead_keeps_order_runs_in_one_worker_and_reraises():
    """The synthesis runs a batch ahead in one worker thread: items keep their order, the source
    never runs on two threads (its RNG draws stay in order), and its errors reach the caller."""
    import threading

    threads = []

    def source():
        for i in range(5):
            threads.append(threading.current_thread().name)
            yield i

    assert list(vs._one_ahead(source())) == [0, 1, 2, 3, 4]
    assert len(set(threads)) == 1 and threads[0] != threading.current_thread().name

    def broken():
        yield 1
        raise ValueError("bad photo")

    with pytest.raises(ValueError, match="bad photo"):
        list(vs._one_ahead(broken()))


def test_synth_regions_are_the_seeded_photos_in_draw_order(tmp_path):
    """`synth_regions` (synthesis a batch ahead of the backbone) gives, for a seed, the regions of
    exactly the photos one `random.Random(seed)` draws in order: per_product rounds over the
    shuffled products, each on a drawn scene."""
    colours = {"a": (200, 20, 20), "b": (20, 160, 40), "c": (30, 30, 200)}
    for pid, c in colours.items():
        _studio(c).save(tmp_path / f"{pid}.png")
    products = [{"id": pid, "image": f"{pid}.png"} for pid in colours]
    scenes = [Image.new("RGB", (500, 400), (90, 120, 60)), Image.new("RGB", (400, 500), (150, 140, 130))]

    class MeanBackbone:  # stands in for Lite0: a 1280-channel map of the 14x14 grid from the pixels
        def __call__(self, pixels):
            x = np.stack([p.numpy() for p in pixels])
            cells = x.reshape(len(x), 3, 14, 32, 14, 32).mean(axis=(3, 5))
            return np.repeat(np.abs(cells), 427, axis=1)[:, :1280], []

    got = vs.synth_regions(products, tmp_path, scenes, MeanBackbone(), per_product=2, seed=3, progress=False, batch=4)
    rng = random.Random(3)
    want_ids, want_photos = [], []
    for _ in range(2):
        order = list(products)
        rng.shuffle(order)
        for p in order:
            s = synth.shopper_photo(Image.open(tmp_path / p["image"]), scenes[rng.randrange(2)], rng)
            want_ids.append(p["id"])
            want_photos.append(s.image)
    assert got["ids"].tolist() == want_ids
    np.testing.assert_array_equal(got["regs"], vs.photo_regions(want_photos, MeanBackbone()).astype(np.float16))
