"""Issue-13 journeys through the public API: gateway -> ranking -> Triton / Qdrant Edge / Valkey,
via the Python client and the CLI (the session catalog of tests/fixtures/ranking.py)."""

from __future__ import annotations

import json

import grpc
import pytest

from homesearch.cli import search as search_cli
from homesearch.client import Facets, HomesearchClient, HomesearchError
from homesearch.v1 import search_pb2
from tests.fixtures.gateway import API_KEY
from tests.fixtures.ranking import draw_product_image


def test_similar_products_through_the_client(client: HomesearchClient) -> None:
    res = client.search(similar_to="sofa-red", top_k=10, explain=True)
    assert res.hits and "sofa-red" not in res.product_ids
    assert res.product_ids[0] == "sofa-blue"  # the other sofa: closest text and photo
    assert "similar to sofa-red" in res.interpretation
    other = client.search(similar_to="sofa-red", similar_scope="other", top_k=10)
    assert other.hits and "Sofa" not in {h.category for h in other.hits}


def test_unknown_product_is_not_found_through_the_gateway(client: HomesearchClient) -> None:
    with pytest.raises(HomesearchError) as ei:
        client.search(similar_to="does-not-exist")
    assert ei.value.code == grpc.StatusCode.NOT_FOUND
    assert "does-not-exist" in ei.value.message


def test_facets_through_the_client(client: HomesearchClient) -> None:
    res = client.search("furniture", top_k=1, facets=Facets(categories=True, attributes=["color"], price_edges=[50, 300]))
    assert dict((v.value, v.count) for v in res.facets["category"])["Sofa"] == 2
    assert [v.count for v in res.facets["price"]] == [2, 4, 2]  # 19, 24.99 / 79, 149, 249, 299 / 499, 549
    assert res.facets["price"][1].min_price == 50 and res.facets["price"][1].max_price == 300


def test_composed_query_through_the_client(client: HomesearchClient) -> None:
    photo = draw_product_image("sofa", (200, 30, 30))
    res = client.search("but in blue", image=photo, top_k=3, explain=True)
    assert res.product_ids[0] == "sofa-blue"
    assert "attribute ≈ 'blue'" in res.interpretation


@pytest.mark.parametrize(
    "fields,needle",
    [
        ({"similar_to_product_id": "sofa-red", "image": draw_product_image("sofa", (1, 2, 3))}, "cannot be combined with image"),
        ({"text": "sofa", "similar_scope": 2}, "similar_scope needs similar_to_product_id"),
        ({"text": "sofa", "similar_scope": 9, "similar_to_product_id": "x"}, "similar_scope has unknown value 9"),
        ({"text": "sofa", "region_mode": search_pb2.REGION_MODE_ON}, "region_mode ON needs an image"),
        ({"text": "sofa", "max_regions": 31}, "max_regions must be between 0 and 30"),
        ({"text": "sofa", "facets": search_pb2.FacetSpec(attributes=["weight"])}, "unknown facets.attributes key 'weight'"),
        ({"text": "sofa", "facets": search_pb2.FacetSpec(price_edges=[10, 10])}, "strictly increasing"),
        ({"text": "sofa", "facets": search_pb2.FacetSpec(price_edges=[float("nan")])}, "finite"),
        ({"similar_to_product_id": "x" * 300}, "similar_to_product_id is too long"),
    ],
)
def test_gateway_rejects_bad_journey_fields(search_stub, gateway, fields, needle) -> None:
    with pytest.raises(grpc.RpcError) as ei:
        search_stub.Search(search_pb2.SearchRequest(**fields), metadata=gateway.metadata, timeout=10)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in ei.value.details()


def test_cli_journeys(gateway, capsys) -> None:
    base = ["--addr", gateway.address, "--api-key", API_KEY]
    assert search_cli.main(["--similar-to", "chair-green", "--scope", "other", "--json", *base]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hits"] and all(h["category"] != "Chair" for h in out["hits"])
    assert search_cli.main(["sofa", "--facet-categories", "--facet-price", "50,300", "--facet-attr", "color", *base]) == 0
    text = capsys.readouterr().out
    assert "facet category:" in text and "facet price: *-50" in text and "facet attributes.color:" in text
    assert search_cli.main(["--similar-to", "nope", *base]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
