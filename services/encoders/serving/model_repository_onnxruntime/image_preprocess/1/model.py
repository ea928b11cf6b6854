"""Triton python-backend model ``image_preprocess``: step 1 of the native-backend ``image_encoder`` ensemble.

Inputs (``services.encoders.serving.wire``): ``IMAGE`` uint8 [n, L], ``IMAGE_LENGTH`` int32 [n, 1].
Outputs: ``PIXELS`` fp32 [n, 3, S, S] normalised as the tower expects, and one output per
extra input the exported graph declares (e.g. ``COLOUR_HIST``), computed with the same code
as the PyTorch tower. Decoding and validation are the embedded image_encoder's (limits from
the header before any decode, EXIF, white square pad, JPEG draft decode of large photos); a
request with a bad image fails alone with INVALID_ARGUMENT naming the item. The network runs
next, in ``image_onnx`` on Triton's onnxruntime backend.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils  # provided by the stub
from services.encoders.engines.onnx_engine import EXTRA_INPUTS
from services.encoders.engines.onnx_export import export_image
from services.encoders.models.base import PixelSpec
from services.encoders.models.preprocess import ImageLimits, ImagePreprocessor
from services.encoders.serving.triton_python import EncoderModelBase, decode_image_requests, rows_by_request

log = logging.getLogger("services.encoders.image_preprocess")


class TritonPythonModel(EncoderModelBase):
    kind = "image_preprocess"

    def initialize(self, args: dict[str, Any]) -> None:
        self._init_common(args)
        t0 = time.monotonic()
        card = export_image(self.spec).card  # the graph's own description: pixel spec and extra inputs
        px = card["pixels"]
        self.pixel_spec = PixelSpec(int(px["size"]), tuple(px["mean"]), tuple(px["std"]), bool(px.get("pad_to_square", True)))
        self.extras = list(card.get("extra_inputs") or [])
        limits = ImageLimits(
            max_bytes=int(self.params.get("max_image_bytes") or ImageLimits.max_bytes),
            max_pixels=int(self.params.get("max_image_pixels") or ImageLimits.max_pixels),
        )
        self.pre = ImagePreprocessor(self.pixel_spec, torch.device("cpu"), limits, gpu_decode=False)
        log.info("image preprocessing ready", extra={**self._ready_fields(t0), "extras": [e["name"] for e in self.extras]})

    def execute(self, requests: list[Any]) -> list[Any]:
        batch = decode_image_requests(requests, self.pre, self.kind)
        responses = batch.responses
        if batch.good:
            pixels = self.pre.normalize(torch.stack([batch.decoded[k] for k in batch.good]))
            outputs = {"PIXELS": pixels}
            for e in self.extras:
                outputs[e["name"]] = EXTRA_INPUTS[e["kind"]](pixels, self.pixel_spec, e)
            for r, rows in rows_by_request(batch.owner, batch.good).items():
                tensors = [pb_utils.Tensor(n, np.ascontiguousarray(t[rows].numpy(), dtype=np.float32)) for n, t in outputs.items()]
                responses[r] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses
