"""Optional login: one shared token, required when the console listens beyond localhost.

The browser logs in once on ``/login`` and gets an HttpOnly, SameSite=Strict cookie holding an
HMAC of the token (the token itself is never stored in the browser); scripts may send
``Authorization: Bearer TOKEN`` instead. ``/healthz``, ``/metrics`` and the login page itself stay
open so probes and Prometheus work without the token.
"""

from __future__ import annotations

import hashlib
import hmac
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "hs_console"
OPEN_PATHS = ("/healthz", "/metrics", "/login", "/static/style.css")


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"homesearch-console-session", hashlib.sha256).hexdigest()


def authorized(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), cookie_value(token).encode())


class TokenAuth:
    """ASGI middleware: every path but OPEN_PATHS needs the token (cookie or bearer)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.token or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if authorized(request, self.token):
            await self.app(scope, receive, send)
            return
        response: Response
        if scope["path"].startswith(("/api/", "/photos/")):
            response = JSONResponse({"error": {"source": "console", "message": "login required"}}, status_code=401)
        else:
            response = RedirectResponse("/login", status_code=303)
        await response(scope, receive, send)


def login_page(error: str = "") -> HTMLResponse:
    msg = f'<p class="error">{escape(error)}</p>' if error else ""
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'><title>homesearch console: log in</title>"
        "<link rel='stylesheet' href='/static/style.css'></head><body class='login'>"
        "<form method='post' action='/login'><h1>homesearch console</h1>"
        "<p>This console is reachable beyond localhost: enter its token "
        "(printed by <code>homesearch up</code>).</p>"
        f"{msg}<input type='password' name='token' autofocus placeholder='token'>"
        "<button type='submit'>Log in</button></form></body></html>",
        status_code=401 if error else 200,
    )


async def login(request: Request) -> Response:
    token: str = request.app.state.settings.token
    if request.method == "GET":
        return login_page() if token else RedirectResponse("/", status_code=303)
    form = await request.form()
    given = str(form.get("token", ""))
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        return login_page("wrong token")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, cookie_value(token), httponly=True, samesite="strict", path="/")
    return response
