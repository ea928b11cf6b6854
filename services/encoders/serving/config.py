"""Launcher and model settings: ``HOMESEARCH_TRITON_*`` environment variables, flags override.

A few model-level settings are shared with other tools and keep their own names:
``HOMESEARCH_MODEL_DIR`` (CLIP-family checkpoint to serve), ``HOMESEARCH_MODEL_CACHE``
(converted weights) and ``HOMESEARCH_IMAGE_HEAD`` (trained image head directory); the
``HOMESEARCH_TRITON_``-prefixed spellings work too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from services.encoders.models.spec import DEFAULT_HEAD_DIR, DEFAULT_VISUAL_DIR, ModelSpec
from services.encoders.models.preprocess import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


# The text precision setting: a ``ModelSpec`` precision, or auto (``resolved_text_precision``).
TextPrecision = Literal["auto", "fp32", "int8"]
TEXT_PRECISION_CHOICES: tuple[str, ...] = get_args(TextPrecision)


def cuda_available() -> bool:
    """Whether this interpreter sees a CUDA device (what device=auto resolves by)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


class TritonSettings(BaseSettings):
    """Everything the launcher needs to start tritonserver with the encoder models."""

    model_config = SettingsConfigDict(env_prefix="HOMESEARCH_TRITON_", populate_by_name=True, extra="ignore")

    # network
    host: str = Field("127.0.0.1", description="address the HTTP, gRPC and metrics endpoints bind to")
    http_port: int = Field(8000, ge=0, le=65535, description="0 picks a free port")
    grpc_port: int = Field(8001, ge=0, le=65535, description="0 picks a free port")
    metrics_port: int = Field(8002, ge=0, le=65535, description="0 picks a free port")

    # placement and batching
    device: Literal["auto", "cpu", "gpu"] = Field("auto", description="auto: KIND_GPU when CUDA is available")
    text_instances: int = Field(1, ge=1)
    image_instances: int = Field(1, ge=1)
    max_batch_size: int = Field(64, ge=1, description="largest batch one model execution sees")
    max_queue_delay_us: int | None = Field(
        None, ge=0, description="dynamic batching wait for more requests, both models (overrides the two below)"
    )
    text_queue_delay_us: int = Field(0, ge=0, description="text: 0 = run as soon as the instance is free (latency)")
    image_queue_delay_us: int = Field(2000, ge=0, description="image: wait this long to fill a batch (throughput)")

    # engine and threads
    engine: Literal["onnx", "torch"] = Field(
        "onnx", description="onnx: exported graphs in ONNX Runtime (default); torch: the PyTorch reference towers"
    )
    text_threads: int = Field(0, ge=0, description="intra-op threads per text instance; 0 = auto (onnx: 1)")
    image_threads: int = Field(0, ge=0, description="intra-op threads per image instance; 0 = auto (cores / image instances)")
    serving_backend: Literal["python", "onnxruntime"] = Field(
        "python",
        description="python: python-backend models host the engine (the only backend in the pytriton wheel); "
        "onnxruntime: NVIDIA's image, native onnxruntime backend + python pre/post steps (render-only)",
    )
    text_precision: TextPrecision = Field(
        "auto",
        description="text graph weights: int8 = ONNX Runtime dynamic int8 (~2x faster on CPU, its own model "
        "version: re-index); fp32 = the PyTorch tower's vectors; auto = int8 for the default e5 tower on the onnx "
        "engine in the python backend on CPU, fp32 for a CLIP checkpoint, the torch engine, a GPU or the native "
        "onnxruntime backend",
    )
    onnx_spinning: bool = Field(False, description="let ONNX Runtime's idle threads busy-wait (only on dedicated cores)")
    torch_threads: int = Field(0, ge=0, description="legacy: intra-op threads of every instance (overrides the auto values)")
    half: bool = Field(True, description="fp16 weights and activations on GPU (ignored on CPU)")
    gpu_decode: bool = Field(True, description="nvJPEG decode on GPU when torchvision is importable")

    # input limits
    max_text_chars: int = Field(2048, ge=1)
    max_image_bytes: int = Field(DEFAULT_MAX_IMAGE_BYTES, ge=1)
    max_image_pixels: int = Field(DEFAULT_MAX_IMAGE_PIXELS, ge=1)

    # models
    model_dir: Path | None = Field(
        None, validation_alias=AliasChoices("model_dir", "HOMESEARCH_TRITON_MODEL_DIR", "HOMESEARCH_MODEL_DIR")
    )
    model_cache: Path | None = Field(
        None, validation_alias=AliasChoices("model_cache", "HOMESEARCH_TRITON_MODEL_CACHE", "HOMESEARCH_MODEL_CACHE")
    )
    image_head: Path | None = Field(
        DEFAULT_HEAD_DIR,
        validation_alias=AliasChoices("image_head", "HOMESEARCH_TRITON_IMAGE_HEAD", "HOMESEARCH_IMAGE_HEAD"),
    )

    visual_dir: Path | None = Field(
        DEFAULT_VISUAL_DIR,
        validation_alias=AliasChoices("visual_dir", "HOMESEARCH_TRITON_VISUAL_DIR", "HOMESEARCH_VISUAL_DIR"),
        description="visual (photo->photo) descriptor directory, services/encoders/heads/visual-<version>",
    )

    # process
    server_bin: Path | None = Field(None, description="tritonserver binary; default: the one in the pytriton wheel")
    work_dir: Path | None = Field(None, description="runtime model repository + backends; default: a temp dir")
    startup_timeout_s: float = Field(300.0, gt=0)
    shutdown_timeout_s: float = Field(30.0, gt=0)
    log_verbose: int = Field(0, ge=0)
    prepare: bool = Field(True, description="convert/cache model weights before starting")

    @model_validator(mode="after")
    def _int8_needs_text_by_text_runs(self) -> TritonSettings:
        if self.engine == "torch" and self.text_precision == "int8":
            raise ValueError("text_precision int8 needs engine onnx (the torch engine serves fp32 vectors only)")
        if self.serving_backend == "onnxruntime" and self.text_precision == "int8":
            # int8 activations are quantized per run, and the native backend runs a request's (or a
            # dynamic batch's) texts as one run: a text's vector would depend on its neighbours
            raise ValueError("text_precision int8 needs serving_backend python (the native onnxruntime backend "
                             "runs batched texts as one run, and int8 vectors then depend on the batch)")
        return self

    def resolved_text_precision(self) -> str:
        """``text_precision`` with auto decided: int8 where it was measured and runs text by text
        (the e5 tower on the onnx engine in the python backend, on CPU), fp32 elsewhere. On a GPU
        dynamic int8 is not the fast path (and was never measured there), so auto keeps fp32."""
        if self.text_precision != "auto":
            return self.text_precision
        measured = self.model_dir is None and self.engine == "onnx" and self.serving_backend == "python"
        if measured and self.device != "cpu":
            measured = self.device == "auto" and not cuda_available()
        return "int8" if measured else "fp32"

    def model_spec(self) -> ModelSpec:
        return ModelSpec(model_dir=self.model_dir, head_dir=self.image_head, cache_dir=self.model_cache,
                         visual_dir=self.visual_dir, text_precision=self.resolved_text_precision())
