"""What the encoders' Triton python-backend models share (imported only inside the backend stub).

The models themselves are ``model_repository/<name>/1/model.py``: each reads as a complete
Triton model (inputs, validation, batching, engine, outputs). This module holds the plumbing
they share: config parameters, device and engine choice, thread budget, identity check,
tensor in/out through DLPack and error responses.

One ``execute`` call receives every request of a dynamic batch. Each request is validated on
its own: a request with a bad item gets an INVALID_ARGUMENT error naming the item(s), and is
left out of the forward pass, while the other requests of the batch are answered normally.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils  # provided by the stub
from services.encoders.serving import wire
from services.encoders.models.spec import ModelSpec
from torch.utils.dlpack import to_dlpack

log = logging.getLogger("services.encoders.serving.triton_python")


# -- helpers ---------------------------------------------------------------------------------
def setup_logging(model: str) -> None:
    try:
        from homesearch.observability.logging import configure_logging

        configure_logging(service=f"triton-{model}")
    except Exception:  # logging must never keep a model from loading
        logging.basicConfig(level=logging.INFO)


def error_response(message: str, code: str = "INVALID_ARG") -> Any:
    """An error response; the code maps to the gRPC status the client sees."""
    err_cls = pb_utils.TritonError
    c = getattr(err_cls, code, None)
    err = err_cls(message, c) if c is not None else err_cls(message)
    return pb_utils.InferenceResponse(output_tensors=[], error=err)


def input_array(request: Any, name: str) -> np.ndarray:
    t = pb_utils.get_input_tensor_by_name(request, name)
    if t is None:
        raise ValueError(f"missing input {name}")
    # DLPack rather than as_numpy(): works with numpy 1 and 2 (see docs/architecture.md)
    return torch.from_dlpack(t.to_dlpack()).cpu().numpy()


def embedding_response(vectors: torch.Tensor) -> Any:
    tensor = pb_utils.Tensor.from_dlpack(wire.EMBEDDING, to_dlpack(vectors.float().contiguous()))
    return pb_utils.InferenceResponse(output_tensors=[tensor])


def parse_text_request(request: Any, check: Any) -> tuple[list[str], list[str]]:
    """Texts and mode names of one text request; raises ValueError naming every bad item.

    ``check(text) -> reason | None`` is the tower's input policy (empty, too long, NUL)."""
    try:
        items = wire.unpack(input_array(request, wire.TEXT), input_array(request, wire.TEXT_LENGTH))
        modes = input_array(request, wire.MODE).reshape(-1).tolist()
    except ValueError as e:
        raise ValueError(f"malformed request: {e}") from None
    if len(modes) != len(items):
        raise ValueError(f"malformed request: {len(items)} texts but {len(modes)} modes")
    errors: dict[int, str] = {}
    texts: list[str] = []
    mode_names: list[str] = []
    for i, (raw, m) in enumerate(zip(items, modes)):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            errors[i] = "text is not valid UTF-8"
            continue
        reason = check(text)
        if reason is None and m not in wire.MODE_NAMES:
            reason = f"unknown mode {m} (0 = query, 1 = passage)"
        if reason:
            errors[i] = reason
        texts.append(text)
        mode_names.append(wire.MODE_NAMES.get(m, "query"))
    if errors:
        raise ValueError(wire.format_item_errors(errors))
    return texts, mode_names


@dataclass
class DecodedImages:
    """The images of a dynamic batch after decoding: per-request errors already answered."""

    responses: list[Any]  # None where the request is still to be answered
    decoded: list[Any]  # flat: (3, S, S) tensors in [0, 255], None for bad items
    owner: list[tuple[int, int]]  # flat index -> (request, row)
    good: list[int]  # flat indices of items whose request had no bad item


def parallel_decode(pre: Any, items: list[bytes], runs: Any = None) -> tuple[list[Any], dict[int, str]]:
    """``pre.decode(items)``, split over ``runs``' threads when there are several images
    (Pillow and torch release the GIL while they decode and resize)."""
    from services.encoders.engines.parallel_runs import even_chunks

    if runs is None or runs.workers == 1 or len(items) <= 2 or pre.gpu_decode:
        return pre.decode(items)
    chunks = even_chunks(len(items), runs.workers)
    parts = runs.map(lambda rows: pre.decode(items[rows[0] : rows[-1] + 1]), chunks)
    decoded: list[Any] = []
    errors: dict[int, str] = {}
    for rows, (dec, errs) in zip(chunks, parts):
        errors.update({rows[0] + k: reason for k, reason in errs.items()})
        decoded += dec
    return decoded, errors


def decode_image_requests(requests: list[Any], pre: Any, kind: str, runs: Any = None) -> DecodedImages:
    """Unpacks and decodes every image of ``requests``; a request with a bad image gets its
    INVALID_ARGUMENT answer here and its items are left out of ``good``."""
    responses: list[Any] = [None] * len(requests)
    items: list[bytes] = []
    owner: list[tuple[int, int]] = []
    for r, req in enumerate(requests):
        try:
            imgs = wire.unpack(input_array(req, wire.IMAGE), input_array(req, wire.IMAGE_LENGTH))
        except ValueError as e:
            responses[r] = error_response(f"malformed request: {e}")
            continue
        owner += [(r, i) for i in range(len(imgs))]
        items += imgs
    try:
        decoded, errors = parallel_decode(pre, items, runs)
    except Exception as e:
        log.exception("image decoding failed", extra={"model": kind})
        return DecodedImages([resp or error_response(f"image decoding failed: {e}", "INTERNAL") for resp in responses],
                             [], owner, [])
    bad: dict[int, dict[int, str]] = {}
    for k, reason in errors.items():
        r, i = owner[k]
        bad.setdefault(r, {})[i] = reason
    for r, errs in bad.items():
        msg = wire.format_item_errors(errs)
        log.info("rejected image request", extra={"model": kind, "reason": msg})
        responses[r] = error_response(msg)
    good = [k for k, (r, _) in enumerate(owner) if responses[r] is None]
    return DecodedImages(responses, decoded, owner, good)


def rows_by_request(owner: list[tuple[int, int]], good: list[int]) -> dict[int, list[int]]:
    """Request -> its rows in the stacked batch of ``good`` items."""
    by_request: dict[int, list[int]] = {}
    for row, k in enumerate(good):
        by_request.setdefault(owner[k][0], []).append(row)
    return by_request


class EncoderModelBase:
    """Shared set-up: parameters, device placement, engine, thread count, version check."""

    kind = ""

    def _init_common(self, args: dict[str, Any]) -> None:
        setup_logging(self.kind)
        self.config = json.loads(args["model_config"])
        self.params = {k: v.get("string_value", "") for k, v in self.config.get("parameters", {}).items()}
        self.max_batch = max(1, int(self.config.get("max_batch_size", 64)))
        gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = torch.device(f"cuda:{args.get('model_instance_device_id', '0')}" if gpu else "cpu")
        if gpu:
            torch.cuda.set_device(self.device)
        self.half = self.params.get("half", "true").lower() == "true" and gpu
        self.engine = self.params.get("engine", "onnx") or "onnx"
        threads = int(self.params.get("intra_threads", "0") or 0)
        if threads <= 0:  # portable repository: decide on this machine (rules: repository.model_threads)
            count = sum(int(g.get("count", 1)) for g in self.config.get("instance_group", [])) or 1
            latency = self.kind == wire.TEXT_MODEL and self.engine == "onnx"
            threads = 1 if latency else max(1, (os.cpu_count() or 1) // count)
        self.threads = threads
        # The torch engine runs its forward on these threads. On onnx, torch only preprocesses
        # (resize, pad, foreground box, normalise): small ops whose OpenMP barriers stall when a
        # sibling thread waits for a core, and several photos are decoded side by side on the
        # engine's runs anyway. Measured on the loaded 2-core box, a photo query's views took
        # 232 ms on 2 torch threads vs 38 ms on 1 (same pixels, bit for bit).
        torch.set_num_threads(threads if self.engine == "torch" else 1)
        self.spinning = self.params.get("onnx_spinning", "false").lower() == "true"
        self.spec = ModelSpec.from_params(self.params)
        self.instance = args.get("model_instance_name", self.kind)

    def _check_identity(self, version: str, dim: int) -> None:
        """Refuse to serve under a version/dimension other than the config declares to clients."""
        want_v, want_d = self.params.get(wire.PARAM_VERSION, ""), self.params.get(wire.PARAM_DIM, "")
        if want_v and want_v != version:
            raise RuntimeError(f"{self.kind}: config declares model_version {want_v!r} but {version!r} loaded")
        if want_d and int(want_d) != dim:
            raise RuntimeError(f"{self.kind}: config declares embedding_dim {want_d} but the model gives {dim}")

    def _ready_fields(self, t0: float) -> dict[str, Any]:
        return {
            "model": self.kind,
            "instance": self.instance,
            "engine": self.engine,
            "device": str(self.device),
            "half": self.half,
            "intra_threads": self.threads,
            "onnx_spinning": self.spinning,
            "load_s": round(time.monotonic() - t0, 2),
        }

    def _resolve_engine(self) -> str:
        """``onnx`` unless torch is asked for, or the instance is on a GPU this ONNX Runtime cannot use."""
        if self.engine not in ("onnx", "torch"):
            raise RuntimeError(f"{self.kind}: engine must be 'onnx' or 'torch', got {self.engine!r}")
        if self.engine == "onnx" and self.device.type == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                if self.spec.text_precision != "fp32" and self.kind == wire.TEXT_MODEL:
                    # torch cannot give the int8 graph's vectors: keep the version, run it on the CPU
                    log.warning("onnxruntime has no CUDA provider here: the int8 text graph runs on the CPU",
                                extra={"model": self.kind})
                    self.device = torch.device("cpu")
                    return self.engine
                log.warning("onnxruntime has no CUDA provider here: serving the torch engine on the GPU",
                            extra={"model": self.kind})
                self.engine = "torch"
        return self.engine

    def finalize(self) -> None:
        log.info("model unloading", extra={"model": self.kind, "instance": self.instance})
