"""``homesearch search``: query a running gateway from the terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from dataclasses import asdict
from pathlib import Path

from homesearch.client import REGION_MODES, SIMILAR_SCOPES, Facets, HomesearchClient, HomesearchError, SearchResult


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
    if not result.hits and not result.facets:
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
    for i, r in enumerate(result.regions, 1):
        box = ", ".join(f"{v:.2f}" for v in r.box)
        top = ", ".join(f"{h.product_id} {_fit(h.title, 24).rstrip()}" for h in r.hits[:3])
        lines.append(f"region {i:>2} [{box}] {r.score:.3f}: {top}")
    for name, values in result.facets.items():
        lines.append(f"facet {name}: " + ", ".join(f"{v.value} ({v.count})" for v in values))
    if result.interpretation:
        lines.append(f"read as: {result.interpretation}")
    meta = [f"{len(result.hits)} hits", f"{result.took_ms:.1f} ms"]
    if result.query_language:
        meta.append(f"lang={result.query_language}")
    if result.cache_hit:
        meta.append("cached")
    if result.degraded:
        d = result.degraded
        what = f"stale cached result, {d.stale_age_s:.0f} s old" if d.stale else "without " + "+".join(d.missing_signals)
        meta.append(f"DEGRADED ({what})")
    if result.model_version:
        meta.append(f"model={result.model_version}")
    meta.append(f"request_id={result.request_id}")
    lines.append("(" + ", ".join(meta) + ")")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="homesearch search",
        description="Search a running homesearch gateway with text, a photo, or both; find products similar "
        "to a catalog product (--similar-to); shop the look of a room photo (--regions); compose a photo or "
        "product with a change ('--image sofa.jpg \"but in green\"'); count facets (--facet-*).",
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
    p.add_argument("--similar-to", metavar="PRODUCT_ID",
                   help="rank by this catalog product's stored vectors, excluding it; with TEXT: 'this product, but TEXT'")
    p.add_argument("--scope", choices=list(SIMILAR_SCOPES), default="any",
                   help="with --similar-to: any category, the same category, or other categories (complete the look)")
    p.add_argument("--regions", choices=list(REGION_MODES), default="auto",
                   help="shop the look: search a photo per region (auto = for room-like photos; default auto)")
    p.add_argument("--max-regions", type=int, default=0, help="regions shown in region mode (0 = service default)")
    p.add_argument("--facet-categories", action="store_true", help="count products per category (filtered catalog)")
    p.add_argument("--facet-attr", action="append", default=[], metavar="KEY", help="count products per value of KEY (repeatable)")
    p.add_argument("--facet-price", metavar="EDGES", help="price bucket edges, e.g. 50,100,500")
    p.add_argument("--explain", action="store_true", help="show per-signal scores and how the query was read")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--addr", default=os.environ.get("HOMESEARCH_ADDR", "localhost:50051"),
        help="gateway host:port (env HOMESEARCH_ADDR, default localhost:50051)",
    )
    p.add_argument(
        "--api-key", default=os.environ.get("HOMESEARCH_API_KEY"),
        help="API key (env HOMESEARCH_API_KEY)",
    )
    p.add_argument("--api-key-file", type=Path, default=os.environ.get("HOMESEARCH_API_KEY_FILE") or None,
                   help="file holding the API key (env HOMESEARCH_API_KEY_FILE); keeps the key out of shell history")
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--tls-ca", type=Path, default=os.environ.get("HOMESEARCH_TLS_CA") or None,
                   help="PEM CA bundle to trust for the gateway's certificate (implies --tls; env HOMESEARCH_TLS_CA; "
                   "default: the system roots)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    args = p.parse_args(argv)
    if not args.text and not args.image and not args.similar_to:
        p.error("give query text, --image FILE, --similar-to PRODUCT_ID, or text with one of them")
    facets = None
    if args.facet_categories or args.facet_attr or args.facet_price:
        try:
            edges = [float(x) for x in args.facet_price.split(",")] if args.facet_price else []
        except ValueError:
            p.error(f"--facet-price expects comma-separated numbers, got {args.facet_price!r}")
        facets = Facets(categories=args.facet_categories, attributes=args.facet_attr, price_edges=edges)
    attributes = {}
    for item in args.attr:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--attr expects KEY=VALUE, got {item!r}")
        attributes[key] = value
    try:
        api_key = args.api_key
        if args.api_key_file:
            api_key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
        roots = Path(args.tls_ca).read_bytes() if args.tls_ca else None
        with HomesearchClient(args.addr, api_key=api_key, tls=args.tls or roots is not None, timeout_s=args.timeout,
                              root_certificates=roots) as hs:
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
                similar_to=args.similar_to,
                similar_scope=args.scope,
                region_mode=args.regions,
                max_regions=args.max_regions,
                facets=facets,
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
