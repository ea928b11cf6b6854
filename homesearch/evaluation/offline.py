"""Offline (in-process) evaluation on the held-out split: query sets, gallery, per-signal scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from homesearch.evaluation.metrics import evaluate_scores
from homesearch.evaluation.split import Split, load_jsonl, make_split


@dataclass
class HeldOut:
    catalog: list[dict]
    queries: list[dict]
    split: Split
    gallery_idx: list[int]  # catalog indices of held-out products (dev + test)
    gallery_ids: list[str]
    query_ids: list[str]  # held-out queries (dev + test)
    query_text: list[str]
    qrels: list[list[str]]
    part: list[str]  # dev | test per query
    seen: list[bool]  # product type seen in training per query

    def subset(self, part: str | None = None, seen: bool | None = None) -> np.ndarray:
        m = np.ones(len(self.query_ids), bool)
        if part is not None:
            m &= np.array([p == part for p in self.part])
        if seen is not None:
            m &= np.array([s == seen for s in self.seen])
        return np.flatnonzero(m)


def load_heldout(catalog_path: str | Path, queries_path: str | Path | None = None, seed: int = 0,
                 heldout_fraction: float = 0.2) -> HeldOut:
    catalog = load_jsonl(catalog_path)
    qp = Path(queries_path) if queries_path else Path(catalog_path).with_name("queries.jsonl")
    queries = load_jsonl(qp) if qp.exists() else []
    split = make_split(catalog, queries, seed=seed, heldout_fraction=heldout_fraction)
    gidx = [i for i, p in enumerate(catalog) if split.product_part[p["id"]] != "train"]
    qs = [q for q in queries if split.query_part.get(q["id"], "train") != "train" and q.get("text")]
    return HeldOut(
        catalog, queries, split, gidx, [catalog[i]["id"] for i in gidx],
        [q["id"] for q in qs], [q["text"] for q in qs], [split.query_relevant[q["id"]] for q in qs],
        [split.query_part[q["id"]] for q in qs], [split.query_seen_type[q["id"]] for q in qs],
    )


def breakdown(scores: np.ndarray, h: HeldOut) -> dict:
    """Metrics on all held-out queries, dev/test, and seen/unseen product types."""
    out = {}
    for name, kw in {"all": {}, "dev": {"part": "dev"}, "test": {"part": "test"},
                     "seen_type": {"seen": True}, "unseen_type": {"seen": False}}.items():
        idx = h.subset(**kw)
        if len(idx):
            out[name] = evaluate_scores(scores[idx], h.gallery_ids, [h.qrels[i] for i in idx])
    return out


def strip_colour(p: dict) -> dict:
    """The product as a colour-blind text index sees it: no colour attribute (the description,
    rarely naming the colour, stays). Mirrors "attribute not in title" catalogs."""
    q = dict(p)
    q["attributes"] = {k: v for k, v in (p.get("attributes") or {}).items() if k.lower() not in ("color", "colour")}
    return q


def text_signals(h: HeldOut, query_emb: np.ndarray | None = None, colour_in_text: bool = True) -> dict[str, np.ndarray]:
    """(Q, G) scores for the text-side signals: bm25, tfidf, e5 text->text."""
    from services.encoders.training import text as T
    from services.encoders.training.train import product_text as e5_product_text
    from homesearch.evaluation.baselines import BM25, TfIdf, product_text

    gal = [h.catalog[i] for i in h.gallery_idx]
    if not colour_in_text:
        gal = [strip_colour(p) for p in gal]
    docs = [product_text(p) for p in gal]
    qe = T.embed(h.query_text, "query") if query_emb is None else query_emb
    pe = T.embed([e5_product_text(p) for p in gal], "passage")
    return {
        "bm25": BM25(docs).scores(h.query_text).astype(np.float64),
        "tfidf": TfIdf(docs).scores(h.query_text).astype(np.float64),
        "text": (qe @ pe.T).astype(np.float64),
    }
