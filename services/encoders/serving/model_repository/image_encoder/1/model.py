"""Triton python-backend model ``image_encoder``: JPEG/PNG/WebP bytes -> embeddings in the text space.

Inputs (``services.encoders.serving.wire``): ``IMAGE`` uint8 [n, L] zero-padded encoded images,
``IMAGE_LENGTH`` int32 [n, 1]. Output: ``EMBEDDING`` fp32 [n, dim].

Steps: validate and decode every image of the dynamic batch (``preprocess.ImagePreprocessor``:
limits checked from the header before any decode, EXIF, white square pad, normalise; big
JPEGs decoded at reduced size in the DCT domain), then run the tower in chunks of
``max_batch_size``. A request with a bad image fails alone (INVALID_ARGUMENT naming the
item); the rest of the batch is encoded.

Engine (config parameter ``engine``): ``onnx`` (default) runs the exported graph in an ONNX
Runtime session hosted by this model, computing the tower's extra inputs (e.g. the colour
histogram) with the same code as the torch tower; ``torch`` runs the PyTorch tower itself.
The image encoder is tuned for throughput (dynamic batching with a queue delay, the cores
shared over its instances; docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from services.encoders.serving import wire
from services.encoders.engines.onnx_engine import build_image_encoder
from services.encoders.models.preprocess import ImageLimits, ImagePreprocessor
from services.encoders.serving.triton_python import (
    EncoderModelBase,
    decode_image_requests,
    embedding_response,
    error_response,
    rows_by_request,
)

log = logging.getLogger("services.encoders.image_encoder")


class TritonPythonModel(EncoderModelBase):
    kind = wire.IMAGE_MODEL

    def initialize(self, args: dict[str, Any]) -> None:
        self._init_common(args)
        t0 = time.monotonic()
        self.encoder = build_image_encoder(self.spec, self._resolve_engine(), threads=self.threads,
                                           spinning=self.spinning, device=self.device, half=self.half)
        self._check_identity(self.encoder.version, self.encoder.dim)
        limits = ImageLimits(
            max_bytes=int(self.params.get("max_image_bytes") or ImageLimits.max_bytes),
            max_pixels=int(self.params.get("max_image_pixels") or ImageLimits.max_pixels),
        )
        gpu_decode = self.params.get("gpu_decode", "true").lower() == "true"
        self.pre = ImagePreprocessor(self.encoder.pixel_spec, self.encoder.device, limits, gpu_decode=gpu_decode)
        size = self.encoder.pixel_spec.size
        self.encoder.encode_pixels(torch.zeros((1, 3, size, size), device=self.encoder.device))
        log.info("image encoder ready", extra={
            **self._ready_fields(t0), "model_version": self.encoder.version, "dim": self.encoder.dim,
            "head_version": getattr(self.encoder, "head_version", None), "gpu_decode": self.pre.gpu_decode,
            "max_image_bytes": limits.max_bytes, "max_image_pixels": limits.max_pixels})

    def execute(self, requests: list[Any]) -> list[Any]:
        batch = decode_image_requests(requests, self.pre, self.kind, getattr(self.encoder, "runs", None))
        responses, good = batch.responses, batch.good
        if not good:
            return responses
        try:
            vecs = torch.empty((len(good), self.encoder.dim))
            for s in range(0, len(good), self.max_batch):
                chunk = good[s : s + self.max_batch]
                pixels = self.pre.normalize(torch.stack([batch.decoded[k] for k in chunk]))
                vecs[s : s + len(chunk)] = self.encoder.encode_pixels(pixels)
            for r, rows in rows_by_request(batch.owner, good).items():
                responses[r] = embedding_response(vecs[rows])
        except Exception as e:
            log.exception("image encoding failed", extra={"model": self.kind})
            for k in good:
                r = batch.owner[k][0]
                if responses[r] is None:
                    responses[r] = error_response(f"image encoder failed: {e}", "INTERNAL")
        return responses
