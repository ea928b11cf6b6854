"""Material of a product photo (wood, metal, glass, ...), estimated at ingestion by a small linear
probe on the vectors the image tower already returns for the photo.

Why a probe and not pixels rules (as photo colour): material is texture and shape (grain,
specular highlights, weave, transparency), which a hand rule on colours cannot see, but which the
backbone's features do carry. The probe reads what ingestion has anyway (the photo's ``visual``
rows and its text-space ``image`` vector, from the same encoder call), so it costs a (d x 7)
matrix product per product and no encoder change.

The probe is a pure function of those vectors, so it is keyed by the versions of the towers
that made them (``probe_key``): one ``.npz`` per image+visual version under ``material_probes/``.
A tower without its probe (a new head or visual descriptor) gets no estimate, and
``describe_material`` / the search interpretation say so, until
``python -m homesearch.evaluation.photo_material --data ../shared/data/ikea`` rebuilds it for the
served version (docs/evaluation.md, "Photo material"). Labels come from the catalog text of
TRAIN-line products only (``services.ranking.material_words``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PROBE_DIR = Path(__file__).resolve().parent.parent / "material_probes"
MIN_PROB = 0.35  # labels kept in the payload / attribute: probability at least this


def probe_key(image_version: str, visual_version: str) -> str:
    """File stem of the probe trained on vectors of these tower versions ("" without a visual one)."""
    if not visual_version:
        return ""
    return f"{image_version}__{visual_version}".replace("/", "_").replace("|", "_")


def probe_path(key: str, directory: Path = PROBE_DIR) -> Path:
    return directory / f"{key}.npz"


def probe_features(image_vector: np.ndarray, visual_rows: np.ndarray) -> np.ndarray:
    """The probe's input for one photo: its two ``visual`` rows (whole photo, foreground crop) and
    its text-space vector, concatenated. The ONE definition used by training and ingestion."""
    rows = np.asarray(visual_rows, dtype=np.float32).reshape(-1)
    return np.concatenate([rows, np.asarray(image_vector, dtype=np.float32).reshape(-1)])


@dataclass(frozen=True)
class MaterialProbe:
    """Softmax probe ``softmax(((x - mean) / std) @ W + b)`` over ``labels``."""

    key: str
    labels: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    weight: np.ndarray  # (d, K)
    bias: np.ndarray  # (K,)

    @property
    def id(self) -> str:
        """Content id (part of each product's content hash: a retrained probe re-derives on re-index)."""
        h = hashlib.blake2b(digest_size=6)
        for a in (self.weight, self.bias, self.mean, self.std):
            h.update(np.ascontiguousarray(a, np.float32).tobytes())
        h.update("|".join(self.labels).encode())
        return f"probe-{h.hexdigest()}"

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(n, d) or (d,) features -> (n, K) or (K,) label probabilities."""
        z = ((np.asarray(x, np.float32) - self.mean) / self.std) @ self.weight + self.bias
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def estimate(self, x: np.ndarray, min_prob: float = MIN_PROB) -> list[tuple[str, float]]:
        """``(label, probability)`` with probability >= ``min_prob``, largest first (the top label
        always, so every photo has a reading; its probability says how sure it is)."""
        p = self.probabilities(x)
        order = np.argsort(-p, kind="stable")
        kept = [(self.labels[i], round(float(p[i]), 3)) for i in order if p[i] >= min_prob]
        return kept or [(self.labels[order[0]], round(float(p[order[0]]), 3))]

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, labels=np.array(self.labels), mean=self.mean, std=self.std, weight=self.weight, bias=self.bias)
        return path

    @classmethod
    def load(cls, key: str, directory: Path = PROBE_DIR) -> MaterialProbe | None:
        """The probe of ``key``, or None when none was trained for it."""
        p = probe_path(key, directory)
        if not key or not p.is_file():
            return None
        z = np.load(p)
        return cls(key, tuple(str(x) for x in z["labels"]), z["mean"].astype(np.float32), z["std"].astype(np.float32),
                   z["weight"].astype(np.float32), z["bias"].astype(np.float32))


_cache: dict[tuple[str, str], MaterialProbe | None] = {}
_lock = threading.Lock()


def probe_for(image_version: str, visual_version: str, directory: Path = PROBE_DIR) -> MaterialProbe | None:
    """The probe of these tower versions (loaded once per process), None when absent."""
    k = (str(directory), probe_key(image_version, visual_version))
    with _lock:
        if k not in _cache:
            _cache[k] = MaterialProbe.load(k[1], directory)
            if _cache[k] is None:
                log.info("no photo material probe for %s: material estimate off", k[1] or "a tower without visual rows")
        return _cache[k]


def main_photo_material(probe: MaterialProbe | None, image_vectors: list, visual_rows: list) -> list[tuple[str, float]] | None:
    """Estimate for the product's first photo (its vector and its first two visual rows), or None
    without a probe or a photo. Never raises: a bad shape only leaves the estimate out."""
    if probe is None or not image_vectors or len(visual_rows) < 2:
        return None
    try:
        return probe.estimate(probe_features(image_vectors[0], np.asarray(visual_rows[:2])))
    except Exception:  # noqa: BLE001 - a probe / vector size mismatch must not fail the product
        log.warning("photo material not estimated", exc_info=True)
        return None
