"""``homesearch up``: the whole stack on one machine, one command.

Starts the parts declared in :mod:`homesearch.stack.parts` (Triton, embedded Valkey, the
ranking service, the gateway) under the generic :mod:`homesearch.stack.supervisor`: each must
pass its health probe before the next starts; a child that dies is restarted with
exponential backoff within a per-window restart budget; no child or grandchild outlives
``up`` (process groups, parent-death signal, child subreaper). Then it prints the addresses,
optionally indexes a catalog (``--index``) and runs example searches (``--demo``), and serves
until Ctrl-C / SIGTERM, when it stops the children in reverse order.

Credentials: ``up`` generates, once, and keeps under ``DATA_DIR/secrets/`` (0600) a read-scope
token for the gateway, a write-scope token for ingestion, the Valkey password (an ACL user
limited to the cache's commands) and the cache's HMAC key, and wires them into the children
through ``*_FILE`` environment variables. The public API key (``--api-key`` /
``HOMESEARCH_API_KEYS``, else generated into ``DATA_DIR/api_key``) is printed in full only
when it is first generated; the banner shows it masked.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets as secrets_mod
import signal
import sys
import time
from pathlib import Path

# `up` forks children while gRPC health-probe threads run; gRPC's fork handlers can then
# deadlock the fork. Children exec at once and never use the parent's channels.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from homesearch.rpc.service_auth import mask  # noqa: E402
from homesearch.stack.errors import StackError, check_ports_free  # noqa: E402
from homesearch.stack.parts import PORTS, Part, StackConfig, hs, stack_parts, to_spec  # noqa: E402
from homesearch.stack.secrets import StackSecrets, _write_private, load_or_create_api_key  # noqa: E402
from homesearch.stack.supervisor import RestartPolicy, Supervisor, SupervisorError  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DEMO_DIR = REPO_ROOT / "data" / "demo"
READY_BANNER = "homesearch is serving"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="homesearch up",
        description=(
            "Run the whole homesearch stack on this machine: Triton (encoders), Valkey (cache), the ranking "
            "service and the gateway, as supervised child processes. Waits until every part is healthy, prints "
            "the addresses, optionally indexes a catalog and runs example searches, then serves until Ctrl-C. "
            "A part that dies is restarted with exponential backoff; none outlives 'up'."
        ),
        epilog=(
            "Every port flag also reads an environment variable (shown in brackets). Child logs go to "
            "DATA_DIR/logs/<part>.log; generated credentials to DATA_DIR/secrets/ (mode 0600). Every internal "
            "part (Triton, Valkey, ranking) and every metrics endpoint binds 127.0.0.1; only the gateway follows "
            "--host. Children also read their own HOMESEARCH_RANKING_*, HOMESEARCH_GATEWAY_* settings from the "
            "environment; the flags here win for addresses, ports and the data dir."
        ),
    )
    p.add_argument("--host", default=_env("HOMESEARCH_UP_HOST", "127.0.0.1"),
                   help="interface the gateway binds to (e.g. 0.0.0.0); the internal parts (Triton, Valkey, ranking) "
                   "always bind 127.0.0.1 [HOMESEARCH_UP_HOST] (default 127.0.0.1)")
    p.add_argument("--data-dir", type=Path, default=Path(_env("HOMESEARCH_DATA_DIR", "./var")),
                   help="index, Valkey data, logs, secrets, api key [HOMESEARCH_DATA_DIR] (default ./var)")
    for flag, env, default, what in PORTS:
        p.add_argument(f"--{flag}", type=int, default=int(_env(env, str(default))),
                       help=f"{what} [{env}] (default {default})")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                   help="use this Redis instead of starting Valkey; credentials in the URL work "
                   "(redis://user:password@host:port/0) [REDIS_URL]")
    p.add_argument("--triton-url", default=os.environ.get("HOMESEARCH_UP_TRITON_URL"),
                   help="use a running Triton (host:grpc_port) instead of starting one [HOMESEARCH_UP_TRITON_URL]")
    p.add_argument("--api-key", default=None,
                   help="API key for the gateway (default: HOMESEARCH_API_KEYS, else generated into DATA_DIR/api_key)")
    p.add_argument("--insecure-no-auth", action="store_true",
                   default=_env("HOMESEARCH_AUTH_DISABLED", "") in ("1", "true", "yes"),
                   help="DEV ONLY: gateway without authentication [HOMESEARCH_AUTH_DISABLED=1]")
    p.add_argument("--tls-cert", default=_env("HOMESEARCH_GATEWAY_TLS_CERT", ""),
                   help="PEM certificate: the gateway serves TLS; up's health probe follows [HOMESEARCH_GATEWAY_TLS_CERT]")
    p.add_argument("--tls-key", default=_env("HOMESEARCH_GATEWAY_TLS_KEY", ""),
                   help="PEM private key for --tls-cert [HOMESEARCH_GATEWAY_TLS_KEY]")
    p.add_argument("--tls-ca", default=_env("HOMESEARCH_UP_TLS_CA", ""),
                   help="CA the health probe trusts for the gateway's certificate (default: the certificate itself) "
                   "[HOMESEARCH_UP_TLS_CA]")
    p.add_argument("--index", metavar="CATALOG.jsonl", type=Path,
                   help="index this catalog once the stack is up (e.g. data/demo/catalog.jsonl)")
    p.add_argument("--demo", action="store_true",
                   help="run example searches (Chinese, English, photo) and print the results")
    p.add_argument("--demo-queries", type=Path,
                   help="queries JSONL for --demo (default: queries.jsonl beside --index, else data/demo/)")
    p.add_argument("--skip-prepare", action="store_true",
                   help="do not run 'homesearch prepare-models' before starting Triton")
    p.add_argument("--startup-timeout", type=float, default=float(_env("HOMESEARCH_UP_STARTUP_TIMEOUT_S", "300")),
                   help="seconds each part may take to become healthy [HOMESEARCH_UP_STARTUP_TIMEOUT_S] (default 300)")
    p.add_argument("--stop-grace", type=float, default=10.0,
                   help="seconds a child gets between SIGTERM and SIGKILL on shutdown (default 10)")
    p.add_argument("--max-restarts", type=int, default=int(_env("HOMESEARCH_UP_MAX_RESTARTS", "5")),
                   help="restart budget: restarts of one part allowed within --restart-window before it is left "
                   "down [HOMESEARCH_UP_MAX_RESTARTS] (default 5)")
    p.add_argument("--restart-window", type=float, default=float(_env("HOMESEARCH_UP_RESTART_WINDOW_S", "300")),
                   help="seconds of the restart budget's sliding window [HOMESEARCH_UP_RESTART_WINDOW_S] (default 300)")
    p.add_argument("--restart-backoff", type=float, default=float(_env("HOMESEARCH_UP_RESTART_BACKOFF_S", "0.5")),
                   help="first restart delay, doubled per consecutive crash up to 30 s [HOMESEARCH_UP_RESTART_BACKOFF_S] "
                   "(default 0.5)")
    p.add_argument("--console-host", default=_env("HOMESEARCH_UP_CONSOLE_HOST", "127.0.0.1"),
                   help="interface the web console binds to; beyond localhost it requires a login token "
                   "[HOMESEARCH_UP_CONSOLE_HOST] (default 127.0.0.1)")
    p.add_argument("--no-console", action="store_true",
                   default=_env("HOMESEARCH_UP_NO_CONSOLE", "") in ("1", "true", "yes"),
                   help="do not start the web console [HOMESEARCH_UP_NO_CONSOLE=1] (same as --console-port 0)")
    p.add_argument("--console-token", default=os.environ.get("HOMESEARCH_CONSOLE_TOKEN"),
                   help="console login token when --console-host is not local [HOMESEARCH_CONSOLE_TOKEN] "
                   "(default: generated into DATA_DIR/console_token, mode 0600)")
    p.add_argument("--exit-after-demo", action="store_true",
                   help="stop the stack after indexing/demo instead of serving (smoke tests)")
    return p


class Stack:
    """`up`'s run: secrets, parts, supervisor, banner, index/demo, then supervise."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir: Path = args.data_dir.resolve()
        self.sup = Supervisor()
        self.api_key: str | None = None
        self.cfg: StackConfig | None = None

    def say(self, msg: str) -> None:
        self.sup.say(msg)

    def _resolve_api_key(self) -> tuple[str | None, bool]:
        """(key, print_in_full): the full key is shown only when `up` just generated it."""
        if self.args.insecure_no_auth:
            return None, False
        if self.args.api_key:
            return self.args.api_key, False
        configured = os.environ.get("HOMESEARCH_API_KEYS", "").strip()
        if configured:
            first = configured.split(",")[0].strip()
            return (first.partition(":")[2] if ":" in first else first), False
        return load_or_create_api_key(self.data_dir)

    def _ports(self) -> dict[str, int]:
        ports = {flag: getattr(self.args, flag.replace("-", "_")) for flag, *_ in PORTS}
        if self.args.no_console:
            ports["console-port"] = 0
        return ports

    def _console_token(self) -> str | None:
        """None on localhost; else --console-token, or one generated once into DATA_DIR/console_token."""
        from console.config import is_loopback

        if is_loopback(self.args.console_host):
            return None
        if self.args.console_token:
            return self.args.console_token
        path = self.data_dir / "console_token"
        if not path.exists():
            _write_private(path, secrets_mod.token_urlsafe(18) + "\n")
        return path.read_text().strip()

    def plan(self, ports: dict[str, int] | None = None) -> list[Part]:
        """The stack's configuration (credentials created on first use) and its parts, in start order."""
        a = self.args
        self.cfg = StackConfig(
            data_dir=self.data_dir, host=a.host, ports=ports or self._ports(),
            secrets=StackSecrets.load_or_create(self.data_dir), api_key=self.api_key,
            redis_url=a.redis_url, triton_url=a.triton_url, tls_cert=a.tls_cert, tls_key=a.tls_key, tls_ca=a.tls_ca,
            startup_timeout_s=a.startup_timeout, stop_grace_s=a.stop_grace,
            restart=RestartPolicy(initial_s=a.restart_backoff, budget=a.max_restarts, window_s=a.restart_window),
            console_host=a.console_host, console_token=self._console_token(), catalog=a.index,
        )
        return stack_parts(self.cfg)

    def preflight(self) -> dict[str, int]:
        a, ports = self.args, self._ports()
        owned = {"gateway-port", "ranking-port", "gateway-metrics-port", "ranking-metrics-port", "console-port"}
        if not a.triton_url:
            owned |= {"triton-grpc-port", "triton-http-port", "triton-metrics-port"}
        if not a.redis_url:
            owned.add("valkey-port")
        named = {f"{flag.removesuffix('-port').replace('-', ' ')}, --{flag}": ports[flag] for flag in ports if flag in owned}
        values = [v for v in named.values() if v]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise StackError(f"the same port is configured twice: {dupes}")
        check_ports_free(named)
        if a.index and not a.index.exists():
            raise StackError(f"catalog not found: {a.index}")
        if bool(a.tls_cert) != bool(a.tls_key):
            raise StackError("--tls-cert and --tls-key go together")
        return ports

    def write_state(self) -> None:
        cfg = self.cfg
        assert cfg
        state = {
            "pid": os.getpid(),
            "gateway": cfg.gateway_addr,
            "ranking": cfg.ranking_addr,
            "triton": cfg.triton_grpc,
            "redis": "external" if cfg.redis_url else f"127.0.0.1:{cfg.ports['valkey-port']}",
            "auth": self.api_key is not None,
            "secrets": str(cfg.secrets.dir),
            "children": {c.name: c.pid for c in self.sup.children},
        }
        (self.data_dir / "stack.json").write_text(json.dumps(state, indent=2) + "\n")

    def banner(self) -> str:
        cfg, a = self.cfg, self.args
        assert cfg
        local = "127.0.0.1"
        tls = bool(a.tls_cert)
        rows = [
            ("gateway", f"{cfg.gateway_addr}   public Search API (grpc{'+tls' if tls else ''}, reflection on)"
             + (f"; metrics http://{local}:{a.gateway_metrics_port}/metrics" if a.gateway_metrics_port else "")),
            ("ranking", f"{cfg.ranking_addr}   internal RankingService + CatalogService (service tokens required)"
             + (f"; metrics http://{local}:{a.ranking_metrics_port}/metrics" if a.ranking_metrics_port else "")),
            ("triton", cfg.triton_grpc + ("   (external)" if a.triton_url else
             f"   grpc; http :{a.triton_http_port} (admin APIs restricted); metrics http://{local}:{a.triton_metrics_port}/metrics")),
            ("redis", "external (REDIS_URL)" if a.redis_url else
             f"127.0.0.1:{a.valkey_port}   embedded Valkey (password; ACL user 'ranking')"),
            ("data dir", str(self.data_dir) + "   (logs in logs/, credentials in secrets/)"),
        ]
        key_file = self.data_dir / "api_key"
        if self.api_key:
            rows.append(("api key", f"{mask(self.api_key)}   (full key in {key_file}; "
                         f"export HOMESEARCH_API_KEY=$(cat {key_file}))" if key_file.exists() else
                         f"{mask(self.api_key)}   (as configured)"))
        else:
            rows.append(("api key", "NONE: authentication disabled (--insecure-no-auth), dev only"))
        if cfg.console_url:
            rows.append(("console", f"{cfg.console_url}   web console: search with photos, explain, relevance inspection"))
            if cfg.console_token:
                rows.append(("login", f"{cfg.console_token}   (console token; the console listens beyond localhost)"))
        else:
            rows.append(("console", "off (--no-console)"))
        rows.append(("ingest", f"homesearch index CATALOG.jsonl --ranking-addr {cfg.ranking_addr} "
                     f"(HOMESEARCH_SERVICE_TOKEN_FILE={cfg.secrets.path('ingest_token')})"))
        width = max(len(r[0]) for r in rows)
        lines = [READY_BANNER] + [f"  {k.ljust(width)}  {v}" for k, v in rows]
        tls_flags = f" --tls --tls-ca {a.tls_ca or a.tls_cert}" if tls else ""
        lines += [
            "",
            "try:",
            f'  homesearch search "white bookcase" --addr {cfg.gateway_addr}{tls_flags}'
            + (f" --api-key-file {key_file}" if self.api_key and key_file.exists() else ""),
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)

    def index(self, catalog: Path) -> None:
        cfg = self.cfg
        assert cfg
        self.say(f"indexing {catalog}")
        t0 = time.monotonic()
        env = dict(os.environ, HOMESEARCH_SERVICE_TOKEN_FILE=str(cfg.secrets.path("ingest_token")))
        env.pop("HOMESEARCH_SERVICE_TOKEN", None)
        try:
            self.sup.run_once("index", hs("index", str(catalog), "--ranking-addr", cfg.ranking_addr, "--no-progress"),
                              env, self.data_dir / "logs" / "index.log")
        except SupervisorError as exc:
            raise StackError(str(exc)) from None
        self.say(f"indexed {catalog} in {time.monotonic() - t0:.1f}s")

    def demo(self) -> None:
        from homesearch.client import HomesearchClient, HomesearchError
        from homesearch.cli.search import format_table

        cfg = self.cfg
        assert cfg
        qfile = self.args.demo_queries
        if qfile is None:
            beside = self.args.index.parent / "queries.jsonl" if self.args.index else None
            qfile = beside if beside and beside.exists() else DEFAULT_DEMO_DIR / "queries.jsonl"
        queries = [json.loads(line) for line in qfile.read_text().splitlines() if line.strip()] if qfile.exists() else []

        def pick(pred):
            return next((q for q in queries if pred(q)), None)

        def is_zh(q):
            return any("\u4e00" <= ch <= "\u9fff" for ch in q.get("text", ""))

        chosen = [
            pick(lambda q: q.get("text") and not q.get("image") and is_zh(q)) or {"text": "白色书柜"},
            pick(lambda q: q.get("text") and not q.get("image") and not is_zh(q)) or {"text": "white bookcase"},
            pick(lambda q: q.get("image") and not q.get("text")),
        ]
        a = self.args
        root = Path(a.tls_ca or a.tls_cert).read_bytes() if a.tls_cert else None
        with HomesearchClient(cfg.gateway_addr, api_key=self.api_key, timeout_s=30, tls=bool(a.tls_cert),
                              root_certificates=root) as client:
            for q in chosen:
                if q is None:
                    continue
                image = (qfile.parent / q["image"]) if q.get("image") else None
                label = " + ".join(x for x in (repr(q.get("text")) if q.get("text") else "",
                                               f"photo {q['image']}" if image else "") if x)
                note = f"  ({q['note']})" if q.get("note") else ""
                try:
                    table = format_table(client.search(text=q.get("text"), image=image, top_k=5))
                except (HomesearchError, OSError) as exc:
                    table = f"search failed: {exc}"
                self.sup.console(f"\n=== demo search: {label}{note}\n{table}")
        print("", flush=True)

    def run(self) -> int:
        a = self.args
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports = self.preflight()
        self.api_key, show_full = self._resolve_api_key()
        if self.api_key is None:
            self.say("WARNING: authentication is DISABLED (--insecure-no-auth): anyone who can reach the gateway can search")
        secrets = StackSecrets.load_or_create(self.data_dir)  # plan() reuses what this creates
        if self.api_key is not None:
            configured = os.environ.get("HOMESEARCH_API_KEYS", "").strip()
            keys = configured if configured and not a.api_key else f"up:{self.api_key}"
            _write_private(secrets.path("api_keys"), keys + "\n")
        if show_full:
            self.say(f"generated an API key (shown once; kept in {self.data_dir / 'api_key'}, mode 0600): {self.api_key}")
        parts = self.plan(ports)
        self.sup.on_change = self.write_state
        if not a.triton_url and not a.skip_prepare:
            self.say("preparing models (idempotent; the first run converts weights and can take a few minutes)")
            self._step("prepare", hs("prepare-models"))
        try:
            for part in parts:
                self.sup.start(to_spec(part, self.cfg))
                self.write_state()
        except SupervisorError as exc:
            raise StackError(str(exc) + self._model_mismatch_hint(str(exc))) from None
        print(self.banner(), flush=True)
        if a.index:
            self.index(a.index)
        if a.demo:
            self.demo()
        if self.cfg.console_url:
            self.say(f"console: open {self.cfg.console_url} to search with photos and inspect relevance")
        if a.exit_after_demo:
            return 0
        self.say("serving; Ctrl-C to stop")
        self.sup.supervise()
        return 0

    def _model_mismatch_hint(self, message: str) -> str:
        """What to do when this data dir's index holds another model's vectors (an upgrade that
        changed a model version, e.g. the int8 text graph): the ranking service refuses to mix them."""
        if "model version" not in message or "FAILED_PRECONDITION" not in message:
            return ""
        return (f"\n  the index in {self.data_dir / 'index'} was written by other encoder models than this "
                f"stack serves (after an upgrade, or another --text-precision): start with a new --data-dir, or "
                f"delete {self.data_dir / 'index'} and index the catalog again (--index CATALOG.jsonl); "
                f"the catalog file is the source of truth")

    def _step(self, name: str, argv: list[str]) -> None:
        try:
            self.sup.run_once(name, argv, dict(os.environ), self.data_dir / "logs" / f"{name}.log")
        except SupervisorError as exc:
            raise StackError(str(exc)) from None

    def shutdown(self) -> None:
        if self.sup.stop_reason:
            self.say(f"{self.sup.stop_reason} received: shutting down")
        self.sup.stop_all()
        state = self.data_dir / "stack.json"
        if state.exists():
            state.unlink()
        self.say("stopped")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stack = Stack(args)

    def on_signal(signum, _frame):
        stack.sup.request_stop(signal.Signals(signum).name)  # no printing in a handler (request_stop)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return stack.run()
    except StackError as exc:
        print(f"\nhomesearch up: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.shutdown()


if __name__ == "__main__":
    sys.exit(main())
