"""Turns a search request into index queries: language analysis, cached embeddings, signals.

Signals (names match ``Hit.signal_scores`` and the ``Fusion`` weights):

- text query: ``text`` (query vs product text vector), ``image`` (query vs product
  photos; LiT puts both in the e5 space), ``lexical`` (BM25 over product text).
  When the query language differs from the catalog's, the dense query is the
  translation from ``analyze_query`` and BM25 gets original + translation +
  expansions (the catalog is enriched with Chinese terms at ingestion).
- image query: ``image`` (image vs photos) and ``text`` (image vs product text). When the
  encoders serve the ``visual`` photo->photo descriptor, the ``visual`` signal (the product's
  identity) is added: the products' ``visual`` rows searched once per visual row of the query photo (whole photo + foreground crop at
  224 px as the index describes a catalogue photo, and 50 regions of one 448 px pass); the
  service keeps each product's best row (``merge_signal_lists``). A shopper photo shows one
  product among others, and the text-space head keeps the type but loses which product it is.
- image + text: ``text`` and ``lexical`` from the text, ``image`` searched with the weighted sum
  of the normalised text and image query vectors, plus ``visual`` (the photo's identity) when
  served; then score fusion. Text queries search the text-space ``image`` vector only (text ->
  photo); ``visual`` is photo -> photo.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

from homesearch.rpc.admission import Ticket
from services.encoders.client import EncoderUnavailableError
from services.ranking.cache import RedisCache
from services.ranking.index.schema import (
    BM25_VECTOR,
    IMAGE_VECTOR,
    TEXT_VECTOR,
    VISUAL_DIM,
    VISUAL_VECTOR,
    SignalQuery,
    SparseVec,
)

TEXT, IMAGE, LEXICAL, VISUAL = "text", "image", "lexical", "visual"


@dataclass
class QueryPlan:
    queries: list[SignalQuery]
    language: str = ""
    explanation: str = ""
    dense_text: str = ""  # the query text in the catalog's language (translated when it is not)
    kind: str = "text"  # text | image | image+text
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # signals the encoders could not provide
    visual: bool = False  # the plan searches the ``visual`` signal (photo queries, when served)


MAX_DENSE_CHARS = 2000  # below the encoders' max_text_chars (2048)


class EncoderGate:
    """After the encoders fail as unavailable, callers skip them for ``cooldown_s`` (one probe
    at a time after that), so degraded answers cost milliseconds, not the client's retries."""

    def __init__(self, cooldown_s: float = 1.0) -> None:
        self.cooldown_s = cooldown_s
        self._open_until = 0.0
        self._probing = False
        self._lock = threading.Lock()

    def allow(self) -> bool | str:
        """True (closed), "probe" (this caller checks whether the encoders are back), or False."""
        with self._lock:
            if self._open_until == 0.0:
                return True
            if not self._probing and time.monotonic() >= self._open_until:
                self._probing = True
                return "probe"
            return False

    def abandon_probe(self) -> None:
        """The probing caller never reached the encoders: the state stays as it was."""
        with self._lock:
            self._probing = False

    def record(self, ok: bool) -> None:
        with self._lock:
            self._probing = False
            self._open_until = 0.0 if ok else time.monotonic() + self.cooldown_s


# The admission ticket of the Rank call running in this thread (set by the servicer): an
# embedding that must be computed through Triton takes the call's slot first (may raise
# ``Refused``); one found in the cache does not, so cached queries are never refused for load.
COMPUTE_TICKET: ContextVar[Ticket | None] = ContextVar("compute_ticket", default=None)


def _before_compute() -> None:
    ticket = COMPUTE_TICKET.get()
    if ticket is not None:
        ticket.take()


class QueryEncoder:
    """Query embeddings through the encoder client, cached in Redis by (model version, input)."""

    def __init__(self, encoder, cache: RedisCache, gate: EncoderGate | None = None) -> None:
        self.encoder = encoder
        self.cache = cache
        self.gate = gate or EncoderGate()

    def _embed(self, fn):
        state = self.gate.allow()
        if not state:
            raise EncoderUnavailableError("they failed moments ago; retrying shortly")
        try:
            _before_compute()  # after the gate: a degraded answer (encoders down) needs no slot
        except Exception:
            if state == "probe":
                self.gate.abandon_probe()  # refused for load: let the next caller probe
            raise
        if state == "probe" and not self.encoder.is_ready():
            # one quick readiness check instead of the client's retries with backoff (~0.7 s),
            # so probing costs the degraded answer nothing
            self.gate.record(False)
            raise EncoderUnavailableError("not ready yet")
        try:
            out = fn()
        except EncoderUnavailableError:
            self.gate.record(False)
            raise
        self.gate.record(True)
        return out

    def model_version(self) -> str:
        return self.encoder.model_info().model_version

    def text(self, text: str, model_version: str) -> np.ndarray:
        from services.ranking.language import normalize

        # A query within the public limit may grow past the encoder's limit once translated
        # and expanded (1,000 Chinese characters -> ~2,400). The text tower reads at most 512
        # tokens (~2,000 characters) anyway, so the dense text is cut there, not rejected.
        text = text[:MAX_DENSE_CHARS]
        key = self.cache.embedding_key(model_version, "q", normalize(text).encode("utf-8"))
        vec = self.cache.get_embedding(key)
        if vec is None:
            vec = np.asarray(self._embed(lambda: self.encoder.embed_texts([text], mode="query"))[0], dtype=np.float32)
            self.cache.put_embedding(key, vec)
        return vec

    def image(self, data: bytes, model_version: str) -> np.ndarray:
        key = self.cache.embedding_key(model_version, "img", data)
        vec = self.cache.get_embedding(key)
        if vec is None:
            vec = np.asarray(self._embed(lambda: self.encoder.embed_images([data]))[0], dtype=np.float32)
            self.cache.put_embedding(key, vec)
        return vec

    def has_visual(self) -> bool:
        return bool(self.visual_version())

    def visual_version(self) -> str:
        return self.encoder.model_info().visual_version

    def image_version(self) -> str:
        return self.encoder.model_info().image_version

    def image_visual(self, data: bytes, model_version: str, regions: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The text-space vector and the ``visual`` query rows of a photo (cached like embeddings).

        Rows: the photo described as the index describes a catalogue photo (whole + foreground
        crop at 224 px, the same pass that gives the text-space vector, so a catalogue shot finds
        its own product at cosine ~1), then, with ``regions``, the 50 regions of one 448 px pass
        (a shopper photo shows the product somewhere in a room). One encoder request (``photo``
        mode: one decode, one Triton round trip) gives all of them; without regions, ``index``."""
        ikey = self.cache.embedding_key(model_version, "img", data)
        key = self.cache.embedding_key(model_version, "vis" if regions else "vis-index", data)
        ivec, rows = self.cache.get_embedding(ikey), self.cache.get_embedding(key)
        if ivec is None or rows is None:
            mode = "photo" if regions else "index"
            vis, emb = self._embed(lambda: self.encoder.embed_images_visual([data], mode))
            ivec = np.asarray(emb[0], dtype=np.float32)  # type: ignore[index]
            rows = np.asarray(vis[0], dtype=np.float32)
            self.cache.put_embedding(ikey, ivec)
            self.cache.put_embedding(key, rows.reshape(-1))
        return np.asarray(ivec, dtype=np.float32), np.asarray(rows, dtype=np.float32).reshape(-1, VISUAL_DIM)

    def scene(self, data: bytes, model_version: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Shop-the-look rows of a room photo (one 640 px pass), cached: (149, 512) ``visual``
        window rows and (149, dim) text-space vectors of the same windows (None when the image
        model is older than this service and does not answer them)."""
        key = self.cache.embedding_key(model_version, "scene", data)
        ekey = self.cache.embedding_key(model_version, "scene-emb", data)
        with_types = self.encoder.model_info().region_embedding
        rows = self.cache.get_embedding(key)
        emb = self.cache.get_embedding(ekey) if with_types else None
        if rows is None or (with_types and emb is None):
            vis, regions = self._embed(lambda: self.encoder.embed_images_visual([data], "scene"))
            rows = np.asarray(vis[0], dtype=np.float32)
            self.cache.put_embedding(key, rows.reshape(-1))
            if regions is not None:
                emb = np.asarray(regions[0], dtype=np.float32)
                self.cache.put_embedding(ekey, emb.reshape(-1))
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, VISUAL_DIM)
        return rows, None if emb is None else np.asarray(emb, dtype=np.float32).reshape(len(rows), -1)

    def images(self, crops: list[bytes], model_version: str) -> list[np.ndarray]:
        """Embeds several images in one encoder call; cached ones are not sent again."""
        keys = [self.cache.embedding_key(model_version, "img", c) for c in crops]
        vecs: list[np.ndarray | None] = [self.cache.get_embedding(k) for k in keys]
        todo = [i for i, v in enumerate(vecs) if v is None]
        if todo:
            _before_compute()
            fresh = self.encoder.embed_images([crops[i] for i in todo])
            for i, v in zip(todo, fresh):
                vecs[i] = np.asarray(v, dtype=np.float32)
                self.cache.put_embedding(keys[i], vecs[i])
        return [v for v in vecs if v is not None]


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
    degrade: bool = False,
    photo_regions: bool = True,
) -> QueryPlan:
    """Embeds the query and lists the index searches to run (one batch, one round trip).

    ``photo_regions``: the photo's visual rows include the 50 regions of the 448 px pass."""
    from services.ranking.language import analyze_query

    queries: list[SignalQuery] = []
    plan = QueryPlan(queries=queries)
    tvec: np.ndarray | None = None
    if text.strip():
        analysis = analyze_query(text, catalog_language=catalog_language)
        plan.language = analysis.language or locale
        plan.explanation = analysis.explanation
        plan.dense_text = analysis.dense_text
        # Dense: the translation when the query is not in the catalog's language. With the
        # encoders down (and no cached embedding) the text is still answered from BM25 and the
        # plan records which signals are missing, unless the caller wants all or nothing.
        try:
            tvec = encoder.text(analysis.dense_text, model_version)
        except EncoderUnavailableError:
            if not degrade:
                raise
            plan.missing += [TEXT, IMAGE]
        # BM25: original + translated terms, expansions (synonyms, other language) down-weighted.
        sparse = analysis.sparse_vector()
        if tvec is not None:
            queries.append(SignalQuery(TEXT, TEXT_VECTOR, dense=tvec.tolist(), limit=limit))
        if sparse.indices:
            queries.append(
                SignalQuery(LEXICAL, BM25_VECTOR, sparse=SparseVec(list(sparse.indices), list(sparse.values)), limit=limit)
            )
    if image:
        rows: np.ndarray | None = None
        try:
            if encoder.has_visual():
                ivec, rows = encoder.image_visual(image, model_version, regions=photo_regions)
            else:
                ivec = encoder.image(image, model_version)
        except EncoderUnavailableError:
            if not degrade or not text.strip():  # an image-only query has nothing left to rank on
                raise
            plan.missing = sorted({*plan.missing, IMAGE})
            return plan
        _visual_queries(plan, rows, limit)
        if tvec is None and plan.missing:  # text embedding missing, image present: image only
            plan.kind = "image+text"
            queries.append(SignalQuery(IMAGE, IMAGE_VECTOR, dense=ivec.tolist(), limit=limit))
            plan.missing = [TEXT]
        elif tvec is None:
            plan.kind = "image"
            queries.append(SignalQuery(IMAGE, IMAGE_VECTOR, dense=ivec.tolist(), limit=limit))
            queries.append(SignalQuery(TEXT, TEXT_VECTOR, dense=ivec.tolist(), limit=limit))
        else:
            plan.kind = "image+text"
            mixed = _unit(mix_text_share * _unit(tvec) + (1.0 - mix_text_share) * _unit(ivec))
            queries.append(SignalQuery(IMAGE, IMAGE_VECTOR, dense=mixed.tolist(), limit=limit))
    elif tvec is not None:
        queries.append(SignalQuery(IMAGE, IMAGE_VECTOR, dense=tvec.tolist(), limit=limit))
    return plan


def _visual_queries(plan: QueryPlan, rows: np.ndarray | None, limit: int) -> bool:
    """Adds one ``visual`` search per visual row of the photo on the ``visual`` vector; False when
    the encoders serve no visual descriptor."""
    if rows is None:
        return False
    plan.queries.extend(SignalQuery(VISUAL, VISUAL_VECTOR, dense=r.tolist(), limit=limit) for r in rows)
    plan.visual = True
    plan.notes.append(f"photo matched on the visual vector (best of {len(rows)} rows: whole photo, "
                      f"foreground, {len(rows) - 2} regions)")
    return True


def merge_signal_lists(queries: list[SignalQuery], results: list[list]) -> tuple[list[SignalQuery], list[list]]:
    """One query and one candidate list per signal: several searches of one signal (the regions
    of a photo query) merge into one list keeping each product's best score, best first, cut to
    the signal's limit. Exact: a product's best region is its score."""
    order: list[str] = []
    merged: dict[str, tuple[SignalQuery, dict]] = {}
    for q, res in zip(queries, results):
        if q.signal not in merged:
            order.append(q.signal)
            merged[q.signal] = (q, {})
        best = merged[q.signal][1]
        for c in res:
            if c.product_id not in best or c.score > best[c.product_id].score:
                best[c.product_id] = c
    out_q, out_r = [], []
    for sig in order:
        q, best = merged[sig]
        out_q.append(q)
        out_r.append(sorted(best.values(), key=lambda c: -c.score)[: q.limit])
    return out_q, out_r
