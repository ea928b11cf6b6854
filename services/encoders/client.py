"""Thin, thread-safe gRPC client for the Triton encoder models (used by the ranking service).

* Splits inputs into requests of at most ``max_batch`` items (and a byte budget), sorted by
  size so padding stays small; results come back in input order.
* All-or-nothing per call: if any item is rejected (empty/over-long text, corrupt/oversized
  image), the call raises ``InvalidInputError`` with ``index`` = the position of the first
  bad item in the caller's sequence, and returns nothing. The server stays healthy; callers
  that want partial results drop the named item and call again.
* Retries with exponential backoff only on UNAVAILABLE (server starting/restarting, network
  blip) and on deadline expiry of a single attempt, within the call's overall deadline; never
  on INVALID_ARGUMENT.
* One ``tritonclient`` gRPC client is shared by all threads (gRPC channels are thread-safe);
  ``model_info`` is read once and cached.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from services.encoders.serving import wire

log = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_REQUEST_BYTES = 32 * 1024 * 1024  # stay well under gRPC message limits


class EncoderError(Exception):
    """Base class of every error this client raises."""


class InvalidInputError(EncoderError):
    """An input item was rejected; ``index`` is its position in the caller's sequence."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class EncoderUnavailableError(EncoderError):
    """The server is down, not ready, or did not answer in time (after retries)."""


@dataclass(frozen=True)
class ModelInfo:
    text_version: str
    image_version: str
    dim: int
    visual_version: str = ""  # "" = the image model has no ``visual`` (photo->photo) output
    # the image model answers scene requests with each window's text-space vector too
    # (REGION_EMBEDDING); False for a model repository older than the client: room searches
    # then run on the visual rows alone instead of failing (a rolling upgrade)
    region_embedding: bool = False

    @property
    def model_version(self) -> str:
        """Combined id keying caches and guarding indexes against mixed vector spaces (a new
        visual descriptor changes it too, so an index written without it asks to be re-indexed)."""
        base = f"{self.text_version}|{self.image_version}"
        return f"{base}|{self.visual_version}" if self.visual_version else base


def model_info_from_configs(text: Any, image: Any) -> ModelInfo:
    """``ModelInfo`` from the two models' ``ModelConfig`` messages (versions and dimension are
    config parameters; which optional outputs the image model has, its declared outputs)."""
    tp, ip = text.parameters, image.parameters
    try:
        tdim, idim = int(tp[wire.PARAM_DIM].string_value), int(ip[wire.PARAM_DIM].string_value)
        visual = ip[wire.PARAM_VISUAL_VERSION].string_value if wire.PARAM_VISUAL_VERSION in ip else ""
        regions = any(o.name == wire.REGION_EMBEDDING for o in image.output)
        info = ModelInfo(tp[wire.PARAM_VERSION].string_value, ip[wire.PARAM_VERSION].string_value, tdim, visual,
                         region_embedding=regions)
    except (KeyError, ValueError) as e:
        raise EncoderError(f"encoder models do not declare version/dimension parameters: {e}") from None
    if tdim != idim:
        raise EncoderError(f"text ({tdim}) and image ({idim}) encoders have different dimensions")
    return info


class EncoderClient:
    def __init__(
        self,
        url: str = "127.0.0.1:8001",
        timeout_s: float = 10.0,
        retries: int = 3,
        max_batch: int = 32,
        backoff_s: float = 0.1,
    ) -> None:
        import tritonclient.grpc as grpcclient

        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_batch = max_batch
        self.backoff_s = backoff_s
        self._grpc = grpcclient
        # Reconnect within ~2 s of a restarted Triton (gRPC's default backoff grows to 120 s,
        # which kept answers degraded for a minute after the encoders were back).
        from tritonclient.grpc import KeepAliveOptions
        from tritonclient.grpc._client import MAX_GRPC_MESSAGE_SIZE

        keep = KeepAliveOptions()
        self._client = grpcclient.InferenceServerClient(url=url, channel_args=[  # tritonclient's defaults +
            ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.keepalive_time_ms", keep.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", keep.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", keep.keepalive_permit_without_calls),
            ("grpc.http2.max_pings_without_data", keep.http2_max_pings_without_data),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ])
        self._lock = threading.Lock()
        self._info: ModelInfo | None = None
        self._closed = False

    # -- public API -----------------------------------------------------------------------------
    def model_info(self) -> ModelInfo:
        """Versions and dimension from the models' config parameters (cached after first read)."""
        with self._lock:
            if self._info is not None:
                return self._info
        deadline = time.monotonic() + self.timeout_s
        text = self._call(lambda t: self._client.get_model_config(wire.TEXT_MODEL, client_timeout=t), deadline)
        image = self._call(lambda t: self._client.get_model_config(wire.IMAGE_MODEL, client_timeout=t), deadline)
        info = model_info_from_configs(text.config, image.config)
        with self._lock:
            self._info = info
        return info

    def embed_texts(
        self,
        texts: Sequence[str],
        mode: Literal["query", "passage"],
        timeout_s: float | None = None,
    ) -> np.ndarray:
        """(n, dim) float32, L2-normalised. ``mode`` picks the e5 "query: "/"passage: " prefix."""
        if mode not in wire.MODES:
            raise ValueError(f"mode must be 'query' or 'passage', got {mode!r}")
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a sequence of str, not a single string")
        items: list[bytes] = []
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidInputError(f"item {i}: expected str, got {type(t).__name__}", index=i)
            if not t.strip():  # cheap local check, same rule as the server
                raise InvalidInputError(f"item {i}: empty text", index=i)
            items.append(t.encode("utf-8"))
        code = wire.MODES[mode]

        def build(batch: list[bytes]) -> list:
            data, lengths = wire.pack(batch)
            modes = np.full((len(batch), 1), code, dtype=np.uint8)
            return self._inputs((wire.TEXT, data, "UINT8"), (wire.TEXT_LENGTH, lengths, "INT32"), (wire.MODE, modes, "UINT8"))

        return self._embed(wire.TEXT_MODEL, items, build, timeout_s)

    def embed_images_visual(
        self,
        images: Sequence[bytes],
        mode: Literal["index", "query", "scene", "photo"],
        timeout_s: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The ``visual`` photo->photo rows: (n, K, 512) float32, rows L2-normalised
        (``index``: K = 2, whole photo + foreground crop, returned with the (n, dim) text-space
        vectors of the same pass; ``query``: K = 50 regions of one 448 px pass, and None;
        ``scene``: K = 149 windows of one 640 px pass with the windows' (n, 149, dim) text-space
        vectors, or None from an image model older than this client; ``photo``: index's 2 rows
        then query's 50 with the text-space vectors, one request).
        Raises EncoderError when the image model serves no visual output."""
        if mode not in wire.VISUAL_MODES:
            raise ValueError(f"mode must be 'index', 'query', 'scene' or 'photo', got {mode!r}")
        if not self.model_info().visual_version:
            raise EncoderError(f"image model {self.model_info().image_version} has no visual output")
        items = self._image_items(images)
        code = wire.VISUAL_MODES[mode]

        def build(batch: list[bytes]) -> list:
            data, lengths = wire.pack(batch)
            modes = np.full((len(batch), 1), code, dtype=np.uint8)
            return self._inputs((wire.IMAGE, data, "UINT8"), (wire.IMAGE_LENGTH, lengths, "INT32"),
                                (wire.VISUAL_MODE, modes, "UINT8"))

        emb_name = {"index": wire.EMBEDDING, "photo": wire.EMBEDDING,
                    "scene": wire.REGION_EMBEDDING if self.model_info().region_embedding else None}.get(mode)
        names = (emb_name, wire.VISUAL) if emb_name else (wire.VISUAL,)
        if not items:
            dim = self.model_info().dim
            empty = np.zeros((0, dim) if emb_name == wire.EMBEDDING else (0, 0, dim), np.float32)
            return np.zeros((0, 0, 0), np.float32), (empty if emb_name else None)
        out = self._embed_outputs(wire.IMAGE_MODEL, items, build, names, timeout_s)
        return out[wire.VISUAL], (out[emb_name] if emb_name else None)

    @staticmethod
    def _image_items(images: Sequence[bytes]) -> list[bytes]:
        items: list[bytes] = []
        for i, b in enumerate(images):
            if not isinstance(b, (bytes, bytearray, memoryview)):
                raise InvalidInputError(f"item {i}: expected bytes, got {type(b).__name__}", index=i)
            if len(b) == 0:
                raise InvalidInputError(f"item {i}: empty image", index=i)
            items.append(bytes(b))
        return items

    def embed_images(self, images: Sequence[bytes], timeout_s: float | None = None) -> np.ndarray:
        """(n, dim) float32, L2-normalised, from encoded JPEG/PNG/WebP bytes."""
        items = self._image_items(images)

        def build(batch: list[bytes]) -> list:
            data, lengths = wire.pack(batch)
            return self._inputs((wire.IMAGE, data, "UINT8"), (wire.IMAGE_LENGTH, lengths, "INT32"))

        return self._embed(wire.IMAGE_MODEL, items, build, timeout_s)

    def is_ready(self) -> bool:
        """Server live and both models ready (one quick attempt, no retries)."""
        try:
            t = min(self.timeout_s, 2.0)
            return bool(
                self._client.is_server_ready(client_timeout=t)
                and self._client.is_model_ready(wire.TEXT_MODEL, client_timeout=t)
                and self._client.is_model_ready(wire.IMAGE_MODEL, client_timeout=t)
            )
        except Exception:
            return False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._client.close()

    def __enter__(self) -> EncoderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------
    def _inputs(self, *specs: tuple[str, np.ndarray, str]) -> list:
        out = []
        for name, arr, dtype in specs:
            inp = self._grpc.InferInput(name, list(arr.shape), dtype)
            inp.set_data_from_numpy(arr)
            out.append(inp)
        return out

    def _chunks(self, items: list[bytes]) -> list[list[int]]:
        """Index groups: sorted by size (less padding), at most max_batch items and ~32 MiB each."""
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        chunks: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            # padded request size = rows * widest row (the current item is the widest so far)
            if cur and (len(cur) >= self.max_batch or (len(cur) + 1) * len(items[i]) > _MAX_REQUEST_BYTES):
                chunks.append(cur)
                cur = []
            cur.append(i)
        if cur:
            chunks.append(cur)
        return chunks

    def _embed(
        self, model: str, items: list[bytes], build: Callable[[list[bytes]], list], timeout_s: float | None
    ) -> np.ndarray:
        if not items:
            return np.zeros((0, self.model_info().dim), dtype=np.float32)
        return self._embed_outputs(model, items, build, (wire.EMBEDDING,), timeout_s)[wire.EMBEDDING]

    def _embed_outputs(
        self,
        model: str,
        items: list[bytes],
        build: Callable[[list[bytes]], list],
        names: Sequence[str],
        timeout_s: float | None,
    ) -> dict[str, np.ndarray]:
        """Runs ``items`` in chunks and reassembles each requested output in input order."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        out: dict[str, np.ndarray] = {}
        for idx in self._chunks(items):
            inputs = build([items[i] for i in idx])
            outputs = [self._grpc.InferRequestedOutput(n) for n in names]
            try:
                result = self._call(
                    lambda t, inputs=inputs, outputs=outputs: self._client.infer(
                        model, inputs, outputs=outputs, client_timeout=t
                    ),
                    deadline,
                )
            except InvalidInputError as e:
                # rewrite request-relative row numbers to the caller's indices
                msg, bad = _renumber(str(e), idx)
                raise InvalidInputError(msg, index=min(bad) if bad else None) from None
            for name in names:
                vecs = result.as_numpy(name)
                if vecs is None or vecs.shape[0] != len(idx):
                    raise EncoderError(f"{model} returned {None if vecs is None else vecs.shape} {name} "
                                       f"for {len(idx)} items")
                if name not in out:
                    out[name] = np.empty((len(items), *vecs.shape[1:]), dtype=np.float32)
                out[name][idx] = vecs
        return out

    def _call(self, fn: Callable[[float], T], deadline: float) -> T:
        """Runs one RPC with the remaining deadline; retries UNAVAILABLE with backoff."""
        from tritonclient.utils import InferenceServerException

        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EncoderUnavailableError(f"encoder call to {self.url} timed out")
            try:
                return fn(max(0.001, remaining))
            except InferenceServerException as e:
                status = str(e.status() or "")
                message = e.message() or str(e)
                if "INVALID_ARGUMENT" in status:
                    raise InvalidInputError(message, index=wire.first_bad_item(message)) from None
                retryable = "UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status
                if not retryable:
                    raise EncoderError(f"{status or 'error'}: {message}") from None
                if attempt >= self.retries or time.monotonic() >= deadline:
                    raise EncoderUnavailableError(
                        f"encoder server {self.url} unavailable after {attempt + 1} attempt(s): {message}"
                    ) from None
            sleep = self.backoff_s * (2**attempt) * (0.5 + random.random())
            attempt += 1
            time.sleep(max(0.0, min(sleep, deadline - time.monotonic())))


def _renumber(message: str, idx: list[int]) -> tuple[str, list[int]]:
    """``item 3: ...`` (row in the request) -> ``item 17: ...`` (index in the caller's list)."""
    found: list[int] = []

    def sub(m: re.Match[str]) -> str:
        row = int(m.group(1))
        if 0 <= row < len(idx):
            found.append(idx[row])
            return f"item {idx[row]}: "
        return m.group(0)

    return re.sub(r"item (\d+): ", sub, message), found
