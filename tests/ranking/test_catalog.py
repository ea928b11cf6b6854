"""CatalogService: idempotent upserts, per-product rejection, model guard, stream cuts."""

from __future__ import annotations

import grpc
import pytest

from services.ranking.index.base import IndexMeta, ModelMismatchError
from services.ranking.index.schema import SearchFilter, SignalQuery
from homesearch.v1 import ranking_pb2, search_pb2
from tests.fixtures.ranking import draw_product_image, make_product, sample_products


def test_unchanged_products_are_skipped_and_changes_rewritten(make_ranking_service):
    svc = make_ranking_service()
    products = sample_products()
    first = svc.ingest(products)
    assert (first.upserted, first.unchanged, len(first.failed)) == (len(products), 0, 0)
    gen = first.index_generation
    again = svc.ingest(products)
    assert (again.upserted, again.unchanged) == (0, len(products))
    assert again.index_generation == gen  # nothing written => no new generation, caches stay warm
    changed = products[3]
    changed.price = 59.0
    third = svc.ingest([changed])
    assert third.upserted == 1 and third.index_generation > gen
    hit = svc.rank(text="white bookcase", top_k=1, filter=search_pb2.Filter(categories=["Bookcase"])).hits[0]
    assert hit.product_id == "bookcase-white" and hit.price == pytest.approx(59.0)


def test_bad_products_are_rejected_whole_and_reported(make_ranking_service):
    svc = make_ranking_service()
    good = sample_products()[:2]
    jpeg = draw_product_image("lamp", (10, 10, 200))
    bad = [
        make_product("corrupt", "Broken photo lamp", category="Lamp", images=[b"\x89PNG\r\n\x1a\nnot really"]),
        make_product("truncated", "Half photo lamp", category="Lamp", images=[jpeg, jpeg[: len(jpeg) // 3]]),
        make_product("no-title", " ", category="Lamp"),
        make_product("", "No id", category="Lamp"),
        make_product("x" * 300, "Long id", category="Lamp"),
        make_product("nan-price", "Priceless", category="Lamp", price=float("nan")),
    ]
    dup = make_product("sofa-red", "Duplicate of the first", category="Sofa")
    resp = svc.ingest([good[0], *bad, good[1], dup])
    failed = {f.product_id: f for f in resp.failed}
    assert resp.upserted == 2
    assert set(failed) == {"corrupt", "truncated", "no-title", "", "x" * 300, "nan-price", "sofa-red"}
    assert all(f.code == "INVALID_ARGUMENT" for f in resp.failed)
    assert "duplicate" in failed["sofa-red"].message
    assert "image" in failed["truncated"].message
    # Nothing of a rejected product was written: not searchable by any signal.
    index = svc.app.index
    assert index.count() == 2
    assert index.content_hashes(["corrupt", "truncated", "nan-price"]) == {}
    # And the duplicate did not overwrite the first occurrence.
    titles = {h.product_id: h.title for h in svc.rank(text="sofa", top_k=5).hits}
    assert titles["sofa-red"] == good[0].title


def test_pipelined_batches_report_every_product_once_in_stream_order(make_ranking_service):
    """Batches of a stream are embedded concurrently (ingest_pipeline_depth); the response still
    counts each product once and lists failures in stream order, and only good products land."""
    svc = make_ranking_service(ingest_batch_size=2, ingest_pipeline_depth=3)
    good = sample_products()
    jpeg = draw_product_image("lamp", (10, 10, 200))
    truncated = make_product("truncated", "Half photo lamp", category="Lamp", images=[jpeg, jpeg[: len(jpeg) // 3]])
    nan_price = make_product("nan-price", "Priceless", category="Lamp", price=float("nan"))
    resp = svc.ingest([*good[:3], truncated, *good[3:5], nan_price, *good[5:]])
    assert resp.upserted == len(good) and resp.unchanged == 0
    assert [f.product_id for f in resp.failed] == ["truncated", "nan-price"]
    assert svc.app.index.count() == len(good)
    again = svc.ingest(good)
    assert (again.upserted, again.unchanged) == (0, len(good))


def test_model_version_mismatch_is_refused(make_ranking_service, tmp_path):
    svc = make_ranking_service(data_dir=tmp_path)
    svc.ingest(sample_products()[:2])
    real = svc.app.index.meta.model_version
    meta = IndexMeta.from_dict(svc.app.index.meta.to_dict())
    meta.model_version = "other-model-v9"
    svc.app.index.save_meta(meta)
    with pytest.raises(grpc.RpcError) as err:
        svc.ingest(sample_products()[2:4])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "other-model-v9" in err.value.details() and real in err.value.details()
    assert svc.app.index.count() == 2
    svc.stop()
    with pytest.raises(ModelMismatchError) as start_err:  # and at startup, naming both versions
        svc.start()
    assert "other-model-v9" in str(start_err.value) and real in str(start_err.value)


def test_stream_cut_midway_leaves_only_whole_products(make_ranking_service):
    svc = make_ranking_service(ingest_batch_size=2)
    products = sample_products()

    def requests():
        for p in products[:5]:
            yield ranking_pb2.UpsertRequest(product=p)
        raise RuntimeError("client crashed mid-stream")

    with pytest.raises(grpc.RpcError):
        svc.catalog_stub.Upsert(requests(), timeout=120)
    index = svc.app.index
    present = index.content_hashes([p.id for p in products])
    # The stream is the unit of atomicity: batches embedded before the cut were never
    # acknowledged, so none of them was written.
    assert present == {}
    for p in products:
        if p.id not in present:
            continue
        # Every written product has all of its signals.
        text_hits, image_hits = index.search(
            [SignalQuery("text", "text", dense=[0.0] * (index.meta.dim - 1) + [1.0], limit=50),
             SignalQuery("image", "image", dense=[0.0] * (index.meta.dim - 1) + [1.0], limit=50)],
            SearchFilter(),
        )
        assert p.id in {c.product_id for c in text_hits}
        if p.images:
            assert p.id in {c.product_id for c in image_hits}
    # Re-sending the whole stream completes the catalog; written ones are unchanged.
    resp = svc.ingest(products)
    assert resp.unchanged == len(present) and resp.upserted == len(products) - len(present)


def test_delete_unknown_ids_reported(make_ranking_service):
    svc = make_ranking_service()
    resp = svc.delete(["ghost"])
    assert resp.deleted == 0 and list(resp.not_found) == ["ghost"]


def test_catalog_language_setting_applies_to_a_new_index(make_ranking_service):
    """HOMESEARCH_RANKING_CATALOG_LANGUAGE=zh must reach query analysis (it was masked by the
    IndexMeta default "en") and Chinese products must get English glossary terms for BM25."""
    from services.ranking.catalog_service import enrichment_languages

    assert IndexMeta().catalog_language == ""
    assert enrichment_languages("en") == ("zh",) and enrichment_languages("zh") == ("en",)
    zh = make_ranking_service(catalog_language="zh")
    assert zh.app.state.meta.catalog_language == "zh"
    products = [
        make_product("chair-yellow", "JANINGE 椅子", category="椅子", attributes={"color": "黄色"}),
        make_product("wardrobe-black", "BREIM 衣柜", category="衣柜", attributes={"color": "黑色"}),
    ]
    assert not zh.ingest(products).failed
    fz = search_pb2.Fusion(lexical_weight=1.0)
    for text in ("yellow chair", "黄色椅子"):
        assert zh.rank(text=text, top_k=1, fusion=fz).hits[0].product_id == "chair-yellow", text
    zh.restart()  # persisted with the index
    assert zh.app.state.meta.catalog_language == "zh"
    en = make_ranking_service()
    assert en.app.state.meta.catalog_language == "en"
