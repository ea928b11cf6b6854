"""``homesearch eval``: relevance of a running stack, through the public Search RPC.

  homesearch eval --catalog ../shared/data/ikea/catalog.jsonl --gateway localhost:50051 \\
      [--index --ranking-addr localhost:50052 --subset heldout] [--signals text,image,lexical] [--json]

Every query in --queries (default: queries.jsonl beside the catalog) is sent through
``homesearch.client.HomesearchClient.search`` and scored with the metrics of docs/formats.md.
--signals picks the fusion weights: omitted = the service defaults; a list = those signals with
equal weight, the others 0 (``--signals image`` = image only). --subset heldout|dev|test restricts
the queries (and, with --index, the products indexed) to the held-out split so the numbers are
comparable with the offline study (python -m homesearch.evaluation.study).

--text-field picks the query text (e.g. ``text_en`` of data/queries/ikea-zh.jsonl = the English twin of
each Chinese query; queries without it are skipped). With --subset, the report also splits the
metrics by seen / unseen product type (split.py). Retryable errors (the gateway's per-key rate limit,
UNAVAILABLE) are retried with backoff, so a fast run is not scored as failed queries. ``ci95`` is a
bootstrap interval (1,000 resamples of the queries, seed 0) of each metric: the noise of the query set.

--split line|type picks how --subset holds products out: by product line (default, line-hash-v1) or by
product type (type-hash-v1: every held-out query asks for a type absent from training; serve a head
trained with ``homesearch train --split type`` for an honest number, or a zero-shot tower).

--strip-attribute KEY (repeatable, needs --index) indexes the catalog without that attribute, e.g. the
implicit-attribute dev set: ``--index --strip-attribute color`` with the ``<colour> <type>`` queries, so
only the photo can answer the colour (homesearch.evaluation.sets).

--implicit-colour is the honest implicit-attribute set: the catalog is indexed without
``attributes.color`` *and* without colour words in titles and descriptions (glossary colour terms,
``sets.strip_colour_words``), and only the colour-decisive queries are scored: those naming a colour
whose relevant product's category also holds a non-relevant product of another colour in the indexed
gallery (``sets.colour_decisive``; the others a type match alone answers); --min-colour-distractors 10
asks for ten such products, the set where R@10 (not only R@1) needs the colour. The report gives both
counts (``implicit_colour``). With --index it indexes that catalog first; without, the stack must already
hold it (an earlier ``--index --implicit-colour`` run with the same --subset/--split).

--implicit-material is the implicit-material set: the gallery (the catalog, or the --subset held-out
products) is indexed without material words in titles, descriptions and the ``color`` attribute
(``sets.strip_material_words``: IKEA names the material there, "oak veneer"), and queried with
``<material> <type>`` built from the gallery's own text before stripping (``sets.implicit_material_queries``:
one per category and material label, only categories holding products of another material;
--min-material-distractors N asks for N). Fused, text alone (``text``) and photo only (``image``)
run in the same invocation on the same index, reported overall, by query part (dev / test: a hash
of the category, so the two never share a type) and by material (``implicit_material``). --queries
and --signals do not apply.

Shopper photos: ``--queries ../shared/data/ikea/photos.jsonl`` (image queries; Hit@1 = R@1 there, as
each photo has one relevant product). Without --index, --subset restricts only the queries: against a
stack holding the whole catalog, ``--subset heldout`` scores the photos of held-out products against
the full gallery. ``--region-mode off`` scores the photo query alone (what a scene-like photo gets
without shop the look); the default ``auto`` is what a storefront gets.

--index uploads the catalog (or the subset) to the ranking service first (homesearch index). The
public API has no "collection" parameter: point it at a stack started with an empty index, or
products indexed earlier stay in the gallery and change the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SIGNALS = ("text", "image", "lexical")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="homesearch eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", required=True, help="catalog JSONL (docs/formats.md)")
    ap.add_argument("--queries", help="queries JSONL (default: queries.jsonl beside the catalog)")
    ap.add_argument("--gateway", default="localhost:50051", help="gateway host:port (default %(default)s)")
    ap.add_argument("--api-key", default=os.environ.get("HOMESEARCH_API_KEY"), help="API key (default $HOMESEARCH_API_KEY)")
    ap.add_argument("--signals", help="comma list of text,image,lexical; omitted = service default fusion")
    ap.add_argument("--fusion-method", choices=["weighted", "rrf", ""], default="", help="'' = service default")
    ap.add_argument("--subset", choices=["all", "heldout", "dev", "test"], default="all")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--split", choices=["line", "type"], default="line", help="hold out product lines or types (default %(default)s)")
    ap.add_argument("--strip-attribute", action="append", default=[], metavar="KEY",
                    help="index without this attribute (implicit-attribute set; repeatable; needs --index)")
    ap.add_argument("--implicit-colour", action="store_true",
                    help="honest implicit-attribute set: no colour in the indexed text, colour-decisive queries only")
    ap.add_argument("--min-colour-distractors", type=int, default=1, metavar="N",
                    help="with --implicit-colour: the category must hold N other-colour products (10: R@10 needs the colour)")
    ap.add_argument("--implicit-material", action="store_true",
                    help="implicit-material set: no material words indexed, <material> <type> queries; fused, text and photo in one run")
    ap.add_argument("--min-material-distractors", type=int, default=1, metavar="N",
                    help="with --implicit-material: the category must hold N products of another material")
    ap.add_argument("--index", action="store_true", help="index the catalog (or subset) into the ranking service first")
    ap.add_argument("--ranking-addr", default="127.0.0.1:50052", help="ranking service for --index (default %(default)s)")
    ap.add_argument("--region-mode", choices=["auto", "on", "off"], default="auto",
                    help="photo queries: auto = the service decides (a scene-like photo is searched region by region, "
                         "led by the photo query when one product stands out), off = the photo query alone, on = "
                         "regions always; text queries ignore it (default %(default)s)")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--timeout-s", type=float, default=30.0)
    ap.add_argument("--text-field", default="text", help="query field holding the text (default %(default)s; e.g. text_en)")
    ap.add_argument("--retries", type=int, default=5, help="retries of a retryable error per query (default %(default)s)")
    ap.add_argument("--runs-out", type=Path, help="write per-query ranked ids and metrics as JSON (paired comparisons)")
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N queries (smoke runs)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    return ap


def fusion_for(signals: str | None, method: str):
    from homesearch.client import Fusion

    if not signals:
        return Fusion(method=method) if method else None
    chosen = [s.strip() for s in signals.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SIGNALS]
    if bad:
        raise SystemExit(f"homesearch eval: unknown signal(s) {bad}; choose from {SIGNALS}")
    w = 1.0 / len(chosen)
    return Fusion(method=method or "weighted", **{f"{s}_weight": (w if s in chosen else 0.0) for s in SIGNALS})


def bootstrap_ci(values: list[float], n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of per-query values."""
    import numpy as np

    if not values:
        return (0.0, 0.0)
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n, len(v)))].mean(axis=1)
    return (round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4))


def _search_with_retry(client, retries: int, sleep=time.sleep, **kw):
    delay = 0.2
    for attempt in range(retries + 1):
        try:
            return client.search(**kw)
        except Exception as e:  # noqa: BLE001
            if attempt == retries or not getattr(e, "retryable", False):
                raise
            sleep(delay)
            delay = min(delay * 2, 5.0)


def main(argv: list[str] | None = None, client_factory=None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from homesearch.evaluation.metrics import METRIC_NAMES, evaluate, query_metrics
    from homesearch.evaluation.sets import (
        colour_decisive,
        implicit_material_queries,
        strip_attributes,
        strip_colour_words,
        strip_material_words,
        write_catalog,
    )
    from homesearch.evaluation.split import load_jsonl, make_split

    catalog_path = Path(args.catalog).resolve()
    qpath = Path(args.queries).resolve() if args.queries else catalog_path.with_name("queries.jsonl")
    catalog = load_jsonl(catalog_path)
    queries = [] if args.implicit_material else load_jsonl(qpath)  # the material set builds its own
    queries = [q for q in queries if q.get(args.text_field) or q.get("image")]
    qrels = {q["id"]: q.get("relevant", []) for q in queries}
    split = None
    if args.subset != "all":
        split = make_split(catalog, queries, seed=args.split_seed, by=args.split)
        parts = ("dev", "test") if args.subset == "heldout" else (args.subset,)
        keep = set(split.products("dev", "test"))  # the held-out gallery (as offline)
        catalog = [p for p in catalog if p["id"] in keep]
        queries = [q for q in queries if split.query_part.get(q["id"]) in parts]
        qrels = {q["id"]: split.query_relevant[q["id"]] for q in queries}
    if args.limit:
        queries = queries[: args.limit]
        qrels = {q["id"]: qrels[q["id"]] for q in queries}

    if args.strip_attribute:
        if not args.index:
            raise SystemExit("homesearch eval: --strip-attribute changes what is indexed, so it needs --index")
        catalog = strip_attributes(catalog, args.strip_attribute)
    implicit: dict = {}
    if args.implicit_colour:
        # on the gallery, colours still known
        decisive = colour_decisive(queries, qrels, catalog, args.text_field, args.min_colour_distractors)
        catalog = strip_colour_words(strip_attributes(catalog, ["color"]))
        implicit = {"queries_before": len(queries), "colour_decisive": len(decisive),
                    "min_colour_distractors": args.min_colour_distractors}
        queries = [q for q in queries if q["id"] in decisive]
        qrels = {q["id"]: qrels[q["id"]] for q in queries}
    if args.implicit_material:
        if args.implicit_colour or args.strip_attribute or args.signals:
            raise SystemExit("homesearch eval: --implicit-material runs its own signals on its own index")
        queries = implicit_material_queries(catalog, args.min_material_distractors)
        if args.subset in ("dev", "test"):
            queries = [q for q in queries if q["part"] == args.subset]
        qrels = {q["id"]: q["relevant"] for q in queries}
        catalog = strip_material_words(catalog)
        implicit = {"queries": len(queries), "min_material_distractors": args.min_material_distractors}
    report: dict = {"gateway": args.gateway, "catalog": str(catalog_path), "queries": str(qpath), "subset": args.subset,
                    "split": args.split if split is not None else None, "stripped_attributes": args.strip_attribute,
                    "signals": args.signals or "service-default", "fusion_method": args.fusion_method or "service-default",
                    "region_mode": args.region_mode}
    if implicit:
        report["implicit_material" if args.implicit_material else "implicit_colour"] = implicit
    if args.index:
        from services.ranking.ingest.cli import main as index_main

        with tempfile.TemporaryDirectory() as tmp:
            sub = catalog_path
            if args.subset != "all" or args.strip_attribute or args.implicit_colour or args.implicit_material:  # a rewritten catalog, absolute image paths
                sub = write_catalog(catalog, catalog_path.parent, Path(tmp) / "catalog.jsonl")
            t = time.perf_counter()
            # The index CLI prints its summary on stdout: keep stdout for the report (--json).
            with contextlib.redirect_stdout(sys.stderr):
                rc = index_main([str(sub), "--ranking-addr", args.ranking_addr, "--no-progress"])
            report["index_seconds"] = round(time.perf_counter() - t, 1)
            if rc:
                print("homesearch eval: indexing failed", file=sys.stderr)
                return rc

    if client_factory is None:
        from homesearch.client import HomesearchClient

        client_factory = lambda: HomesearchClient(args.gateway, api_key=args.api_key, timeout_s=args.timeout_s)  # noqa: E731
    if args.implicit_material:
        return _material_report(args, report, queries, qrels, client_factory)
    fusion = fusion_for(args.signals, args.fusion_method)
    runs: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    lat: list[float] = []
    versions: set[str] = set()
    client = client_factory()
    try:
        for q in tqdm(queries, desc="eval", disable=args.json):
            image = (qpath.parent / q["image"]) if q.get("image") else None
            t = time.perf_counter()
            try:
                res = _search_with_retry(client, args.retries, text=q.get(args.text_field), image=image,
                                         top_k=args.top_k, fusion=fusion, no_cache=True, region_mode=args.region_mode)
            except Exception as e:  # noqa: BLE001 - a failed query scores zero and is reported
                errors[q["id"]] = str(e)[:200]
                continue
            lat.append((time.perf_counter() - t) * 1000)
            runs[q["id"]] = res.product_ids
            if res.model_version:
                versions.add(res.model_version)
    finally:
        close = getattr(client, "close", None)
        if close:
            close()
    report["text_field"] = args.text_field
    report["metrics"] = evaluate(runs, qrels)
    per_query = {qid: query_metrics(list(runs.get(qid, [])), rel) for qid, rel in qrels.items() if rel}
    report["ci95"] = {k: bootstrap_ci([m[k] for m in per_query.values()]) for k in METRIC_NAMES}
    if split is not None:
        for name, want in (("seen_type", True), ("unseen_type", False)):
            sub = {qid: rel for qid, rel in qrels.items() if split.query_seen_type.get(qid) is want}
            report[name] = evaluate(runs, sub)
    if args.runs_out:
        args.runs_out.write_text(json.dumps({qid: {"ranked": runs.get(qid, []), **m} for qid, m in per_query.items()},
                                            indent=1), encoding="utf-8")
    report["errors"] = len(errors)
    report["error_examples"] = dict(list(errors.items())[:5])
    report["model_versions"] = sorted(versions)
    if lat:
        s = sorted(lat)
        report["latency_ms"] = {"p50": round(s[len(s) // 2], 2), "p95": round(s[int(len(s) * 0.95) - 1], 2)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        m = report["metrics"]
        print(f"n={m['n']} R@1={m['recall@1']:.3f} R@10={m['recall@10']:.3f} MRR@10={m['mrr@10']:.3f} "
              f"nDCG@10={m['ndcg@10']:.3f} errors={len(errors)} versions={report['model_versions']}")
        for name in ("seen_type", "unseen_type"):
            if name in report:
                m = report[name]
                print(f"  {name}: n={m['n']} R@1={m['recall@1']:.3f} R@10={m['recall@10']:.3f} "
                      f"MRR@10={m['mrr@10']:.3f} nDCG@10={m['ndcg@10']:.3f}")
    return 1 if errors and len(errors) == len(queries) else 0


def _run(client, queries: list[dict], fusion, args) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Ranked ids per query (and errors) of one fusion setting."""
    runs: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for q in queries:
        try:
            res = _search_with_retry(client, args.retries, text=q["text"], top_k=args.top_k, fusion=fusion, no_cache=True)
        except Exception as e:  # noqa: BLE001 - a failed query scores zero and is reported
            errors[q["id"]] = str(e)[:200]
            continue
        runs[q["id"]] = res.product_ids
    return runs, errors


def _material_report(args, report: dict, queries: list[dict], qrels: dict[str, list[str]], client_factory) -> int:
    """The implicit-material set: fused, text alone and photo only on the same index, in one run."""
    from homesearch.evaluation.metrics import evaluate

    systems = {"fused": fusion_for(None, args.fusion_method), "text": fusion_for("text", args.fusion_method),
               "photo": fusion_for("image", args.fusion_method)}
    groups = {"all": [q["id"] for q in queries]}
    for key in ("part", "material"):
        for q in queries:
            groups.setdefault(f"{key}:{q[key]}", []).append(q["id"])
    client = client_factory()
    n_errors = 0
    try:
        for name, fusion in systems.items():
            runs, errors = _run(client, queries, fusion, args)
            n_errors += len(errors)
            report[name] = {g: evaluate(runs, {i: qrels[i] for i in ids}) for g, ids in sorted(groups.items())}
    finally:
        close = getattr(client, "close", None)
        if close:
            close()
    report["errors"] = n_errors
    report["query_examples"] = [q["text"] for q in queries[:8]]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for g in sorted(groups):
            row = " | ".join(f"{s} R@1 {report[s][g]['recall@1']:.3f} R@10 {report[s][g]['recall@10']:.3f} "
                             f"nDCG {report[s][g]['ndcg@10']:.3f}" for s in systems)
            print(f"{g} (n={len(groups[g])}): {row}")
    return 1 if n_errors and n_errors == len(queries) * len(systems) else 0


if __name__ == "__main__":
    sys.exit(main())
