"""RankingService: Rank (embed -> one index round trip -> fusion) and IndexInfo."""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid

import grpc

from homesearch.encoders.client import EncoderUnavailableError, InvalidInputError
from homesearch.logging import request_id_var
from homesearch.ranking.cache import RedisCache
from homesearch.ranking.config import RankingSettings
from homesearch.ranking.fusion import FusedHit, fuse_rrf, fuse_weighted
from homesearch.ranking.generation import CatalogState
from homesearch.ranking.index.schema import SearchFilter, normalize_attr_key
from homesearch.ranking.metrics import STAGE_SECONDS
from homesearch.ranking.query import IMAGE, LEXICAL, TEXT, QueryEncoder, plan_query
from homesearch.v1 import ranking_pb2, ranking_pb2_grpc, search_pb2

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 10


def merge_signal_lists(queries: list, results: list[list]) -> dict[str, list]:
    """Candidates per signal; several searches of one signal (the crops of a photo query) merge
    into one list keeping each product's best score, best first."""
    lists: dict[str, list] = {}
    for q, r in zip(queries, results):
        if q.signal not in lists:
            lists[q.signal] = list(r)
            continue
        best = {c.product_id: c for c in lists[q.signal]}
        for c in r:
            if c.product_id not in best or c.score > best[c.product_id].score:
                best[c.product_id] = c
        lists[q.signal] = sorted(best.values(), key=lambda c: -c.score)[: q.limit]
    return lists


class RequestError(ValueError):
    """A request the caller must fix (INVALID_ARGUMENT)."""


def canonical_request(req: search_pb2.SearchRequest) -> bytes:
    """Deterministic bytes of everything that changes the ranked result (cache key input).

    Per-call fields (request_id, no_cache) are dropped, set-like lists sorted and
    the image replaced by its digest, so equal searches share one cache entry.
    """
    c = search_pb2.SearchRequest()
    c.CopyFrom(req)
    c.request_id = ""
    c.no_cache = False
    if c.image:
        c.image = hashlib.sha256(req.image).digest()
    c.top_k = c.top_k or DEFAULT_TOP_K
    cats = sorted(set(c.filter.categories))
    del c.filter.categories[:]
    c.filter.categories.extend(cats)
    excl = sorted(set(c.filter.exclude_ids))
    del c.filter.exclude_ids[:]
    c.filter.exclude_ids.extend(excl)
    return c.SerializeToString(deterministic=True)


class RankingServicer(ranking_pb2_grpc.RankingServiceServicer):
    def __init__(
        self,
        settings: RankingSettings,
        state: CatalogState,
        query_encoder: QueryEncoder,
        cache: RedisCache,
    ) -> None:
        self.settings = settings
        self.state = state
        self.encoder = query_encoder
        self.cache = cache

    # -- validation -----------------------------------------------------------------------
    def _validate(self, req: search_pb2.SearchRequest) -> SearchFilter:
        s = self.settings
        if not req.text.strip() and not req.image:
            raise RequestError("request needs text, an image, or both")
        if len(req.text) > s.max_text_chars:
            raise RequestError(f"text longer than {s.max_text_chars} characters")
        if len(req.image) > s.max_image_bytes:
            raise RequestError(f"image larger than {s.max_image_bytes} bytes")
        if not 0 <= req.top_k <= s.max_top_k:
            raise RequestError(f"top_k must be within 1..{s.max_top_k} (0 = default {DEFAULT_TOP_K})")
        if not 0 <= req.offset <= s.max_offset:
            raise RequestError(f"offset must be within 0..{s.max_offset}")
        fz = req.fusion
        for name in ("text_weight", "image_weight", "lexical_weight"):
            w = getattr(fz, name)
            if not math.isfinite(w) or w < 0:
                raise RequestError(f"fusion.{name} must be a finite non-negative number")
        if not math.isfinite(req.score_threshold):
            raise RequestError("score_threshold must be finite")
        f = req.filter
        if f.HasField("min_price") and f.HasField("max_price") and f.min_price > f.max_price:
            raise RequestError("filter.min_price is greater than filter.max_price")
        known = self.state.attribute_keys()
        attributes: dict[str, str] = {}
        for key, value in f.attributes.items():
            nk = normalize_attr_key(key)
            if nk not in known:
                raise RequestError(
                    f"unknown attribute filter key {key!r}; known keys: {', '.join(sorted(known)) or '(none)'}"
                )
            attributes[nk] = value
        return SearchFilter(
            categories=[c for c in f.categories if c.strip()],
            attributes=attributes,
            min_price=f.min_price if f.HasField("min_price") else None,
            max_price=f.max_price if f.HasField("max_price") else None,
            in_stock_only=f.in_stock_only,
            exclude_ids=list(f.exclude_ids),
        )

    def _weights(self, req: search_pb2.SearchRequest, kind: str) -> tuple[str, dict[str, float]]:
        d = self.settings.fusion
        fz = req.fusion
        method = {search_pb2.Fusion.WEIGHTED: "weighted", search_pb2.Fusion.RRF: "rrf"}.get(fz.method, d.method)
        if fz.text_weight or fz.image_weight or fz.lexical_weight:
            return method, {TEXT: fz.text_weight, IMAGE: fz.image_weight, LEXICAL: fz.lexical_weight}
        if kind == "image":
            return method, {TEXT: d.image_query_text_weight, IMAGE: d.image_query_image_weight, LEXICAL: 0.0}
        if kind == "image+text":
            return method, {
                TEXT: d.mixed_query_text_weight,
                IMAGE: d.mixed_query_image_weight,
                LEXICAL: d.mixed_query_lexical_weight,
            }
        return method, {TEXT: d.text_weight, IMAGE: d.image_weight, LEXICAL: d.lexical_weight}

    # -- RPCs -----------------------------------------------------------------------------
    def Rank(self, request: search_pb2.SearchRequest, context: grpc.ServicerContext) -> search_pb2.SearchResponse:
        started = time.perf_counter()
        request_id = request.request_id or request_id_var.get() or uuid.uuid4().hex[:16]
        try:
            flt = self._validate(request)
        except RequestError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            model_version = self.encoder.model_version()
            generation = self.state.generation()
            cache_key = None
            if not request.no_cache:
                cache_key = self.cache.result_key(self.state.collection, generation, canonical_request(request))
                cached = self.cache.get_result(cache_key)
                if cached is not None:
                    resp = search_pb2.SearchResponse.FromString(cached)
                    resp.cache_hit = True
                    resp.request_id = request_id
                    resp.took_ms = (time.perf_counter() - started) * 1000
                    return resp
            resp = self._rank(request, flt, model_version, generation)
            if cache_key is not None:
                self.cache.put_result(cache_key, resp.SerializeToString())
        except InvalidInputError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"query input rejected by the encoder: {exc}")
        except EncoderUnavailableError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"encoders unavailable: {exc}")
        resp.request_id = request_id
        resp.took_ms = (time.perf_counter() - started) * 1000
        log.info(
            "rank",
            extra={
                "kind": "image+text" if request.text and request.image else ("image" if request.image else "text"),
                "hits": len(resp.hits),
                "took_ms": round(resp.took_ms, 2),
                "language": resp.query_language,
            },
        )
        return resp

    def _rank(
        self, req: search_pb2.SearchRequest, flt: SearchFilter, model_version: str, generation: int
    ) -> search_pb2.SearchResponse:
        d = self.settings.fusion
        top_k = req.top_k or DEFAULT_TOP_K
        need = req.offset + top_k
        limit = max(d.min_candidates, d.candidate_factor * need)
        t0 = time.perf_counter()
        plan = plan_query(
            text=req.text,
            image=req.image,
            encoder=self.encoder,
            model_version=model_version,
            catalog_language=self.state.meta.catalog_language or self.settings.catalog_language,
            limit=limit,
            mix_text_share=d.mix_text_share,
            locale=req.locale,
        )
        t1 = time.perf_counter()
        results = self.state.index.search(plan.queries, flt)
        t2 = time.perf_counter()
        lists = merge_signal_lists(plan.queries, results)
        method, weights = self._weights(req, plan.kind)
        if method == "rrf":
            fused = fuse_rrf(lists, weights, k=d.rrf_k)
        else:
            # Products without photos are ranked on their other signals for text queries; for a
            # photo-only query they cannot match what was asked, so they keep the pool minimum.
            no_photo = (
                set()
                if plan.kind == "image"
                else {c.product_id for r in results for c in r if not c.payload.get("n_images")}
            )
            fused = fuse_weighted(
                lists,
                weights,
                method=d.normalization,
                unavailable={IMAGE: no_photo},
                methods={LEXICAL: d.lexical_normalization},
            )
        if req.score_threshold:
            fused = [h for h in fused if h.score >= req.score_threshold]
        page = fused[req.offset : req.offset + top_k]
        t3 = time.perf_counter()
        STAGE_SECONDS.labels("embed").observe(t1 - t0)
        STAGE_SECONDS.labels("index").observe(t2 - t1)
        STAGE_SECONDS.labels("fusion").observe(t3 - t2)
        resp = search_pb2.SearchResponse(
            model_version=model_version,
            query_language=plan.language,
            index_generation=generation,
        )
        for h in page:
            resp.hits.append(self._hit(h, req.explain, plan.explanation, method, weights))
        return resp

    @staticmethod
    def _hit(h: FusedHit, explain: bool, explanation: str, method: str, weights: dict[str, float]) -> search_pb2.Hit:
        p = h.payload
        hit = search_pb2.Hit(
            product_id=h.product_id,
            score=h.score,
            title=p.get("title", ""),
            category=p.get("category", ""),
            image_uri=p.get("image_uri", ""),
        )
        if p.get("price") is not None:
            hit.price = float(p["price"])
        if explain:
            for signal, raw in h.raw.items():
                hit.signal_scores[signal] = raw
            for signal, n in h.normalized.items():
                hit.signal_scores[f"{signal}_norm"] = n
            wtxt = ", ".join(f"{s}={w:g}" for s, w in weights.items() if w > 0)
            parts = [explanation] if explanation else []
            parts.append(f"fusion {method} ({wtxt})")
            missing = [s for s, w in weights.items() if w > 0 and s not in h.raw]
            if missing:
                parts.append("not a candidate for: " + ", ".join(missing))
            hit.explanation = "; ".join(parts)
        return hit

    def IndexInfo(self, request: ranking_pb2.IndexInfoRequest, context: grpc.ServicerContext):
        index = self.state.index
        return ranking_pb2.IndexInfoResponse(
            products=index.count(),
            model_version=index.meta.model_version,
            index_generation=self.state.generation(),
            attribute_keys=sorted(self.state.attribute_keys()),
            backend=index.backend,
            disk_bytes=index.disk_bytes(),
        )

