"""analyze_query must bring Chinese BM25 within 10% of the English originals (computed)."""

from __future__ import annotations

from pathlib import Path

from services.ranking.language import analyze_query, bm25_query_vector
from bench.language_measure import BM25Index, product_text

from bench.language_measure import read_jsonl


def test_zh_bm25_top10_within_10pct_of_english(repo: Path, shared_catalog: list[dict]) -> None:
    index = BM25Index([p["id"] for p in shared_catalog], [product_text(p) for p in shared_catalog])
    queries = read_jsonl(repo / "data/queries/ikea-zh.jsonl")
    sample = queries[:: max(1, len(queries) // 20)][:20]  # 20 queries spread over the file
    assert len(sample) == 20

    def hit_rate(vectors) -> float:
        hits = 0
        for q, vec in zip(sample, vectors):
            hits += bool(set(index.search(vec, k=10)) & set(q["relevant"]))
        return hits / len(sample)

    en = hit_rate([bm25_query_vector(q["text_en"]) for q in sample])
    zh = hit_rate([analyze_query(q["text"], "en").sparse_vector() for q in sample])
    raw = hit_rate([bm25_query_vector(q["text"]) for q in sample])
    assert en >= 0.8, en  # sanity: the English baseline works
    assert zh >= 0.9 * en, (zh, en)
    assert raw < 0.5 * en  # and the test is meaningful: untranslated Chinese does not match
