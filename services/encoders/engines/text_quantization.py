"""Dynamic int8 weights for the exported text graph, with its worst outlier layer kept at fp32.

Why: ONNX Runtime's ``quantize_dynamic`` turns each MatMul with constant weights into an int8
MatMulInteger (weights per output channel), about 2x faster for e5-small on CPU. Activations are
quantized per run with one scale per tensor, so a tensor with a few huge values loses the
resolution of all the others. In e5-small one input stands out: the FFN down-projection of
layer 4, whose peak is ~200x its RMS on the parity texts (next: 160, 142, 84). Keeping that one
MatMul at fp32 halves the error to fp32 (mean cosine 0.9967 -> 0.9984 on 80 dev passages) for
~3 % of the time; keeping a second one adds < 0.0002 (docs/performance.md, "Stop 25").

Weights use 7 bits (``reduce_range``). On x86 CPUs without VNNI (AVX2, AVX-512F) ONNX Runtime
multiplies uint8 activations by int8 weights with ``vpmaddubsw``, whose int16 pair sums saturate
with full-range weights; VNNI CPUs do not saturate. The same 8-bit graph therefore gave other
vectors on other machines (an AVX2 EPYC: 0.9921 min / 0.9968 mean cosine to PyTorch on 86 dev
queries; a VNNI Xeon: 0.9977 min on the parity texts). With 7-bit weights a pair sum stays below
2 * 255 * 64 < 2^15 on every kernel, so every CPU computes the same integers: 0.9968 min / 0.9980
mean on the AVX2 box, at the same speed (docs/performance.md, "Stop 26").

The layer is found by measurement on the graph, not by name, so another text tower (a CLIP
checkpoint) gets the same treatment. Changing what this module writes changes the vectors: give
the recipe a new tag in ``models.spec.TEXT_VERSION_TAGS``, so the model version (and the graph
cache key, which holds it) changes too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

FP32_OUTLIER_MATMULS = 1  # MatMuls kept at fp32: the ones whose input has the largest peak / RMS


def outlier_matmuls(graph: Path, feeds: Iterable[dict[str, np.ndarray]], count: int) -> list[tuple[str, float]]:
    """The ``count`` MatMul nodes with constant weights whose input activation has the largest
    peak-to-RMS ratio over ``feeds`` (the graph's inputs), with that ratio, largest first."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = onnx.load(str(graph))
    weights = {i.name for i in model.graph.initializer}
    targets = [(n.name, n.input[0]) for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    if not targets or count <= 0:
        return []
    outputs = sorted({x for _, x in targets})
    model.graph.output.extend(helper.make_tensor_value_info(x, TensorProto.FLOAT, None) for x in outputs)
    # the probe graph: the same network with those activations exposed, run from memory
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    del model
    ratio = dict.fromkeys(outputs, 0.0)
    for feed in feeds:
        for name, value in zip(outputs, session.run(outputs, feed)):
            rms = float(np.sqrt(np.mean(np.square(value, dtype=np.float64))))
            ratio[name] = max(ratio[name], float(np.abs(value).max()) / max(rms, 1e-12))
    ranked = sorted(((node, ratio[x]) for node, x in targets), key=lambda nr: -nr[1])
    return ranked[:count]


def quantize_text_graph(source: Path, target: Path, feeds: list[dict[str, np.ndarray]],
                        keep_fp32: int = FP32_OUTLIER_MATMULS) -> dict[str, object]:
    """Writes ``source`` with dynamic int8 weights to ``target``, the ``keep_fp32`` most
    outlier-heavy MatMuls left at fp32; returns what the card records about it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    kept = outlier_matmuls(source, feeds, keep_fp32)
    quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                     nodes_to_exclude=[node for node, _ in kept])
    return {"quantization": "onnxruntime dynamic int8, 7-bit weights per channel (reduce_range)",
            "fp32_matmuls": [{"node": node, "peak_to_rms": round(r, 1)} for node, r in kept]}
