"""Chooses a fusion boost weight (``FusionDefaults.photo_colour_weight``; with ``--boost material``
``photo_material_weight``; with ``--boost category`` ``category_match_weight``) on dev queries, from
one pass of live searches.

  python -m homesearch.evaluation.photo_weight --gateway HOST:PORT --catalog ../shared/data/ikea/catalog.jsonl \\
      --subset dev [--split line|type] [--implicit-colour | --implicit-material] [--boost colour|material]
      [--queries Q.jsonl --text-field text]

--implicit-material replays the dev part of ``homesearch eval --implicit-material`` (the stack must hold that
stripped index; --subset all|dev|test then picks the gallery as there and the query part).

Each query is sent once with ``explain`` and ``top_k`` 16 (service-default fusion; the candidate
pool, and so the normalised scores, are those of a top-10 search). The served
boost is in ``signal_scores["<boost>_boost"]`` (``photo_color``, ``photo_material``,
``category_match``) = weight_served * match, so the fused score
without it and the match are known per hit, and any other weight re-ranks the same candidates
offline: ``score(w) = base + w * match``. Reports R@10 / nDCG@10 per weight; run it on dev only
and confirm the chosen weight on test with ``homesearch eval`` after restarting with it
(``HOMESEARCH_RANKING_FUSION__PHOTO_COLOUR_WEIGHT``). Approximation: a product outside the served
top 16 cannot enter the top 10; with a larger weight than served it could.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WEIGHTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8)
# --boost -> (the FusionDefaults weight, the explain key of the served boost)
BOOSTS = {"colour": ("photo_colour_weight", "photo_color_boost"),
          "material": ("photo_material_weight", "photo_material_boost"),
          "category": ("category_match_weight", "category_match_boost")}
# 16, not more: the service fetches max(50, 3 * top_k) candidates per signal and min-max normalises
# over them, so a larger top_k would change the fused scores being re-weighted.
TOP_K = 16


def main(argv: list[str] | None = None) -> int:
    from homesearch.client import HomesearchClient
    from homesearch.evaluation.cli import _search_with_retry
    from homesearch.evaluation.metrics import evaluate
    from homesearch.evaluation.sets import colour_decisive, implicit_material_queries
    from homesearch.evaluation.split import load_jsonl, make_split

    ap = argparse.ArgumentParser(prog="python -m homesearch.evaluation.photo_weight", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--queries")
    ap.add_argument("--text-field", default="text")
    ap.add_argument("--subset", choices=["dev", "test", "tune", "all"], default="dev",
                    help="test only to report the served weight against 0 in the same run, never to choose; "
                         "tune: the whole catalog as the gallery and the queries whose relevant products are all "
                         "in the split's train part (how category_match_weight was chosen)")
    ap.add_argument("--split", choices=["line", "type", "none"], default="line",
                    help="none: the whole catalog is the gallery (with --implicit-material; --subset picks the query part)")
    ap.add_argument("--implicit-colour", action="store_true", help="score only the colour-decisive queries")
    ap.add_argument("--implicit-material", action="store_true", help="the implicit-material queries (dev part)")
    ap.add_argument("--boost", choices=sorted(BOOSTS), default="colour", help="which boost's weight to vary")
    ap.add_argument("--served-weight", type=float, default=None, help="the stack's weight of that boost (default: config)")
    args = ap.parse_args(argv)
    from services.ranking.config import FusionDefaults

    d = FusionDefaults()
    setting, key = BOOSTS[args.boost]
    served = getattr(d, setting) if args.served_weight is None else args.served_weight
    cpath = Path(args.catalog).resolve()
    catalog = load_jsonl(cpath)
    queries = load_jsonl(Path(args.queries) if args.queries else cpath.with_name("queries.jsonl"))
    queries = [q for q in queries if q.get(args.text_field)]
    qrels = {q["id"]: q.get("relevant", []) for q in queries}
    if args.subset == "tune":
        split = make_split(catalog, queries, by="line" if args.split == "none" else args.split)
        queries = [q for q in queries if split.query_part.get(q["id"]) == "train"]
        qrels = {q["id"]: q.get("relevant", []) for q in queries}
    elif args.subset != "all" and not (args.implicit_material and args.split == "none"):
        split = make_split(catalog, queries, by=args.split)
        keep = set(split.products("dev", "test"))
        catalog = [p for p in catalog if p["id"] in keep]
        queries = [q for q in queries if split.query_part.get(q["id"]) == args.subset]
        qrels = {q["id"]: split.query_relevant[q["id"]] for q in queries}
    if args.implicit_material:
        queries = [q for q in implicit_material_queries(catalog) if args.subset == "all" or q["part"] == args.subset]
        qrels = {q["id"]: q["relevant"] for q in queries}
    elif args.implicit_colour:
        decisive = colour_decisive(queries, qrels, catalog, args.text_field)
        queries = [q for q in queries if q["id"] in decisive]
    client = HomesearchClient(args.gateway, timeout_s=60)
    pools: dict[str, list[tuple[str, float, float]]] = {}
    for q in queries:
        res = _search_with_retry(client, 5, text=q[args.text_field], top_k=TOP_K, explain=True, no_cache=True)
        pool = []
        for h in res.hits:
            b = h.signal_scores.get(key, 0.0)
            pool.append((h.product_id, h.score - b, b / served if served > 0 else 0.0))
        pools[q["id"]] = pool
    out = {"n": len(queries), "served_weight": served, "weights": {}}
    for w in WEIGHTS:
        runs = {qid: [pid for pid, _s, _m in sorted(pool, key=lambda x: (-(x[1] + w * x[2]), x[0]))]
                for qid, pool in pools.items()}
        m = evaluate(runs, {q["id"]: qrels[q["id"]] for q in queries})
        out["weights"][str(w)] = {"recall@10": m["recall@10"], "ndcg@10": m["ndcg@10"], "recall@1": m["recall@1"]}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
