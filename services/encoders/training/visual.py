"""Learns the ``visual`` whitening (PCA, shrinkage 0.5) on train-line catalogue photos, and
measures shopper-photo retrieval offline, by line split and by type split.

  python -m services.encoders.training.visual --catalog ../shared/data/ikea/catalog.jsonl \\
      --photos ../shared/data/ikea/photos.jsonl [--out services/encoders/heads]

Why PCA whitening: raw GeM descriptors are dominated by a few bursty channels (the white
background, generic "furniture" activations); whitening learned on other photos of the same
domain spreads the variance and down-weights them (Jegou & Chum 2012). It is learned on the
*train* product lines only (``homesearch.evaluation.split``), whole photo + tight foreground
crop of each, so the held-out numbers are honest. For the type-split numbers a second
whitening is learned on the type split's train products (reported, not shipped).

The gallery of the offline measurement is the whole catalogue (as the services index it);
the query subsets are the shopper photos whose product is held out.
Writes ``<out>/visual-<version>/visual.json`` + ``whitening.safetensors``
(``services.encoders.models.visual``). Features are cached under ``--features`` so a
re-fit costs seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "heads"
SHRINKAGE = 0.5


def _features(catalog: list[dict], photos: list[dict], base: Path, photo_base: Path, cache: Path) -> dict[str, np.ndarray]:
    """Pooled (un-whitened) GeM descriptors: catalogue whole + foreground at 224, photo regions at 448."""
    if cache.is_file():
        z = np.load(cache)
        if list(z["ids"]) == [p["id"] for p in catalog] and len(z["regions"]) == len(photos):
            return {k: z[k] for k in z.files}
    import torch

    from services.encoders.models.effnet_image import DEFAULT_PIXELS, load_backbone
    from services.encoders.models.preprocess import ImagePreprocessor
    from services.encoders.models.visual import gem, regional_gem

    import tempfile

    from services.encoders.engines.onnx_engine import make_session

    torch.set_num_threads(2)
    bb = load_backbone()
    pre = ImagePreprocessor(DEFAULT_PIXELS, torch.device("cpu"))

    class Pool(torch.nn.Module):  # the backbone + pooling, run on ONNX Runtime (~6x torch eager on CPU)
        def __init__(self, regional: bool) -> None:
            super().__init__()
            self.bb, self.regional = bb, regional

        def forward(self, px: torch.Tensor) -> torch.Tensor:
            fmap = self.bb.extract_features(px)
            return regional_gem(fmap, (5, 7, 9), 2) if self.regional else gem(fmap)

    sessions = {}
    tmp = Path(tempfile.mkdtemp(prefix="visual-fit-"))
    for name, regional, size in (("global", False, 224), ("regions", True, 448)):
        path = tmp / f"{name}.onnx"
        torch.onnx.export(Pool(regional).eval(), (torch.zeros(1, 3, size, size),), str(path), input_names=["PIXELS"],
                          output_names=["OUT"], dynamic_axes={"PIXELS": {0: "batch"}, "OUT": {0: "batch"}},
                          opset_version=17, dynamo=False)
        sessions[name] = make_session(path, intra_threads=2)
    whole, fg, regions = [], [], []
    t = time.time()
    for i in range(0, len(catalog), 32):
        data = [(base / p["image"]).read_bytes() for p in catalog[i : i + 32]]
        views, errors = pre.decode_views(data, "index")
        assert not errors, errors
        px = pre.normalize(torch.stack([v for vs in views for v in vs]))  # type: ignore[union-attr]
        g = sessions["global"].run(["OUT"], {"PIXELS": px.numpy()})[0]
        whole.append(g[0::2])
        fg.append(g[1::2])
    for i in range(0, len(photos), 8):
        data = [(photo_base / q["image"]).read_bytes() for q in photos[i : i + 8]]
        views, errors = pre.decode_views(data, "query")
        assert not errors, errors
        px = pre.normalize(torch.stack([v[0] for v in views]))  # type: ignore[index]
        regions.extend(sessions["regions"].run(["OUT"], {"PIXELS": px.numpy()})[0])
    print(f"features: {time.time() - t:.0f}s", file=sys.stderr)
    out = {"ids": np.array([p["id"] for p in catalog]), "whole": np.concatenate(whole).astype(np.float32),
           "fg": np.concatenate(fg).astype(np.float32), "regions": np.stack(regions).astype(np.float32)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


def fit_whitening(descriptors: np.ndarray, dim: int = 512, shrinkage: float = SHRINKAGE) -> tuple[np.ndarray, np.ndarray]:
    """(mean (C,), projection (C, dim)) of L2-normalised descriptors: top-``dim`` PCA directions
    divided by (component std) ** shrinkage."""
    x = _l2(descriptors.astype(np.float64))
    mu = x.mean(0)
    _, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    std = s[:dim] / np.sqrt(len(x))
    return mu.astype(np.float32), np.ascontiguousarray(vt[:dim].T / std**shrinkage, dtype=np.float32)


def ranks(feats: dict[str, np.ndarray], photos: list[dict], mean: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """Rank (0 = first) of each photo's product in the whole catalogue, scored as the services
    do: best cosine over query regions x the product's two rows."""
    def w(x: np.ndarray) -> np.ndarray:
        return _l2((_l2(x) - mean) @ proj)

    gw, gf = w(feats["whole"]), w(feats["fg"])
    ids = list(feats["ids"])
    pos = {p: i for i, p in enumerate(ids)}
    out = []
    for q, reg in zip(photos, feats["regions"]):
        r = w(reg)
        score = np.maximum((r @ gw.T).max(0), (r @ gf.T).max(0))
        order = np.argsort(-score, kind="stable")
        rel = {pos[x] for x in q["relevant"] if x in pos}
        out.append(min(int(np.nonzero(np.isin(order, list(rel)))[0][0]), 10**6) if rel else 10**6)
    return np.asarray(out)


def _report(rk: np.ndarray) -> dict[str, float]:
    return {"n": int(len(rk)), "hit@1": round(float((rk == 0).mean()), 4) if len(rk) else 0.0,
            "recall@10": round(float((rk < 10).mean()), 4) if len(rk) else 0.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m services.encoders.training.visual", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--photos", required=True, help="shopper photos JSONL (image -> relevant product)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--features", type=Path, default=Path.home() / ".cache" / "homesearch" / "visual-features.npz")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--split-seed", type=int, default=0)
    args = ap.parse_args(argv)
    import torch
    from safetensors.torch import save_file

    from homesearch.evaluation.split import load_jsonl, make_split
    from services.encoders.models.visual import CARD_NAME, VisualCard

    cpath, ppath = Path(args.catalog).resolve(), Path(args.photos).resolve()
    catalog, photos = load_jsonl(cpath), load_jsonl(ppath)
    feats = _features(catalog, photos, cpath.parent, ppath.parent, args.features)
    ids = list(feats["ids"])
    metrics: dict = {"gallery": len(ids), "photos": len(photos), "scoring": "max over 50 query regions x (whole, foreground)"}
    shipped = None
    for by in ("line", "type"):
        split = make_split(catalog, photos, seed=args.split_seed, by=by)
        train = np.array([split.product_part[i] == "train" for i in ids])
        mean, proj = fit_whitening(np.concatenate([feats["whole"][train], feats["fg"][train]]), args.dim)
        rk = ranks(feats, photos, mean, proj)
        part = np.array([split.query_part.get(q["id"], "train") for q in photos])
        seen = np.array([split.query_seen_type.get(q["id"], True) for q in photos])
        held = part != "train"
        metrics[f"{by}_split"] = {"whitening_fit_on": f"{int(train.sum())} train products x (whole, foreground)",
                                  "all": _report(rk), "heldout": _report(rk[held]), "dev": _report(rk[part == "dev"]),
                                  "test": _report(rk[part == "test"]), "train": _report(rk[~held]),
                                  "heldout_unseen_type": _report(rk[held & ~seen])}
        if by == "line":
            shipped = (mean, proj)
    assert shipped is not None
    mean, proj = shipped
    digest = hashlib.sha1(mean.tobytes() + proj.astype(np.float16).tobytes()).hexdigest()[:8]
    version = f"visual-gem3-r579-pw{args.dim}-{digest}"
    card = VisualCard(version=version, dim=args.dim, metrics={
        **metrics, "shipped_whitening": "line split train products", "shrinkage": SHRINKAGE,
        "catalog": str(cpath), "photos_set": str(ppath), "split_seed": args.split_seed,
        "command": "python -m services.encoders.training.visual --catalog ../shared/data/ikea/catalog.jsonl "
                   "--photos ../shared/data/ikea/photos.jsonl"})
    dest = args.out / version
    dest.mkdir(parents=True, exist_ok=True)
    save_file({"mean": torch.from_numpy(mean), "projection": torch.from_numpy(proj)}, str(dest / card.weights))
    (dest / CARD_NAME).write_text(json.dumps(card.to_json(), indent=1) + "\n", encoding="utf-8")
    print(json.dumps({"version": version, "dir": str(dest), **metrics}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
