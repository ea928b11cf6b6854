"""``homesearch bench chaos`` and ``homesearch bench overload`` (issue 14's acceptance figures).

chaos: SIGKILL tritonserver, the Triton launcher, Valkey, ranking and the gateway of the bench's
own ``homesearch up`` while a load thread sends unique text searches (8/s); per kill: searches
answered in full / degraded / failed (by code), time to recover, orphans, port problems. The
in-run baseline is the same load on the healthy stack just before the first kill.

overload: cache-miss text searches (unique queries, no_cache) through the gateway:
1. unloaded p50 (sequential);
2. sustainable QPS: closed loop at the ranking's admission limit, accepted answers only;
3. open loop offering 4x that rate for a fixed time: accepted p50/p99 (target p99 <= 3x the
   unloaded p50) and refusals (RESOURCE_EXHAUSTED with retry-after-ms; target < 10 ms);
   alongside it (mixed load) result-cache hits and cached-embedding searches of a warmed query set
   at ``hit_rps`` each: their p50/p99 and refusals (target 0: they cost ~1-3 ms and must never
   wait for, or be refused behind, misses).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.chaos import SearchLoad, kill_and_recover, orphans, port_owners_ok, unique_queries
from bench.harness import SuiteResult, Table, closed_loop, latency_summary, ratio
from bench.stack_proc import StackAddrs

CHAOS_TARGETS = ("tritonserver", "launcher", "valkey", "ranking", "gateway")


def _client(addrs: StackAddrs, timeout_s: float = 10.0):
    from homesearch.client import HomesearchClient

    return HomesearchClient(addrs.gateway, api_key=addrs.api_key, timeout_s=timeout_s)


def run_chaos(addrs: StackAddrs, log=print, targets=CHAOS_TARGETS, baseline_s: float = 10.0) -> SuiteResult:
    if addrs.up_pid is None or addrs.data_dir is None:
        raise RuntimeError("chaos needs the bench's own stack (not --gateway): it kills its processes")
    client = _client(addrs)

    def full_search() -> bool:
        try:
            res = client.search(f"sofa {uuid.uuid4().hex[:8]}", top_k=3)
            return bool(res.hits) and res.degraded is None
        except Exception:  # noqa: BLE001
            return False

    load = SearchLoad(lambda q: client.search(q, top_k=5), rps=8).start()
    rows: list[dict[str, Any]] = []
    try:
        load.window()
        time.sleep(baseline_s)
        base = load.window()
        lat = latency_summary(base.latencies_s)
        rows.append({"target": "(none: healthy baseline)", "recovered_s": None,
                     "searches": base.ok + base.degraded + base.error_count, "ok": base.ok, "degraded": base.degraded,
                     "missing_signals": "", "errors": base.error_count, "error_kinds": "", "p50_ms": lat["p50_ms"],
                     "orphans": len(orphans(addrs.up_pid, str(addrs.data_dir))),
                     "port_problems": len(port_owners_ok(addrs.up_pid, addrs.ports)), "search_recovered": True})
        for target in targets:
            log(f"[chaos] SIGKILL {target}")
            outcome = kill_and_recover(target=target, up_pid=addrs.up_pid, data_dir=addrs.data_dir, ports=addrs.ports,
                                       load=load, healthy=client.health, full_search=full_search)
            rows.append(outcome.row())
            log(f"[chaos] {outcome.row()}")
    finally:
        load.stop()
        client.close()
    cols = ["target", "recovered_s", "searches", "ok", "degraded", "missing_signals", "errors", "error_kinds",
            "p50_ms", "orphans", "port_problems", "search_recovered"]
    table = Table("Chaos: SIGKILL one part under 8 text searches/s (unique queries)", cols, rows, notes=[
        "degraded = answered without the named signals (encoders down: BM25 + cached embeddings), marked in the "
        "response; errors = failed searches while the part was down and restarting.",
        "orphans = processes naming the stack's data dir outside up's process tree; port_problems = a stack port "
        "not held by up's tree, both checked after recovery.",
        "target while tritonserver or its launcher is killed: 0 errors (all text queries answered, degraded).",
    ])
    return SuiteResult("chaos", tables=[table], data={"rows": rows})


def _open_loop(call, rate: float, duration_s: float, workers: int = 64) -> tuple[list[float], list[float], dict]:
    """Offers ``rate`` calls/s for ``duration_s`` regardless of completions; returns
    (accepted latencies, refusal latencies, other errors by code)."""
    import grpc

    accepted: list[float] = []
    refused: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    counter = itertools.count()

    def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            call(i)
            with lock:
                accepted.append(time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001
            dt = time.perf_counter() - t0
            code = getattr(exc, "code", None)
            with lock:
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused.append(dt)
                else:
                    name = code.name if hasattr(code, "name") else type(exc).__name__
                    errors[name] = errors.get(name, 0) + 1

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="open-loop") as pool:
        start = time.perf_counter()
        n = int(rate * duration_s)
        for k in range(n):
            due = start + k / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, next(counter))
    return accepted, refused, errors


HOT_QUERIES = ("white sofa", "oak dining table", "black office chair", "floor lamp", "double bed",
               "bookcase", "bathroom mirror", "kids desk")


def run_overload(addrs: StackAddrs, log=print, factor: float = 4.0, duration_s: float = 10.0,
                 sustain_concurrency: int | None = None, hit_rps: float = 20.0) -> SuiteResult:
    import os

    # the ranking's admission limit (as `up` configures it: the env var, else its default)
    from services.ranking.config import RankingSettings

    sustain_concurrency = sustain_concurrency or RankingSettings().max_in_flight
    queries = unique_queries()
    tag = uuid.uuid4().hex[:6]  # this run's queries miss every cache, also of earlier runs
    clients = [_client(addrs, timeout_s=30) for _ in range(8)]

    def search(i: int) -> None:
        clients[i % len(clients)].search(f"{queries[i % len(queries)]} {tag}{i // len(queries)}", top_k=10,
                                         no_cache=True)

    def hit(i: int) -> None:
        res = clients[i % len(clients)].search(HOT_QUERIES[i % len(HOT_QUERIES)], top_k=10)
        if not res.cache_hit:
            raise RuntimeError("hot query missed the result cache")

    def emb_hit(i: int) -> None:  # embedding cached, index + fusion recomputed
        clients[i % len(clients)].search(HOT_QUERIES[i % len(HOT_QUERIES)], top_k=10, no_cache=True)

    offset = itertools.count(0, 100_000)
    try:
        for i in range(5):
            search(next(offset) + i)  # warm-up
        for q in HOT_QUERIES:  # fills the result cache for the hit load
            clients[0].search(q, top_k=10)
        base = next(offset)
        unloaded = [0.0] * 0
        for i in range(30):
            t0 = time.perf_counter()
            search(base + i)
            unloaded.append(time.perf_counter() - t0)
        p50_unloaded = latency_summary(unloaded)["p50_ms"]
        log(f"[overload] unloaded cache-miss p50 {p50_unloaded} ms")
        base = next(offset)
        sustained = closed_loop(lambda i: search(base + i), sustain_concurrency, duration_s=duration_s,
                                max_requests=10_000)
        sus = sustained.summary()
        qps = sus["qps"]
        log(f"[overload] sustainable (closed loop, c={sustain_concurrency}): {qps} QPS, p99 {sus['p99_ms']} ms")
        base = next(offset)
        side: dict[str, tuple] = {}  # the mixed load beside the misses: hits and embedding hits
        threads = [threading.Thread(target=lambda n=name, f=fn: side.__setitem__(n, _open_loop(f, hit_rps, duration_s,
                                                                                                workers=16)), daemon=True)
                   for name, fn in (("hit", hit), ("emb_hit", emb_hit))] if hit_rps > 0 else []
        for t in threads:
            t.start()
        acc, ref, errs = _open_loop(lambda i: search(base + i), factor * qps, duration_s)
        for t in threads:
            t.join()
    finally:
        for c in clients:
            c.close()
    a, r = latency_summary(acc), latency_summary(ref)
    offered = round(factor * qps, 1)
    row = {
        "unloaded_p50_ms": p50_unloaded, "sustainable_qps": qps, "offered_qps": offered,
        "accepted": a["n"], "accepted_qps": round(a["n"] / duration_s, 1), "accepted_p50_ms": a["p50_ms"],
        "accepted_p99_ms": a["p99_ms"], "p99_over_unloaded_p50": ratio(a["p99_ms"], p50_unloaded),
        "refused": r["n"], "refusal_p50_ms": r["p50_ms"], "refusal_p99_ms": r["p99_ms"],
        "other_errors": sum(errs.values()), "error_kinds": ",".join(f"{k}={v}" for k, v in sorted(errs.items())),
    }
    if side:
        row["hit_rps"] = hit_rps
    for name, (h_acc, h_ref, h_errs) in side.items():
        h = latency_summary(h_acc)
        row.update({f"{name}_ok": h["n"], f"{name}_p50_ms": h["p50_ms"], f"{name}_p99_ms": h["p99_ms"],
                    f"{name}_refused": len(h_ref), f"{name}_other_errors": sum(h_errs.values())})
    log(f"[overload] {row}")
    table = Table(f"Overload: {factor:g}x the sustainable cache-miss rate for {duration_s:g} s (open loop)",
                  list(row), [row], notes=[
                      "targets: accepted p99 <= 3x unloaded p50; refusals (RESOURCE_EXHAUSTED + retry-after-ms) "
                      "in < 10 ms.",
                      f"sustainable = accepted QPS of a closed loop at concurrency {sustain_concurrency} (the ranking's "
                      "max_in_flight), same run; unique texts with no_cache, so every search embeds.",
                      f"mixed load during the open loop: result-cache hits (hit_*) and cached-embedding searches "
                      f"(emb_hit_*: no_cache) of {len(HOT_QUERIES)} warmed queries at {hit_rps:g}/s each; "
                      "target *_refused = 0 and their p99 far below a miss.",
                  ])
    return SuiteResult("overload", tables=[table], data={"row": row, "sustained": sus})
