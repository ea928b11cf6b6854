"""Embedded backend: Qdrant Edge (the Qdrant engine in-process), persistent on disk.

Layout under ``data_dir/<collection>/``: ``shard/`` (Qdrant segments + WAL) and
``meta.json`` (collection metadata, replaced atomically). Edge has no
collection-metadata API of its own, and a sidecar file written with
rename-over keeps the shard format identical to the server's.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import qdrant_edge as qe

from services.ranking.index.base import IndexMeta
from services.ranking.index.payload_cache import DEFAULT_MAX_ENTRIES, PayloadCache
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
from services.ranking.metrics import CACHE_REQUESTS

log = logging.getLogger(__name__)


class EdgeIndex:
    """Qdrant Edge shard + sidecar metadata. Writes are serialised; reads run concurrently."""

    backend = "edge"

    def __init__(
        self,
        data_dir: str | os.PathLike,
        collection: str = "products",
        hnsw_ef: int = 128,
        optimize_delay_s: float | None = 2.0,
        payload_cache_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.root = Path(data_dir) / collection
        self.root.mkdir(parents=True, exist_ok=True)
        self._shard_dir = self.root / "shard"
        self._meta_path = self.root / "meta.json"
        self._hnsw_ef = hnsw_ef
        self._write_lock = threading.RLock()
        self._closed = False
        self._indexed_fields: set[str] = set()
        self._meta = self._load_meta()
        self._shard: qe.EdgeShard | None = None
        # Qdrant Edge has no background optimiser: without optimize() new points stay in
        # unindexed segments and every query scans them. Writes schedule one debounced run.
        self._optimizer = _DebouncedOptimizer(self.optimize, optimize_delay_s)
        # payloads of recently returned points, emptied by every write (payload_cache.py)
        self._payloads = PayloadCache(payload_cache_entries)
        if (self._shard_dir / "edge_config.json").exists():
            self._shard = qe.EdgeShard.load(str(self._shard_dir))
            self._indexed_fields = set(self._shard.info().payload_schema.keys())
            log.info("edge index opened", extra={"path": str(self._shard_dir), "products": self.count()})
            self._optimizer.schedule()  # a crash may have left writes unoptimised

    # -- metadata -------------------------------------------------------------------------
    @property
    def meta(self) -> IndexMeta:
        return self._meta

    def _load_meta(self) -> IndexMeta:
        if self._meta_path.exists():
            return IndexMeta.from_dict(json.loads(self._meta_path.read_text()))
        return IndexMeta()

    def save_meta(self, meta: IndexMeta) -> None:
        tmp = self._meta_path.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            json.dump(meta.to_dict(), f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._meta_path)  # atomic: readers see old or new, never half
        self._meta = IndexMeta.from_dict(meta.to_dict())

    # -- schema ---------------------------------------------------------------------------
    def ensure_collection(self, dim: int) -> None:
        with self._write_lock:
            if self._shard is None:
                config = qe.EdgeConfig(
                    vectors={
                        TEXT_VECTOR: qe.EdgeVectorParams(dim, qe.Distance.Cosine),
                        IMAGE_VECTOR: qe.EdgeVectorParams(
                            dim,
                            qe.Distance.Cosine,
                            multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                        ),
                        VISUAL_VECTOR: qe.EdgeVectorParams(
                            VISUAL_DIM,
                            qe.Distance.Cosine,
                            multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                        ),
                    },
                    sparse_vectors={BM25_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
                    hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=128, full_scan_threshold=10000),
                )
                self._shard = qe.EdgeShard.create(str(self._shard_dir), config)
                log.info("edge index created", extra={"path": str(self._shard_dir), "dim": dim})
            for name in KEYWORD_FIELDS:
                self._ensure_field(name, qe.PayloadSchemaType.Keyword)
            for name in FLOAT_FIELDS:
                self._ensure_field(name, qe.PayloadSchemaType.Float)

    def _ensure_field(self, name: str, schema: qe.PayloadSchemaType) -> None:
        if name not in self._indexed_fields:
            self._require().update(qe.UpdateOperation.create_field_index(name, schema))
            self._indexed_fields.add(name)

    def _require(self) -> qe.EdgeShard:
        if self._shard is None or self._closed:
            raise RuntimeError("edge index is not open (ensure_collection not called or closed)")
        return self._shard

    # -- writes ---------------------------------------------------------------------------
    def upsert(self, products: list[IndexedProduct]) -> None:
        if not products:
            return
        points = []
        for p in products:
            vector: dict = {
                TEXT_VECTOR: p.text_vector,
                BM25_VECTOR: qe.SparseVector(p.bm25.indices, p.bm25.values),
            }
            if p.image_vectors:
                vector[IMAGE_VECTOR] = p.image_vectors
            if p.visual_vectors:
                vector[VISUAL_VECTOR] = p.visual_vectors
            points.append(qe.Point(p.point_id, vector, p.payload))
        with self._write_lock:
            shard = self._require()
            for p in products:
                for key in p.payload.get(ATTR_PREFIX, {}):
                    self._ensure_field(attr_field(key), qe.PayloadSchemaType.Keyword)
            # One operation: each point (= whole product) is applied atomically via the WAL.
            with self._payloads.writing():
                shard.update(qe.UpdateOperation.upsert_points(points))
        self._optimizer.schedule()

    def delete(self, product_ids: list[str]) -> list[str]:
        if not product_ids:
            return []
        with self._write_lock:
            existing = self.content_hashes(product_ids)
            if existing:
                ids = [point_id(pid) for pid in existing]
                with self._payloads.writing():
                    self._require().update(qe.UpdateOperation.delete_points(ids))
                self._optimizer.schedule()
        return [pid for pid in product_ids if pid in existing]

    def optimize(self) -> bool:
        """Builds HNSW/payload indexes for pending segments; True if there was work.

        The binding holds the GIL for the whole run, so searches in this process pause
        meanwhile (about 1 s per 4k new 384-d vectors on 2 cores). That is why writes
        only schedule it after a quiet period instead of running it per batch.
        """
        with self._write_lock:
            if self._shard is None or self._closed:
                return False
            start = time.perf_counter()
            worked = bool(self._shard.optimize())
        if worked:
            log.info(
                "edge index optimised",
                extra={"seconds": round(time.perf_counter() - start, 3), "products": self.count()},
            )
        return worked

    def flush(self) -> None:
        with self._write_lock:
            if self._shard is not None and not self._closed:
                self._shard.flush()

    # -- reads ----------------------------------------------------------------------------
    def content_hashes(self, product_ids: list[str]) -> dict[str, str]:
        if not product_ids or self._shard is None:
            return {}
        records = self._require().retrieve(
            [point_id(pid) for pid in product_ids],
            qe.PayloadSelector.Include(["product_id", "content_hash"]),
            False,
        )
        return {pl["product_id"]: pl.get("content_hash", "") for r in records if (pl := r.payload)}

    def search(self, queries: list[SignalQuery], flt: SearchFilter) -> list[list[Candidate]]:
        if not queries:
            return []
        if self._shard is None:
            return [[] for _ in queries]
        # One planned batch = one round trip into the engine for every signal.
        results = self._require().query_batch(self._batch(queries, flt, with_payload=True))
        return [_candidates(res) for res in results]

    def search_merged(self, queries: list[SignalQuery],
                      flt: SearchFilter) -> tuple[list[SignalQuery], list[list[Candidate]]]:
        """Exactly ``merge_signal_lists(queries, self.search(queries, flt))``, in one batch.

        Why: reading a hit's payload into Python costs ~30 us; a photo query's 52 ``visual``
        searches x 50 hits spent ~60-90 ms on payloads of which 50 survive the merge, and a text
        query's three signals (text, lexical, text->photo) read 150 payloads for ~80 distinct
        products. Every search runs without payloads; a signal's searches merge by point (best
        score, first seen on ties, as ``merge_signal_lists``), cut to its limit, and the payloads
        of the points kept by any signal are read once (one ``retrieve`` for the whole query),
        or not at all when an earlier query read them since the last write (``PayloadCache``).
        A product found by several signals or queries shares one payload dict (nothing
        downstream writes to a candidate's payload)."""
        if not queries:
            return [], []
        groups: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            groups.setdefault(q.signal, []).append(i)
        if self._shard is None:
            return [queries[g[0]] for g in groups.values()], [[] for _ in groups]
        shard = self._require()
        results = shard.query_batch(self._batch(queries, flt, with_payload=False))
        out_q: list[SignalQuery] = []
        kept: list[list[tuple]] = []
        for rows in groups.values():
            q = queries[rows[0]]
            out_q.append(q)
            best: dict = {}
            for i in rows:
                for p in results[i]:
                    key, score = p.id, float(p.score)
                    if key not in best or score > best[key]:
                        best[key] = score
            kept.append(sorted(best.items(), key=lambda kv: -kv[1])[: q.limit])
        wanted = list(dict.fromkeys(k for top in kept for k, _ in top))
        epoch = self._payloads.epoch()  # before reading: a write from here on voids what we read
        payloads = self._payloads.get_many(wanted)
        missing = [k for k in wanted if k not in payloads]
        if self._payloads.enabled and wanted:
            CACHE_REQUESTS.labels("payload", "hit").inc(len(payloads))
            CACHE_REQUESTS.labels("payload", "miss").inc(len(missing))
        if missing:
            records = shard.retrieve(missing, qe.PayloadSelector.Include(RESULT_PAYLOAD), False)
            fresh = {r.id: pl for r in records if (pl := r.payload)}  # one conversion per record
            self._payloads.put_many(epoch, fresh)
            payloads.update(fresh)
        out_r = [[Candidate(pl["product_id"], score, pl) for k, score in top if (pl := payloads.get(k))]
                 for top in kept]
        return out_q, out_r

    def _batch(self, queries: list[SignalQuery], flt: SearchFilter, with_payload: bool) -> qe.QueryBatchRequest:
        qfilter = to_edge_filter(flt)
        params = qe.SearchParams(hnsw_ef=self._hnsw_ef)
        requests = []
        selector = qe.PayloadSelector.Include(RESULT_PAYLOAD) if with_payload else False
        for q in queries:
            if q.sparse is not None:
                vec = qe.SparseVector(q.sparse.indices, q.sparse.values)
            elif q.using in MULTIVECTORS:
                vec = [q.dense]  # multivector field: a one-row query multivector
            else:
                vec = q.dense
            requests.append(
                qe.QueryRequest(
                    limit=q.limit,
                    query=qe.Query.Nearest(vec, using=q.using),
                    filter=qfilter,
                    params=params,
                    with_payload=selector,
                    with_vector=False,
                )
            )
        return qe.QueryBatchRequest(requests)

    def retrieve(self, product_ids: list[str], vectors: Sequence[str] | None = None) -> dict[str, StoredProduct]:
        if not product_ids or self._shard is None:
            return {}
        records = self._require().retrieve([point_id(pid) for pid in product_ids], qe.PayloadSelector.Include(RESULT_PAYLOAD),
                                           True if vectors is None else list(vectors))
        out = {}
        for r in records:
            payload = r.payload  # each access converts the whole payload to Python: read it once
            if payload:
                out[payload["product_id"]] = StoredProduct(payload["product_id"], payload, dict(r.vector or {}))
        return out

    def scroll(self, flt: SearchFilter, limit: int) -> list[dict]:
        if self._shard is None:
            return []
        points, _next = self._require().scroll(
            qe.ScrollRequest(limit=limit, filter=to_edge_filter(flt), with_payload=qe.PayloadSelector.Include(RESULT_PAYLOAD), with_vector=False)
        )
        return [pl for p in points if (pl := p.payload)]

    def facet(self, key: str, flt: SearchFilter, limit: int) -> list[tuple[str, int]]:
        if self._shard is None:
            return []
        res = self._require().facet(qe.FacetRequest(key, limit=limit, exact=True, filter=to_edge_filter(flt)))
        return [(str(h.value), int(h.count)) for h in res.hits]

    def count_matching(self, flt: SearchFilter) -> int:
        if self._shard is None:
            return 0
        return int(self._require().count(qe.CountRequest(exact=True, filter=to_edge_filter(flt))))

    def count(self) -> int:
        if self._shard is None or self._closed:
            return 0
        return int(self._shard.info().points_count)

    def disk_bytes(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.stat(os.path.join(dirpath, name)).st_blocks * 512
                except OSError:
                    pass
        return total

    def close(self) -> None:
        self._optimizer.cancel()
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._payloads.invalidate()
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
                log.info("edge index closed", extra={"path": str(self._shard_dir)})


def _candidates(points) -> list[Candidate]:
    out = []
    for p in points:
        pl = p.payload  # each read converts the whole payload: once per hit
        if pl:
            out.append(Candidate(pl["product_id"], float(p.score), pl))
    return out


class _DebouncedOptimizer:
    """Runs ``optimize`` once writes have been quiet for ``delay_s`` (None disables)."""

    def __init__(self, optimize: Callable[[], bool], delay_s: float | None) -> None:
        self._optimize = optimize
        self._delay_s = delay_s
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def schedule(self) -> None:
        if self._delay_s is None:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._delay_s, self._run)
            self._timer.daemon = True
            self._timer.start()

    def _run(self) -> None:
        try:
            self._optimize()
        except Exception:  # noqa: BLE001 - an optimiser failure must not kill the service
            log.exception("edge index optimisation failed")

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


def to_edge_filter(flt: SearchFilter) -> qe.Filter | None:
    if flt.is_empty():
        return None
    must: list = []
    must_not: list = []
    if flt.categories:
        must.append(
            qe.FieldCondition("category_key", match=qe.MatchAny(sorted({normalize_value(c) for c in flt.categories})))
        )
    for key, value in sorted(flt.attributes.items()):
        must.append(qe.FieldCondition(attr_field(key), match=qe.MatchValue(normalize_value(value))))
    if flt.min_price is not None or flt.max_price is not None or flt.below_price is not None:
        must.append(
            qe.FieldCondition("price", range=qe.RangeFloat(gte=flt.min_price, lte=flt.max_price, lt=flt.below_price))
        )
    if flt.in_stock_only:
        must.append(qe.FieldCondition("stock", match=qe.MatchValue(STOCK_IN)))
    if flt.exclude_ids:
        must_not.append(qe.HasIdCondition({point_id(pid) for pid in flt.exclude_ids}))
    if flt.exclude_categories:
        cats = sorted({normalize_value(c) for c in flt.exclude_categories})
        must_not.append(qe.FieldCondition("category_key", match=qe.MatchAny(cats)))
    return qe.Filter(must=must or None, must_not=must_not or None)
