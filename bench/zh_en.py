"""Chinese vs English search latency through the gateway (issue #8: "latency of the Chinese path
within 20% of the English path"; a benchmark, not a timed test).

Each query of a zh query set (default ``data/queries/ikea-zh.jsonl``) is paired with its English
original (``text_en``). Pairs are sent **interleaved** at concurrency 1 through the public Search
RPC with ``no_cache=True`` (result cache off), alternating which language goes first, so drift of a
shared machine hits both sides equally. Two passes:

- ``cold``: the query-embedding cache entries are deleted before every request (``--redis-url`` of
  the stack's Valkey; only keys ``<prefix>:emb:*`` are touched): language analysis + embedding +
  index + fusion every time. A Chinese query's dense input is its English translation, which is
  often byte-identical to the English twin, so without the deletion the second of a pair would
  get a free embedding. Without ``--redis-url`` this pass is skipped.
- ``emb-hit``: the same pairs again, embeddings now cached: analysis + index + fusion.

  python -m bench.zh_en --gateway 127.0.0.1:50051 --api-key hs_... --redis-url redis://127.0.0.1:6380/0 \\
      [--queries data/queries/ikea-zh.jsonl] [--limit N] [--json out.json]

Prints a markdown table: p50/p95/mean per language and pass, and the zh/en ratios (the target is
p50 and p95 ratio <= 1.20).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import SuiteResult, Table, latency_summary, machine_info, ratio, to_json  # noqa: E402


def load_pairs(path: Path, limit: int = 0) -> list[tuple[str, str, str]]:
    """(query id, zh text, en text) for every query that has both."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        q = json.loads(line)
        if q.get("text") and q.get("text_en"):
            pairs.append((q["id"], q["text"], q["text_en"]))
    return pairs[:limit] if limit else pairs


def run(gateway: str, api_key: str | None, pairs: list[tuple[str, str, str]], *, redis_url: str | None = None,
        cache_prefix: str = "hs", min_interval_s: float = 0.025, log=print, search=None) -> SuiteResult:
    """``search(text)`` (injected in tests) defaults to HomesearchClient.search(no_cache=True).

    Requests start at least ``min_interval_s`` apart (default 25 ms = at most 40/s): the gateway's
    default per-key rate limit is 50/s, and embedding-cache hits take ~4 ms, so an unpaced run
    is mostly RESOURCE_EXHAUSTED rejections (and a cache-filling pass that was rejected fills
    nothing). The pause is outside the timed call."""
    client = None
    if search is None:
        from homesearch.client import HomesearchClient

        client = HomesearchClient(gateway, api_key=api_key, timeout_s=30)

        def search(text: str):
            return client.search(text=text, top_k=10, no_cache=True)

    flush = None
    if redis_url:
        import redis

        r = redis.Redis.from_url(redis_url)

        def flush() -> int:
            keys = list(r.scan_iter(match=f"{cache_prefix}:emb:*", count=1000))
            return r.delete(*keys) if keys else 0

    raw_search = search
    last = {"t": 0.0}

    def search(text: str):  # noqa: F811 - the paced wrapper
        wait = last["t"] + min_interval_s - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        last["t"] = time.perf_counter()
        return raw_search(text)

    res = SuiteResult("zh-en", meta={**machine_info(), "gateway": gateway, "pairs": len(pairs), "concurrency": 1,
                                     "min_interval_ms": round(min_interval_s * 1000, 1),
                                     "no_cache": True, "embedding_cache_cleared_per_request": bool(flush)})
    # Warm every code path once (jieba, glossary, Triton) so the first timed request is not a start-up.
    for t in ("white bookcase", "白色书架"):
        search(t)
    rows: list[dict] = []
    samples: dict[str, dict[str, list[float]]] = {}
    passes = (["cold"] if flush else []) + ["emb-hit"]
    for name in passes:
        if name == "emb-hit":  # fill the embedding cache first (the cold pass leaves it empty)
            for _, zh, en in pairs:
                search(zh)
                search(en)
        lat: dict[str, list[float]] = {"zh": [], "en": []}
        errors = {"zh": 0, "en": 0}
        for i, (_, zh, en) in enumerate(pairs):
            order = (("zh", zh), ("en", en)) if i % 2 == 0 else (("en", en), ("zh", zh))
            for lang, text in order:
                if name == "cold":
                    flush()
                wait = last["t"] + min_interval_s - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                t0 = time.perf_counter()
                try:
                    search(text)
                except Exception:  # noqa: BLE001 - counted
                    errors[lang] += 1
                    continue
                lat[lang].append(time.perf_counter() - t0)
        samples[name] = lat
        for lang in ("zh", "en"):
            rows.append({"pass": name, "language": lang, **latency_summary(lat[lang]), "errors": errors[lang]})
        zh_s, en_s = rows[-2], rows[-1]
        rows.append({"pass": name, "language": "zh / en", "p50_ms": ratio(zh_s["p50_ms"], en_s["p50_ms"]),
                     "p95_ms": ratio(zh_s["p95_ms"], en_s["p95_ms"]), "mean_ms": ratio(zh_s["mean_ms"], en_s["mean_ms"])})
        log(f"[zh-en] {name}: zh p50 {zh_s['p50_ms']:.2f} ms p95 {zh_s['p95_ms']:.2f} | en p50 {en_s['p50_ms']:.2f} "
            f"p95 {en_s['p95_ms']:.2f} | ratio p50 {rows[-1]['p50_ms']} p95 {rows[-1]['p95_ms']}")
    if client is not None:
        client.close()
    res.tables.append(Table("Chinese vs English (text_en twin) through the gateway, concurrency 1, interleaved",
                            ["pass", "language", "n", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "errors"], rows,
                            notes=["cold = query-embedding cache entries deleted before every request; emb-hit = "
                                   "embedding from Valkey; result cache off (no_cache) in both",
                                   "the client runs on the same cores as the stack"]))
    res.data = {"rows": rows, "samples_ms": {p: {k: [round(x * 1000, 3) for x in v] for k, v in d.items()}
                                             for p, d in samples.items()}}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.zh_en", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", default="127.0.0.1:50051")
    ap.add_argument("--api-key", default=os.environ.get("HOMESEARCH_API_KEY"))
    ap.add_argument("--redis-url", help="the stack's Valkey (enables the cold pass)")
    ap.add_argument("--cache-prefix", default="hs", help="ranking cache prefix (HOMESEARCH_RANKING_CACHE_PREFIX)")
    ap.add_argument("--queries", type=Path, default=REPO / "data" / "queries" / "ikea-zh.jsonl")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--min-interval-ms", type=float, default=25.0,
                    help="pause between request starts (default %(default)s: under the gateway's 50/s per-key limit)")
    ap.add_argument("--json", type=Path, help="write the result (with every sample) as JSON")
    args = ap.parse_args(argv)
    pairs = load_pairs(args.queries, args.limit)
    if not pairs:
        print(f"no queries with text and text_en in {args.queries}", file=sys.stderr)
        return 2
    res = run(args.gateway, args.api_key, pairs, redis_url=args.redis_url, cache_prefix=args.cache_prefix,
              min_interval_s=args.min_interval_ms / 1000.0,
              log=lambda m: print(m, file=sys.stderr, flush=True))
    print(res.markdown())
    if args.json:
        args.json.write_text(to_json(res.to_dict()) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
