"""``homesearch ranking``: the ranking (fusion) service process.

Startup order matters: open the index, bind it to the encoders' model version
(refusing a collection built with another model), then serve. Health stays
NOT_SERVING until the index is open *and* the encoders answer; a watcher keeps
it in sync afterwards (Triton down => NOT_SERVING, so load balancers drain us).
Shutdown drains in-flight RPCs, then flushes and closes the index.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


from homesearch.rpc.server import GrpcService, PortInUseError, ServiceSpec
from homesearch.observability.logging import configure_logging
from homesearch.rpc.admission import Admission
from services.ranking.cache import CircuitBreaker, RedisCache
from services.ranking.catalog_service import CatalogServicer
from services.ranking.config import RankingSettings
from services.ranking.generation import CatalogState
from services.ranking.index import ModelMismatchError, open_index
from services.ranking.metrics import AUTH_REJECTED
from services.ranking.query import QueryEncoder
from services.ranking.service import RankingServicer
from homesearch.rpc.service_auth import ServiceAuthInterceptor, TokenRegistry, parse_tokens, server_credentials
from homesearch.v1 import ranking_pb2, ranking_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAMES = [
    ranking_pb2.DESCRIPTOR.services_by_name["RankingService"].full_name,
    ranking_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
]


def limit_blas_threads(threads: int) -> None:
    """Caps numpy's BLAS pool for the whole process (``RankingSettings.blas_threads``; 0 leaves it).
    threadpoolctl, because the pool is already loaded by the time settings are read."""
    if threads > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")


class RankingApp:
    """The wired-up ranking service (index, cache, encoders, servicers) on one gRPC server."""

    def __init__(self, settings: RankingSettings, encoder=None, cache: RedisCache | None = None) -> None:
        self.settings = settings
        limit_blas_threads(settings.blas_threads)
        if encoder is None:
            from services.encoders.client import EncoderClient

            encoder = EncoderClient(settings.triton_url, timeout_s=settings.encoder_timeout_s)
        self.encoder = encoder
        self.cache = cache or RedisCache(
            settings.secret("redis_url"),
            hmac_key=settings.secret("cache_hmac_key") or None,
            stale_ttl_s=int(settings.stale_result_max_age_s),
            prefix=settings.cache_prefix,
            timeout_s=settings.redis_timeout_s,
            embedding_ttl_s=settings.embedding_cache_ttl_s,
            result_ttl_s=settings.result_cache_ttl_s,
            breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s),
        )
        self.index = open_index(settings)
        lease = None
        if settings.edge_cache_lease and self.cache.enabled and settings.secret("cache_hmac_key"):
            from services.ranking.lease import LeasePublisher

            lease = LeasePublisher(self.cache, settings.collection, settings.secret("cache_hmac_key"),
                                   lease_file=settings.edge_cache_lease_file)
        self.state = CatalogState(
            self.index,
            self.cache,
            settings.collection,
            shared_generation=settings.backend == "server",
            catalog_language=settings.catalog_language,
            lease=lease,
        )
        try:
            info = _wait_for_model_info(encoder, settings.encoder_startup_timeout_s)
            self.state.open(info.model_version, info.dim)
        except Exception:
            self.index.close()
            raise
        from services.ranking.language import warm_up

        warm_up()  # jieba + glossary load now, not on the first query
        self.query_encoder = QueryEncoder(encoder, self.cache)
        # Admission is decided inside Rank (service.py): only calls that compute an embedding
        # (or search by image) take one of the max_in_flight slots; cache hits answer without one.
        self.admission = Admission(settings.max_in_flight, settings.queue_timeout_ms)
        self.ranking = RankingServicer(settings, self.state, self.query_encoder, self.cache, self.admission)
        self.catalog = CatalogServicer(settings, self.state, encoder)
        spec = ServiceSpec(
            name="ranking",
            register=self._register,
            service_names=SERVICE_NAMES,
            on_shutdown=self._close,
            extra_interceptors=internal_interceptors(settings),
            # No readiness probe: serving once the index is open. With the encoders down, text
            # queries are still answered (BM25 + cached embeddings, marked degraded).
        )
        self.grpc = GrpcService(
            spec,
            settings.listen,
            metrics_port=settings.metrics_port,
            # room for callers waiting on admission and for cache hits beside them, so refusals
            # are ours (with retry-after-ms), not the thread pool's (see call_capacity)
            max_workers=settings.call_capacity(),
            credentials=server_credentials(settings.tls_cert, settings.tls_key, settings.tls_client_ca),
        )

    @property
    def address(self) -> str:
        host = self.settings.listen.rsplit(":", 1)[0]
        return f"{host}:{self.grpc.port}"

    def _register(self, server) -> None:
        ranking_pb2_grpc.add_RankingServiceServicer_to_server(self.ranking, server)
        ranking_pb2_grpc.add_CatalogServiceServicer_to_server(self.catalog, server)

    def start(self) -> "RankingApp":
        self.grpc.start()
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        self.grpc.stop(grace_s)

    def _close(self) -> None:
        self.state.close()
        self.index.close()
        self.cache.close()
        try:
            self.encoder.close()
        except Exception:  # noqa: BLE001
            pass


METHOD_SCOPES = {
    "/homesearch.v1.RankingService/Rank": "read",
    "/homesearch.v1.RankingService/IndexInfo": "read",
    "/homesearch.v1.CatalogService/Upsert": "write",
    "/homesearch.v1.CatalogService/Delete": "write",
}


def internal_interceptors(settings: RankingSettings) -> list:
    """Service-credential check (refused calls cost nothing). Admission control is not an
    interceptor here: RankingServicer.Rank takes a slot only for the expensive part of a call."""
    out = []
    tokens = parse_tokens(settings.secret("service_tokens"))
    if tokens:
        out.append(ServiceAuthInterceptor(TokenRegistry(tokens), METHOD_SCOPES,
                                          on_reject=lambda r: AUTH_REJECTED.labels(r).inc()))
        log.info("service credentials loaded", extra={"callers": sorted(t.name for t in tokens)})
    else:
        log.warning("NO SERVICE CREDENTIALS configured (HOMESEARCH_RANKING_SERVICE_TOKENS[_FILE]): anyone who "
                    "reaches %s can Rank, Upsert and Delete. Only for tests and local development.", settings.listen)
    return out


def _wait_for_model_info(encoder, timeout_s: float):
    """The index schema needs the embedding dim: wait (bounded) for Triton started beside us."""
    from services.encoders.client import EncoderUnavailableError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return encoder.model_info()
        except EncoderUnavailableError:
            if time.monotonic() >= deadline:
                raise
            log.info("waiting for encoders", extra={"url": getattr(encoder, "url", "")})
            time.sleep(1.0)


def build_parser() -> argparse.ArgumentParser:
    d = RankingSettings.model_fields
    p = argparse.ArgumentParser(
        prog="homesearch ranking",
        description="Run the ranking (fusion) service: Rank/IndexInfo and catalog Upsert/Delete over gRPC. "
        "Every option also reads HOMESEARCH_RANKING_<NAME> from the environment; flags win.",
    )
    p.add_argument("--listen", help=f"host:port to serve gRPC on (default {d['listen'].default})")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics port, 0 = off (default 0)")
    p.add_argument("--backend", choices=["edge", "server"], help="index backend (default edge)")
    p.add_argument("--data-dir", type=Path, help=f"embedded index directory (default {d['data_dir'].default})")
    p.add_argument("--collection", help="collection name (default products)")
    p.add_argument("--qdrant-url", help="Qdrant server URL for --backend server")
    p.add_argument("--qdrant-api-key", help="Qdrant API key (prefer the env var)")
    p.add_argument("--shards", type=int, help="shard number for a new server collection")
    p.add_argument("--replicas", type=int, help="replication factor for a new server collection")
    p.add_argument("--write-consistency", type=int, help="write consistency factor for a new server collection")
    p.add_argument("--triton-url", help=f"Triton gRPC address (default {d['triton_url'].default})")
    p.add_argument("--encoder-startup-timeout-s", type=float, help="how long to wait for Triton at startup")
    p.add_argument("--redis-url", help="Redis/Valkey URL for the caches, credentials allowed "
                   "(redis://user:password@host:port/0; prefer HOMESEARCH_RANKING_REDIS_URL[_FILE]); '' disables caching")
    p.add_argument("--catalog-language", help="language of the catalog text (default en)")
    p.add_argument("--log-level", help="log level (default INFO or HOMESEARCH_LOG_LEVEL)")
    return p


def settings_from_args(args: argparse.Namespace) -> RankingSettings:
    overrides = {
        k: v
        for k, v in vars(args).items()
        if v is not None and k in RankingSettings.model_fields
    }
    return RankingSettings(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("ranking", level=args.log_level)
    settings = settings_from_args(args)
    try:
        app = RankingApp(settings)
    except ModelMismatchError as exc:
        log.error("model version mismatch", extra={"error": str(exc)})
        print(f"homesearch ranking: FAILED_PRECONDITION: {exc}", file=sys.stderr)
        return 3
    except PortInUseError as exc:
        print(f"homesearch ranking: {exc}", file=sys.stderr)
        return 2
    app.start()
    print(f"ranking service listening on {app.address} (backend {settings.backend})", file=sys.stderr)
    app.grpc.run_until_signal()
    return 0


if __name__ == "__main__":
    sys.exit(main())
