"""``homesearch delete ID... --ranking-addr HOST:PORT``: remove products (every vector) by id."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import grpc

from homesearch.v1 import ranking_pb2, ranking_pb2_grpc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="homesearch delete", description="Delete products by id from a ranking service.")
    p.add_argument("ids", nargs="*", help="product ids to delete")
    p.add_argument("--from-file", type=Path, help="file with one product id per line ('-' = stdin)")
    p.add_argument("--ranking-addr", default="127.0.0.1:50052", help="ranking service host:port (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=1000, help="ids per Delete call (default %(default)s)")
    p.add_argument("--timeout-s", type=float, default=60.0, help="deadline per call (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--token-file", type=Path, default=None,
                   help="file with the write-scope service token (default: $HOMESEARCH_SERVICE_TOKEN_FILE, "
                   "else $HOMESEARCH_SERVICE_TOKEN)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ids = list(args.ids)
    if args.from_file:
        text = sys.stdin.read() if str(args.from_file) == "-" else args.from_file.read_text(encoding="utf-8")
        ids += [line.strip() for line in text.splitlines() if line.strip()]
    ids = list(dict.fromkeys(ids))
    if not ids:
        print("homesearch delete: no ids given", file=sys.stderr)
        return 2
    deleted, not_found, generation = 0, [], 0
    from services.ranking.ingest.cli import service_channel

    channel, metadata = service_channel(args, [])
    with channel:
        stub = ranking_pb2_grpc.CatalogServiceStub(channel)
        try:
            for i in range(0, len(ids), args.batch_size):
                resp = stub.Delete(ranking_pb2.DeleteRequest(product_ids=ids[i : i + args.batch_size]), timeout=args.timeout_s,
                                    metadata=metadata)
                deleted += resp.deleted
                not_found += list(resp.not_found)
                generation = resp.index_generation
        except grpc.RpcError as exc:
            print(f"homesearch delete: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps({"deleted": deleted, "not_found": not_found, "index_generation": generation}))
    else:
        print(f"deleted {deleted}, not found {len(not_found)}, index generation {generation}")
        for pid in not_found:
            print(f"  not found: {pid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
