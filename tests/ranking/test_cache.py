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
