"""Redis cache: hits/misses, fail-open bypass and the circuit breaker, against real Valkey/Redis."""

from __future__ import annotations

import time

import numpy as np
from prometheus_client import REGISTRY

from services.ranking.cache import CircuitBreaker, RedisCache


def _count(cache: str, result: str) -> float:
    return REGISTRY.get_sample_value("homesearch_cache_requests_total", {"cache": cache, "result": result}) or 0.0


def test_embedding_and_result_round_trip(cache_redis_url):
    c = RedisCache(cache_redis_url, prefix=f"hs-t-{time.time_ns()}")
    key = c.embedding_key("m1", "q", "white bookcase".encode())
    assert c.get_embedding(key) is None
    v = np.arange(4, dtype=np.float32)
    c.put_embedding(key, v)
    np.testing.assert_array_equal(c.get_embedding(key), v)
    assert c.embedding_key("m2", "q", b"white bookcase") != key  # model version is part of the key
    rk = c.result_key("products", 3, b"req")
    assert rk != c.result_key("products", 4, b"req")  # generation is part of the key
    hits = _count("result", "hit")
    c.put_result(rk, b"payload")
    assert c.get_result(rk) == b"payload"
    assert _count("result", "hit") == hits + 1
    c.publish_generation("products", 5)
    c.publish_generation("products", 2)  # never lowers
    assert c.get_generation("products") == 5


def test_dead_redis_is_bypassed_and_breaker_makes_it_cheap(valkey_server):
    c = RedisCache(valkey_server.url, timeout_s=0.05, breaker=CircuitBreaker(failures=2, cooldown_s=0.3))
    key = c.embedding_key("m", "q", b"x")
    c.put_embedding(key, np.ones(2, dtype=np.float32))
    assert c.get_embedding(key) is not None
    valkey_server.stop()
    bypass = _count("embedding", "bypass")
    for _ in range(2):
        assert c.get_embedding(key) is None  # errors become misses, never exceptions
    assert c.breaker.is_open
    t0 = time.perf_counter()
    for _ in range(200):
        assert c.get_embedding(key) is None
    assert (time.perf_counter() - t0) / 200 < 0.001  # open breaker: no network at all
    assert _count("embedding", "bypass") >= bypass + 202
    valkey_server.start()
    time.sleep(0.35)
    assert c.get_embedding(key) is None  # half-open probe succeeds (the restarted server is empty)
    assert not c.breaker.is_open


def test_disabled_cache_is_always_bypass():
    c = RedisCache("")
    assert not c.enabled
    assert c.get_result("k") is None
    c.put_result("k", b"v")


def test_breaker_half_open_allows_one_probe():
    now = [0.0]
    b = CircuitBreaker(failures=1, cooldown_s=1.0, clock=lambda: now[0])
    b.failure()
    assert b.is_open and not b.allow()
    now[0] = 1.5
    assert b.allow() and not b.allow()  # one probe only
    b.failure()  # probe failed: open again for a full cool-down
    now[0] = 2.0
    assert not b.allow()


def _rejected(cache: str) -> float:
    return REGISTRY.get_sample_value("homesearch_cache_rejected_total", {"cache": cache}) or 0.0


def test_forged_corrupt_moved_and_unsigned_entries_are_ignored_and_counted(cache_redis_url):
    """Anyone who can write to Redis but lacks the HMAC key can only cause misses."""
    import redis

    prefix = f"hs-t-{time.time_ns()}"
    c = RedisCache(cache_redis_url, prefix=prefix, hmac_key=b"k" * 32)
    other = RedisCache(cache_redis_url, prefix=prefix, hmac_key=b"x" * 32)  # another key holder
    raw = redis.Redis.from_url(cache_redis_url)
    rk, rk2 = c.result_key("products", 1, b"a"), c.result_key("products", 1, b"b")
    c.put_result(rk, b"genuine")
    assert c.get_result(rk) == b"genuine"
    before = _rejected("result")
    good = raw.get(rk)
    for value in (b"forged plain payload", good[:-1] + b"X", other.seal(rk, b"evil")):
        raw.set(rk, value)
        assert c.get_result(rk) is None
    raw.set(rk2, good)  # a genuine entry moved to another key
    assert c.get_result(rk2) is None
    assert _rejected("result") == before + 4
    ek = c.embedding_key("m", "q", b"sofa")
    raw.set(ek, np.ones(4, dtype=np.float32).tobytes())  # unsigned vector
    assert c.get_embedding(ek) is None and _rejected("embedding") >= 1


def test_stale_results_only_when_asked_and_within_the_bound(cache_redis_url):
    now = [1000.0]
    c = RedisCache(cache_redis_url, prefix=f"hs-t-{time.time_ns()}", hmac_key=b"k" * 32, result_ttl_s=300,
                   stale_ttl_s=3600, clock=lambda: now[0])
    rk = c.result_key("products", 1, b"q")
    c.put_result(rk, b"r")
    now[0] += 600  # older than the freshness TTL
    assert c.get_result(rk) is None
    payload, age = c.get_result_aged(rk, allow_stale=True)
    assert payload == b"r" and age == 600
    now[0] += 3600  # beyond the stale bound
    assert c.get_result_aged(rk, allow_stale=True) is None
