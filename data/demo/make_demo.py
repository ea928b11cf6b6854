#!/usr/bin/env python3
"""Builds the demo catalog in data/demo/ from the IKEA sample (../shared/data/ikea).

Deterministic: the same source always gives byte-identical output.
Selection: the CATEGORIES largest product types (ties broken by name), and from
each the PER_CATEGORY products that come first when ordered by sha1(id), so the
demo spreads over many kinds of furniture while every type has several
products (colour/size variants) for a query to find. Photos are downscaled to
256 px (longest side) JPEG quality 80. One product per demo query category is
held out of the catalog and its photo becomes a query image.

    python data/demo/make_demo.py [--source ../shared/data/ikea] [--out data/demo]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
from collections import defaultdict
from pathlib import Path

from PIL import Image

CATEGORIES = 40
PER_CATEGORY = 5
IMAGE_PX = 256
JPEG_QUALITY = 80

# Query photos: a held-out product of these categories (not in the catalog).
QUERY_IMAGE_CATEGORIES = {"chair": "Chair", "pendant_lamp": "Pendant lamp"}


def _h(s: str) -> str:
    return hashlib.sha1(s.encode()).hexdigest()


def _downscale(src: Path) -> bytes:
    with Image.open(src) as im:
        im = im.convert("RGB")
        im.thumbnail((IMAGE_PX, IMAGE_PX), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
        return buf.getvalue()


def main() -> None:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=here.parents[1] / ".." / "shared" / "data" / "ikea")
    p.add_argument("--out", type=Path, default=here)
    args = p.parse_args()
    src, out = args.source.resolve(), args.out.resolve()

    rows = [json.loads(line) for line in (src / "catalog.jsonl").read_text().splitlines() if line.strip()]
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_cat[r["category"]].append(r)
    cats = sorted(by_cat, key=lambda c: (-len(by_cat[c]), c))[:CATEGORIES]
    chosen: list[dict] = []
    held_out: dict[str, dict] = {}
    for c in cats:
        ranked = sorted(by_cat[c], key=lambda r: _h(r["id"]))
        chosen += ranked[:PER_CATEGORY]
        if c in QUERY_IMAGE_CATEGORIES.values() and len(ranked) > PER_CATEGORY:
            held_out[c] = ranked[PER_CATEGORY]
    chosen.sort(key=lambda r: (r["category"], r["id"]))

    images = out / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    with (out / "catalog.jsonl").open("w") as f:
        for r in chosen:
            name = f"{r['id']}.jpg"
            (images / name).write_bytes(_downscale(src / r["image"]))
            r = {**r, "image": f"images/{name}"}
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    qdir = out / "queries"
    if qdir.exists():
        shutil.rmtree(qdir)
    qdir.mkdir()
    ids_of = lambda pred: [r["id"] for r in chosen if pred(r)]  # noqa: E731
    queries = [
        {"id": "en-wardrobe", "text": "white wardrobe with sliding doors",
         "relevant": ids_of(lambda r: r["category"] == "Wardrobe" and "white" in r["attributes"].get("color", ""))},
        {"id": "en-lamp", "text": "pendant lamp",
         "relevant": ids_of(lambda r: r["category"] == "Pendant lamp")},
        {"id": "zh-mirror", "text": "镜子", "lang": "zh", "note": "mirror",
         "relevant": ids_of(lambda r: r["category"] == "Mirror")},
        {"id": "zh-chair", "text": "白色椅子", "lang": "zh", "note": "white chair",
         "relevant": ids_of(lambda r: r["category"] == "Chair" and "white" in r["attributes"].get("color", ""))},
    ]
    for key, cat in QUERY_IMAGE_CATEGORIES.items():
        prod = held_out[cat]
        (qdir / f"{key}.jpg").write_bytes(_downscale(src / prod["image"]))
        queries.append({"id": f"img-{key}", "image": f"queries/{key}.jpg", "note": f"photo of {prod['id']} (not in the catalog)",
                        "relevant": ids_of(lambda r, c=cat: r["category"] == c)})
    queries.append({"id": "mix-chair", "text": "black", "image": "queries/chair.jpg",
                    "relevant": ids_of(lambda r: r["category"] == "Chair" and "black" in r["attributes"].get("color", ""))})
    with (out / "queries.jsonl").open("w") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    shutil.copyfile(src / "NOTICE.md", out / "NOTICE.md")
    print(f"{len(chosen)} products in {len(cats)} categories, {len(queries)} queries -> {out}")


if __name__ == "__main__":
    main()
