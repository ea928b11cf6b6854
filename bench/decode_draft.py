"""JPEG draft-mode decode: time saved and what it does to the vectors and to photo-query relevance.

For each draft setting (no draft; oversample 2.0, the default; 1.0, more aggressive) it decodes
the dev set's catalogue photos (500 px), shopper photos (512 px) and room scenes (1024 px) with
``ImagePreprocessor``, then embeds them with the served image tower (ONNX engine) and reports:

* decode ms/image (Pillow decode + resize + pad, the part draft mode changes), interleaved
  setting by setting per image so machine load hits every setting alike;
* cosine of each image's vector with its full-decode vector (min and mean);
* shopper photo -> its product (``photos.jsonl``), image->image against the catalogue photos
  decoded the same way: Hit@1 and R@10.

    python bench/decode_draft.py [--data ../shared/data/ikea] [--json-out out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEV_DATA = Path(os.environ.get("HOMESEARCH_DEV_DATA", REPO.parent / "shared" / "data" / "ikea"))
SETTINGS = {"full decode": float("inf"), "draft oversample 2.0": 2.0, "draft oversample 1.0": 1.0}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEV_DATA, help="dev data folder (HOMESEARCH_DEV_DATA)")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    import torch
    from services.encoders.serving.config import TritonSettings
    from services.encoders.engines.onnx_engine import OnnxImageEncoder
    from services.encoders.models.preprocess import ImagePreprocessor

    torch.set_num_threads(1)
    enc = OnnxImageEncoder(TritonSettings().model_spec(), intra_threads=2)
    pres = {k: ImagePreprocessor(enc.pixel_spec, torch.device("cpu"), draft_oversample=v) for k, v in SETTINGS.items()}
    catalog = [r for r in _rows(args.data / "catalog.jsonl") if r.get("image")]
    photos = _rows(args.data / "photos.jsonl")
    scenes = _rows(args.data / "scenes.jsonl")
    sets = {
        "catalogue photos": [(args.data / r["image"]).read_bytes() for r in catalog],
        "shopper photos": [(args.data / r["image"]).read_bytes() for r in photos],
        "room scenes": [(args.data / r["image"]).read_bytes() for r in scenes],
    }
    vecs: dict[tuple[str, str], np.ndarray] = {}
    timing: dict[tuple[str, str], list[float]] = {}
    for set_name, images in sets.items():
        print(f"[draft] {set_name}: {len(images)} images", file=sys.stderr, flush=True)
        decoded: dict[str, list] = {k: [] for k in SETTINGS}
        for data in images:
            for k, pre in pres.items():
                t0 = time.perf_counter()
                out, errors = pre.decode([data])
                timing.setdefault((set_name, k), []).append(time.perf_counter() - t0)
                assert not errors, errors
                decoded[k].append(out[0])
        for k in SETTINGS:
            rows = []
            for s in range(0, len(decoded[k]), 32):
                rows.append(enc.encode_pixels(pres[k].normalize(torch.stack(decoded[k][s : s + 32]))).numpy())
            vecs[(set_name, k)] = np.concatenate(rows)
    results = []
    ids = [r["id"] for r in catalog]
    for set_name in sets:
        full = vecs[(set_name, "full decode")]
        for k in SETTINGS:
            v = vecs[(set_name, k)]
            cos = (v * full).sum(1)
            row = {"set": set_name, "decode": k, "images": len(v),
                   "decode_ms_p50": round(statistics.median(timing[(set_name, k)]) * 1000, 2),
                   "cos_vs_full_min": round(float(cos.min()), 5), "cos_vs_full_mean": round(float(cos.mean()), 5)}
            if set_name == "shopper photos":
                gallery = vecs[("catalogue photos", k)]
                order = np.argsort(-(v @ gallery.T), axis=1)[:, :10]
                hit1 = r10 = 0.0
                for q, top in zip(photos, order):
                    rel = set(q["relevant"]) if isinstance(q["relevant"], list) else set(q["relevant"])
                    got = [ids[j] for j in top]
                    hit1 += got[0] in rel
                    r10 += len(rel & set(got)) / max(1, len(rel))
                row["hit@1"], row["r@10"] = round(hit1 / len(photos), 3), round(r10 / len(photos), 3)
            results.append(row)
    cols = ["set", "decode", "images", "decode_ms_p50", "cos_vs_full_min", "cos_vs_full_mean", "hit@1", "r@10"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
