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
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from homesearch.rpc.interceptors import REQUEST_ID_KEY, RequestIdInterceptor  # noqa: F401 (re-exported)
from homesearch.observability.metrics import MetricsInterceptor, start_metrics_server
from homesearch.ports import PortInUseError  # noqa: F401 (re-exported: services catch it from here)

log = logging.getLogger(__name__)

# Generous message limit: search requests may carry a photo (gateway enforces the real limit).
MAX_MESSAGE_BYTES = 32 * 1024 * 1024


@dataclass
class ServiceSpec:
    """What a service registers on the shared server scaffolding."""

    name: str  # short name used in logs, e.g. "gateway"
    register: Callable[[grpc.Server], None]  # adds the servicers
    service_names: Iterable[str]  # full proto service names, for health + reflection
    on_shutdown: Callable[[], None] = lambda: None
    extra_interceptors: list[grpc.ServerInterceptor] = field(default_factory=list)
    # Readiness: with a probe, health starts NOT_SERVING and follows ``ready()`` every
    # ``ready_interval_s``; ``on_ready_change(ok)`` hears each change (logs, gauges).
    ready: Callable[[], bool] | None = None
    ready_interval_s: float = 2.0
    on_ready_change: Callable[[bool], None] = lambda ok: None


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
            # beyond this many calls gRPC refuses at once (RESOURCE_EXHAUSTED) instead of queueing
            maximum_concurrent_rpcs=max_workers,
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
        self.ready: bool | None = None  # last readiness seen (None: never probed, or no probe)

    def start(self) -> "GrpcService":
        start_metrics_server(self._metrics_port)
        if self.spec.ready is None:
            self.server.start()
            self._set_health(True)
        else:
            self._set_health(False)
            self.server.start()
            self._follow_readiness(self._probe())
            threading.Thread(target=self._watch, name=f"{self.spec.name}-ready", daemon=True).start()
        log.info("serving", extra={"service": self.spec.name, "address": self.address, "port": self.port})
        return self

    # -- readiness (the one mechanism every service uses) ---------------------------------------
    def _set_health(self, ok: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self._names]:
            self.health.set(name, status)

    def _probe(self) -> bool:
        try:
            return bool(self.spec.ready())
        except Exception:  # noqa: BLE001 - a failing probe means not ready
            log.exception("readiness probe failed", extra={"service": self.spec.name})
            return False

    def _follow_readiness(self, ok: bool) -> None:
        if ok == self.ready:
            return
        self.ready = ok
        self._set_health(ok)
        (log.info if ok else log.warning)("readiness changed", extra={"service": self.spec.name, "serving": ok})
        try:
            self.spec.on_ready_change(ok)
        except Exception:  # noqa: BLE001 - a listener must not stop the watcher
            log.exception("readiness listener failed", extra={"service": self.spec.name})

    def _watch(self) -> None:
        while not self._stopped.wait(self.spec.ready_interval_s):
            self._follow_readiness(self._probe())

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
