"""Product index over Qdrant: one protocol (``base``), two backends chosen by configuration."""

from __future__ import annotations

from services.ranking.index.base import IndexMeta, ModelMismatchError, VectorIndex
from services.ranking.index.schema import Candidate, IndexedProduct, SearchFilter, SignalQuery, SparseVec, StoredProduct

__all__ = [
    "Candidate",
    "IndexMeta",
    "IndexedProduct",
    "ModelMismatchError",
    "SearchFilter",
    "SignalQuery",
    "SparseVec",
    "StoredProduct",
    "VectorIndex",
    "open_index",
]


def open_index(settings) -> VectorIndex:  # settings: RankingSettings (kept untyped to avoid import cycles)
    """Opens the backend named by ``settings.backend`` ("edge" default, or "server")."""
    if settings.backend == "edge":
        from services.ranking.index.edge import EdgeIndex

        return EdgeIndex(
            settings.data_dir,
            settings.collection,
            hnsw_ef=settings.fusion.hnsw_ef,
            optimize_delay_s=settings.optimize_delay_s if settings.optimize_delay_s >= 0 else None,
            payload_cache_entries=settings.payload_cache_entries,
        )
    if settings.backend == "server":
        from services.ranking.index.server import ServerIndex

        return ServerIndex.connect(
            settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            collection=settings.collection,
            shards=settings.shards,
            replicas=settings.replicas,
            write_consistency=settings.write_consistency,
            hnsw_ef=settings.fusion.hnsw_ef,
        )
    raise ValueError(f"unknown index backend {settings.backend!r} (expected 'edge' or 'server')")
