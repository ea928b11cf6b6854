"""Request guards for a console that holds an API key: DNS rebinding and cross-site requests.

A console on localhost has no login, so two browser tricks could otherwise spend its API key:
- DNS rebinding: a web page whose host name later resolves to 127.0.0.1 reads the console's
  answers. Bound to loopback, the console accepts only Host headers that name loopback.
- Cross-site POSTs: any page may send a form to http://127.0.0.1:8080/api/search. A POST whose
  Origin header names another host than the one it is sent to is refused (browsers always send
  Origin on cross-site POSTs).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _host_of(value: str) -> str:
    """Host part of a Host header or netloc (``[::1]:8080`` -> ``::1``)."""
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class RequestGuards:
    """ASGI middleware: Host must be loopback when ``loopback_only``; cross-origin POSTs are refused."""

    def __init__(self, app: ASGIApp, loopback_only: bool) -> None:
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        problem = ""
        if self.loopback_only and _host_of(host).lower() not in LOOPBACK_HOSTS:
            problem = f"the console serves localhost only; Host {host!r} refused"
        elif scope["method"] not in SAFE_METHODS and "origin" in headers:
            origin = urlsplit(headers["origin"]).netloc
            if origin.lower() != host.lower():
                problem = f"cross-site request from {headers['origin']!r} refused"
        if problem:
            response = JSONResponse({"error": {"source": "console", "code": "", "message": problem}}, status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
