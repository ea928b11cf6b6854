"""HTTP metrics and access logs of the console.

Metric names are the usual HTTP-server ones (``http_requests_total``,
``http_request_duration_seconds``, labelled by method, route template and status) so the
dashboards used for any web service apply; gateway calls are counted by gRPC status in
``homesearch_console_gateway_calls_total``. Each request is one structured log line.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from homesearch.observability.metrics import LATENCY_BUCKETS

log = logging.getLogger("console.access")

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests served.", ["method", "handler", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "Time to serve an HTTP request.", ["method", "handler"], buckets=LATENCY_BUCKETS
)
GATEWAY_CALLS = Counter(
    "homesearch_console_gateway_calls_total", "Search calls the console made to the gateway.", ["kind", "grpc_code"]
)


def _route_template(app: ASGIApp, scope: Scope) -> str:
    for route in getattr(app, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return getattr(route, "path", "other")
    return "unmatched"


class HttpObservability:
    """ASGI middleware: times and counts every request, logs one line per request."""

    def __init__(self, app: ASGIApp, router: ASGIApp) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            handler = _route_template(self.router, scope)
            HTTP_LATENCY.labels(scope["method"], handler).observe(elapsed)
            HTTP_REQUESTS.labels(scope["method"], handler, str(status["code"])).inc()
            log.info("http request", extra={"method": scope["method"], "path": scope["path"], "handler": handler,
                                            "status": status["code"], "ms": round(elapsed * 1000, 2)})


async def metrics(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
