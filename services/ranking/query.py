"""Turns a search request into index queries: language analysis, cached embeddings, signals.

Signals (names match ``Hit.signal_scores`` and the ``Fusion`` weights):

- text query: ``text`` (query vs product text vector), ``image`` (query vs product
  photos; LiT puts both in the e5 space), ``lexical`` (BM25 over product text).
  When the query language differs from the catalog's, the dense query is the
  translation from ``analyze_query`` and BM25 gets original + translation +
  expansions (the catalog is enriched with Chinese terms at ingestion).
- image query: ``image`` (image vs photos) and ``text`` (image vs product text). When the encoders
  serve the ``visual`` photo->photo descriptor, ``image`` compares the query photo's crops with the
  products' ``visual`` rows instead of the text-space vectors (a shopper photo shows one product
  among others; the text-space head keeps the type and loses which product it is).
- image + text: ``text`` and ``lexical`` from the text, ``image`` searched with the
  weighted sum of the normalised text and image query vectors, then score fusion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from homesearch.ranking.cache import RedisCache
from homesearch.ranking.index.schema import (
    BM25_VECTOR,
    IMAGE_VECTOR,
    TEXT_VECTOR,
    VISUAL_DIM,
    VISUAL_VECTOR,
    SignalQuery,
    SparseVec,
)

TEXT, IMAGE, LEXICAL = "text", "image", "lexical"


@dataclass
class QueryPlan:
    queries: list[SignalQuery]
    language: str = ""
    explanation: str = ""
    kind: str = "text"  # text | image | image+text
    notes: list[str] = field(default_factory=list)


class QueryEncoder:
    """Query embeddings through the encoder client, cached in Redis by (model version, input)."""

    def __init__(self, encoder, cache: RedisCache) -> None:
        self.encoder = encoder
        self.cache = cache

    def model_version(self) -> str:
        return self.encoder.model_info().model_version

    def has_visual(self) -> bool:
        return bool(self.encoder.model_info().visual_version)

    def visual(self, data: bytes, model_version: str) -> np.ndarray:
        """(views, 512) ``visual`` descriptors of a query photo's crops (cached like embeddings)."""
        key = self.cache.embedding_key(model_version, "vis", data)
        vec = self.cache.get_embedding(key)
        if vec is None:
            rows, _ = self.encoder.embed_images_visual([data], "query")
            vec = np.asarray(rows[0], dtype=np.float32)
            self.cache.put_embedding(key, vec)
        return vec.reshape(-1, VISUAL_DIM)

    def text(self, text: str, model_version: str) -> np.ndarray:
        from homesearch.ranking.language import normalize

        key = self.cache.embedding_key(model_version, "q", normalize(text).encode("utf-8"))
        vec = self.cache.get_embedding(key)
        if vec is None:
            vec = np.asarray(self.encoder.embed_texts([text], mode="query")[0], dtype=np.float32)
            self.cache.put_embedding(key, vec)
        return vec

    def image(self, data: bytes, model_version: str) -> np.ndarray:
        key = self.cache.embedding_key(model_version, "img", data)
        vec = self.cache.get_embedding(key)
        if vec is None:
            vec = np.asarray(self.encoder.embed_images([data])[0], dtype=np.float32)
            self.cache.put_embedding(key, vec)
        return vec


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def plan_query(
    *,
    text: str,
    image: bytes,
    encoder: QueryEncoder,
    model_version: str,
    catalog_language: str,
    limit: int,
    mix_text_share: float,
    locale: str = "",
) -> QueryPlan:
    """Embeds the query and lists the index searches to run (one batch, one round trip)."""
    from homesearch.ranking.language import analyze_query

    queries: list[SignalQuery] = []
    plan = QueryPlan(queries=queries)
    tvec: np.ndarray | None = None
    if text.strip():
        analysis = analyze_query(text, catalog_language=catalog_language)
        plan.language = analysis.language or locale
        plan.explanation = analysis.explanation
        # Dense: the translation when the query is not in the catalog's language.
        tvec = encoder.text(analysis.dense_text, model_version)
        # BM25: original + translated terms, expansions (synonyms, other language) down-weighted.
        sparse = analysis.sparse_vector()
        queries.append(SignalQuery(TEXT, TEXT_VECTOR, dense=tvec.tolist(), limit=limit))
        if sparse.indices:
            queries.append(
                SignalQuery(LEXICAL, BM25_VECTOR, sparse=SparseVec(list(sparse.indices), list(sparse.values)), limit=limit)
            )
    if image:
        ivec = encoder.image(image, model_version)
        if tvec is None:
            plan.kind = "image"
            if encoder.has_visual():
                # one search per crop; the service keeps each product's best crop (max), which
                # measured far better than one multi-row MAX_SIM query (a sum over the crops)
                rows = encoder.visual(image, model_version)
                queries.extend(SignalQuery(IMAGE, VISUAL_VECTOR, rows=[row], limit=limit) for row in rows.tolist())
                plan.notes.append(f"photo matched on the visual vector (best of {len(rows)} crops)")
            else:
                queries.append(SignalQuery(IMAGE, IMAGE_VECTOR, dense=ivec.tolist(), limit=limit))
            queries.append(SignalQuery(TEXT, TEXT_VECTOR, dense=ivec.tolist(), limit=limit))
        else:
            plan.kind = "image+text"
            mixed = _unit(mix_text_share * _unit(tvec) + (1.0 - mix_text_share) * _unit(ivec))
            queries.append(SignalQuery(IMAGE, IMAGE_VECTOR, dense=mixed.tolist(), limit=limit))
    elif tvec is not None:
        queries.append(SignalQuery(IMAGE, IMAGE_VECTOR, dense=tvec.tolist(), limit=limit))
    return plan
