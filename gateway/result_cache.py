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
from collections import OrderedDict
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


class _Memory:
    """The responses this process stored, by Redis key (the generation is part of it): a hit
    with a lease file costs no round trip. Bounded, least recently used out first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, now_s: float, ttl_s: float) -> bytes | None:
        with self._lock:
            got = self._items.get(key)
            if got is None:
                return None
            if now_s - got[0] > ttl_s:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return got[1]

    def put(self, key: str, payload: bytes, now_s: float) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = (now_s, payload)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class EdgeResultCache:
    def __init__(self, url: str, lease_key: bytes, *, entry_key: bytes | None = None, prefix: str = "hs",
                 collection: str = "products", timeout_s: float = 0.05, ttl_s: float = 300.0,
                 cooldown_s: float = 5.0, lease_file: str = "", memory_entries: int = 4096) -> None:
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
        # co-located with ranking: its lease file instead of Redis, and our own entries in memory
        self._lease_file = edge_cache.LeaseFile(lease_file) if lease_file else None
        self._memory = _Memory(memory_entries if lease_file else 0)

    # -- read scope ------------------------------------------------------------------------
    def ranking_answered(self, ok: bool) -> None:
        """Forwarded-call outcome: False when ranking refused the gateway's credential
        (nothing is served from the cache until a forwarded call succeeds again)."""
        self._authorized = ok

    # -- lookups ---------------------------------------------------------------------------
    def lookup(self, req: search_pb2.SearchRequest) -> Lookup:
        if req.no_cache:
            return MISS
        head, tail = edge_cache.entry_key_parts(self._prefix, self.collection, self._sealer.key_id,
                                                edge_cache.canonical_request(req))
        if self._lease_file is not None:
            return self._lookup_local(head, tail)
        if time.monotonic() < self._down_until:
            return MISS
        try:
            got = self._read(head, tail)
        except self._errors as exc:
            self._trip(exc)
            RESULTS.labels("error").inc()
            return MISS
        lease, entry = (got[0], got[1]) if got else (None, None)
        return self._answer(head, tail, lease, entry)

    def _lookup_local(self, head: str, tail: str) -> Lookup:
        """Lease from ranking's file; the entry from memory, else from Redis."""
        now = time.time()
        generation = self._generation(self._lease_file.read(), now)  # type: ignore[union-attr]
        if generation is None:
            RESULTS.labels("no_lease").inc()
            return MISS
        key = f"{head}{generation}{tail}"
        payload = self._memory.get(key, now, self.ttl_s) if self._authorized else None
        if payload is not None:
            RESULTS.labels("hit").inc()
            return Lookup(search_pb2.SearchResponse.FromString(payload), generation, key)
        entry = None
        if self._authorized and time.monotonic() >= self._down_until:
            try:
                entry = self._client.get(key)
            except self._errors as exc:
                self._trip(exc)
        return self._answer(head, tail, None, entry, generation)

    def _generation(self, lease: bytes | str | None, now_s: float) -> int | None:
        """The generation of a genuine, unexpired lease not older than one already seen."""
        generation = edge_cache.open_lease(self._lease_key, self.collection, lease, int(now_s * 1000))
        with self._lock:
            if generation is not None and generation < self._highest:
                return None  # replayed older lease
            if generation is not None:
                self._highest = generation
        return generation

    def _answer(self, head: str, tail: str, lease, entry, generation: int | None = None) -> Lookup:
        if generation is None:
            generation = self._generation(lease, time.time())
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
        self._memory.put(key, payload, time.time())
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
        keep = search_pb2.SearchResponse()
        keep.CopyFrom(resp)
        keep.request_id, keep.took_ms, keep.cache_hit = "", 0.0, False
        payload = keep.SerializeToString()
        self._memory.put(lookup.key, payload, time.time())
        value = self._sealer.seal(lookup.key, payload, time.time())
        if time.monotonic() < self._down_until:
            return
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
