"""Shop the look on the ``visual`` descriptor: score a room photo's window rows against each
product's foreground rows, hubness-corrected, exactly.

Why each piece (measured on the dev scenes, docs/shop-the-look.md):

- foreground rows only: a window of a room shows the product, not the studio photo's white
  margin; the whole-photo row matches it worse.
- hubness correction: some products (plain, textured, big: rugs, curtains, shelves) are close
  to *every* window of every room and would fill every region's list. ``hub[p]`` is the mean
  of the ``HUB_TOP_K`` highest cosines between the product's foreground row and a bank of
  window rows of the DEV scenes (``homesearch.evaluation.scene_bank`` writes it, float16, one
  file per visual version under ``scene_banks/``); the score is ``cos - hub[p]`` (a CSLS-like
  correction, Lample et al. 2018). The bank is a pure function of the visual descriptor, so it
  is keyed by the visual version: a new descriptor forces a re-index (the model version
  changes) and needs its own bank (without one the correction is off and explain says so).
- hub scores are computed here, lazily, from the stored rows (not at ingestion): they depend
  only on a row and the bank, so re-indexing, partial updates and deletes cannot make them
  stale, and ingestion stays as it is. Cached by the row's bytes.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BANK_DIR = Path(__file__).resolve().parent / "scene_banks"
HUB_TOP_K = 200


def bank_path(visual_version: str, directory: Path = BANK_DIR) -> Path:
    return directory / f"{visual_version}.npy"


def hub_scores(rows: np.ndarray, bank: np.ndarray, k: int = HUB_TOP_K) -> np.ndarray:
    """(n, d) unit rows x (B, d) unit bank rows -> (n,) mean of each row's top-``k`` cosines."""
    if len(rows) == 0:
        return np.zeros(0, np.float32)
    sims = rows.astype(np.float32) @ bank.astype(np.float32).T  # (n, B)
    k = min(k, sims.shape[1])
    top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
    return top.mean(axis=1).astype(np.float32)


class HubBank:
    """The dev-scene window bank of one visual version and a cache of hub scores by row."""

    def __init__(self, bank: np.ndarray | None, version: str, k: int = HUB_TOP_K) -> None:
        self.bank = None if bank is None else np.asarray(bank, dtype=np.float32)
        self.version = version
        self.k = k
        self._cache: dict[bytes, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, visual_version: str, directory: Path = BANK_DIR) -> HubBank:
        p = bank_path(visual_version, directory)
        return cls(np.load(p) if visual_version and p.is_file() else None, visual_version)

    @property
    def active(self) -> bool:
        return self.bank is not None

    def hubs(self, rows: np.ndarray) -> np.ndarray:
        """(n,) hub score of each (d,) row; 0 without a bank (no correction)."""
        if self.bank is None:
            return np.zeros(len(rows), np.float32)
        keys = [hashlib.blake2b(np.ascontiguousarray(r, np.float32).tobytes(), digest_size=16).digest() for r in rows]
        with self._lock:
            got = [self._cache.get(k) for k in keys]
        todo = [i for i, v in enumerate(got) if v is None]
        if todo:
            fresh = hub_scores(rows[todo], self.bank, self.k)
            with self._lock:
                for i, v in zip(todo, fresh):
                    self._cache[keys[i]] = float(v)
                    got[i] = float(v)
        return np.asarray(got, dtype=np.float32)


def foreground_rows(visual: list | np.ndarray | None) -> np.ndarray:
    """The foreground-crop rows of a product's stored ``visual`` multivector (rows alternate
    whole photo, foreground crop per photo: ``catalog_service``)."""
    if visual is None or len(visual) == 0:
        return np.zeros((0, 0), np.float32)
    rows = np.asarray(visual, dtype=np.float32)
    return rows[1::2] if len(rows) >= 2 else rows


@dataclass
class RegionScores:
    """``scores[r, j]``: score of candidate ``ids[j]`` for window ``r``; ``cosine`` the raw
    ``visual`` cosine and ``types`` the centred text-space similarity of the photo chosen."""

    ids: list[str]
    scores: np.ndarray
    cosine: np.ndarray
    types: np.ndarray | None = None


def score_windows(windows: np.ndarray, products: dict[str, np.ndarray], hub: HubBank, *,
                  window_types: np.ndarray | None = None, product_images: dict[str, np.ndarray] | None = None,
                  type_weight: float = 0.0) -> RegionScores:
    """Exact scores of every window x candidate: ``cos - hub`` of a photo's foreground row, plus
    ``type_weight`` x the centred text-space similarity when ``window_types`` ((R, dim): each
    window's text-space vector minus ``type_centre``) and the products' ``image`` rows (one per
    photo, aligned with the foreground rows) are given; a product with several photos takes its
    best photo.

    Why the text-space term: the ``visual`` rows match instances and, in a room, often the wrong
    one; the head's vector of a window says what type (and colour) of thing it shows, which
    ranks a lamp above a rug for a window on a lamp. Centring on the mean dev-room window removes
    what every window shares (dev scenes nDCG@10 0.178 -> 0.211, docs/shop-the-look.md)."""
    ids = [pid for pid, rows in products.items() if len(rows)]
    if not ids:
        empty = np.zeros((len(windows), 0), np.float32)
        return RegionScores([], empty, empty, empty if window_types is not None else None)
    rows = np.concatenate([products[p] for p in ids]).astype(np.float32)
    cos = windows.astype(np.float32) @ rows.T  # (R, rows)
    corrected = cos - hub.hubs(rows)[None, :]
    types = None
    if window_types is not None and product_images is not None and type_weight:
        dim = window_types.shape[1]
        # a product whose image rows do not line up with its photos gets no type term
        imgs = np.concatenate([product_images[p] if p in product_images and len(product_images[p]) == len(products[p])
                               else np.zeros((len(products[p]), dim), np.float32) for p in ids]).astype(np.float32)
        types = window_types.astype(np.float32) @ imgs.T
        corrected = corrected + np.float32(type_weight) * types
    counts = np.asarray([len(products[p]) for p in ids])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    scores = np.maximum.reduceat(corrected, starts, axis=1)  # a product's best photo
    chosen = corrected == np.repeat(scores, counts, axis=1)
    raw = np.maximum.reduceat(np.where(chosen, cos, -np.inf), starts, axis=1)  # that photo's cosine
    typ = None if types is None else np.maximum.reduceat(np.where(chosen, types, -np.inf), starts, axis=1)
    return RegionScores(ids, scores, raw, typ)


def type_centre_path(image_version: str, directory: Path = BANK_DIR) -> Path:
    """The mean text-space window vector of the dev scenes for one image tower version."""
    return directory / f"{image_version}.type-centre.npy"


def load_type_centre(image_version: str, directory: Path = BANK_DIR) -> np.ndarray | None:
    """(dim,) float32 centre for ``image_version``, or None (then the type term is off)."""
    p = type_centre_path(image_version, directory)
    return np.load(p).astype(np.float32) if image_version and p.is_file() else None
