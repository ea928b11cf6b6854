from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SimilarScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIMILAR_SCOPE_UNSPECIFIED: _ClassVar[SimilarScope]
    SIMILAR_SCOPE_SAME_CATEGORY: _ClassVar[SimilarScope]
    SIMILAR_SCOPE_OTHER_CATEGORIES: _ClassVar[SimilarScope]

class RegionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGION_MODE_UNSPECIFIED: _ClassVar[RegionMode]
    REGION_MODE_ON: _ClassVar[RegionMode]
    REGION_MODE_OFF: _ClassVar[RegionMode]
SIMILAR_SCOPE_UNSPECIFIED: SimilarScope
SIMILAR_SCOPE_SAME_CATEGORY: SimilarScope
SIMILAR_SCOPE_OTHER_CATEGORIES: SimilarScope
REGION_MODE_UNSPECIFIED: RegionMode
REGION_MODE_ON: RegionMode
REGION_MODE_OFF: RegionMode

class Filter(_message.Message):
    __slots__ = ("categories", "attributes", "min_price", "max_price", "in_stock_only", "exclude_ids")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    IN_STOCK_ONLY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IDS_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedScalarFieldContainer[str]
    attributes: _containers.ScalarMap[str, str]
    min_price: float
    max_price: float
    in_stock_only: bool
    exclude_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, categories: _Optional[_Iterable[str]] = ..., attributes: _Optional[_Mapping[str, str]] = ..., min_price: _Optional[float] = ..., max_price: _Optional[float] = ..., in_stock_only: _Optional[bool] = ..., exclude_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Fusion(_message.Message):
    __slots__ = ("method", "text_weight", "image_weight", "lexical_weight")
    class Method(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        METHOD_UNSPECIFIED: _ClassVar[Fusion.Method]
        WEIGHTED: _ClassVar[Fusion.Method]
        RRF: _ClassVar[Fusion.Method]
    METHOD_UNSPECIFIED: Fusion.Method
    WEIGHTED: Fusion.Method
    RRF: Fusion.Method
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TEXT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    LEXICAL_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    method: Fusion.Method
    text_weight: float
    image_weight: float
    lexical_weight: float
    def __init__(self, method: _Optional[_Union[Fusion.Method, str]] = ..., text_weight: _Optional[float] = ..., image_weight: _Optional[float] = ..., lexical_weight: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("text", "image", "top_k", "offset", "filter", "fusion", "explain", "request_id", "locale", "score_threshold", "no_cache", "similar_to_product_id", "similar_scope", "region_mode", "max_regions", "facets")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_TO_PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_SCOPE_FIELD_NUMBER: _ClassVar[int]
    REGION_MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_REGIONS_FIELD_NUMBER: _ClassVar[int]
    FACETS_FIELD_NUMBER: _ClassVar[int]
    text: str
    image: bytes
    top_k: int
    offset: int
    filter: Filter
    fusion: Fusion
    explain: bool
    request_id: str
    locale: str
    score_threshold: float
    no_cache: bool
    similar_to_product_id: str
    similar_scope: SimilarScope
    region_mode: RegionMode
    max_regions: int
    facets: FacetSpec
    def __init__(self, text: _Optional[str] = ..., image: _Optional[bytes] = ..., top_k: _Optional[int] = ..., offset: _Optional[int] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., fusion: _Optional[_Union[Fusion, _Mapping]] = ..., explain: _Optional[bool] = ..., request_id: _Optional[str] = ..., locale: _Optional[str] = ..., score_threshold: _Optional[float] = ..., no_cache: _Optional[bool] = ..., similar_to_product_id: _Optional[str] = ..., similar_scope: _Optional[_Union[SimilarScope, str]] = ..., region_mode: _Optional[_Union[RegionMode, str]] = ..., max_regions: _Optional[int] = ..., facets: _Optional[_Union[FacetSpec, _Mapping]] = ...) -> None: ...

class FacetSpec(_message.Message):
    __slots__ = ("categories", "attributes", "price_edges", "limit")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    PRICE_EDGES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    categories: bool
    attributes: _containers.RepeatedScalarFieldContainer[str]
    price_edges: _containers.RepeatedScalarFieldContainer[float]
    limit: int
    def __init__(self, categories: _Optional[bool] = ..., attributes: _Optional[_Iterable[str]] = ..., price_edges: _Optional[_Iterable[float]] = ..., limit: _Optional[int] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("product_id", "score", "title", "category", "signal_scores", "price", "image_uri", "explanation")
    class SignalScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_SCORES_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URI_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    score: float
    title: str
    category: str
    signal_scores: _containers.ScalarMap[str, float]
    price: float
    image_uri: str
    explanation: str
    def __init__(self, product_id: _Optional[str] = ..., score: _Optional[float] = ..., title: _Optional[str] = ..., category: _Optional[str] = ..., signal_scores: _Optional[_Mapping[str, float]] = ..., price: _Optional[float] = ..., image_uri: _Optional[str] = ..., explanation: _Optional[str] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x_min", "y_min", "x_max", "y_max")
    X_MIN_FIELD_NUMBER: _ClassVar[int]
    Y_MIN_FIELD_NUMBER: _ClassVar[int]
    X_MAX_FIELD_NUMBER: _ClassVar[int]
    Y_MAX_FIELD_NUMBER: _ClassVar[int]
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    def __init__(self, x_min: _Optional[float] = ..., y_min: _Optional[float] = ..., x_max: _Optional[float] = ..., y_max: _Optional[float] = ...) -> None: ...

class RegionHits(_message.Message):
    __slots__ = ("box", "score", "hits")
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    box: BoundingBox
    score: float
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    def __init__(self, box: _Optional[_Union[BoundingBox, _Mapping]] = ..., score: _Optional[float] = ..., hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ...) -> None: ...

class FacetValue(_message.Message):
    __slots__ = ("value", "count", "min_price", "max_price")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    value: str
    count: int
    min_price: float
    max_price: float
    def __init__(self, value: _Optional[str] = ..., count: _Optional[int] = ..., min_price: _Optional[float] = ..., max_price: _Optional[float] = ...) -> None: ...

class Facet(_message.Message):
    __slots__ = ("field", "values")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    field: str
    values: _containers.RepeatedCompositeFieldContainer[FacetValue]
    def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[_Union[FacetValue, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "cache_hit", "model_version", "took_ms", "request_id", "query_language", "index_generation", "regions", "facets", "interpretation", "degraded")
    HITS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    INDEX_GENERATION_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    FACETS_FIELD_NUMBER: _ClassVar[int]
    INTERPRETATION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    cache_hit: bool
    model_version: str
    took_ms: float
    request_id: str
    query_language: str
    index_generation: int
    regions: _containers.RepeatedCompositeFieldContainer[RegionHits]
    facets: _containers.RepeatedCompositeFieldContainer[Facet]
    interpretation: str
    degraded: Degraded
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., cache_hit: _Optional[bool] = ..., model_version: _Optional[str] = ..., took_ms: _Optional[float] = ..., request_id: _Optional[str] = ..., query_language: _Optional[str] = ..., index_generation: _Optional[int] = ..., regions: _Optional[_Iterable[_Union[RegionHits, _Mapping]]] = ..., facets: _Optional[_Iterable[_Union[Facet, _Mapping]]] = ..., interpretation: _Optional[str] = ..., degraded: _Optional[_Union[Degraded, _Mapping]] = ...) -> None: ...

class Degraded(_message.Message):
    __slots__ = ("missing_signals", "reason", "stale", "stale_age_s")
    MISSING_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    STALE_AGE_S_FIELD_NUMBER: _ClassVar[int]
    missing_signals: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    stale: bool
    stale_age_s: float
    def __init__(self, missing_signals: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., stale: _Optional[bool] = ..., stale_age_s: _Optional[float] = ...) -> None: ...
