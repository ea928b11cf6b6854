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

    def _refill(self, caller: str, now: float, create: bool) -> _Bucket | None:
        """The caller's bucket topped up to ``now`` (lock held); None if absent and not created."""
        bucket = self._buckets.get(caller)
        if bucket is None:
            if not create:
                return None
            if len(self._buckets) >= self._max_callers:  # bound memory (anonymous peers)
                self._buckets.clear()
            bucket = self._buckets[caller] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rps)
        bucket.updated = now
        return bucket

    def acquire(self, caller: str, now: float | None = None) -> float:
        """Takes a token for ``caller``; returns 0.0 if allowed, else seconds to wait."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._refill(caller, now, create=True)
            assert bucket is not None
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rps

    def peek(self, caller: str, now: float | None = None) -> float:
        """Seconds until ``caller`` has a token again (0.0 = has one); takes nothing."""
        if not self.enabled:
            return 0.0
        with self._lock:
            bucket = self._refill(caller, time.monotonic() if now is None else now, create=False)
            return 0.0 if bucket is None or bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self.rps
