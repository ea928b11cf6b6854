"""Server/cluster backend: ``qdrant-client`` against a Qdrant server (``QDRANT_URL``).

The same schema as the embedded backend, plus what only a cluster has: shard
number, replication factor and write consistency. Collection metadata (model
version, generation, attribute keys) lives in Qdrant's own collection metadata,
so every replica of the ranking service sees the same values. Tests run this
code path against qdrant-client's local mode (``QdrantClient(":memory:")``),
which is a functional double, not a server (slow, no real payload indexes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from qdrant_client import QdrantClient, models

from services.ranking.index.base import IndexMeta
from services.ranking.index.schema import (
    ATTR_PREFIX,
    BM25_VECTOR,
    FLOAT_FIELDS,
    IMAGE_VECTOR,
    KEYWORD_FIELDS,
    MULTIVECTORS,
    VISUAL_DIM,
    VISUAL_VECTOR,
    RESULT_PAYLOAD,
    STOCK_IN,
    TEXT_VECTOR,
    Candidate,
    IndexedProduct,
    SearchFilter,
    SignalQuery,
    StoredProduct,
    attr_field,
    normalize_value,
    point_id,
)

log = logging.getLogger(__name__)

_META_KEY = "homesearch"


class ServerIndex:
    """A Qdrant collection reached through qdrant-client."""

    backend = "server"

    def __init__(
        self,
        client: QdrantClient,
        collection: str = "products",
        shards: int = 1,
        replicas: int = 1,
        write_consistency: int = 1,
        hnsw_ef: int = 128,
    ) -> None:
        self.client = client
        self.collection = collection
        self._shards = shards
        self._replicas = replicas
        self._write_consistency = write_consistency
        self._hnsw_ef = hnsw_ef
        self._lock = threading.RLock()
        self._indexed_fields: set[str] = set()
        self._closed = False
        self._meta = IndexMeta()
        if self.client.collection_exists(collection):
            info = self.client.get_collection(collection)
            self._meta = IndexMeta.from_dict((info.config.metadata or {}).get(_META_KEY, {}))
            self._indexed_fields = set((info.payload_schema or {}).keys())

    @classmethod
    def connect(cls, url: str, api_key: str | None = None, timeout_s: float = 10.0, **kwargs) -> "ServerIndex":
        if url in (":memory:",) or url.startswith("path:"):
            client = QdrantClient(location=":memory:") if url == ":memory:" else QdrantClient(path=url[5:])
        else:
            client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout_s), prefer_grpc=False)
        return cls(client, **kwargs)

    @property
    def meta(self) -> IndexMeta:
        return self._meta

    def save_meta(self, meta: IndexMeta) -> None:
        with self._lock:
            self.client.update_collection(self.collection, metadata={_META_KEY: meta.to_dict()})
            self._meta = IndexMeta.from_dict(meta.to_dict())

    def ensure_collection(self, dim: int) -> None:
        with self._lock:
            if not self.client.collection_exists(self.collection):
                self.client.create_collection(
                    self.collection,
                    vectors_config={
                        TEXT_VECTOR: models.VectorParams(size=dim, distance=models.Distance.COSINE),
                        IMAGE_VECTOR: models.VectorParams(
                            size=dim,
                            distance=models.Distance.COSINE,
                            multivector_config=models.MultiVectorConfig(
                                comparator=models.MultiVectorComparator.MAX_SIM
                            ),
                        ),
                        VISUAL_VECTOR: models.VectorParams(
                            size=VISUAL_DIM,
                            distance=models.Distance.COSINE,
                            multivector_config=models.MultiVectorConfig(
                                comparator=models.MultiVectorComparator.MAX_SIM
                            ),
                        ),
                    },
                    sparse_vectors_config={BM25_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                    shard_number=self._shards,
                    replication_factor=self._replicas,
                    write_consistency_factor=self._write_consistency,
                    metadata={_META_KEY: self._meta.to_dict()},
                )
                log.info("qdrant collection created", extra={"collection": self.collection, "dim": dim})
            for name in KEYWORD_FIELDS:
                self._ensure_field(name, models.PayloadSchemaType.KEYWORD)
            for name in FLOAT_FIELDS:
                self._ensure_field(name, models.PayloadSchemaType.FLOAT)

    def _ensure_field(self, name: str, schema: models.PayloadSchemaType) -> None:
        if name not in self._indexed_fields:
            self.client.create_payload_index(self.collection, name, field_schema=schema, wait=True)
            self._indexed_fields.add(name)

    def upsert(self, products: list[IndexedProduct]) -> None:
        if not products:
            return
        points = []
        for p in products:
            vector: dict = {
                TEXT_VECTOR: p.text_vector,
                BM25_VECTOR: models.SparseVector(indices=p.bm25.indices, values=p.bm25.values),
            }
            if p.image_vectors:
                vector[IMAGE_VECTOR] = p.image_vectors
            if p.visual_vectors:
                vector[VISUAL_VECTOR] = p.visual_vectors
            points.append(models.PointStruct(id=p.point_id, vector=vector, payload=p.payload))
        with self._lock:
            for p in products:
                for key in p.payload.get(ATTR_PREFIX, {}):
                    self._ensure_field(attr_field(key), models.PayloadSchemaType.KEYWORD)
        # wait=True: acknowledged only once applied, so a following Rank sees it.
        self.client.upsert(self.collection, points=points, wait=True)

    def delete(self, product_ids: list[str]) -> list[str]:
        existing = self.content_hashes(product_ids)
        if existing:
            self.client.delete(
                self.collection,
                points_selector=models.PointIdsList(points=[point_id(pid) for pid in existing]),
                wait=True,
            )
        return [pid for pid in product_ids if pid in existing]

    def content_hashes(self, product_ids: list[str]) -> dict[str, str]:
        if not product_ids or not self.client.collection_exists(self.collection):
            return {}
        records = self.client.retrieve(
            self.collection,
            ids=[point_id(pid) for pid in product_ids],
            with_payload=["product_id", "content_hash"],
            with_vectors=False,
        )
        return {r.payload["product_id"]: r.payload.get("content_hash", "") for r in records if r.payload}

    def search(self, queries: list[SignalQuery], flt: SearchFilter) -> list[list[Candidate]]:
        if not queries:
            return []
        if not self.client.collection_exists(self.collection):
            return [[] for _ in queries]
        qfilter = to_qdrant_filter(flt)
        params = models.SearchParams(hnsw_ef=self._hnsw_ef)
        requests = []
        for q in queries:
            if q.sparse is not None:
                vec = models.SparseVector(indices=q.sparse.indices, values=q.sparse.values)
            elif q.using in MULTIVECTORS:
                vec = [q.dense]
            else:
                vec = q.dense
            requests.append(
                models.QueryRequest(
                    query=vec,
                    using=q.using,
                    filter=qfilter,
                    limit=q.limit,
                    params=params,
                    with_payload=RESULT_PAYLOAD,
                    with_vector=False,
                )
            )
        # query_batch_points: every signal in one HTTP/gRPC round trip.
        responses = self.client.query_batch_points(self.collection, requests=requests)
        return [
            [Candidate(p.payload["product_id"], float(p.score), p.payload) for p in r.points if p.payload]
            for r in responses
        ]

    def search_merged(self, queries: list[SignalQuery],
                      flt: SearchFilter) -> tuple[list[SignalQuery], list[list[Candidate]]]:
        """One candidate list per signal (``merge_signal_lists`` over ``search``)."""
        from services.ranking.query import merge_signal_lists

        return merge_signal_lists(queries, self.search(queries, flt))

    def retrieve(self, product_ids: list[str], vectors: Sequence[str] | None = None) -> dict[str, StoredProduct]:
        if not product_ids or not self.client.collection_exists(self.collection):
            return {}
        records = self.client.retrieve(
            self.collection, ids=[point_id(pid) for pid in product_ids], with_payload=RESULT_PAYLOAD,
            with_vectors=True if vectors is None else list(vectors),
        )
        out = {}
        for r in records:
            if r.payload:
                vectors = r.vector if isinstance(r.vector, dict) else {}
                out[r.payload["product_id"]] = StoredProduct(r.payload["product_id"], r.payload, dict(vectors))
        return out

    def scroll(self, flt: SearchFilter, limit: int) -> list[dict]:
        if not self.client.collection_exists(self.collection):
            return []
        points, _next = self.client.scroll(
            self.collection, scroll_filter=to_qdrant_filter(flt), limit=limit, with_payload=RESULT_PAYLOAD, with_vectors=False
        )
        return [p.payload for p in points if p.payload]

    def facet(self, key: str, flt: SearchFilter, limit: int) -> list[tuple[str, int]]:
        """Qdrant's facet API (exact counts)."""
        if not self.client.collection_exists(self.collection):
            return []
        res = self.client.facet(self.collection, key, facet_filter=to_qdrant_filter(flt), limit=limit, exact=True)
        return [(str(h.value), int(h.count)) for h in res.hits]

    def count_matching(self, flt: SearchFilter) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return int(self.client.count(self.collection, count_filter=to_qdrant_filter(flt), exact=True).count)

    def optimize(self) -> bool:
        """A Qdrant server optimises in the background; nothing to do here."""
        return False

    def count(self) -> int:
        if self._closed or not self.client.collection_exists(self.collection):
            return 0
        return int(self.client.count(self.collection, exact=True).count)

    def disk_bytes(self) -> int:
        return -1

    def flush(self) -> None:
        """Server writes are acknowledged with wait=True; nothing to flush client-side."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.client.close()


def to_qdrant_filter(flt: SearchFilter) -> models.Filter | None:
    if flt.is_empty():
        return None
    must: list = []
    must_not: list = []
    if flt.categories:
        must.append(
            models.FieldCondition(
                key="category_key", match=models.MatchAny(any=sorted({normalize_value(c) for c in flt.categories}))
            )
        )
    for key, value in sorted(flt.attributes.items()):
        must.append(models.FieldCondition(key=attr_field(key), match=models.MatchValue(value=normalize_value(value))))
    if flt.min_price is not None or flt.max_price is not None or flt.below_price is not None:
        must.append(
            models.FieldCondition(
                key="price", range=models.Range(gte=flt.min_price, lte=flt.max_price, lt=flt.below_price)
            )
        )
    if flt.in_stock_only:
        must.append(models.FieldCondition(key="stock", match=models.MatchValue(value=STOCK_IN)))
    if flt.exclude_ids:
        must_not.append(models.HasIdCondition(has_id=[point_id(pid) for pid in flt.exclude_ids]))
    if flt.exclude_categories:
        cats = sorted({normalize_value(c) for c in flt.exclude_categories})
        must_not.append(models.FieldCondition(key="category_key", match=models.MatchAny(any=cats)))
    return models.Filter(must=must or None, must_not=must_not or None)
