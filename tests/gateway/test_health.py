"""Gateway health follows ranking reachability; a ranking outage gives UNAVAILABLE and
the gateway recovers by itself when ranking is back."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from homesearch.client import HomesearchClient, HomesearchError
from tests.fixtures.gateway import API_KEY, free_port

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _status(address: str) -> int:
    with grpc.insecure_channel(address) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="homesearch.v1.SearchService"), timeout=5
        ).status


def _wait_for(address: str, status: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _status(address) != status:
        assert time.monotonic() < deadline, f"gateway health never became {status}"
        time.sleep(0.2)


def test_not_serving_without_ranking(make_gateway) -> None:
    gw = make_gateway(ranking_addr=f"127.0.0.1:{free_port()}")
    assert _status(gw.address) == NOT_SERVING


def test_ranking_outage_and_recovery(make_gateway, ranking_service) -> None:
    gw = make_gateway()
    _wait_for(gw.address, SERVING)
    with HomesearchClient(gw.address, api_key=API_KEY, timeout_s=30) as c:
        assert c.search("red sofa").hits
        ranking_service.stop()
        try:
            _wait_for(gw.address, NOT_SERVING)
            with pytest.raises(HomesearchError) as err:
                c.search("red sofa", no_cache=True)
            assert err.value.code == grpc.StatusCode.UNAVAILABLE
        finally:
            ranking_service.restart()
        _wait_for(gw.address, SERVING)
        assert c.search("red sofa").product_ids[0] == "sofa-red"
