"""Result-cache hits answered by the gateway from the ranking's Redis entries (homesearch/result_cache.py):
real gateway, real ranking service, real Valkey. A hit never reaches ranking; a write makes every
older entry unreachable; without a live generation lease the gateway forwards to ranking."""

from __future__ import annotations

import time

import grpc
import pytest
import redis

from homesearch import result_cache
from homesearch.gateway.service import RESULT_CACHE
from homesearch.ranking.metrics import CACHE_REQUESTS
from homesearch.v1 import search_pb2, search_pb2_grpc
from tests.fixtures.ranking import make_product


def _count(counter, *labels: str) -> float:
    return counter.labels(*labels)._value.get()


@pytest.fixture
def stack(make_ranking_service, make_gateway, redis_url):
    ranking = make_ranking_service()
    ranking.ingest([
        make_product("lamp-1", "Brass table lamp", category="lamp", description="warm light, brass base"),
        make_product("sofa-1", "Green velvet sofa", category="sofa", description="three seats"),
    ])
    gw = make_gateway(ranking.address, cache_url=redis_url, cache_prefix=ranking.settings.cache_prefix,
                      collection=ranking.settings.collection)
    channel = grpc.insecure_channel(gw.address)
    stub = search_pb2_grpc.SearchServiceStub(channel)

    def search(text: str, **kw) -> search_pb2.SearchResponse:
        return stub.Search(search_pb2.SearchRequest(text=text, top_k=5, **kw), metadata=gw.metadata, timeout=30)

    yield ranking, search
    channel.close()


def test_a_hit_is_answered_by_the_gateway_without_calling_ranking(stack):
    ranking, search = stack
    first = search("brass lamp")
    assert not first.cache_hit and first.hits[0].product_id == "lamp-1"
    gw_hits, rk_hits = _count(RESULT_CACHE, "hit"), _count(CACHE_REQUESTS, "result", "hit")
    second = search("brass lamp", request_id="req-2")
    assert second.cache_hit and second.request_id == "req-2"
    assert [h.product_id for h in second.hits] == [h.product_id for h in first.hits]
    assert _count(RESULT_CACHE, "hit") == gw_hits + 1
    assert _count(CACHE_REQUESTS, "result", "hit") == rk_hits  # ranking never saw it
    assert not search("brass lamp", no_cache=True).cache_hit


def test_a_write_makes_older_entries_unreachable(stack):
    ranking, search = stack
    search("velvet sofa")
    assert search("velvet sofa").cache_hit
    ranking.ingest([make_product("sofa-2", "Velvet sofa bed", category="sofa", description="velvet, folds out")])
    after = search("velvet sofa")  # right after Upsert returned
    assert not after.cache_hit
    assert "sofa-2" in [h.product_id for h in after.hits]


def test_without_a_live_generation_lease_the_gateway_forwards(stack, redis_url):
    ranking, search = stack
    search("table lamp")
    assert search("table lamp").cache_hit
    r = redis.Redis.from_url(redis_url)
    key = result_cache.generation_key(ranking.settings.cache_prefix, ranking.settings.collection)
    assert 0 < r.pttl(key) <= result_cache.GENERATION_LEASE_MS  # a lease, not a forever value
    r.delete(key)  # as if ranking had stopped renewing it
    forwarded = _count(RESULT_CACHE, "forwarded")
    resp = search("table lamp")
    assert _count(RESULT_CACHE, "forwarded") == forwarded + 1  # ranking answered (its own cache may hit)
    assert resp.hits[0].product_id == "lamp-1"
    deadline = time.monotonic() + 5 * result_cache.LEASE_REFRESH_S
    while r.get(key) is None and time.monotonic() < deadline:  # ranking renews the lease
        time.sleep(0.1)
    assert r.get(key) is not None
    assert search("table lamp").cache_hit
