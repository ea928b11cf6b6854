"""Scale suite: the product index at 10k / 100k / 1M synthetic products.

Subject: Qdrant Edge through the project's own index layer (``services.ranking.index.edge.EdgeIndex``:
same collection config, payload indexes, filters and ``search()`` the ranking service uses),
loaded with ``IndexedProduct`` rows (384-d text vector + realistic payload; no photos, empty BM25).
Baselines in the same process and run, on the same vectors and queries:

- exact numpy search (brute-force matmul; filtered through a boolean mask): the ground truth
  for recall@10 and the "no index at all" latency;
- ``qdrant-client`` local mode through the project's ``ServerIndex`` (the functional double
  the tests use) at the sizes it can handle (``--local-max``, default 10k).

Edge is measured twice: as the ranking service runs it today (the layer never calls
``EdgeShard.optimize()``, so every point stays in a plain, unindexed segment and each query is a
full scan), and after ``optimize()`` built HNSW (m=16, ef_construct=128 from the layer's config),
at several ``hnsw_ef`` values. Latency is one query at a time, interleaved query by query between
engines so load from other processes hits all of them alike.

    python -m bench.scale --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.harness import SuiteResult, Table, latency_summary, machine_info, ratio, recall_at_k, rss_bytes
from bench.synthetic import SyntheticCatalog, SyntheticSpec, exact_topk, iter_batches

FILTERS = ("none", "category", "price 50-150")
PRICE_RANGE = (50.0, 150.0)


# --------------------------------------------------------------------------- loading


def indexed_products(cat: SyntheticCatalog, arrays: dict[str, np.ndarray], start: int, stop: int) -> list:
    from services.ranking.index.schema import IndexedProduct, SparseVec, build_payload

    out = []
    for i in range(start, stop):
        f = cat.payload_fields(i, int(arrays["category"][i]), int(arrays["family"][i]), float(arrays["price"][i]),
                               bool(arrays["in_stock"][i]))
        pid = cat.product_id(i)
        payload = build_payload(
            product_id=pid, title=f["title"], description=f["description"], category=f["category"],
            attributes=f["attributes"], price=f["price"], currency=f["currency"], in_stock=f["in_stock"],
            image_uris=[], n_images=0, content_hash="", model_version="synthetic",
        )
        out.append(IndexedProduct(pid, arrays["vectors"][i].tolist(), [], SparseVec([], []), payload))
    return out


def load_index(index, cat: SyntheticCatalog, arrays: dict[str, np.ndarray], n: int, batch: int = 1000,
               deadline: float | None = None) -> tuple[float, int]:
    """Upserts products [0, n) in batches; returns (seconds, products loaded) (stops at ``deadline``)."""
    from services.ranking.index.base import IndexMeta

    index.ensure_collection(arrays["vectors"].shape[1])
    index.save_meta(IndexMeta(model_version="synthetic", dim=arrays["vectors"].shape[1]))
    t0 = time.perf_counter()
    loaded = 0
    for s, e in iter_batches(n, batch):
        index.upsert(indexed_products(cat, arrays, s, e))
        loaded = e
        if deadline is not None and time.monotonic() > deadline:
            break
    return time.perf_counter() - t0, loaded


def search_filter(kind: str, category_name: str):
    from services.ranking.index.schema import SearchFilter

    if kind == "category":
        return SearchFilter(categories=[category_name])
    if kind.startswith("price"):
        return SearchFilter(min_price=PRICE_RANGE[0], max_price=PRICE_RANGE[1])
    return SearchFilter()


def numpy_mask(kind: str, arrays: dict[str, np.ndarray], category: int) -> np.ndarray | None:
    if kind == "category":
        return arrays["category"] == category
    if kind.startswith("price"):
        p = arrays["price"]
        return (p >= PRICE_RANGE[0]) & (p <= PRICE_RANGE[1])
    return None


def index_query(index, vec: np.ndarray, flt, k: int = 10) -> list[int]:
    from services.ranking.index.schema import TEXT_VECTOR, SignalQuery

    res = index.search([SignalQuery("text", TEXT_VECTOR, dense=vec.tolist(), limit=k)], flt)[0]
    return [int(c.product_id.rsplit("-", 1)[1]) for c in res]


# --------------------------------------------------------------------------- one size


def run_size(n: int, args: argparse.Namespace, cat: SyntheticCatalog, log: Callable[[str], None]) -> list[dict[str, Any]]:
    from services.ranking.index.edge import EdgeIndex

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    arrays = cat.arrays(n)
    gen_s = time.perf_counter() - t0
    q = cat.queries(args.queries)
    qv, qcat = q["vectors"], q["category"]
    base = arrays["vectors"]
    log(f"[scale] n={n}: generated in {gen_s:.1f}s; exact ground truth for {len(qv)} queries x {len(FILTERS)} filters")

    # Ground truth (batched, not timed as latency).
    truth: dict[str, list[list[int]]] = {}
    for kind in FILTERS:
        ids: list[list[int]] = []
        for s, e in iter_batches(len(qv), 50):
            if kind == "category":
                for j in range(s, e):
                    top = exact_topk(base, qv[j:j + 1], 10, numpy_mask(kind, arrays, int(qcat[j])))[0]
                    ids.append([int(x) for x in top if x >= 0])
            else:
                top = exact_topk(base, qv[s:e], 10, numpy_mask(kind, arrays, 0))
                ids += [[int(x) for x in row if x >= 0] for row in top]
        truth[kind] = ids
    selectivity = {
        "none": 1.0,
        "category": float(np.mean([np.mean(arrays["category"] == c) for c in qcat[:50]])),
        "price 50-150": float(np.mean(numpy_mask("price", arrays, 0))),
    }

    # Build Edge via the project layer.
    work = Path(tempfile.mkdtemp(prefix=f"hs-bench-scale-{n}-", dir=args.tmp_dir))
    gc.collect()
    rss0 = rss_bytes()
    edge = EdgeIndex(work / "edge", "products", hnsw_ef=128, optimize_delay_s=None)  # the bench times optimize() itself
    load_s, _ = load_index(edge, cat, arrays, n)
    edge.flush()
    gc.collect()
    rss_loaded = rss_bytes()
    disk_loaded = edge.disk_bytes()
    log(f"[scale] n={n}: edge loaded in {load_s:.1f}s ({n / load_s:.0f}/s), rss +{(rss_loaded - rss0) / 2**20:.0f} MiB")

    n_lat = min(len(qv), args.latency_queries)
    n_np = min(n_lat, max(10, int(args.latency_queries * 10_000 / max(n, 10_000))))  # numpy gets slow at 1M

    def measure(label: str, engines: dict[str, Callable[[int, str], list[int]]], kinds=FILTERS, nq=n_lat) -> None:
        """Interleaved timing: for each filter, query j runs on every engine before query j+1."""
        for kind in kinds:
            lat = {e: [] for e in engines}
            got = {e: [] for e in engines}
            for j in range(nq):
                for e, fn in engines.items():
                    if e == "numpy exact" and j >= n_np:
                        continue
                    t = time.perf_counter()
                    ids = fn(j, kind)
                    lat[e].append(time.perf_counter() - t)
                    got[e].append(ids)
            for e in engines:
                # Recall on every query (untimed remainder) for index engines.
                if e != "numpy exact":
                    for j in range(nq, len(qv)):
                        got[e].append(engines[e](j, kind))
                rec = recall_at_k(got[e], truth[kind][: len(got[e])]) if e != "numpy exact" else 1.0
                s = latency_summary(lat[e])
                rows.append({"n": n, "engine": e, "config": label if e != "numpy exact" else "brute force",
                             "filter": kind, "selectivity": round(selectivity[kind], 4), "recall@10": round(rec, 4),
                             "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"], "mean_ms": s["mean_ms"], "queries": s["n"]})
            log(f"[scale] n={n} {label} filter={kind}: " + ", ".join(
                f"{r['engine']} p50 {r['p50_ms']} ms r@10 {r['recall@10']}" for r in rows[-len(engines):]))

    def np_engine(j: int, kind: str) -> list[int]:
        top = exact_topk(base, qv[j:j + 1], 10, numpy_mask(kind, arrays, int(qcat[j])))[0]
        return [int(x) for x in top if x >= 0]

    def edge_engine(j: int, kind: str) -> list[int]:
        return index_query(edge, qv[j], search_filter(kind, cat.names[int(qcat[j])]))

    # 1) right after a bulk write, before the (debounced) optimize(): plain segments, full scan.
    info = edge._shard.info()
    plain_cfg = f"before optimize(), ef 128 ({info.indexed_vectors_count}/{info.points_count} indexed)"
    measure(plain_cfg, {"numpy exact": np_engine, "edge (layer)": edge_engine}, nq=min(n_lat, args.plain_queries))

    # 2) optimize() -> HNSW, then an hnsw_ef sweep.
    t = time.perf_counter()
    edge.optimize()
    opt_s = time.perf_counter() - t
    edge.flush()
    gc.collect()
    rss_opt = rss_bytes()
    disk_opt = edge.disk_bytes()
    info = edge._shard.info()
    log(f"[scale] n={n}: optimize() {opt_s:.1f}s; {info.indexed_vectors_count}/{info.points_count} vectors indexed, "
        f"{info.segments_count} segments")
    for ef in args.ef:
        edge._hnsw_ef = ef
        measure(f"optimized, hnsw_ef {ef}", {"numpy exact": np_engine, "edge (layer)": edge_engine})
    build = {
        "n": n, "engine": "edge (layer)", "generate_s": round(gen_s, 1), "load_s": round(load_s, 1),
        "load_per_s": round(n / load_s), "optimize_s": round(opt_s, 1), "build_s": round(load_s + opt_s, 1),
        "rss_loaded_mib": round((rss_loaded - rss0) / 2**20), "rss_optimized_mib": round((rss_opt - rss0) / 2**20),
        "disk_loaded_mib": round(disk_loaded / 2**20, 1), "disk_mib": round(disk_opt / 2**20, 1),
        "segments": info.segments_count, "indexed_vectors": info.indexed_vectors_count,
        "numpy_vectors_mib": round(base.nbytes / 2**20),
    }
    edge.close()
    del edge
    gc.collect()
    shutil.rmtree(work, ignore_errors=True)

    # 3) qdrant-client local mode (functional double) where it can cope.
    local_build = None
    if n <= args.local_max:
        from services.ranking.index.server import ServerIndex

        gc.collect()
        rss0 = rss_bytes()
        local = ServerIndex.connect(":memory:", collection="products", hnsw_ef=128)
        deadline = time.monotonic() + args.local_load_cap_s
        lt, loaded = load_index(local, cat, arrays, n, deadline=deadline)
        gc.collect()
        local_build = {"n": n, "engine": "qdrant-client local", "load_s": round(lt, 1), "load_per_s": round(loaded / lt),
                       "rss_loaded_mib": round((rss_bytes() - rss0) / 2**20), "loaded": loaded}
        if loaded == n:
            def local_engine(j: int, kind: str) -> list[int]:
                return index_query(local, qv[j], search_filter(kind, cat.names[int(qcat[j])]))

            nq = min(n_lat, args.local_queries)
            measure("local mode (exact scan in Python)", {"numpy exact": np_engine, "qdrant-client local": local_engine},
                    nq=nq)
        else:
            log(f"[scale] n={n}: local mode loaded only {loaded} in {lt:.0f}s (cap {args.local_load_cap_s}s); not queried")
        local.close()
        del local
        gc.collect()
    return [{"_build": build}] + ([{"_build": local_build}] if local_build else []) + rows


# --------------------------------------------------------------------------- suite


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="homesearch bench scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=200, help="queries for recall@10 (default 200)")
    p.add_argument("--latency-queries", type=int, default=200, help="timed single queries per engine/filter")
    p.add_argument("--plain-queries", type=int, default=50, help="timed queries against the unoptimised index")
    p.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256], help="hnsw_ef values after optimize()")
    p.add_argument("--local-max", type=int, default=10_000, help="largest size for qdrant-client local mode")
    p.add_argument("--local-load-cap-s", type=float, default=300.0, help="give up loading local mode after this")
    p.add_argument("--local-queries", type=int, default=30, help="timed queries against local mode")
    p.add_argument("--tmp-dir", default=None, help="where the Edge shards are built (default: system temp)")
    p.add_argument("--seed", type=int, default=SyntheticSpec.seed)
    return p


def run(args: argparse.Namespace, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> SuiteResult:
    cat = SyntheticCatalog(SyntheticSpec(seed=args.seed))
    result = SuiteResult("scale", meta={**machine_info(), "dim": cat.spec.dim, "categories": cat.spec.n_categories,
                                       "sizes": args.sizes, "recall_queries": args.queries})
    builds: list[dict] = []
    rows: list[dict] = []
    for n in args.sizes:
        try:
            out = run_size(n, args, cat, log)
        except MemoryError as exc:
            result.error = f"n={n}: out of memory ({exc})"
            break
        builds += [r["_build"] for r in out if "_build" in r]
        rows += [r for r in out if "_build" not in r]
        result.data = {"builds": builds, "queries": rows}  # partial results survive a later failure
    # Ratio to the numpy baseline measured in the same interleaved loop.
    last_np: dict[tuple, dict] = {}
    for r in rows:  # numpy row precedes its engines' rows within each measure() block
        if r["engine"] == "numpy exact":
            last_np[(r["n"], r["filter"])] = r
        else:
            ref = last_np.get((r["n"], r["filter"]))
            r["speedup_vs_numpy_p50"] = ratio(ref["p50_ms"], r["p50_ms"], 3) if ref else None
    result.tables.append(Table(
        "Index build (load through EdgeIndex.upsert in batches of 1000, then optimize())",
        ["n", "engine", "load_s", "load_per_s", "optimize_s", "build_s", "rss_loaded_mib", "rss_optimized_mib",
         "disk_mib", "segments", "indexed_vectors", "numpy_vectors_mib"],
        builds,
        notes=["rss_*: resident-set growth of this process while building (the index lives in-process)",
               "numpy_vectors_mib: the raw float32 matrix the exact baseline scans, for scale"],
    ))
    result.tables.append(Table(
        "Query latency (one at a time, top-10) and recall@10 vs exact search",
        ["n", "engine", "config", "filter", "selectivity", "p50_ms", "p99_ms", "recall@10", "speedup_vs_numpy_p50",
         "queries"],
        rows,
        headers={"speedup_vs_numpy_p50": "numpy p50 / this p50"},
        notes=["numpy exact runs in the same loop, query by query, right before the index engine (same noise)",
               f"filters: category = the query's own category (keyword payload index), price range "
               f"{PRICE_RANGE[0]:g}-{PRICE_RANGE[1]:g} (float payload index)"],
    ))
    return result


def main(argv: list[str] | None = None) -> int:
    from bench.harness import to_json

    args = build_parser().parse_args(argv)
    res = run(args)
    print(res.markdown())
    print(to_json(res.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
