"""Evaluation data shipped with the repo: well-formed and consistent with the shared catalog."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.ranking.language import detect_language

from bench.language_measure import read_jsonl

HAN = re.compile(r"[\u4e00-\u9fff]")


def _check_queries(rows: list[dict], catalog_ids: set[str], prefix: str) -> None:
    ids = [q["id"] for q in rows]
    assert len(ids) == len(set(ids)), "duplicate query ids"
    for q in rows:
        assert q["id"].startswith(prefix), q["id"]
        assert q["text"].strip(), q
        assert q["relevant"] and len(set(q["relevant"])) == len(q["relevant"]), q
        missing = set(q["relevant"]) - catalog_ids
        assert not missing, (q["id"], missing)


@pytest.mark.parametrize("name, minimum, prefix", [("ikea-zh.jsonl", 200, "zh-q"), ("ikea-zh-holdout.jsonl", 30, "zh-q"),
                                                   ("ikea-mixed.jsonl", 25, "mixed-q")])
def test_ikea_query_sets(repo: Path, shared_catalog: list[dict], name: str, minimum: int, prefix: str) -> None:
    rows = read_jsonl(repo / "data/queries" / name)
    assert len(rows) >= minimum
    catalog_ids = {p["id"] for p in shared_catalog}
    _check_queries(rows, catalog_ids, prefix)
    english = {q["id"]: q for q in read_jsonl(Path(_shared_queries(shared_catalog)))}
    for q in rows:
        orig = english[q["id"].split("-", 1)[1]]
        assert q["text_en"] == orig["text"] and q["relevant"] == orig["relevant"], q["id"]
        assert HAN.search(q["text"]), q["id"]
        if name == "ikea-mixed.jsonl":
            assert re.search(r"[A-Za-z]", q["text"]), q["id"]


def _shared_queries(_catalog: list[dict]) -> Path:
    from bench.language_measure import _default_shared

    return _default_shared() / "data/ikea/queries.jsonl"


def test_zh_and_holdout_do_not_overlap(repo: Path) -> None:
    a = {q["id"] for q in read_jsonl(repo / "data/queries/ikea-zh.jsonl")}
    b = {q["id"] for q in read_jsonl(repo / "data/queries/ikea-zh-holdout.jsonl")}
    assert not a & b


def test_zh_queries_spread_over_categories(repo: Path, shared_catalog: list[dict]) -> None:
    cat = {p["id"]: p["category"] for p in shared_catalog}
    rows = read_jsonl(repo / "data/queries/ikea-zh.jsonl")
    assert len({cat[q["relevant"][0]] for q in rows}) >= 150
    assert sum(detect_language(q["text"]) == "zh" for q in rows) >= 0.95 * len(rows)


def test_chinese_catalog_slice(repo: Path, shared_catalog: list[dict]) -> None:
    base = repo / "data/catalog-zh"
    src = {p["id"]: p for p in shared_catalog}
    rows = read_jsonl(base / "catalog.jsonl")
    assert 90 <= len(rows) <= 120
    ids = [p["id"] for p in rows]
    assert len(ids) == len(set(ids))
    for p in rows:
        assert p["id"] in src
        assert p["image"] == f"images/{p['id']}.jpg"  # resolved against the shared IKEA images
        assert HAN.search(p["title"]) and HAN.search(p["category"])
        line = src[p["id"]]["title"][: -len(src[p["id"]]["category"])].strip()
        assert p["title"].startswith(line), p["title"]  # IKEA line name kept
    for name in ("queries-en.jsonl", "queries-zh.jsonl"):
        q = read_jsonl(base / name)
        assert len(q) >= 35
        _check_queries(q, set(ids), name[8:10] + "-q")
    for name in ("NOTICE.md", "README.md"):
        assert (base / name).exists()
    assert (repo / "data/queries/NOTICE.md").exists()
