"""The console as a part of ``homesearch up``: its flags, its child process, its banner line.

Kept here, not in homesearch/stack.py, so the stack only has to call three functions
(``add_up_arguments``, ``plan``, ``banner_rows``) whatever shape its supervisor takes.
The console gets the gateway address, the API key (in its environment, not on its command
line, so ``ps`` does not show it) and the catalog that ``up --index`` indexes. Bound beyond
localhost it needs a login token: ``--console-token`` / ``HOMESEARCH_CONSOLE_TOKEN``, or one
generated on first start into ``DATA_DIR/console_token`` (mode 0600) and printed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from console.config import is_loopback

PORT_ENTRY = ("console-port", "HOMESEARCH_UP_CONSOLE_PORT", 8080, "web console (http), 0 = off")


def add_up_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--console-host", default=os.environ.get("HOMESEARCH_UP_CONSOLE_HOST", "127.0.0.1"),
                   help="interface the web console binds to; beyond localhost it requires a login token "
                   "[HOMESEARCH_UP_CONSOLE_HOST] (default 127.0.0.1)")
    p.add_argument("--no-console", action="store_true",
                   default=os.environ.get("HOMESEARCH_UP_NO_CONSOLE", "") in ("1", "true", "yes"),
                   help="do not start the web console [HOMESEARCH_UP_NO_CONSOLE=1] (same as --console-port 0)")
    p.add_argument("--console-token", default=os.environ.get("HOMESEARCH_CONSOLE_TOKEN"),
                   help="console login token when --console-host is not local [HOMESEARCH_CONSOLE_TOKEN] "
                   "(default: generated into DATA_DIR/console_token)")


@dataclass
class ConsolePart:
    url: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    token: str | None


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return resp.status == 200
    except OSError:
        return False


def _token(args: argparse.Namespace, data_dir: Path) -> str | None:
    if is_loopback(args.console_host):
        return None
    if args.console_token:
        return args.console_token
    path = data_dir / "console_token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(18)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def plan(args: argparse.Namespace, data_dir: Path, gateway_addr: str, api_key: str | None,
         base_env: dict[str, str]) -> ConsolePart | None:
    """The console child of ``up``, or None when it is turned off."""
    if args.no_console or not args.console_port:
        return None
    host = args.console_host
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    addr = f"[{host}]:{args.console_port}" if ":" in host else f"{host}:{args.console_port}"
    argv = [sys.executable, "-m", "console", "--addr", addr, "--gateway", gateway_addr]
    if args.index:
        argv += ["--catalog", str(Path(args.index).resolve())]
    env = dict(base_env)
    env.pop("HOMESEARCH_API_KEY", None)
    if api_key:
        env["HOMESEARCH_CONSOLE_API_KEY"] = api_key
    token = _token(args, data_dir)
    if token:
        env["HOMESEARCH_CONSOLE_TOKEN"] = token
    url = f"http://{shown}:{args.console_port}"
    return ConsolePart(url=url, argv=argv, env=env, ready=lambda: _http_ok(url + "/healthz"), token=token)


def banner_rows(part: ConsolePart | None) -> list[tuple[str, str]]:
    if part is None:
        return [("console", "off (--no-console)")]
    rows = [("console", f"{part.url}   web console: search with photos, explain, relevance inspection")]
    if part.token:
        rows.append(("login", f"{part.token}   (console token; the console listens beyond localhost)"))
    return rows
