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
import threading
import time
from pathlib import Path

from grpc_health.v1 import health_pb2

from homesearch.grpc_server import GrpcService, PortInUseError, ServiceSpec
from homesearch.logging import configure_logging
from homesearch.metrics import start_metrics_server
from homesearch.ranking.cache import CircuitBreaker, RedisCache
from homesearch.ranking.catalog_service import CatalogServicer
from homesearch.ranking.config import RankingSettings
from homesearch.ranking.generation import CatalogState
from homesearch.ranking.index import ModelMismatchError, open_index
from homesearch.ranking.query import QueryEncoder
from homesearch.ranking.service import RankingServicer
from homesearch.v1 import ranking_pb2, ranking_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAMES = [
    ranking_pb2.DESCRIPTOR.services_by_name["RankingService"].full_name,
    ranking_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
]


class _GatedGrpcService(GrpcService):
    """GrpcService whose health starts NOT_SERVING and follows a readiness probe."""

    def __init__(self, *args, ready: "callable", probe_interval_s: float = 2.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._ready = ready
        self._probe_interval_s = probe_interval_s

    def start(self) -> "GrpcService":
        start_metrics_server(self._metrics_port)
        self._set_health(False)
        self.server.start()
        self._set_health(self._safe_ready())
        threading.Thread(target=self._watch, name="ranking-health", daemon=True).start()
        log.info("serving", extra={"service": self.spec.name, "address": self.address, "port": self.port})
        return self

    def _safe_ready(self) -> bool:
        try:
            return bool(self._ready())
        except Exception:  # noqa: BLE001 - a failing probe means not ready
            return False

    def _set_health(self, ok: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self._names]:
            self.health.set(name, status)

    def _watch(self) -> None:
        last = None
        while not self._stopped.wait(self._probe_interval_s):
            ok = self._safe_ready()
            if ok != last:
                self._set_health(ok)
                log.info("health changed", extra={"serving": ok})
                last = ok


class RankingApp:
    """The wired-up ranking service (index, cache, encoders, servicers) on one gRPC server."""

    def __init__(self, settings: RankingSettings, encoder=None, cache: RedisCache | None = None) -> None:
        self.settings = settings
        if encoder is None:
            from homesearch.encoders.client import EncoderClient

            encoder = EncoderClient(settings.triton_url, timeout_s=settings.encoder_timeout_s)
        self.encoder = encoder
        self.cache = cache or RedisCache(
            settings.redis_url,
            prefix=settings.cache_prefix,
            timeout_s=settings.redis_timeout_s,
            embedding_ttl_s=settings.embedding_cache_ttl_s,
            result_ttl_s=settings.result_cache_ttl_s,
            breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s),
        )
        self.index = open_index(settings)
        self.state = CatalogState(
            self.index,
            self.cache,
            settings.collection,
            shared_generation=settings.backend == "server",
            catalog_language=settings.catalog_language,
        )
        try:
            info = _wait_for_model_info(encoder, settings.encoder_startup_timeout_s)
            self.state.open(info.model_version, info.dim)
        except Exception:
            self.index.close()
            raise
        from homesearch.ranking.language import warm_up

        warm_up()  # jieba + glossary load now, not on the first query
        self.query_encoder = QueryEncoder(encoder, self.cache)
        self.ranking = RankingServicer(settings, self.state, self.query_encoder, self.cache)
        self.catalog = CatalogServicer(settings, self.state, encoder)
        spec = ServiceSpec(
            name="ranking",
            register=self._register,
            service_names=SERVICE_NAMES,
            on_shutdown=self._close,
        )
        self.grpc = _GatedGrpcService(
            spec,
            settings.listen,
            metrics_port=settings.metrics_port,
            max_workers=settings.max_workers,
            ready=self.ready,
        )

    @property
    def address(self) -> str:
        host = self.settings.listen.rsplit(":", 1)[0]
        return f"{host}:{self.grpc.port}"

    def _register(self, server) -> None:
        ranking_pb2_grpc.add_RankingServiceServicer_to_server(self.ranking, server)
        ranking_pb2_grpc.add_CatalogServiceServicer_to_server(self.catalog, server)

    def ready(self) -> bool:
        return self.encoder.is_ready()

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


def _wait_for_model_info(encoder, timeout_s: float):
    """The index schema needs the embedding dim: wait (bounded) for Triton started beside us."""
    from homesearch.encoders.client import EncoderUnavailableError

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
    p.add_argument("--redis-url", help="Redis/Valkey URL for the caches; '' disables caching")
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
