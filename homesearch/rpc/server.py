"""Common lifecycle for homesearch gRPC services.

Every service gets the same production basics without repeating them: the
standard ``grpc.health.v1`` service, server reflection, Prometheus metrics per
RPC, request-id propagation into logs, a clear error when the port is taken,
and graceful shutdown on SIGTERM/SIGINT (stop accepting, drain in-flight
calls for a grace period, then run the service's own cleanup).
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from homesearch.observability.logging import request_id_var
from homesearch.observability.metrics import MetricsInterceptor, start_metrics_server

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
# Generous message limit: search requests may carry a photo (gateway enforces the real limit).
MAX_MESSAGE_BYTES = 32 * 1024 * 1024


class PortInUseError(RuntimeError):
    """The configured listen address could not be bound."""


class RequestIdInterceptor(grpc.ServerInterceptor):
    """Puts the caller's ``x-request-id`` (or a fresh one) into the logging context."""

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not handler.unary_unary:
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        rid = metadata.get(REQUEST_ID_KEY) or uuid.uuid4().hex[:16]
        inner = handler.unary_unary

        def behavior(request: Any, context: grpc.ServicerContext) -> Any:
            token = request_id_var.set(rid)
            try:
                return inner(request, context)
            finally:
                request_id_var.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@dataclass
class ServiceSpec:
    """What a service registers on the shared server scaffolding."""

    name: str  # short name used in logs, e.g. "gateway"
    register: Callable[[grpc.Server], None]  # adds the servicers
    service_names: Iterable[str]  # full proto service names, for health + reflection
    on_shutdown: Callable[[], None] = lambda: None
    extra_interceptors: list[grpc.ServerInterceptor] = field(default_factory=list)


class GrpcService:
    """A started gRPC server with health, reflection and metrics."""

    def __init__(
        self,
        spec: ServiceSpec,
        address: str,
        metrics_port: int = 0,
        max_workers: int = 16,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self.spec = spec
        self.address = address
        self._stopped = threading.Event()
        self.health = health.HealthServicer()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=spec.name),
            interceptors=[RequestIdInterceptor(), MetricsInterceptor(), *spec.extra_interceptors],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),  # a second instance on the same port must fail loudly
            ],
        )
        spec.register(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = list(spec.service_names)
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self.server,
        )
        try:
            if credentials is not None:
                self.port = self.server.add_secure_port(address, credentials)
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc raises RuntimeError when bind fails
            raise PortInUseError(f"{spec.name}: cannot listen on {address}: address already in use?") from exc
        if self.port == 0:
            raise PortInUseError(f"{spec.name}: cannot listen on {address}: address already in use?")
        self._names = names
        self._metrics_port = metrics_port

    def start(self) -> "GrpcService":
        start_metrics_server(self._metrics_port)
        self.server.start()
        for name in ["", *self._names]:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"service": self.spec.name, "address": self.address, "port": self.port})
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        """Marks NOT_SERVING, drains in-flight RPCs for ``grace_s``, then cleans up. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        try:
            self.spec.on_shutdown()
        finally:
            log.info("stopped", extra={"service": self.spec.name})

    def wait(self) -> None:
        self.server.wait_for_termination()

    def run_until_signal(self, grace_s: float = 5.0) -> None:
        """Blocks until SIGTERM/SIGINT, then shuts down gracefully (main-thread only)."""
        done = threading.Event()

        def handler(signum: int, _frame: Any) -> None:
            log.info("signal received, shutting down", extra={"signal": signal.Signals(signum).name})
            done.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        done.wait()
        self.stop(grace_s)
