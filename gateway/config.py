"""Gateway configuration: environment variables (``HOMESEARCH_GATEWAY_*`` plus the
shared ``HOMESEARCH_API_KEYS`` / ``HOMESEARCH_AUTH_DISABLED``), overridable by
command-line flags in :mod:`gateway.server`.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from homesearch.validation import DEFAULT_LIMITS, SearchLimits


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
    api_keys_file: str = Field(
        "",
        validation_alias=AliasChoices("HOMESEARCH_API_KEYS_FILE", "api_keys_file"),
        description="file holding HOMESEARCH_API_KEYS' value (wins over it; for mounted secrets)",
    )
    auth_failure_rps: float = Field(1.0, ge=0, description="invalid-key attempts/s allowed per peer address (refill)")
    auth_failure_burst: int = Field(10, ge=1, description="invalid-key attempts per peer address before throttling")

    # Service credential for the ranking service (read scope) and how to reach it.
    ranking_token: str = Field("", description="read-scope service token sent to ranking")
    ranking_token_file: str = Field("", description="file holding ranking_token (wins; for mounted secrets)")
    ranking_tls_ca: str = Field("", description="CA of ranking's certificate: enables TLS to ranking")
    ranking_tls_cert: str = Field("", description="client certificate for mTLS to ranking")
    ranking_tls_key: str = Field("", description="client key for mTLS to ranking")
    ranking_tls_server_name: str = Field("", description="name to check in ranking's certificate")

    # Result cache at the gateway (homesearch/edge_cache.py): repeats answered from Redis. Needs the
    # Redis URL and the lease key ranking derives from its cache key; either empty = off.
    cache_url: str = Field("", description="redis:// URL of the result cache (a user limited to the gateway's keys)")
    cache_url_file: str = Field("", description="file holding cache_url (wins; for mounted secrets)")
    cache_lease_key: str = Field("", description="hex key that checks ranking's generation lease")
    cache_lease_key_file: str = Field("", description="file holding cache_lease_key (wins)")
    cache_lease_file: str = Field("", description="ranking's lease file, when on the same machine: no Redis round "
                                  "trip for a repeat (entries kept in memory too)")
    cache_memory_entries: int = Field(4096, ge=0, description="responses kept in memory (with cache_lease_file)")
    cache_entry_key_file: str = Field("", description="key the gateway signs its entries with (default: random per process)")
    cache_prefix: str = Field("hs", description="key prefix, as ranking's")
    cache_collection: str = Field("products", description="ranking's collection")
    cache_timeout_s: float = Field(0.05, gt=0, description="Redis socket timeout")
    cache_ttl_s: float = Field(300.0, gt=0, description="longest an entry is served (ranking's result TTL)")

    # Admission control (Search): bounded in-flight calls, queue deadline, fail fast.
    max_in_flight: int = Field(32, ge=1, description="Search calls running at once")
    queue_timeout_ms: float = Field(50.0, ge=0, description="longest wait for a slot before RESOURCE_EXHAUSTED")

    rate_limit_rps: float = Field(50.0, ge=0, description="sustained requests/s per API key (0 = unlimited)")
    rate_limit_burst: int = Field(100, ge=1, description="token-bucket size per API key")

    # TLS (both or neither).
    tls_cert: str = Field("", description="PEM certificate chain file; enables TLS with tls_key")
    tls_key: str = Field("", description="PEM private key file")

    # Request limits (defaults: homesearch.validation.SearchLimits, the documented public limits).
    max_image_bytes: int = Field(DEFAULT_LIMITS.max_image_bytes, ge=1, description="largest accepted photo")
    max_text_chars: int = Field(DEFAULT_LIMITS.max_text_chars, ge=1, description="longest accepted query text (characters)")
    max_top_k: int = Field(DEFAULT_LIMITS.max_top_k, ge=1)
    max_offset: int = Field(DEFAULT_LIMITS.max_offset, ge=0)

    # Deadlines and health.
    default_timeout_s: float = Field(10.0, gt=0, description="downstream deadline when the caller sets none")
    deadline_margin_ms: float = Field(20.0, ge=0, description="kept back from the caller's deadline")
    health_interval_s: float = Field(2.0, gt=0, description="how often ranking reachability is checked")

    def limits(self) -> SearchLimits:
        return SearchLimits(self.max_text_chars, self.max_image_bytes, self.max_top_k, self.max_offset)

    def resolved_api_keys(self) -> str:
        if self.api_keys_file:
            from pathlib import Path

            return Path(self.api_keys_file).read_text(encoding="utf-8").strip()
        return self.api_keys

    def resolved_ranking_token(self) -> str:
        if self.ranking_token_file:
            from pathlib import Path

            return Path(self.ranking_token_file).read_text(encoding="utf-8").strip()
        return self.ranking_token

    def resolved_cache(self) -> tuple[str, bytes, bytes | None] | None:
        """(url, lease key, entry key or None) when the gateway's result cache is configured."""
        from pathlib import Path

        def read(value: str, path: str) -> str:
            return Path(path).read_text(encoding="utf-8").strip() if path else value

        url, lease = read(self.cache_url, self.cache_url_file), read(self.cache_lease_key, self.cache_lease_key_file)
        if not (url and lease):
            return None
        entry = Path(self.cache_entry_key_file).read_bytes().strip() if self.cache_entry_key_file else None
        return url, bytes.fromhex(lease), entry

    def tls_enabled(self) -> bool:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both HOMESEARCH_GATEWAY_TLS_CERT and HOMESEARCH_GATEWAY_TLS_KEY")
        return bool(self.tls_cert)
