"""Renders the model repository for NVIDIA's tritonserver image: native onnxruntime backend + python steps.

The embedded tritonserver (nvidia-pytriton wheel) has only the Python backend, so there the
python models host an ONNX Runtime session (``model_repository/``). NVIDIA's image ships the
onnxruntime backend: this repository (``model_repository_onnxruntime/``) runs the same
exported graphs on it, with validation, tokenising and image decoding in python step models,
behind ensembles named ``text_encoder`` and ``image_encoder`` that keep the client protocol
(``wire.py``), the version/dimension parameters and the error semantics unchanged.

What is filled in from the exported graphs' cards (``onnx_export``): versions and dimension,
the text graph's inputs (e5: ids + mask; Chinese-CLIP adds token_type_ids), the pixel size, and
one tensor per extra image input (e.g. ``COLOUR_HIST``) from image_preprocess to image_onnx.
``1/model.onnx`` of each onnx model links to the graph in the model cache (a copy with
``copy_graphs``). Thread and batching settings follow ``repository.model_threads`` /
``queue_delay_us``; ``portable`` leaves the ORT thread counts to the serving machine.

    homesearch triton --render-only DIR --serving-backend onnxruntime
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from google.protobuf import text_format
from services.encoders.serving import wire
from services.encoders.serving.config import TritonSettings
from services.encoders.engines.onnx_engine import extra_input_dim
from services.encoders.engines.onnx_export import export_image, export_text
from services.encoders.serving.repository import RenderedRepository, model_threads, queue_delay_us
from tritonclient.grpc import model_config_pb2 as mc

log = logging.getLogger(__name__)

NATIVE_TEMPLATE_DIR = Path(__file__).resolve().parent / "model_repository_onnxruntime"
MODELS = ("text_encoder", "text_tokenize", "text_onnx", "image_encoder", "image_preprocess", "image_onnx")


def _tensor(name: str, dtype: str, dims: list[int]) -> mc.ModelInput:
    t = mc.ModelInput(name=name, data_type=mc.DataType.Value(dtype))
    t.dims.extend(dims)
    return t


def _output(name: str, dtype: str, dims: list[int]) -> mc.ModelOutput:
    t = mc.ModelOutput(name=name, data_type=mc.DataType.Value(dtype))
    t.dims.extend(dims)
    return t


def _instances(cfg: mc.ModelConfig, kind: str, count: int) -> None:
    del cfg.instance_group[:]
    g = cfg.instance_group.add()
    g.kind = mc.ModelInstanceGroup.Kind.Value(kind)
    g.count = count


def _link(graph: Path, dst: Path, copy: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        shutil.copy2(graph, dst)
    else:
        os.symlink(graph, dst)


def render_native_repository(settings: TritonSettings, target: Path, kind: str = "KIND_CPU", portable: bool = False,
                             copy_graphs: bool = False) -> RenderedRepository:
    """Writes the onnxruntime-backend repository to ``target`` (replacing it); graphs must be exported."""
    spec = settings.model_spec()
    if spec.text_precision != "fp32":  # per-run int8 activations need the python backend's text-by-text runs
        raise ValueError("the native onnxruntime repository serves the fp32 text graph: set text_precision fp32 "
                         "(auto does with serving_backend onnxruntime)")
    text, image = export_text(spec), export_image(spec)
    dim = int(text.card["dim"])
    if int(image.card["dim"]) != dim:
        raise RuntimeError(f"text ({dim}) and image ({image.card['dim']}) graphs have different dimensions")
    if target.exists():
        shutil.rmtree(target)
    cfgs = {name: text_format.Parse((NATIVE_TEMPLATE_DIR / name / "config.pbtxt").read_text(encoding="utf-8"),
                                    mc.ModelConfig()) for name in MODELS}
    model_params = {**spec.to_params(), "model_family": spec.family}
    size = int(image.card["pixels"]["size"])
    extras = [(e["name"], extra_input_dim(e)) for e in image.card.get("extra_inputs") or []]

    for cfg in cfgs.values():
        cfg.max_batch_size = settings.max_batch_size
        for out in cfg.output:
            if out.name == wire.EMBEDDING:
                del out.dims[:]
                out.dims.append(dim)
    for name, version in (("text_encoder", text.card["version"]), ("image_encoder", image.card["version"])):
        cfgs[name].parameters[wire.PARAM_VERSION].string_value = version
        cfgs[name].parameters[wire.PARAM_DIM].string_value = str(dim)
    head = image.card["version"].split("+", 1)[1] if spec.model_dir is None and "+" in image.card["version"] else ""
    cfgs["image_encoder"].parameters["head_version"].string_value = head

    # text: the graph's inputs flow from text_tokenize to text_onnx
    names = list(text.card["inputs"])
    tok, onnx_t, ens_t = cfgs["text_tokenize"], cfgs["text_onnx"], cfgs["text_encoder"]
    del tok.output[:], onnx_t.input[:]
    tok.output.extend(_output(n, "TYPE_INT64", [-1]) for n in names)
    onnx_t.input.extend(_tensor(n, "TYPE_INT64", [-1]) for n in names)
    step0, step1 = ens_t.ensemble_scheduling.step
    step0.output_map.clear()
    step1.input_map.clear()
    for n in names:
        step0.output_map[n] = f"t_{n}"
        step1.input_map[n] = f"t_{n}"
    for key, value in {**model_params, wire.PARAM_VERSION: text.card["version"],
                       "max_text_chars": str(settings.max_text_chars)}.items():
        tok.parameters[key].string_value = value

    # image: PIXELS plus one tensor per extra input
    pre, onnx_i, ens_i = cfgs["image_preprocess"], cfgs["image_onnx"], cfgs["image_encoder"]
    del pre.output[:], onnx_i.input[:]
    pre.output.append(_output("PIXELS", "TYPE_FP32", [3, size, size]))
    onnx_i.input.append(_tensor("PIXELS", "TYPE_FP32", [3, size, size]))
    step0, step1 = ens_i.ensemble_scheduling.step
    step0.output_map.clear()
    step1.input_map.clear()
    for n, d in [("PIXELS", 0), *extras]:
        if d:
            pre.output.append(_output(n, "TYPE_FP32", [d]))
            onnx_i.input.append(_tensor(n, "TYPE_FP32", [d]))
        step0.output_map[n] = f"i_{n}"
        step1.input_map[n] = f"i_{n}"
    for key, value in {**model_params, wire.PARAM_VERSION: image.card["version"],
                       "max_image_bytes": str(settings.max_image_bytes),
                       "max_image_pixels": str(settings.max_image_pixels)}.items():
        pre.parameters[key].string_value = value

    # placement, threads, batching
    for name, model, count in (("text_onnx", wire.TEXT_MODEL, settings.text_instances),
                               ("image_onnx", wire.IMAGE_MODEL, settings.image_instances)):
        cfg = cfgs[name]
        _instances(cfg, kind, count)
        cfg.dynamic_batching.max_queue_delay_microseconds = queue_delay_us(settings, model)
        explicit = settings.text_threads if model == wire.TEXT_MODEL else settings.image_threads
        threads = explicit if portable else model_threads(settings, model)
        if portable and not explicit and model == wire.TEXT_MODEL:
            threads = 1  # latency default, whatever the machine
        cfg.parameters["intra_op_thread_count"].string_value = str(threads)  # 0 = ORT decides (all cores)
    _instances(tok, "KIND_CPU", settings.text_instances)
    _instances(pre, "KIND_CPU", settings.image_instances)
    pre.dynamic_batching.max_queue_delay_microseconds = queue_delay_us(settings, wire.IMAGE_MODEL)

    for name, cfg in cfgs.items():
        dst = target / name
        dst.mkdir(parents=True)
        (dst / "config.pbtxt").write_text(text_format.MessageToString(cfg), encoding="utf-8")
        src = NATIVE_TEMPLATE_DIR / name / "1" / "model.py"
        if src.is_file():
            (dst / "1").mkdir()
            shutil.copy2(src, dst / "1" / "model.py")
    _link(text.path, target / "text_onnx" / "1" / "model.onnx", copy_graphs)
    _link(image.path, target / "image_onnx" / "1" / "model.onnx", copy_graphs)
    log.info("rendered onnxruntime-backend model repository", extra={"path": str(target), "kind": kind})
    return RenderedRepository(target, kind, text.card["version"], image.card["version"], dim)
