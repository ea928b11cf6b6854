"""Offline relevance study on the held-out split: baselines, the trained image head, fusion.

  python -m homesearch.evaluation.study --catalog ../shared/data/ikea/catalog.jsonl \
      --head services/encoders/heads/<version> [--json OUT.json]

Signals over the held-out gallery (dev + test lines): ``bm25`` and ``tfidf`` over product text,
``text`` = e5 query vs e5 passage of the product text, ``image`` = e5 query vs the head's image
vector. Fusion weights are chosen on the dev queries and reported on the test queries
(see :mod:`homesearch.evaluation.fusion` for the exact formulas).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m homesearch.evaluation.study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--queries")
    ap.add_argument("--head", type=Path, help="trained head directory (head.json + head.safetensors)")
    ap.add_argument("--image-views", choices=["pad", "padflip"], default="pad",
                    help="gallery image vectors from the padded photo only (what one serving forward pass gives) or pad+flip mean")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--depth", type=int, default=50, help="candidates per signal before fusion (top-K)")
    ap.add_argument("--signals", default="text,image,bm25", help="signals fused in the study")
    ap.add_argument("--methods", default=",".join(("raw", "minmax", "zscore", "dbsf", "dbsf+max", "minmax+max", "rrf")))
    ap.add_argument("--json", type=Path, help="write the full report here")
    args = ap.parse_args(argv)

    from services.encoders.training import features as F
    from services.encoders.training import text as T
    from homesearch.evaluation import fusion
    from homesearch.evaluation.baselines import image_to_image_scores, image_to_image_task
    from homesearch.evaluation.metrics import evaluate_scores
    from homesearch.evaluation.offline import breakdown, load_heldout, text_signals

    catalog_path = Path(args.catalog).resolve()
    h = load_heldout(catalog_path, args.queries, seed=args.split_seed)
    gal = [h.catalog[i] for i in h.gallery_idx]
    q_emb = T.embed(h.query_text, "query")
    sig = text_signals(h, q_emb)
    report: dict = {"split": h.split.summary(), "gallery": len(gal), "queries": len(h.query_ids), "text_to_product": {}}

    if args.head:
        import torch

        from services.encoders.training.head import load_head

        head, card = load_head(args.head)
        backbone = card.get("backbone", "efficientnet-lite0").replace("efficientnet-", "")
        views = F.extract_views(h.catalog, catalog_path.parent, backbone)[h.gallery_idx]
        x = views[:, 0] if args.image_views == "pad" else views[:, list(F.EVAL_VIEWS)].mean(1)
        bins = int(card.get("settings", {}).get("colour_hist_bins", 0))
        if bins:
            hist = F.extract_colour_histograms(h.catalog, catalog_path.parent, bins)[h.gallery_idx]
            x = np.concatenate([x, hist], 1)
        with torch.no_grad():
            img = head(torch.from_numpy(x.astype(np.float32))).numpy()
        sig["image"] = (q_emb @ img.T).astype(np.float64)
        report["head"] = {"version": card["version"], "path": str(args.head), "image_views": args.image_views}
        # image -> image (each held-out photo queries the other held-out products)
        i2i: dict = {}
        hist = F.extract_colour_histograms(h.catalog, catalog_path.parent, 4)[h.gallery_idx]
        for strict, name in ((True, "same_type_and_colour"), (False, "same_type")):
            qi, rel = image_to_image_task(gal, strict)
            i2i[name] = {
                "colour_histogram": evaluate_scores(image_to_image_scores(hist, qi, "intersection"), h.gallery_ids, rel),
                "cnn_pooled_features": evaluate_scores(image_to_image_scores(views[:, 0], qi), h.gallery_ids, rel),
                "trained_head": evaluate_scores(image_to_image_scores(img, qi), h.gallery_ids, rel),
            }
        report["image_to_image"] = i2i

    for name, s in sig.items():
        report["text_to_product"][name] = breakdown(s, h)
    # per-query spread of raw scores (the calibration problem)
    report["score_spread_per_query_std"] = {n: float(np.mean(s.std(1))) for n, s in sig.items()}

    # condition 2: the text index does not know the colour (like catalogs whose titles omit it)
    blind = text_signals(h, q_emb, colour_in_text=False)
    if "image" in sig:
        blind["image"] = sig["image"]
    report["text_to_product_colour_blind_text"] = {n: breakdown(s, h) for n, s in blind.items()}

    names = [n for n in args.signals.split(",") if n in sig]
    dev, test = h.subset(part="dev"), h.subset(part="test")
    conds = {c: ({n: S[n][dev] for n in names}, [h.qrels[i] for i in dev], {n: S[n][test] for n in names}, [h.qrels[i] for i in test])
             for c, S in (("full_text", sig), ("colour_blind_text", blind))}
    st = fusion.study(conds, h.gallery_ids, depth=args.depth, methods=args.methods.split(","))
    # seen / unseen breakdown of each method with its dev-chosen weights (all held-out queries)
    for m, r in st["methods"].items():
        for c, S in (("full_text", sig), ("colour_blind_text", blind)):
            r[c]["all_heldout"] = breakdown(fusion.fuse(S, r["weights"], m, args.depth), h)
    report["fusion"] = st

    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    _print(report)
    return 0


def _fmt(r: dict) -> str:
    return f"n={r['n']:4d} R@1={r['recall@1']:.3f} R@10={r['recall@10']:.3f} MRR={r['mrr@10']:.3f} nDCG={r['ndcg@10']:.3f}"


def _print(rep: dict) -> None:
    for n, b in rep["text_to_product"].items():
        for k, r in b.items():
            print(f"{n:6s} {k:12s} {_fmt(r)}")
    for task, d in rep.get("image_to_image", {}).items():
        for n, r in d.items():
            print(f"i2i {task:22s} {n:20s} {_fmt(r)}")
    for n, b in rep.get("text_to_product_colour_blind_text", {}).items():
        print(f"colour-blind {n:6s} all {_fmt(b['all'])}")
    f = rep["fusion"]
    for c, d in f["single"].items():
        for n, r in d.items():
            print(f"{c:18s} single {n:8s} dev {_fmt(r['dev'])} | test {_fmt(r['test'])}")
    for m, r in f["methods"].items():
        print(f"fusion {m:8s} {json.dumps(r['weights'])}")
        for c in f["single"]:
            print(f"   {c:18s} dev {_fmt(r[c]['dev'])} | test {_fmt(r[c]['test'])} | equal-w test {_fmt(r[c]['equal_weights_test'])}")
    print("std of raw scores per query:", rep["score_spread_per_query_std"])


if __name__ == "__main__":
    sys.exit(main())
