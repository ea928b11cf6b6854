"""Prometheus metrics of the ranking service (served on its metrics port).

Stage latencies answer "where did the time go" per request; cache counters make
a dead or slow Redis visible (bypass) without it ever failing a search.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from homesearch.observability.metrics import LATENCY_BUCKETS

STAGE_SECONDS = Histogram(
    "homesearch_stage_seconds",
    "Time per ranking stage (embed: query encoders incl. cache; index: Qdrant round trip; fusion).",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
CACHE_REQUESTS = Counter(
    "homesearch_cache_requests_total",
    "Cache lookups by cache (embedding|result|payload: one per product payload) and result (hit|miss|bypass).",
    ["cache", "result"],
)
CACHE_REJECTED = Counter(
    "homesearch_cache_rejected_total",
    "Cache entries ignored because their signature did not verify (forged, corrupt or unsigned).",
    ["cache"],
)
ADMISSION_REFUSED = Counter(
    "homesearch_admission_refused_total",
    "Calls refused with RESOURCE_EXHAUSTED because too many were in flight.",
    ["method"],
)
DEGRADED_ANSWERS = Counter(
    "homesearch_degraded_answers_total",
    "Searches answered without some signal (encoders down), by how (partial|stale).",
    ["how"],
)
AUTH_REJECTED = Counter(
    "homesearch_internal_auth_rejected_total",
    "Internal RPCs refused for a missing/invalid credential or a missing scope.",
    ["reason"],
)
CACHE_CIRCUIT_OPEN = Gauge("homesearch_cache_circuit_open", "1 while the Redis circuit breaker is open.")
INDEX_PRODUCTS = Gauge("homesearch_index_products", "Products in the index.")
INDEX_DISK_BYTES = Gauge("homesearch_index_disk_bytes", "Bytes on disk of the embedded index (-1 unknown).")
INDEX_GENERATION = Gauge("homesearch_index_generation", "Current index generation.")
INGEST_PRODUCTS = Counter(
    "homesearch_ingest_products_total",
    "Products received by CatalogService.Upsert by outcome (upserted|unchanged|failed).",
    ["result"],
)
INGEST_DELETED = Counter("homesearch_ingest_deleted_total", "Products deleted by CatalogService.Delete.")
INGEST_BATCH_SECONDS = Histogram(
    "homesearch_ingest_batch_seconds",
    "Time to embed and write one ingestion batch.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
