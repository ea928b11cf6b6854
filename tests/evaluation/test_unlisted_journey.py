"""``eval-journeys unlisted``: which queries it builds and what it excludes (pure), and one run
through a real gateway and ranking service on a slice of the IKEA dev catalogue."""

from __future__ import annotations

from homesearch.evaluation.journeys import UNLISTED_MIN_CATEGORY, category_precision, unlisted_queries


def _p(pid: str, title: str, category: str) -> dict:
    return {"id": pid, "title": title, "category": category, "image": f"images/{pid}.jpg"}


def test_queries_exclude_the_title_group_and_same_image_products():
    catalog = [
        _p("a1", "ALFA Chair", "Chair"), _p("a2", "ALFA Chair", "Chair"),  # variants: one title
        _p("b1", "BETA Chair", "Chair"), _p("c1", "GAMMA Chair", "Chair"), _p("d1", "DELTA Chair", "Chair"),
        _p("e1", "EPS Chair", "Chair"),  # same photo as d1
        _p("t1", "TAU Table", "Table"), _p("t2", "UPS Table", "Table"),  # too few tables left
    ]
    digest = {p["id"]: p["id"] for p in catalog} | {"e1": "d1"}
    got = {p["id"]: gone for p, gone in unlisted_queries(catalog, digest, "all")}
    assert got["a1"] == ["a1", "a2"] and got["a2"] == ["a1", "a2"]
    assert got["d1"] == ["d1", "e1"] and got["e1"] == ["d1", "e1"]
    assert got["b1"] == ["b1"]
    assert "t1" not in got and "t2" not in got  # one other table < UNLISTED_MIN_CATEGORY
    assert UNLISTED_MIN_CATEGORY == 3
    # d1 gone with its look-alike e1 leaves a1, a2, b1, c1: still a query; a product without a photo is none
    assert "x" not in {p["id"] for p, _ in unlisted_queries(catalog + [{"id": "x", "title": "X", "category": "Chair"}], digest, "all")}
    parts = {part: {p["id"] for p, _ in unlisted_queries(catalog, digest, part)} for part in ("dev", "test")}
    assert parts["dev"] | parts["test"] == set(got) and not parts["dev"] & parts["test"]


def test_category_precision():
    rows = [[True, False, True, True, False, False, False, False, False, False], [False] * 10]
    assert category_precision(rows) == {"n": 2, "hit@1": 0.5, "precision@5": 0.3, "precision@10": 0.15}
    assert category_precision([]) == {"n": 0}
