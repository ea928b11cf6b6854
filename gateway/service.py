"""SearchService implementation: validate, forward to ranking, map errors.

The Search method is registered with a deserializer that never raises
(:func:`parse_request`): protobuf rejects invalid UTF-8 in ``string`` fields at
parse time, and gRPC would otherwise report that as INTERNAL ("Exception
deserializing request"). Here it becomes INVALID_ARGUMENT with a clear message.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import Counter, Gauge

from homesearch.rpc.admission import RETRY_AFTER_KEY
from homesearch.rpc.server import MAX_MESSAGE_BYTES, REQUEST_ID_KEY
from homesearch.observability.logging import request_id_var
from homesearch.rpc.service_auth import ChannelSecurity, client_metadata
from homesearch.v1 import ranking_pb2_grpc, search_pb2
from homesearch.validation import RequestError, explain_undecodable, validate_request

from .auth import caller_var
from .config import GatewaySettings
from .result_cache import MISS, EdgeResultCache

log = logging.getLogger(__name__)

SEARCH_SERVICE = "homesearch.v1.SearchService"
RANKING_SERVICE = "homesearch.v1.RankingService"

REJECTED = Counter("homesearch_gateway_rejected_total", "Requests rejected by the gateway.", ["reason"])
DOWNSTREAM_ERRORS = Counter(
    "homesearch_gateway_downstream_errors_total", "Failed calls to the ranking service.", ["grpc_code"]
)
RANKING_UP = Gauge("homesearch_gateway_ranking_up", "1 when the ranking service answered its last health check.")

# Ranking codes passed through unchanged (the caller's fault, with ranking's message).
# NOT_FOUND: similar_to_product_id names a product the index does not hold.
_PASS_THROUGH = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND}


class RankingClient:
    """Channel to the ranking service."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        security = ChannelSecurity(ca=settings.ranking_tls_ca, cert=settings.ranking_tls_cert,
                                   key=settings.ranking_tls_key, server_name=settings.ranking_tls_server_name)
        self.auth_metadata = client_metadata(settings.resolved_ranking_token())
        self.channel = security.channel(
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


@dataclass(frozen=True)
class Undecodable:
    """A request body that is not a valid SearchRequest, kept for a precise error message."""

    raw: bytes
    error: str


def parse_request(raw: bytes) -> search_pb2.SearchRequest | Undecodable:
    """The Search deserializer. It never raises: grpc turns a deserializer exception into an
    opaque INTERNAL, while ``Search`` answers an Undecodable with INVALID_ARGUMENT naming the field."""
    try:
        return search_pb2.SearchRequest.FromString(raw)
    except (DecodeError, UnicodeDecodeError, ValueError) as exc:
        return Undecodable(raw, str(exc))


class SearchServicer:
    def __init__(self, settings: GatewaySettings, ranking: RankingClient) -> None:
        self.settings = settings
        self.ranking = ranking
        self.results: EdgeResultCache | None = None
        cache = settings.resolved_cache()
        if cache is not None:
            url, lease_key, entry_key = cache
            self.results = EdgeResultCache(url, lease_key, entry_key=entry_key, prefix=settings.cache_prefix,
                                           collection=settings.cache_collection, timeout_s=settings.cache_timeout_s,
                                           ttl_s=settings.cache_ttl_s, lease_file=settings.cache_lease_file,
                                           memory_entries=settings.cache_memory_entries)

    def close(self) -> None:
        if self.results is not None:
            self.results.close()

    # -- registration -------------------------------------------------------
    def register(self, server: grpc.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            self.Search,
            request_deserializer=parse_request,  # never raises: see module doc
            response_serializer=search_pb2.SearchResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SEARCH_SERVICE, {"Search": handler}),))

    # -- RPC ----------------------------------------------------------------
    def _remaining_s(self, context: grpc.ServicerContext) -> float:
        remaining = context.time_remaining()
        if remaining is None or remaining > 1e9:  # no deadline set by the caller
            remaining = self.settings.default_timeout_s
        return remaining - self.settings.deadline_margin_ms / 1000.0

    def Search(self, req: search_pb2.SearchRequest | Undecodable, context: grpc.ServicerContext) -> search_pb2.SearchResponse:
        start = time.perf_counter()
        if isinstance(req, Undecodable):
            REJECTED.labels("decode").inc()
            log.info("undecodable request", extra={"error": req.error, "bytes": len(req.raw)})
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, explain_undecodable(req.raw))
        rid = request_id_var.get()  # decided by the RequestIdInterceptor
        req.request_id = rid

        remaining = self._remaining_s(context)
        if remaining <= 0:
            REJECTED.labels("deadline").inc()
            context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"deadline too short: less than the gateway's {self.settings.deadline_margin_ms:g} ms margin left",
            )

        try:
            validate_request(req, self.settings.limits())
        except RequestError as exc:
            REJECTED.labels("invalid").inc()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        remaining = self._remaining_s(context)
        if remaining <= 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the ranking call")
        found = self.results.lookup(req) if self.results is not None else MISS
        resp = found.response
        if resp is not None:  # answered here: no ranking hop
            resp.cache_hit = True
        else:
            try:
                resp = self.ranking.rank_stub.Rank(req, timeout=remaining,
                                                   metadata=((REQUEST_ID_KEY, rid), *self.ranking.auth_metadata))
            except grpc.RpcError as exc:
                if self.results is not None and exc.code() in (grpc.StatusCode.UNAUTHENTICATED,
                                                               grpc.StatusCode.PERMISSION_DENIED):
                    self.results.ranking_answered(False)
                self._abort_downstream(context, exc, "rank")
            if self.results is not None:
                self.results.ranking_answered(True)
                self.results.store(found, resp)
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
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # ranking's admission control: pass it on
            retry = dict(exc.trailing_metadata() or ()).get(RETRY_AFTER_KEY) if hasattr(exc, "trailing_metadata") else None
            if retry:
                context.set_trailing_metadata(((RETRY_AFTER_KEY, str(retry)),))
            context.abort(code, details)
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            log.error("ranking refused the gateway's service credential: check HOMESEARCH_GATEWAY_RANKING_TOKEN[_FILE]",
                      extra={"call": what, "grpc_code": code.name})
        if code == grpc.StatusCode.CANCELLED and not context.is_active():
            context.abort(grpc.StatusCode.CANCELLED, "call cancelled by the caller")
        log.warning("ranking call failed", extra={"call": what, "grpc_code": code.name, "details": details})
        context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"ranking service unavailable ({code.name}: {details}); Search is safe to retry",
        )
