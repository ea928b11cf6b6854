"""Assembles the console's Starlette app: routes, static page, login, metrics, the gateway client."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from console import __version__, auth, inspect_api, search_api
from console.catalog import Catalog
from console.config import ConsoleSettings, is_loopback, split_addr
from console.guards import RequestGuards
from console.observability import HttpObservability, metrics
from console.relevance import Inspector, find_querysets
from homesearch.client import HomesearchClient

STATIC = Path(__file__).resolve().parent / "static"


async def index(_request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def healthz(request: Request) -> Response:
    """The console is up; ``gateway`` says whether the gateway answers SERVING right now."""
    client: HomesearchClient = request.app.state.client
    serving = await run_in_threadpool(client.health, "", 1.0)
    return JSONResponse({"status": "ok", "gateway": "serving" if serving else "not serving"})


async def info(request: Request) -> Response:
    s: ConsoleSettings = request.app.state.settings
    return JSONResponse({
        "version": __version__,
        "gateway": s.gateway,
        "catalog": request.app.state.catalog.overview(),
        "max_upload_bytes": s.max_upload_bytes,
        "login": bool(s.token),
    })


def build_app(settings: ConsoleSettings, client: HomesearchClient | None = None) -> Starlette:
    """The ASGI app. ``client`` defaults to a HomesearchClient for ``settings.gateway`` (closed on shutdown)."""
    settings.check()
    own_client = client is None
    if client is None:
        ca = settings.gateway_ca.read_bytes() if settings.gateway_ca else None
        client = HomesearchClient(settings.gateway, api_key=settings.api_key or None,
                                  tls=settings.gateway_tls or ca is not None, root_certificates=ca,
                                  timeout_s=settings.timeout_s)

    @asynccontextmanager
    async def lifespan(_app: Starlette):
        yield
        if own_client:
            client.close()

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/login", auth.login, methods=["GET", "POST"]),
        Route("/api/info", info),
        Route("/api/search", search_api.search, methods=["POST"]),
        Route("/api/similar", search_api.similar, methods=["POST"]),
        Route("/api/querysets", inspect_api.list_querysets),
        Route("/api/inspect", inspect_api.start, methods=["POST"]),
        Route("/api/inspect/{run}", inspect_api.status),
        Route("/api/inspect/{run}/export", inspect_api.export),
        Route("/photos/{index:int}/{pid:path}", search_api.photo),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    app.state.client = client
    app.state.catalog = Catalog(settings.catalog)
    app.state.querysets = find_querysets(settings.query_dirs())
    app.state.inspector = Inspector(client)
    router = app.router
    app.add_middleware(auth.TokenAuth, token=settings.token)
    app.add_middleware(RequestGuards, loopback_only=is_loopback(split_addr(settings.addr)[0]))
    app.add_middleware(HttpObservability, router=router)
    return app
