"""Per-caller token buckets (thread-safe, in-process).

Each caller (API key name, or peer address when auth is disabled) gets a bucket
of ``burst`` tokens refilled at ``rps`` tokens per second; a call takes one token
or is refused with the time until one is available. One gateway replica
enforces its own share: behind a load balancer with N replicas the effective
limit is N times this (a shared Redis limiter is future work).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rps: float, burst: int, max_callers: int = 100_000) -> None:
        self.rps = rps
        self.burst = burst
        self._max_callers = max_callers
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rps > 0

    def acquire(self, caller: str, now: float | None = None) -> float:
        """Takes a token for ``caller``; returns 0.0 if allowed, else seconds to wait."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(caller)
            if bucket is None:
                if len(self._buckets) >= self._max_callers:  # bound memory (anonymous peers)
                    self._buckets.clear()
                bucket = self._buckets[caller] = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rps)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rps
