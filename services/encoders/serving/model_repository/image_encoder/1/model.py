"""Triton python-backend model ``image_encoder``: JPEG/PNG/WebP bytes -> embeddings in the text space.

Inputs (``services.encoders.serving.wire``): ``IMAGE`` uint8 [n, L] zero-padded encoded images,
``IMAGE_LENGTH`` int32 [n, 1]. Output: ``EMBEDDING`` fp32 [n, dim].

Visual (photo->photo) requests add ``VISUAL_MODE`` uint8 [n, 1] (``wire.VISUAL_MODES``):
``index`` answers EMBEDDING of the whole photo plus ``VISUAL`` [n, 2, 512] (whole photo and its
tight foreground crop at 224 px, from the same backbone pass as EMBEDDING); ``query`` answers
``VISUAL`` [n, R, 512] only (the regions of one 448 px pass; ``services.encoders.models.visual``);
``scene`` answers ``VISUAL`` [n, 149, 512] (shop the look: the windows of one 640 px pass,
``services.encoders.models.scene_windows``) and ``REGION_EMBEDDING`` [n, 149, dim] (the same
windows' text-space vectors); ``photo`` answers EMBEDDING and ``VISUAL``
[n, 2 + R, 512], index's rows then query's, from one decode (a photo query: one request
instead of two, each of which paid a Triton round trip and decoded the photo again).
Requests of each mode in a dynamic batch are run together.

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
from services.encoders.models.scene_windows import SCENE_SIZE
import triton_python_backend_utils as pb_utils  # provided by the stub
from services.encoders.serving.triton_python import (
    EncoderModelBase,
    decode_image_requests,
    embedding_response,
    error_response,
    input_array,
    rows_by_request,
)
from torch.utils.dlpack import to_dlpack

log = logging.getLogger("services.encoders.image_encoder")


def _fail_unanswered(batch: Any, error: Exception, kind: str) -> None:
    """An INTERNAL error for every request of ``batch`` not answered yet (the forward failed)."""
    log.exception("image encoding failed", extra={"model": kind})
    for k in batch.good:
        r = batch.owner[k][0]
        if batch.responses[r] is None:
            batch.responses[r] = error_response(f"image encoder failed: {error}", "INTERNAL")


class TritonPythonModel(EncoderModelBase):
    kind = wire.IMAGE_MODEL

    def initialize(self, args: dict[str, Any]) -> None:
        self._init_common(args)
        t0 = time.monotonic()
        self.encoder = build_image_encoder(self.spec, self._resolve_engine(), threads=self.threads,
                                           spinning=self.spinning, device=self.device, half=self.half)
        self._check_identity(self.encoder.version, self.encoder.dim)
        self.visual_version = getattr(self.encoder, "visual_version", "")
        want_visual = self.params.get(wire.PARAM_VISUAL_VERSION, "")
        if want_visual != self.visual_version:
            raise RuntimeError(f"{self.kind}: config declares visual_version {want_visual!r} but "
                               f"{self.visual_version!r} loaded")
        limits = ImageLimits(
            max_bytes=int(self.params.get("max_image_bytes") or ImageLimits.max_bytes),
            max_pixels=int(self.params.get("max_image_pixels") or ImageLimits.max_pixels),
        )
        gpu_decode = self.params.get("gpu_decode", "true").lower() == "true"
        self.pre = ImagePreprocessor(self.encoder.pixel_spec, self.encoder.device, limits, gpu_decode=gpu_decode)
        size = self.encoder.pixel_spec.size
        self.encoder.encode_pixels(torch.zeros((1, 3, size, size), device=self.encoder.device))
        if self.visual_version:  # warm the query-side graph too (its first run allocates)
            qs = self.encoder.visual_sizes[1]
            self.encoder.visual_regions(torch.zeros((1, 3, qs, qs), device=self.encoder.device))
            ss = SCENE_SIZE
            self.encoder.visual_scene(torch.zeros((1, 3, ss, ss), device=self.encoder.device))
        log.info("image encoder ready", extra={
            **self._ready_fields(t0), "model_version": self.encoder.version, "dim": self.encoder.dim,
            "head_version": getattr(self.encoder, "head_version", None), "gpu_decode": self.pre.gpu_decode,
            "max_image_bytes": limits.max_bytes, "max_image_pixels": limits.max_pixels,
            "visual_version": self.visual_version})

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        groups: dict[str | None, list[int]] = {}
        for r, req in enumerate(requests):
            try:
                mode = self._visual_mode(req)
            except ValueError as e:
                responses[r] = error_response(str(e))
                continue
            groups.setdefault(mode, []).append(r)
        for mode, idx in groups.items():
            sub = [requests[r] for r in idx]
            answers = self._execute_plain(sub) if mode is None else self._execute_visual(sub, mode)
            for r, a in zip(idx, answers):
                responses[r] = a
        return responses

    def _visual_mode(self, request: Any) -> str | None:
        if pb_utils.get_input_tensor_by_name(request, wire.VISUAL_MODE) is None:
            return None
        codes = set(input_array(request, wire.VISUAL_MODE).reshape(-1).tolist())
        if len(codes) != 1 or next(iter(codes)) not in wire.VISUAL_MODE_NAMES:
            raise ValueError(f"malformed request: VISUAL_MODE must be one of {wire.VISUAL_MODES} for every item")
        if not self.visual_version:
            raise ValueError(f"image model {self.encoder.version} serves no visual descriptor")
        return wire.VISUAL_MODE_NAMES[int(next(iter(codes)))]

    def _execute_visual(self, requests: list[Any], mode: str) -> list[Any]:
        """Visual views of each photo -> (EMBEDDING +) VISUAL rows, in chunks of ``max_batch`` views."""
        index_size, query_size = self.encoder.visual_sizes

        class _Views:  # decode_image_requests' decoder: the visual views of each photo
            gpu_decode = self.pre.gpu_decode

            @staticmethod
            def decode(items: list[bytes]) -> tuple[list[Any], dict[int, str]]:
                return self.pre.decode_views(items, mode, index_size, query_size)

        batch = decode_image_requests(requests, _Views, self.kind, getattr(self.encoder, "runs", None))
        responses, good = batch.responses, batch.good
        if not good:
            return responses
        try:
            vis, emb = self._visual_rows([batch.decoded[k] for k in good], mode)
            # scene mode: per-window text-space vectors (n, 149, dim) instead of one per photo
            emb_name = wire.REGION_EMBEDDING if mode == "scene" else wire.EMBEDDING
            for r, idx in rows_by_request(batch.owner, good).items():
                tensors = [pb_utils.Tensor.from_dlpack(wire.VISUAL, to_dlpack(vis[idx].float().contiguous()))]
                if emb is not None:
                    tensors.insert(0, pb_utils.Tensor.from_dlpack(emb_name, to_dlpack(emb[idx].float().contiguous())))
                responses[r] = pb_utils.InferenceResponse(output_tensors=tensors)
        except Exception as e:
            _fail_unanswered(batch, e, self.kind)
        return responses

    def _visual_rows(self, photos: list[list[torch.Tensor]], mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(VISUAL (n, K, 512), EMBEDDING (n, dim) or None) of the photos' decoded views.

        ``photo`` runs the index views (whole + foreground, 224 px) and the query view (448 px)
        exactly as ``index`` and ``query`` would (same graphs, same batches), and joins the rows."""
        if mode == "photo":
            vi, emb = self._visual_rows([p[:2] for p in photos], "index")
            vq, _ = self._visual_rows([p[2:] for p in photos], "query")
            return torch.cat([vi, vq], dim=1), emb
        views = [v for p in photos for v in p]
        per = len(photos[0])
        step = self.max_batch if mode == "index" else max(1, self.max_batch // (16 if mode == "scene" else 8))
        embs, rows = [], []
        for s in range(0, len(views), step):
            pixels = self.pre.normalize(torch.stack(views[s : s + step]))
            if mode == "index":
                e, v = self.encoder.encode_with_visual(pixels)
                embs.append(e)
                rows.append(v)
            elif mode == "scene":
                v, e = self.encoder.visual_scene(pixels)
                rows.append(v)
                embs.append(e)
            else:
                rows.append(self.encoder.visual_regions(pixels))
        vis = torch.cat(rows).reshape(len(photos), -1, rows[0].shape[-1])
        # index: the whole photo's vector (first of its views); scene: one view, (n, 149, dim)
        return vis, (torch.cat(embs)[0::per] if embs else None)

    def _execute_plain(self, requests: list[Any]) -> list[Any]:
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
            _fail_unanswered(batch, e, self.kind)
        return responses
