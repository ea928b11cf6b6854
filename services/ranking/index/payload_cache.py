"""Result payloads of recently returned points, kept in the ranking process until the next write.

Why: on the embedded backend a query's payloads come from one ``retrieve`` of the points its
signals keep, and turning each Rust payload into a Python dict costs ~18 us idle (more under
load): ~1.5 ms of a 2.6 ms text search on the dev catalog, about three quarters of the index
stage in a served text miss (docs/performance.md, "Stop 23"). Hot products recur across queries,
so their dicts are reused instead of read again.

Consistency: every write to the index runs inside ``writing()``, which empties the cache once
the write is applied (and before, so readers during the write go to the shard). A reader takes
``epoch()`` *before* it reads the shard and hands it back to ``put_many``; entries read across a
write are dropped, so a cached payload
is never older than the last completed write. Payload dicts are shared between requests and
threads: nothing downstream may mutate a candidate's payload (fusion, boosts and responses only
read it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

DEFAULT_MAX_ENTRIES = 20_000  # ~1-2 KB per dict: tens of MB at most


class PayloadCache:
    """A bounded LRU map point id -> payload dict, emptied by every write (see module doc)."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0 (0 = off), got {max_entries}")
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()
        self._epoch = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def __len__(self) -> int:
        return len(self._items)

    def epoch(self) -> int:
        """The write count a reader must pass to ``put_many`` (take it before reading the shard)."""
        with self._lock:
            return self._epoch

    def get_many(self, keys: Iterable[Hashable]) -> dict[Hashable, dict[str, Any]]:
        """The cached payloads among ``keys`` (marked recently used)."""
        if not self.enabled:
            return {}
        found: dict[Hashable, dict[str, Any]] = {}
        with self._lock:
            for k in keys:
                payload = self._items.get(k)
                if payload is not None:
                    self._items.move_to_end(k)
                    found[k] = payload
        return found

    def put_many(self, epoch: int, items: Mapping[Hashable, dict[str, Any]]) -> bool:
        """Caches ``items`` read at ``epoch``; False (nothing kept) if a write happened since."""
        if not self.enabled or not items:
            return False
        with self._lock:
            if epoch != self._epoch:
                return False
            for k, payload in items.items():
                self._items[k] = payload
                self._items.move_to_end(k)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
            return True

    def invalidate(self) -> None:
        """Forgets every entry and makes reads in flight drop what they would cache."""
        with self._lock:
            self._epoch += 1
            self._items.clear()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Wraps one write to the index: empties the cache before it (readers during the write
        go to the shard) and after it, even when the write fails part way."""
        self.invalidate()
        try:
            yield
        finally:
            self.invalidate()
