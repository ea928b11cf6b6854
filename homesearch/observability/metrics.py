"""Prometheus metrics shared by the gRPC services.

Names follow the de-facto standard of go-grpc-prometheus / grpc-ecosystem
(``grpc_server_handled_total``, ``grpc_server_handling_seconds``) so existing
dashboards and alerts work unchanged. Each process serves its own registry on
its metrics port.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram, start_http_server

# Latency buckets tuned for a millisecond-scale search path (1 ms .. 10 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.5, 5.0, 10.0)

GRPC_STARTED = Counter(
    "grpc_server_started_total", "RPCs started on the server.", ["grpc_service", "grpc_method", "grpc_type"]
)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, regardless of success or failure.",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
GRPC_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC until the server finished it.",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=LATENCY_BUCKETS,
)


def start_metrics_server(port: int, host: str = "0.0.0.0") -> None:
    """Serves /metrics over HTTP; port 0 disables it (tests, embedded use)."""
    if port:
        start_http_server(port, addr=host)


def _split_method(full_method: str) -> tuple[str, str]:
    _, service, method = full_method.split("/", 2)
    return service, method


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts and times every unary/stream RPC with its final status code."""

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        service, method = _split_method(handler_call_details.method)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap(handler.unary_unary, service, method, "unary"),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap(handler.stream_unary, service, method, "client_stream"),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # server-streaming/bidi RPCs are not used by homesearch


def _wrap(behavior: Callable[[Any, grpc.ServicerContext], Any], service: str, method: str, kind: str):
    def wrapped(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
        GRPC_STARTED.labels(service, method, kind).inc()
        start = time.perf_counter()
        code = "OK"
        try:
            return behavior(request_or_iterator, context)
        except Exception:
            # context.abort raises after setting the code; anything else is INTERNAL.
            code = _code_name(context) or "UNKNOWN"
            raise
        finally:
            if code == "OK":
                code = _code_name(context) or "OK"
            GRPC_LATENCY.labels(service, method, kind).observe(time.perf_counter() - start)
            GRPC_HANDLED.labels(service, method, kind, code).inc()

    return wrapped


def _code_name(context: grpc.ServicerContext) -> str | None:
    code = context.code() if hasattr(context, "code") else None
    if code is None:
        return None
    return code.name if isinstance(code, grpc.StatusCode) else str(code)
