"""API keys and per-key rate limits on the real gateway; health and reflection stay open."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from homesearch.client import HomesearchClient, HomesearchError
from homesearch.v1 import search_pb2
from tests.fixtures.gateway import API_KEY, OTHER_API_KEY

UNAUTH = grpc.StatusCode.UNAUTHENTICATED


def test_missing_key(gateway) -> None:
    with HomesearchClient(gateway.address) as c, pytest.raises(HomesearchError) as err:
        c.search("sofa")
    assert err.value.code == UNAUTH and "missing API key" in err.value.message


@pytest.mark.parametrize("key", ["wrong-key-123456", API_KEY + "x", API_KEY[:-1], " "])
def test_wrong_key(gateway, key: str) -> None:
    with HomesearchClient(gateway.address, api_key=key) as c, pytest.raises(HomesearchError) as err:
        c.search("sofa")
    assert err.value.code == UNAUTH


def test_malformed_authorization_header(search_stub) -> None:
    for value in (f"Basic {API_KEY}", API_KEY, "Bearer "):
        with pytest.raises(grpc.RpcError) as err:
            search_stub.Search(search_pb2.SearchRequest(text="sofa"), metadata=(("authorization", value),), timeout=10)
        assert err.value.code() == UNAUTH


def test_right_keys(gateway) -> None:
    for key in (API_KEY, OTHER_API_KEY):
        with HomesearchClient(gateway.address, api_key=key) as c:
            assert c.search("red sofa").hits


def test_auth_checked_before_validation(gateway) -> None:
    with HomesearchClient(gateway.address) as c, pytest.raises(HomesearchError) as err:
        c.search()  # invalid too, but the caller is not told anything before authenticating
    assert err.value.code == UNAUTH


def test_health_and_reflection_need_no_key(gateway_channel) -> None:
    health = health_pb2_grpc.HealthStub(gateway_channel)
    for service in ("", "homesearch.v1.SearchService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(gateway_channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="homesearch.v1.SearchService"),
    ]
    listing, files = list(refl.ServerReflectionInfo(iter(requests), timeout=5))
    names = {s.name for s in listing.list_services_response.service}
    assert {"homesearch.v1.SearchService", "grpc.health.v1.Health"} <= names
    assert "homesearch.v1.RankingService" not in names  # internal API is not exposed
    assert files.file_descriptor_response.file_descriptor_proto


def test_auth_disabled_dev_mode(make_gateway, caplog) -> None:
    with caplog.at_level("WARNING"):
        gw = make_gateway(auth_disabled=True, api_keys="")
    assert any("AUTHENTICATION DISABLED" in r.getMessage() for r in caplog.records)
    with HomesearchClient(gw.address) as c:
        assert c.search("red sofa").hits


def test_rate_limit_per_key(make_gateway) -> None:
    gw = make_gateway(rate_limit_rps=0.2, rate_limit_burst=2)
    with HomesearchClient(gw.address, api_key=API_KEY, timeout_s=30) as c:
        c.search("red sofa")
        c.search("red sofa")
        with pytest.raises(HomesearchError) as err:
            c.search("red sofa")
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit exceeded for tests" in err.value.message and err.value.retryable
    # The limit is per key: the other key still has its own burst.
    with HomesearchClient(gw.address, api_key=OTHER_API_KEY, timeout_s=30) as c:
        assert c.search("red sofa").hits
    # Rejected callers learn when to retry.
    with grpc.insecure_channel(gw.address) as ch:
        stub = ch.unary_unary("/homesearch.v1.SearchService/Search", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as err:
            stub(b"\x0a\x04sofa", metadata=(("authorization", f"Bearer {API_KEY}"),), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(err.value.trailing_metadata() or ())
        assert int(trailers["retry-after-ms"]) > 0


def test_tls(make_gateway, tmp_path) -> None:
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    gw = make_gateway(tls_cert=str(cert), tls_key=str(key))
    address = f"localhost:{gw.gateway.port}"
    with HomesearchClient(address, api_key=API_KEY, tls=True, root_certificates=cert.read_bytes()) as c:
        assert c.search("red sofa").hits
    with HomesearchClient(address, api_key=API_KEY, timeout_s=3) as plain, pytest.raises(HomesearchError) as err:
        plain.search("red sofa")  # plaintext against a TLS port fails
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
