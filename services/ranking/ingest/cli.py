"""``homesearch index CATALOG.jsonl --ranking-addr HOST:PORT``: bulk catalog ingestion.

Reads and validates the JSONL catalog, loads photos with bounded concurrency,
and streams products to ``CatalogService.Upsert`` in batches (one stream per
batch: progress and failures are reported as they happen, and a retried batch
is cheap because unchanged products are skipped by content hash). ``--streams``
batches are in flight at once, so the ranking service embeds the next batch while
it writes the last one and the encoders never wait on this client; each stream is
still written whole or not at all. Prints a summary and exits 1 when anything
failed, unless ``--allow-failures``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from services.ranking.ingest.images import ImageLoadError, load_image
from services.ranking.ingest.reader import CatalogRecord, LineError, read_catalog
from homesearch.v1 import ranking_pb2, ranking_pb2_grpc

# RESOURCE_EXHAUSTED is not transient here: for a stream it means a message over the size
# limit, which a retry cannot fix (oversized products are caught before sending, below).
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# The ranking service's per-message limit (homesearch.rpc.server.MAX_MESSAGE_BYTES) less
# room for the request envelope.
MAX_PRODUCT_BYTES = 32 * 1024 * 1024 - 64 * 1024


@dataclass
class Failure:
    product_id: str
    line: int | None
    code: str
    message: str


@dataclass
class Summary:
    upserted: int = 0
    unchanged: int = 0
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    index_generation: int = 0
    seconds: float = 0.0

    @property
    def processed(self) -> int:
        return self.upserted + self.unchanged + len(self.failures)

    def to_dict(self) -> dict:
        return {
            "upserted": self.upserted,
            "unchanged": self.unchanged,
            "failed": len(self.failures),
            "failures": [f.__dict__ for f in self.failures],
            "warnings": list(self.warnings),
            "index_generation": self.index_generation,
            "seconds": round(self.seconds, 3),
            "products_per_s": round(self.processed / self.seconds, 2) if self.seconds else 0.0,
        }


def _to_product(rec: CatalogRecord, images: list[bytes]) -> ranking_pb2.Product:
    p = ranking_pb2.Product(
        id=rec.id,
        title=rec.title,
        description=rec.description,
        category=rec.category,
        attributes=rec.attributes,
        currency=rec.currency,
        image_uris=rec.image_refs,
        images=images,
    )
    if rec.price is not None:
        p.price = rec.price
    if rec.in_stock is not None:
        p.in_stock = rec.in_stock
    return p


def _load_all(rec: CatalogRecord, base: Path, timeout_s: float, max_bytes: int) -> list[bytes]:
    return [load_image(ref, base, timeout_s=timeout_s, max_bytes=max_bytes) for ref in rec.image_refs]


def prepared_products(
    items: Iterable[CatalogRecord | LineError],
    base_dir: Path,
    pool: ThreadPoolExecutor,
    *,
    window: int,
    timeout_s: float,
    max_bytes: int,
) -> Iterator[tuple[CatalogRecord | LineError, ranking_pb2.Product | None, str]]:
    """Yields (record, product or None, error) in file order; up to ``window`` loads run ahead."""
    pending: deque[tuple[CatalogRecord | LineError, Future | None]] = deque()

    def drain_one():
        rec, fut = pending.popleft()
        if fut is None:
            return rec, None, rec.message  # LineError
        try:
            return rec, _to_product(rec, fut.result()), ""
        except ImageLoadError as exc:
            return rec, None, f"image not loaded: {exc}"

    for item in items:
        if isinstance(item, LineError):
            pending.append((item, None))
        else:
            pending.append((item, pool.submit(_load_all, item, base_dir, timeout_s, max_bytes)))
        while len(pending) > window:
            yield drain_one()
    while pending:
        yield drain_one()


def _upsert_batch(stub, batch: list[ranking_pb2.Product], timeout_s: float, retries: int = 3, metadata=()):
    delay = 1.0
    for attempt in range(retries + 1):
        try:
            return stub.Upsert(iter([ranking_pb2.UpsertRequest(product=p) for p in batch]), timeout=timeout_s,
                               metadata=metadata)
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE or attempt == retries:
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="homesearch index",
        description="Index a catalog JSONL file (docs/formats.md) into a running ranking service.",
    )
    p.add_argument("catalog", type=Path, help="catalog JSONL file; relative image paths resolve against its folder")
    p.add_argument("--ranking-addr", default="127.0.0.1:50052", help="ranking service host:port (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="products per Upsert stream (default %(default)s)")
    p.add_argument("--concurrency", type=int, default=8, help="parallel image loads (default %(default)s)")
    p.add_argument("--streams", type=int, default=2,
                   help="Upsert streams (batches) in flight at once (default %(default)s)")
    p.add_argument("--image-timeout-s", type=float, default=10.0, help="per-image load timeout (default %(default)s)")
    p.add_argument(
        "--max-image-bytes", type=int, default=10 * 1024 * 1024, help="largest accepted image (default 10 MiB)"
    )
    p.add_argument("--rpc-timeout-s", type=float, default=600.0, help="deadline per batch RPC (default %(default)s)")
    p.add_argument("--retries", type=int, default=3, help="retries of a batch on UNAVAILABLE (default %(default)s)")
    p.add_argument("--allow-failures", action="store_true", help="exit 0 even when some products failed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--token-file", type=Path, default=None,
                   help="file with the write-scope service token (default: $HOMESEARCH_SERVICE_TOKEN_FILE, "
                   "else $HOMESEARCH_SERVICE_TOKEN)")
    p.add_argument("--tls-ca", default=os.environ.get("HOMESEARCH_RANKING_TLS_CA", ""),
                   help="CA of the ranking service's certificate: connect with TLS [HOMESEARCH_RANKING_TLS_CA]")
    p.add_argument("--tls-cert", default=os.environ.get("HOMESEARCH_RANKING_CLIENT_CERT", ""),
                   help="client certificate for mTLS [HOMESEARCH_RANKING_CLIENT_CERT]")
    p.add_argument("--tls-key", default=os.environ.get("HOMESEARCH_RANKING_CLIENT_KEY", ""),
                   help="client key for mTLS [HOMESEARCH_RANKING_CLIENT_KEY]")
    return p


def service_channel(args: argparse.Namespace, options: list) -> tuple[grpc.Channel, tuple]:
    """Channel to the ranking service and the metadata carrying the service token."""
    from homesearch.rpc.service_auth import ChannelSecurity, client_metadata, token_from_env

    token = args.token_file.read_text().strip() if getattr(args, "token_file", None) else token_from_env()
    security = ChannelSecurity(ca=getattr(args, "tls_ca", ""), cert=getattr(args, "tls_cert", ""),
                               key=getattr(args, "tls_key", ""))
    return security.channel(args.ranking_addr, options), client_metadata(token)


def run(args: argparse.Namespace) -> Summary:
    from tqdm import tqdm

    summary = Summary()
    line_of: dict[str, int] = {}
    base = args.catalog.resolve().parent
    started = time.perf_counter()
    channel, metadata = service_channel(
        args, [("grpc.max_send_message_length", 64 * 1024 * 1024), ("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    stub = ranking_pb2_grpc.CatalogServiceStub(channel)
    bar = tqdm(desc="indexing", unit="product", disable=args.no_progress, file=sys.stderr, dynamic_ncols=True)
    streams = max(1, getattr(args, "streams", 1))
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.concurrency), thread_name_prefix="img") as pool, \
                ThreadPoolExecutor(max_workers=streams, thread_name_prefix="upsert") as senders:
            batch: list[ranking_pb2.Product] = []
            inflight: deque[tuple[Future, int]] = deque()

            def collect() -> None:
                fut, n = inflight.popleft()
                resp = fut.result()
                summary.upserted += resp.upserted
                summary.unchanged += resp.unchanged
                summary.index_generation = max(summary.index_generation, resp.index_generation)
                for f in resp.failed:
                    summary.failures.append(Failure(f.product_id, line_of.get(f.product_id), f.code, f.message))
                bar.update(n)
                bar.set_postfix(upserted=summary.upserted, unchanged=summary.unchanged, failed=len(summary.failures))

            def flush() -> None:
                if not batch:
                    return
                while len(inflight) >= streams:
                    collect()
                fut = senders.submit(_upsert_batch, stub, list(batch), args.rpc_timeout_s, args.retries, metadata)
                inflight.append((fut, len(batch)))
                batch.clear()

            try:
                for rec, product, error in prepared_products(
                    read_catalog(args.catalog),
                    base,
                    pool,
                    window=max(args.batch_size * (streams + 1), args.concurrency * 4),
                    timeout_s=args.image_timeout_s,
                    max_bytes=args.max_image_bytes,
                ):
                    if product is None:
                        pid = rec.product_id if isinstance(rec, LineError) else rec.id
                        summary.failures.append(Failure(pid, rec.line, "INVALID_ARGUMENT", error))
                        bar.update(1)
                        continue
                    for name in getattr(rec, "unknown_fields", ()):
                        summary.warnings.append(f"line {rec.line} id={rec.id}: unknown field {name!r} ignored")
                    size = product.ByteSize()
                    if size > MAX_PRODUCT_BYTES:
                        summary.failures.append(Failure(
                            product.id, rec.line, "INVALID_ARGUMENT",
                            f"product is {size} bytes with its {len(product.images)} photo(s); one product may be at "
                            f"most {MAX_PRODUCT_BYTES} bytes: use fewer or smaller photos"))
                        bar.update(1)
                        continue
                    line_of[product.id] = rec.line
                    batch.append(product)
                    if len(batch) >= args.batch_size:
                        flush()
                flush()
                while inflight:
                    collect()
            finally:
                for fut, _ in inflight:  # an error above: do not start streams nobody will read
                    fut.cancel()
        # streams answer out of file order: report failures by line, as a sequential run would
        summary.failures.sort(key=lambda f: f.line if f.line is not None else 0)
    finally:
        bar.close()
        channel.close()
        summary.seconds = time.perf_counter() - started
    return summary


def print_summary(summary: Summary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=1))
        return
    d = summary.to_dict()
    print(
        f"upserted {d['upserted']}, unchanged {d['unchanged']}, failed {d['failed']} "
        f"in {d['seconds']:.1f} s ({d['products_per_s']} products/s), index generation {d['index_generation']}"
    )
    for w in summary.warnings:
        print(f"  WARNING {w}")
    for f in summary.failures:
        where = f"line {f.line}" if f.line else "line ?"
        print(f"  FAILED {where} id={f.product_id or '-'} {f.code}: {f.message}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.catalog.is_file():
        print(f"homesearch index: no such file: {args.catalog}", file=sys.stderr)
        return 2
    try:
        summary = run(args)
    except grpc.RpcError as exc:
        print(f"homesearch index: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print_summary(summary, args.json)
    return 0 if not summary.failures or args.allow_failures else 1


if __name__ == "__main__":
    sys.exit(main())
