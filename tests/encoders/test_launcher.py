"""Launcher: configuration, repository rendering and clear start-up errors (no mocks)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.protobuf import text_format
from services.encoders.serving.config import TritonSettings
from services.encoders.serving.launcher import (
    PortInUseError,
    TritonNotFoundError,
    TritonServer,
    _forward_line,
    locate_triton,
    server_environment,
)
from services.encoders.serving.repository import render_repository
from tritonclient.grpc import model_config_pb2 as mc


def test_port_in_use_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        server = TritonServer(grpc_port=busy, http_port=0, metrics_port=0, prepare=False)
        with pytest.raises(PortInUseError, match=f"grpc port {busy}.*already in use"):
            server.start()
        assert not server.is_running()


def test_missing_binary_is_a_clear_error(tmp_path):
    server = TritonServer(server_bin=tmp_path / "no" / "tritonserver", http_port=0, grpc_port=0, metrics_port=0)
    with pytest.raises(TritonNotFoundError, match="tritonserver binary not found"):
        server.start()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.encoders.serving.launcher", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_reports_missing_binary_and_exits_nonzero(tmp_path):
    out = _cli("--server-bin", str(tmp_path / "missing"), "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0", "--no-prepare")
    assert out.returncode == 1
    assert "tritonserver binary not found" in out.stderr


def test_cli_help():
    out = _cli("--help")
    assert out.returncode == 0 and "--grpc-port" in out.stdout and "--model-dir" in out.stdout


def test_env_prefix_and_flags_override(monkeypatch):
    monkeypatch.setenv("HOMESEARCH_TRITON_GRPC_PORT", "9101")
    monkeypatch.setenv("HOMESEARCH_TRITON_TEXT_INSTANCES", "3")
    monkeypatch.setenv("HOMESEARCH_MODEL_CACHE", "/tmp/hs-cache")
    s = TritonSettings()
    assert (s.grpc_port, s.text_instances, s.model_cache) == (9101, 3, Path("/tmp/hs-cache"))
    assert TritonSettings(grpc_port=9200).grpc_port == 9200


def test_wheel_layout_and_environment():
    install = locate_triton()
    assert install.server_bin.name == "tritonserver" and install.stub.is_file()
    env = server_environment(install, base={"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/x"})
    import sysconfig

    assert env["LD_LIBRARY_PATH"].split(":")[0] == sysconfig.get_config_var("LIBDIR")
    assert env["LD_LIBRARY_PATH"].endswith(":/x")
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)


def test_render_repository_cpu(tmp_path):
    s = TritonSettings(device="cpu", text_instances=2, max_batch_size=16, max_queue_delay_us=100, image_head=None)
    r = render_repository(s, tmp_path / "repo")
    assert r.kind == "KIND_CPU" and r.dim == 384
    assert r.image_version == "effnet-lite0+untrained-random-v0"
    for name, count in (("text_encoder", 2), ("image_encoder", 1)):
        cfg = text_format.Parse((tmp_path / "repo" / name / "config.pbtxt").read_text(), mc.ModelConfig())
        assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
        assert cfg.instance_group[0].count == count
        assert cfg.max_batch_size == 16 and cfg.dynamic_batching.max_queue_delay_microseconds == 100
        assert cfg.output[0].dims == [384]
        assert cfg.parameters["embedding_dim"].string_value == "384"
        assert (tmp_path / "repo" / name / "1" / "model.py").is_file()
    img = text_format.Parse((tmp_path / "repo" / "image_encoder" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert img.parameters["head_version"].string_value == "untrained-random-v0"


def test_render_repository_gpu_kind_is_explicit(tmp_path):
    r = render_repository(TritonSettings(), tmp_path / "repo", kind="KIND_GPU")
    cfg = text_format.Parse((tmp_path / "repo" / "image_encoder" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU and r.kind == "KIND_GPU"


def test_templates_in_git_are_valid_configs():
    from services.encoders.serving.repository import TEMPLATE_DIR

    for name in ("text_encoder", "image_encoder"):
        cfg = text_format.Parse((TEMPLATE_DIR / name / "config.pbtxt").read_text(), mc.ModelConfig())
        assert cfg.name == name and cfg.backend == "python" and cfg.dynamic_batching


def test_server_log_lines_become_records(caplog):
    caplog.set_level("DEBUG", logger="services.encoders.serving.tritonserver")
    _forward_line('E1126 19:18:43.838511 13852 model_lifecycle.cc:642] "failed to load"\n')
    _forward_line('{"ts": "x", "level": "warning", "logger": "m", "msg": "head missing", "head_version": "v0"}\n')
    _forward_line("plain line\n")
    recs = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("ERROR", "failed to load") in recs and ("WARNING", "head missing") in recs and ("INFO", "plain line") in recs
    assert caplog.records[1].head_version == "v0"


def test_metrics_endpoint_serves_prometheus_text(triton_server):
    import urllib.request

    with urllib.request.urlopen(triton_server.metrics_url, timeout=5) as resp:
        body = resp.read().decode()
    assert "nv_inference_request_success" in body


def test_cli_serves_until_sigterm_then_stops_cleanly(tmp_path):
    """`homesearch triton` runs in the foreground; SIGTERM stops tritonserver and its stubs."""
    import json
    import os
    import signal

    env = {**os.environ, "HOMESEARCH_LOG_FORMAT": "json", "HOMESEARCH_TRITON_DEVICE": "cpu"}
    cmd = [sys.executable, "-m", "services.encoders.serving.launcher", "--grpc-port", "0", "--http-port", "0",
           "--metrics-port", "0", "--work-dir", str(tmp_path / "work")]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    ready = None
    try:
        deadline = time.monotonic() + 240
        while ready is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            if line.startswith("{"):
                rec = json.loads(line)
                if rec.get("msg") == "tritonserver ready":
                    ready = rec
        assert ready is not None, "launcher never became ready"
        from services.encoders.client import EncoderClient

        with EncoderClient(ready["grpc_url"], timeout_s=30) as client:
            assert client.is_ready()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=90)
        assert proc.returncode == 0
        with pytest.raises(ProcessLookupError):
            os.kill(ready["pid"], 0)  # tritonserver is gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
