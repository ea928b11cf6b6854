"""``homesearch bench [suite ...]``: measure the real stack, every figure beside a same-run baseline.

Suites (default: all, in this order):

- ``ingest``   catalog file -> searchable through ``homesearch index`` (products/s) vs the encoders alone;
- ``search``   latency/QPS through the gateway at concurrency 1/4/16/64 (text, image, image+text;
               cache miss / embedding hit / result hit) vs Health.Check, ranking direct, encoder alone;
- ``scale``    Qdrant Edge (project index layer) at 10k/100k/1M synthetic products: build time, memory,
               disk, latency, recall@10 vs exact numpy search and qdrant-client local mode;
- ``encoders`` the encoder engineers' ``bench/encoders.py`` (Triton vs in-process PyTorch).

``ingest`` and ``search`` share one ``homesearch up`` started on free loopback ports with a temporary
data dir (or ``--gateway/--ranking/--triton`` of a running stack). Needs a source checkout: the
suites live in ``bench/`` at the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUITES = ("ingest", "search", "scale", "encoders")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="homesearch bench", description=__doc__.split("\n\n")[0],
                                epilog="Suites: " + ", ".join(SUITES) + ". Run them on an otherwise idle machine; "
                                "the tables record CPU model, core count and load average.")
    p.add_argument("suites", nargs="*", metavar="SUITE",
                   help=f"suites to run: {', '.join(SUITES)} (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="short run: scale at 10k only, 4 s per load point, fewer encoder iterations (a few minutes)")
    p.add_argument("--json", metavar="OUT", type=Path, help="write all results as one JSON document")
    p.add_argument("--markdown", metavar="OUT", type=Path, help="write all tables as markdown")
    p.add_argument("--catalog", type=Path, default=REPO / "data" / "demo" / "catalog.jsonl",
                   help="catalog for ingest/search (default data/demo/catalog.jsonl)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64], help="search load levels")
    p.add_argument("--sizes", type=int, nargs="+", help="scale sizes (default 10000 100000 1000000; --quick: 10000)")
    p.add_argument("--gateway", help="use a running stack: gateway host:port (needs --ranking and --triton)")
    p.add_argument("--ranking", help="running ranking service host:port")
    p.add_argument("--triton", help="running Triton gRPC host:port")
    p.add_argument("--api-key", default=os.environ.get("HOMESEARCH_API_KEY"), help="API key for --gateway")
    p.add_argument("--ranking-metrics", help="ranking /metrics URL of the running stack (stage breakdown)")
    p.add_argument("--skip-index", action="store_true", help="with a running stack: do not index --catalog")
    return p


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    suites = [s for s in SUITES if s in set(args.suites or SUITES)]
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        from bench.harness import SuiteResult, machine_info, to_json
    except ImportError:
        print("homesearch bench: the bench/ suites are not importable (run from a source checkout)", file=sys.stderr)
        return 2

    started = time.time()
    results: list[SuiteResult] = []
    stack = None
    addrs = None
    try:
        if {"ingest", "search"} & set(suites):
            from bench.stack_proc import BenchStack, StackAddrs

            if args.gateway:
                if not (args.ranking and args.triton):
                    print("homesearch bench: --gateway needs --ranking and --triton", file=sys.stderr)
                    return 2
                addrs = StackAddrs(args.gateway, args.ranking, args.triton, args.api_key, args.ranking_metrics)
            else:
                _log("[bench] starting homesearch up (Triton, Valkey, ranking, gateway) on free loopback ports")
                stack = BenchStack(log=_log)
                addrs = stack.start()
        if "ingest" in suites:
            from bench import ingest

            results.append(_guard("ingest", lambda: ingest.run(addrs, args.catalog, log=_log)))
        elif "search" in suites and not args.skip_index:
            from bench import ingest

            _log(f"[bench] indexing {args.catalog} for the search suite")
            ingest.index_catalog(addrs, args.catalog)
        if "search" in suites:
            from bench import search

            results.append(_guard("search", lambda: search.run(addrs, quick=args.quick, concurrency=args.concurrency,
                                                               log=_log)))
    finally:
        if stack is not None:
            stack.stop()
    if "scale" in suites:
        from bench import scale

        sargs = scale.build_parser().parse_args([])
        sargs.sizes = args.sizes or ([10_000] if args.quick else [10_000, 100_000, 1_000_000])
        if args.quick:
            sargs.queries = sargs.latency_queries = 100
        results.append(_guard("scale", lambda: scale.run(sargs, log=_log)))
    if "encoders" in suites:
        results.append(_guard("encoders", lambda: run_encoders(args.quick)))

    for r in results:
        print(r.markdown())
    doc = {"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
           "seconds": round(time.time() - started, 1), "machine": machine_info(),
           "suites": [r.to_dict() for r in results]}
    if args.json:
        args.json.write_text(to_json(doc) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text("\n".join(r.markdown() for r in results), encoding="utf-8")
    return 1 if any(r.error for r in results) else 0


def _guard(name: str, fn):
    from bench.harness import SuiteResult

    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - one failing suite must not hide the others' numbers
        import traceback

        traceback.print_exc()
        return SuiteResult(name, error=f"{type(exc).__name__}: {exc}")


def run_encoders(quick: bool):
    """Runs the encoder engineers' bench/encoders.py as a subprocess (it re-execs itself with
    malloc tuning) and wraps its JSON in a table."""
    from bench.harness import SuiteResult, Table

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "encoders.json"
        cmd = [sys.executable, str(REPO / "bench" / "encoders.py"), "--json-out", str(out)]
        if quick:
            cmd += ["--iters-b1", "10", "--iters-big", "2"]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"bench/encoders.py failed ({proc.returncode}): {proc.stderr[-1500:]}")
        doc = json.loads(out.read_text())
    rows = sorted(doc["results"], key=lambda r: (r["encoder"], r["batch"], r["path"] != "triton"))
    table = Table("Encoders: Triton vs in-process PyTorch (bench/encoders.py)",
                  ["encoder", "batch", "path", "p50_ms", "p99_ms", "items_per_s", "overhead_x"], rows,
                  headers={"overhead_x": "triton p50 / in-process p50"})
    return SuiteResult("encoders", tables=[table], data=doc, meta=doc.get("meta", {}))


if __name__ == "__main__":
    sys.exit(main())
