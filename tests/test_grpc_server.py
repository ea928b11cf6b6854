"""The shared gRPC scaffolding: health, reflection, metrics, port conflicts."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from homesearch.rpc.server import GrpcService, PortInUseError, ServiceSpec


def _spec() -> ServiceSpec:
    return ServiceSpec(name="probe", register=lambda server: None, service_names=["homesearch.v1.Probe"])


def test_health_reflection_and_metrics_on_a_real_socket() -> None:
    svc = GrpcService(_spec(), "127.0.0.1:0").start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service="homesearch.v1.Probe"), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as err:
                stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND

            refl = reflection_pb2_grpc.ServerReflectionStub(channel)
            responses = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
            names = {s.name for s in responses[0].list_services_response.service}
            assert {"homesearch.v1.Probe", "grpc.health.v1.Health"} <= names
        handled = REGISTRY.get_sample_value(
            "grpc_server_handled_total",
            {"grpc_service": "grpc.health.v1.Health", "grpc_method": "Check", "grpc_type": "unary", "grpc_code": "OK"},
        )
        assert handled and handled >= 1
    finally:
        svc.stop(grace_s=0.5)
    # After shutdown the health status flips and the port is released.
    svc2 = GrpcService(_spec(), f"127.0.0.1:{svc.port}")
    svc2.stop(grace_s=0)


def test_port_in_use_is_a_clear_error() -> None:
    svc = GrpcService(_spec(), "127.0.0.1:0").start()
    try:
        with pytest.raises(PortInUseError, match="already in use"):
            GrpcService(_spec(), f"127.0.0.1:{svc.port}")
    finally:
        svc.stop(grace_s=0)
