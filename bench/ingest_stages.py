"""Where a product's ingestion CPU goes, stage by stage, in one process (1 thread each).

Runs the same code the Triton image/text stubs and the ranking service run at ingestion
(validation, decode + foreground views, normalisation, the ONNX graphs' extra inputs, the image
graph at batch 1/8/32, passage tokenising and encoding, photo colours, BM25 enrichment) over the
first N products of a catalog and prints CPU and wall ms per product. It is a profile, not a
served figure: ``homesearch bench engine`` gives that. Why: the served ingestion rate crosses
several processes; this says which stage a change should go after.

    python -m bench.ingest_stages --catalog ../shared/data/ikea/catalog.jsonl [--n 96]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", type=Path, required=True, help="catalog JSONL (docs/formats.md) with local photos")
    ap.add_argument("--n", type=int, default=96, help="products profiled (default %(default)s)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch
    from PIL import Image

    from homesearch.v1 import ranking_pb2
    from services.encoders.engines.onnx_engine import build_image_encoder, build_text_encoder
    from services.encoders.models.preprocess import ImagePreprocessor
    from services.encoders.serving.config import TritonSettings
    from services.ranking.catalog_service import lexical_text, passage_text
    from services.ranking.ingest.photo_colour import main_photo_colours
    from services.ranking.language import bm25_document_vector, enrich_document

    torch.set_num_threads(1)
    rows = [json.loads(line) for line in args.catalog.read_text().splitlines()[: args.n]]
    imgs = [(args.catalog.parent / r["image"]).read_bytes() for r in rows]
    n = len(rows)
    spec = TritonSettings().model_spec()
    ie = build_image_encoder(spec, "onnx", threads=1, workers=1)
    te = build_text_encoder(spec, "onnx", threads=1, workers=1)
    pre = ImagePreprocessor(ie.pixel_spec, torch.device("cpu"))
    isz, qsz = ie.visual_sizes

    def stage(label: str, fn: Callable[[], Any]) -> Any:
        fn()  # warm-up
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu, wall = (time.process_time() - c0) / n * 1000, (time.perf_counter() - w0) / n * 1000
        print(f"{label:48s} {cpu:7.2f} ms CPU/product {wall:7.2f} ms wall", flush=True)
        return out

    def verify() -> None:
        for im in imgs:
            with Image.open(io.BytesIO(im)) as x:
                x.verify()

    prods = [ranking_pb2.Product(id=r["id"], title=r["title"], description=r.get("description", ""),
                                 category=r.get("category", ""), attributes=r.get("attributes", {}), images=[im])
             for r, im in zip(rows, imgs)]
    stage("validation: Image.verify", verify)
    stage("full decode at 224 (no resize)", lambda: pre.decode_raw(imgs, isz, resize=False))
    views = stage("decode_views index (decode + foreground + 2 resizes)", lambda: pre.decode_views(imgs, "index", isz, qsz))[0]
    flat = [v for per_photo in views for v in per_photo]
    px = stage("stack + normalize", lambda: pre.normalize(torch.stack(flat)))
    stage("graph extra inputs (_feeds)", lambda: ie._feeds(px))
    for bs in (1, 8, 32):
        def run(bs: int = bs) -> None:
            for s in range(0, len(flat), bs):
                ie.bulk.run(["EMBEDDING", "VISUAL"], ie._feeds(px[s : s + bs]))
        stage(f"image graph incl. extra inputs, 2 views, batch {bs}", run)
    texts = [passage_text(p) for p in prods]
    stage("tokenize passages", lambda: te._tokenize(texts, "passage"))
    stage("e5 passage encode (length-sorted chunks)", lambda: te.encode(texts, "passage"))
    stage("photo colours (ranking, own decode)", lambda: [main_photo_colours([im]) for im in imgs])
    stage("BM25 + glossary enrichment (ranking)",
          lambda: [bm25_document_vector(enrich_document(lexical_text(p), ("zh",))) for p in prods])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
