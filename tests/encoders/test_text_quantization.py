"""The int8 text graph's recipe on a small real graph: the MatMul fed by an outlier-heavy
activation is found by measurement and kept at fp32, the others become int8, and keeping it
brings the output closer to fp32 than quantizing everything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from services.encoders.engines.onnx_export import row_cosines
from services.encoders.engines.text_quantization import outlier_matmuls, quantize_text_graph


WIDTH = 256


class _ThreeLayers(torch.nn.Module):
    """Three bias-free linear layers; the input of the second carries a few huge values (the way
    a transformer's FFN down-projection input does)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c = (torch.nn.Linear(WIDTH, WIDTH, bias=False) for _ in range(3))
        spike = torch.zeros(WIDTH)
        spike[17] = 300.0  # one channel that dominates the activation's range
        self.register_buffer("spike", spike)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x)) + self.spike
        return self.c(torch.relu(self.b(h)))


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("q") / "three.onnx"
    torch.onnx.export(_ThreeLayers().eval(), (torch.randn(4, WIDTH),), str(path), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17, dynamo=False)
    return path


def _feeds(n: int = 6) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.standard_normal((3, WIDTH)).astype(np.float32)} for _ in range(n)]


def _run(path: Path, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(["y"], f)[0] for f in feeds])


def test_the_outlier_fed_matmul_is_found_by_measurement(graph):
    nodes = [n for n in onnx.load(str(graph)).graph.node if n.op_type == "MatMul"]
    assert len(nodes) == 3
    ranked = outlier_matmuls(graph, _feeds(), count=3)
    assert ranked[0][0] == nodes[1].name  # the second layer's input holds the spikes
    assert ranked[0][1] > 3 * ranked[1][1]
    assert outlier_matmuls(graph, _feeds(), count=0) == []


def test_keeping_the_outlier_matmul_at_fp32_is_closer_to_fp32(graph, tmp_path):
    feeds = _feeds()
    card = quantize_text_graph(graph, tmp_path / "kept.onnx", feeds)
    quantize_text_graph(graph, tmp_path / "all.onnx", feeds, keep_fp32=0)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "kept.onnx")).graph.node}
    assert {"MatMulInteger", "MatMul"} <= ops  # two int8 layers, one fp32
    assert "MatMul" not in {n.op_type for n in onnx.load(str(tmp_path / "all.onnx")).graph.node}
    assert len(card["fp32_matmuls"]) == 1
    ref = _run(graph, feeds)
    kept, every = row_cosines(_run(tmp_path / "kept.onnx", feeds), ref), row_cosines(_run(tmp_path / "all.onnx", feeds), ref)
    assert kept.mean() > every.mean() and kept.min() > 0.99


def test_int8_weights_use_seven_bits_so_no_cpu_saturates(graph, tmp_path):
    """uint8 activations times int8 weights are summed in pairs into int16 on AVX2 CPUs: with
    weights in [-64, 64] a pair stays below 2^15 (2 * 255 * 64 = 32,640), so AVX2 and VNNI CPUs compute the same vectors."""
    from onnx import numpy_helper

    quantize_text_graph(graph, tmp_path / "q.onnx", _feeds())
    model = onnx.load(str(tmp_path / "q.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weights = [inits[n.input[1]] for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert len(weights) == 2 and all(w.dtype == np.int8 for w in weights)
    assert all(w.min() >= -64 and w.max() <= 64 for w in weights)
    assert max(int(np.abs(w).max()) for w in weights) >= 60  # the 7-bit range is used, not shrunk further
