"""Hubness correction for shop the look: a bank of room-crop vectors and the per-product "hub" score.

Why: some catalogue photos (plain, mid-tone, large objects) are close to *every* room crop, so
they top every region's list and push out the products actually in the room. A product's hub
score is the mean of its ``k`` highest cosines to a bank of crops from training rooms; the
region score becomes ``cos - weight * hub``. Measured offline on the dev half of the scenes
(the bank is built from those same dev scenes only; test scenes never enter it): round-robin
nDCG@10 0.115 -> 0.134 (k=10, weight 0.5); held out, docs/journeys.md.

The bank belongs to one image model (head) version: ``data/region_bank/<image version>.npy``
(float16 rows, L2-normalised). Without a bank for the served version, no correction is applied.

  python -m homesearch.ranking.region_bank --scenes ../shared/data/ikea/scenes.jsonl \\
      --triton-url 127.0.0.1:8001          # writes the bank for the model Triton serves
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

BANK_DIR = Path(__file__).with_name("data") / "region_bank"


def image_version(model_version: str) -> str:
    """The image half of ``"<text version>|<image version>"``."""
    return model_version.split("|")[-1]


def bank_path(model_version: str, root: Path = BANK_DIR) -> Path:
    return root / (re.sub(r"[^A-Za-z0-9._+-]+", "_", image_version(model_version)) + ".npy")


@lru_cache(maxsize=4)
def load_bank(model_version: str) -> np.ndarray | None:
    path = bank_path(model_version)
    return np.load(path).astype(np.float32) if path.exists() else None


class HubScores:
    """Per-product hub scores against one bank, cached by (product id, content hash)."""

    def __init__(self, bank: np.ndarray, k: int) -> None:
        self.bank = bank
        self.k = max(1, min(k, len(bank)))
        self._cache: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def of(self, stored: dict) -> dict[str, float]:
        """``{product_id: hub}`` for ``{product_id: StoredProduct}`` (photo rows under "image")."""
        out: dict[str, float] = {}
        todo = []
        for pid, sp in stored.items():
            key = (pid, sp.payload.get("content_hash", ""))
            with self._lock:
                hit = self._cache.get(key)
            if hit is None:
                todo.append((key, sp))
            else:
                out[pid] = hit
        for key, sp in todo:
            rows = np.asarray(sp.vectors.get("image") or [], dtype=np.float32)
            if rows.ndim != 2 or not len(rows):
                hub = 0.0
            else:
                sims = (rows @ self.bank.T).max(axis=0)  # multivector: the best photo per bank crop
                hub = float(np.sort(sims)[-self.k :].mean())
            out[key[0]] = hub
            with self._lock:
                if len(self._cache) > 200_000:
                    self._cache.clear()
                self._cache[key] = hub
        return out


def dev_scene(scene_id: str) -> bool:
    """The dev half of the h13 scene split (the held-out half never enters a bank)."""
    return hashlib.sha1(f"h13-scenes:{scene_id}".encode()).digest()[0] >= 128


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from homesearch.encoders.client import EncoderClient
    from homesearch.ranking.regions import crop_jpeg, decode, window_boxes

    ap = argparse.ArgumentParser(prog="python -m homesearch.ranking.region_bank", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=Path, required=True, help="scenes JSONL (image paths relative to it)")
    ap.add_argument("--triton-url", default="127.0.0.1:8001", help="Triton gRPC host:port serving the encoders")
    ap.add_argument("--levels", default="1,2,3,4", help="grid levels, as the ranking service uses (default %(default)s)")
    ap.add_argument("--out-dir", type=Path, default=BANK_DIR)
    args = ap.parse_args(argv)
    levels = tuple(int(x) for x in args.levels.split(","))
    scenes = [json.loads(line) for line in args.scenes.read_text().splitlines() if line.strip()]
    scenes = [s for s in scenes if dev_scene(s["id"])]
    rows = []
    with EncoderClient(args.triton_url, timeout_s=120.0) as enc:
        version = enc.model_info().model_version
        for s in tqdm(scenes, desc="bank"):
            im = decode((args.scenes.parent / s["image"]).read_bytes())
            rows.append(np.asarray(enc.embed_images([crop_jpeg(im, b) for b in window_boxes(levels)]), dtype=np.float32))
    bank = np.concatenate(rows)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    path = bank_path(version, args.out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, bank.astype(np.float16))
    card = {"model_version": version, "scenes": str(args.scenes), "split": "h13-scenes dev half", "n_scenes": len(scenes),
            "rows": int(len(bank)), "levels": list(levels)}
    path.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(card))
    return 0


if __name__ == "__main__":
    sys.exit(main())
