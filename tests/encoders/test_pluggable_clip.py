"""Pluggable CLIP-family checkpoints: tiny random HF checkpoints made here serve both towers."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from services.encoders.client import EncoderClient, InvalidInputError
from services.encoders.models.spec import ModelSpec
from services.encoders.models.preprocess import ImagePreprocessor
from PIL import Image

from tests.encoders.helpers import encode_as
from tests.encoders.tiny_checkpoints import PROJECTION_DIM, make_tiny_chinese_clip

TEXTS = ["白色的现代沙发", "modern chair with gold handles", "绿色 lamp"]


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module")
def small_photo(photos) -> bytes:
    img = Image.open(io.BytesIO(photos["002.806.37.jpg"]))
    img.thumbnail((128, 128))
    return encode_as(img, "JPEG", quality=90)


@pytest.fixture(scope="module")
def clip_server(tiny_clip_dir) -> Iterator[object]:
    """A second tritonserver serving the tiny CLIP, with small configurable input limits."""
    from services.encoders.serving.launcher import TritonServer

    with TritonServer(
        model_dir=tiny_clip_dir,
        http_port=0,
        grpc_port=0,
        metrics_port=0,
        device="cpu",
        max_text_chars=50,
        max_image_bytes=6000,
        max_image_pixels=40_000,
        startup_timeout_s=240,
    ) as server:
        yield server


def test_chinese_clip_checkpoint_loads_in_process(tmp_path, small_photo):
    d = make_tiny_chinese_clip(tmp_path / "tiny-cn-clip")
    spec = ModelSpec(model_dir=d)
    assert spec.family == "chinese_clip" and spec.dim() == PROJECTION_DIM
    assert spec.text_version().startswith("chinese_clip:tiny-cn-clip#")
    t = spec.build_text().encode(TEXTS, "query")
    img = spec.build_image()
    px, ok, _ = ImagePreprocessor(img.pixel_spec, torch.device("cpu"))([small_photo])
    i = img.encode_pixels(px)
    assert t.shape == (3, PROJECTION_DIM) and i.shape == (1, PROJECTION_DIM)
    assert torch.allclose(t.norm(dim=1), torch.ones(3), atol=1e-5)


def test_openclip_layout_gives_a_clear_error(tmp_path):
    from services.encoders.models.clip_models import CheckpointError

    (tmp_path / "open_clip_config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="OpenCLIP"):
        ModelSpec(model_dir=tmp_path).text_version()


def test_clip_checkpoint_serves_both_towers_through_triton(clip_server, tiny_clip_dir, small_photo):
    spec = ModelSpec(model_dir=tiny_clip_dir)
    with EncoderClient(clip_server.grpc_url, timeout_s=60) as client:
        info = client.model_info()
        assert info.dim == PROJECTION_DIM
        assert info.text_version == info.image_version == spec.text_version()
        assert info.text_version.startswith("clip:tiny-clip#")
        served_t = client.embed_texts(TEXTS, "query")
        served_i = client.embed_images([small_photo, small_photo])
    direct_t = spec.build_text().encode(TEXTS, "query").numpy()
    img = spec.build_image()
    px, _, _ = ImagePreprocessor(img.pixel_spec, torch.device("cpu"))([small_photo])
    direct_i = img.encode_pixels(px).numpy()
    assert served_t.shape == (3, PROJECTION_DIM) and served_i.shape == (2, PROJECTION_DIM)
    assert cos(served_t, direct_t).min() >= 0.999
    assert cos(served_i, direct_i).min() >= 0.999


def test_configurable_limits(clip_server, photos, small_photo):
    with EncoderClient(clip_server.grpc_url, timeout_s=60) as client:
        with pytest.raises(InvalidInputError, match="limit is 50") as ei:
            client.embed_texts(["ok", "y" * 51], "passage")
        assert ei.value.index == 1
        with pytest.raises(InvalidInputError, match="bytes, limit is 6000") as ei:
            client.embed_images([small_photo, photos["902.696.97.jpg"]])  # 7.4 kB
        assert ei.value.index == 1
        big = encode_as(Image.new("RGB", (300, 300), "white"), "PNG")  # tiny file, 90k pixels
        with pytest.raises(InvalidInputError, match="pixels, limit is 40000") as ei:
            client.embed_images([big])
        assert ei.value.index == 0
        assert client.embed_images([small_photo]).shape == (1, PROJECTION_DIM)
