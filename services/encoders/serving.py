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
from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils  # provided by the stub
from homesearch.encoders import wire
from homesearch.encoders.model_spec import ModelSpec
from torch.utils.dlpack import to_dlpack

log = logging.getLogger("homesearch.encoders.serving")


# -- helpers ---------------------------------------------------------------------------------
def setup_logging(model: str) -> None:
    try:
        from homesearch.logging import configure_logging

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
        torch.set_num_threads(threads)  # torch engine, and the torch ops of preprocessing
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
                log.warning("onnxruntime has no CUDA provider here: serving the torch engine on the GPU",
                            extra={"model": self.kind})
                self.engine = "torch"
        return self.engine

    def finalize(self) -> None:
        log.info("model unloading", extra={"model": self.kind, "instance": self.instance})
