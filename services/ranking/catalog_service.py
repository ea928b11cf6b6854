"""CatalogService: streaming Upsert and Delete of products.

Per batch of ``ingest_batch_size`` streamed products: validate, hash, skip the
unchanged (same content hash as indexed), embed the rest through the encoder
client (passages for text, photos for images). A product that fails validation or
embedding is reported in the response and nothing of it is written.

Throughput: the passages and the photos of a batch go to the two Triton models at once, and
up to ``ingest_pipeline_depth`` batches of a stream are embedded while the stream is still
being read, so both encoders (and both cores of a small box) stay busy; products keep their
stream order in the response and in the write.

Unit of atomicity: **the stream**. Embedded products are held until the client has
half-closed the stream cleanly, then written together and acknowledged in the one
response. A stream that fails (cancelled, cut, deadline, an undecodable message) writes
nothing: the caller was told nothing was acknowledged, so it may resend the stream
as-is (unchanged products are skipped by content hash). Hence streams are bounded
(``max_stream_products``); ``homesearch index`` sends one per batch of 64. Each product
is still one point, so a reader never sees part of a product. Mixing model versions in
one collection is refused with FAILED_PRECONDITION before anything is read.
"""

from __future__ import annotations

import io
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import numpy as np
from PIL import Image, UnidentifiedImageError

from services.encoders.client import EncoderError, EncoderUnavailableError, InvalidInputError
from services.ranking.config import RankingSettings
from services.ranking.generation import CatalogState
from services.ranking.index.base import ModelMismatchError
from services.ranking.ingest.photo_colour import METHOD as PHOTO_COLOUR_METHOD
from services.ranking.ingest.photo_colour import main_photo_colours
from services.ranking.ingest.photo_material import MaterialProbe, main_photo_material, probe_for
from services.ranking.index.schema import (
    IndexedProduct,
    SparseVec,
    build_payload,
    content_hash,
    normalize_attr_key,
)
from services.ranking.metrics import INGEST_BATCH_SECONDS, INGEST_DELETED, INGEST_PRODUCTS
from homesearch.v1 import ranking_pb2, ranking_pb2_grpc

log = logging.getLogger(__name__)

MAX_ID_BYTES = 256
MAX_TEXT_CHARS = 20_000
Image.MAX_IMAGE_PIXELS = 50_000_000  # decompression-bomb guard for catalog photos


class ProductRejected(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Pending:
    product: ranking_pb2.Product
    content_hash: str = ""
    text_vector: np.ndarray | None = None
    image_vectors: list[np.ndarray] = field(default_factory=list)
    visual_vectors: list[np.ndarray] = field(default_factory=list)  # 2 rows per photo


@dataclass
class _BatchResult:
    """What embedding one batch produced: the products to write and its share of the response.

    Batches of a stream are embedded concurrently, so each fills its own result and the
    stream merges them in order (the response lists failures in stream order)."""

    ready: list[IndexedProduct] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, grpc.StatusCode, str]] = field(default_factory=list)


Fail = Callable[[str, str], None]  # (product id, message): an INVALID_ARGUMENT for that product


_OBJ_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")
_ITEM = re.compile(r"item (\d+): (.*?)(?=; item \d+: |$)")


def _clean(exc: BaseException) -> str:
    """An exception's message without Python object reprs (``<_io.BytesIO object at 0x..>``)."""
    return _OBJ_REPR.sub("", str(exc)).strip() or type(exc).__name__


def item_reason(message: str, index: int | None) -> str:
    """The reason given for item ``index`` in an encoder message that may list several
    batch-relative items (``invalid input: item 2: ...; item 5: ...``), without the number."""
    reasons = {int(m.group(1)): m.group(2) for m in _ITEM.finditer(message)}
    if index is not None and index in reasons:
        return reasons[index]
    return _ITEM.sub(lambda m: m.group(2), message) if reasons else message


def passage_text(p: ranking_pb2.Product) -> str:
    """The e5 passage for a product: title, category, attributes, description."""
    attrs = "; ".join(f"{k}: {v}" for k, v in sorted(p.attributes.items()) if v.strip())
    parts = [p.title.strip(), p.category.strip(), attrs, p.description.strip()]
    return ". ".join(x for x in parts if x)


def enrichment_languages(catalog_language: str) -> tuple[str, ...]:
    """Languages whose glossary terms are added to a product's BM25 text (language/README.md):
    an English catalog gets Chinese terms, a Chinese catalog English ones, a mixed one both."""
    return {"zh": ("en",), "mixed": ("zh", "en")}.get(catalog_language, ("zh",))


def lexical_text(p: ranking_pb2.Product) -> str:
    """Text BM25 indexes: title, category, attribute values, description."""
    return " ".join(x for x in [p.title, p.category, *p.attributes.values(), p.description] if x.strip())


def _product_fields(p: ranking_pb2.Product, material_probe: str = "") -> dict:
    return {
        "id": p.id,
        "title": p.title,
        "description": p.description,
        "category": p.category,
        "attributes": dict(sorted(p.attributes.items())),
        "price": p.price if p.HasField("price") else None,
        "currency": p.currency,
        "in_stock": p.in_stock if p.HasField("in_stock") else None,
        "image_uris": list(p.image_uris),
        "photo_colour_method": PHOTO_COLOUR_METHOD,  # a new estimate method re-derives every product
        "photo_material_probe": material_probe,  # so does a retrained (or newly shipped) material probe
    }


class CatalogServicer(ranking_pb2_grpc.CatalogServiceServicer):
    def __init__(self, settings: RankingSettings, state: CatalogState, encoder) -> None:
        self.settings = settings
        self.state = state
        self.encoder = encoder
        # Embedding work of every stream (the threads mostly wait on Triton): ``ingest_pipeline_depth``
        # batches of a stream ahead of its reader, and each batch's photo call beside its passage
        # call. Two pools: a batch waits on its photo call, which must never queue behind batches.
        self._batches = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ingest-batch")
        self._photos = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ingest-photos")

    # -- validation -----------------------------------------------------------------------
    def _validate(self, p: ranking_pb2.Product) -> None:
        s = self.settings
        bad = grpc.StatusCode.INVALID_ARGUMENT
        if not p.id or len(p.id.encode("utf-8")) > MAX_ID_BYTES:
            raise ProductRejected(bad, f"id must be 1..{MAX_ID_BYTES} bytes")
        if not p.title.strip():
            raise ProductRejected(bad, "title is required")
        if len(p.title) + len(p.description) > MAX_TEXT_CHARS:
            raise ProductRejected(bad, f"title + description longer than {MAX_TEXT_CHARS} characters")
        if p.HasField("price") and (not math.isfinite(p.price) or p.price < 0):
            raise ProductRejected(bad, f"price must be a finite non-negative number, got {p.price}")
        if len(p.images) > s.max_images_per_product:
            raise ProductRejected(bad, f"more than {s.max_images_per_product} images")
        if p.images and p.image_uris and len(p.images) != len(p.image_uris):
            raise ProductRejected(bad, "images and image_uris differ in length")
        for i, data in enumerate(p.images):
            if len(data) > s.max_image_bytes:
                raise ProductRejected(bad, f"image {i} larger than {s.max_image_bytes} bytes")
            try:  # header + structure check; cheap, and a clear message before spending encoder time
                with Image.open(io.BytesIO(data)) as im:
                    im.verify()
            except UnidentifiedImageError:
                raise ProductRejected(bad, f"image {i} is not a JPEG, PNG or WebP image") from None
            except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt data
                raise ProductRejected(bad, f"image {i} is not a decodable image: {_clean(exc)}") from None

    # -- Upsert ---------------------------------------------------------------------------
    def Upsert(self, request_iterator: Iterable[ranking_pb2.UpsertRequest], context: grpc.ServicerContext):
        try:
            info = self.encoder.model_info()
            model_version = info.model_version
            self.state.check_model(model_version)
            probe = probe_for(info.image_version, info.visual_version)
        except ModelMismatchError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except EncoderUnavailableError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"encoders unavailable: {exc}")
        resp = ranking_pb2.UpsertResponse()
        seen: set[str] = set()
        batch: list[ranking_pb2.Product] = []
        ready: list[IndexedProduct] = []
        inflight: deque[Future[_BatchResult]] = deque()
        limit = self.settings.max_stream_products
        depth = max(1, self.settings.ingest_pipeline_depth)

        def collect(fut: Future[_BatchResult]) -> None:
            got = fut.result()  # EncoderUnavailableError surfaces here
            ready.extend(got.ready)
            resp.unchanged += got.unchanged
            for pid, code, message in got.failed:
                self._fail(resp, pid, code, message)

        try:
            try:
                for n, req in enumerate(request_iterator, 1):
                    if n > limit:
                        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                      f"more than {limit} products in one Upsert stream; nothing was written. "
                                      "Send smaller streams (homesearch index --batch-size)")
                    p = req.product
                    if p.id in seen:
                        self._fail(resp, p.id, grpc.StatusCode.INVALID_ARGUMENT, "duplicate product id in this stream")
                        continue
                    seen.add(p.id)
                    batch.append(p)
                    if len(batch) >= self.settings.ingest_batch_size:
                        inflight.append(self._batches.submit(self._process, batch, model_version, probe))
                        batch = []
                        while len(inflight) >= depth:
                            collect(inflight.popleft())
                if batch:
                    inflight.append(self._batches.submit(self._process, batch, model_version, probe))
                while inflight:
                    collect(inflight.popleft())
            finally:
                for fut in inflight:  # the stream failed: its batches' results are dropped
                    fut.cancel()
        except EncoderUnavailableError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"encoders unavailable: {exc}; nothing was written")
        if not context.is_active():
            # The iterator ended because the call failed (e.g. gRPC could not deserialize a
            # message and already answered INTERNAL): nothing was acknowledged, write nothing.
            log.warning("upsert stream failed before its end; nothing written", extra={"held": len(ready)})
            return ranking_pb2.UpsertResponse()
        if ready:
            self._write(ready, resp)
        resp.index_generation = self.state.generation()
        self.state.refresh_gauges()
        log.info(
            "upsert done",
            extra={"upserted": resp.upserted, "unchanged": resp.unchanged, "failed": len(resp.failed)},
        )
        return resp

    @staticmethod
    def _fail(resp: ranking_pb2.UpsertResponse, pid: str, code: grpc.StatusCode, message: str) -> None:
        resp.failed.append(ranking_pb2.ProductError(product_id=pid, code=code.name, message=message))
        INGEST_PRODUCTS.labels("failed").inc()

    def _write(self, products: list[IndexedProduct], resp: ranking_pb2.UpsertResponse) -> None:
        started = time.perf_counter()
        self.state.index.upsert(products)
        keys = {k for x in products for k in x.payload.get("attr", {})}
        self.state.record_write(keys)
        resp.upserted += len(products)
        INGEST_PRODUCTS.labels("upserted").inc(len(products))
        INGEST_BATCH_SECONDS.observe(time.perf_counter() - started)

    def _process(self, batch: list[ranking_pb2.Product], model_version: str,
                 probe: MaterialProbe | None = None) -> _BatchResult:
        """Validates and embeds one batch; returns the products to write at the stream's end."""
        started = time.perf_counter()
        out = _BatchResult()
        pending: list[_Pending] = []
        for p in batch:
            try:
                self._validate(p)
            except ProductRejected as exc:
                out.failed.append((p.id, exc.code, str(exc)))
                continue
            pending.append(_Pending(p, content_hash(_product_fields(p, probe.id if probe else ""), list(p.images), model_version)))
        existing = self.state.index.content_hashes([x.product.id for x in pending])
        changed = []
        for x in pending:
            if existing.get(x.product.id) == x.content_hash:
                out.unchanged += 1
                INGEST_PRODUCTS.labels("unchanged").inc()
            else:
                changed.append(x)
        failed: dict[str, str] = {}  # first reason per product: its text's, else its photo's

        def fail(pid: str, message: str) -> None:
            failed.setdefault(pid, message)

        changed = self._embed_both(changed, fail)
        # text failures first (an item may fail both ways; it is reported once)
        out.failed += [(pid, grpc.StatusCode.INVALID_ARGUMENT, m) for pid, m in failed.items()]
        INGEST_BATCH_SECONDS.observe(time.perf_counter() - started)
        out.ready = [self._indexed(x, model_version, probe) for x in changed]
        return out

    def _embed_both(self, items: list[_Pending], fail: Fail) -> list[_Pending]:
        """Passages and photos of one batch, embedded at the same time by the two encoder models;
        returns the items both succeeded for, in batch order."""
        if not any(x.product.images for x in items):
            return self._embed_texts(items, fail)
        image_fail: list[tuple[str, str]] = []
        photos = self._photos.submit(self._embed_images, items, lambda pid, m: image_fail.append((pid, m)))
        try:
            texts_ok = self._embed_texts(items, fail)
        finally:
            images_ok = photos.result()  # wait for it either way: it writes into ``items``
        for pid, message in image_fail:
            fail(pid, message)
        keep = {id(x) for x in images_ok}
        return [x for x in texts_ok if id(x) in keep]

    def _embed_texts(self, items: list[_Pending], fail: Fail) -> list[_Pending]:
        """Embeds passages; an input the encoder rejects fails its product only (retry the rest)."""
        while items:
            try:
                vecs = self.encoder.embed_texts([passage_text(x.product) for x in items], mode="passage",
                                                timeout_s=self.settings.ingest_encoder_timeout_s)
            except InvalidInputError as exc:
                bad = exc.index if exc.index is not None and 0 <= exc.index < len(items) else None
                if bad is None:
                    if len(items) == 1:
                        bad = 0
                    else:  # cannot tell which one: isolate by embedding one at a time
                        return [y for x in items for y in self._embed_texts([x], fail)]
                fail(items[bad].product.id, f"text rejected: {item_reason(str(exc), exc.index)}")
                items = items[:bad] + items[bad + 1 :]
                continue
            for x, v in zip(items, np.asarray(vecs, dtype=np.float32)):
                x.text_vector = v
            return items
        return items

    def _embed_images(self, items: list[_Pending], fail: Fail) -> list[_Pending]:
        """Embeds every photo of the batch at once; a rejected photo fails its whole product."""
        while True:
            owners = [i for i, x in enumerate(items) for _ in x.product.images]
            if not owners:
                return items
            flat = [img for x in items for img in x.product.images]
            visual: np.ndarray | None = None
            try:
                timeout = self.settings.ingest_encoder_timeout_s
                if self.encoder.model_info().visual_version:
                    # one backbone pass gives both: text-space vector + visual rows of each photo
                    visual, vecs = self.encoder.embed_images_visual(flat, "index", timeout_s=timeout)
                    vecs = np.asarray(vecs, dtype=np.float32)
                else:
                    vecs = np.asarray(self.encoder.embed_images(flat, timeout_s=timeout), dtype=np.float32)
            except InvalidInputError as exc:
                if exc.index is not None and 0 <= exc.index < len(flat):
                    bad = owners[exc.index]
                elif len({*owners}) == 1:
                    bad = owners[0]
                else:
                    with_images = [x for x in items if x.product.images]
                    kept = {id(y) for x in with_images for y in self._embed_images([x], fail)}
                    return [x for x in items if not x.product.images or id(x) in kept]
                photo = exc.index - owners.index(bad) if exc.index is not None and 0 <= exc.index < len(flat) else None
                which = f"image {photo}" if photo is not None else "image"
                fail(items[bad].product.id, f"{which} rejected: {item_reason(str(exc), exc.index)}")
                items = items[:bad] + items[bad + 1 :]
                continue
            for k, (i, v) in enumerate(zip(owners, vecs)):
                items[i].image_vectors.append(v)
                if visual is not None:
                    items[i].visual_vectors.extend(np.asarray(visual[k], dtype=np.float32))
            return items

    def _indexed(self, x: _Pending, model_version: str, probe: MaterialProbe | None = None) -> IndexedProduct:
        from services.ranking.language import bm25_document_vector, enrich_document

        p = x.product
        sparse = bm25_document_vector(enrich_document(lexical_text(p), enrichment_languages(self.state.meta.catalog_language)))
        uris = list(p.image_uris)
        payload = build_payload(
            product_id=p.id,
            title=p.title,
            description=p.description,
            category=p.category,
            attributes={k: v for k, v in p.attributes.items() if normalize_attr_key(k)},
            price=p.price if p.HasField("price") else None,
            currency=p.currency,
            in_stock=p.in_stock if p.HasField("in_stock") else None,
            image_uris=uris,
            n_images=len(p.images),
            content_hash=x.content_hash,
            model_version=model_version,
            photo_colors=main_photo_colours(list(p.images)),
            photo_materials=main_photo_material(probe, x.image_vectors, x.visual_vectors),
        )
        return IndexedProduct(
            product_id=p.id,
            text_vector=x.text_vector.tolist(),
            image_vectors=[v.tolist() for v in x.image_vectors],
            visual_vectors=[v.tolist() for v in x.visual_vectors],
            bm25=SparseVec(list(sparse.indices), list(sparse.values)),
            payload=payload,
        )

    # -- Delete ---------------------------------------------------------------------------
    def Delete(self, request: ranking_pb2.DeleteRequest, context: grpc.ServicerContext):
        ids = list(dict.fromkeys(pid for pid in request.product_ids if pid))
        deleted = self.state.index.delete(ids)
        generation = self.state.record_write() if deleted else self.state.generation()
        INGEST_DELETED.inc(len(deleted))
        self.state.refresh_gauges()
        gone = set(deleted)
        return ranking_pb2.DeleteResponse(
            deleted=len(deleted), not_found=[pid for pid in ids if pid not in gone], index_generation=generation
        )


def iter_requests(products: Iterable[ranking_pb2.Product]) -> Iterator[ranking_pb2.UpsertRequest]:
    for p in products:
        yield ranking_pb2.UpsertRequest(product=p)
