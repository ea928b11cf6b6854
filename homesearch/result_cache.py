"""The result cache's contract, shared by its writer (ranking) and its edge reader (gateway).

Why the gateway reads it: a result-cache hit through the gateway cost ~2.5x a ``Health.Check``
(docs/performance.md), and nearly all of that was the second gRPC hop to ranking, whose own
hit work is a Redis GET. So the gateway answers hits itself, from the same Redis entries the
ranking writes, and forwards everything else.

Keys (``<prefix>`` defaults to ``hs``):

- result: ``<prefix>:res:<collection>:g<generation>:<sha256(canonical request)>`` = serialised
  SearchResponse, written by ranking after ranking a request it accepted;
- generation: ``<prefix>:gen:<collection>`` = the index generation, published by ranking at
  start, after every write and re-published every ``LEASE_REFRESH_S`` with a time-to-live of
  ``GENERATION_LEASE_MS`` (a lease).

Why a lease: the gateway trusts the generation it reads from Redis. If ranking could not
publish a new generation (Redis refusing writes, say), a reader would keep finding the old
generation's entries. With the lease, a generation nobody refreshes disappears within
``GENERATION_LEASE_MS``, and ranking's write path waits out the lease of a failed publish
before it acknowledges the write, so once an Upsert has returned no reader can be served a
result from before it. Readers look up the generation and the entry in one Redis round trip
(``HIT_SCRIPT``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time

from homesearch.v1 import search_pb2

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 10
GENERATION_LEASE_MS = 5000
LEASE_REFRESH_S = 1.0

# KEYS[1] = generation key; ARGV[1] = "<prefix>:res:<collection>:g", ARGV[2] = ":<digest>"
HIT_SCRIPT = (
    "local g = redis.call('GET', KEYS[1]) "
    "if not g then return false end "
    "return redis.call('GET', ARGV[1] .. g .. ARGV[2])"
)
# KEYS[1] = generation key; ARGV[1] = generation, ARGV[2] = lease ms. Never lowers the value.
PUBLISH_SCRIPT = (
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "local g = tonumber(ARGV[1]) if cur > g then g = cur end "
    "redis.call('SET', KEYS[1], g, 'PX', ARGV[2]) return g"
)


def canonical_request(req: search_pb2.SearchRequest, default_top_k: int = DEFAULT_TOP_K) -> bytes:
    """Deterministic bytes of everything that changes the ranked result (cache key input).

    Per-call fields (request_id, no_cache) are dropped, set-like lists sorted and
    the image replaced by its digest, so equal searches share one cache entry.
    """
    c = search_pb2.SearchRequest()
    c.CopyFrom(req)
    c.request_id = ""
    c.no_cache = False
    if c.image:
        c.image = hashlib.sha256(req.image).digest()
    c.top_k = c.top_k or default_top_k
    cats = sorted(set(c.filter.categories))
    del c.filter.categories[:]
    c.filter.categories.extend(cats)
    excl = sorted(set(c.filter.exclude_ids))
    del c.filter.exclude_ids[:]
    c.filter.exclude_ids.extend(excl)
    return c.SerializeToString(deterministic=True)


def result_key_prefix(prefix: str, collection: str) -> str:
    return f"{prefix}:res:{collection}:g"


def result_key(prefix: str, collection: str, generation: int, canonical: bytes) -> str:
    return f"{result_key_prefix(prefix, collection)}{generation}:{hashlib.sha256(canonical).hexdigest()}"


def generation_key(prefix: str, collection: str) -> str:
    return f"{prefix}:gen:{collection}"


class ResultCacheReader:
    """Read-only, fail-open: any Redis error is a miss, and Redis is left alone for ``cooldown_s``."""

    def __init__(self, url: str, *, prefix: str = "hs", collection: str = "products", timeout_s: float = 0.05,
                 cooldown_s: float = 5.0) -> None:
        import redis

        self._redis_errors = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                            retry_on_timeout=False, retry=None, health_check_interval=0)
        self._script = self._client.register_script(HIT_SCRIPT)
        self.prefix, self.collection, self.cooldown_s = prefix, collection, cooldown_s
        self._gen_key = generation_key(prefix, collection)
        self._res_prefix = result_key_prefix(prefix, collection)
        self._down_until = 0.0
        self._lock = threading.Lock()

    def get(self, req: search_pb2.SearchRequest) -> bytes | None:
        """The cached response bytes for ``req`` at the current generation, or None."""
        if req.no_cache or time.monotonic() < self._down_until:
            return None
        digest = hashlib.sha256(canonical_request(req)).hexdigest()
        try:
            value = self._script(keys=[self._gen_key], args=[self._res_prefix, f":{digest}"])
        except self._redis_errors as exc:
            with self._lock:
                self._down_until = time.monotonic() + self.cooldown_s
            log.warning("result cache unreachable, forwarding to ranking", extra={"error": repr(exc)})
            return None
        return value or None

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing must never fail shutdown
            pass
