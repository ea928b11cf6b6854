"""Typed Python client for the homesearch public Search API.

    from homesearch.client import HomesearchClient

    with HomesearchClient("localhost:50051", api_key="...") as hs:
        result = hs.search("white bookcase", top_k=5)
        for hit in result.hits:
            print(hit.product_id, hit.score, hit.title)

Errors raise :class:`HomesearchError` with the gRPC status ``code`` (a
``grpc.StatusCode``) and the server's message; ``retryable`` is true for
UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED (Search has no side effects).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from homesearch.v1 import search_pb2, search_pb2_grpc

__all__ = ["Degraded", "Fusion", "Hit", "HomesearchClient", "HomesearchError", "SearchResult"]

_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


class HomesearchError(Exception):
    """A failed call: ``code`` is the grpc.StatusCode, ``message`` the server's details."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in _RETRYABLE

    @classmethod
    def from_rpc_error(cls, exc: grpc.RpcError) -> "HomesearchError":
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "")


@dataclass(frozen=True)
class Hit:
    product_id: str
    score: float
    title: str = ""
    category: str = ""
    price: float | None = None
    image_uri: str = ""
    signal_scores: dict[str, float] = field(default_factory=dict)
    explanation: str = ""


@dataclass(frozen=True)
class Degraded:
    missing_signals: list[str] = field(default_factory=list)
    reason: str = ""
    stale: bool = False
    stale_age_s: float = 0.0


@dataclass(frozen=True)
class Region:
    """One proposed region of a room photo (box in 0..1 fractions: x_min, y_min, x_max, y_max)."""

    box: tuple[float, float, float, float]
    score: float
    hits: list[Hit] = field(default_factory=list)


@dataclass(frozen=True)
class FacetValue:
    value: str
    count: int
    min_price: float | None = None
    max_price: float | None = None


@dataclass(frozen=True)
class Facets:
    """What to count over the filtered catalog: categories, attribute keys, price bucket edges."""

    categories: bool = False
    attributes: Sequence[str] = ()
    price_edges: Sequence[float] = ()
    limit: int = 0

    def to_proto(self) -> search_pb2.FacetSpec:
        return search_pb2.FacetSpec(
            categories=self.categories, attributes=list(self.attributes), price_edges=list(self.price_edges), limit=self.limit
        )


SIMILAR_SCOPES = {
    "any": search_pb2.SIMILAR_SCOPE_UNSPECIFIED,
    "same": search_pb2.SIMILAR_SCOPE_SAME_CATEGORY,
    "other": search_pb2.SIMILAR_SCOPE_OTHER_CATEGORIES,
}
REGION_MODES = {"auto": search_pb2.REGION_MODE_UNSPECIFIED, "on": search_pb2.REGION_MODE_ON, "off": search_pb2.REGION_MODE_OFF}


def _choice(name: str, value: str, table: Mapping[str, int]) -> int:
    key = value.lower()
    if key not in table:
        raise ValueError(f"unknown {name} {value!r}: use one of {', '.join(table)}")
    return table[key]


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    request_id: str = ""
    model_version: str = ""
    took_ms: float = 0.0
    cache_hit: bool = False
    query_language: str = ""
    index_generation: int = 0
    # Set only for incomplete answers (encoders down): the signals that were missing, the
    # reason, and whether the hits are an older cached result (with its age).
    degraded: Degraded | None = None
    regions: list[Region] = field(default_factory=list)  # shop the look (hits = merged list)
    facets: dict[str, list[FacetValue]] = field(default_factory=dict)  # field -> values
    interpretation: str = ""  # how the query was read (explain)

    def __len__(self) -> int:
        return len(self.hits)

    @property
    def product_ids(self) -> list[str]:
        return [h.product_id for h in self.hits]


@dataclass(frozen=True)
class Fusion:
    """Signal weighting; method "weighted", "rrf" or "" (service default). Zero weights = defaults."""

    method: str = ""
    text_weight: float = 0.0
    image_weight: float = 0.0
    lexical_weight: float = 0.0

    def to_proto(self) -> search_pb2.Fusion:
        methods = {"": 0, "default": 0, "weighted": search_pb2.Fusion.WEIGHTED, "rrf": search_pb2.Fusion.RRF}
        key = self.method.lower()
        if key not in methods:
            raise ValueError(f"unknown fusion method {self.method!r}: use 'weighted', 'rrf' or ''")
        return search_pb2.Fusion(
            method=methods[key],
            text_weight=self.text_weight,
            image_weight=self.image_weight,
            lexical_weight=self.lexical_weight,
        )


def _image_bytes(image: bytes | str | os.PathLike | None) -> bytes:
    if image is None:
        return b""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    return Path(image).read_bytes()


def hit_from_proto(h: search_pb2.Hit) -> Hit:
    return Hit(
        product_id=h.product_id,
        score=h.score,
        title=h.title,
        category=h.category,
        price=h.price if h.HasField("price") else None,
        image_uri=h.image_uri,
        signal_scores=dict(h.signal_scores),
        explanation=h.explanation,
    )


def result_from_proto(resp: search_pb2.SearchResponse) -> SearchResult:
    return SearchResult(
        hits=[hit_from_proto(h) for h in resp.hits],
        request_id=resp.request_id,
        model_version=resp.model_version,
        took_ms=resp.took_ms,
        cache_hit=resp.cache_hit,
        query_language=resp.query_language,
        index_generation=resp.index_generation,
        degraded=Degraded(list(resp.degraded.missing_signals), resp.degraded.reason, resp.degraded.stale,
                          resp.degraded.stale_age_s) if resp.HasField("degraded") else None,
        regions=[
            Region((r.box.x_min, r.box.y_min, r.box.x_max, r.box.y_max), r.score, [hit_from_proto(h) for h in r.hits])
            for r in resp.regions
        ],
        facets={
            f.field: [
                FacetValue(
                    v.value,
                    v.count,
                    v.min_price if v.HasField("min_price") else None,
                    v.max_price if v.HasField("max_price") else None,
                )
                for v in f.values
            ]
            for f in resp.facets
        },
        interpretation=resp.interpretation,
    )


class HomesearchClient:
    """Client of SearchService.Search. Thread-safe; reuse one instance."""

    def __init__(
        self,
        address: str = "localhost:50051",
        api_key: str | None = None,
        tls: bool = False,
        timeout_s: float = 5.0,
        root_certificates: bytes | None = None,
    ) -> None:
        self.address = address
        self.api_key = api_key
        self.timeout_s = timeout_s
        options = [
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
        ]
        if tls:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(address, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._stub = search_pb2_grpc.SearchServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    # context manager
    def __enter__(self) -> "HomesearchClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _metadata(self, request_id: str | None) -> list[tuple[str, str]]:
        md = []
        if self.api_key:
            md.append(("authorization", f"Bearer {self.api_key}"))
        if request_id:
            md.append(("x-request-id", request_id))
        return md

    def build_request(
        self,
        text: str | None = None,
        image: bytes | str | os.PathLike | None = None,
        top_k: int = 10,
        offset: int = 0,
        categories: Sequence[str] = (),
        attributes: Mapping[str, str] | None = None,
        min_price: float | None = None,
        max_price: float | None = None,
        in_stock_only: bool = False,
        exclude_ids: Sequence[str] = (),
        fusion: Fusion | str | Mapping[str, object] | None = None,
        explain: bool = False,
        locale: str = "",
        score_threshold: float = 0.0,
        no_cache: bool = False,
        request_id: str | None = None,
        similar_to: str | None = None,
        similar_scope: str = "any",
        region_mode: str = "auto",
        max_regions: int = 0,
        facets: Facets | None = None,
    ) -> search_pb2.SearchRequest:
        """The SearchRequest that :meth:`search` sends for these arguments."""
        flt = search_pb2.Filter(
            categories=list(categories),
            attributes=dict(attributes or {}),
            in_stock_only=in_stock_only,
            exclude_ids=list(exclude_ids),
        )
        if min_price is not None:
            flt.min_price = min_price
        if max_price is not None:
            flt.max_price = max_price
        req = search_pb2.SearchRequest(
            text=text or "",
            image=_image_bytes(image),
            top_k=top_k,
            offset=offset,
            filter=flt,
            explain=explain,
            request_id=request_id or "",
            locale=locale,
            score_threshold=score_threshold,
            no_cache=no_cache,
            similar_to_product_id=similar_to or "",
            similar_scope=_choice("similar_scope", similar_scope, SIMILAR_SCOPES),
            region_mode=_choice("region_mode", region_mode, REGION_MODES),
            max_regions=max_regions,
        )
        if facets is not None:
            req.facets.CopyFrom(facets.to_proto())
        if fusion is not None:
            if isinstance(fusion, str):
                fusion = Fusion(method=fusion)
            elif isinstance(fusion, Mapping):
                fusion = Fusion(**fusion)  # type: ignore[arg-type]
            req.fusion.CopyFrom(fusion.to_proto())
        return req

    def search_request(self, req: search_pb2.SearchRequest, timeout_s: float | None = None) -> search_pb2.SearchResponse:
        """Sends a ready SearchRequest and returns the raw SearchResponse.

        For tools that must see every response field, including ones newer than this client's
        dataclasses (the web console renders the response generically)."""
        try:
            return self._stub.Search(
                req, timeout=self.timeout_s if timeout_s is None else timeout_s,
                metadata=self._metadata(req.request_id or None),
            )
        except grpc.RpcError as exc:
            raise HomesearchError.from_rpc_error(exc) from None

    def search(
        self,
        text: str | None = None,
        image: bytes | str | os.PathLike | None = None,
        timeout_s: float | None = None,
        **options: Any,
    ) -> SearchResult:
        """Runs one search. ``image`` is encoded bytes or a path to a JPEG/PNG/WebP file; ``options`` are
        the keyword arguments of :meth:`build_request` (top_k, offset, categories, attributes, min_price,
        max_price, in_stock_only, exclude_ids, fusion, explain, locale, score_threshold, no_cache, request_id,
        and the journeys: similar_to + similar_scope "any"|"same"|"other", region_mode "auto"|"on"|"off",
        max_regions, facets)."""
        req = self.build_request(text=text, image=image, **options)
        return result_from_proto(self.search_request(req, timeout_s=timeout_s))

    def health(self, service: str = "", timeout_s: float = 2.0) -> bool:
        """True when the gateway reports SERVING (it does only while ranking is reachable)."""
        try:
            reply = self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING
