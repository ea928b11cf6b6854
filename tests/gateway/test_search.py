"""End-to-end searches through the gateway: real gateway -> real ranking service ->
real Triton encoders, Qdrant Edge index and Valkey cache, over real sockets."""

from __future__ import annotations

import json
import uuid

import pytest

from homesearch.cli import search as search_cli
from homesearch.client import HomesearchClient
from tests.fixtures.gateway import API_KEY
from tests.fixtures.ranking import draw_product_image


def test_text_search(client: HomesearchClient) -> None:
    result = client.search("red sofa", top_k=5)
    assert result.hits, "no hits"
    assert "sofa-red" in result.product_ids[:3]
    top = result.hits[0]
    assert top.title and top.category and isinstance(top.score, float)
    assert result.request_id and result.took_ms > 0
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)


def test_image_search_jpeg_png_webp(client: HomesearchClient) -> None:
    for fmt in ("JPEG", "PNG", "WEBP"):
        photo = draw_product_image("chair", (40, 160, 60), size=224, fmt=fmt)
        result = client.search(image=photo, top_k=3)
        assert result.product_ids[0] == "chair-green", (fmt, result.product_ids)
        assert result.query_language == ""


def test_image_plus_text_search(client: HomesearchClient) -> None:
    photo = draw_product_image("sofa", (30, 60, 200))
    result = client.search("blue sofa", image=photo, top_k=3, explain=True)
    assert result.product_ids[0] == "sofa-blue"
    assert result.hits[0].signal_scores, "explain=True must return per-signal scores"


def test_image_from_path(client: HomesearchClient, tmp_path) -> None:
    path = tmp_path / "lamp.jpg"
    path.write_bytes(draw_product_image("lamp", (230, 200, 30)))
    assert client.search(image=path, top_k=2).product_ids[0] == "lamp-yellow"


def test_paging_and_top_k_default(client: HomesearchClient) -> None:
    full = client.search("furniture for the living room", top_k=0)
    assert 1 <= len(full) <= 10  # top_k 0 -> default 10 (the sample catalog has 8 products)
    two = client.search("furniture for the living room", top_k=2)
    assert len(two) == 2
    second = client.search("furniture for the living room", top_k=1, offset=1)
    assert second.product_ids == two.product_ids[1:2]


def test_filters_pass_through(client: HomesearchClient) -> None:
    sofas = client.search("comfortable seat", categories=["Sofa"], top_k=10)
    assert sofas.hits and {h.category for h in sofas.hits} == {"Sofa"}
    cheap = client.search("furniture", max_price=100.0, top_k=10)
    assert cheap.hits and all(h.price is not None and h.price <= 100.0 for h in cheap.hits)
    white = client.search("furniture", attributes={"color": "white"}, top_k=10)
    assert white.product_ids == ["bookcase-white"]
    stocked = client.search("sofa", in_stock_only=True, categories=["Sofa"], top_k=10)
    assert stocked.product_ids == ["sofa-red"]


def test_request_id_is_echoed(client: HomesearchClient) -> None:
    rid = "rid-" + uuid.uuid4().hex[:8]
    assert client.search("bookcase", request_id=rid).request_id == rid


def test_chinese_query_reaches_ranking(client: HomesearchClient) -> None:
    result = client.search("红色沙发", top_k=5)  # "red sofa"
    assert result.query_language == "zh"
    assert result.hits


def test_cli_table_and_json(gateway, capsys: pytest.CaptureFixture[str]) -> None:
    rc = search_cli.main(["white bookcase", "--addr", gateway.address, "--api-key", API_KEY, "--top-k", "3"])
    out = capsys.readouterr().out
    assert rc == 0 and "bookcase-white" in out and "BILLY Bookcase" in out
    rc = search_cli.main(["white bookcase", "--addr", gateway.address, "--api-key", API_KEY, "--json", "--explain"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["hits"][0]["product_id"] == "bookcase-white"
    rc = search_cli.main(["white bookcase", "--addr", gateway.address])  # no key
    assert rc == 1 and "UNAUTHENTICATED" in capsys.readouterr().err
