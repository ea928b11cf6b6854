"""RankingService: Rank (embed -> one index round trip -> fusion) and IndexInfo."""

from __future__ import annotations

import logging
import time

import grpc
import numpy as np

from homesearch.rpc.admission import Admission, Refused, Ticket, abort_refused
from services.encoders.client import EncoderUnavailableError, InvalidInputError
from homesearch.observability.logging import request_id_var
from services.ranking.cache import RedisCache
from services.ranking.config import RankingSettings
from services.ranking.composed import Reference, find_siblings, rerank
from services.ranking.composed import describe as describe_composed
from services.ranking.facets import compute_facets, wants_facets
from services.ranking.fusion import FusedHit, fuse_rrf, fuse_weighted
from services.ranking.generation import CatalogState
from services.encoders.models.scene_windows import SCENE_SIZE, scene_boxes
from services.ranking.index.schema import (
    IMAGE_VECTOR,
    TEXT_VECTOR,
    VISUAL_VECTOR,
    Candidate,
    SearchFilter,
    SignalQuery,
    normalize_attr_key,
)
from services.ranking.metrics import ADMISSION_REFUSED, DEGRADED_ANSWERS, STAGE_SECONDS
from services.ranking.journey_checks import journey_field_errors
from services.ranking.category_match import BOOST as CATEGORY_BOOST
from services.ranking.category_match import apply_category_boost
from services.ranking.language import detect_language
from services.ranking.modifiers import parse_modifiers
from services.ranking.colour_words import stated_colours
from services.ranking.material_words import query_labels, stated_labels
from services.ranking.photo_boost import BOOST as PHOTO_BOOST
from services.ranking.photo_boost import (
    MATERIAL_BOOST,
    apply_boost,
    apply_material_boost,
    describe_material,
    describe_photo,
    query_colours,
)
from services.ranking.query import COMPUTE_TICKET, IMAGE, LEXICAL, TEXT, VISUAL, QueryEncoder, QueryPlan, plan_query
from services.ranking import regions as regions_mod
from services.ranking.regions import RegionResult
from services.ranking.scene_search import HubBank, foreground_rows, load_type_centre, score_windows
from services.ranking.similar import photo_reference, scope_filter, scope_name, similar_plan
from homesearch.edge_cache import canonical_request  # noqa: F401 (shared with the gateway's cache)
from homesearch.v1 import ranking_pb2, ranking_pb2_grpc, search_pb2
from homesearch.validation import DEFAULT_TOP_K, RequestError, validate_request

log = logging.getLogger(__name__)

class ProductNotFoundError(LookupError):
    """similar_to_product_id names a product the index does not hold (NOT_FOUND)."""


class RankingServicer(ranking_pb2_grpc.RankingServiceServicer):
    def __init__(
        self,
        settings: RankingSettings,
        state: CatalogState,
        query_encoder: QueryEncoder,
        cache: RedisCache,
        admission: Admission | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.encoder = query_encoder
        self.cache = cache
        # Admission control for the expensive part of Rank only (see Rank); None = unguarded.
        self.admission = admission

    # -- validation -----------------------------------------------------------------------
    def _validate(self, req: search_pb2.SearchRequest) -> SearchFilter:
        """The shared request rules (``homesearch.validation``), then the index-aware ones."""
        validate_request(req, self.settings.limits())
        problem = journey_field_errors(req, lambda _keys: self.state.attribute_keys())
        if problem:
            raise RequestError(problem)
        f = req.filter
        known = self.state.attribute_keys()
        normalized = {k: normalize_attr_key(k) for k in f.attributes}
        unknown = sorted(k for k, nk in normalized.items() if nk not in known)
        if unknown:
            raise RequestError(
                f"unknown filter attribute key(s): {', '.join(unknown)}; "
                f"filterable keys: {', '.join(sorted(known)) or 'none'}"
            )
        attributes = {normalized[k]: v for k, v in f.attributes.items()}
        return SearchFilter(
            categories=[c for c in f.categories if c.strip()],
            attributes=attributes,
            min_price=f.min_price if f.HasField("min_price") else None,
            max_price=f.max_price if f.HasField("max_price") else None,
            in_stock_only=f.in_stock_only,
            exclude_ids=list(f.exclude_ids),
        )

    def _weights(self, req: search_pb2.SearchRequest, kind: str, visual: bool = False) -> tuple[str, dict[str, float]]:
        method, weights = self._base_weights(req, kind)
        if visual:
            # the caller's photo weight covers both photo signals (the public Fusion has no visual field)
            d, fz = self.settings.fusion, req.fusion
            explicit = fz.text_weight or fz.image_weight or fz.lexical_weight
            default = d.image_query_visual_weight if kind == "image" else d.mixed_query_visual_weight
            weights[VISUAL] = fz.image_weight if explicit else default
        return method, weights

    def _base_weights(self, req: search_pb2.SearchRequest, kind: str) -> tuple[str, dict[str, float]]:
        d = self.settings.fusion
        fz = req.fusion
        method = {search_pb2.Fusion.WEIGHTED: "weighted", search_pb2.Fusion.RRF: "rrf"}.get(fz.method, d.method)
        if fz.text_weight or fz.image_weight or fz.lexical_weight:
            return method, {TEXT: fz.text_weight, IMAGE: fz.image_weight, LEXICAL: fz.lexical_weight}
        if kind == "similar":
            return method, {TEXT: d.similar_text_weight, IMAGE: d.similar_image_weight, LEXICAL: 0.0}
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
        """Admission (``max_in_flight`` slots) covers only the work that costs CPU: computing a
        query embedding through Triton, and any image query (decode, scene check, regions). A
        result-cache hit (~1 ms) or a text query whose embedding is cached (~2-3 ms: index + fusion)
        takes no slot, so neither waits for nor is refused because of cache misses."""
        ticket = Ticket(self.admission, on_refuse=lambda: ADMISSION_REFUSED.labels("Rank").inc()) \
            if self.admission is not None else None
        token = COMPUTE_TICKET.set(ticket)
        try:
            return self._rank_call(request, context, ticket)
        except Refused as exc:
            abort_refused(context, exc)
        finally:
            COMPUTE_TICKET.reset(token)
            if ticket is not None:
                ticket.release()

    def _rank_call(self, request: search_pb2.SearchRequest, context: grpc.ServicerContext,
                   ticket: Ticket | None) -> search_pb2.SearchResponse:
        started = time.perf_counter()
        request_id = request_id_var.get()  # decided by the RequestIdInterceptor
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
            if ticket is not None and request.image:
                ticket.take()  # image decode / scene check / region crops cost CPU even when embeddings are cached
            try:
                resp = self._rank(request, flt, model_version, generation)
            except EncoderUnavailableError:
                stale = self._stale(cache_key, started, request_id)
                if stale is not None:
                    return stale
                raise
            if cache_key is not None and not resp.HasField("degraded"):
                self.cache.put_result(cache_key, resp.SerializeToString())
            elif resp.HasField("degraded"):
                # a full answer from a little while ago beats a partial one from now
                stale = self._stale(cache_key, started, request_id)
                if stale is not None:
                    return stale
                DEGRADED_ANSWERS.labels("partial").inc()
        except ProductNotFoundError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
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

    def _stale(self, cache_key: str | None, started: float, request_id: str) -> search_pb2.SearchResponse | None:
        """With the encoders down: a cached result within ``stale_result_max_age_s``, marked."""
        if cache_key is None or self.settings.stale_result_max_age_s <= 0:
            return None
        got = self.cache.get_result_aged(cache_key, allow_stale=True)
        if got is None:
            return None
        resp = search_pb2.SearchResponse.FromString(got[0])
        resp.cache_hit = True
        resp.degraded.stale = True
        resp.degraded.stale_age_s = got[1]
        resp.degraded.reason = "encoders unavailable; cached result"
        resp.request_id = request_id
        resp.took_ms = (time.perf_counter() - started) * 1000
        DEGRADED_ANSWERS.labels("stale").inc()
        return resp

    def _rank(
        self, req: search_pb2.SearchRequest, flt: SearchFilter, model_version: str, generation: int
    ) -> search_pb2.SearchResponse:
        d = self.settings.fusion
        top_k = req.top_k or DEFAULT_TOP_K
        need = req.offset + top_k
        limit = max(d.min_candidates, d.candidate_factor * need)
        index = self.state.index
        notes: list[str] = []
        reference: Reference | None = None
        if req.similar_to_product_id:
            reference = self._reference_by_id(req.similar_to_product_id)
            flt = scope_filter(flt, reference.payload, req.similar_scope)
            notes.append(f"similar to {reference.product_id} ({scope_name(req.similar_scope)})")
        composed = bool(req.text.strip()) and (bool(req.image) or reference is not None)
        t0 = time.perf_counter()
        regions: list[RegionResult] | None = None
        use_regions = bool(req.image) and not composed and self._use_regions(req)
        if reference is not None:
            plan = similar_plan(reference, limit)
        elif use_regions:
            plan = QueryPlan(queries=[], kind="regions")
        elif composed:
            # The photo gives the identity; the text is read as modifiers, not embedded.
            plan = self._plan(req, text="", limit=limit, model_version=model_version)
        else:
            plan = self._plan(req, text=req.text, limit=limit, model_version=model_version)
        if reference is None and not use_regions and not plan.queries:
            # encoders down and nothing lexical to search on
            raise EncoderUnavailableError("encoders unavailable and the query has no searchable terms")
        t1 = time.perf_counter()
        if use_regions:
            regions, fused, note = self._search_regions(req, flt, model_version, need)
            notes.append(note)
            method, weights = "regions", {}
            if req.region_mode == search_pb2.REGION_MODE_UNSPECIFIED:  # auto: maybe one product
                fused, note = self._one_product_first(req, flt, model_version, limit, fused)
                if note:
                    notes.append(note)
            t2 = time.perf_counter()
        else:
            plan.queries, results = index.search_merged(plan.queries, flt)
            t2 = time.perf_counter()
            plain = not composed and reference is None  # a text or photo query of its own
            visual_weight, note = self._unmatched_photo(req, plan, results) if plain else (None, "")
            if note:
                notes.append(note)
            method, weights, fused = self._fuse(req, plan, results, visual_weight)
            if plain:
                fused, note = self._photo_boost(req, method, weights, fused)
                if note:
                    notes.append(note)
                fused, note = self._category_boost(plan, method, weights, fused)
                if note:
                    notes.append(note)
        if composed:
            if reference is None:
                reference = photo_reference(plan, results)
            mods = parse_modifiers(req.text).without_identity(reference.payload) if reference is not None else None
            if mods is None or (mods.is_empty() and not req.similar_to_product_id):
                # The text only names what the photo shows ("sofa"): ordinary image+text fusion.
                plan = self._plan(req, text=req.text, limit=limit, model_version=model_version)
                plan.queries, results = index.search_merged(plan.queries, flt)
                method, weights, fused = self._fuse(req, plan, results)
                notes.append("text asks for no change to the pictured product: image+text fusion")
            else:
                siblings = find_siblings(index, reference, flt)
                fused = rerank(fused, reference, siblings, mods)
                notes.append(describe_composed(reference, mods, len(siblings)))
                method = f"composed over {method}"
        if req.score_threshold:
            fused = [h for h in fused if h.score >= req.score_threshold]
        page = fused[req.offset : req.offset + top_k]
        t3 = time.perf_counter()
        STAGE_SECONDS.labels("embed").observe(t1 - t0)
        STAGE_SECONDS.labels("index").observe(t2 - t1)
        STAGE_SECONDS.labels("fusion").observe(t3 - t2)
        resp = search_pb2.SearchResponse(
            model_version=model_version,
            # a composed query's text is read as modifiers, not embedded: still report its language
            query_language=plan.language or (detect_language(req.text) if composed else ""),
            index_generation=generation,
        )
        notes = [*plan.notes, *notes]
        explanation = "; ".join([plan.explanation, *notes] if plan.explanation else notes)
        for h in page:
            resp.hits.append(self._hit(h, req.explain, explanation, method, weights))
        for r in regions or ():
            group = resp.regions.add(box=search_pb2.BoundingBox(x_min=r.box[0], y_min=r.box[1], x_max=r.box[2], y_max=r.box[3]), score=r.score)
            for h in r.hits[:top_k]:
                group.hits.append(self._hit(h, req.explain, "", "region", {}))
        if wants_facets(req.facets):
            resp.facets.extend(compute_facets(index, flt, req.facets))
        if req.explain:
            resp.interpretation = explanation
        if plan.missing:
            resp.degraded.missing_signals.extend(plan.missing)
            resp.degraded.reason = "encoders unavailable: ranked on the remaining signals"
        return resp

    def _plan(self, req: search_pb2.SearchRequest, *, text: str, limit: int, model_version: str) -> QueryPlan:
        d = self.settings.fusion
        return plan_query(
            text=text,
            image=req.image,
            encoder=self.encoder,
            model_version=model_version,
            catalog_language=self.state.meta.catalog_language or self.settings.catalog_language,
            limit=limit,
            mix_text_share=d.mix_text_share,
            locale=req.locale,
            degrade=True,
            photo_regions=self._photo_regions(req),
        )

    def _use_regions(self, req: search_pb2.SearchRequest) -> bool:
        if req.region_mode == search_pb2.REGION_MODE_ON:
            return True
        if req.region_mode == search_pb2.REGION_MODE_OFF:
            return False
        try:
            return regions_mod.scene_like(req.image)
        except Exception:  # noqa: BLE001 - undecodable: the encoder reports it precisely
            return False

    def _photo_regions(self, req: search_pb2.SearchRequest) -> bool:
        """Whether a photo query's visual rows include the 448 px regions: always, unless
        ``regions.packshot_regions`` is off and the photo is a packshot (not scene-like)."""
        if not req.image or self.settings.regions.packshot_regions:
            return True
        try:
            return regions_mod.scene_like(req.image)
        except Exception:  # noqa: BLE001 - undecodable: the encoder reports it precisely
            return True

    def _search_regions(
        self, req: search_pb2.SearchRequest, flt: SearchFilter, model_version: str, need: int
    ) -> tuple[list[RegionResult], list[FusedHit], str]:
        """Proposes regions, embeds each crop, searches all of them in one index batch, merges."""
        rs = self.settings.regions
        try:
            im = regions_mod.decode(req.image)
        except Exception as exc:  # noqa: BLE001
            raise InvalidInputError(f"image could not be decoded for region search: {exc}") from None
        if rs.vector in ("scene", "auto") and self.encoder.has_visual():
            return self._search_scene(req, flt, model_version, need, im)
        if rs.vector == "visual" and self.encoder.has_visual():
            # one 448 px pass: the photo's regional visual rows instead of one encoder pass per crop
            rows = self.encoder.image_visual(req.image, model_version)[1]
            boxes = [(0.0, 0.0, 1.0, 1.0), *regions_mod.visual_region_boxes(*im.size)]
            if len(boxes) != len(rows) - 1:
                raise RuntimeError(f"visual rows ({len(rows)}) do not match the region layout ({len(boxes)} boxes)")
            vecs, using = [rows[0], *rows[2:]], VISUAL_VECTOR
        else:
            boxes = regions_mod.window_boxes(tuple(rs.levels))
            crops = [regions_mod.crop_jpeg(im, b) for b in boxes]
            vecs = self.encoder.images(crops, model_version)
            using = IMAGE_VECTOR if rs.vector in ("auto", "scene", "visual", "image") else rs.vector
        limit = max(rs.per_region_candidates, need)
        signals = [(IMAGE, using, 1.0 - rs.text_weight)] + ([(TEXT, TEXT_VECTOR, rs.text_weight)] if rs.text_weight > 0 else [])
        queries = [SignalQuery(sig, vec, dense=v.tolist(), limit=limit) for v in vecs for sig, vec, _w in signals]
        flat = self.state.index.search(queries, flt)
        per_region = [flat[i : i + len(signals)] for i in range(0, len(flat), len(signals))]
        image_top = [lists[0][0].score if lists[0] else 0.0 for lists in per_region]
        if len(signals) == 1:
            results = [lists[0] for lists in per_region]
        else:  # region photo vs product photos and vs product texts (the LiT space), fused per region
            weights = {sig: w for sig, _vec, w in signals}
            results = [
                [Candidate(h.product_id, h.score, h.payload) for h in fuse_weighted(dict(zip(weights, lists)), weights, method=self.settings.fusion.normalization)]
                for lists in per_region
            ]
        regions, merged = regions_mod.merge(boxes, results, depth=need, order_scores=image_top)
        note = f"shop the look: {len(boxes)} regions searched on vector {using!r}, merged round robin"
        return regions[: req.max_regions or rs.max_regions], merged, note

    def _one_product_first(
        self, req: search_pb2.SearchRequest, flt: SearchFilter, model_version: str, limit: int,
        merged: list[FusedHit],
    ) -> tuple[list[FusedHit], str]:
        """A scene-like photo in auto region mode: one product pasted on a room (a shopper photo)
        or a room of many? Why: round robin over regions is right for a room (one region must not
        fill the page) but loses a one-product photo's clear best match among other regions'
        products, and the photo query's 448 px rows are the ones the ``visual`` projection was
        trained on. So the photo query runs too; when its best raw ``visual`` cosine reaches
        ``regions.one_product_visual`` its top ``one_product_hits`` lead the list and the room's
        round robin follows (regions stay in the response). Chosen on dev parts of photos.jsonl
        and scenes.jsonl (docs/evaluation.md)."""
        rs = self.settings.regions
        if rs.one_product_visual <= 0 or rs.one_product_hits <= 0 or not self.encoder.has_visual():
            return merged, ""
        plan = self._plan(req, text="", limit=limit, model_version=model_version)
        if not plan.visual:
            return merged, ""
        plan.queries, results = self.state.index.search_merged(plan.queries, flt)
        _method, _weights, photo = self._fuse(req, plan, results)
        best = max((h.raw.get(VISUAL, 0.0) for h in photo), default=0.0)
        if best < rs.one_product_visual:
            return merged, (f"a room of products: best visual match {best:.3f} < {rs.one_product_visual:g}, "
                            "regions round robin only")
        lead = photo[: rs.one_product_hits]
        taken = {h.product_id for h in lead}
        out = [*lead, *(h for h in merged if h.product_id not in taken)][: len(merged) or len(lead)]
        n = max(1, len(out))
        for pos, h in enumerate(out):  # positional scores, as the round robin gives
            h.score = (n - pos) / n
        return out, (f"one product in view: best visual match {best:.3f} >= {rs.one_product_visual:g}, "
                     f"the photo query's top {len(lead)} first (fused visual+image+text), then regions round robin")

    def _hub_bank(self, visual_version: str) -> HubBank:
        bank = getattr(self, "_hub", None)
        if bank is None or bank.version != visual_version:
            bank = HubBank.load(visual_version) if self.settings.regions.hub_correction else HubBank(None, visual_version)
            self._hub = bank
        return bank

    def _search_scene(
        self, req: search_pb2.SearchRequest, flt: SearchFilter, model_version: str, need: int, im
    ) -> tuple[list[RegionResult], list[FusedHit], str]:
        """Shop the look on the visual descriptor (``scene_search``): the 149 window rows of one
        640 px pass, one index batch of per-window searches (candidates, filters applied in the
        index), then exact hubness-corrected scores of every window x candidate on the
        candidates' foreground rows, each window's best first, merged round robin."""
        rs = self.settings.regions
        t0 = time.perf_counter()
        windows, window_types = self.encoder.scene(req.image, model_version)
        t1 = time.perf_counter()
        boxes = scene_boxes(*im.size)
        if len(boxes) != len(windows):
            raise RuntimeError(f"image encoder answered {len(windows)} scene rows for {len(boxes)} windows")
        limit = max(rs.scene_candidates, need)
        # one signal per window, so search_merged keeps each window's own top ``limit`` (their
        # union is scored exactly below) and reads each candidate's payload once (Edge: from its
        # payload cache when warm) instead of once per window hit; then only the two vectors
        # the scores need are read
        _q, flat = self.state.index.search_merged(
            [SignalQuery(f"{IMAGE}:{r}", VISUAL_VECTOR, dense=w.tolist(), limit=limit) for r, w in enumerate(windows)], flt)
        payloads = {c.product_id: c.payload for res in flat for c in res}
        stored = self.state.index.retrieve(list(payloads), vectors=[VISUAL_VECTOR, IMAGE_VECTOR])
        rows = {pid: foreground_rows(sp.vectors.get(VISUAL_VECTOR)) for pid, sp in stored.items()}
        hub = self._hub_bank(self.encoder.visual_version())
        centre = self._type_centre(self.encoder.image_version()) if rs.scene_type_weight else None
        types = None
        if centre is not None and window_types is not None and window_types.shape[1:] == centre.shape:
            types = {pid: np.asarray(sp.vectors[IMAGE_VECTOR], np.float32).reshape(-1, centre.shape[0])
                     for pid, sp in stored.items() if sp.vectors.get(IMAGE_VECTOR) is not None}
        t2 = time.perf_counter()
        sc = score_windows(windows, rows, hub, window_types=None if types is None else window_types - centre,
                           product_images=types, type_weight=rs.scene_type_weight if types is not None else 0.0)
        per = max(rs.scene_hits_per_region, 1)
        results: list[list[FusedHit]] = []
        for r in range(len(windows)):
            top = np.argsort(-sc.scores[r])[:per] if sc.ids else []
            results.append([FusedHit(sc.ids[j], float(sc.scores[r, j]), payloads[sc.ids[j]],
                                     {IMAGE: float(sc.scores[r, j]), "visual": float(sc.cosine[r, j]),
                                      **({"type": float(sc.types[r, j])} if sc.types is not None else {})})
                            for j in top])
        regions, merged = regions_mod.merge(boxes, results, depth=need)
        t3 = time.perf_counter()
        corr = (f"hubness-corrected (cos - mean top-{hub.k} cosine to {len(hub.bank)} dev-scene windows)"
                if hub.active else "no hubness correction (no bank for this visual version)")
        typ = (f" + {rs.scene_type_weight:g} x the window's text-space vector (centred on the dev-room mean) "
               f"against the product's image vector" if sc.types is not None
               else "; no text-space term (weight 0, no centre for this image version, or an image encoder "
                    "that does not answer window vectors)")
        note = (f"shop the look: {len(windows)} windows of one {SCENE_SIZE} px pass vs the products' foreground "
                f"visual rows, {corr}{typ}, {len(sc.ids)} candidates scored exactly, merged round robin "
                f"(encode {1000 * (t1 - t0):.0f} ms, index {1000 * (t2 - t1):.0f} ms, score+merge {1000 * (t3 - t2):.0f} ms)")
        return regions[: req.max_regions or rs.max_regions], merged, note

    def _type_centre(self, image_version: str) -> np.ndarray | None:
        """The dev-room mean window vector of the served image version (cached per version)."""
        got = getattr(self, "_centre", None)
        if got is None or got[0] != image_version:
            got = (image_version, load_type_centre(image_version))
            self._centre = got
        return got[1]

    def _reference_by_id(self, product_id: str) -> Reference:
        stored = self.state.index.retrieve([product_id]).get(product_id)
        if stored is None:
            raise ProductNotFoundError(f"similar_to_product_id {product_id!r} is not in the index")
        return Reference(product_id, stored.payload, "named by id", stored.vectors)

    def _unmatched_photo(self, req: search_pb2.SearchRequest, plan: QueryPlan, results) -> tuple[float | None, str]:
        """The visual weight for a product photo with no close match in the catalogue, and a note.

        Why: the visual signal says *which product* a photo shows. For a packshot whose product the
        store does not sell, every visual score is low and flat, yet weight 8 on them (chosen for
        photos that do have a match) lets products of another type that share a shape outrank the
        photo's own type (issue #12: the demo chair got two tables at places 2-3). Only a photo-only
        query of a photo that is not scene-like (auto region mode, default weights): scene-like
        photos take the region path and its one-product rule."""
        d, fz = self.settings.fusion, req.fusion
        if (d.unmatched_visual_below <= 0 or plan.kind != "image" or not plan.visual
                or req.region_mode != search_pb2.REGION_MODE_UNSPECIFIED
                or fz.text_weight or fz.image_weight or fz.lexical_weight):
            return None, ""
        best = max((r[0].score for q, r in zip(plan.queries, results) if q.signal == VISUAL and r), default=0.0)
        if best >= d.unmatched_visual_below:
            return None, ""
        return d.unmatched_visual_weight, (f"no close match for this product photo (best visual {best:.3f} < "
                                           f"{d.unmatched_visual_below:g}): ranked by its type, visual weight "
                                           f"{d.unmatched_visual_weight:g}")

    def _fuse(self, req: search_pb2.SearchRequest, plan: QueryPlan, results,
              visual_weight: float | None = None) -> tuple[str, dict[str, float], list[FusedHit]]:
        d = self.settings.fusion
        lists = {q.signal: r for q, r in zip(plan.queries, results)}
        method, weights = self._weights(req, plan.kind, plan.visual)
        if visual_weight is not None and VISUAL in weights:
            weights[VISUAL] = visual_weight
        if method == "rrf":
            return method, weights, fuse_rrf(lists, weights, k=d.rrf_k)
        # Products without photos are ranked on their other signals for text queries; for a
        # photo-only query they cannot match what was asked, so they keep the pool minimum.
        no_photo = (
            set()
            if plan.kind in ("image", "similar")
            else {c.product_id for r in results for c in r if not c.payload.get("n_images")}
        )
        fused = fuse_weighted(
            lists,
            weights,
            method=d.normalization,
            unavailable={IMAGE: no_photo, VISUAL: no_photo},
            methods={LEXICAL: d.lexical_normalization, VISUAL: d.visual_normalization},
        )
        return method, weights, fused

    def _photo_boost(
        self, req: search_pb2.SearchRequest, method: str, weights: dict[str, float], fused: list[FusedHit]
    ) -> tuple[list[FusedHit], str]:
        """The photo colour and material boosts (photo_boost.py) when the text names a colour or a
        material and the photo counts (weighted fusion, image weight > 0). What a product's text
        states is used only when the ranking reads text (``_judges_stated``)."""
        d = self.settings.fusion
        if method != "weighted" or weights.get(IMAGE, 0.0) <= 0:
            return fused, ""
        notes = []
        stated = self._judges_stated(weights)
        accepted = query_colours(req.text) if d.photo_colour_weight > 0 else {}
        if accepted:
            names = ", ".join(n for n, w in accepted.items() if w >= 1.0)
            fused = apply_boost(fused, accepted, d.photo_colour_weight, d.photo_colour_full, stated)
            notes.append(f"photo colour boost up to +{d.photo_colour_weight:g} for {names}")
        labels = query_labels(req.text) if d.photo_material_weight > 0 else []
        if labels:
            if fused and not any(h.payload.get(MATERIAL_BOOST) for h in fused):
                # the index was written without a probe for its tower version (ingest/photo_material.py)
                notes.append(f"photo material {', '.join(labels)}: not estimated in this index (no probe for its model version)")
            else:
                fused = apply_material_boost(fused, labels, d.photo_material_weight, d.photo_material_full, stated)
                notes.append(f"photo material boost up to +{d.photo_material_weight:g} for {', '.join(labels)}")
        if notes and not stated:
            notes.append("judged by the photos alone (the ranking reads no text)")
        return fused, "; ".join(notes)

    def _category_boost(
        self, plan: QueryPlan, method: str, weights: dict[str, float], fused: list[FusedHit]
    ) -> tuple[list[FusedHit], str]:
        """The category-match boost (category_match.py) for a fused text ranking (weighted fusion, text
        and lexical weight > 0) whose query names a category of the candidates, read from the query
        in the catalog's language (``plan.dense_text``). Single-signal rankings (``--signals text`` /
        ``lexical``) stay plain: they are the reported baselines."""
        weight = self.settings.fusion.category_match_weight
        fused_text = weights.get(TEXT, 0.0) > 0 and weights.get(LEXICAL, 0.0) > 0
        if method != "weighted" or not fused_text or weight <= 0 or not plan.dense_text.strip():
            return fused, ""
        fused = apply_category_boost(fused, plan.dense_text, weight)
        named = sorted({str(h.payload.get("category")) for h in fused if CATEGORY_BOOST in h.boosts})
        return fused, (f"category named by the query (+{weight:g}): {', '.join(named)}" if named else "")

    @staticmethod
    def _judges_stated(weights: dict[str, float]) -> bool:
        """A product's stated colour / material replaces its photo estimate only when the ranking
        reads text (text or lexical weight > 0): a photo-only ranking stays a measure of the photos."""
        return weights.get(TEXT, 0.0) > 0 or weights.get(LEXICAL, 0.0) > 0

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
            for name, b in h.boosts.items():
                hit.signal_scores[f"{name}_boost"] = b
            wtxt = ", ".join(f"{s}={w:g}" for s, w in weights.items() if w > 0)
            parts = [explanation] if explanation else []
            parts.append(f"fusion {method} ({wtxt})")
            missing = [s for s, w in weights.items() if w > 0 and s not in h.raw]
            if missing:
                parts.append("not a candidate for: " + ", ".join(missing))
            judges_stated = RankingServicer._judges_stated(weights)
            if p.get(PHOTO_BOOST) is not None or h.boosts.get(PHOTO_BOOST):
                boost = h.boosts.get(PHOTO_BOOST, 0.0)
                colours = stated_colours(p) if judges_stated else []
                source = f"colour stated in the product text: {', '.join(colours)}; " if colours else ""
                parts.append(source + describe_photo(p.get(PHOTO_BOOST)) + (f" (boost +{boost:.3f})" if boost else ""))
            if p.get(MATERIAL_BOOST) is not None or h.boosts.get(MATERIAL_BOOST):
                boost = h.boosts.get(MATERIAL_BOOST, 0.0)
                stated = stated_labels(p) if judges_stated else []
                source = f"stated in the product text: {', '.join(stated)}; " if stated else ""
                parts.append(source + describe_material(p.get(MATERIAL_BOOST)) + (f" (boost +{boost:.3f})" if boost else ""))
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

