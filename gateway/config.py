"""Gateway configuration: environment variables (``HOMESEARCH_GATEWAY_*`` plus the
shared ``HOMESEARCH_API_KEYS`` / ``HOMESEARCH_AUTH_DISABLED``), overridable by
command-line flags in :mod:`homesearch.gateway.server`.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """Every knob of the gateway. Field ``foo`` reads ``HOMESEARCH_GATEWAY_FOO``."""

    model_config = SettingsConfigDict(env_prefix="HOMESEARCH_GATEWAY_", extra="ignore", populate_by_name=True)

    # Listening and downstream.
    addr: str = Field("127.0.0.1:50051", description="host:port the public Search API listens on")
    metrics_port: int = Field(9101, description="Prometheus /metrics port (0 disables)")
    ranking_addr: str = Field("127.0.0.1:50052", description="host:port of the ranking service")
    max_workers: int = Field(16, ge=1, description="gRPC worker threads")
    grace_s: float = Field(5.0, ge=0, description="drain time for in-flight calls on shutdown")

    # Auth and limits.
    api_keys: str = Field(
        "",
        validation_alias=AliasChoices("HOMESEARCH_API_KEYS", "api_keys"),
        description="comma-separated API keys, each 'key' or 'name:key'",
    )
    auth_disabled: bool = Field(
        False,
        validation_alias=AliasChoices("HOMESEARCH_AUTH_DISABLED", "auth_disabled"),
        description="dev only: accept calls without an API key",
    )
    rate_limit_rps: float = Field(50.0, ge=0, description="sustained requests/s per API key (0 = unlimited)")
    rate_limit_burst: int = Field(100, ge=1, description="token-bucket size per API key")

    # TLS (both or neither).
    tls_cert: str = Field("", description="PEM certificate chain file; enables TLS with tls_key")
    tls_key: str = Field("", description="PEM private key file")

    # Request validation.
    max_image_bytes: int = Field(10 * 1024 * 1024, ge=1, description="largest accepted photo")
    max_text_chars: int = Field(1000, ge=1, description="longest accepted query text (characters)")
    default_top_k: int = Field(10, ge=1)
    max_top_k: int = Field(100, ge=1)
    max_offset: int = Field(1000, ge=0)

    # Deadlines and health.
    default_timeout_s: float = Field(10.0, gt=0, description="downstream deadline when the caller sets none")
    deadline_margin_ms: float = Field(20.0, ge=0, description="kept back from the caller's deadline")
    health_interval_s: float = Field(2.0, gt=0, description="how often ranking reachability is checked")
    index_info_ttl_s: float = Field(10.0, ge=0, description="cache time of the ranking's attribute keys")

    # result-cache hits answered here (homesearch/result_cache.py): the ranking's Redis, read only
    cache_url: str = Field("", description="Redis the ranking writes its result cache to; empty = forward every search")
    cache_prefix: str = Field("hs", description="the ranking's cache key prefix (HOMESEARCH_RANKING_CACHE_PREFIX)")
    collection: str = Field("products", description="the ranking's collection (HOMESEARCH_RANKING_COLLECTION)")
    cache_timeout_s: float = Field(0.05, gt=0, description="Redis socket timeout; slower = forward to ranking")

    def tls_enabled(self) -> bool:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both HOMESEARCH_GATEWAY_TLS_CERT and HOMESEARCH_GATEWAY_TLS_KEY")
        return bool(self.tls_cert)
