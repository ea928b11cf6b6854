"""Index generation and collection facts shared by ranking and ingestion.

The generation is a counter bumped after every catalog change that wrote
something. It is persisted with the index (edge: ``meta.json`` beside the shard;
server: Qdrant collection metadata) so it survives restarts, and also bumped
once on every open, so a result cached just before a crash between an index
write and its bump can never be served again.

Replicas that share one Qdrant collection (server backend) learn of each
other's writes through Redis: a writer publishes its new generation to
``<prefix>:gen:<collection>`` (only ever raised), and readers take
``max(local, shared)``. For the embedded backend one process owns the data dir,
so the local value is authoritative and Redis is not consulted on reads.
If Redis is down, replicas fall back to their local generation; the result cache
is bypassed in that case anyway, so staleness cannot come from it.

With a ``lease`` (``services.ranking.lease``), the generation is also published as the signed
lease the gateway's result cache trusts; a write whose lease could not be published waits the
old lease out before it is acknowledged.
"""

from __future__ import annotations

import logging
import threading

from services.ranking.cache import RedisCache
from services.ranking.index.base import IndexMeta, ModelMismatchError, VectorIndex
from services.ranking.metrics import INDEX_DISK_BYTES, INDEX_GENERATION, INDEX_PRODUCTS

log = logging.getLogger(__name__)


class CatalogState:
    """Owns the index metadata: model version guard, generation, known attribute keys."""

    def __init__(
        self,
        index: VectorIndex,
        cache: RedisCache,
        collection: str,
        *,
        shared_generation: bool,
        catalog_language: str = "en",
        lease=None,
    ) -> None:
        self.index = index
        self.cache = cache
        self.collection = collection
        self.shared_generation = shared_generation
        self.catalog_language = catalog_language
        self.lease = lease  # services.ranking.lease.LeasePublisher | None
        self._lock = threading.Lock()

    @property
    def meta(self) -> IndexMeta:
        return self.index.meta

    def open(self, model_version: str, dim: int) -> None:
        """Binds the index to the encoders' model version; raises ModelMismatchError otherwise."""
        with self._lock:
            meta = IndexMeta.from_dict(self.index.meta.to_dict())
            if meta.model_version and meta.model_version != model_version:
                raise ModelMismatchError(meta.model_version, model_version)
            if meta.dim and meta.dim != dim:
                raise ModelMismatchError(f"{meta.model_version} (dim {meta.dim})", f"{model_version} (dim {dim})")
            self.index.ensure_collection(dim)
            meta.model_version, meta.dim = model_version, dim
            meta.catalog_language = meta.catalog_language or self.catalog_language
            meta.generation = self._next_generation(meta.generation)
            self.index.save_meta(meta)
            self.cache.publish_generation(self.collection, meta.generation)
            if self.lease is not None:
                self.lease.publish_or_outlast(meta.generation)
        if self.lease is not None:
            self.lease.start(self.generation)
        self.refresh_gauges()
        log.info(
            "index ready",
            extra={"model_version": model_version, "generation": meta.generation, "products": self.index.count()},
        )

    def check_model(self, model_version: str) -> None:
        current = self.index.meta.model_version
        if current and current != model_version:
            raise ModelMismatchError(current, model_version)

    def generation(self) -> int:
        local = self.index.meta.generation
        if not self.shared_generation:
            return local
        shared = self.cache.get_generation(self.collection)
        return max(local, shared or 0)

    def _next_generation(self, local: int) -> int:
        shared = self.cache.get_generation(self.collection) if self.shared_generation else None
        return max(local, shared or 0) + 1

    def record_write(self, attribute_keys: set[str] = frozenset()) -> int:
        """Bumps and persists the generation after a write; returns the new value."""
        with self._lock:
            meta = IndexMeta.from_dict(self.index.meta.to_dict())
            meta.generation = self._next_generation(meta.generation)
            if attribute_keys - set(meta.attribute_keys):
                meta.attribute_keys = sorted(set(meta.attribute_keys) | attribute_keys)
            self.index.save_meta(meta)
            self.cache.publish_generation(self.collection, meta.generation)
            if self.lease is not None:
                self.lease.publish_or_outlast(meta.generation)
        INDEX_GENERATION.set(meta.generation)
        return meta.generation

    def close(self) -> None:
        if self.lease is not None:
            self.lease.close()

    def attribute_keys(self) -> set[str]:
        return set(self.index.meta.attribute_keys)

    def refresh_gauges(self) -> None:
        INDEX_PRODUCTS.set(self.index.count())
        INDEX_DISK_BYTES.set(self.index.disk_bytes())
        INDEX_GENERATION.set(self.index.meta.generation)
