"""Chaos and overload against a live ``homesearch up`` (used by ``homesearch bench chaos|overload``
and by the acceptance tests in tests/test_defence.py).

Chaos: for each target (tritonserver, the Triton launcher, Valkey, ranking, gateway) SIGKILL
it while a load thread searches, then wait until the stack is healthy again and check:

- no orphan: every process whose command line or environment names the stack's data dir
  is a descendant of ``up`` (so nothing was re-parented to init and left running);
- ports: every port of the stack is listened on by a process of ``up``'s tree (the dead
  process's sockets are gone, the new instance holds them);
- search recovered: a full (not degraded) answer through the gateway.

Load during the kill is recorded per outcome: ok, ok-but-degraded, errors by code.

Overload: the sustainable cache-miss rate is measured first (closed loop at the admission
limit), then an open-loop generator offers 4x that rate; accepted requests' p99 is compared
with the unloaded p50 from the same run, and refusals (RESOURCE_EXHAUSTED) are timed.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homesearch.stack.supervisor import alive, descendants

_ADJ = ["white", "black", "oak", "grey", "green", "blue", "small", "large", "modern", "wooden", "soft", "round"]
_NOUN = ["sofa", "chair", "table", "lamp", "bookcase", "wardrobe", "bed", "mirror", "shelf", "desk", "rug", "stool"]
_EXTRA = ["", "with storage", "for kids", "with drawers", "for the hallway", "with glass doors", "for two"]


def unique_queries() -> list[str]:
    """~1,000 distinct, sensible text queries (so each one misses the caches once)."""
    return [" ".join(x for x in (a, n, e) if x) for e, a, n in itertools.product(_EXTRA, _ADJ, _NOUN)]


# --------------------------------------------------------------------------- process checks


def _cmd_env(pid: int) -> str:
    out = ""
    for name in ("cmdline", "environ"):
        try:
            out += Path(f"/proc/{pid}/{name}").read_bytes().decode("utf-8", "replace")
        except OSError:
            pass
    return out


def orphans(up_pid: int, marker: str) -> list[tuple[int, str]]:
    """Processes mentioning ``marker`` (the data dir) that are not ``up`` or its descendants."""
    family = {up_pid} | descendants(up_pid)
    me = os.getpid()
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in family or pid == me or not alive(pid):
            continue
        text = _cmd_env(pid)
        if marker in text and "pytest" not in text:
            out.append((pid, text.split("\0", 1)[0][:120]))
    return out


def _listen_inodes() -> dict[int, int]:
    """port -> socket inode for every TCP socket in LISTEN state."""
    out: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A":
                out[int(f[1].rsplit(":", 1)[1], 16)] = int(f[9])
    return out


def _socket_inodes(pid: int) -> set[int]:
    out: set[int] = set()
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(fd.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    except OSError:
        pass
    return out


def port_owners_ok(up_pid: int, ports: list[int]) -> list[str]:
    """Problems: a stack port nobody listens on, or one held by a process outside ``up``'s tree."""
    listening = _listen_inodes()
    family_inodes: set[int] = set()
    for pid in {up_pid} | descendants(up_pid):
        family_inodes |= _socket_inodes(pid)
    problems = []
    for port in ports:
        inode = listening.get(port)
        if inode is None:
            problems.append(f"port {port}: nobody listens")
        elif inode not in family_inodes:
            problems.append(f"port {port}: held by a process outside the stack")
    return problems


# --------------------------------------------------------------------------- load


@dataclass
class LoadLog:
    ok: int = 0
    degraded: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    degraded_missing: set[str] = field(default_factory=set)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


class SearchLoad:
    """One thread of back-to-back text searches (unique queries) at most ``rps`` per second;
    ``window()`` starts a fresh tally (e.g. just before a kill)."""

    def __init__(self, search: Callable[[str], Any], rps: float = 8.0) -> None:
        self._search = search
        # one client: the recovery probe (``exclusive``) never overlaps a load search, so an
        # admission limit of 1 does not turn the test's own two threads into refusals
        self.client_lock = threading.Lock()
        self._period = 1.0 / rps
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.log = LoadLog()
        self._queries = itertools.cycle(unique_queries())
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)

    def start(self) -> "SearchLoad":
        self._thread.start()
        return self

    def window(self) -> LoadLog:
        with self._lock:
            old, self.log = self.log, LoadLog()
        return old

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                with self.client_lock:
                    result = self._search(next(self._queries))
                with self._lock:
                    self.log.latencies_s.append(time.perf_counter() - t0)
                    if result.degraded:
                        self.log.degraded += 1
                        self.log.degraded_missing |= set(result.degraded.missing_signals)
                    else:
                        self.log.ok += 1
            except Exception as exc:  # noqa: BLE001 - tallied by code
                code = getattr(exc, "code", None)
                name = code.name if hasattr(code, "name") else type(exc).__name__
                with self._lock:
                    self.log.errors[name] = self.log.errors.get(name, 0) + 1
            self._stop.wait(max(0.0, self._period - (time.perf_counter() - t0)))

    def exclusive(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """``fn`` run under the client lock (for probes sharing the load's client)."""
        def run() -> Any:
            with self.client_lock:
                return fn()
        return run

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


# --------------------------------------------------------------------------- chaos


def _state_children(data_dir: Path) -> dict[str, int]:
    import json

    try:
        return {k: int(v) for k, v in json.loads((data_dir / "stack.json").read_text())["children"].items() if v}
    except (OSError, ValueError, KeyError):
        return {}


def target_pid(data_dir: Path, target: str) -> int | None:
    """pid of a part (as `up` records it) or, for ``tritonserver``, the launcher's server child."""
    children = _state_children(data_dir)
    if target != "tritonserver":
        return children.get("triton" if target == "launcher" else target)
    launcher = children.get("triton")
    if launcher is None:
        return None
    for pid in descendants(launcher):
        if Path(f"/proc/{pid}/comm").exists() and Path(f"/proc/{pid}/comm").read_text().strip() == "tritonserver":
            return pid
    return None


@dataclass
class KillOutcome:
    target: str
    killed_pids: list[int]
    recovered_s: float | None
    during: LoadLog
    orphans: list[tuple[int, str]]
    port_problems: list[str]
    recovered_search: bool

    def row(self) -> dict[str, Any]:
        from bench.harness import latency_summary

        lat = latency_summary(self.during.latencies_s)
        return {
            "target": self.target,
            "recovered_s": None if self.recovered_s is None else round(self.recovered_s, 1),
            "searches": self.during.ok + self.during.degraded + self.during.error_count,
            "ok": self.during.ok,
            "degraded": self.during.degraded,
            "missing_signals": ",".join(sorted(self.during.degraded_missing)),
            "errors": self.during.error_count,
            "error_kinds": ",".join(f"{k}={v}" for k, v in sorted(self.during.errors.items())),
            "p50_ms": lat["p50_ms"],
            "orphans": len(self.orphans),
            "port_problems": len(self.port_problems),
            "search_recovered": self.recovered_search,
        }


def kill_and_recover(
    *,
    target: str,
    up_pid: int,
    data_dir: Path,
    ports: list[int],
    load: SearchLoad,
    healthy: Callable[[], bool],
    full_search: Callable[[], bool],
    timeout_s: float = 120.0,
    settle_s: float = 1.0,
) -> KillOutcome:
    """SIGKILLs ``target``, waits for a new instance and a healthy stack, then runs the checks."""
    full_search = load.exclusive(full_search)
    pid = target_pid(data_dir, target)
    if pid is None:
        raise RuntimeError(f"{target}: no such process in the stack")
    family = [pid, *descendants(pid)]
    load.window()
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    deadline = t0 + timeout_s
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.05)
    recovered = None
    while time.monotonic() < deadline:
        new = target_pid(data_dir, target)
        if new is not None and new != pid and healthy() and full_search():
            recovered = time.monotonic() - t0
            break
        time.sleep(0.25)
    time.sleep(settle_s)
    during = load.window()
    left = [p for p in family if alive(p)]
    return KillOutcome(
        target=target,
        killed_pids=family,
        recovered_s=recovered,
        during=during,
        orphans=orphans(up_pid, str(data_dir)) + [(p, "survived its parent's SIGKILL") for p in left],
        port_problems=port_owners_ok(up_pid, ports),
        recovered_search=recovered is not None,
    )
