"""Result-cache hits answered by the gateway: the contract between ranking and the gateway.

Why: a hit through the gateway was ~2-3x a ``Health.Check`` (docs/performance.md) and nearly
all of it is the second gRPC hop, since ranking's own hit work is one Redis GET. So the gateway
keeps its own copy of the results it forwarded and answers repeats from Redis. It must keep the
guarantees of ranking's signed cache (issue 14):

- **No entry across index generations.** Ranking publishes its generation as a signed *lease*
  (``<prefix>:lease:<collection>`` = ``v1:<gen>:<expires_ms>:<hmac>``) at start, after every
  write and every ``LEASE_REFRESH_S``; it never lowers a published generation. The gateway
  reads lease and entry in one round trip (``HIT_SCRIPT``), keys its entries by the lease's
  generation, and serves nothing without a valid, unexpired lease. When ranking cannot publish
  a new generation it waits out the old lease before it acknowledges the write, so once a write
  has returned no hit from before it is served. The gateway also never accepts a generation
  lower than one it has seen. Residual: someone who can *write* to Redis could replay an older
  genuine lease to a gateway that has not yet read the new one, for at most ``LEASE_MS``.
- **Forged entries rejected.** Lease MAC: a key derived from ranking's cache key
  (:func:`derive_lease_key`), so the gateway can check leases but cannot sign ranking's cache
  entries. Entry MAC: the gateway's own key (random per process unless configured), over the
  Redis key and the payload; an entry that fails it is a miss.
- **Co-located gateway** (``homesearch up``): ranking also writes the same signed lease to a
  file (``lease_file``, replaced atomically before a write is acknowledged) and the gateway
  reads that instead of Redis, keeping the entries it stored in memory as well: a repeat then
  costs no round trip at all (the file is only re-read when it changes). Writing the file is
  part of publishing: when it fails, the write waits out the old lease as above.
- **Results only for callers with read scope.** The gateway answers only callers that passed
  its API-key check, stores only what ranking answered to its read-scope credential, and
  serves nothing while ranking refuses that credential (until a forwarded call succeeds
  again; a ranking restart opens a new generation, so every entry is a miss until then).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from homesearch.v1 import search_pb2
from homesearch.validation import DEFAULT_TOP_K

LEASE_MS = 2000
LEASE_REFRESH_S = 0.5
_MAGIC = b"g1"
_TS = struct.Struct("<d")
_HEADER = len(_MAGIC) + 32 + _TS.size

# KEYS[1] = lease key; ARGV[1] = entry key up to the generation, ARGV[2] = the rest.
# Returns {lease, entry-or-false}; false when there is no lease.
HIT_SCRIPT = (
    "local lease = redis.call('GET', KEYS[1]) "
    "if not lease then return false end "
    "local g = string.match(lease, '^v1:(%d+):') "
    "if not g then return {lease, false} end "
    "return {lease, redis.call('GET', ARGV[1] .. g .. ARGV[2])}"
)
# KEYS[1] = lease key; ARGV[1] = generation, ARGV[2] = signed lease, ARGV[3] = lease ms.
# Renews the lease unless a higher generation is published already (never lowers it).
PUBLISH_SCRIPT = (
    "local cur = redis.call('GET', KEYS[1]) "
    "if cur then local g = tonumber(string.match(cur, '^v1:(%d+):') or '0') "
    "if g > tonumber(ARGV[1]) then return 0 end end "
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1"
)


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


def derive_lease_key(cache_hmac_key: bytes | str) -> bytes:
    """The key leases are signed with, derived from ranking's cache key (one-way: knowing it
    does not let anyone sign ranking's own cache entries)."""
    key = cache_hmac_key.encode() if isinstance(cache_hmac_key, str) else cache_hmac_key
    return hmac.new(key, b"homesearch generation lease v1", hashlib.sha256).digest()


def lease_key(prefix: str, collection: str) -> str:
    return f"{prefix}:lease:{collection}"


def _lease_mac(key: bytes, collection: str, generation: int, expires_ms: int) -> str:
    return hmac.new(key, f"{collection}|{generation}|{expires_ms}".encode(), hashlib.sha256).hexdigest()


def seal_lease(key: bytes, collection: str, generation: int, expires_ms: int) -> str:
    return f"v1:{generation}:{expires_ms}:{_lease_mac(key, collection, generation, expires_ms)}"


def open_lease(key: bytes, collection: str, value: bytes | str | None, now_ms: int) -> int | None:
    """The generation of a genuine, unexpired lease; None for anything else."""
    if value is None:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    parts = text.split(":")
    if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    generation, expires_ms = int(parts[1]), int(parts[2])
    if not hmac.compare_digest(parts[3], _lease_mac(key, collection, generation, expires_ms)):
        return None
    # expired, or valid for implausibly long (a lease is never issued for more than LEASE_MS)
    if not now_ms < expires_ms <= now_ms + 2 * LEASE_MS:
        return None
    return generation


def write_lease_file(path: str, value: str) -> None:
    """Replaces ``path`` with ``value`` atomically (a reader sees the old lease or the new one)."""
    import os

    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, value.encode("ascii"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


class LeaseFile:
    """Reads a lease file, re-parsing only when the file was replaced (its inode changes)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._value: str | None = None

    def read(self) -> str | None:
        import os

        try:
            st = os.stat(self.path)
        except OSError:
            return None
        ident = (st.st_ino, st.st_mtime_ns)
        if ident != self._seen:
            try:
                with open(self.path, encoding="ascii") as f:
                    self._value = f.read().strip()
            except (OSError, UnicodeDecodeError):
                return None
            self._seen = ident
        return self._value


class EntrySealer:
    """Signs and checks the gateway's entries: ``g1 + HMAC(key, redis_key || stamp || payload) +
    stamp + payload``. The MAC covers the Redis key, so an entry cannot be moved to another
    generation's key either."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.key_id = hashlib.sha256(b"id" + key).hexdigest()[:12]  # entries of other keys: other Redis keys

    def _mac(self, redis_key: str, stamp: bytes, payload: bytes) -> bytes:
        return hmac.new(self._key, redis_key.encode() + b"\0" + stamp + payload, hashlib.sha256).digest()

    def seal(self, redis_key: str, payload: bytes, now_s: float) -> bytes:
        stamp = _TS.pack(now_s)
        return _MAGIC + self._mac(redis_key, stamp, payload) + stamp + payload

    def open(self, redis_key: str, value: bytes, now_s: float, max_age_s: float) -> bytes | None:
        """The payload of a genuine entry younger than ``max_age_s``; None otherwise."""
        if len(value) < _HEADER or value[:2] != _MAGIC:
            return None
        mac, stamp, payload = value[2:34], value[34:_HEADER], value[_HEADER:]
        if not hmac.compare_digest(mac, self._mac(redis_key, stamp, payload)):
            return None
        if now_s - _TS.unpack(stamp)[0] > max_age_s:
            return None
        return payload


def entry_key_parts(prefix: str, collection: str, key_id: str, canonical: bytes) -> tuple[str, str]:
    """The gateway entry's Redis key, split around the generation (``HIT_SCRIPT`` joins them)."""
    return f"{prefix}:gw:{collection}:g", f":{key_id}:{hashlib.sha256(canonical).hexdigest()}"
