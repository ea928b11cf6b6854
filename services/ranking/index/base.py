"""The small typed interface the ranking service needs from a vector index.

Two backends implement it (``edge.py``: Qdrant Edge in-process, ``server.py``:
qdrant-client against a Qdrant server/cluster); configuration alone picks one.
Keeping the surface this narrow is what lets the same service, fusion and tests
run on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

from services.ranking.index.schema import Candidate, IndexedProduct, SearchFilter, SignalQuery, StoredProduct


class ModelMismatchError(RuntimeError):
    """The index holds embeddings of another encoder model version than the one in use."""

    def __init__(self, index_version: str, encoder_version: str) -> None:
        super().__init__(
            f"index was built with model version {index_version!r} but the encoders serve "
            f"{encoder_version!r}; embeddings of different models cannot be mixed in one "
            "collection: re-index into a new collection or data dir"
        )
        self.index_version = index_version
        self.encoder_version = encoder_version


@dataclass
class IndexMeta:
    """Collection-level facts persisted with the index (not per point).

    ``generation`` is bumped after every catalog change that wrote something and
    once per open, so a result cached before a crash between write and bump can
    never be served again. ``attribute_keys`` lets Rank reject unknown filter keys.
    """

    model_version: str = ""
    dim: int = 0
    generation: int = 0
    attribute_keys: list[str] = field(default_factory=list)
    # "" = not set yet: the first open takes RankingSettings.catalog_language and persists it. (A
    # default of "en" here made ``meta.catalog_language or settings.catalog_language`` always "en",
    # so HOMESEARCH_RANKING_CATALOG_LANGUAGE=zh was ignored.)
    catalog_language: str = ""
    schema_version: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "IndexMeta":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@runtime_checkable
class VectorIndex(Protocol):
    """Product index operations. Implementations are thread-safe."""

    backend: str

    @property
    def meta(self) -> IndexMeta: ...

    def ensure_collection(self, dim: int) -> None:
        """Creates vectors/indexes if missing (idempotent). ``dim`` is the embedding size."""

    def save_meta(self, meta: IndexMeta) -> None:
        """Persists collection metadata (atomically)."""

    def upsert(self, products: list[IndexedProduct]) -> None:
        """Writes whole products (one point each: vectors + payload at once)."""

    def delete(self, product_ids: list[str]) -> list[str]:
        """Removes products with every vector; returns the ids that existed."""

    def content_hashes(self, product_ids: list[str]) -> dict[str, str]:
        """``product_id -> content_hash`` for the ids present in the index."""

    def search(self, queries: list[SignalQuery], flt: SearchFilter) -> list[list[Candidate]]:
        """Runs all signal queries in one round trip; one candidate list per query."""

    def search_merged(self, queries: list[SignalQuery],
                      flt: SearchFilter) -> tuple[list[SignalQuery], list[list[Candidate]]]:
        """``merge_signal_lists(queries, search(queries, flt))``: one query and one candidate list
        per signal, each product at its best score over that signal's queries (a photo query's
        visual rows); a backend may get there faster (Edge reads only the kept payloads)."""

    def retrieve(self, product_ids: list[str], vectors: Sequence[str] | None = None) -> dict[str, StoredProduct]:
        """Payload and stored vectors of the ids present (similar-products, composed queries,
        shop the look); ``vectors`` names the vectors to read (None = all): reading a vector
        into Python costs, and a room photo's ~550 candidates need two of the four."""

    def scroll(self, flt: SearchFilter, limit: int) -> list[dict]:
        """Result payloads (``RESULT_PAYLOAD``) of up to ``limit`` products matching ``flt``."""

    def facet(self, key: str, flt: SearchFilter, limit: int) -> list[tuple[str, int]]:
        """Exact ``(value, count)`` of a keyword-indexed payload field over products matching ``flt``,
        largest first; a product with a list value counts once per distinct value."""

    def count_matching(self, flt: SearchFilter) -> int:
        """Exact number of products matching ``flt``."""

    def optimize(self) -> bool:
        """Indexes pending writes now; True if there was work (servers optimise on their own)."""

    def count(self) -> int: ...

    def disk_bytes(self) -> int:
        """Bytes on disk, or -1 when unknown (remote server)."""

    def close(self) -> None:
        """Flushes and releases resources (idempotent)."""
