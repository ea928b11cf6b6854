"""Triton python-backend model ``text_tokenize``: step 1 of the native-backend ``text_encoder`` ensemble.

Inputs (``services.encoders.serving.wire``): ``TEXT`` uint8 [n, L], ``TEXT_LENGTH`` int32 [n, 1],
``MODE`` uint8 [n, 1]. Outputs: the exported text graph's inputs, ``input_ids`` and
``attention_mask`` int64 [n, T] (plus ``token_type_ids`` for Chinese-CLIP), right-padded per
request. Validation and tokenising are the embedded text_encoder's (same input policy, same
e5 prefixes), so the two repositories answer every request alike; the network runs next, in
``text_onnx`` on Triton's onnxruntime backend.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by the stub
from services.encoders.serving import wire
from services.encoders.models.e5_text import check_text
from services.encoders.engines.onnx_engine import tokenizer_for
from services.encoders.serving.triton_python import EncoderModelBase, error_response, parse_text_request

log = logging.getLogger("services.encoders.text_tokenize")


class TritonPythonModel(EncoderModelBase):
    kind = "text_tokenize"

    def initialize(self, args: dict[str, Any]) -> None:
        self._init_common(args)
        t0 = time.monotonic()
        self.max_chars = int(self.params.get("max_text_chars", "2048") or 2048)
        self.outputs = [o["name"] for o in self.config.get("output", [])]
        self.tokenize = tokenizer_for(self.spec)
        log.info("text tokenizer ready", extra={**self._ready_fields(t0), "outputs": self.outputs})

    def _check(self, text: str) -> str | None:
        return check_text(text, self.max_chars)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for req in requests:
            try:
                texts, modes = parse_text_request(req, self._check)
                if len(set(modes)) > 1:
                    raise ValueError(wire.INVALID_PREFIX + "mixed query/passage modes in one request")
            except ValueError as e:
                responses.append(error_response(str(e)))
                continue
            feeds = self.tokenize(texts, modes[0])  # type: ignore[arg-type]
            tensors = [pb_utils.Tensor(n, np.ascontiguousarray(feeds[n], dtype=np.int64)) for n in self.outputs]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
