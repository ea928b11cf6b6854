"""Shipped image heads: the default head through Triton equals the training pipeline's vectors
(its block-statistics and colour-histogram inputs included), and the earlier heads (1280-d input
only; colour histogram only, under the opt-in ConSE head) still load and serve exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.encoders.helpers import IKEA

pytest.importorskip("efficientnet_lite_pytorch")

HEADS = Path(__file__).resolve().parents[2] / "services" / "encoders" / "heads"
DEFAULT_HEAD = HEADS / "default"
PREVIOUS_HEAD = HEADS / "head-lite0-v1-0512a3de"  # shipped before colour-histogram heads; kept
COLOUR_HEAD = HEADS / "head-lite0-v1-97b9be8b"  # the default until stop 30: colour histogram, no block statistics
ZERO_SHOT_HEAD = HEADS / "head-lite0-v1-13c898c7"  # COLOUR_HEAD's MLP + the ConSE part (opt-in, docs/evaluation.md)


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def training_pipeline_vectors(head_dir: Path, tmp_path: Path, monkeypatch) -> tuple[list[bytes], np.ndarray]:
    """Vectors of the test photos as `homesearch train` computes them (pad view features, with the
    card's block statistics, from the training feature extractor, its colour histograms, the
    training-side head loader)."""
    monkeypatch.setenv("HOMESEARCH_CACHE", str(tmp_path / "cache"))
    from services.encoders.training import features as F
    from services.encoders.training.head import load_head
    from services.encoders.training.train import embed_images

    paths = sorted(IKEA.glob("*.jpg"))
    products = [{"id": p.stem, "image": p.name} for p in paths]
    head, card = load_head(head_dir)
    blocks = tuple(card.get("block_stats", {}).get("blocks", ()))
    views = F.extract_views(products, IKEA, use_cache=False, progress=False, blocks=blocks)[:, 0]  # the served (pad) view
    bins = int(card.get("colour_hist_bins", 0))
    assert bins == int(card["settings"]["colour_hist_bins"])
    inputs = np.concatenate([views, F.colour_histograms_of_files(paths, bins)], axis=1) if bins else views
    return [p.read_bytes() for p in paths], embed_images(head, inputs)


def test_default_head_through_triton_matches_training_pipeline(encoder_client, tmp_path, monkeypatch):
    card = json.loads((DEFAULT_HEAD / "head.json").read_text())
    assert encoder_client.model_info().image_version == f"effnet-lite0+{card['version']}"
    imgs, trained = training_pipeline_vectors(DEFAULT_HEAD, tmp_path, monkeypatch)
    served = encoder_client.embed_images(imgs)
    assert cos(served, trained).min() >= 0.999


def test_default_head_takes_block_statistics_and_the_colour_histogram():
    """The shipped default reads blocks 10 and 14's statistics and the colour histogram
    (docs/evaluation.md, "Middle-block statistics for the image head")."""
    from services.encoders.models.image_head import HeadCard

    card = HeadCard.read(DEFAULT_HEAD)
    assert card.colour_hist_bins == 4 and card.stat_blocks == (10, 14)
    assert card.input_dim == 1280 + 2 * (112 + 192) + 64


def test_previous_head_loads_and_serves_as_before_in_process(tmp_path, monkeypatch):
    from services.encoders.models.effnet_image import EffNetImageEncoder
    from services.encoders.models.preprocess import ImagePreprocessor

    enc = EffNetImageEncoder(head_dir=PREVIOUS_HEAD)
    assert enc.version == "effnet-lite0+head-lite0-v1-0512a3de"
    assert enc.colour_hist_bins == 0 and enc.head.card.input_dim == 1280
    imgs, trained = training_pipeline_vectors(PREVIOUS_HEAD, tmp_path, monkeypatch)
    pixels, _, _ = ImagePreprocessor(enc.pixel_spec, torch.device("cpu"))(imgs)
    assert torch.equal(enc.head_inputs(pixels), enc.features(pixels))  # no extra inputs
    assert cos(enc.encode_pixels(pixels).numpy(), trained).min() >= 0.9999


def _served_by_triton(head_dir: Path, imgs: list[bytes], tmp_path: Path) -> tuple[str, np.ndarray]:
    """(image version, vectors) of ``imgs`` from a private Triton serving ``head_dir``."""
    from services.encoders.client import EncoderClient
    from services.encoders.serving.launcher import TritonNotFoundError, TritonServer, UnsupportedPlatformError

    server = TritonServer(http_port=0, grpc_port=0, metrics_port=0, device="cpu", startup_timeout_s=240,
                          image_head=head_dir, work_dir=tmp_path / "work")
    try:
        server.start()
    except (TritonNotFoundError, UnsupportedPlatformError) as e:
        pytest.skip(f"tritonserver unavailable here: {e}")
    try:
        with EncoderClient(server.grpc_url, timeout_s=120) as client:
            return client.model_info().image_version, client.embed_images(imgs)
    finally:
        server.stop()


def test_previous_head_serves_through_triton(tmp_path, monkeypatch):
    imgs, trained = training_pipeline_vectors(PREVIOUS_HEAD, tmp_path, monkeypatch)
    version, served = _served_by_triton(PREVIOUS_HEAD, imgs, tmp_path)
    assert version == "effnet-lite0+head-lite0-v1-0512a3de"
    assert cos(served, trained).min() >= 0.9999


def test_zero_shot_head_is_the_colour_head_mlp_plus_conse(photos):
    """The opt-in ConSE head (HOMESEARCH_IMAGE_HEAD) keeps the colour-histogram head's MLP exactly
    and adds the zero-shot term: its vectors differ from that head's, but stay close in direction."""
    from services.encoders.models.effnet_image import EffNetImageEncoder
    from services.encoders.models.preprocess import ImagePreprocessor

    default, zs = EffNetImageEncoder(head_dir=COLOUR_HEAD), EffNetImageEncoder(head_dir=ZERO_SHOT_HEAD)
    assert default.head.zs is None and zs.head.zs is not None and zs.version == "effnet-lite0+head-lite0-v1-13c898c7"
    assert zs.head.card.zero_shot["method"] == "conse-v1" and zs.head.zs_mix > 0
    assert torch.equal(default.head.fc1.weight, zs.head.fc1.weight)
    pixels, _, _ = ImagePreprocessor(default.pixel_spec, torch.device("cpu"))([photos[n] for n in sorted(photos)])
    c = cos(default.encode_pixels(pixels).numpy(), zs.encode_pixels(pixels).numpy())
    assert (c > 0.5).all() and (c < 0.9999).all()


def test_zero_shot_head_through_triton_matches_training_pipeline(tmp_path, monkeypatch):
    """Served by Triton (ONNX engine, export parity-checked against torch), the ConSE head gives
    the training pipeline's vectors."""
    imgs, trained = training_pipeline_vectors(ZERO_SHOT_HEAD, tmp_path, monkeypatch)
    version, served = _served_by_triton(ZERO_SHOT_HEAD, imgs, tmp_path)
    assert version == "effnet-lite0+head-lite0-v1-13c898c7"
    assert cos(served, trained).min() >= 0.999
