"""Rank/IndexInfo through gRPC: real encoders (Triton), Qdrant Edge on disk, Valkey."""

from __future__ import annotations

import grpc
import pytest
from prometheus_client import REGISTRY

from homesearch.v1 import search_pb2
from tests.fixtures.ranking import sample_products


def _ids(resp) -> list[str]:
    return [h.product_id for h in resp.hits]


def _image(handle, pid: str, i: int = 0) -> bytes:
    return next(p for p in handle.catalog if p.id == pid).images[i]


@pytest.mark.parametrize(
    "text,expected",
    [("red sofa", "sofa-red"), ("white bookcase", "bookcase-white"), ("grey wool rug", "rug-grey"),
     ("oak dining table", "table-oak")],
)
def test_text_search(ranking_service, text, expected):
    resp = ranking_service.rank(text=text, top_k=3, no_cache=True)
    assert _ids(resp)[0] == expected, resp
    assert resp.query_language == "en"
    assert resp.model_version


def test_chinese_and_english_queries_find_the_same_product(ranking_service):
    en = ranking_service.rank(text="white bookcase", top_k=3, explain=True)
    zh = ranking_service.rank(text="白色书架", top_k=3, explain=True)
    assert _ids(en)[0] == "bookcase-white"
    assert "bookcase-white" in _ids(zh)[:2], zh
    assert zh.query_language == "zh"
    assert zh.hits[0].explanation  # says which language path was taken


def test_image_search_finds_the_photographed_product(ranking_service):
    resp = ranking_service.rank(image=_image(ranking_service, "chair-green"), top_k=3, no_cache=True)
    assert _ids(resp)[0] == "chair-green"
    assert resp.query_language == ""
    # A product's second photo also finds it (multivector MAX_SIM).
    resp = ranking_service.rank(image=_image(ranking_service, "sofa-red", 1), top_k=3, no_cache=True)
    assert _ids(resp)[0] == "sofa-red"


def test_image_plus_text_search(ranking_service):
    resp = ranking_service.rank(text="sofa", image=_image(ranking_service, "sofa-blue"), top_k=3, explain=True)
    assert _ids(resp)[0] == "sofa-blue"
    assert {"text", "image", "lexical"} <= set(resp.hits[0].signal_scores)


def test_explain_reports_signals(ranking_service):
    resp = ranking_service.rank(text="yellow table lamp", top_k=2, explain=True, no_cache=True)
    top = resp.hits[0]
    assert top.product_id == "lamp-yellow"
    assert {"text", "image", "lexical"} <= set(top.signal_scores)
    assert "fusion" in top.explanation
    plain = ranking_service.rank(text="yellow table lamp", top_k=2, no_cache=True)
    assert not plain.hits[0].signal_scores and not plain.hits[0].explanation


def test_rrf_and_request_weights(ranking_service):
    rrf = ranking_service.rank(text="red sofa", top_k=3, fusion=search_pb2.Fusion(method=search_pb2.Fusion.RRF))
    assert _ids(rrf)[0] == "sofa-red"
    lexical_only = ranking_service.rank(text="stackable", top_k=3, fusion=search_pb2.Fusion(lexical_weight=1.0))
    assert _ids(lexical_only)[0] == "chair-green"


@pytest.mark.parametrize(
    "flt,allowed",
    [
        (search_pb2.Filter(categories=["Sofa"]), {"sofa-red", "sofa-blue"}),
        (search_pb2.Filter(attributes={"color": "blue"}), {"sofa-blue"}),
        (search_pb2.Filter(attributes={"Material": "FABRIC"}), {"sofa-red", "sofa-blue"}),
        (search_pb2.Filter(attributes={"color": "brown"}), {"table-oak"}),  # part of "oak veneer, brown"
        (search_pb2.Filter(min_price=100, max_price=300), {"sofa-red", "bed-black", "rug-grey"}),
        (search_pb2.Filter(in_stock_only=True), {"sofa-red", "chair-green", "bookcase-white", "lamp-yellow", "table-oak"}),
        (search_pb2.Filter(categories=["Sofa"], in_stock_only=True), {"sofa-red"}),
        (search_pb2.Filter(exclude_ids=["sofa-red", "sofa-blue"]), None),
    ],
)
def test_filters_exclude_what_they_must(ranking_service, flt, allowed):
    resp = ranking_service.rank(text="sofa", top_k=20, filter=flt)
    ids = set(_ids(resp))
    if allowed is None:
        assert ids and not ids & {"sofa-red", "sofa-blue"}
    else:
        assert ids == allowed  # filters apply inside the index: every allowed product still comes back


def test_pagination_threshold_and_top_k(ranking_service):
    full = _ids(ranking_service.rank(text="furniture", top_k=8))
    assert len(full) == 8
    page2 = _ids(ranking_service.rank(text="furniture", top_k=3, offset=3))
    assert page2 == full[3:6]
    hi = ranking_service.rank(text="furniture", top_k=8, score_threshold=0.999)
    assert len(hi.hits) < 8


@pytest.mark.parametrize(
    "fields,needle",
    [
        ({}, "text"),
        ({"text": "sofa", "top_k": 101}, "top_k"),
        ({"text": "sofa", "offset": 5000}, "offset"),
        ({"text": "sofa", "filter": search_pb2.Filter(attributes={"flavour": "x"})}, "unknown filter attribute key(s): flavour"),
        ({"text": "sofa", "filter": search_pb2.Filter(min_price=10, max_price=1)}, "min_price"),
        ({"text": "sofa", "fusion": search_pb2.Fusion(text_weight=-1)}, "text_weight"),
        ({"image": b"definitely not an image"}, ""),
    ],
)
def test_invalid_requests(ranking_service, fields, needle):
    with pytest.raises(grpc.RpcError) as err:
        ranking_service.rank(**fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


def test_result_cache_hits_on_repeat(ranking_service):
    first = ranking_service.rank(text="green chair for the kitchen", top_k=3)
    second = ranking_service.rank(text="green chair for the kitchen", top_k=3, request_id="abc")
    assert not first.cache_hit and second.cache_hit
    assert _ids(first) == _ids(second)
    assert second.request_id == "abc"


def test_index_info(ranking_service):
    info = ranking_service.info()
    assert info.products == len(sample_products())
    assert info.backend == "edge"
    # photo_color: named colours the service estimates from each main photo (ingest/photo_colour.py);
    # photo_material: the material probe's labels, when the served tower version has a probe
    # (ingest/photo_material.py; image version = the model version's second part, visual the third)
    from services.ranking.ingest.photo_material import probe_for

    versions = info.model_version.split("|")
    material = probe_for(versions[1], versions[2] if len(versions) > 2 else "") is not None
    assert set(info.attribute_keys) == {"color", "material", "size", "photo_color"} | ({"photo_material"} if material else set())
    assert info.model_version and info.disk_bytes > 0 and info.index_generation > 0


def test_delete_and_reupsert_are_visible_immediately(make_ranking_service):
    svc = make_ranking_service()
    products = sample_products()
    svc.ingest(products)
    q = dict(text="red sofa", top_k=5)
    assert _ids(svc.rank(**q))[0] == "sofa-red"
    assert svc.rank(**q).cache_hit
    d = svc.delete(["sofa-red", "nope"])
    assert d.deleted == 1 and list(d.not_found) == ["nope"]
    after = svc.rank(**q)
    assert not after.cache_hit and "sofa-red" not in _ids(after)
    img = svc.rank(image=products[0].images[0], top_k=3)
    assert "sofa-red" not in _ids(img)  # every vector went with the point
    r = svc.ingest([products[0]])
    assert r.upserted == 1
    again = svc.rank(**q)
    assert not again.cache_hit and _ids(again)[0] == "sofa-red"


def test_restart_keeps_every_product(make_ranking_service):
    svc = make_ranking_service()
    svc.ingest(sample_products())
    before = svc.info()
    svc.restart()
    after = svc.info()
    assert after.products == before.products == len(sample_products())
    assert after.index_generation > before.index_generation  # bumped on open: old cache entries unreachable
    assert _ids(svc.rank(text="white bookcase", top_k=1)) == ["bookcase-white"]
    assert svc.ingest(sample_products()).unchanged == len(sample_products())


def _bypasses() -> float:
    return sum(
        REGISTRY.get_sample_value("homesearch_cache_requests_total", {"cache": c, "result": "bypass"}) or 0.0
        for c in ("embedding", "result")
    )


def test_searches_survive_redis_dying(make_ranking_service, valkey_server):
    svc = make_ranking_service(redis_url=valkey_server.url, breaker_cooldown_s=0.5)
    svc.ingest(sample_products()[:3])
    assert not svc.rank(text="blue sofa", top_k=2).cache_hit
    assert svc.rank(text="blue sofa", top_k=2).cache_hit
    valkey_server.stop()
    before = _bypasses()
    for _ in range(3):
        resp = svc.rank(text="blue sofa", top_k=2)
        assert not resp.cache_hit and _ids(resp)[0] == "sofa-blue"
    assert _bypasses() > before
    valkey_server.start()
    import time

    time.sleep(0.6)
    svc.rank(text="blue sofa", top_k=2)
    assert svc.rank(text="blue sofa", top_k=2).cache_hit  # back to caching once Redis returns


def test_service_without_redis_url(make_ranking_service):
    svc = make_ranking_service(redis_url="")
    svc.ingest(sample_products()[:2])
    assert _ids(svc.rank(text="red sofa", top_k=1)) == ["sofa-red"]


def test_server_backend_end_to_end(make_ranking_service):
    """The qdrant-client backend behind the full service (local mode stands in for a server)."""
    svc = make_ranking_service(backend="server", qdrant_url=":memory:")
    r = svc.ingest(sample_products())
    assert r.upserted == len(sample_products()) and not r.failed
    assert _ids(svc.rank(text="white bookcase", top_k=1)) == ["bookcase-white"]
    resp = svc.rank(text="sofa", top_k=10, filter=search_pb2.Filter(categories=["Sofa"], in_stock_only=True))
    assert _ids(resp) == ["sofa-red"]
    assert svc.info().backend == "server"


def test_health_is_serving_once_ready(ranking_service):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(ranking_service.address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in ("", "homesearch.v1.RankingService", "homesearch.v1.CatalogService"):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
