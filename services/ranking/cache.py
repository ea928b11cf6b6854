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

Every value is signed: ``b"h1" + HMAC-SHA256(key, redis_key || written_at || payload) +
written_at (8-byte float) + payload``, under a key only the ranking service holds. The MAC
covers the Redis key, so an entry cannot be moved to another key either. Anyone who can
write to Redis but lacks the key (a leaked Redis password, a co-tenant) can only cause
misses: a forged, corrupt or unsigned entry is ignored, counted in
``homesearch_cache_rejected_total`` and logged. ``written_at`` lets a result older than its
freshness TTL be served, marked stale, while the encoders are down.

Redis is an optimisation, never a dependency: every call has short socket
timeouts, errors become a "bypass", and a circuit breaker opens after a few
consecutive failures so a dead Redis costs ~0 per request until a probe after
the cool-down succeeds.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import redis

from services.ranking.metrics import CACHE_CIRCUIT_OPEN, CACHE_REJECTED, CACHE_REQUESTS

log = logging.getLogger(__name__)

T = TypeVar("T")
_BYPASS = object()
_MAGIC = b"h1"
_MAC_LEN = 32
_TS = struct.Struct("<d")
_HEADER = len(_MAGIC) + _MAC_LEN + _TS.size


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
        hmac_key: bytes | str | None = None,
        stale_ttl_s: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        key = hmac_key.encode() if isinstance(hmac_key, str) else hmac_key
        # No configured key: a random one, so this process trusts only what it wrote itself.
        self._mac_key = key or os.urandom(32)
        self.stale_ttl_s = max(0, int(stale_ttl_s))
        self._clock = clock
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

    # -- signing --------------------------------------------------------------------------
    def _mac(self, key: str, stamp: bytes, payload: bytes) -> bytes:
        return hmac.new(self._mac_key, key.encode("utf-8") + b"\0" + stamp + payload, hashlib.sha256).digest()

    def seal(self, key: str, payload: bytes) -> bytes:
        stamp = _TS.pack(self._clock())
        return _MAGIC + self._mac(key, stamp, payload) + stamp + payload

    def unseal(self, key: str, value: bytes, kind: str) -> tuple[bytes, float] | None:
        """(payload, age_s) of a genuine entry; None (counted, logged) for anything else."""
        if len(value) >= _HEADER and value[:2] == _MAGIC:
            mac = value[2 : 2 + _MAC_LEN]
            stamp = value[2 + _MAC_LEN : _HEADER]
            payload = value[_HEADER:]
            if hmac.compare_digest(mac, self._mac(key, stamp, payload)):
                return payload, max(0.0, self._clock() - _TS.unpack(stamp)[0])
        CACHE_REJECTED.labels(kind).inc()
        log.warning("cache entry failed its signature check; ignored", extra={"cache": kind, "key": key})
        return None

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
        opened = self.unseal(key, value, "embedding")  # type: ignore[arg-type]
        if opened is None or len(opened[0]) % 4:
            CACHE_REQUESTS.labels("embedding", "miss").inc()
            return None
        CACHE_REQUESTS.labels("embedding", "hit").inc()
        return np.frombuffer(opened[0], dtype=np.float32).copy()

    def put_embedding(self, key: str, vector: np.ndarray) -> None:
        data = self.seal(key, np.asarray(vector, dtype=np.float32).tobytes())
        self._call(lambda r: r.set(key, data, ex=self.embedding_ttl_s))

    # -- results --------------------------------------------------------------------------
    def result_key(self, collection: str, generation: int, canonical_request: bytes) -> str:
        digest = hashlib.sha256(canonical_request).hexdigest()
        return f"{self.prefix}:res:{collection}:g{generation}:{digest}"

    def get_result(self, key: str, *, allow_stale: bool = False) -> bytes | None:
        """A fresh (younger than ``result_ttl_s``) genuine entry; with ``allow_stale`` also one
        up to ``stale_ttl_s`` old. Use :meth:`get_result_aged` to learn the age."""
        got = self.get_result_aged(key, allow_stale=allow_stale)
        return got[0] if got else None

    def get_result_aged(self, key: str, *, allow_stale: bool = False) -> tuple[bytes, float] | None:
        value = self._call(lambda r: r.get(key))
        if value is _BYPASS:
            CACHE_REQUESTS.labels("result", "bypass").inc()
            return None
        opened = None if value is None else self.unseal(key, value, "result")  # type: ignore[arg-type]
        limit = max(self.result_ttl_s, self.stale_ttl_s) if allow_stale else self.result_ttl_s
        if opened is None or opened[1] > limit:
            CACHE_REQUESTS.labels("result", "miss").inc()
            return None
        CACHE_REQUESTS.labels("result", "hit").inc()
        return opened

    def put_result(self, key: str, data: bytes) -> None:
        # kept for the stale window too; freshness is decided on read from the signed timestamp
        sealed = self.seal(key, data)
        self._call(lambda r: r.set(key, sealed, ex=max(self.result_ttl_s, self.stale_ttl_s)))

    # -- generation -----------------------------------------------------------------------
    def generation_key(self, collection: str) -> str:
        return f"{self.prefix}:gen:{collection}"

    def get_generation(self, collection: str) -> int | None:
        value = self._call(lambda r: r.get(self.generation_key(collection)))
        if value is _BYPASS or value is None:
            return None
        return int(value)

    def publish_generation(self, collection: str, generation: int) -> None:
        """Raises the shared generation to at least ``generation`` (never lowers it)."""
        script = (
            "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') "
            "if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end return 1"
        )
        self._call(lambda r: r.eval(script, 1, self.generation_key(collection), generation))

    def run_script(self, script: str, key: str, *args: object) -> bool:
        """Runs a Lua ``script`` on one key; False when Redis is bypassed or failed."""
        return self._call(lambda r: r.eval(script, 1, key, *args)) is not _BYPASS

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing must never fail shutdown
                pass
