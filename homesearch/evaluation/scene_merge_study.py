"""Offline study of shop-the-look merges: what a room's merged top 10 would be under other rules.

    python -m homesearch.evaluation.scene_merge_study --data ../shared/data/ikea [--json out.json]

Why offline: the served merge (``services.ranking.regions.merge``) takes every window's
best product, windows visited by their best hubness-corrected score. Trying another rule
through the services means a re-deploy per variant; here the full window x product matrix of
corrected scores (``services.ranking.scene_search.score_windows``, the shipped hub bank) is
computed once per scene with the image tower in process (the served ONNX graph matches it,
``onnx_export``; scores include the served text-space type term unless ``--type-weight 0``),
over EVERY catalogue product (the service scores the union of each window's top 50 on
``visual``: the same 0.180 either way on dev, docs/shop-the-look.md), and the rules
are applied to it. Numbers are the scene path alone (no "one product first" lead: that rule
uses the photo query's fused list, which needs the index).

Rules (h35, issue 13; chosen on the dev part only, test printed for the record):
* ``round_robin``: the served merge (its equivalence is tested).
* ``category_cap``: in the first 10 places at most ``cap`` products of one catalogue category
  (its first comma part, "Rug, braided" -> "rug"); a region whose best product's category is
  full gives nothing that round. Why it could help: a room rarely holds 5 rugs.
* ``nms``: windows overlapping an earlier (better) window by IoU > t are dropped before the
  round robin. Why it could help: overlapping windows see the same object.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from homesearch.evaluation.journeys import part_of


def category_key(category: str) -> str:
    """The coarse category of a product: "Rug, braided" and "Rug, flatwoven" are both "rug"."""
    return category.split(",")[0].strip().lower()


def box_iou(boxes: np.ndarray) -> np.ndarray:
    """(R, R) intersection over union of (x0, y0, x1, y1) boxes."""
    x0 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y0 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x1 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y1 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area[:, None] + area[None, :] - inter)


def round_robin(ids: Sequence[str], scores: np.ndarray, depth: int = 50, *,
                categories: dict[str, str] | None = None, cap: int | None = None, cap_places: int = 10,
                iou: np.ndarray | None = None, nms: float | None = None) -> list[str]:
    """Merged product ids of one scene from its (windows, products) score matrix.

    Without ``cap`` / ``nms`` this is ``services.ranking.regions.merge``: windows best first, each
    round every window gives its next product if not taken yet."""
    order = np.argsort(-scores, axis=1, kind="stable")
    regions = [int(r) for r in np.argsort(-scores.max(axis=1), kind="stable")]
    if nms is not None and iou is not None:
        kept: list[int] = []
        for r in regions:
            if all(iou[r, k] <= nms for k in kept):
                kept.append(r)
        regions = kept
    out: list[str] = []
    seen: set[str] = set()
    per_cat: Counter[str] = Counter()
    for rank in range(order.shape[1]):
        for r in regions:
            pid = ids[int(order[r, rank])]
            if pid in seen:
                continue
            if cap is not None and categories is not None and len(out) < cap_places \
                    and per_cat[categories[pid]] >= cap:
                continue
            seen.add(pid)
            out.append(pid)
            if categories is not None:
                per_cat[categories[pid]] += 1
        if len(out) >= depth:
            break
    return out


def ndcg_at_10(ranked: Sequence[str], relevant: Sequence[str]) -> float:
    rel = set(relevant)
    dcg = sum(1 / math.log2(i + 2) for i, p in enumerate(ranked[:10]) if p in rel)
    return dcg / sum(1 / math.log2(i + 2) for i in range(min(10, len(rel))))


def scene_matrices(data: Path, batch: int = 16, type_weight: float | None = None) -> dict[str, tuple[list[str], np.ndarray]]:
    """Scene id -> (product ids, (149, products) scores as served), in-process image tower: the
    hubness-corrected ``visual`` score plus the text-space type term (``type_weight``, default the
    service's ``regions.scene_type_weight``; 0 = the visual rows alone)."""
    import torch

    from services.encoders.models.preprocess import ImagePreprocessor
    from services.encoders.models.spec import ModelSpec
    from services.ranking.config import RegionDefaults
    from services.ranking.scene_search import HubBank, load_type_centre, score_windows

    weight = RegionDefaults().scene_type_weight if type_weight is None else type_weight
    enc = ModelSpec().build_image()
    if enc.visual is None:
        raise SystemExit("the image tower has no visual head")
    hub = HubBank.load(enc.visual_version)
    if not hub.active:
        raise SystemExit(f"no hub bank for {enc.visual_version}")
    centre = load_type_centre(enc.version) if weight else None
    if weight and centre is None:
        raise SystemExit(f"no type centre for {enc.version} (homesearch.evaluation.scene_bank)")
    pre = ImagePreprocessor(enc.pixel_spec, enc.device)
    catalog = [json.loads(x) for x in (data / "catalog.jsonl").read_text().splitlines() if x.strip()]
    products: dict[str, np.ndarray] = {}
    images: dict[str, np.ndarray] = {}
    for i in range(0, len(catalog), batch):  # the rows the scene path scores: foreground visual, whole-photo image
        part = catalog[i : i + batch]
        views, _errors = pre.decode_views([(data / p["image"]).read_bytes() for p in part], "index")
        ok = [(p, v) for p, v in zip(part, views) if v is not None]
        n = len(ok)
        emb, rows = enc.encode_with_visual(pre.normalize(torch.stack([v[0] for _p, v in ok] + [v[1] for _p, v in ok])))
        for j, (p, _v) in enumerate(ok):
            products[p["id"]] = rows[n + j].numpy()[None, :]
            images[p["id"]] = emb[j].numpy()[None, :]
    out = {}
    for line in (data / "scenes.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        s = json.loads(line)
        views, errors = pre.decode_views([(data / s["image"]).read_bytes()], "scene")
        if errors:
            raise SystemExit(f"{s['id']}: {errors}")
        rows, types = enc.visual_scene(pre.normalize(torch.stack([views[0][0]])))  # type: ignore[index]
        rs = score_windows(rows[0].numpy(), products, hub, window_types=None if centre is None else types[0].numpy() - centre,
                           product_images=images, type_weight=weight)
        out[s["id"]] = (rs.ids, rs.scores)
    return out


def study(data: Path, type_weight: float | None = None) -> dict[str, dict[str, float]]:
    from services.encoders.models.scene_windows import SCENE_CELLS, SCENE_STRIDE, SCENE_WINDOWS, window_boxes

    catalog = [json.loads(x) for x in (data / "catalog.jsonl").read_text().splitlines() if x.strip()]
    cats = {p["id"]: category_key(p.get("category", "")) for p in catalog}
    scenes = {s["id"]: s for s in map(json.loads, (data / "scenes.jsonl").read_text().splitlines())}
    iou = box_iou(np.asarray(window_boxes(SCENE_CELLS, SCENE_WINDOWS, SCENE_STRIDE)))
    mats = scene_matrices(data, type_weight=type_weight)
    variants: dict[str, dict] = {"round_robin (served)": {}}
    variants |= {f"category_cap {c}": {"categories": cats, "cap": c} for c in (1, 2, 3)}
    variants |= {f"nms {t}": {"iou": iou, "nms": t} for t in (0.3, 0.4, 0.5, 0.6, 0.7)}
    table = {}
    for name, kw in variants.items():
        by_part: dict[str, list[float]] = {}
        for sid, (ids, scores) in mats.items():
            ranked = round_robin(ids, scores, **kw)
            by_part.setdefault(part_of("scenes", sid), []).append(ndcg_at_10(ranked, scenes[sid]["relevant"]))
        table[name] = {p: round(float(np.mean(v)), 4) for p, v in sorted(by_part.items())}
    repeats = sum(len(s["relevant"]) > len({cats[p] for p in s["relevant"]}) for s in scenes.values())
    table["_scenes whose own products repeat a category"] = {"n": repeats, "of": len(scenes)}
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m homesearch.evaluation.scene_merge_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with catalog.jsonl, scenes.jsonl")
    ap.add_argument("--type-weight", type=float, default=None,
                    help="weight of the window text-space term (default: the service's; 0 = visual rows alone)")
    ap.add_argument("--json", type=Path, help="also write the table here")
    args = ap.parse_args(argv)
    table = study(args.data, args.type_weight)
    for name, row in table.items():
        print(f"{name:48s} {row}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
