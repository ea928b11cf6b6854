"""API-key authentication and per-key rate limiting, as a server interceptor.

Callers send ``authorization: Bearer <key>`` metadata. Keys come from
``HOMESEARCH_API_KEYS`` (comma-separated, each ``key`` or ``name:key``; the name
shows in logs and metrics instead of the secret). Keys are compared in constant
time: the presented key is hashed and compared with every configured key's hash
with :func:`hmac.compare_digest`, without early exit.

Health checking and reflection stay open so load balancers and grpcurl work
without a key. Everything else needs a valid key unless auth is disabled
(dev only; logged loudly at startup).
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Any

import grpc

from homesearch.rpc.interceptors import Behavior, wrap_behavior

from .rate_limit import RateLimiter

log = logging.getLogger(__name__)

OPEN_SERVICE_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

caller_var: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="")


class ConfigError(ValueError):
    pass


def parse_api_keys(spec: str) -> dict[str, str]:
    """'alice:k1,k2' -> {'alice': 'k1', 'key2': 'k2'} (name -> key)."""
    keys: dict[str, str] = {}
    for i, item in enumerate((s.strip() for s in spec.split(",")), start=1):
        if not item:
            continue
        name, sep, key = item.partition(":")
        if not sep:
            name, key = f"key{i}", item
        name, key = name.strip(), key.strip()
        if not name or not key:
            raise ConfigError(f"HOMESEARCH_API_KEYS entry {i} is empty on one side of ':'")
        if len(key) < 8:
            raise ConfigError(f"HOMESEARCH_API_KEYS entry {name!r}: keys must be at least 8 characters")
        if name in keys:
            raise ConfigError(f"HOMESEARCH_API_KEYS: duplicate key name {name!r}")
        keys[name] = key
    return keys


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiKeyAuth:
    def __init__(self, keys: dict[str, str]) -> None:
        self._digests = [(name, _digest(key)) for name, key in keys.items()]

    def __len__(self) -> int:
        return len(self._digests)

    def identify(self, presented: str) -> str | None:
        """Returns the key's name, or None. Time does not depend on which key matched."""
        probe = _digest(presented)
        found: str | None = None
        for name, digest in self._digests:
            if hmac.compare_digest(probe, digest) and found is None:
                found = name
        return found


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return ""  # present but malformed
    return None


def _peer_host(peer: str) -> str:
    # "ipv4:127.0.0.1:5555" / "ipv6:[::1]:5555" / "unix:..."
    host, _, _port = peer.rpartition(":")
    return host or peer


class AuthInterceptor(grpc.ServerInterceptor):
    """Rejects unauthenticated (UNAUTHENTICATED) and over-limit (RESOURCE_EXHAUSTED) calls."""

    def __init__(self, auth: ApiKeyAuth | None, limiter: RateLimiter, on_reject: Callable[[str], None] = lambda _: None,
                 failures: RateLimiter | None = None):
        self.auth = auth  # None = auth disabled
        self.limiter = limiter
        self.on_reject = on_reject
        # Invalid-key attempts per peer address: a bucket of allowed failures; once empty, that
        # address's keyed calls are refused before any key is checked (no brute forcing).
        self.failures = failures or RateLimiter(1.0, 10)

    def _throttled(self, context: grpc.ServicerContext, host: str, wait_s: float) -> None:
        self.on_reject("auth_throttled")
        ms = max(1, int(wait_s * 1000))
        context.set_trailing_metadata((("retry-after-ms", str(ms)),))
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"too many invalid API key attempts from {host}; retry in {ms} ms")

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_SERVICE_PREFIXES) or not handler.unary_unary:
            return handler
        metadata = handler_call_details.invocation_metadata
        def wrap(inner: Behavior) -> Behavior:
            def behavior(request: Any, context: grpc.ServicerContext) -> Any:
                if self.auth is None:
                    caller = "anonymous@" + _peer_host(context.peer())
                else:
                    token = bearer_token(metadata)
                    if token is None:
                        self.on_reject("missing_key")
                        context.abort(
                            grpc.StatusCode.UNAUTHENTICATED,
                            "missing API key: send metadata 'authorization: Bearer <key>'",
                        )
                    host = _peer_host(context.peer())
                    blocked = self.failures.peek(host)
                    if blocked > 0:
                        self._throttled(context, host, blocked)
                    name = self.auth.identify(token) if token else None
                    if name is None:
                        self.failures.acquire(host)
                        self.on_reject("invalid_key")
                        context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
                    caller = name
                wait_s = self.limiter.acquire(caller)
                if wait_s > 0:
                    self.on_reject("rate_limited")
                    context.set_trailing_metadata((("retry-after-ms", str(max(1, int(wait_s * 1000)))),))
                    context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"rate limit exceeded for {caller.split('@')[0]}: {self.limiter.rps:g} requests/s, "
                        f"burst {self.limiter.burst}; retry in {wait_s * 1000:.0f} ms",
                    )
                token_ctx = caller_var.set(caller)
                try:
                    return inner(request, context)
                finally:
                    caller_var.reset(token_ctx)

            return behavior

        return wrap_behavior(handler, wrap)
