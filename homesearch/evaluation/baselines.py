"""In-process numpy baselines: BM25 and TF-IDF over product text, colour histogram image->image.

Text baselines index ``title + category + description + attribute values`` (lower-cased,
alphanumeric tokens). Image->image task (the data has one photo per product, so no
query photo of the *same* product exists): every gallery product's photo is a query for the
*other* gallery products; relevant = the other products of the same type (category) and colour
("find this kind of thing in this colour"), queries with no such product are skipped. A
second, looser variant counts every other product of the same type.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np

_TOKEN = re.compile(r"[0-9a-z\u00c0-\u024f]+|[\u4e00-\u9fff]")


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric tokens; CJK characters one token each (no segmentation here)."""
    return _TOKEN.findall(text.lower())


def product_text(p: dict) -> str:
    attrs = " ".join(str(v) for v in (p.get("attributes") or {}).values())
    return " ".join(str(x) for x in (p.get("title", ""), p.get("category", ""), p.get("description", ""), attrs) if x)


class _Vocab:
    def __init__(self, docs: Sequence[list[str]]):
        self.index: dict[str, int] = {}
        for d in docs:
            for t in d:
                self.index.setdefault(t, len(self.index))

    def counts(self, docs: Sequence[list[str]]) -> np.ndarray:
        m = np.zeros((len(docs), len(self.index)), np.float32)
        for i, d in enumerate(docs):
            for t, c in Counter(d).items():
                j = self.index.get(t)
                if j is not None:
                    m[i, j] = c
        return m


class BM25:
    """Okapi BM25 (k1=1.2, b=0.75, idf = ln(1 + (N - df + 0.5) / (df + 0.5)))."""

    def __init__(self, docs: Sequence[str], k1: float = 1.2, b: float = 0.75):
        toks = [tokenize(d) for d in docs]
        self.vocab = _Vocab(toks)
        tf = self.vocab.counts(toks)
        n = len(toks)
        df = (tf > 0).sum(0)
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        dl = tf.sum(1, keepdims=True)
        self.w = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / max(dl.mean(), 1e-9)))

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        q = (self.vocab.counts([tokenize(x) for x in queries]) > 0).astype(np.float32)
        return (q * self.idf) @ self.w.T


class TfIdf:
    """Cosine over sublinear-tf x smoothed-idf vectors (idf = ln((1+N)/(1+df)) + 1)."""

    def __init__(self, docs: Sequence[str]):
        toks = [tokenize(d) for d in docs]
        self.vocab = _Vocab(toks)
        tf = self.vocab.counts(toks)
        n = len(toks)
        self.idf = (np.log((1 + n) / (1 + (tf > 0).sum(0))) + 1).astype(np.float32)
        self.d = self._vec(tf)

    def _vec(self, tf: np.ndarray) -> np.ndarray:
        v = np.where(tf > 0, 1 + np.log(np.maximum(tf, 1)), 0) * self.idf
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        return self._vec(self.vocab.counts([tokenize(x) for x in queries])) @ self.d.T


def histogram_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Q, B) x (G, B) L1-normalised histograms -> (Q, G) similarity in [0, 1]."""
    return np.minimum(a[:, None, :], b[None, :, :]).sum(-1)


def image_to_image_task(products: Sequence[dict], strict: bool = True) -> tuple[list[int], list[list[str]]]:
    """Query indices and their relevant ids (see module doc); the query itself is excluded by callers
    setting its own score to -inf."""
    def key(p):
        cat = (p.get("category") or "").lower()
        col = str((p.get("attributes") or {}).get("color", "")).lower()
        return (cat, col) if strict else cat

    keys = [key(p) for p in products]
    qi, rel = [], []
    for i, k in enumerate(keys):
        r = [products[j]["id"] for j, kj in enumerate(keys) if kj == k and j != i]
        if r:
            qi.append(i)
            rel.append(r)
    return qi, rel


def image_to_image_scores(feats: np.ndarray, query_idx: Sequence[int], metric: str = "cosine") -> np.ndarray:
    """Scores of the query products against the gallery; a query's own photo scores -inf."""
    q = feats[list(query_idx)]
    if metric == "intersection":
        s = histogram_intersection(q, feats)
    else:
        a = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-9)
        b = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-9)
        s = a @ b.T
    s = s.astype(np.float64)
    s[np.arange(len(q)), list(query_idx)] = -np.inf
    return s
