"""Redis/Valkey caches of the ranking service: query embeddings and ranked results.

Keys (``<prefix>`` defaults to ``hs``):

- embedding: ``<prefix>:emb:<model_version>:<kind>:<sha256>`` where kind is
  ``q`` (query text, hashed after ``normalize``) or ``img`` (hash of the image
  bytes); value = raw float32 bytes. Keyed by model version so an encoder upgrade
  can never mix vectors.
- result: ``<prefix>:res:<collection>:g<generation>:<sha256(canonical request)>``;
  value = serialised SearchResponse. The index generation is part of the key, so
  the first write after a catalog change makes every older entry unreachable
  (they expire by TTL): an upsert or delete can never serve stale results.
- generation: ``<prefix>:gen:<collection>``, the latest generation any replica
  wrote; replicas sharing one Qdrant collection read it to learn of writes made
  by others (see ``generation.py``).

Redis is an optimisation, never a dependency: every call has short socket
timeouts, errors become a "bypass", and a circuit breaker opens after a few
consecutive failures so a dead Redis costs ~0 per request until a probe after
the cool-down succeeds.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import redis

from homesearch import result_cache

from homesearch.ranking.metrics import CACHE_CIRCUIT_OPEN, CACHE_REQUESTS

log = logging.getLogger(__name__)

T = TypeVar("T")
_BYPASS = object()


class CircuitBreaker:
    """Closed -> open after ``failures`` consecutive errors; half-open (one probe) after ``cooldown_s``."""

    def __init__(self, failures: int = 3, cooldown_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._count = 0
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if not self._probing and self._clock() - self._opened_at >= self.cooldown_s:
                self._probing = True  # exactly one caller probes; the rest keep bypassing
                return True
            return False

    def success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.info("redis reachable again, cache circuit closed")
            self._count = 0
            self._opened_at = None
            self._probing = False
            CACHE_CIRCUIT_OPEN.set(0)

    def failure(self) -> None:
        with self._lock:
            self._count += 1
            if self._probing or (self._opened_at is None and self._count >= self.failures):
                if self._opened_at is None:
                    log.warning("redis failing, cache circuit open", extra={"failures": self._count})
                self._opened_at = self._clock()
                self._probing = False
                CACHE_CIRCUIT_OPEN.set(1)


class RedisCache:
    """Fail-open cache client. ``url=""`` disables it (every lookup is a bypass)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "hs",
        timeout_s: float = 0.05,
        embedding_ttl_s: int = 7 * 24 * 3600,
        result_ttl_s: int = 300,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.embedding_ttl_s = embedding_ttl_s
        self.result_ttl_s = result_ttl_s
        self.breaker = breaker or CircuitBreaker()
        self._client: redis.Redis | None = None
        if url:
            self._client = redis.Redis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry_on_timeout=False,
                retry=None,
                health_check_interval=0,
            )

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def _call(self, fn: Callable[[redis.Redis], T]) -> T | object:
        """Runs ``fn`` unless the breaker is open; any Redis error becomes ``_BYPASS``."""
        if self._client is None or not self.breaker.allow():
            return _BYPASS
        try:
            result = fn(self._client)
        except (redis.RedisError, OSError) as exc:
            self.breaker.failure()
            log.debug("redis call failed", extra={"error": repr(exc)})
            return _BYPASS
        self.breaker.success()
        return result

    # -- embeddings -----------------------------------------------------------------------
    def embedding_key(self, model_version: str, kind: str, content: bytes) -> str:
        return f"{self.prefix}:emb:{model_version}:{kind}:{hashlib.sha256(content).hexdigest()}"

    def get_embedding(self, key: str) -> np.ndarray | None:
        value = self._call(lambda r: r.get(key))
        if value is _BYPASS:
            CACHE_REQUESTS.labels("embedding", "bypass").inc()
            return None
        if value is None:
            CACHE_REQUESTS.labels("embedding", "miss").inc()
            return None
        CACHE_REQUESTS.labels("embedding", "hit").inc()
        return np.frombuffer(value, dtype=np.float32).copy()

    def put_embedding(self, key: str, vector: np.ndarray) -> None:
        data = np.asarray(vector, dtype=np.float32).tobytes()
        self._call(lambda r: r.set(key, data, ex=self.embedding_ttl_s))

    # -- results --------------------------------------------------------------------------
    def result_key(self, collection: str, generation: int, canonical_request: bytes) -> str:
        return result_cache.result_key(self.prefix, collection, generation, canonical_request)

    def get_result(self, key: str) -> bytes | None:
        value = self._call(lambda r: r.get(key))
        if value is _BYPASS:
            CACHE_REQUESTS.labels("result", "bypass").inc()
            return None
        CACHE_REQUESTS.labels("result", "miss" if value is None else "hit").inc()
        return value  # type: ignore[return-value]

    def put_result(self, key: str, data: bytes) -> None:
        self._call(lambda r: r.set(key, data, ex=self.result_ttl_s))

    # -- generation -----------------------------------------------------------------------
    def generation_key(self, collection: str) -> str:
        return result_cache.generation_key(self.prefix, collection)

    def get_generation(self, collection: str) -> int | None:
        value = self._call(lambda r: r.get(self.generation_key(collection)))
        if value is _BYPASS or value is None:
            return None
        return int(value)

    def publish_generation(self, collection: str, generation: int) -> bool:
        """Raises the shared generation to at least ``generation`` (never lowers it) and renews its
        lease (``homesearch.result_cache``); False when Redis did not take it."""
        key, lease = self.generation_key(collection), result_cache.GENERATION_LEASE_MS
        result = self._call(lambda r: r.eval(result_cache.PUBLISH_SCRIPT, 1, key, generation, lease))
        return result is not _BYPASS

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing must never fail shutdown
                pass
