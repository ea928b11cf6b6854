"""Index layer on both backends: Qdrant Edge on disk and qdrant-client local mode."""

from __future__ import annotations

import time
import numpy as np
import pytest

from services.ranking.index.base import IndexMeta
from services.ranking.index.edge import EdgeIndex
from services.ranking.index.schema import (
    IndexedProduct,
    SearchFilter,
    SignalQuery,
    SparseVec,
    build_payload,
)
from services.ranking.index.server import ServerIndex

DIM = 8


def _unit(i: int) -> list[float]:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v.tolist()


def _product(pid: str, axis: int, *, category="Sofa", color="red", price=10.0, in_stock=True, images=1):
    payload = build_payload(
        product_id=pid, title=f"T {pid}", description="", category=category,
        attributes={"Color": color}, price=price, currency="EUR", in_stock=in_stock,
        image_uris=[f"{pid}.jpg"] * images, n_images=images, content_hash=f"h-{pid}", model_version="m1",
    )
    return IndexedProduct(
        product_id=pid,
        text_vector=_unit(axis),
        image_vectors=[_unit(axis)] + [_unit((axis + 1) % DIM)] * (images - 1) if images else [],
        bm25=SparseVec([axis], [1.0]),
        payload=payload,
    )


@pytest.fixture(params=["edge", pytest.param("server-local", marks=pytest.mark.filterwarnings("ignore::UserWarning"))])
def index(request, tmp_path):
    if request.param == "edge":
        idx = EdgeIndex(tmp_path / "data", "products")
    else:
        idx = ServerIndex.connect(":memory:", collection="products")
    idx.ensure_collection(DIM)
    yield idx
    idx.close()


def _ids(cands):
    return [c.product_id for c in cands]


def test_upsert_search_all_signals_one_call(index):
    index.upsert([_product("a", 0), _product("b", 1, images=0), _product("c", 2, images=2)])
    assert index.count() == 3
    text, image, lex = index.search(
        [
            SignalQuery("text", "text", dense=_unit(0), limit=3),
            SignalQuery("image", "image", dense=_unit(3), limit=3),
            SignalQuery("lexical", "bm25", sparse=SparseVec([1], [1.0]), limit=3),
        ],
        SearchFilter(),
    )
    assert _ids(text)[0] == "a"
    assert "b" not in _ids(image)  # no photo => no image vector => never an image candidate
    assert _ids(image)[0] == "c"  # MAX_SIM: c's second photo matches axis 3
    assert _ids(lex) == ["b"]
    assert text[0].payload["title"] == "T a"


def test_search_merged_is_merge_signal_lists_over_search(index):
    """Several searches of one signal (a photo query's visual rows) merge to each product's best
    score; Edge reads only the kept payloads, and the answer must be the same, ties included."""
    from services.ranking.query import merge_signal_lists

    index.upsert([_product(p, i % DIM, images=1 + i % 3, color="red" if i % 2 else "blue") for i, p in enumerate("abcdefghijkl")])
    rng = np.random.default_rng(3)
    rows = [rng.normal(size=DIM) for _ in range(6)] + [np.asarray(_unit(2))] * 2  # the last two tie
    queries = [SignalQuery("text", "text", dense=_unit(1), limit=4)]
    queries += [SignalQuery("image", "image", dense=(r / np.linalg.norm(r)).tolist(), limit=5) for r in rows]
    queries += [SignalQuery("lexical", "bm25", sparse=SparseVec([3], [1.0]), limit=3)]
    for flt in (SearchFilter(), SearchFilter(attributes={"color": "red"})):
        want_q, want = merge_signal_lists(queries, index.search(queries, flt))
        got_q, got = index.search_merged(queries, flt)
        assert [q.signal for q in got_q] == [q.signal for q in want_q] == ["text", "image", "lexical"]
        assert [[(c.product_id, c.score, c.payload) for c in r] for r in got] == \
            [[(c.product_id, c.score, c.payload) for c in r] for r in want]
        assert len(got[1]) == 5
        # a text query's shape: one search per signal, the same products found by several
        # signals (their payloads are read once for the whole query on Edge)
        text_like = [SignalQuery("text", "text", dense=_unit(2), limit=6),
                     SignalQuery("lexical", "bm25", sparse=SparseVec([3], [1.0]), limit=6),
                     SignalQuery("image", "image", dense=_unit(2), limit=6)]
        want_q, want = merge_signal_lists(text_like, index.search(text_like, flt))
        got_q, got = index.search_merged(text_like, flt)
        assert [q.signal for q in got_q] == ["text", "lexical", "image"]
        assert [[(c.product_id, c.score, c.payload) for c in r] for r in got] == \
            [[(c.product_id, c.score, c.payload) for c in r] for r in want]
        assert {c.product_id for c in got[0]} & {c.product_id for c in got[2]}  # overlap exercised
    assert index.search_merged([], SearchFilter()) == ([], [])


def test_filters_apply_inside_index(index):
    index.upsert([
        _product("a", 0, category="Sofa", color="white, pine", price=10.0, in_stock=True),
        _product("b", 1, category="Bed", color="Red", price=50.0, in_stock=False),
        _product("c", 2, category="sofa", color="blue", price=100.0, in_stock=True),
    ])
    q = [SignalQuery("text", "text", dense=_unit(0), limit=10)]

    def run(**kw):
        return set(_ids(index.search(q, SearchFilter(**kw))[0]))

    assert run(categories=["SOFA"]) == {"a", "c"}
    assert run(attributes={"color": "pine"}) == {"a"}  # part of "white, pine"
    assert run(attributes={"color": "white, pine"}) == {"a"}
    assert run(attributes={"color": "red"}) == {"b"}  # case-insensitive
    assert run(attributes={"color": "whi"}) == set()  # exact, not substring
    assert run(min_price=20.0, max_price=100.0) == {"b", "c"}
    assert run(max_price=10.0) == {"a"}
    assert run(in_stock_only=True) == {"a", "c"}
    assert run(exclude_ids=["a"]) == {"b", "c"}
    assert run(categories=["sofa"], in_stock_only=True, max_price=50) == {"a"}


def test_upsert_replaces_and_delete_removes_every_vector(index):
    index.upsert([_product("a", 0, images=2), _product("b", 1)])
    assert index.content_hashes(["a", "b", "zz"]) == {"a": "h-a", "b": "h-b"}
    moved = _product("a", 5, images=0)
    index.upsert([moved])
    assert index.count() == 2
    text, image = index.search(
        [SignalQuery("text", "text", dense=_unit(5), limit=5), SignalQuery("image", "image", dense=_unit(0), limit=5)],
        SearchFilter(),
    )
    assert _ids(text)[0] == "a"
    assert "a" not in _ids(image)  # old photos are gone with the re-upsert
    assert index.delete(["a", "nope"]) == ["a"]
    assert index.count() == 1
    results = index.search(
        [
            SignalQuery("text", "text", dense=_unit(5), limit=5),
            SignalQuery("image", "image", dense=_unit(0), limit=5),
            SignalQuery("lexical", "bm25", sparse=SparseVec([5], [1.0]), limit=5),
        ],
        SearchFilter(),
    )
    assert all("a" not in _ids(r) for r in results)


def test_meta_round_trip(index):
    meta = IndexMeta(model_version="m1", dim=DIM, generation=7, attribute_keys=["color"])
    index.save_meta(meta)
    assert index.meta.generation == 7 and index.meta.model_version == "m1"


def test_edge_persists_across_reopen(tmp_path):
    idx = EdgeIndex(tmp_path, "products")
    idx.ensure_collection(DIM)
    idx.upsert([_product(f"p{i}", i % DIM) for i in range(20)])
    idx.save_meta(IndexMeta(model_version="m1", dim=DIM, generation=3, attribute_keys=["color"]))
    idx.close()
    again = EdgeIndex(tmp_path, "products")
    again.ensure_collection(DIM)
    try:
        assert again.count() == 20
        assert again.meta.generation == 3
        res = again.search([SignalQuery("text", "text", dense=_unit(3), limit=3)], SearchFilter(attributes={"color": "red"}))
        assert res[0][0].payload["product_id"] in {"p3", "p11", "p19"}
        assert again.disk_bytes() > 0
    finally:
        again.close()


def test_edge_writes_schedule_one_optimisation_after_a_quiet_period(tmp_path):
    """Qdrant Edge never optimises by itself; a burst of writes must trigger exactly one run."""
    from services.ranking.index.edge import _DebouncedOptimizer

    calls = []
    debouncer = _DebouncedOptimizer(lambda: calls.append(time.monotonic()) or True, delay_s=0.3)
    for _ in range(5):
        debouncer.schedule()
        time.sleep(0.05)
    assert calls == []  # still inside the quiet period
    time.sleep(0.8)
    assert len(calls) == 1
    _DebouncedOptimizer(lambda: calls.append(0.0) or True, delay_s=None).schedule()  # disabled
    time.sleep(0.1)
    assert len(calls) == 1


def test_edge_optimize_keeps_every_product_searchable(tmp_path):
    idx = EdgeIndex(tmp_path, "products", optimize_delay_s=None)
    idx.ensure_collection(DIM)
    idx.upsert([_product(f"p{i}", i % DIM) for i in range(50)])
    idx.delete(["p0"])
    try:
        idx.optimize()
        assert idx.optimize() is False  # nothing left to do
        assert idx.count() == 49
        res = idx.search([SignalQuery("text", "text", dense=_unit(3), limit=3)], SearchFilter())
        assert res[0][0].payload["product_id"] in {f"p{i}" for i in range(3, 50, DIM)}
    finally:
        idx.close()


def test_retrieve_reads_all_vectors_or_only_the_named_ones(index):
    """Shop the look reads two of the four vectors of ~550 candidates; naming them must return
    exactly those (and the payload), on both backends; unknown ids are left out."""
    index.upsert([_product("a", 0, images=2), _product("b", 1, images=0)])
    full = index.retrieve(["a", "b", "nope"])
    assert sorted(full) == ["a", "b"]
    assert {"text", "image", "bm25"} <= set(full["a"].vectors)
    assert full["a"].payload["title"] == "T a"
    some = index.retrieve(["a", "b"], vectors=["image"])
    assert set(some["a"].vectors) == {"image"} and set(some["b"].vectors) <= {"image"}
    np.testing.assert_allclose(np.asarray(some["a"].vectors["image"]), np.asarray(full["a"].vectors["image"]))
    assert some["a"].payload == full["a"].payload
    assert index.retrieve(["a"], vectors=[])["a"].vectors == {}
