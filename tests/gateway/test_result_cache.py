"""The gateway's result cache (homesearch/edge_cache.py) against the real ranking service and
Valkey: repeats are answered without ranking, and issue 14's guarantees hold there too: no
entry across index generations (also not by replaying an older lease), forged entries are
ignored, and nothing is served while ranking refuses the gateway's credential. Each runs with
the lease read from Redis and with the co-located lease file (entries then also in memory)."""

from __future__ import annotations

import time

import grpc
import pytest
import redis

from homesearch import edge_cache
from homesearch.v1 import ranking_pb2, ranking_pb2_grpc, search_pb2, search_pb2_grpc
from tests.fixtures.ranking import make_product, sample_products

HMAC_KEY = "cache-key-for-tests-" + "x" * 16
READ, WRITE = "hsr_gateway-cache-read-token", "hsw_gateway-cache-write-token"


def _counter(result: str) -> float:
    from gateway.result_cache import RESULTS

    return RESULTS.labels(result)._value.get()


@pytest.fixture(params=["redis-lease", "file-lease"])
def stack(request, make_ranking_service, make_gateway, redis_url, tmp_path):
    lease_file = str(tmp_path / "lease") if request.param == "file-lease" else ""
    ranking = make_ranking_service(cache_hmac_key=HMAC_KEY, service_tokens=f"gw:read:{READ},ing:write:{WRITE}",
                                   edge_cache_lease_file=lease_file)
    channel = grpc.insecure_channel(ranking.address)
    upsert = ranking_pb2_grpc.CatalogServiceStub(channel).Upsert

    def ingest(products):
        reqs = [ranking_pb2.UpsertRequest(product=p) for p in products]
        return upsert(iter(reqs), timeout=300, metadata=(("authorization", f"Bearer {WRITE}"),))

    assert not ingest(sample_products()[:4]).failed
    entry_key = tmp_path / "entry_key"
    entry_key.write_text("shared-entry-key-of-the-gateways")

    def gateway(token: str = READ):
        return make_gateway(ranking.address, ranking_token=token, cache_url=redis_url,
                            cache_lease_key=edge_cache.derive_lease_key(HMAC_KEY).hex(),
                            cache_prefix=ranking.settings.cache_prefix, cache_collection=ranking.settings.collection,
                            cache_entry_key_file=str(entry_key), cache_lease_file=lease_file)

    def replay(old: str) -> None:  # someone with write access to Redis (or the file) puts back an older lease
        if lease_file:
            edge_cache.write_lease_file(lease_file, old)
        else:
            redis.Redis.from_url(redis_url).set(edge_cache.lease_key(ranking.settings.cache_prefix,
                                                                     ranking.settings.collection), old, px=2000)

    def current_lease() -> str:
        if lease_file:
            return open(lease_file, encoding="ascii").read()
        return redis.Redis.from_url(redis_url).get(edge_cache.lease_key(ranking.settings.cache_prefix,
                                                                        ranking.settings.collection)).decode()

    ranking.replay, ranking.current_lease = replay, current_lease
    yield ranking, ingest, gateway
    channel.close()


def _search(gw, **fields) -> search_pb2.SearchResponse:
    with grpc.insecure_channel(gw.address) as ch:
        return search_pb2_grpc.SearchServiceStub(ch).Search(search_pb2.SearchRequest(**fields), metadata=gw.metadata,
                                                            timeout=30)


def test_a_repeat_is_answered_by_the_gateway_until_the_lease_runs_out(stack):
    ranking, _ingest, gateway = stack
    gw = gateway()
    first = _search(gw, text="white bookcase", top_k=3)
    hits = _counter("hit")
    ranking.stop()  # no hop needed for a repeat...
    again = _search(gw, text="white bookcase", top_k=3)
    assert again.cache_hit and _counter("hit") == hits + 1
    assert [h.product_id for h in again.hits] == [h.product_id for h in first.hits]
    assert again.index_generation == first.index_generation
    time.sleep(edge_cache.LEASE_MS / 1000 + 0.3)  # ...but with nobody renewing the lease, nothing is served
    with pytest.raises(grpc.RpcError) as err:
        _search(gw, text="white bookcase", top_k=3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_an_acknowledged_write_is_never_followed_by_an_older_hit(stack, redis_url):
    ranking, ingest, gateway = stack
    gw = gateway()
    _search(gw, text="lamp", top_k=5)
    assert _search(gw, text="lamp", top_k=5).cache_hit
    old_lease = ranking.current_lease()
    resp = ingest([make_product("lamp-new", "Brand new lamp", category="Lamp", description="a lamp")])
    after = _search(gw, text="lamp", top_k=5)
    assert not after.cache_hit and after.index_generation == resp.index_generation
    assert "lamp-new" in [h.product_id for h in after.hits]
    ranking.replay(old_lease)  # the older (genuine, unexpired) lease again: refused
    no_lease = _counter("no_lease")
    replayed = _search(gw, text="lamp", top_k=5)
    assert _counter("no_lease") == no_lease + 1
    assert replayed.index_generation == resp.index_generation and "lamp-new" in [h.product_id for h in replayed.hits]


def test_a_forged_entry_is_ignored(stack, redis_url):
    ranking, _ingest, gateway = stack
    first = gateway()
    genuine = _search(first, text="red sofa", top_k=3)
    assert _search(first, text="red sofa", top_k=3).cache_hit
    gw = gateway()  # shares the entry key and Redis, not the first one's memory
    r = redis.Redis.from_url(redis_url)
    prefix = f"{ranking.settings.cache_prefix}:gw:{ranking.settings.collection}:g{genuine.index_generation}:"
    keys = [k.decode() for k in r.scan_iter(match=prefix + "*")]
    assert keys
    fake = search_pb2.SearchResponse(index_generation=genuine.index_generation)
    fake.hits.add(product_id="forged-id", title="Buy here")
    forger = edge_cache.EntrySealer(b"not-the-gateways-key")
    for k in keys:
        r.set(k, forger.seal(k, fake.SerializeToString(), time.time()), px=60_000)
    rejected = _counter("rejected")
    _search(gw, text="oak table", top_k=3)  # a forwarded call first: ranking accepts this gateway
    got = _search(gw, text="red sofa", top_k=3)
    assert _counter("rejected") == rejected + 1
    assert "forged-id" not in [h.product_id for h in got.hits]
    assert [h.product_id for h in got.hits] == [h.product_id for h in genuine.hits]


def test_nothing_is_served_while_ranking_refuses_the_gateways_credential(stack):
    _ranking, _ingest, gateway = stack
    good = gateway()
    _search(good, text="oak table", top_k=3)
    assert _search(good, text="oak table", top_k=3).cache_hit  # the entry is there, shared key
    bad = gateway(token="hsr_not-a-token-ranking-knows")
    with pytest.raises(grpc.RpcError) as err:
        _search(bad, text="oak table", top_k=3)
    assert err.value.code() != grpc.StatusCode.OK
    with pytest.raises(grpc.RpcError):  # and still not after it was refused once
        _search(bad, text="oak table", top_k=3)


def test_leases_and_entries_are_checked():
    key = edge_cache.derive_lease_key(HMAC_KEY)
    now = 1_000_000
    lease = edge_cache.seal_lease(key, "products", 7, now + 1000)
    assert edge_cache.open_lease(key, "products", lease, now) == 7
    assert edge_cache.open_lease(key, "products", lease, now + 1000) is None  # expired
    assert edge_cache.open_lease(key, "other", lease, now) is None  # another collection's
    assert edge_cache.open_lease(key, "products", lease.replace("v1:7:", "v1:8:"), now) is None
    assert edge_cache.open_lease(b"other key", "products", lease, now) is None
    long = edge_cache.seal_lease(key, "products", 7, now + 10 * edge_cache.LEASE_MS)
    assert edge_cache.open_lease(key, "products", long, now) is None  # never issued that long
    sealer = edge_cache.EntrySealer(b"k1")
    value = sealer.seal("a", b"payload", 100.0)
    assert sealer.open("a", value, 101.0, 300) == b"payload"
    assert sealer.open("b", value, 101.0, 300) is None  # moved to another key
    assert sealer.open("a", value, 500.0, 300) is None  # too old
    assert edge_cache.EntrySealer(b"k2").open("a", value, 101.0, 300) is None
