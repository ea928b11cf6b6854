"""Shopper-photo metrics by split part, from ``homesearch eval --runs-out``.

  homesearch eval --catalog ../shared/data/ikea/catalog.jsonl --queries ../shared/data/ikea/photos.jsonl \\
      --gateway 127.0.0.1:50051 --json --runs-out runs.json
  python -m homesearch.evaluation.photo_parts --catalog ../shared/data/ikea/catalog.jsonl \\
      --queries ../shared/data/ikea/photos.jsonl --runs runs.json

Why: ``photos.jsonl`` mixes photos of products the ``visual`` projection was trained on (line-split
train) with held-out ones, and the serving knobs (photo-plan visual weight, the one-product rule of
auto region mode) were chosen on a *tune* part. A number is honest only per part:

- ``tune``: the product is in the line split's train or dev part *and* the type split's train part
  (what the serving knobs were chosen on; docs/evaluation.md);
- ``line-heldout``: the product's line is held out of the projection's training (line dev + test);
- ``line-test``: line test only (never used to choose anything);
- ``type-heldout``: the product's type is held out (type split dev + test; never used to choose).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def photo_part_names(product: str, line_part: dict[str, str], type_part: dict[str, str]) -> list[str]:
    """The parts one photo of ``product`` counts in (besides ``all``)."""
    names = []
    if line_part[product] in ("train", "dev") and type_part[product] == "train":
        names.append("tune")
    if line_part[product] != "train":
        names.append("line-heldout")
    if line_part[product] == "test":
        names.append("line-test")
    if type_part[product] != "train":
        names.append("type-heldout")
    return names


def by_part(runs: dict[str, list[str]], qrels: dict[str, list[str]], line_part: dict[str, str],
            type_part: dict[str, str]) -> dict[str, dict[str, float]]:
    """Hit@1 and R@10 (the one relevant product in the top 10) per part."""
    acc: dict[str, list[tuple[float, float]]] = {}
    for qid, rel in qrels.items():
        ranked = runs.get(qid, [])
        v = (float(bool(ranked) and ranked[0] in rel), float(bool(set(ranked[:10]) & set(rel))))
        for name in ["all", *photo_part_names(rel[0], line_part, type_part)]:
            acc.setdefault(name, []).append(v)
    return {name: {"n": len(v), "hit@1": round(sum(a for a, _ in v) / len(v), 4),
                   "recall@10": round(sum(b for _, b in v) / len(v), 4)} for name, v in acc.items()}


def main(argv: list[str] | None = None) -> int:
    from homesearch.evaluation.split import load_jsonl, make_split

    ap = argparse.ArgumentParser(prog="python -m homesearch.evaluation.photo_parts", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True, help="photos.jsonl")
    ap.add_argument("--runs", type=Path, required=True, help="the --runs-out file of homesearch eval")
    ap.add_argument("--split-seed", type=int, default=0)
    args = ap.parse_args(argv)
    catalog = load_jsonl(args.catalog)
    line_part = make_split(catalog, seed=args.split_seed, by="line").product_part
    type_part = make_split(catalog, seed=args.split_seed, by="type").product_part
    qrels = {q["id"]: q["relevant"] for q in load_jsonl(args.queries)}
    runs = {qid: r.get("ranked", []) for qid, r in json.loads(args.runs.read_text(encoding="utf-8")).items()}
    print(json.dumps(by_part(runs, qrels, line_part, type_part), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
