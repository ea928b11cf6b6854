"""``homesearch eval-journeys``: the issue-13 journeys measured through the public Search RPC.

  homesearch eval-journeys scenes   --data ../shared/data/ikea --gateway localhost:50051 [--part test]
  homesearch eval-journeys composed --data ../shared/data/ikea --gateway localhost:50051 [--part test]
  homesearch eval-journeys similar  --data ../shared/data/ikea --gateway localhost:50051
  homesearch eval-journeys unlisted --data ../shared/data/ikea --gateway localhost:50051 [--part test]

The stack must already hold the catalog (``homesearch up --index <data>/catalog.jsonl``). Every
run reports the journey beside its baselines *in the same run*:

- scenes (room photo -> products in it): region search (the default for room photos) vs one
  global vector (``region_mode=off``); nDCG@10, R@10.
- composed (photo of A + text naming a sibling's colour -> that sibling): the composed query vs
  the photo alone and the text alone; Hit@1 (top hit relevant), R@10.
- similar (``similar_to_product_id``): for products with variants (same title and category),
  the share whose whole variant set (at most 10) is in the top 10; "other categories" must never
  return the product's own category (violations counted over every product); and, as the
  style-compatibility check, products that co-occur in a room scene with the product
  (other categories) found in the top 10 ("complete the look") vs chance.
- unlisted (a product photo of something the store does not sell -> products of its type first):
  a catalogue photo searched with its own product, every product of the same title (its variants)
  and every product with the same image bytes excluded (``filter.exclude_ids``), so no copy of it
  is left; relevant = the other products of its category (queries whose category keeps >= 3).
  Hit@1 and precision@5 / @10 of that category, for all queries and for those whose best
  remaining ``visual`` match is weak (the largest raw visual score among the returned hits < 0.4,
  read from ``explain``), where the instance descriptor has nothing to find and the type must
  decide (the demo's chair photo, issue #12).

Splits (fixed, by hash, never tuned on ``test``): scenes by scene id, composed queries by the
product *line* (title) of the pictured product, so test lines are unseen when tuning on dev:
``sha1("h13-<kind>:<key>")[0] < 128`` -> test. Unlisted queries split by title like composed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path


def part_of(kind: str, key: str) -> str:
    return "test" if hashlib.sha1(f"h13-{kind}:{key}".encode()).digest()[0] < 128 else "dev"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="homesearch eval-journeys", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("journey", choices=["scenes", "composed", "similar", "unlisted"])
    ap.add_argument("--data", type=Path, required=True, help="folder with catalog.jsonl, scenes.jsonl, composed.jsonl")
    ap.add_argument("--gateway", default="localhost:50051", help="gateway host:port (default %(default)s)")
    ap.add_argument("--api-key", default=os.environ.get("HOMESEARCH_API_KEY"), help="API key (default $HOMESEARCH_API_KEY)")
    ap.add_argument("--part", choices=["dev", "test", "all"], default="test", help="split part (default test = held out)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N queries/products (smoke runs)")
    ap.add_argument("--timeout-s", type=float, default=60.0)
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    return ap


def _load(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _score(runs: dict[str, list[str]], qrels: dict[str, list[str]]) -> dict:
    from homesearch.evaluation.metrics import evaluate

    m = evaluate(runs, qrels)
    hits = [1.0 if runs.get(q) and runs[q][0] in set(rel) else 0.0 for q, rel in qrels.items()]
    m["hit@1"] = round(sum(hits) / len(hits), 4) if hits else 0.0
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}


def _search(client, **kw):
    from homesearch.evaluation.cli import _search_with_retry

    return _search_with_retry(client, 5, top_k=10, no_cache=True, **kw)


def eval_scenes(client, data: Path, part: str, limit: int, progress) -> dict:
    scenes = [s for s in _load(data / "scenes.jsonl") if part == "all" or part_of("scenes", s["id"]) == part]
    scenes = scenes[:limit] if limit else scenes
    runs: dict[str, dict[str, list[str]]] = {"regions": {}, "global": {}}
    region_counts = []
    took: dict[str, list[float]] = {"regions": [], "global": []}  # client wall time per search, ms
    for s in progress(scenes, desc="scenes"):
        img = (data / s["image"]).read_bytes()
        t0 = time.perf_counter()
        res = _search(client, image=img)
        took["regions"].append((time.perf_counter() - t0) * 1000)
        runs["regions"][s["id"]] = res.product_ids
        region_counts.append(len(res.regions))
        t0 = time.perf_counter()
        runs["global"][s["id"]] = _search(client, image=img, region_mode="off").product_ids
        took["global"].append((time.perf_counter() - t0) * 1000)
    qrels = {s["id"]: s["relevant"] for s in scenes}
    return {name: _score(r, qrels) for name, r in runs.items()} | {
        "scenes_searched_by_region": sum(1 for n in region_counts if n),
        "latency_ms": {name: _percentiles(t) for name, t in took.items()},
    }


def _percentiles(ms: list[float]) -> dict[str, float]:
    """p50 / p95 of wall times (uncached searches: ``no_cache``; the encoders' own cache may hit)."""
    if not ms:
        return {}
    xs = sorted(ms)
    return {"p50": round(xs[len(xs) // 2], 1), "p95": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 1)}


def eval_composed(client, data: Path, part: str, limit: int, progress) -> dict:
    catalog = {p["id"]: p for p in _load(data / "catalog.jsonl")}
    queries = [q for q in _load(data / "composed.jsonl")
               if part == "all" or part_of("composed", catalog[q["source"]]["title"]) == part]
    queries = queries[:limit] if limit else queries
    runs: dict[str, dict[str, list[str]]] = {"composed": {}, "photo_only": {}, "text_only": {}}
    for q in progress(queries, desc="composed"):
        img = (data / q["image"]).read_bytes()
        runs["composed"][q["id"]] = _search(client, image=img, text=q["text"]).product_ids
        runs["photo_only"][q["id"]] = _search(client, image=img, region_mode="off").product_ids
        runs["text_only"][q["id"]] = _search(client, text=q["text"]).product_ids
    qrels = {q["id"]: q["relevant"] for q in queries}
    return {name: _score(r, qrels) for name, r in runs.items()}


def eval_similar(client, data: Path, part: str, limit: int, progress) -> dict:
    catalog = _load(data / "catalog.jsonl")
    by_key: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in catalog:
        by_key[(p["title"].strip().lower(), p.get("category", "").strip().lower())].append(p["id"])
    category = {p["id"]: p.get("category", "") for p in catalog}
    with_siblings = [p for p in catalog if len(by_key[(p["title"].strip().lower(), p.get("category", "").strip().lower())]) > 1]
    with_siblings = with_siblings[:limit] if limit else with_siblings
    complete = 0
    recall = []
    for p in progress(with_siblings, desc="similar: variants"):
        sibs = [i for i in by_key[(p["title"].strip().lower(), p.get("category", "").strip().lower())] if i != p["id"]]
        top = _search(client, similar_to=p["id"]).product_ids
        want = sibs[:10]
        found = sum(1 for s in want if s in top)
        complete += found == len(want)
        recall.append(found / len(want))
    # Complete the look: co-occurrence in room scenes (other categories) as the compatibility signal.
    cooc: dict[str, set[str]] = defaultdict(set)
    for s in _load(data / "scenes.jsonl"):
        for a in s["relevant"]:
            cooc[a] |= {b for b in s["relevant"] if b != a and category.get(b) != category.get(a)}
    scene_products = [pid for pid in cooc if pid in category and cooc[pid]]
    scene_products = scene_products[:limit] if limit else scene_products
    violations, checked, look_recall, chance = 0, 0, [], []
    n_catalog = len(catalog)
    for pid in progress(scene_products, desc="similar: complete the look"):
        res = _search(client, similar_to=pid, similar_scope="other")
        checked += 1
        violations += sum(1 for h in res.hits if h.category == category[pid])
        look_recall.append(sum(1 for h in res.product_ids if h in cooc[pid]) / min(10, len(cooc[pid])))
        others = sum(1 for c in category.values() if c != category[pid])
        chance.append(10 * len(cooc[pid]) / max(1, others) / min(10, len(cooc[pid])))
    return {
        "variants": {"products": len(with_siblings), "sibling_set_in_top10": round(complete / max(1, len(with_siblings)), 4),
                     "sibling_recall@10": round(sum(recall) / max(1, len(recall)), 4)},
        "other_categories": {"requests": checked, "own_category_hits": violations},
        "complete_the_look": {"products": len(look_recall),
                              "cooccurring_recall@10": round(sum(look_recall) / max(1, len(look_recall)), 4),
                              "chance_recall@10": round(sum(chance) / max(1, len(chance)), 4),
                              "catalog_size": n_catalog},
    }


UNLISTED_MIN_CATEGORY = 3  # other products of the query's category left in the catalogue
WEAK_VISUAL = 0.4  # best raw visual cosine below this: no close instance left (cf. regions.one_product_visual)


def unlisted_queries(catalog: list[dict], digest: dict[str, str], part: str) -> list[tuple[dict, list[str]]]:
    """(product, ids to exclude) per query: the product's own title group and every product whose
    image has the same ``digest``, for products whose category keeps ``UNLISTED_MIN_CATEGORY``
    others once those are gone."""
    by_title: dict[str, set[str]] = defaultdict(set)
    by_digest: dict[str, set[str]] = defaultdict(set)
    for p in catalog:
        by_title[p["title"].strip().lower()].add(p["id"])
        if p["id"] in digest:
            by_digest[digest[p["id"]]].add(p["id"])
    members: dict[str, set[str]] = defaultdict(set)
    for p in catalog:
        members[p.get("category", "")].add(p["id"])
    out = []
    for p in catalog:
        if p["id"] not in digest or not p.get("category") or (part != "all" and part_of("unlisted", p["title"]) != part):
            continue
        gone = by_title[p["title"].strip().lower()] | by_digest[digest[p["id"]]]
        if len(members[p["category"]] - gone) >= UNLISTED_MIN_CATEGORY:
            out.append((p, sorted(gone)))
    return out


def category_precision(rows: list[list[bool]]) -> dict:
    """Hit@1 and precision@5 / @10 over per-query lists of "hit k is of the query's category"."""
    n = len(rows)
    if not n:
        return {"n": 0}
    return {"n": n, "hit@1": round(sum(r[:1] == [True] for r in rows) / n, 4),
            "precision@5": round(sum(sum(r[:5]) / 5 for r in rows) / n, 4),
            "precision@10": round(sum(sum(r[:10]) / 10 for r in rows) / n, 4)}


def eval_unlisted(client, data: Path, part: str, limit: int, progress) -> dict:
    catalog = _load(data / "catalog.jsonl")
    digest = {p["id"]: hashlib.sha1((data / p["image"]).read_bytes()).hexdigest() for p in catalog if p.get("image")}
    category = {p["id"]: p.get("category", "") for p in catalog}
    queries = unlisted_queries(catalog, digest, part)
    queries = queries[:limit] if limit else queries
    same, weak, leaked = [], [], 0
    for p, gone in progress(queries, desc="unlisted"):
        res = _search(client, image=(data / p["image"]).read_bytes(), exclude_ids=gone, explain=True)
        leaked += sum(1 for h in res.product_ids if h in gone)  # the filter must hold: counted, expected 0
        row = [category.get(h) == p["category"] for h in res.product_ids]
        same.append(row)
        if max((h.signal_scores.get("visual", 0.0) for h in res.hits), default=0.0) < WEAK_VISUAL:
            weak.append(row)
    return {"all": category_precision(same), "weak_visual": category_precision(weak),
            "weak_visual_below": WEAK_VISUAL, "excluded_products_returned": leaked}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from homesearch.client import HomesearchClient

    def progress(items, desc):
        return tqdm(items, desc=desc, disable=args.json, file=sys.stderr)

    fn = {"scenes": eval_scenes, "composed": eval_composed, "similar": eval_similar,
          "unlisted": eval_unlisted}[args.journey]
    with HomesearchClient(args.gateway, api_key=args.api_key, timeout_s=args.timeout_s) as client:
        report = {"journey": args.journey, "part": args.part, "gateway": args.gateway,
                  **fn(client, args.data, args.part, args.limit, progress)}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
