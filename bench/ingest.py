"""Ingest suite: products/s from a catalog file (photos on disk) to searchable, end to end.

Runs ``homesearch index CATALOG --ranking-addr ...`` (the real CLI, a subprocess) against the
running stack and times it to the moment the products are searchable (Upsert returns only after
the write; a search for one product's title must then find it). Baseline in the same run: the
encoder work alone for the same products (passage texts + photos through ``EncoderClient``
straight to Triton, batch 32), i.e. the embedding floor of ingestion; the ratio shows what the
rest of the pipeline (reading, image loading, gRPC streaming, BM25/language analysis, Qdrant
writes) costs on top. For the IKEA catalog with timing per stage, see the ranking engineer's
``bench/index_ikea.py`` (it starts its own stack).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import SuiteResult, Table, machine_info, ratio
from bench.stack_proc import StackAddrs


def _catalog_rows(catalog: Path, limit: int | None = None) -> list[dict]:
    rows = [json.loads(line) for line in catalog.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def encoder_floor(addrs: StackAddrs, catalog: Path, batch: int = 32) -> dict:
    """Seconds to embed every product's passage text and photos directly through Triton."""
    from services.encoders.client import EncoderClient

    rows = _catalog_rows(catalog)
    base = catalog.resolve().parent
    texts, images = [], []
    for r in rows:
        attrs = ", ".join(f"{k}: {v}" for k, v in (r.get("attributes") or {}).items())
        texts.append(". ".join(x for x in (r.get("title", ""), r.get("category", ""), attrs, r.get("description", "")) if x))
        for ref in ([r["image"]] if r.get("image") else []) + list(r.get("images") or []):
            p = Path(ref) if Path(ref).is_absolute() else base / ref
            if p.is_file():
                images.append(p.read_bytes())
    client = EncoderClient(addrs.triton, timeout_s=300, max_batch=batch)
    try:
        client.embed_texts(texts[:2], "passage")  # warm
        t0 = time.perf_counter()
        for s in range(0, len(texts), batch):
            client.embed_texts(texts[s:s + batch], "passage")
        t_text = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in range(0, len(images), batch):
            client.embed_images(images[s:s + batch])
        t_img = time.perf_counter() - t0
    finally:
        client.close()
    total = t_text + t_img
    return {"products": len(rows), "images": len(images), "text_s": round(t_text, 2), "image_s": round(t_img, 2),
            "seconds": round(total, 2), "products_per_s": round(len(rows) / total, 2) if total else None}


def index_catalog(addrs: StackAddrs, catalog: Path, batch_size: int = 64) -> dict:
    """``homesearch index`` as a user runs it, timed until a product is findable."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "homesearch.cli", "index", str(catalog), "--ranking-addr", addrs.ranking,
         "--batch-size", str(batch_size), "--no-progress", "--json"],
        capture_output=True, text=True, timeout=3600,
    )
    cli_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"homesearch index failed ({proc.returncode}): {proc.stderr[-2000:]} {proc.stdout[-2000:]}")
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    # Searchable check: the last product's title must be found (no_cache so nothing stale helps).
    from homesearch.client import HomesearchClient

    last = _catalog_rows(catalog)[-1]
    with HomesearchClient(addrs.gateway, api_key=addrs.api_key, timeout_s=60) as hs:
        found = False
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            found = last["id"] in hs.search(last["title"], top_k=20, no_cache=True).product_ids
            if not found:
                time.sleep(0.2)
    searchable_s = time.perf_counter() - t0
    n = summary["upserted"] + summary["unchanged"] + summary["failed"]
    return {"products": n, "upserted": summary["upserted"], "unchanged": summary["unchanged"],
            "failed": summary["failed"], "cli_s": round(cli_s, 2), "searchable_s": round(searchable_s, 2),
            "products_per_s": round(n / searchable_s, 2), "last_product_found": found}


def run(addrs: StackAddrs, catalog: Path, log=print) -> SuiteResult:
    res = SuiteResult("ingest", meta={**machine_info(), "catalog": str(catalog)})
    log(f"[ingest] indexing {catalog} through homesearch index")
    first = index_catalog(addrs, catalog)
    log(f"[ingest] {first['products']} products searchable in {first['searchable_s']}s")
    again = index_catalog(addrs, catalog)  # unchanged products are skipped by content hash
    log("[ingest] encoder floor (same products straight to Triton)")
    floor = encoder_floor(addrs, catalog)
    rows = [
        {"run": "homesearch index (fresh index)", **first, "x_encoder_floor_time": ratio(first["searchable_s"], floor["seconds"])},
        {"run": "homesearch index again (all unchanged)", **again, "x_encoder_floor_time": ratio(again["searchable_s"], floor["seconds"])},
        {"run": "baseline: encoders alone (Triton, batch 32)", "products": floor["products"], "searchable_s": floor["seconds"],
         "products_per_s": floor["products_per_s"], "x_encoder_floor_time": 1.0},
    ]
    res.tables.append(Table(
        "Ingest: catalog file -> searchable",
        ["run", "products", "upserted", "unchanged", "failed", "searchable_s", "products_per_s", "x_encoder_floor_time"],
        rows,
        headers={"searchable_s": "seconds to searchable", "x_encoder_floor_time": "time / encoder-only time"},
        notes=[f"encoder floor: {floor['images']} photos ({floor['image_s']} s) + {floor['products']} passage texts "
               f"({floor['text_s']} s), no I/O, no index writes"],
    ))
    res.data = {"fresh": first, "again": again, "encoder_floor": floor}
    return res
