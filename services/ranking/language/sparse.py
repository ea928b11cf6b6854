"""BM25 as sparse vectors for Qdrant (``Modifier.IDF`` on the sparse vector config).

Qdrant multiplies each query term by its IDF, computed from the collection, so we only ship:

- documents: the BM25 term-frequency part ``tf·(k1+1) / (tf + k1·(1 − b + b·dl/avgdl))``;
- queries: 1.0 per distinct term (expansions lower), so score = Σ idf(t)·w_q(t)·tf_part(t).

Term → index is a stable hash (blake2b, 31 bits), identical across processes, machines and
Python versions (unlike ``hash()``), so no vocabulary has to be stored or shared. Distinct
terms that collide are merged by summing (probability ~n²/2³²: negligible for a catalog).
``avg_doc_len`` must be the mean over the *indexed* (possibly enriched) texts of the collection;
recompute it on reindex.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

from .tokens import tokenize

__all__ = ["SparseVector", "term_index", "bm25_document_vector", "bm25_query_vector", "document_length"]


@dataclass(frozen=True)
class SparseVector:
    """Sorted unique indices and their values (Qdrant ``SparseVector`` layout)."""

    indices: list[int]
    values: list[float]

    def as_dict(self) -> dict[int, float]:
        return dict(zip(self.indices, self.values))


@lru_cache(maxsize=262144)
def term_index(term: str) -> int:
    """Stable 31-bit index of a term (fits Qdrant's uint32 and signed int32 consumers)."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little") & 0x7FFFFFFF


def _vector(weights: dict[int, float]) -> SparseVector:
    idx = sorted(weights)
    return SparseVector(idx, [weights[i] for i in idx])


def document_length(text: str) -> int:
    """Number of BM25 terms of an indexed text (for computing ``avg_doc_len``)."""
    return len(tokenize(text, variants=True))


def bm25_document_vector(text: str, avg_doc_len: float = 40.0, k1: float = 1.2, b: float = 0.75) -> SparseVector:
    """TF part of BM25 for one product text (title + description + attributes, possibly enriched)."""
    terms = tokenize(text, variants=True)
    if not terms:
        return SparseVector([], [])
    norm = k1 * (1.0 - b + b * len(terms) / max(avg_doc_len, 1e-9))
    weights: dict[int, float] = {}
    for term, tf in Counter(terms).items():
        i = term_index(term)
        weights[i] = weights.get(i, 0.0) + tf * (k1 + 1.0) / (tf + norm)
    return _vector(weights)


def bm25_query_vector(text: str, expansions: Sequence[str] | Iterable[str] = (), expansion_weight: float = 0.5) -> SparseVector:
    """Each distinct query term weighs 1.0; terms that only come from ``expansions`` weigh less.

    ``expansions`` are extra phrases (translations, synonyms from :func:`analyze_query`).
    """
    weights: dict[int, float] = {}
    for term in tokenize(text):
        weights[term_index(term)] = 1.0
    for phrase in expansions:
        for term in tokenize(phrase):
            i = term_index(term)
            if i not in weights:
                weights[i] = expansion_weight
    return _vector(weights)
