"""ConSE zero-shot part of the image head (Norouzi et al. 2014, "Zero-shot learning by convex
combination of semantic embeddings"), fitted after the LiT head is trained.

Why: the trained MLP maps a photo near the captions of the *training* product lines, so a product
type it never saw lands on the nearest type it knows (docs/evaluation.md: unseen-type R@10 ~0.54
against ~0.78 for seen types). The backbone's own ImageNet classifier already names many home
objects (bookcase, wardrobe, table lamp, quilt, vase, ...). ConSE turns its probabilities over the
classes in ``conse_classes.HOME_CLASSES`` into a text-space vector: the probability-weighted mean of
the e5 passage embeddings of the class names (English and Chinese, averaged). No training on our
data, so it does not favour the training lines. The served vector is
``normalise(normalise(mlp) + mix * conse)``; ``temperature`` (softmax over the K class logits) and
``mix`` are chosen on the **dev** queries of the held-out split (never on test).

The classifier rows and the class embeddings are stored in the head file (``image_head`` docstring),
so the served tower (both engines) computes exactly this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.encoders.training.conse_classes import HOME_CLASSES

METHOD = "conse-v1"
FEATURE_DIM = 1280
TEMPERATURES = (0.5, 1.0, 2.0, 4.0)
MIXES = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5)


@dataclass
class ZeroShotTensors:
    """Classifier rows (K, 1280), biases (K,), class-name embeddings (K, 384) and the names."""

    weight: np.ndarray
    bias: np.ndarray
    class_emb: np.ndarray
    indices: list[int]
    names: list[tuple[str, str]]


@dataclass
class MixChoice:
    temperature: float
    mix: float
    dev_recall10: float
    grid: list[dict] = field(default_factory=list)


def class_tensors(backbone) -> ZeroShotTensors:
    """The backbone classifier's rows for ``HOME_CLASSES`` and the e5 passage embeddings of their
    names (English and Chinese embedded separately, summed and L2-normalised)."""
    from services.encoders.training import text as T

    idx = sorted(HOME_CLASSES)
    names = [HOME_CLASSES[i] for i in idx]
    en = T.embed([n[0] for n in names], "passage")
    zh = T.embed([n[1] for n in names], "passage")
    emb = _norm(en + zh)
    w = backbone._fc.weight.detach().float().numpy()[idx]
    b = backbone._fc.bias.detach().float().numpy()[idx]
    return ZeroShotTensors(w, b, emb.astype(np.float32), idx, names)


def _norm(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


def conse_vectors(pooled: np.ndarray, zs: ZeroShotTensors, temperature: float) -> np.ndarray:
    """(n, 1280) pooled backbone features -> (n, 384) L2-normalised ConSE vectors."""
    logits = (pooled[:, :FEATURE_DIM] @ zs.weight.T + zs.bias) / temperature
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return _norm(p @ zs.class_emb)


def choose_mix(head_vecs: np.ndarray, pooled: np.ndarray, zs: ZeroShotTensors, query_emb: np.ndarray,
               gallery_ids: Sequence[str], qrels: Sequence[Sequence[str]],
               temperatures: Sequence[float] = TEMPERATURES, mixes: Sequence[float] = MIXES) -> MixChoice:
    """Grid over (temperature, mix) by R@10 (ties: nDCG@10, then the smaller mix) on the given
    queries, which must be the dev part: the caller reports test separately."""
    from homesearch.evaluation.metrics import evaluate_scores

    h = _norm(head_vecs)
    grid, best, best_key = [], None, None
    for t in temperatures:
        c = conse_vectors(pooled, zs, t)
        for a in mixes:
            m = evaluate_scores(query_emb @ _norm(h + a * c).T, list(gallery_ids), [list(r) for r in qrels])
            grid.append({"temperature": t, "mix": a, "recall@10": round(m["recall@10"], 6), "ndcg@10": round(m["ndcg@10"], 6)})
            key = (round(m["recall@10"], 6), round(m["ndcg@10"], 6), -a)
            if best_key is None or key > best_key:
                best, best_key = (t, a, m["recall@10"]), key
    assert best is not None
    return MixChoice(best[0], best[1], best[2], grid)


def card_block(zs: ZeroShotTensors, choice: MixChoice) -> dict:
    """The head card's ``zero_shot`` block (``services.encoders.models.image_head`` reads it)."""
    return {"method": METHOD, "temperature": choice.temperature, "mix": choice.mix, "feature_dim": FEATURE_DIM,
            "imagenet_indices": zs.indices, "class_names": [list(n) for n in zs.names],
            "chosen_on": "dev queries of the held-out split, R@10 (ties: nDCG@10)",
            "dev_recall@10": round(choice.dev_recall10, 6)}
