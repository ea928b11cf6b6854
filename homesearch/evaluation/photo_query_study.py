"""Offline study of query-side variants for shopper photos: which extra query rows would help.

    python -m homesearch.evaluation.photo_query_study --data ../shared/data/ikea \\
        --index-dir COPY_OF_DATA_DIR/index --triton 127.0.0.1:8001 [--json out.json]

Why offline: the photo query's ``visual`` signal is the best cosine between any of the photo's
rows (whole + foreground at 224 px, 50 regions of a 448 px pass: the encoder's ``photo`` mode)
and any of a product's stored rows. Trying more query rows through the services needs an encoder
change per variant; here the rows come from the running Triton (the served graphs) and the
products' rows from a *copy* of a served Edge index (the ranking process owns the original), and
products are ranked by that best cosine over the whole catalogue: the visual signal alone,
without the fused type signals or the one-product rule, so absolute numbers sit near the served
ones (offline 0.705 / 0.920 vs served 0.710 / 0.910 Hit@1 / R@10 for visual-shop-a0d227b1).

Variants (issue #12, stop 23; choose on the ``tune`` part only, see ``photo_parts``):
* ``base``: the served rows;
* ``flip``: the rows of the mirrored photo; ``base+flip``: both (test-time augmentation);
* ``base+flip224``: base plus the mirrored photo's two 224 px rows only (no second 448 px pass);
* ``grayworld``: rows of the photo after a grey-world white balance (undo a colour cast);
* ``base+scene``: base plus the 149 shop-the-look windows of the 640 px ``scene`` pass.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from homesearch.evaluation.photo_parts import by_part, photo_part_names


class Gallery:
    """Every product's stored ``visual`` rows, flattened, with the owning product of each row."""

    def __init__(self, product_ids: Sequence[str], rows: Sequence[np.ndarray]) -> None:
        self.ids = list(product_ids)
        self.matrix = np.concatenate([np.asarray(r, np.float32) for r in rows])
        self.owner = np.concatenate([np.full(len(r), j) for j, r in enumerate(rows)])

    def rank(self, query_rows: np.ndarray, k: int = 20) -> list[str]:
        """Products by their best cosine to any query row (rows are L2-normalised), best first."""
        best_row = (np.asarray(query_rows, np.float32) @ self.matrix.T).max(axis=0)
        best = np.full(len(self.ids), -np.inf, np.float32)
        np.maximum.at(best, self.owner, best_row)
        return [self.ids[i] for i in np.argsort(-best, kind="stable")[:k]]


def grayworld(rgb: np.ndarray) -> np.ndarray:
    """Grey-world white balance of an (H, W, 3) uint8 image: each channel scaled to the mean grey."""
    a = rgb.astype(np.float32)
    means = a.reshape(-1, 3).mean(axis=0)
    return np.clip(a * (means.mean() / np.maximum(means, 1.0)), 0, 255).astype(np.uint8)


def _jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _rgb(data: bytes) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


VARIANTS: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    "base": lambda r: r["base"],
    "flip": lambda r: r["flip"],
    "base+flip": lambda r: np.concatenate([r["base"], r["flip"]]),
    "base+flip224": lambda r: np.concatenate([r["base"], r["flip"][:2]]),
    "grayworld": lambda r: r["grayworld"],
    "base+scene": lambda r: np.concatenate([r["base"], r["scene"]]),
}


def main(argv: list[str] | None = None) -> int:
    from homesearch.evaluation.split import load_jsonl, make_split
    from services.encoders.client import EncoderClient
    from services.ranking.index.edge import EdgeIndex
    from services.ranking.index.schema import VISUAL_VECTOR

    ap = argparse.ArgumentParser(prog="python -m homesearch.evaluation.photo_query_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with catalog.jsonl and photos.jsonl")
    ap.add_argument("--index-dir", type=Path, required=True, help="a COPY of a served Edge index dir (<data-dir>/index)")
    ap.add_argument("--collection", default="products")
    ap.add_argument("--triton", required=True, help="Triton gRPC host:port serving the same visual version")
    ap.add_argument("--json", type=Path, help="write the per-part numbers here")
    args = ap.parse_args(argv)

    catalog = load_jsonl(args.data / "catalog.jsonl")
    queries = load_jsonl(args.data / "photos.jsonl")
    line_part = make_split(catalog, seed=0, by="line").product_part
    type_part = make_split(catalog, seed=0, by="type").product_part
    ids = [p["id"] for p in catalog]
    index = EdgeIndex(args.index_dir, args.collection, optimize_delay_s=None)
    stored: dict = {}
    for s in range(0, len(ids), 200):
        stored.update(index.retrieve(ids[s : s + 200]))
    index.close()
    missing = [pid for pid in ids if pid not in stored or VISUAL_VECTOR not in stored[pid].vectors]
    if missing:
        raise SystemExit(f"{len(missing)} catalogue products have no stored visual rows (first: {missing[0]})")
    gallery = Gallery(ids, [np.asarray(stored[pid].vectors[VISUAL_VECTOR], np.float32) for pid in ids])

    enc = EncoderClient(args.triton, timeout_s=60)
    qrels = {q["id"]: q["relevant"] for q in queries}
    rows: dict[str, dict[str, np.ndarray]] = {}

    def photo(b: bytes) -> np.ndarray:
        return enc.embed_images_visual([b], "photo")[0][0]

    for q in queries:
        data = (args.data / q["image"]).read_bytes()
        rgb = _rgb(data)
        rows[q["id"]] = {"base": photo(data), "flip": photo(_jpeg(rgb[:, ::-1].copy())),
                         "grayworld": photo(_jpeg(grayworld(rgb))),
                         "scene": enc.embed_images_visual([data], "scene")[0][0]}
    enc.close()

    tune = [q["id"] for q in queries if "tune" in photo_part_names(q["relevant"][0], line_part, type_part)]
    out: dict[str, dict] = {}
    base_runs: dict[str, list[str]] = {}
    for name, make in VARIANTS.items():
        runs = {qid: gallery.rank(make(r)) for qid, r in rows.items()}
        base_runs = base_runs or runs
        parts = by_part(runs, qrels, line_part, type_part)
        wins = sum(runs[i][0] in qrels[i] and base_runs[i][0] not in qrels[i] for i in tune)
        losses = sum(runs[i][0] not in qrels[i] and base_runs[i][0] in qrels[i] for i in tune)
        out[name] = {"parts": parts, "tune_hit1_wins_vs_base": wins, "tune_hit1_losses_vs_base": losses}
        cells = "  ".join(f"{p} {v['hit@1']:.3f}/{v['recall@10']:.3f}" for p, v in parts.items())
        print(f"{name:14s} {cells}  (tune Hit@1 vs base: +{wins} -{losses})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
