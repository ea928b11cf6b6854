"""Synthetic catalogs for the scale benchmark: clustered unit vectors plus realistic payloads.

Structure (mimics sentence embeddings of a furniture catalog, not i.i.d. noise):

    v = normalise(g * shared + c * category_centre + f * family_centre + e * noise)

- ``shared``: one direction every vector leans towards (e5-like anisotropy: even unrelated
  products have cosine ~0.3-0.5, which is what makes ANN search on real embeddings harder
  than on isotropic random data);
- ``category_centre``: one of ``n_categories`` (default 300) Gaussian-mixture centres;
  category sizes follow a Zipf-like law (a few big categories, a long tail);
- ``family_centre``: a sub-cluster (product family/colour variant, ``families_per_category``);
- ``noise``: per product.

Product ``i`` depends only on ``(seed, i // CHUNK)``, so the first 10k products of the 1M
set are exactly the 10k set (sizes nest) and any size regenerates bit-identically.
Queries are drawn from the same process with fresh noise (they are not catalog members).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

CHUNK = 10_000

_BASE_TYPES = [
    "Sofa", "Corner sofa", "Sofa bed", "Armchair", "Chair", "Dining chair", "Office chair", "Bar stool",
    "Stool", "Bench", "Dining table", "Coffee table", "Side table", "Desk", "Bookcase", "Shelving unit",
    "Wall shelf", "Cabinet", "Display cabinet", "TV bench", "Chest of drawers", "Wardrobe", "Bed frame",
    "Bunk bed", "Mattress", "Pillow", "Duvet", "Bedspread", "Curtains", "Blinds", "Rug", "Doormat",
    "Mirror", "Pendant lamp", "Table lamp", "Floor lamp", "Wall lamp", "LED strip", "Plant pot",
    "Artificial plant", "Vase", "Frame", "Clock", "Cushion", "Throw", "Storage box", "Basket",
    "Laundry basket", "Shoe cabinet", "Coat rack", "Kitchen cabinet", "Worktop", "Kitchen tap",
    "Sink", "Pan", "Pot", "Knife", "Plate", "Bowl", "Glass",
]
_QUALIFIERS = ["", "Outdoor ", "Children's ", "Compact ", "Premium "]
COLOURS = ["white", "black", "grey", "beige", "brown", "oak", "walnut", "green", "blue", "red", "yellow", "pink"]
MATERIALS = ["fabric", "leather", "solid wood", "veneer", "steel", "aluminium", "glass", "rattan", "plastic", "wool"]
STYLES = ["modern", "classic", "scandinavian", "industrial", "rustic"]


def category_names(n: int) -> list[str]:
    names = [q + b if not q else q + b.lower() for q in _QUALIFIERS for b in _BASE_TYPES]
    if n <= len(names):
        return names[:n]
    return names + [f"Category {i}" for i in range(len(names), n)]


@dataclass(frozen=True)
class SyntheticSpec:
    dim: int = 384
    n_categories: int = 300
    families_per_category: int = 20
    seed: int = 20240611
    shared_weight: float = 1.0
    category_weight: float = 1.0
    family_weight: float = 0.6
    noise_weight: float = 0.55
    zipf_s: float = 0.8  # category size skew


class SyntheticCatalog:
    """Deterministic generator; ``vectors(n)`` / ``payloads(start, stop)`` / ``queries(n)``."""

    def __init__(self, spec: SyntheticSpec = SyntheticSpec()) -> None:
        self.spec = spec
        s = spec
        rng = np.random.default_rng([s.seed, 0xC0FFEE])
        self.shared = _unit(rng.standard_normal(s.dim)).astype(np.float32)
        self.centres = _unit(rng.standard_normal((s.n_categories, s.dim))).astype(np.float32)
        self.families = _unit(rng.standard_normal((s.n_categories, s.families_per_category, s.dim))).astype(np.float32)
        ranks = np.arange(1, s.n_categories + 1, dtype=np.float64)
        w = ranks ** (-s.zipf_s)
        self.category_p = w / w.sum()
        self.names = category_names(s.n_categories)
        # Per-category median price (EUR): lognormal around 120.
        self.median_price = np.exp(rng.normal(np.log(120.0), 1.0, s.n_categories))
        # Per-family colour and material: a family is one colour/material variant.
        self.family_colour = rng.integers(0, len(COLOURS), (s.n_categories, s.families_per_category))
        self.family_material = rng.integers(0, len(MATERIALS), (s.n_categories, s.families_per_category))

    # -- products ----------------------------------------------------------------------
    def _chunk(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Vectors, category, family, price, in_stock for products [c*CHUNK, (c+1)*CHUNK)."""
        s = self.spec
        rng = np.random.default_rng([s.seed, c])
        cat = rng.choice(s.n_categories, size=CHUNK, p=self.category_p)
        fam = rng.integers(0, s.families_per_category, CHUNK)
        noise = rng.standard_normal((CHUNK, s.dim)).astype(np.float32) / np.sqrt(s.dim, dtype=np.float32)
        v = (
            s.shared_weight * self.shared[None, :]
            + s.category_weight * self.centres[cat]
            + s.family_weight * self.families[cat, fam]
            + s.noise_weight * noise
        )
        v = _unit(v).astype(np.float32)
        price = np.round(self.median_price[cat] * np.exp(rng.normal(0.0, 0.5, CHUNK)), 2)
        in_stock = rng.random(CHUNK) < 0.85
        return v, cat, fam, price, in_stock

    def arrays(self, n: int) -> dict[str, np.ndarray]:
        """All products [0, n): ``vectors`` (n, dim) float32 unit rows, ``category``, ``family``,
        ``price``, ``in_stock``."""
        parts = [self._chunk(c) for c in range((n + CHUNK - 1) // CHUNK)]
        out = {
            "vectors": np.concatenate([p[0] for p in parts])[:n],
            "category": np.concatenate([p[1] for p in parts])[:n],
            "family": np.concatenate([p[2] for p in parts])[:n],
            "price": np.concatenate([p[3] for p in parts])[:n],
            "in_stock": np.concatenate([p[4] for p in parts])[:n],
        }
        return out

    def product_id(self, i: int) -> str:
        return f"syn-{i:07d}"

    def payload_fields(self, i: int, category: int, family: int, price: float, in_stock: bool) -> dict:
        """Catalog fields of product ``i`` (title, description, category, attributes, price, stock)."""
        colour = COLOURS[int(self.family_colour[category, family])]
        material = MATERIALS[int(self.family_material[category, family])]
        style = STYLES[(i * 7 + family) % len(STYLES)]
        name = self.names[category]
        return {
            "title": f"{_brand(category, family)} {name}",
            "description": f"A {style} {name.lower()} in {colour} {material}.",
            "category": name,
            "attributes": {"color": colour, "material": material, "style": style},
            "price": float(price),
            "currency": "EUR",
            "in_stock": bool(in_stock),
        }

    # -- queries -----------------------------------------------------------------------
    def queries(self, n: int, seed_offset: int = 1) -> dict[str, np.ndarray]:
        """``n`` query vectors from the same mixture (fresh noise, not catalog members), plus the
        category each was drawn from (used for category-filtered queries)."""
        s = self.spec
        rng = np.random.default_rng([s.seed, 10**9 + seed_offset])
        cat = rng.choice(s.n_categories, size=n, p=self.category_p)
        fam = rng.integers(0, s.families_per_category, n)
        noise = rng.standard_normal((n, s.dim)).astype(np.float32) / np.sqrt(s.dim, dtype=np.float32)
        v = (
            s.shared_weight * self.shared[None, :]
            + s.category_weight * self.centres[cat]
            + s.family_weight * self.families[cat, fam]
            + s.noise_weight * noise
        )
        return {"vectors": _unit(v).astype(np.float32), "category": cat}


def _brand(category: int, family: int) -> str:
    syll = ["KA", "LLAX", "BIL", "LY", "MAL", "M", "HEM", "NES", "POÄ", "NG", "EKT", "ORP", "KIV", "IK", "STR", "AND"]
    return (syll[(category * 3 + family) % len(syll)] + syll[(family * 5 + category) % len(syll)]).upper()


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


# --------------------------------------------------------------------------- exact search


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int = 10, mask: np.ndarray | None = None) -> np.ndarray:
    """Exact top-k ids by inner product (= cosine for unit rows). ``mask`` (n,) bool keeps only
    allowed rows (filtered search); rows beyond the allowed count are -1."""
    scores = queries @ base.T  # (q, n)
    if mask is not None:
        scores = np.where(mask[None, :], scores, -np.inf)
    k_eff = min(k, scores.shape[1])
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(part, order, axis=1)
    if mask is not None:
        top_scores = np.take_along_axis(scores, top, axis=1)
        top = np.where(np.isfinite(top_scores), top, -1)
    return top


def iter_batches(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)
