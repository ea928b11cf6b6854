"""Fast checks of the gateway's pure parts (no servers): validation rules, key
parsing, constant-time key lookup, token buckets, client/CLI formatting."""

from __future__ import annotations

import pytest

from homesearch.client import Fusion, SearchResult, hit_from_proto
from gateway.auth import ApiKeyAuth, ConfigError, bearer_token, parse_api_keys
from gateway.config import GatewaySettings
from gateway.rate_limit import RateLimiter
from gateway.validation import RequestError, sniff_image_type, validate_request
from homesearch.cli.search import format_table
from homesearch.v1 import search_pb2

S = GatewaySettings(api_keys="x:12345678")
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def check(req: search_pb2.SearchRequest, keys: set[str] | None = None) -> None:
    validate_request(req, S, attribute_keys=lambda _requested: keys)


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (search_pb2.SearchRequest(), "neither text nor image"),
        (search_pb2.SearchRequest(text="   \t\n"), "whitespace-only"),
        (search_pb2.SearchRequest(text="a" * 1001), "text is too long: 1001 characters, at most 1000"),
        (search_pb2.SearchRequest(image=b"GIF89a...."), "not a JPEG, PNG or WebP"),
        (search_pb2.SearchRequest(image=b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024)), "image is too large"),
        (search_pb2.SearchRequest(text="x", top_k=101), "top_k must be between 1 and 100"),
        (search_pb2.SearchRequest(text="x", top_k=-1), "top_k"),
        (search_pb2.SearchRequest(text="x", offset=-1), "offset must be between 0 and 1000"),
        (search_pb2.SearchRequest(text="x", offset=1001), "offset"),
        (search_pb2.SearchRequest(text="x", filter=search_pb2.Filter(min_price=10, max_price=5)),
         "filter.min_price (10) is greater than filter.max_price (5)"),
        (search_pb2.SearchRequest(text="x", filter=search_pb2.Filter(min_price=float("nan"))), "finite"),
        (search_pb2.SearchRequest(text="x", filter=search_pb2.Filter(attributes={"colour": "red"})),
         "unknown filter attribute key(s): colour; filterable keys: color, size"),
        (search_pb2.SearchRequest(text="x", fusion=search_pb2.Fusion(text_weight=-1)), "fusion.text_weight must be >= 0"),
        (search_pb2.SearchRequest(text="x", request_id="r" * 200), "request_id is too long"),
    ],
)
def test_rejects_with_precise_message(req: search_pb2.SearchRequest, message: str) -> None:
    with pytest.raises(RequestError) as err:
        check(req, keys={"color", "size"})
    assert message in str(err.value)


@pytest.mark.parametrize(
    "req",
    [
        search_pb2.SearchRequest(text="白色书柜"),
        search_pb2.SearchRequest(text="a" * 1000, top_k=100, offset=1000),
        search_pb2.SearchRequest(image=PNG),
        search_pb2.SearchRequest(image=b"RIFF\0\0\0\0WEBPVP8 "),
        search_pb2.SearchRequest(text="  chair  ", image=b"\xff\xd8\xff\xe0"),
        search_pb2.SearchRequest(text="x", filter=search_pb2.Filter(min_price=5, max_price=5, attributes={"color": "white"})),
        # keys are matched as the index stores them, like the ranking service does
        search_pb2.SearchRequest(text="x", filter=search_pb2.Filter(attributes={"Color ": "white", "SIZE": "90"})),
    ],
)
def test_accepts_valid_requests(req: search_pb2.SearchRequest) -> None:
    check(req, keys={"color", "size"})


def test_unknown_keys_left_to_ranking_when_not_known() -> None:
    check(search_pb2.SearchRequest(text="x", filter=search_pb2.Filter(attributes={"anything": "1"})), keys=None)


def test_sniff() -> None:
    assert sniff_image_type(b"\xff\xd8\xff\xdb") == "jpeg"
    assert sniff_image_type(PNG) == "png"
    assert sniff_image_type(b"RIFF\x10\0\0\0WEBPVP8L") == "webp"
    assert sniff_image_type(b"RIFF\x10\0\0\0WAVEfmt ") is None
    assert sniff_image_type(b"") is None


def test_api_key_parsing() -> None:
    assert parse_api_keys("alice:key-aaaaaaaa, key-bbbbbbbb ,") == {"alice": "key-aaaaaaaa", "key2": "key-bbbbbbbb"}
    assert parse_api_keys("") == {}
    with pytest.raises(ConfigError, match="at least 8"):
        parse_api_keys("short")
    with pytest.raises(ConfigError, match="duplicate"):
        parse_api_keys("a:12345678,a:87654321")


def test_key_lookup_and_bearer_parsing() -> None:
    auth = ApiKeyAuth({"alice": "key-aaaaaaaa", "bob": "key-bbbbbbbb"})
    assert auth.identify("key-bbbbbbbb") == "bob"
    assert auth.identify("key-bbbbbbbc") is None
    assert auth.identify("") is None
    assert bearer_token((("authorization", "Bearer abc"),)) == "abc"
    assert bearer_token((("authorization", "bearer   abc "),)) == "abc"
    assert bearer_token((("authorization", "Basic abc"),)) == ""
    assert bearer_token((("x-other", "1"),)) is None


def test_token_bucket() -> None:
    rl = RateLimiter(rps=2, burst=3)
    assert [rl.acquire("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rl.acquire("a", now=0.0) == pytest.approx(0.5)
    assert rl.acquire("b", now=0.0) == 0.0  # separate bucket per caller
    assert rl.acquire("a", now=0.5) == 0.0  # refilled one token
    assert rl.acquire("a", now=0.5) > 0
    assert RateLimiter(rps=0, burst=1).acquire("a") == 0.0  # disabled


def test_client_types_and_table() -> None:
    hit = search_pb2.Hit(product_id="1", score=0.5, title="白色书柜 BILLY Bookcase", category="Bookcase",
                         signal_scores={"text": 0.9}, price=49.0)
    h = hit_from_proto(hit)
    assert h.price == 49.0 and h.signal_scores == {"text": pytest.approx(0.9)}
    assert hit_from_proto(search_pb2.Hit(product_id="2")).price is None
    table = format_table(SearchResult(hits=[h], request_id="r1", took_ms=3.0), explain=True)
    assert "BILLY" in table and "49.00" in table and "text=0.9000" in table and "request_id=r1" in table
    assert Fusion("rrf").to_proto().method == search_pb2.Fusion.RRF
    with pytest.raises(ValueError):
        Fusion("best").to_proto()
