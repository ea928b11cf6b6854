"""``homesearch gateway``: the public SearchService (auth, limits, validation).

Configuration comes from ``HOMESEARCH_GATEWAY_*`` environment variables,
``HOMESEARCH_API_KEYS`` and ``HOMESEARCH_AUTH_DISABLED`` (see
:mod:`gateway.config`); flags override them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc

from homesearch.rpc.admission import Admission, AdmissionInterceptor
from homesearch.rpc.server import GrpcService, PortInUseError, ServiceSpec
from homesearch.observability.logging import configure_logging

from .auth import ApiKeyAuth, AuthInterceptor, ConfigError, parse_api_keys
from .config import GatewaySettings
from .rate_limit import RateLimiter
from .service import RANKING_UP, REJECTED, SEARCH_SERVICE, RankingClient, SearchServicer

log = logging.getLogger("gateway")

SEARCH_METHOD = f"/{SEARCH_SERVICE}/Search"


@dataclass
class Gateway:
    """A started gateway (for embedding in tests or other processes)."""

    service: GrpcService
    ranking: RankingClient
    settings: GatewaySettings

    @property
    def port(self) -> int:
        return self.service.port

    def stop(self, grace_s: float | None = None) -> None:
        self.service.stop(self.settings.grace_s if grace_s is None else grace_s)


def build_gateway(settings: GatewaySettings) -> Gateway:
    """Binds and starts the gateway; raises PortInUseError / ConfigError."""
    if settings.auth_disabled:
        auth = None
        log.warning(
            "AUTHENTICATION DISABLED (HOMESEARCH_AUTH_DISABLED / --insecure-no-auth): anyone who can reach "
            "%s can search. Never run like this outside a development machine.",
            settings.addr,
        )
    else:
        keys = parse_api_keys(settings.resolved_api_keys())
        if not keys:
            raise ConfigError(
                "no API keys configured: set HOMESEARCH_API_KEYS=name:key[,...] "
                "(or HOMESEARCH_AUTH_DISABLED=1 / --insecure-no-auth for local development)"
            )
        auth = ApiKeyAuth(keys)
        log.info("api keys loaded", extra={"api_key_names": sorted(keys)})

    credentials = None
    if settings.tls_enabled():
        credentials = grpc.ssl_server_credentials(
            [(Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())]
        )

    ranking = RankingClient(settings)
    servicer = SearchServicer(settings, ranking)
    limiter = RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst)
    spec = ServiceSpec(
        name="gateway",
        register=servicer.register,
        service_names=[SEARCH_SERVICE],
        on_shutdown=lambda: (servicer.close(), ranking.close()),
        extra_interceptors=[
            AuthInterceptor(auth, limiter, on_reject=lambda r: REJECTED.labels(r).inc(),
                            failures=RateLimiter(settings.auth_failure_rps, settings.auth_failure_burst)),
            AdmissionInterceptor(Admission(settings.max_in_flight, settings.queue_timeout_ms), [SEARCH_METHOD],
                                 on_refuse=lambda _m: REJECTED.labels("overloaded").inc()),
        ],
        # SERVING only while ranking answers its own health check.
        ready=lambda: ranking.check_health(timeout_s=min(2.0, settings.health_interval_s)),
        ready_interval_s=settings.health_interval_s,
        on_ready_change=lambda ok: RANKING_UP.set(1 if ok else 0),
    )
    try:
        service = GrpcService(
            spec, settings.addr, metrics_port=settings.metrics_port,
            max_workers=max(settings.max_workers, settings.max_in_flight * 2),
            credentials=credentials,
        )
    except PortInUseError:
        ranking.close()
        raise
    service.start()
    return Gateway(service=service, ranking=ranking, settings=settings)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, GatewaySettings]:
    p = argparse.ArgumentParser(
        prog="homesearch gateway",
        description="Run the public Search API (auth, rate limits, validation) in front of the ranking service. "
        "Every flag has an environment variable (HOMESEARCH_GATEWAY_<FLAG>); flags win.",
    )
    p.add_argument("--addr", help="listen host:port (env HOMESEARCH_GATEWAY_ADDR, default 127.0.0.1:50051)")
    p.add_argument("--ranking-addr", help="ranking service host:port (env HOMESEARCH_GATEWAY_RANKING_ADDR, default 127.0.0.1:50052)")
    p.add_argument("--metrics-port", type=int, help="Prometheus port, 0 = off (env HOMESEARCH_GATEWAY_METRICS_PORT, default 9101)")
    p.add_argument("--insecure-no-auth", action="store_true", help="DEV ONLY: accept calls without an API key (env HOMESEARCH_AUTH_DISABLED=1)")
    p.add_argument("--rate-limit-rps", type=float, help="requests/s per API key, 0 = unlimited (env HOMESEARCH_GATEWAY_RATE_LIMIT_RPS, default 50)")
    p.add_argument("--rate-limit-burst", type=int, help="burst per API key (env HOMESEARCH_GATEWAY_RATE_LIMIT_BURST, default 100)")
    p.add_argument("--tls-cert", help="PEM certificate chain (env HOMESEARCH_GATEWAY_TLS_CERT)")
    p.add_argument("--tls-key", help="PEM private key (env HOMESEARCH_GATEWAY_TLS_KEY)")
    p.add_argument("--max-image-bytes", type=int, help="largest photo accepted (env HOMESEARCH_GATEWAY_MAX_IMAGE_BYTES, default 10 MiB)")
    p.add_argument("--log-level", help="env HOMESEARCH_LOG_LEVEL (default INFO)")
    args = p.parse_args(argv)
    overrides = {
        k: v
        for k, v in {
            "addr": args.addr,
            "ranking_addr": args.ranking_addr,
            "metrics_port": args.metrics_port,
            "rate_limit_rps": args.rate_limit_rps,
            "rate_limit_burst": args.rate_limit_burst,
            "tls_cert": args.tls_cert,
            "tls_key": args.tls_key,
            "max_image_bytes": args.max_image_bytes,
        }.items()
        if v is not None
    }
    if args.insecure_no_auth:
        overrides["auth_disabled"] = True
    return args, GatewaySettings(**overrides)


def main(argv: list[str] | None = None) -> int:
    args, settings = parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging("gateway", level=args.log_level)
    try:
        gw = build_gateway(settings)
    except (PortInUseError, ConfigError, ValueError, OSError) as exc:
        log.error("gateway failed to start: %s", exc)
        print(f"homesearch gateway: {exc}", file=sys.stderr)
        return 2
    log.info("gateway ready", extra={"addr": settings.addr, "ranking_addr": settings.ranking_addr})
    gw.service.run_until_signal(settings.grace_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
