"""``python -m console`` (also ``homesearch console``): run the web console alone.

Every flag has an environment variable (in brackets in --help); flags win. Logs are JSON lines
on stderr (homesearch.observability.logging). SIGTERM / Ctrl-C stop it gracefully: uvicorn stops accepting,
lets in-flight requests finish for --grace seconds, then exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from console.config import ConsoleSettings, split_addr

log = logging.getLogger("console")


def build_parser(defaults: ConsoleSettings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m console",
        description=(
            "The homesearch web console: a search page (text in Chinese or English, a photo, or both; "
            "results with photos, filters, explain panels) and relevance inspection (run a query set, "
            "R@10 / nDCG@10 overall and per query, worst first). It calls the public gateway with "
            "homesearch.client and keeps the API key on the server."
        ),
        epilog=(
            "Photos are served only from the catalog's own image references, by product id. Bound beyond "
            "localhost the console refuses to start without --token. Endpoints: / (page), /api/* (JSON), "
            "/photos/N/ID, /healthz, /metrics (Prometheus)."
        ),
    )
    p.add_argument("--addr", default=defaults.addr,
                   help=f"host:port to listen on [HOMESEARCH_CONSOLE_ADDR] (default {defaults.addr})")
    p.add_argument("--gateway", default=defaults.gateway,
                   help=f"gateway host:port [HOMESEARCH_CONSOLE_GATEWAY] (default {defaults.gateway})")
    p.add_argument("--api-key", default=None,
                   help="gateway API key [HOMESEARCH_CONSOLE_API_KEY or HOMESEARCH_API_KEY]; prefer the env "
                   "variable, a flag is visible in the process list")
    p.add_argument("--gateway-tls", action="store_true", default=defaults.gateway_tls,
                   help="TLS to the gateway [HOMESEARCH_CONSOLE_GATEWAY_TLS]")
    p.add_argument("--gateway-ca", type=Path, default=defaults.gateway_ca,
                   help="PEM CA (or self-signed certificate) that the gateway's certificate is checked against; "
                   "implies --gateway-tls [HOMESEARCH_CONSOLE_GATEWAY_CA] (default: the system's roots)")
    p.add_argument("--catalog", type=Path, default=defaults.catalog,
                   help="catalog JSONL that the stack indexed: product facts and photos [HOMESEARCH_CONSOLE_CATALOG]")
    p.add_argument("--queries-dirs", default=defaults.queries_dirs,
                   help="comma-separated folders of query-set JSONL files to offer [HOMESEARCH_CONSOLE_QUERIES_DIRS] "
                   "(default: the repo's data/ and the catalog's folder)")
    p.add_argument("--token", default=None,
                   help="login token (>= 12 chars), required beyond localhost [HOMESEARCH_CONSOLE_TOKEN]")
    p.add_argument("--timeout", type=float, default=defaults.timeout_s,
                   help=f"seconds per gateway call [HOMESEARCH_CONSOLE_TIMEOUT_S] (default {defaults.timeout_s:g})")
    p.add_argument("--max-upload-bytes", type=int, default=defaults.max_upload_bytes,
                   help=f"largest query photo [HOMESEARCH_CONSOLE_MAX_UPLOAD_BYTES] (default {defaults.max_upload_bytes})")
    p.add_argument("--grace", type=float, default=defaults.grace_s,
                   help=f"seconds in-flight requests get on shutdown [HOMESEARCH_CONSOLE_GRACE_S] (default {defaults.grace_s:g})")
    return p


def settings_from_args(argv: list[str] | None) -> ConsoleSettings:
    defaults = ConsoleSettings()
    a = build_parser(defaults).parse_args(argv)
    update = {
        "addr": a.addr, "gateway": a.gateway, "gateway_tls": a.gateway_tls or a.gateway_ca is not None,
        "gateway_ca": a.gateway_ca, "catalog": a.catalog,
        "queries_dirs": a.queries_dirs, "timeout_s": a.timeout, "max_upload_bytes": a.max_upload_bytes,
        "grace_s": a.grace,
    }
    if a.api_key is not None:
        update["api_key"] = a.api_key
    if a.token is not None:
        update["token"] = a.token
    return defaults.model_copy(update=update)


def main(argv: list[str] | None = None) -> int:
    from homesearch.observability.logging import configure_logging

    settings = settings_from_args(argv)
    configure_logging("console")
    import uvicorn

    from console.app import build_app

    try:
        app = build_app(settings)
        host, port = split_addr(settings.addr)
    except ValueError as exc:
        print(f"console: {exc}", file=sys.stderr)
        return 2
    log.info("console starting", extra={"url": f"http://{settings.addr}", "gateway": settings.gateway,
                                        "catalog": str(settings.catalog or ""), "login": bool(settings.token),
                                        "products": len(app.state.catalog)})
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
        timeout_graceful_shutdown=settings.grace_s, server_header=False,
    )
    server = uvicorn.Server(config)
    # uvicorn handles SIGINT/SIGTERM itself (stop accepting, drain, lifespan shutdown) and then
    # re-raises the signal to the handler that was there before: make that one a no-op, so a
    # stop on request ends with exit code 0 and the last log line instead of death by signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run()
    log.info("console stopped")
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
