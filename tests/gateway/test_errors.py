"""Bad input, deadlines and downstream failures through the real gateway: each gets
its exact status code and a precise message, and the gateway keeps serving."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest

from homesearch.client import HomesearchClient, HomesearchError
from tests.fixtures.gateway import API_KEY, free_port
from tests.fixtures.ranking import draw_product_image

INVALID = grpc.StatusCode.INVALID_ARGUMENT
JPEG = draw_product_image("chair", (40, 160, 60))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(), "neither text nor image"),
        (dict(text="  \n\t "), "whitespace-only"),
        (dict(text="长" * 1001), "text is too long: 1001 characters, at most 1000"),
        (dict(image=b"GIF89a" + b"\0" * 100), "not a JPEG, PNG or WebP"),
        (dict(image=JPEG + b"\0" * (10 * 1024 * 1024)), "image is too large"),
        (dict(text="sofa", top_k=101), "top_k must be between 1 and 100"),
        (dict(text="sofa", top_k=-5), "top_k must be between 1 and 100"),
        (dict(text="sofa", offset=-1), "offset must be between 0 and 1000"),
        (dict(text="sofa", offset=5000), "offset must be between 0 and 1000"),
        (dict(text="sofa", min_price=500.0, max_price=100.0), "filter.min_price (500) is greater than filter.max_price (100)"),
        (dict(text="sofa", attributes={"colour": "red"}), "unknown filter attribute key(s): colour; filterable keys: "),
        (dict(text="sofa", fusion={"text_weight": -1.0}), "fusion.text_weight must be >= 0"),
    ],
)
def test_bad_input_is_invalid_argument(client: HomesearchClient, kwargs: dict, message: str) -> None:
    with pytest.raises(HomesearchError) as err:
        client.search(**kwargs)
    assert err.value.code == INVALID, err.value
    assert message in err.value.message
    assert not err.value.retryable


def test_unknown_attribute_lists_known_keys(client: HomesearchClient) -> None:
    with pytest.raises(HomesearchError) as err:
        client.search("sofa", attributes={"color": "red", "flavour": "x"})
    assert err.value.code == INVALID
    assert "flavour" in err.value.message and "color" in err.value.message.split("filterable keys:")[1]
    assert client.search("sofa", attributes={"color": "red"}).product_ids == ["sofa-red"]


def test_undecodable_image_from_encoder_is_invalid_argument(client: HomesearchClient) -> None:
    # Right magic bytes, broken body: only the image encoder's full decode can tell.
    with pytest.raises(HomesearchError) as err:
        client.search(image=b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 50)
    assert err.value.code == INVALID, err.value


def _raw_search(gateway, payload: bytes) -> grpc.RpcError | bytes:
    """Sends hand-encoded bytes as a SearchRequest (no client-side serialisation)."""
    with grpc.insecure_channel(gateway.address) as channel:
        call = channel.unary_unary(
            "/homesearch.v1.SearchService/Search", request_serializer=None, response_deserializer=None
        )
        try:
            return call(payload, metadata=gateway.metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc


def _field(number: int, data: bytes) -> bytes:  # length-delimited field, short payloads only
    return bytes([number << 3 | 2, len(data)]) + data


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_field(1, b"white \xff\xfe sofa"), "not valid UTF-8: text (byte 0xff at offset 6)"),
        (_field(1, b"sofa") + _field(8, b"\xc3\x28"), "not valid UTF-8: request_id (byte 0xc3"),
        (_field(1, b"sofa") + _field(5, _field(1, b"\xe2\x82")), "not valid UTF-8: filter.categories[0]"),
        (_field(1, b"sofa") + _field(5, _field(2, _field(1, b"\xff") + _field(2, b"x"))),
         "not valid UTF-8: filter.attributes[0].key"),
        (b"\x0a\x7f" + b"short", "malformed protobuf wire format"),
    ],
)
def test_undecodable_request_is_invalid_argument(gateway, client: HomesearchClient, payload: bytes, message: str) -> None:
    result = _raw_search(gateway, payload)
    assert isinstance(result, grpc.RpcError), "gateway accepted an undecodable request"
    assert result.code() == INVALID, result
    assert result.details().startswith("request is not a valid homesearch.v1.SearchRequest")
    assert message in result.details()
    assert client.search("red sofa").hits  # still serving


def test_raw_valid_bytes_are_accepted(gateway) -> None:
    result = _raw_search(gateway, _field(1, "红色沙发".encode()))
    assert isinstance(result, bytes) and result


def test_service_keeps_serving_after_bad_requests(client: HomesearchClient) -> None:
    for _ in range(3):
        with pytest.raises(HomesearchError):
            client.search()
    assert client.search("white bookcase").product_ids[0] == "bookcase-white"


def test_deadline_shorter_than_margin(make_gateway) -> None:
    gw = make_gateway(deadline_margin_ms=2000)
    with HomesearchClient(gw.address, api_key=API_KEY) as c:
        with pytest.raises(HomesearchError) as err:
            c.search("sofa", timeout_s=1.0)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "deadline too short" in err.value.message  # answered by the gateway, not the client's timer
    assert err.value.retryable


def test_deadline_is_propagated_to_ranking(make_gateway) -> None:
    # The caller allows 3 s; the gateway keeps 2.995 s back, so ranking gets ~5 ms: far too
    # little to embed a never-seen query of the text tower's full 512 tokens (a short one now
    # embeds in ~4 ms, so it could fit). The gateway must give up when ranking's deadline
    # passes (not when the caller's does) and report DEADLINE_EXCEEDED.
    gw = make_gateway(deadline_margin_ms=2995)
    long_text = "带有金色拉手和白色柜门的现代风格橱柜，" * 45  # 900 characters, > 512 tokens
    with HomesearchClient(gw.address, api_key=API_KEY) as c:
        for _attempt in range(10):
            start = time.monotonic()
            with pytest.raises(HomesearchError) as err:
                c.search(f"{uuid.uuid4().hex} {long_text}", no_cache=True, timeout_s=3.0)
            elapsed = time.monotonic() - start
            # On a loaded machine the request can spend more than 5 ms reaching the gateway,
            # which then (correctly) refuses before calling ranking: that attempt says
            # nothing about propagation, so try again; any other outcome is judged below.
            if "margin left" not in err.value.message:
                break
        else:
            pytest.fail("every attempt spent the whole 5 ms ranking budget before reaching the gateway")
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "ranking service did not answer" in err.value.message
    assert elapsed < 2.0, f"downstream deadline not propagated ({elapsed:.2f}s)"


def test_ranking_unreachable_is_unavailable(make_gateway) -> None:
    gw = make_gateway(ranking_addr=f"127.0.0.1:{free_port()}")
    with HomesearchClient(gw.address, api_key=API_KEY) as c:
        with pytest.raises(HomesearchError) as err:
            c.search("sofa", timeout_s=5)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
        assert "ranking service unavailable" in err.value.message and err.value.retryable
        # Attribute validation needs ranking too: also UNAVAILABLE, not a crash.
        with pytest.raises(HomesearchError) as err:
            c.search("sofa", attributes={"color": "red"}, timeout_s=5)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
        # Validation that needs no downstream still answers.
        with pytest.raises(HomesearchError) as err:
            c.search(top_k=3)
        assert err.value.code == INVALID
