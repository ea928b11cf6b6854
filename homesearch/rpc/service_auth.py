"""Service credentials for the internal RPCs (gateway -> ranking, ingestion -> ranking).

Each caller holds one bearer token with a scope; the server maps every method to the
scope it needs and refuses the rest before the servicer runs:

- ``read``  : ``RankingService/Rank``, ``RankingService/IndexInfo`` (the gateway);
- ``write`` : ``CatalogService/Upsert``, ``CatalogService/Delete`` (ingestion).

Scopes do not imply each other (least privilege: ingestion cannot search, the gateway cannot
write); a caller that needs both lists both, ``name:read+write:token``.

Missing or unknown token -> UNAUTHENTICATED; a valid token without the method's scope ->
PERMISSION_DENIED; health checks stay open (probes and load balancers carry no token).
Tokens are compared with :func:`hmac.compare_digest` against *every* configured token,
so timing reveals neither which token nor how much of it matched.

Configuration (server): ``name:scope:token`` entries, comma- or newline-separated, from an
env var or a file (``*_FILE`` wins; files are how compose/k8s secrets arrive). Client: the
token alone, from ``HOMESEARCH_SERVICE_TOKEN`` or ``HOMESEARCH_SERVICE_TOKEN_FILE``.
Secrets are never logged whole: :func:`mask` shows enough to tell keys apart.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from homesearch.rpc.interceptors import wrap_behavior

AUTH_METADATA_KEY = "authorization"
SCOPES = ("read", "write")
# Methods that need no credential: liveness/readiness probes and service discovery.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class CredentialError(ValueError):
    """The token configuration is malformed (the message says which entry)."""


def mask(secret: str | None) -> str:
    """``hs_ab…yz`` style: the first 5 and last 2 characters, never the whole secret."""
    if not secret:
        return "(none)"
    if len(secret) <= 10:
        return "*" * len(secret)
    return f"{secret[:5]}…{secret[-2:]}"


def read_secret(env: Mapping[str, str], name: str, default: str = "") -> str:
    """``$NAME_FILE`` (file contents, stripped) if set, else ``$NAME``, else ``default``."""
    path = env.get(f"{name}_FILE", "").strip()
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CredentialError(f"{name}_FILE={path}: cannot read: {exc.strerror}") from None
    return env.get(name, default).strip()


@dataclass(frozen=True)
class ServiceToken:
    name: str
    scopes: frozenset[str]
    token: str


def parse_tokens(text: str) -> list[ServiceToken]:
    """Parses ``name:scope[+scope]:token`` entries."""
    out: list[ServiceToken] = []
    for n, raw in enumerate(text.replace("\n", ",").split(","), 1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise CredentialError(f"service token entry {n} is not name:scope:token")
        name, scope_text, token = parts
        scopes = set(scope_text.split("+"))
        unknown = scopes - set(SCOPES)
        if unknown:
            raise CredentialError(f"service token {name!r}: unknown scope(s) {sorted(unknown)}; use {SCOPES}")
        if len(token) < 16:
            raise CredentialError(f"service token {name!r} is shorter than 16 characters")
        out.append(ServiceToken(name, frozenset(scopes), token))
    return out


class TokenRegistry:
    """Looks a presented token up in constant time (relative to the configured set)."""

    def __init__(self, tokens: list[ServiceToken]) -> None:
        self._tokens = [(t, t.token.encode("utf-8")) for t in tokens]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def identify(self, presented: str | None) -> ServiceToken | None:
        if not presented:
            return None
        got = presented.encode("utf-8", "replace")
        found = None
        for entry, want in self._tokens:  # no early exit
            if hmac.compare_digest(got, want):
                found = entry
        return found


def bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == AUTH_METADATA_KEY and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def rejecting_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that aborts with ``code`` without
    reading the request stream (so a refused Upsert writes nothing)."""

    def abort(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    return wrap_behavior(handler, lambda _inner: abort)


class ServiceAuthInterceptor(grpc.ServerInterceptor):
    """Enforces ``method_scopes`` (full method name -> scope); unlisted non-open methods
    need the ``write`` scope (deny by default)."""

    def __init__(self, registry: TokenRegistry, method_scopes: Mapping[str, str],
                 on_reject: Callable[[str], None] = lambda reason: None) -> None:
        self.registry = registry
        self.method_scopes = dict(method_scopes)
        self.on_reject = on_reject

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        method = details.method or ""
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        presented = bearer(details.invocation_metadata)
        who = self.registry.identify(presented)
        if who is None:
            self.on_reject("unauthenticated")
            what = "missing" if not presented else "invalid"
            return rejecting_handler(handler, grpc.StatusCode.UNAUTHENTICATED,
                                     f"{what} service credential: send 'authorization: Bearer <token>'")
        need = self.method_scopes.get(method, "write")
        if need not in who.scopes:
            self.on_reject("permission_denied")
            return rejecting_handler(handler, grpc.StatusCode.PERMISSION_DENIED,
                                     f"credential {who.name!r} lacks the {need!r} scope needed for {method}")
        return handler


class _BearerCallCredentials(grpc.AuthMetadataPlugin):
    def __init__(self, token: str) -> None:
        self._md = ((AUTH_METADATA_KEY, f"Bearer {token}"),)

    def __call__(self, context: Any, callback: Any) -> None:
        callback(self._md, None)


def client_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Metadata carrying ``token`` (empty when there is none)."""
    return ((AUTH_METADATA_KEY, f"Bearer {token}"),) if token else ()


@dataclass(frozen=True)
class ChannelSecurity:
    """How a client reaches an internal service: plaintext, TLS (``ca``), or mTLS
    (``ca`` + ``cert`` + ``key``); ``server_name`` overrides the name checked in the cert."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""

    def channel(self, address: str, options: list[tuple[str, Any]] | None = None) -> grpc.Channel:
        opts = list(options or [])
        if not self.ca:
            return grpc.insecure_channel(address, options=opts)
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(self.ca).read_bytes(),
            private_key=Path(self.key).read_bytes() if self.key else None,
            certificate_chain=Path(self.cert).read_bytes() if self.cert else None,
        )
        if self.server_name:
            opts.append(("grpc.ssl_target_name_override", self.server_name))
        return grpc.secure_channel(address, creds, options=opts)


def server_credentials(cert: str, key: str, client_ca: str = "") -> grpc.ServerCredentials | None:
    """TLS server credentials (mTLS when ``client_ca`` is set), or None for plaintext."""
    if not cert and not key:
        return None
    if not (cert and key):
        raise CredentialError("TLS needs both a certificate and a key")
    pair = [(Path(key).read_bytes(), Path(cert).read_bytes())]
    if client_ca:
        return grpc.ssl_server_credentials(pair, root_certificates=Path(client_ca).read_bytes(),
                                           require_client_auth=True)
    return grpc.ssl_server_credentials(pair)


def token_from_env(env: Mapping[str, str] | None = None, name: str = "HOMESEARCH_SERVICE_TOKEN") -> str:
    """The client's token: ``$NAME_FILE`` or ``$NAME`` (empty when neither is set)."""
    return read_secret(os.environ if env is None else env, name)
