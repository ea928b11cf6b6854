"""Triton python-backend model ``text_encoder``: UTF-8 texts -> L2-normalised embeddings.

Inputs (``services.encoders.serving.wire``): ``TEXT`` uint8 [n, L] zero-padded UTF-8 rows,
``TEXT_LENGTH`` int32 [n, 1], ``MODE`` uint8 [n, 1] (0 = query, 1 = passage: the e5 prefix).
Output: ``EMBEDDING`` fp32 [n, dim].

Engine (config parameter ``engine``): ``onnx`` (default) runs the graph exported at
``homesearch prepare-models`` in an ONNX Runtime session hosted by this model; ``torch`` runs
the PyTorch tower it was exported from (the reference). Both share tokeniser and input policy.

Batching: Triton's dynamic batcher hands ``execute`` every queued request. Each request is
validated alone (a bad item fails only its request, INVALID_ARGUMENT naming the item); the
valid texts of all requests are grouped by mode, sorted by length (less padding) and encoded
in chunks of ``max_batch_size``. A lone text (the search path) skips the grouping: it is
tokenised and run directly, which is what the text encoder is tuned for (latency, one
intra-op thread, no queue delay; see docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from services.encoders.serving import wire
from services.encoders.engines.onnx_engine import build_text_encoder
from services.encoders.serving.triton_python import EncoderModelBase, embedding_response, error_response, parse_text_request

log = logging.getLogger("services.encoders.text_encoder")

Parsed = tuple[list[str], list[str]]  # texts and their modes, one request


class TritonPythonModel(EncoderModelBase):
    kind = wire.TEXT_MODEL

    def initialize(self, args: dict[str, Any]) -> None:
        self._init_common(args)
        t0 = time.monotonic()
        max_chars = int(self.params.get("max_text_chars", "2048") or 2048)
        self.encoder = build_text_encoder(
            self.spec, self._resolve_engine(), threads=self.threads, spinning=self.spinning,
            device=self.device, half=self.half, max_chars=max_chars,
        )
        self._check_identity(self.encoder.version, self.encoder.dim)
        self.encoder.encode(["warm up"], "query")
        log.info("text encoder ready", extra={**self._ready_fields(t0), "model_version": self.encoder.version,
                                               "dim": self.encoder.dim, "max_text_chars": max_chars})

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        parsed: dict[int, Parsed] = {}
        for r, req in enumerate(requests):
            try:
                parsed[r] = parse_text_request(req, self.encoder.check)
            except ValueError as e:
                log.info("rejected text request", extra={"model": self.kind, "reason": str(e)})
                responses[r] = error_response(str(e))
        if parsed:
            try:
                for r, vecs in self._encode_all(parsed).items():
                    responses[r] = embedding_response(vecs)
            except Exception as e:  # keep serving: fail only the requests of this batch
                log.exception("text encoding failed", extra={"model": self.kind})
                for r in parsed:
                    responses[r] = error_response(f"text encoder failed: {e}", "INTERNAL")
        return responses

    def _encode_all(self, parsed: dict[int, Parsed]) -> dict[int, torch.Tensor]:
        if len(parsed) == 1:  # fast path: one request of one mode (a search query)
            (r, (texts, modes)), = parsed.items()
            if len(texts) <= self.max_batch and len(set(modes)) == 1:
                return {r: self.encoder.encode(texts, modes[0])}  # type: ignore[arg-type]
        flat = [(r, i, t, m) for r, (ts, ms) in parsed.items() for i, (t, m) in enumerate(zip(ts, ms))]
        out = {r: torch.empty((len(ts), self.encoder.dim)) for r, (ts, _) in parsed.items()}
        for mode in ("query", "passage"):
            group = sorted((x for x in flat if x[3] == mode), key=lambda x: len(x[2]))  # less padding
            for s in range(0, len(group), self.max_batch):
                chunk = group[s : s + self.max_batch]
                vecs = self.encoder.encode([x[2] for x in chunk], mode)  # type: ignore[arg-type]
                for (r, i, _, _), v in zip(chunk, vecs):
                    out[r][i] = v
        return out
