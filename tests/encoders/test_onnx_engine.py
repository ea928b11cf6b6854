"""ONNX engine: exported graphs reproduce the PyTorch towers, parity is enforced at export,
the cache is keyed by model version, and the torch engine keeps serving as the reference."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from services.encoders.models.spec import ModelSpec
from services.encoders.engines.onnx_export import (
    MIN_COSINE,
    OnnxParityError,
    parity_bar,
    export_image,
    export_text,
    graph_dir,
    load_exported,
    row_cosines,
)
from services.encoders.models.preprocess import ImagePreprocessor

MIXED_TEXTS = [
    "白色的现代沙发",
    "modern cabinet, white doors, gold handles",
    "带有金色拉手和白色柜门的现代风格橱柜",
    "oak dining table 橡木餐桌",
    "绿色 lamp for the bedroom 卧室",
    "KALLAX Shelving unit, white, 77x147 cm. 书架 with eight compartments for boxes and baskets.",
]


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    """The served default towers, cache as configured (prepare-models exports there)."""
    from services.encoders.serving.config import TritonSettings

    return TritonSettings().model_spec()


@pytest.mark.parametrize("mode", ["query", "passage"])
def test_text_graph_matches_pytorch_on_mixed_chinese_english(spec, mode):
    from services.encoders.engines.onnx_engine import OnnxTextEncoder

    onnx = OnnxTextEncoder(spec)
    ref = spec.build_text()
    got, want = onnx.encode(MIXED_TEXTS, mode).numpy(), ref.encode(MIXED_TEXTS, mode).numpy()
    bar = parity_bar(spec.text_precision)  # the served default is the int8 graph, its own version
    assert got.shape == want.shape == (len(MIXED_TEXTS), 384)
    assert row_cosines(got, want).min() >= bar
    single = onnx.encode(MIXED_TEXTS[2:3], mode).numpy()  # batch 1, other sequence length than the export
    assert row_cosines(single, want[2:3]).min() >= bar
    assert onnx.version == spec.text_version()
    assert (onnx.version == ref.version) == (spec.text_precision == "fp32")


def test_int8_text_graph_is_quantized_and_its_own_model_version(spec):
    """The int8 graph is made from the fp32 one (which keeps the 0.999 bar), has int8 weights,
    gives vectors close to but not equal to fp32's, and carries another version, so an index
    written with one precision is never queried with the other."""
    from dataclasses import replace

    from services.encoders.engines.onnx_engine import OnnxTextEncoder

    fp32_spec, int8_spec = replace(spec, text_precision="fp32"), replace(spec, text_precision="int8")
    fp32, int8 = export_text(fp32_spec), export_text(int8_spec)
    assert int8_spec.text_version() == fp32_spec.text_version() + "+int8w7" == int8.card["version"]
    assert graph_dir(int8_spec, "text") != graph_dir(fp32_spec, "text")
    assert graph_dir(int8_spec, "image") == graph_dir(fp32_spec, "image")  # the image tower is unchanged
    assert int8.card["quantized_from"] == fp32.directory.name and int8.card["precision"] == "int8"
    assert [m["node"] for m in int8.card["fp32_matmuls"]] == ["/bert/encoder/layer.4/output/dense/MatMul"]
    assert fp32.card["parity_min_cosine"] >= MIN_COSINE
    assert parity_bar("int8") <= int8.card["parity_min_cosine"] < 1.0
    assert int8.path.stat().st_size < 0.4 * fp32.path.stat().st_size  # weights stored as int8
    a = OnnxTextEncoder(fp32_spec).encode(MIXED_TEXTS, "passage").numpy()
    int8_encoder = OnnxTextEncoder(int8_spec)
    b = int8_encoder.encode(MIXED_TEXTS, "passage").numpy()
    cos = row_cosines(a, b)
    assert cos.min() >= parity_bar("int8") and cos.min() < 0.9999
    # activations are quantized per run, so each text runs alone: its vector does not depend on
    # the texts batched with it (a batched int8 run moves them by up to 0.005 in cosine)
    for texts in (MIXED_TEXTS[:2], MIXED_TEXTS[3:]):
        together = int8_encoder.encode(texts, "passage").numpy()
        alone = np.stack([int8_encoder.encode([t], "passage").numpy()[0] for t in texts])
        assert row_cosines(together, alone).min() >= 0.99999


def test_int8_precision_is_refused_where_it_cannot_be_served(spec):
    from dataclasses import replace

    from pydantic import ValidationError
    from services.encoders.engines.onnx_engine import build_text_encoder
    from services.encoders.serving.config import TritonSettings

    with pytest.raises(ValueError, match="needs the onnx engine"):
        build_text_encoder(replace(spec, text_precision="int8"), "torch")
    with pytest.raises(ValidationError, match="needs engine onnx"):
        TritonSettings(engine="torch", text_precision="int8")
    with pytest.raises(ValueError, match="text_precision must be one of"):
        ModelSpec(text_precision="int4")
    # auto: int8 for the default e5 tower on onnx; fp32 where torch serves or for a CLIP checkpoint
    assert TritonSettings().model_spec().text_precision == "int8"
    assert TritonSettings(engine="torch").model_spec().text_precision == "fp32"
    assert TritonSettings(text_precision="fp32").model_spec().text_precision == "fp32"
    assert TritonSettings(model_dir=Path("/nonexistent")).resolved_text_precision() == "fp32"
    assert TritonSettings(serving_backend="onnxruntime").model_spec().text_precision == "fp32"
    assert TritonSettings(device="gpu").resolved_text_precision() == "fp32"  # int8 was measured on CPU only
    assert TritonSettings(device="cpu").resolved_text_precision() == "int8"
    with pytest.raises(ValidationError, match="needs serving_backend python"):
        TritonSettings(serving_backend="onnxruntime", text_precision="int8")
    from services.encoders.serving.native_repository import render_native_repository

    with pytest.raises(ValueError, match="serves the fp32 text graph"):
        render_native_repository(TritonSettings(), Path("/nonexistent/repo"))
    round_trip = ModelSpec.from_params(replace(spec, text_precision="int8").to_params())
    assert round_trip.text_precision == "int8"


def test_image_graph_matches_pytorch_on_test_photos(spec, photos):
    from services.encoders.engines.onnx_engine import OnnxImageEncoder

    onnx = OnnxImageEncoder(spec)
    ref = spec.build_image()
    assert onnx.version == ref.version and onnx.pixel_spec == ref.pixel_spec
    pixels, ok, errors = ImagePreprocessor(ref.pixel_spec, torch.device("cpu"))(list(photos.values()))
    assert not errors and len(ok) == len(photos)
    got, want = onnx.encode_pixels(pixels).numpy(), ref.encode_pixels(pixels).numpy()
    assert row_cosines(got, want).min() >= MIN_COSINE
    # the default head takes the colour histogram: the graph has it as a named extra input
    card = load_exported(spec, "image").card
    assert [e["name"] for e in card["extra_inputs"]] == (["COLOUR_HIST"] if ref.colour_hist_bins else [])


def test_cache_is_keyed_by_model_version_and_reused(spec, tmp_path):
    g = export_text(spec)
    assert g.path.is_file() and g.directory == graph_dir(spec, "text")
    assert spec.text_version() in g.directory.name
    mtime = g.path.stat().st_mtime_ns
    assert export_text(spec).path.stat().st_mtime_ns == mtime  # cached, not exported again
    other = ModelSpec(head_dir=None, cache_dir=spec.cache_dir,  # the random head: another image version
                      text_precision=spec.text_precision)
    assert graph_dir(other, "image") != graph_dir(spec, "image")
    assert graph_dir(other, "text") == graph_dir(spec, "text")


class _DriftingTower:
    """A tower whose exported network is not what it serves in PyTorch: export must refuse it."""

    def __init__(self) -> None:
        from services.encoders.models.base import PixelSpec

        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 8))
        self.pixel_spec = PixelSpec(size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        self.version, self.dim, self.device = "drifting-v0", 8, torch.device("cpu")
        self.graph_extra_input_specs: list = []

    def graph_extra_inputs(self, pixels: torch.Tensor) -> dict:
        return {}

    def graph_forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.net(pixels), dim=-1)

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.net(pixels).flip(-1), dim=-1)  # differs from the graph


def test_export_refuses_a_graph_that_differs_from_pytorch(tmp_path):
    spec = ModelSpec(head_dir=None, cache_dir=tmp_path)
    with pytest.raises(OnnxParityError, match="cosine"):
        export_image(spec, encoder=_DriftingTower())
    assert load_exported(spec, "image") is None
    assert not graph_dir(spec, "image").exists()


def test_pluggable_clip_directory_exports_with_parity(tmp_path, tiny_clip_dir):
    """The generic path: a CLIP tower has no graph_forward and is traced through encode_pixels."""
    from services.encoders.engines.onnx_engine import OnnxImageEncoder, OnnxTextEncoder

    spec = ModelSpec(model_dir=tiny_clip_dir, cache_dir=tmp_path)
    t, i = export_text(spec), export_image(spec)
    for g in (t, i):
        assert g.card["parity_min_cosine"] >= MIN_COSINE and g.card["version"] == spec.text_version()
        assert json.loads((g.directory / "graph.json").read_text())["opset"] == 17
    texts = ["white sofa", "白色沙发 with legs"]
    got = OnnxTextEncoder(spec).encode(texts, "query").numpy()
    want = spec.build_text().encode(texts, "query").numpy()
    assert row_cosines(got, want).min() >= MIN_COSINE
    ref = spec.build_image()
    px = torch.rand(3, 3, ref.pixel_spec.size, ref.pixel_spec.size) * 2 - 1
    assert row_cosines(OnnxImageEncoder(spec).encode_pixels(px).numpy(), ref.encode_pixels(px).numpy()).min() >= MIN_COSINE


@pytest.fixture(scope="module")
def torch_server() -> Iterator[object]:
    """A second tritonserver on the PyTorch reference engine (HOMESEARCH_TRITON_ENGINE=torch)."""
    from services.encoders.serving.launcher import TritonServer

    with TritonServer(http_port=0, grpc_port=0, metrics_port=0, device="cpu", engine="torch",
                      startup_timeout_s=240) as server:
        yield server


def test_torch_engine_serves_the_same_vectors_as_the_onnx_default(torch_server, encoder_client, photos):
    """Same images and image version; the default text graph is int8 (auto), so its vectors are
    close to the torch tower's fp32 ones but not the same, and its text version says so."""
    from services.encoders.client import EncoderClient, InvalidInputError

    imgs = list(photos.values())
    with EncoderClient(torch_server.grpc_url, timeout_s=120) as ref:
        torch_info, onnx_info = ref.model_info(), encoder_client.model_info()
        assert (torch_info.image_version, torch_info.visual_version, torch_info.dim) == (
            onnx_info.image_version, onnx_info.visual_version, onnx_info.dim)
        assert onnx_info.text_version == torch_info.text_version + "+int8w7"
        assert torch_info.model_version != onnx_info.model_version  # an index never mixes the two
        for mode in ("query", "passage"):
            a = ref.embed_texts(MIXED_TEXTS, mode)
            b = encoder_client.embed_texts(MIXED_TEXTS, mode)
            assert row_cosines(a, b).min() >= parity_bar("int8")
        assert row_cosines(ref.embed_images(imgs), encoder_client.embed_images(imgs)).min() >= MIN_COSINE
        with pytest.raises(InvalidInputError) as ei:  # same input policy on the torch engine
            ref.embed_texts(["ok", "   "], "query")
        assert ei.value.index == 1


def test_torch_engine_serves_the_same_visual_rows_as_the_onnx_default(torch_server, encoder_client, photos):
    """The visual descriptor on the PyTorch reference engine: same index rows, same query regions,
    same scene windows."""
    from services.encoders.client import EncoderClient

    imgs = list(photos.values())
    with EncoderClient(torch_server.grpc_url, timeout_s=120) as ref:
        assert ref.model_info().visual_version == encoder_client.model_info().visual_version != ""
        assert ref.model_info().image_version == encoder_client.model_info().image_version
        (a, ea), (b, eb) = ref.embed_images_visual(imgs, "index"), encoder_client.embed_images_visual(imgs, "index")
        assert a.shape == b.shape == (len(imgs), 2, 512)
        assert row_cosines(a.reshape(-1, 512), b.reshape(-1, 512)).min() >= MIN_COSINE
        assert row_cosines(ea, eb).min() >= MIN_COSINE
        qa, qb = ref.embed_images_visual(imgs[:2], "query")[0], encoder_client.embed_images_visual(imgs[:2], "query")[0]
        assert qa.shape == qb.shape == (2, 50, 512)
        assert row_cosines(qa.reshape(-1, 512), qb.reshape(-1, 512)).min() >= MIN_COSINE
        # shop the look: the 149 windows of one 640 px pass (models.scene_windows)
        (sa, ta), (sb, tb) = ref.embed_images_visual(imgs[:2], "scene"), encoder_client.embed_images_visual(imgs[:2], "scene")
        assert sa.shape == sb.shape == (2, 149, 512)
        assert row_cosines(sa.reshape(-1, 512), sb.reshape(-1, 512)).min() >= MIN_COSINE
        # and the same windows' text-space vectors (the head on each window, scene_search's type term)
        dim = encoder_client.model_info().dim
        assert ta.shape == tb.shape == (2, 149, dim)
        assert row_cosines(ta.reshape(-1, dim), tb.reshape(-1, dim)).min() >= MIN_COSINE


def test_rendered_repository_carries_the_engine_switch(tmp_path, monkeypatch):
    from google.protobuf import text_format
    from services.encoders.serving.config import TritonSettings
    from services.encoders.serving.repository import render_repository
    from tritonclient.grpc import model_config_pb2 as mc

    monkeypatch.setenv("HOMESEARCH_TRITON_ENGINE", "torch")
    render_repository(TritonSettings(image_head=None), tmp_path / "t", kind="KIND_CPU")
    monkeypatch.delenv("HOMESEARCH_TRITON_ENGINE")
    render_repository(TritonSettings(image_head=None), tmp_path / "o", kind="KIND_CPU")
    for sub, engine in (("t", "torch"), ("o", "onnx")):
        for name in ("text_encoder", "image_encoder"):
            cfg = text_format.Parse((tmp_path / sub / name / "config.pbtxt").read_text(), mc.ModelConfig())
            assert cfg.parameters["engine"].string_value == engine
            assert int(cfg.parameters["intra_threads"].string_value) >= 1
    text = text_format.Parse((tmp_path / "o" / "text_encoder" / "config.pbtxt").read_text(), mc.ModelConfig())
    image = text_format.Parse((tmp_path / "o" / "image_encoder" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert text.parameters["intra_threads"].string_value == "1"  # latency default
    assert text.dynamic_batching.max_queue_delay_microseconds == 0
    assert image.dynamic_batching.max_queue_delay_microseconds == 2000


def test_model_files_stand_alone():
    """Each model.py is a complete Triton model (issue 15), not a re-export."""
    from services.encoders.serving.repository import TEMPLATE_DIR

    for name in ("text_encoder", "image_encoder"):
        src = (TEMPLATE_DIR / name / "1" / "model.py").read_text(encoding="utf-8")
        assert "class TritonPythonModel" in src and "def execute" in src and "def initialize" in src
        assert len(src.splitlines()) > 50
