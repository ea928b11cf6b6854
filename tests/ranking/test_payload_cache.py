"""The Edge index's in-process payload cache (services.ranking.index.payload_cache): bounded,
LRU, and never older than the last completed write, including for reads that overlap a write."""

from __future__ import annotations

import threading

import pytest

from services.ranking.index.edge import EdgeIndex
from services.ranking.index.payload_cache import PayloadCache
from services.ranking.index.schema import IndexedProduct, SearchFilter, SignalQuery, SparseVec, build_payload

DIM = 8


def _unit(i: int) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(DIM)]


def _product(pid: str, axis: int, title: str) -> IndexedProduct:
    payload = build_payload(
        product_id=pid, title=title, description="", category="Sofa", attributes={"Color": "red"},
        price=10.0, currency="EUR", in_stock=True, image_uris=[f"{pid}.jpg"], n_images=1,
        content_hash=f"h-{pid}-{title}", model_version="m1",
    )
    return IndexedProduct(product_id=pid, text_vector=_unit(axis), image_vectors=[_unit(axis)],
                          bm25=SparseVec([axis], [1.0]), payload=payload)


def _titles(index: EdgeIndex) -> dict[str, str]:
    _, (text,) = index.search_merged([SignalQuery("text", "text", dense=_unit(0), limit=10)], SearchFilter())
    return {c.product_id: c.payload["title"] for c in text}


def test_reads_across_a_write_are_not_cached():
    cache = PayloadCache(10)
    epoch = cache.epoch()
    cache.invalidate()  # a write lands between the reader's epoch and its put
    assert cache.put_many(epoch, {"a": {"title": "old"}}) is False
    assert cache.get_many(["a"]) == {}
    assert cache.put_many(cache.epoch(), {"a": {"title": "new"}}) is True
    assert cache.get_many(["a", "b"]) == {"a": {"title": "new"}}
    cache.invalidate()
    assert len(cache) == 0 and cache.get_many(["a"]) == {}


def test_bounded_least_recently_used_first_out():
    cache = PayloadCache(2)
    e = cache.epoch()
    cache.put_many(e, {"a": {"n": 1}, "b": {"n": 2}})
    assert cache.get_many(["a"]) == {"a": {"n": 1}}  # a is now the most recent
    cache.put_many(e, {"c": {"n": 3}})
    assert sorted(cache.get_many(["a", "b", "c"])) == ["a", "c"]
    off = PayloadCache(0)
    assert not off.enabled and off.put_many(off.epoch(), {"a": {}}) is False and off.get_many(["a"]) == {}
    with pytest.raises(ValueError):
        PayloadCache(-1)


def test_edge_search_sees_every_write(tmp_path):
    """Cached payloads are reused between queries, but an upsert or delete is visible to the very
    next query: the same answers as with the cache off."""
    on = EdgeIndex(tmp_path / "on", "products", optimize_delay_s=None)
    off = EdgeIndex(tmp_path / "off", "products", optimize_delay_s=None, payload_cache_entries=0)
    try:
        for idx in (on, off):
            idx.ensure_collection(DIM)
            idx.upsert([_product("a", 0, "first"), _product("b", 1, "other")])
        assert _titles(on) == _titles(off) == {"a": "first", "b": "other"}
        assert len(on._payloads) == 2 and len(off._payloads) == 0
        cached = _titles(on)  # served from the cache now: same dicts, same answer
        assert cached == {"a": "first", "b": "other"}
        for idx in (on, off):
            idx.upsert([_product("a", 0, "second")])
        assert _titles(on) == _titles(off) == {"a": "second", "b": "other"}
        for idx in (on, off):
            assert idx.delete(["b"]) == ["b"]
        assert _titles(on) == _titles(off) == {"a": "second"}
    finally:
        on.close()
        off.close()


def test_concurrent_writes_never_leave_a_stale_payload(tmp_path):
    """Readers hammer the cache while a writer renames a product many times; after the writer
    stops, every reader's next answer carries the last title (no stale entry survived a write)."""
    idx = EdgeIndex(tmp_path / "d", "products", optimize_delay_s=None)
    idx.ensure_collection(DIM)
    idx.upsert([_product("a", 0, "t0"), _product("b", 1, "b")])
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                _titles(idx)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(1, 40):
            idx.upsert([_product("a", 0, f"t{i}")])
            assert _titles(idx)["a"] == f"t{i}"
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors
    assert _titles(idx)["a"] == "t39"
    idx.close()


def test_a_read_during_the_write_is_not_kept(tmp_path):
    """Deterministic version of the race: a query runs after the write began but before the shard
    applied it (it caches the old payload); once the write returns, the next query has the new one."""
    idx = EdgeIndex(tmp_path / "d", "products", optimize_delay_s=None)
    idx.ensure_collection(DIM)
    idx.upsert([_product("a", 0, "old")])
    real = idx._shard
    seen: list[str] = []

    class ReadFirst:  # the shard, with one query slipped in before each update is applied
        def __getattr__(self, name):
            return getattr(real, name)

        def update(self, op):
            seen.append(_titles(idx)["a"])
            return real.update(op)

    idx._shard = ReadFirst()
    try:
        idx.upsert([_product("a", 0, "new")])
    finally:
        idx._shard = real
    assert seen == ["old"]
    assert _titles(idx)["a"] == "new"
    idx.close()


def test_size_comes_from_the_ranking_settings(tmp_path, monkeypatch):
    from pydantic import ValidationError

    from services.ranking.config import RankingSettings
    from services.ranking.index import open_index

    monkeypatch.setenv("HOMESEARCH_RANKING_PAYLOAD_CACHE_ENTRIES", "0")
    idx = open_index(RankingSettings(data_dir=tmp_path))
    try:
        assert isinstance(idx, EdgeIndex) and not idx._payloads.enabled
    finally:
        idx.close()
    monkeypatch.setenv("HOMESEARCH_RANKING_PAYLOAD_CACHE_ENTRIES", "-5")
    with pytest.raises(ValidationError):
        RankingSettings(data_dir=tmp_path)
    monkeypatch.delenv("HOMESEARCH_RANKING_PAYLOAD_CACHE_ENTRIES")
    assert RankingSettings(data_dir=tmp_path).payload_cache_entries == 20_000


def test_lookups_are_counted_per_payload(tmp_path):
    """homesearch_cache_requests_total{cache="payload"}: one per product payload a query needed."""
    from prometheus_client import REGISTRY

    def count(result: str) -> float:
        return REGISTRY.get_sample_value("homesearch_cache_requests_total", {"cache": "payload", "result": result}) or 0.0

    idx = EdgeIndex(tmp_path / "d", "products", optimize_delay_s=None)
    idx.ensure_collection(DIM)
    idx.upsert([_product("a", 0, "x"), _product("b", 1, "y")])
    hits, misses = count("hit"), count("miss")
    _titles(idx)
    assert (count("hit") - hits, count("miss") - misses) == (0, 2)
    _titles(idx)
    assert (count("hit") - hits, count("miss") - misses) == (2, 2)
    idx.close()
