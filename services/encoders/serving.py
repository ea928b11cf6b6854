"""Triton python-backend models for the encoders (imported only inside the backend stub).

One ``execute`` call receives every request of a dynamic batch. Each request is validated on
its own: a request with a bad item gets an INVALID_ARGUMENT error naming the item(s), and is
left out of the forward pass, while the other requests of the batch are answered normally.
Valid items of all requests are pooled, grouped, and encoded in chunks of ``max_batch_size``.
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
from homesearch.encoders.preprocess import ImageLimits, ImagePreprocessor
from torch.utils.dlpack import to_dlpack

log = logging.getLogger("homesearch.encoders.serving")


# -- helpers ---------------------------------------------------------------------------------
def _setup_logging(model: str) -> None:
    try:
        from homesearch.logging import configure_logging

        configure_logging(service=f"triton-{model}")
    except Exception:  # logging must never keep a model from loading
        logging.basicConfig(level=logging.INFO)


def _error(message: str, code: str = "INVALID_ARG") -> Any:
    """An error response; the code maps to the gRPC status the client sees."""
    err_cls = pb_utils.TritonError
    c = getattr(err_cls, code, None)
    err = err_cls(message, c) if c is not None else err_cls(message)
    return pb_utils.InferenceResponse(output_tensors=[], error=err)


def _input(request: Any, name: str) -> np.ndarray:
    t = pb_utils.get_input_tensor_by_name(request, name)
    if t is None:
        raise ValueError(f"missing input {name}")
    # DLPack rather than as_numpy(): works with numpy 1 and 2 (see docs/architecture.md)
    return torch.from_dlpack(t.to_dlpack()).cpu().numpy()


def _output(vectors: torch.Tensor) -> Any:
    tensor = pb_utils.Tensor.from_dlpack(wire.EMBEDDING, to_dlpack(vectors.float().contiguous()))
    return pb_utils.InferenceResponse(output_tensors=[tensor])


class _Base:
    """Shared set-up: parameters, device placement, thread count, version check."""

    kind = ""

    def _init_common(self, args: dict[str, Any]) -> None:
        _setup_logging(self.kind)
        self.config = json.loads(args["model_config"])
        self.params = {k: v.get("string_value", "") for k, v in self.config.get("parameters", {}).items()}
        self.max_batch = max(1, int(self.config.get("max_batch_size", 64)))
        gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = torch.device(f"cuda:{args.get('model_instance_device_id', '0')}" if gpu else "cpu")
        if gpu:
            torch.cuda.set_device(self.device)
        self.half = self.params.get("half", "true").lower() == "true" and gpu
        threads = int(self.params.get("torch_threads", "0") or 0)
        if threads <= 0:
            count = sum(int(g.get("count", 1)) for g in self.config.get("instance_group", [])) or 1
            threads = max(1, (os.cpu_count() or 1) // count)
        torch.set_num_threads(threads)
        self.spec = ModelSpec.from_params(self.params)
        self.instance = args.get("model_instance_name", self.kind)

    def _check_identity(self, version: str, dim: int) -> None:
        """Refuse to serve under a version/dimension other than the config declares to clients."""
        want_v, want_d = self.params.get(wire.PARAM_VERSION, ""), self.params.get(wire.PARAM_DIM, "")
        if want_v and want_v != version:
            raise RuntimeError(f"{self.kind}: config declares model_version {want_v!r} but {version!r} loaded")
        if want_d and int(want_d) != dim:
            raise RuntimeError(f"{self.kind}: config declares embedding_dim {want_d} but the model gives {dim}")

    def finalize(self) -> None:
        log.info("model unloading", extra={"model": self.kind, "instance": self.instance})


# -- text -----------------------------------------------------------------------------------
class TextEncoderModel(_Base):
    kind = wire.TEXT_MODEL

    def initialize(self, args: dict[str, Any]) -> None:
        self._init_common(args)
        t0 = time.monotonic()
        max_chars = int(self.params.get("max_text_chars", "2048") or 2048)
        self.encoder = self.spec.build_text(device=self.device, half=self.half, max_chars=max_chars)
        self._check_identity(self.encoder.version, self.encoder.dim)
        self.encoder.encode(["warm up"], "query")
        log.info(
            "text encoder ready",
            extra={
                "model": self.kind,
                "instance": self.instance,
                "model_version": self.encoder.version,
                "dim": self.encoder.dim,
                "device": str(self.device),
                "half": self.half,
                "threads": torch.get_num_threads(),
                "max_text_chars": max_chars,
                "load_s": round(time.monotonic() - t0, 2),
            },
        )

    def _parse(self, request: Any) -> tuple[list[str], list[str]]:
        """Texts and modes of one request; raises ValueError naming every bad item."""
        try:
            items = wire.unpack(_input(request, wire.TEXT), _input(request, wire.TEXT_LENGTH))
            modes = _input(request, wire.MODE).reshape(-1).tolist()
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
            reason = self.encoder.check(text)
            if reason is None and m not in wire.MODE_NAMES:
                reason = f"unknown mode {m} (0 = query, 1 = passage)"
            if reason:
                errors[i] = reason
            texts.append(text)
            mode_names.append(wire.MODE_NAMES.get(m, "query"))
        if errors:
            raise ValueError(wire.format_item_errors(errors))
        return texts, mode_names

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        parsed: dict[int, tuple[list[str], list[str]]] = {}
        for r, req in enumerate(requests):
            try:
                parsed[r] = self._parse(req)
            except ValueError as e:
                log.info("rejected text request", extra={"model": self.kind, "reason": str(e)})
                responses[r] = _error(str(e))
        if parsed:
            try:
                results = self._encode_all(parsed)
                for r, vecs in results.items():
                    responses[r] = _output(vecs)
            except Exception as e:  # keep serving: fail only the requests of this batch
                log.exception("text encoding failed", extra={"model": self.kind})
                for r in parsed:
                    responses[r] = _error(f"text encoder failed: {e}", "INTERNAL")
        return responses

    def _encode_all(self, parsed: dict[int, tuple[list[str], list[str]]]) -> dict[int, torch.Tensor]:
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


# -- image ----------------------------------------------------------------------------------
class ImageEncoderModel(_Base):
    kind = wire.IMAGE_MODEL

    def initialize(self, args: dict[str, Any]) -> None:
        self._init_common(args)
        t0 = time.monotonic()
        self.encoder = self.spec.build_image(device=self.device, half=self.half)
        self._check_identity(self.encoder.version, self.encoder.dim)
        limits = ImageLimits(
            max_bytes=int(self.params.get("max_image_bytes") or ImageLimits.max_bytes),
            max_pixels=int(self.params.get("max_image_pixels") or ImageLimits.max_pixels),
        )
        gpu_decode = self.params.get("gpu_decode", "true").lower() == "true"
        self.pre = ImagePreprocessor(self.encoder.pixel_spec, self.device, limits, gpu_decode=gpu_decode)
        size = self.encoder.pixel_spec.size
        self.encoder.encode_pixels(torch.zeros((1, 3, size, size), device=self.device))
        log.info(
            "image encoder ready",
            extra={
                "model": self.kind,
                "instance": self.instance,
                "model_version": self.encoder.version,
                "head_version": getattr(self.encoder, "head_version", None),
                "dim": self.encoder.dim,
                "device": str(self.device),
                "half": self.half,
                "gpu_decode": self.pre.gpu_decode,
                "threads": torch.get_num_threads(),
                "max_image_bytes": limits.max_bytes,
                "max_image_pixels": limits.max_pixels,
                "load_s": round(time.monotonic() - t0, 2),
            },
        )

    def _wants(self, request: Any) -> tuple[bool, str | None]:
        """(EMBEDDING asked for, visual mode or None): outputs are computed only when requested."""
        try:
            names = set(request.requested_output_names())
        except Exception:  # older stubs: everything
            names = {wire.EMBEDDING}
        if wire.VISUAL not in names:
            return True, None
        if not hasattr(self.encoder, "encode_visual"):
            raise ValueError(f"this image model ({self.encoder.version}) has no {wire.VISUAL} output")
        t = pb_utils.get_input_tensor_by_name(request, wire.VISUAL_MODE)
        codes = set(_input(request, wire.VISUAL_MODE).reshape(-1).tolist()) if t is not None else {0}
        if len(codes) != 1 or next(iter(codes)) not in wire.VISUAL_MODE_NAMES:
            raise ValueError(f"{wire.VISUAL_MODE} must be one of {sorted(wire.VISUAL_MODE_NAMES)} for the whole request")
        return wire.EMBEDDING in names, wire.VISUAL_MODE_NAMES[next(iter(codes))]

    def execute(self, requests: list[Any]) -> list[Any]:
        plain = []
        responses: list[Any] = [None] * len(requests)
        for r, req in enumerate(requests):
            try:
                want_embedding, mode = self._wants(req)
            except ValueError as e:
                responses[r] = _error(f"malformed request: {e}")
                continue
            if mode is None:
                plain.append(r)
            else:
                responses[r] = self._execute_visual(req, want_embedding, mode)
        if plain:
            for r, resp in zip(plain, self._execute_embedding([requests[r] for r in plain])):
                responses[r] = resp
        return responses

    def _execute_visual(self, request: Any, want_embedding: bool, mode: str) -> Any:
        """One request asking for VISUAL (and maybe EMBEDDING): per image, its views' descriptors."""
        try:
            imgs = wire.unpack(_input(request, wire.IMAGE), _input(request, wire.IMAGE_LENGTH))
        except ValueError as e:
            return _error(f"malformed request: {e}")
        views, errors = self.pre.decode_views(imgs, mode)
        main: list = []
        if want_embedding and not errors:
            # the main view through the usual decode, so EMBEDDING equals a plain request's
            main, errors = self.pre.decode(imgs)
        if errors:
            return _error(wire.format_item_errors(errors))
        try:
            k = len(views[0])  # type: ignore[arg-type]
            rest = [v for vs in views for v in (vs[1:] if want_embedding else vs)]  # type: ignore[union-attr]
            tensors = []
            head_rows: list[torch.Tensor] = []
            vis_main: list[torch.Tensor] = []
            for s in range(0, len(main), self.max_batch):  # view 0 once for both vectors
                emb, vis = self.encoder.encode_both(self.pre.normalize(torch.stack(main[s : s + self.max_batch])))
                head_rows.append(emb)
                vis_main.append(vis)
            out = [self.encoder.encode_visual(self.pre.normalize(torch.stack(rest[s : s + self.max_batch])))
                   for s in range(0, len(rest), self.max_batch)]
            if want_embedding:
                others = torch.cat(out).reshape(len(imgs), k - 1, -1) if k > 1 else None
                first = torch.cat(vis_main).unsqueeze(1)
                visual = torch.cat([first, others], dim=1) if others is not None else first
            else:
                visual = torch.cat(out).reshape(len(imgs), k, -1)
            tensors.append(pb_utils.Tensor.from_dlpack(wire.VISUAL, to_dlpack(visual.float().contiguous())))
            if want_embedding:
                emb = torch.cat(head_rows)
                tensors.append(pb_utils.Tensor.from_dlpack(wire.EMBEDDING, to_dlpack(emb.float().contiguous())))
            return pb_utils.InferenceResponse(output_tensors=tensors)
        except Exception as e:
            log.exception("visual encoding failed", extra={"model": self.kind})
            return _error(f"image encoder failed: {e}", "INTERNAL")

    def _execute_embedding(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        items: list[bytes] = []
        owner: list[tuple[int, int]] = []  # flat index -> (request, row)
        for r, req in enumerate(requests):
            try:
                imgs = wire.unpack(_input(req, wire.IMAGE), _input(req, wire.IMAGE_LENGTH))
            except ValueError as e:
                responses[r] = _error(f"malformed request: {e}")
                continue
            owner += [(r, i) for i in range(len(imgs))]
            items += imgs
        try:
            decoded, errors = self.pre.decode(items)
        except Exception as e:
            log.exception("image decoding failed", extra={"model": self.kind})
            return [resp or _error(f"image decoding failed: {e}", "INTERNAL") for resp in responses]
        bad: dict[int, dict[int, str]] = {}
        for k, reason in errors.items():
            r, i = owner[k]
            bad.setdefault(r, {})[i] = reason
        for r, errs in bad.items():
            msg = wire.format_item_errors(errs)
            log.info("rejected image request", extra={"model": self.kind, "reason": msg})
            responses[r] = _error(msg)
        good = [k for k, (r, _) in enumerate(owner) if responses[r] is None]
        if not good:
            return responses
        try:
            vecs = torch.empty((len(good), self.encoder.dim))
            for s in range(0, len(good), self.max_batch):
                chunk = good[s : s + self.max_batch]
                pixels = self.pre.normalize(torch.stack([decoded[k] for k in chunk]))  # type: ignore[misc]
                vecs[s : s + len(chunk)] = self.encoder.encode_pixels(pixels)
            by_request: dict[int, list[int]] = {}
            for row, k in enumerate(good):
                by_request.setdefault(owner[k][0], []).append(row)
            for r, rows in by_request.items():
                responses[r] = _output(vecs[rows])
        except Exception as e:
            log.exception("image encoding failed", extra={"model": self.kind})
            for k in good:
                r = owner[k][0]
                if responses[r] is None:
                    responses[r] = _error(f"image encoder failed: {e}", "INTERNAL")
        return responses
