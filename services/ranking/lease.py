"""The signed generation lease the gateway's result cache trusts (contract: homesearch/edge_cache.py).

Ranking publishes its index generation at start, after every write and every
``LEASE_REFRESH_S``, signed with a key derived from its cache key and valid for ``LEASE_MS``.
If a new generation cannot be published (Redis down or refusing writes), the write waits out
the last lease before it is acknowledged: by then every gateway has stopped trusting the old
generation, so an acknowledged write is never followed by a hit from before it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from homesearch import edge_cache
from services.ranking.cache import RedisCache

log = logging.getLogger(__name__)


class LeasePublisher:
    def __init__(self, cache: RedisCache, collection: str, cache_hmac_key: str, *, lease_file: str = "",
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.cache = cache
        self.lease_file = lease_file  # also published here, for a gateway on this machine
        self.collection = collection
        self._key = edge_cache.derive_lease_key(cache_hmac_key)
        self._clock_ms = clock_ms
        self._valid_until = 0.0  # monotonic end of the last lease that reached Redis
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file_lock = threading.Lock()
        self._file_generation = 0

    def publish(self, generation: int) -> bool:
        """Publishes (or renews) the lease of ``generation``; False when Redis did not take it."""
        expires = self._clock_ms() + edge_cache.LEASE_MS
        value = edge_cache.seal_lease(self._key, self.collection, generation, expires)
        started = time.monotonic()
        ok = self.cache.run_script(edge_cache.PUBLISH_SCRIPT, edge_cache.lease_key(self.cache.prefix, self.collection),
                                   generation, value, edge_cache.LEASE_MS)
        if self.lease_file:
            with self._file_lock:
                if generation >= self._file_generation:  # never lowers the file's generation either
                    try:
                        edge_cache.write_lease_file(self.lease_file, value)
                        self._file_generation = generation
                    except OSError as exc:
                        log.warning("lease file not written", extra={"path": self.lease_file, "error": repr(exc)})
                        ok = False
        if ok:
            self._valid_until = max(self._valid_until, started + edge_cache.LEASE_MS / 1000.0)
        return ok

    def publish_or_outlast(self, generation: int) -> None:
        """After a write: publish the new generation, else wait until the old lease has expired."""
        if self.publish(generation):
            return
        left = self._valid_until - time.monotonic()
        if left > 0:
            log.warning("generation lease not published; waiting out the old one", extra={"wait_s": round(left, 3)})
            time.sleep(left)

    def start(self, current: Callable[[], int]) -> None:
        """Renews the lease of ``current()`` every ``LEASE_REFRESH_S`` until :meth:`close`."""
        if self._thread is not None:
            return

        def renew() -> None:
            while not self._stop.wait(edge_cache.LEASE_REFRESH_S):
                try:
                    self.publish(current())
                except Exception:  # noqa: BLE001 - the renewer must outlive any hiccup
                    log.debug("generation lease renewal failed", exc_info=True)

        self._thread = threading.Thread(target=renew, name="generation-lease", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
