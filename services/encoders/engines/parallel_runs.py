"""Throughput path of the ONNX engine: a big batch as several small runs on parallel threads.

Why: on a small CPU box the batch-1 search path wants one intra-op thread (no barrier waits on a
busy core), while catalog ingestion sends batches of 32. Run as one padded batch, those waste
compute on padding (dev catalog passages: 1.7x the real tokens at batch 32, 1.16x in
length-sorted chunks of 8) and use one core. ``InferenceSession.run`` is thread-safe and
releases the GIL, so the same session (same weights, no extra memory) runs length-sorted
chunks on ``workers`` threads at once, each single-threaded: every core busy, no spinning
pool, no padding beyond a chunk's own longest row. Outputs are the same rows in input order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

T = TypeVar("T")

# Chunks carry at most this many padded tokens (rows * longest row) or MAX_ROWS rows: small
# enough to keep padding low and split work over the cores, big enough for efficient GEMMs.
TOKEN_BUDGET = 512
MAX_ROWS = 16


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def length_chunks(lengths: Sequence[int], *, workers: int = 1, token_budget: int = TOKEN_BUDGET,
                  max_rows: int = MAX_ROWS) -> list[list[int]]:
    """Row indices grouped longest first: each group within ``token_budget`` padded tokens and
    ``max_rows`` rows, and at least ``workers`` groups when there are that many rows."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if not order:
        return []
    rows_cap = max(1, min(max_rows, -(-len(order) // max(1, workers))))
    chunks: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        widest = lengths[cur[0]] if cur else lengths[i]
        if cur and (len(cur) >= rows_cap or (len(cur) + 1) * widest > token_budget):
            chunks.append(cur)
            cur = []
        cur.append(i)
    chunks.append(cur)
    return chunks


def even_chunks(n: int, parts: int) -> list[list[int]]:
    """``range(n)`` in ``parts`` contiguous, nearly equal groups (no empty ones)."""
    parts = max(1, min(parts, n))
    size, extra = divmod(n, parts)
    out, start = [], 0
    for k in range(parts):
        stop = start + size + (1 if k < extra else 0)
        out.append(list(range(start, stop)))
        start = stop
    return [c for c in out if c]


class ParallelRuns:
    """A small thread pool that maps a function over chunks and returns results in chunk order."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="onnx-run") if self.workers > 1 else None

    def map(self, fn: Callable[[list[int]], T], chunks: list[list[int]]) -> list[T]:
        if self._pool is None or len(chunks) < 2:
            return [fn(c) for c in chunks]
        return list(self._pool.map(fn, chunks))


def trim_padding(feeds: dict[str, np.ndarray], rows: list[int], mask_name: str = "attention_mask") -> dict[str, np.ndarray]:
    """The feeds of ``rows`` only, right padding beyond their longest row cut off (what
    tokenising those rows alone would give)."""
    if mask_name not in feeds:  # no mask to read the lengths from: rows only
        return {k: np.ascontiguousarray(v[rows]) for k, v in feeds.items()}
    width = int(feeds[mask_name][rows].sum(axis=1).max()) if len(rows) else 0
    return {k: np.ascontiguousarray(v[rows][:, :width]) if v.ndim == 2 else np.ascontiguousarray(v[rows])
            for k, v in feeds.items()}
