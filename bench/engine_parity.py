"""Cross-engine parity: an index written with one engine, queried with the other, same top-10?

The dev catalog's passages (``catalog_service.passage_text``, what ingestion embeds) and photos
are embedded with the PyTorch and with the ONNX towers; the dev queries (text) likewise.
For each signal the ranking searches with a text query (text->passage and text->photo, the dense
candidates of fusion) and for each pair (index engine A, query engine B), the top-10 is
compared with the all-PyTorch top-10 (the reference). Reported: mean top-10 overlap, the share
of queries with an identical top-10 set, and the min row cosine between the engines' vectors.

    python bench/engine_parity.py [--data ../shared/data/ikea] [--limit-queries N] [--json-out F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEV_DATA = Path(os.environ.get("HOMESEARCH_DEV_DATA", REPO.parent / "shared" / "data" / "ikea"))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _embed(fn, items: list, batch: int = 32) -> np.ndarray:
    return np.concatenate([np.asarray(fn(items[s : s + batch])) for s in range(0, len(items), batch)])


def top10(index: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ index.T), axis=1)[:, :10]


def overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean |A ∩ B| / 10 and the share of rows with identical sets."""
    ov = np.array([len(set(x) & set(y)) / 10 for x, y in zip(a, b)])
    return float(ov.mean()), float((ov == 1.0).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEV_DATA, help="dev data folder (HOMESEARCH_DEV_DATA)")
    ap.add_argument("--limit-queries", type=int, default=0)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    import torch
    from homesearch.encoders.config import TritonSettings
    from homesearch.encoders.onnx_engine import build_image_encoder, build_text_encoder
    from homesearch.encoders.preprocess import ImagePreprocessor
    from homesearch.ranking.catalog_service import passage_text
    from homesearch.v1 import ranking_pb2

    torch.set_num_threads(1)  # a shared 2-core box: more threads than free cores stalls OpenMP
    spec = TritonSettings().model_spec()
    catalog = _rows(args.data / "catalog.jsonl")
    queries = [q["text"] for q in _rows(args.data / "queries.jsonl")]
    if args.limit_queries:
        queries = queries[: args.limit_queries]
    passages = [passage_text(ranking_pb2.Product(id=r["id"], title=r["title"], description=r.get("description", ""),
                                                 category=r.get("category", ""), attributes=r.get("attributes") or {}))
                for r in catalog]
    with_photo = [r for r in catalog if r.get("image")]
    photos = [(args.data / r["image"]).read_bytes() for r in with_photo]
    vecs: dict[tuple[str, str], np.ndarray] = {}
    seconds: dict[str, float] = {}
    for engine in ("torch", "onnx"):
        t0 = time.perf_counter()
        text = build_text_encoder(spec, engine, threads=1)
        image = build_image_encoder(spec, engine, threads=1)
        pre = ImagePreprocessor(image.pixel_spec, torch.device("cpu"))

        def embed_photos(batch: list[bytes]) -> np.ndarray:
            pixels, ok, errors = pre(batch)
            assert not errors, errors
            return image.encode_pixels(pixels).numpy()

        vecs[("passage", engine)] = _embed(lambda b: text.encode(b, "passage").numpy(), passages)
        vecs[("query", engine)] = _embed(lambda b: text.encode(b, "query").numpy(), queries)
        vecs[("photo", engine)] = _embed(embed_photos, photos)
        seconds[engine] = round(time.perf_counter() - t0, 1)
        print(f"[parity] {engine}: {seconds[engine]} s", file=sys.stderr, flush=True)
    rows = []
    for signal, index_kind in (("text->passage", "passage"), ("text->photo", "photo")):
        ref = top10(vecs[(index_kind, "torch")], vecs[("query", "torch")])
        for idx_engine, q_engine in (("torch", "onnx"), ("onnx", "torch"), ("onnx", "onnx")):
            got = top10(vecs[(index_kind, idx_engine)], vecs[("query", q_engine)])
            mean, same = overlap(ref, got)
            rows.append({"signal": signal, "index engine": idx_engine, "query engine": q_engine, "queries": len(queries),
                         "top10_overlap_mean": round(mean, 4), "identical_top10_share": round(same, 4)})
    cosines = {kind: float((vecs[(kind, "torch")] * vecs[(kind, "onnx")]).sum(1).min()) for kind in ("passage", "query", "photo")}
    cols = ["signal", "index engine", "query engine", "queries", "top10_overlap_mean", "identical_top10_share"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    print("min cosine torch vs onnx: " + ", ".join(f"{k} {v:.6f}" for k, v in cosines.items()))
    print(f"embedding time (catalog + queries): {seconds}")
    if args.json_out:
        args.json_out.write_text(json.dumps({"rows": rows, "min_cosine": cosines, "seconds": seconds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
