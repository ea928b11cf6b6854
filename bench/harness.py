"""Benchmark harness shared by every suite: statistics, closed-loop load, recall, rendering.

Nothing here times anything on its own behalf: it turns samples into numbers and numbers
into tables. Every suite pairs each figure with a baseline measured in the same run (see
``docs/performance.md``), so ratios stay meaningful on a noisy, shared machine.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks
    (numpy's default ``method="linear"``). NaN for an empty sample."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(xs[lo])
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """n, mean and p50/p95/p99/max in milliseconds (rounded to 0.01 ms)."""
    ms = [s * 1000.0 for s in seconds]
    if not ms:
        return {"n": 0, "mean_ms": math.nan, "p50_ms": math.nan, "p95_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    return {
        "n": len(ms),
        "mean_ms": round(sum(ms) / len(ms), 3),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
    }


def ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    """a / b rounded, or None when either side is missing or b is 0."""
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0:
        return None
    return round(a / b, digits)


# --------------------------------------------------------------------------- recall


def recall_at_k(approx: Sequence[Sequence[Any]], exact: Sequence[Sequence[Any]], k: int = 10) -> float:
    """Mean over queries of |approx[:k] ∩ exact[:k]| / |exact[:k]|.

    Queries whose exact answer is empty (e.g. a filter nothing passes) are skipped;
    NaN when every query is skipped. Ids may be any hashable type.
    """
    if len(approx) != len(exact):
        raise ValueError(f"{len(approx)} approximate vs {len(exact)} exact result lists")
    scores = []
    for a, e in zip(approx, exact):
        truth = set(list(e)[:k])
        if not truth:
            continue
        scores.append(len(truth & set(list(a)[:k])) / len(truth))
    return sum(scores) / len(scores) if scores else math.nan


# --------------------------------------------------------------------------- closed-loop load


@dataclass
class LoadResult:
    concurrency: int
    latencies_s: list[float] = field(default_factory=list)  # successful requests only
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_s) + self.errors

    @property
    def qps(self) -> float:
        return len(self.latencies_s) / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"concurrency": self.concurrency}
        out.update(latency_summary(self.latencies_s))
        out["qps"] = round(self.qps, 1)
        out["errors"] = self.errors
        if self.error_kinds:
            out["error_kinds"] = dict(self.error_kinds)
        out["wall_s"] = round(self.wall_s, 2)
        return out


def closed_loop(
    call: Callable[[int], Any],
    concurrency: int,
    *,
    duration_s: float,
    max_requests: int,
    warmup: int = 0,
) -> LoadResult:
    """``concurrency`` workers, each issuing ``call(i)`` back to back (a new request only
    when its previous one finished), until ``duration_s`` has passed or ``max_requests``
    were started. ``i`` is a global request number (use it to pick unique queries).
    Exceptions count as errors (by class name, or gRPC status code name) and never stop
    the run. ``warmup`` calls run first, sequentially, untimed; they use numbers >= max_requests
    + 10**6 so they never collide with timed requests."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    for w in range(warmup):
        try:
            call(max_requests + 10**6 + w)
        except Exception:  # noqa: BLE001 - warm-up failures show up in the timed run
            pass
    result = LoadResult(concurrency)
    lock = threading.Lock()
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + duration_s

    def worker() -> None:
        local_lat: list[float] = []
        local_err: dict[str, int] = {}
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t0 = time.perf_counter()
            try:
                call(i)
            except Exception as exc:  # noqa: BLE001 - counted, reported
                name = type(exc).__name__
                code = getattr(exc, "code", None)
                if callable(code):
                    try:
                        name = code().name
                    except Exception:  # noqa: BLE001
                        pass
                elif code is not None and hasattr(code, "name"):
                    name = code.name
                local_err[name] = local_err.get(name, 0) + 1
                continue
            local_lat.append(time.perf_counter() - t0)
        with lock:
            result.latencies_s.extend(local_lat)
            for k, v in local_err.items():
                result.error_kinds[k] = result.error_kinds.get(k, 0) + v
                result.errors += v

    threads = [threading.Thread(target=worker, name=f"load-{n}", daemon=True) for n in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + 120)
    result.wall_s = time.perf_counter() - t0
    return result


def time_calls(call: Callable[[int], Any], n: int, warmup: int = 2) -> list[float]:
    """Sequential timings (seconds) of ``call(i)`` for i in range(n), after ``warmup`` calls."""
    for w in range(warmup):
        call(n + w)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------- rendering


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}" if abs(v) >= 0.1 else f"{v:.3f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Iterable[dict[str, Any]], headers: dict[str, str] | None = None) -> str:
    """A GitHub markdown table of ``rows`` (dicts), one column per key in ``columns``."""
    headers = headers or {}
    lines = [
        "| " + " | ".join(headers.get(c, c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        out = [f"### {self.title}", "", markdown_table(self.columns, self.rows, self.headers)]
        if self.notes:
            out += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "notes": self.notes}


@dataclass
class SuiteResult:
    """What every suite returns: tables for people, ``data`` for machines."""

    suite: str
    tables: list[Table] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def markdown(self) -> str:
        out = [f"## {self.suite}", ""]
        if self.meta:
            out.append("`" + json.dumps(self.meta, ensure_ascii=False, sort_keys=True, default=str) + "`")
            out.append("")
        if self.error:
            out += [f"**suite failed:** {self.error}", ""]
        for t in self.tables:
            out += [t.markdown(), ""]
        return "\n".join(out).rstrip() + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "meta": self.meta,
            "error": self.error,
            "tables": [t.to_dict() for t in self.tables],
            "data": self.data,
        }


def to_json(doc: Any) -> str:
    """Strict JSON: NaN/inf become null (json.dumps would write invalid NaN)."""

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, Path):
            return str(x)
        return x

    return json.dumps(clean(doc), indent=1, ensure_ascii=False, allow_nan=False, default=str)


# --------------------------------------------------------------------------- machine facts


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
    }
    try:
        info["loadavg_1m_at_start"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_total_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (Linux /proc), 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class CpuMeter:
    """Fraction of the machine's CPU used by other processes while a suite ran (from /proc/stat
    minus this process tree is not cheap; this reports total busy share and our own share)."""

    def __init__(self) -> None:
        self._t0 = self._busy()
        self._own0 = os.times()
        self._wall0 = time.monotonic()

    @staticmethod
    def _busy() -> tuple[float, float]:
        try:
            parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
            vals = [float(x) for x in parts]
            idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
            return sum(vals) - idle, sum(vals)
        except OSError:
            return 0.0, 0.0

    def stop(self) -> dict[str, float]:
        busy1, total1 = self._busy()
        busy0, total0 = self._t0
        own = os.times()
        wall = time.monotonic() - self._wall0
        cpus = os.cpu_count() or 1
        machine = (busy1 - busy0) / (total1 - total0) if total1 > total0 else math.nan
        own_s = (own.user - self._own0.user) + (own.system - self._own0.system)
        own_s += (own.children_user - self._own0.children_user) + (own.children_system - self._own0.children_system)
        return {
            "wall_s": round(wall, 1),
            "machine_busy_share": round(machine, 3),
            "this_process_cpu_share": round(own_s / (wall * cpus), 3) if wall > 0 else math.nan,
        }
