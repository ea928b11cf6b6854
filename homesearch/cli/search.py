"""``homesearch search``: query a running gateway from the terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from dataclasses import asdict

from homesearch.client import HomesearchClient, HomesearchError, SearchResult


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _fit(s: str, width: int) -> str:
    """Pads or truncates (with an ellipsis) to ``width`` terminal columns."""
    if _width(s) <= width:
        return s + " " * (width - _width(s))
    out, w = "", 0
    for c in s:
        if w + _width(c) > width - 1:
            break
        out, w = out + c, w + _width(c)
    return out + "…" + " " * (width - w - 1)


def format_table(result: SearchResult, explain: bool = False, title_width: int = 44) -> str:
    """A readable fixed-width table of hits (handles CJK widths)."""
    if not result.hits:
        return "(no results)"
    head = f"{'#':>3}  {'product':<12}  {'score':>7}  {_fit('title', title_width)}  {'category':<22}  {'price':>8}"
    lines = [head, "-" * _width(head)]
    for i, h in enumerate(result.hits, 1):
        price = f"{h.price:.2f}" if h.price is not None else "-"
        lines.append(
            f"{i:>3}  {h.product_id:<12}  {h.score:7.4f}  {_fit(h.title, title_width)}  {_fit(h.category, 22)}  {price:>8}"
        )
        if explain:
            sig = "  ".join(f"{k}={v:.4f}" for k, v in sorted(h.signal_scores.items()))
            if sig:
                lines.append(f"{'':>17}signals: {sig}")
            if h.explanation:
                lines.append(f"{'':>17}{h.explanation}")
    meta = [f"{len(result.hits)} hits", f"{result.took_ms:.1f} ms"]
    if result.query_language:
        meta.append(f"lang={result.query_language}")
    if result.cache_hit:
        meta.append("cached")
    if result.model_version:
        meta.append(f"model={result.model_version}")
    meta.append(f"request_id={result.request_id}")
    lines.append("(" + ", ".join(meta) + ")")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="homesearch search",
        description="Search a running homesearch gateway with text, a photo, or both.",
    )
    p.add_argument("text", nargs="?", default="", help="query text (any language)")
    p.add_argument("--image", help="path of a JPEG/PNG/WebP photo to search with")
    p.add_argument("--top-k", type=int, default=10, help="number of hits (1..100, default 10)")
    p.add_argument("--offset", type=int, default=0, help="hits to skip (pagination)")
    p.add_argument("--category", action="append", default=[], help="only this category (repeatable)")
    p.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE", help="attribute filter (repeatable)")
    p.add_argument("--min-price", type=float)
    p.add_argument("--max-price", type=float)
    p.add_argument("--in-stock", action="store_true", help="only products in stock")
    p.add_argument("--fusion", choices=["weighted", "rrf"], help="fusion method (default: the service's)")
    p.add_argument("--explain", action="store_true", help="show per-signal scores")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--addr", default=os.environ.get("HOMESEARCH_ADDR", "localhost:50051"),
        help="gateway host:port (env HOMESEARCH_ADDR, default localhost:50051)",
    )
    p.add_argument(
        "--api-key", default=os.environ.get("HOMESEARCH_API_KEY"),
        help="API key (env HOMESEARCH_API_KEY)",
    )
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    args = p.parse_args(argv)
    if not args.text and not args.image:
        p.error("give query text, --image FILE, or both")
    attributes = {}
    for item in args.attr:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--attr expects KEY=VALUE, got {item!r}")
        attributes[key] = value
    try:
        with HomesearchClient(args.addr, api_key=args.api_key, tls=args.tls, timeout_s=args.timeout) as hs:
            result = hs.search(
                text=args.text or None,
                image=args.image,
                top_k=args.top_k,
                offset=args.offset,
                categories=args.category,
                attributes=attributes,
                min_price=args.min_price,
                max_price=args.max_price,
                in_stock_only=args.in_stock,
                fusion=args.fusion,
                explain=args.explain,
            )
    except HomesearchError as exc:
        print(f"homesearch search: {exc.code.name}: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"homesearch search: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(result), ensure_ascii=False, indent=2))
    else:
        print(format_table(result, explain=args.explain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
