"""The real stack for benchmarks: ``homesearch up`` as a subprocess on free loopback ports
with a temporary data dir (exactly what a user runs, like tests/test_stack.py does), or an
already running stack named by address."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from homesearch.stack import PORT_FLAGS, free_ports

REPO = Path(__file__).resolve().parents[1]
DEMO_CATALOG = REPO / "data" / "demo" / "catalog.jsonl"
@dataclass
class StackAddrs:
    gateway: str
    ranking: str
    triton: str
    api_key: str | None
    ranking_metrics: str | None = None  # http://host:port/metrics
    data_dir: Path | None = None
    startup_s: float | None = None
    extra: dict = field(default_factory=dict)
    # service tokens for direct ranking calls (read: Rank/IndexInfo; write: Upsert/Delete)
    read_token: str = field(default_factory=lambda: os.environ.get("HOMESEARCH_BENCH_READ_TOKEN", ""))
    write_token: str = field(default_factory=lambda: os.environ.get("HOMESEARCH_SERVICE_TOKEN", ""))
    up_pid: int | None = None
    ports: list[int] = field(default_factory=list)


class BenchStack:
    """Starts ``homesearch up`` (no --index: suites index and time it themselves) and stops it
    (SIGTERM, then SIGKILL of its process group). Rate limiting is switched off for the run
    (``HOMESEARCH_GATEWAY_RATE_LIMIT_RPS=0``) so the load test measures the system, not the
    default 50 requests/s per key."""

    def __init__(self, data_dir: Path | None = None, startup_timeout_s: float = 600.0, log=print) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="hs-bench-stack-"))
        self.startup_timeout_s = startup_timeout_s
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.addrs: StackAddrs | None = None

    def start(self) -> StackAddrs:
        ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
        args = [x for flag, port in ports.items() for x in (flag, str(port))]
        env = dict(os.environ, PYTHONUNBUFFERED="1", HOMESEARCH_LOG_FORMAT="text", HOMESEARCH_LOG_LEVEL="WARNING",
                   HOMESEARCH_GATEWAY_RATE_LIMIT_RPS="0")
        env.pop("HOMESEARCH_API_KEYS", None)
        env.pop("REDIS_URL", None)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "homesearch.cli", "up", "--data-dir", str(self.data_dir / "var"), *args,
             "--startup-timeout", str(self.startup_timeout_s), "--stop-grace", "10"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout_s + 60
        while not any("serving; Ctrl-C to stop" in line for line in self.lines):
            if self.proc.poll() is not None:
                time.sleep(0.5)
                raise RuntimeError("homesearch up exited during startup:\n" + "\n".join(self.lines[-40:]))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("homesearch up did not come up in time:\n" + "\n".join(self.lines[-40:]))
            time.sleep(0.25)
        key_file = self.data_dir / "var" / "api_key"
        self.addrs = StackAddrs(
            gateway=f"127.0.0.1:{ports['--gateway-port']}",
            ranking=f"127.0.0.1:{ports['--ranking-port']}",
            triton=f"127.0.0.1:{ports['--triton-grpc-port']}",
            api_key=key_file.read_text().strip() if key_file.exists() else None,
            ranking_metrics=f"http://127.0.0.1:{ports['--ranking-metrics-port']}/metrics",
            data_dir=self.data_dir / "var",
            startup_s=round(time.monotonic() - t0, 1),
            read_token=(self.data_dir / "var" / "secrets" / "gateway_token").read_text().strip(),
            write_token=(self.data_dir / "var" / "secrets" / "ingest_token").read_text().strip(),
            up_pid=self.proc.pid,
            ports=list(ports.values()),
        )
        self.log(f"[stack] up in {self.addrs.startup_s}s: gateway {self.addrs.gateway}, ranking {self.addrs.ranking}")
        return self.addrs

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if len(self.lines) > 5000:
                del self.lines[:1000]

    def pids(self) -> dict[str, int]:
        """Child pids by part, from the stack's state file."""
        try:
            state = json.loads((self.data_dir / "var" / "stack.json").read_text())
            return {k: int(v) for k, v in state.get("children", {}).items() if v}
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> StackAddrs:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def scrape_stage_seconds(url: str | None) -> dict[str, tuple[float, float]]:
    """``homesearch_stage_seconds`` (sum, count) per stage from a ranking /metrics endpoint."""
    out: dict[str, list[float]] = {}
    if not url:
        return {}
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return {}
    for line in text.splitlines():
        for suffix, pos in (("_sum", 0), ("_count", 1)):
            prefix = f"homesearch_stage_seconds{suffix}{{"
            if line.startswith(prefix):
                labels, value = line[len(prefix):].rsplit("}", 1)
                stage = dict(kv.split("=", 1) for kv in labels.split(",")).get("stage", "").strip('"')
                out.setdefault(stage, [0.0, 0.0])[pos] = float(value)
    return {k: (v[0], v[1]) for k, v in out.items()}


def stage_means_ms(before: dict, after: dict) -> dict[str, float]:
    """Mean ms per observation of each stage between two scrapes."""
    res = {}
    for stage, (s1, c1) in after.items():
        s0, c0 = before.get(stage, (0.0, 0.0))
        if c1 > c0:
            res[stage] = round((s1 - s0) / (c1 - c0) * 1000, 2)
    return res
