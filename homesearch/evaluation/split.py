"""Deterministic held-out split of a catalog by product line (never trained on).

Product line = first upper-case word of the title (IKEA: "KURA Reversible bed" -> "KURA"; a title
without one falls back to its first word). A line goes to ``heldout`` when
``sha1(f"{seed}:{line}")`` mapped to [0, 1) is below ``heldout_fraction``; every product of the line
follows it, so no variant of a held-out line is ever seen in training.

Held-out lines are further split into ``dev`` (to choose fusion weights / hyper-parameters) and
``test`` (reported) by a second hash, again per line.

Queries: a query whose relevant products are all in train goes to train; otherwise it is a held-out
query, its ``relevant`` restricted to held-out products (the held-out gallery is searched), and it
goes to dev/test by the part of its first held-out relevant product. Held-out queries are run
against the whole held-out gallery (dev + test products). ``seen_type`` marks whether the product type (category) of its
relevant products occurs among training products.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

SPLIT_VERSION = "line-hash-v1"
TYPE_SPLIT_VERSION = "type-hash-v1"
SPLIT_KINDS = ("line", "type")


def product_line(title: str) -> str:
    words = title.split()
    for w in words:
        letters = [c for c in w if c.isalpha()]
        if letters and all(c.isupper() for c in letters):
            return w.strip(",.;:")
    return words[0].strip(",.;:") if words else ""


def _unit(seed: int | str, salt: str, key: str) -> float:
    h = hashlib.sha1(f"{seed}:{salt}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


@dataclass
class Split:
    seed: int
    heldout_fraction: float
    dev_fraction: float
    product_part: dict[str, str]  # product id -> train | dev | test
    product_seen_type: dict[str, bool]  # held-out product id -> its category occurs in train
    query_part: dict[str, str] = field(default_factory=dict)  # query id -> train | dev | test
    query_relevant: dict[str, list[str]] = field(default_factory=dict)  # restricted relevance
    query_seen_type: dict[str, bool] = field(default_factory=dict)
    version: str = SPLIT_VERSION

    def products(self, *parts: str) -> list[str]:
        return [p for p, s in self.product_part.items() if s in parts]

    def queries(self, *parts: str) -> list[str]:
        return [q for q, s in self.query_part.items() if s in parts]

    def summary(self) -> dict:
        from collections import Counter

        pc, qc = Counter(self.product_part.values()), Counter(self.query_part.values())
        held = [q for q, s in self.query_part.items() if s != "train"]
        return {
            "version": self.version,
            "seed": self.seed,
            "heldout_fraction": self.heldout_fraction,
            "dev_fraction": self.dev_fraction,
            "products": dict(pc),
            "queries": dict(qc),
            "heldout_queries_seen_type": sum(self.query_seen_type[q] for q in held),
            "heldout_queries_unseen_type": sum(not self.query_seen_type[q] for q in held),
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def product_type(product: dict) -> str:
    """The product type a type split groups by: the category, case- and space-normalised."""
    return " ".join((product.get("category") or "").lower().split())


def make_split(
    catalog: Sequence[dict],
    queries: Iterable[dict] = (),
    seed: int = 0,
    heldout_fraction: float = 0.2,
    dev_fraction: float = 0.5,
    by: str = "line",
) -> Split:
    """``by="line"``: hold out whole product lines (every variant follows its line);
    ``by="type"``: hold out whole product types (categories), so every held-out query asks for a
    type the models never saw in training (the zero-shot condition)."""
    if by not in SPLIT_KINDS:
        raise ValueError(f"split kind must be one of {SPLIT_KINDS}, got {by!r}")
    part: dict[str, str] = {}
    salt = "" if by == "line" else "type:"  # line keeps its historical hashes (line-hash-v1)
    for p in catalog:
        group = product_line(p["title"]) if by == "line" else product_type(p)
        if _unit(seed, "heldout", salt + group) < heldout_fraction:
            part[p["id"]] = "dev" if _unit(seed, "dev", salt + group) < dev_fraction else "test"
        else:
            part[p["id"]] = "train"
    train_types = {product_type(p) for p in catalog if part[p["id"]] == "train"}
    seen = {p["id"]: product_type(p) in train_types for p in catalog if part[p["id"]] != "train"}
    s = Split(seed, heldout_fraction, dev_fraction, part, seen,
              version=SPLIT_VERSION if by == "line" else TYPE_SPLIT_VERSION)
    for q in queries:
        rel = [r for r in q.get("relevant", []) if r in part]
        if not rel:
            continue
        held = [r for r in rel if part[r] != "train"]
        if not held:
            s.query_part[q["id"]], s.query_relevant[q["id"]] = "train", rel
            s.query_seen_type[q["id"]] = True
            continue
        which = part[held[0]]
        s.query_part[q["id"]], s.query_relevant[q["id"]] = which, held
        s.query_seen_type[q["id"]] = all(seen[r] for r in held)
    return s


def load_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
