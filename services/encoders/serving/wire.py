"""The tensor protocol between ``EncoderClient`` and the Triton models (one source of truth).

Why not BYTES tensors: string tensors failed to deserialise in the python backend here (see
docs/architecture.md), so each item travels as a zero-padded UINT8 row plus its length.
Requests are ``[n, max_len]``; rows of different requests may differ in width
(``allow_ragged_batch``), the python backend sees each request separately anyway.

text_encoder:  TEXT uint8 [n, L] (UTF-8), TEXT_LENGTH int32 [n, 1], MODE uint8 [n, 1]
               (0 = query, 1 = passage)  ->  EMBEDDING fp32 [n, dim]
image_encoder: IMAGE uint8 [n, L] (JPEG/PNG/WebP bytes), IMAGE_LENGTH int32 [n, 1]
               ->  EMBEDDING fp32 [n, dim]
               + optional VISUAL_MODE uint8 [n, 1] (one value per request: 1 = index,
               2 = query, 3 = scene; services.encoders.models.visual) -> VISUAL fp32 [n, K, 512]:
               index: EMBEDDING + K = 2 rows (whole photo, foreground crop, 224 px);
               query: VISUAL only, K = 50 region rows of one 448 px pass;
               scene (3): K = 149 window rows of one 640 px pass (shop the look; windows
               in services.encoders.models.scene_windows) + REGION_EMBEDDING fp32
               [n, 149, dim], the same windows' text-space vectors;
               photo (4): index and query in one call (a photo query): EMBEDDING + K = 2 + 50
               rows, exactly index's rows then query's (one request, one decode).

Rejected requests fail as a whole with an INVALID_ARGUMENT error whose message lists
``item <i>: <reason>`` for each bad item (``i`` is the row in that request).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

TEXT_MODEL = "text_encoder"
IMAGE_MODEL = "image_encoder"

TEXT = "TEXT"
TEXT_LENGTH = "TEXT_LENGTH"
MODE = "MODE"
IMAGE = "IMAGE"
IMAGE_LENGTH = "IMAGE_LENGTH"
EMBEDDING = "EMBEDDING"
VISUAL_MODE = "VISUAL_MODE"
VISUAL = "VISUAL"
REGION_EMBEDDING = "REGION_EMBEDDING"
VISUAL_MODES: dict[str, int] = {"index": 1, "query": 2, "scene": 3, "photo": 4}
VISUAL_MODE_NAMES: dict[int, str] = {v: k for k, v in VISUAL_MODES.items()}

MODES: dict[str, int] = {"query": 0, "passage": 1}
MODE_NAMES: dict[int, str] = {v: k for k, v in MODES.items()}

# model config parameters (string values) every encoder model exposes
PARAM_VERSION = "model_version"
PARAM_DIM = "embedding_dim"
PARAM_VISUAL_VERSION = "visual_version"  # image_encoder: "" = no VISUAL output

_ITEM_RE = re.compile(r"item (\d+): ")
INVALID_PREFIX = "invalid input: "


def pack(items: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded ``[n, max_len]`` uint8 matrix and ``[n, 1]`` int32 lengths."""
    lengths = np.array([[len(b)] for b in items], dtype=np.int32)
    width = max(1, int(lengths.max(initial=0)))
    data = np.zeros((len(items), width), dtype=np.uint8)
    for i, b in enumerate(items):
        if b:
            data[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
    return data, lengths


def unpack(data: np.ndarray, lengths: np.ndarray) -> list[bytes]:
    """Inverse of ``pack``; raises ValueError on inconsistent shapes (a broken client)."""
    if data.ndim != 2 or lengths.reshape(-1).shape[0] != data.shape[0]:
        raise ValueError(f"data {tuple(data.shape)} and lengths {tuple(lengths.shape)} do not match")
    out = []
    for row, n in zip(data, lengths.reshape(-1).tolist()):
        if n < 0 or n > row.shape[0]:
            raise ValueError(f"length {n} outside row of {row.shape[0]} bytes")
        out.append(row[:n].tobytes())
    return out


def format_item_errors(errors: dict[int, str], limit: int = 8) -> str:
    """``invalid input: item 2: empty text; item 5: ...`` (first ``limit`` items)."""
    parts = [f"item {i}: {errors[i]}" for i in sorted(errors)[:limit]]
    more = len(errors) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return INVALID_PREFIX + "; ".join(parts)


def first_bad_item(message: str) -> int | None:
    """Row index of the first bad item named in a server error message, if any."""
    m = _ITEM_RE.search(message)
    return int(m.group(1)) if m else None
