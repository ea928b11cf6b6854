"""The gateway's result cache: repeats answered from Redis without the hop to ranking.

Contract and guarantees (signed generation lease, signed entries, read scope):
``homesearch/edge_cache.py``. Fail-open like ranking's cache: any Redis error is a miss, and
Redis is left alone for ``cooldown_s`` after one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass

from prometheus_client import Counter

from homesearch import edge_cache
from homesearch.v1 import search_pb2

log = logging.getLogger(__name__)

RESULTS = Counter(
    "homesearch_gateway_result_cache_total",
    "Gateway result-cache lookups: hit, miss, no_lease (no valid generation lease), rejected "
    "(entry failed its signature), error (Redis unreachable).",
    ["result"],
)


@dataclass(frozen=True)
class Lookup:
    """A lookup's outcome: the cached response, or where the forwarded answer may be stored."""

    response: search_pb2.SearchResponse | None
    generation: int | None  # the lease's generation; None = nothing may be stored
    key: str = ""


MISS = Lookup(None, None)


class EdgeResultCache:
    def __init__(self, url: str, lease_key: bytes, *, entry_key: bytes | None = None, prefix: str = "hs",
                 collection: str = "products", timeout_s: float = 0.05, ttl_s: float = 300.0,
                 cooldown_s: float = 5.0) -> None:
        import redis

        self._errors = (redis.RedisError, OSError)
        self._no_script = redis.exceptions.NoScriptError
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                            retry_on_timeout=False, retry=None, health_check_interval=0)
        self._sha = hashlib.sha1(edge_cache.HIT_SCRIPT.encode()).hexdigest()
        self._lease_key = lease_key
        self._sealer = edge_cache.EntrySealer(entry_key or os.urandom(32))
        self.collection, self.ttl_s, self.cooldown_s = collection, ttl_s, cooldown_s
        self._lease_redis_key = edge_cache.lease_key(prefix, collection)
        self._prefix = prefix
        self._highest = 0  # generations only move forward: an older lease is a replay
        self._down_until = 0.0
        self._authorized = False  # ranking accepted our credential on the last forwarded call
        self._lock = threading.Lock()

    # -- read scope ------------------------------------------------------------------------
    def ranking_answered(self, ok: bool) -> None:
        """Forwarded-call outcome: False when ranking refused the gateway's credential
        (nothing is served from the cache until a forwarded call succeeds again)."""
        self._authorized = ok

    # -- lookups ---------------------------------------------------------------------------
    def lookup(self, req: search_pb2.SearchRequest) -> Lookup:
        if req.no_cache or time.monotonic() < self._down_until:
            return MISS
        head, tail = edge_cache.entry_key_parts(self._prefix, self.collection, self._sealer.key_id,
                                                edge_cache.canonical_request(req))
        try:
            got = self._read(head, tail)
        except self._errors as exc:
            self._trip(exc)
            RESULTS.labels("error").inc()
            return MISS
        lease, entry = (got[0], got[1]) if got else (None, None)
        generation = edge_cache.open_lease(self._lease_key, self.collection, lease, int(time.time() * 1000))
        with self._lock:
            if generation is not None and generation < self._highest:
                generation = None  # replayed older lease
            elif generation is not None:
                self._highest = generation
        if generation is None:
            RESULTS.labels("no_lease").inc()
            return MISS
        key = f"{head}{generation}{tail}"
        if not entry or not self._authorized:
            RESULTS.labels("miss").inc()
            return Lookup(None, generation, key)
        payload = self._sealer.open(key, entry, time.time(), self.ttl_s)
        if payload is None:
            RESULTS.labels("rejected").inc()
            log.warning("gateway cache entry failed its signature check; ignored", extra={"key": key})
            return Lookup(None, generation, key)
        RESULTS.labels("hit").inc()
        return Lookup(search_pb2.SearchResponse.FromString(payload), generation, key)

    def _read(self, head: str, tail: str):
        """``HIT_SCRIPT`` as a read-only script (EVALSHA_RO; the gateway's Valkey user may only
        read the lease), loaded by EVAL_RO the first time."""
        try:
            return self._client.evalsha_ro(self._sha, 1, self._lease_redis_key, head, tail)
        except self._no_script:
            return self._client.eval_ro(edge_cache.HIT_SCRIPT, 1, self._lease_redis_key, head, tail)

    def store(self, lookup: Lookup, resp: search_pb2.SearchResponse) -> None:
        """Keeps ranking's full answer, if it was computed at the lease's generation."""
        if lookup.generation is None or resp.index_generation != lookup.generation or resp.HasField("degraded"):
            return
        if time.monotonic() < self._down_until:
            return
        keep = search_pb2.SearchResponse()
        keep.CopyFrom(resp)
        keep.request_id, keep.took_ms, keep.cache_hit = "", 0.0, False
        value = self._sealer.seal(lookup.key, keep.SerializeToString(), time.time())
        try:
            self._client.set(lookup.key, value, px=int(self.ttl_s * 1000))
        except self._errors as exc:
            self._trip(exc)

    def _trip(self, exc: BaseException) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.cooldown_s
        log.warning("gateway result cache unreachable; forwarding to ranking", extra={"error": repr(exc)})

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing must never fail shutdown
            pass
