"""Console settings: environment variables ``HOMESEARCH_CONSOLE_*`` (pydantic-settings, like
every homesearch service), overridden by the flags of ``python -m console``."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def split_addr(addr: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> (host, port); a bare port means 127.0.0.1."""
    host, sep, port = addr.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", addr
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"bad address {addr!r}: expected host:port") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"bad port in {addr!r}")
    return host, number


def is_loopback(host: str) -> bool:
    """True when ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConsoleSettings(BaseSettings):
    """Every knob of the console. Field ``foo`` reads ``HOMESEARCH_CONSOLE_FOO``."""

    model_config = SettingsConfigDict(env_prefix="HOMESEARCH_CONSOLE_", extra="ignore", populate_by_name=True)

    addr: str = Field("127.0.0.1:8080", description="host:port the console listens on (HTTP)")
    gateway: str = Field("127.0.0.1:50051", description="host:port of the public gateway (gRPC)")
    api_key: str = Field(
        "",
        validation_alias=AliasChoices("HOMESEARCH_CONSOLE_API_KEY", "HOMESEARCH_API_KEY", "api_key"),
        description="gateway API key, kept server-side (never sent to the browser)",
    )
    gateway_tls: bool = Field(False, description="TLS to the gateway")
    gateway_ca: Path | None = Field(
        None, description="PEM file of the CA (or self-signed certificate) the gateway's TLS certificate is "
        "checked against; implies gateway_tls (default: the system's roots)"
    )
    timeout_s: float = Field(10.0, gt=0, description="deadline of one gateway call")
    catalog: Path | None = Field(None, description="the catalog JSONL the stack indexed (product facts and photos)")
    queries_dirs: str = Field(
        "", description="comma-separated folders whose query-set JSONL files the inspection page offers "
        "(default: the repo's data/ and the catalog's folder)"
    )
    token: str = Field("", description="login token; required when the console listens beyond localhost")
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1, description="largest query photo accepted")
    max_queryset_bytes: int = Field(8 * 1024 * 1024, ge=1, description="largest uploaded query set (JSONL + photos)")
    grace_s: float = Field(5.0, ge=0, description="time in-flight requests get on shutdown")

    def query_dirs(self) -> list[Path]:
        if self.queries_dirs.strip():
            dirs = [Path(d.strip()) for d in self.queries_dirs.split(",") if d.strip()]
        else:
            dirs = [REPO_DATA] + ([self.catalog.resolve().parent] if self.catalog else [])
        out: list[Path] = []
        for d in dirs:
            r = d.resolve()
            if r.is_dir() and r not in out:
                out.append(r)
        return out

    def check(self) -> None:
        """Refuses settings that would expose an open console (raises ValueError with the fix)."""
        host, _ = split_addr(self.addr)
        if not is_loopback(host) and not self.token:
            raise ValueError(
                f"the console would listen on {self.addr}, beyond this machine, without a login: "
                "set a token (--token / HOMESEARCH_CONSOLE_TOKEN) or listen on 127.0.0.1"
            )
        if self.token and len(self.token) < 12:
            raise ValueError("the console token must be at least 12 characters")
        if self.gateway_ca is not None and not self.gateway_ca.is_file():
            raise ValueError(f"gateway CA file not found: {self.gateway_ca}")
        if self.catalog is not None and not self.catalog.is_file():
            raise ValueError(f"catalog not found: {self.catalog}")
