"""SearchService implementation: validate, forward to ranking, map errors.

The Search method is registered with a pass-through request deserializer so the
gateway parses the bytes itself: protobuf rejects invalid UTF-8 in ``string``
fields at parse time, and gRPC would otherwise report that as INTERNAL
("Exception deserializing request"). Here it becomes INVALID_ARGUMENT with a
clear message.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import Counter, Gauge

from homesearch.grpc_server import MAX_MESSAGE_BYTES, REQUEST_ID_KEY
from homesearch.logging import request_id_var
from homesearch.result_cache import ResultCacheReader
from homesearch.v1 import ranking_pb2, ranking_pb2_grpc, search_pb2

from .auth import caller_var
from .config import GatewaySettings
from .validation import RequestError, explain_undecodable, validate_request

log = logging.getLogger(__name__)

SEARCH_SERVICE = "homesearch.v1.SearchService"
RANKING_SERVICE = "homesearch.v1.RankingService"

REJECTED = Counter("homesearch_gateway_rejected_total", "Requests rejected by the gateway.", ["reason"])
DOWNSTREAM_ERRORS = Counter(
    "homesearch_gateway_downstream_errors_total", "Failed calls to the ranking service.", ["grpc_code"]
)
RESULT_CACHE = Counter(
    "homesearch_gateway_result_cache_total",
    "Searches by result-cache outcome at the gateway: hit (answered from Redis) or forwarded to ranking.",
    ["result"],
)
RANKING_UP = Gauge("homesearch_gateway_ranking_up", "1 when the ranking service answered its last health check.")

# Ranking codes passed through unchanged (the caller's fault, with ranking's message).
_PASS_THROUGH = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}


class RankingClient:
    """Channel to the ranking service, plus its cached attribute keys."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.channel = grpc.insecure_channel(
            settings.ranking_addr,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2_000),
            ],
        )
        self.rank_stub = ranking_pb2_grpc.RankingServiceStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)
        self._keys: set[str] | None = None
        self._keys_at = 0.0
        self._lock = threading.Lock()

    def attribute_keys(self, requested: Iterable[str], timeout_s: float) -> set[str] | None:
        """Known attribute keys, cached ``index_info_ttl_s``; refreshed early (at most
        once a second) when the request names a key the cache does not know yet,
        since a catalog upsert may just have added it."""
        requested = list(requested)
        now = time.monotonic()
        with self._lock:
            keys, age = self._keys, now - self._keys_at
        fresh = keys is not None and age < self.settings.index_info_ttl_s
        if fresh and (all(k in keys for k in requested) or age < 1.0):
            return keys
        try:
            info = self.rank_stub.IndexInfo(ranking_pb2.IndexInfoRequest(), timeout=timeout_s)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None  # leave attribute validation to ranking
            raise
        keys = set(info.attribute_keys)
        with self._lock:
            self._keys, self._keys_at = keys, time.monotonic()
        return keys

    def check_health(self, timeout_s: float = 1.0) -> bool:
        for service in (RANKING_SERVICE, ""):
            try:
                reply = self.health_stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND and service:
                    continue  # older ranking without per-service status: ask for the server
                return False
            return reply.status == health_pb2.HealthCheckResponse.SERVING
        return False

    def close(self) -> None:
        self.channel.close()


class SearchServicer:
    def __init__(self, settings: GatewaySettings, ranking: RankingClient) -> None:
        self.settings = settings
        self.ranking = ranking
        self.results: ResultCacheReader | None = None
        if settings.cache_url:
            self.results = ResultCacheReader(settings.cache_url, prefix=settings.cache_prefix,
                                             collection=settings.collection, timeout_s=settings.cache_timeout_s)

    # -- registration -------------------------------------------------------
    def register(self, server: grpc.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            self.Search,
            request_deserializer=None,  # raw bytes: parsed in Search (see module doc)
            response_serializer=search_pb2.SearchResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SEARCH_SERVICE, {"Search": handler}),))

    # -- RPC ----------------------------------------------------------------
    def _remaining_s(self, context: grpc.ServicerContext) -> float:
        remaining = context.time_remaining()
        if remaining is None or remaining > 1e9:  # no deadline set by the caller
            remaining = self.settings.default_timeout_s
        return remaining - self.settings.deadline_margin_ms / 1000.0

    def Search(self, raw: bytes, context: grpc.ServicerContext) -> search_pb2.SearchResponse:
        start = time.perf_counter()
        try:
            req = search_pb2.SearchRequest.FromString(raw)
        except (DecodeError, UnicodeDecodeError, ValueError) as exc:
            REJECTED.labels("decode").inc()
            log.info("undecodable request", extra={"error": str(exc), "bytes": len(raw)})
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, explain_undecodable(raw))

        metadata = dict(context.invocation_metadata() or ())
        rid = req.request_id or metadata.get(REQUEST_ID_KEY) or request_id_var.get() or uuid.uuid4().hex[:16]
        req.request_id = rid
        request_id_var.set(rid)

        remaining = self._remaining_s(context)
        if remaining <= 0:
            REJECTED.labels("deadline").inc()
            context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"deadline too short: less than the gateway's {self.settings.deadline_margin_ms:g} ms margin left",
            )

        try:
            validate_request(
                req,
                self.settings,
                attribute_keys=lambda keys: self.ranking.attribute_keys(keys, timeout_s=max(0.001, self._remaining_s(context))),
            )
        except RequestError as exc:
            REJECTED.labels("invalid").inc()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except grpc.RpcError as exc:  # IndexInfo failed
            self._abort_downstream(context, exc, "index info")

        if req.top_k == 0:
            req.top_k = self.settings.default_top_k

        remaining = self._remaining_s(context)
        if remaining <= 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the ranking call")
        cached = self.results.get(req) if self.results is not None else None
        if cached is not None:  # a hit costs one Redis round trip, not a ranking call
            resp = search_pb2.SearchResponse.FromString(cached)
            resp.cache_hit = True
            RESULT_CACHE.labels("hit").inc()
        else:
            if self.results is not None and not req.no_cache:
                RESULT_CACHE.labels("forwarded").inc()
            try:
                resp = self.ranking.rank_stub.Rank(req, timeout=remaining, metadata=((REQUEST_ID_KEY, rid),))
            except grpc.RpcError as exc:
                self._abort_downstream(context, exc, "rank")
        resp.request_id = rid
        resp.took_ms = (time.perf_counter() - start) * 1000.0
        log.info(
            "search",
            extra={
                "caller": caller_var.get(),
                "took_ms": round(resp.took_ms, 1),
                "hits": len(resp.hits),
                "cache_hit": resp.cache_hit,
                "has_text": bool(req.text),
                "has_image": bool(req.image),
            },
        )
        return resp

    def _abort_downstream(self, context: grpc.ServicerContext, exc: grpc.RpcError, what: str) -> None:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        DOWNSTREAM_ERRORS.labels(code.name).inc()
        if code in _PASS_THROUGH:
            context.abort(code, details)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"ranking service did not answer {what} in time")
        if code == grpc.StatusCode.CANCELLED and not context.is_active():
            context.abort(grpc.StatusCode.CANCELLED, "call cancelled by the caller")
        log.warning("ranking call failed", extra={"call": what, "grpc_code": code.name, "details": details})
        context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"ranking service unavailable ({code.name}: {details}); Search is safe to retry",
        )


class HealthMonitor:
    """Keeps the gateway's health SERVING only while ranking answers its health check."""

    def __init__(self, ranking: RankingClient, health_servicer, interval_s: float) -> None:
        self.ranking = ranking
        self.health = health_servicer
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-health", daemon=True)
        self.serving: bool | None = None

    def start(self) -> "HealthMonitor":
        self.check_once()
        self._thread.start()
        return self

    def check_once(self) -> bool:
        ok = self.ranking.check_health(timeout_s=min(2.0, self.interval_s))
        if ok != self.serving:
            status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ("", SEARCH_SERVICE):
                self.health.set(name, status)
            (log.info if ok else log.warning)(
                "ranking reachable" if ok else "ranking unreachable: gateway NOT_SERVING",
                extra={"ranking_addr": self.ranking.settings.ranking_addr},
            )
            self.serving = ok
            RANKING_UP.set(1 if ok else 0)
        return ok

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check_once()
            except Exception:  # never let the monitor die
                log.exception("health check failed")

    def stop(self) -> None:
        self._stop.set()
