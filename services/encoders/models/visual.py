"""The ``visual`` photo->photo descriptor: whitened GeM of EfficientNet-Lite0's last feature map.

Why a second image vector: the text-space ``image`` vector goes through a head trained to land
on the product *text*, so it keeps the type ("a chair") and loses which chair it is. A shopper
photo (the catalogue shot cropped, tilted, pasted on a room, re-lit, recompressed) must find
the *product*: that is instance retrieval, where pooled convolutional features with learned
whitening are the classic answer (GeM, Radenovic et al. 2018; regional pooling, R-MAC, Tolias
et al. 2016).

- catalogue photo (index): the whole padded photo and a tight crop to its foreground, each at
  224 px, global GeM (p = 3) of the 1280x7x7 map -> whitening -> one row each (a 2-row
  multivector in the index).
- query photo: ONE backbone pass at 448 px (1280x14x14 map), GeM over every square window of
  5, 7 and 9 cells at stride 2 (50 regions: the product is somewhere in the room) -> the same
  whitening -> 50 rows. A product's score is the best cosine over query regions x its rows.
- scene photo (shop the look): ONE pass at 640 px (20x20 map), the 149 windows of
  ``services.encoders.models.scene_windows`` -> the same whitening; each row is searched on
  its own against the products' foreground rows (``services.ranking.regions``).

Regional pooling is ``avg_pool2d`` of ``x**p`` (one op per window size), so the whole descriptor
exports to ONNX with the backbone. Whitening: ``(l2(g) - mean) @ projection`` then L2, with
``projection`` the top-512 PCA directions of train-line catalogue descriptors divided by
``sqrt(std)`` of each component (shrinkage 0.5); learned by ``services.encoders.training.visual``
(PCA) or ``training.visual_shopper`` (from synthetic shopper photos, optionally reading each
window's middle-block statistics beside its GeM: ``block_stats`` below).

On-disk format (``heads/visual-<version>/``)::

    visual.json           {"format": "homesearch-visual/1", "version": "...", "gem_p": 3.0,
                           "index_size": 224, "query_size": 448, "windows": [5, 7, 9],
                           "stride": 2, "dim": 512, "weights": "whitening.safetensors",
                           "metrics": {...},
                           "block_stats": {"blocks": [10, 14], "channels": [112, 192],
                                           "method": "mean-std-v1"}}        # optional
    whitening.safetensors {"mean": (D,), "projection": (D, 512)} float32, D = 1280 (+ 608 with
                          block_stats, which also need "stats_mean", "stats_scale": (608,))

A better projection (same format) is dropped in as a new ``visual-<version>`` directory and the
``visual-default`` link moved; its version is part of the served model version, so an index
written with another one asks to be re-indexed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from services.encoders.models.base import read_card
from services.encoders.models.block_stats import (block_stats_error, card_blocks, card_stats_dim, global_stats,
                                                   window_stats)
from services.encoders.models.pooling import window_means
from services.encoders.models.scene_windows import SCENE_STRIDE, SCENE_WINDOWS, window_boxes

VISUAL_FORMAT = "homesearch-visual/1"
CARD_NAME = "visual.json"
DEFAULT_VISUAL_DIR = Path(__file__).resolve().parents[1] / "heads" / "visual-default"
VISUAL_DIM = 512
FEATURE_DIM = 1280
GEM_EPS = 1e-6
# foreground of a studio photo: pixels whose darkest channel is below this (white = 255)
FOREGROUND_WHITE = 235
FOREGROUND_MARGIN = 0.03


class VisualFormatError(ValueError):
    """The visual directory does not follow the documented format."""


@dataclass(frozen=True)
class VisualCard:
    version: str
    gem_p: float = 3.0
    index_size: int = 224
    query_size: int = 448
    windows: tuple[int, ...] = (5, 7, 9)
    stride: int = 2
    dim: int = VISUAL_DIM
    weights: str = "whitening.safetensors"
    metrics: dict[str, Any] = field(default_factory=dict)
    # middle-block statistics beside the GeM (models.block_stats): {"blocks", "channels", "method"}; {} = none
    block_stats: dict = field(default_factory=dict)

    @property
    def stat_blocks(self) -> tuple[int, ...]:
        return card_blocks(self.block_stats)

    @property
    def stats_dim(self) -> int:
        return card_stats_dim(self.block_stats)

    @classmethod
    def read(cls, directory: Path) -> VisualCard:
        raw = read_card(directory / CARD_NAME, VISUAL_FORMAT, VisualFormatError)
        card = cls(version=str(raw["version"]), gem_p=float(raw.get("gem_p", 3.0)),
                   index_size=int(raw.get("index_size", 224)), query_size=int(raw.get("query_size", 448)),
                   windows=tuple(int(w) for w in raw.get("windows", (5, 7, 9))), stride=int(raw.get("stride", 2)),
                   dim=int(raw.get("dim", VISUAL_DIM)), weights=str(raw.get("weights", "whitening.safetensors")),
                   metrics=dict(raw.get("metrics", {})), block_stats=dict(raw.get("block_stats") or {}))
        if card.block_stats:
            error = block_stats_error(card.block_stats)
            if error:
                raise VisualFormatError(f"{directory}: {error}")
        return card

    def to_json(self) -> dict[str, Any]:
        return {"format": VISUAL_FORMAT, "version": self.version, "gem_p": self.gem_p,
                "index_size": self.index_size, "query_size": self.query_size, "windows": list(self.windows),
                "stride": self.stride, "dim": self.dim, "weights": self.weights, "metrics": self.metrics,
                **({"block_stats": self.block_stats} if self.block_stats else {})}


def visual_version(directory: Path | None) -> str:
    """The version a visual directory serves ("" when there is none: no visual output)."""
    if directory is None or not (Path(directory) / CARD_NAME).is_file():
        return ""
    return VisualCard.read(Path(directory)).version


def gem(fmap: torch.Tensor, p: float = 3.0) -> torch.Tensor:
    """(n, C, h, w) -> (n, C): generalised mean over all cells."""
    return fmap.clamp(min=GEM_EPS).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


def regional_gem(fmap: torch.Tensor, windows: tuple[int, ...], stride: int, p: float = 3.0) -> torch.Tensor:
    """(n, C, h, w) -> (n, R, C): GeM of every square window of each size, row-major per size.

    The windowed mean of ``x**p`` (what an integral image gives) is exactly GeM of each cropped
    map."""
    x = fmap.clamp(min=GEM_EPS).pow(p)
    return window_means(x, windows, stride).clamp(min=GEM_EPS**p).pow(1.0 / p)


def region_count(cells: int, windows: tuple[int, ...], stride: int) -> int:
    """How many regions ``regional_gem`` gives for a ``cells`` x ``cells`` map."""
    return sum(((cells - s) // stride + 1) ** 2 for s in windows if s <= cells)


def region_boxes(cells: int, windows: tuple[int, ...], stride: int) -> list[tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) in [0, 1] of the padded square, in ``regional_gem`` order."""
    return window_boxes(cells, windows, stride)


class VisualHead(nn.Module):
    """Pooled features (+ block statistics) -> whitened, L2-normalised ``visual`` rows (plain tensor
    ops: exports).

    With ``block_stats`` on the card, each row reads ``[l2(gem), (stats - stats_mean) * stats_scale]``
    (L2-normalised as a whole) instead of ``l2(gem)``: the statistics of two middle blocks carry the
    colour and texture that tell a product from its same-shape siblings (docs/evaluation.md,
    "Middle-block statistics for the visual descriptor")."""

    def __init__(self, card: VisualCard, mean: torch.Tensor, projection: torch.Tensor,
                 stats_mean: torch.Tensor | None = None, stats_scale: torch.Tensor | None = None) -> None:
        super().__init__()
        d = FEATURE_DIM + card.stats_dim
        if mean.shape != (d,) or projection.shape != (d, card.dim):
            raise VisualFormatError(f"whitening shapes {tuple(mean.shape)}, {tuple(projection.shape)} "
                                    f"are not ({d},), ({d}, {card.dim})")
        if card.stats_dim and (stats_mean is None or stats_scale is None
                               or stats_mean.shape != (card.stats_dim,) or stats_scale.shape != (card.stats_dim,)):
            raise VisualFormatError(f"block_stats {card.block_stats} need stats_mean and stats_scale of "
                                    f"({card.stats_dim},) in the weights")
        self.card = card
        self.register_buffer("mean", mean.float().contiguous())
        self.register_buffer("projection", projection.float().contiguous())
        if card.stats_dim:
            self.register_buffer("stats_mean", stats_mean.float().contiguous())  # type: ignore[union-attr]
            self.register_buffer("stats_scale", stats_scale.float().contiguous())  # type: ignore[union-attr]

    def whiten(self, pooled: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        """(..., C) pooled descriptors (+ (..., S) block statistics) -> (..., dim) whitened unit rows."""
        x = F.normalize(pooled.float(), dim=-1)
        if self.card.stats_dim:
            if stats is None:
                raise ValueError(f"visual {self.card.version} reads block statistics of blocks {self.card.stat_blocks}: "
                                 "pass their maps")
            x = F.normalize(torch.cat([x, (stats.float() - self.stats_mean) * self.stats_scale], dim=-1), dim=-1)
        return F.normalize((x - self.mean) @ self.projection, dim=-1)

    def global_rows(self, fmap: torch.Tensor, maps: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """(n, C, h, w) (+ the card's block maps) -> (n, dim): one row per photo (index side)."""
        return self.whiten(gem(fmap.float(), self.card.gem_p), global_stats(maps) if self.card.stats_dim and maps else None)

    def region_rows(self, fmap: torch.Tensor, maps: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """(n, C, h, w) (+ the card's block maps) -> (n, R, dim): one row per window (query side)."""
        return self._windows(fmap, maps, self.card.windows, self.card.stride)

    def scene_rows(self, fmap: torch.Tensor, maps: Sequence[torch.Tensor] = (),
                   stats: torch.Tensor | None = None) -> torch.Tensor:
        """(n, C, 20, 20) (+ the card's block maps) -> (n, 149, dim): the shop-the-look windows of a
        room photo (``services.encoders.models.scene_windows``; the ranking service boxes row r from them).
        ``stats``: those windows' statistics of the card's blocks when the caller has them already
        (the image tower computes each block's once for the head and these rows), instead of ``maps``."""
        return self._windows(fmap, maps, SCENE_WINDOWS, SCENE_STRIDE, stats)

    def _windows(self, fmap: torch.Tensor, maps: Sequence[torch.Tensor], windows: tuple[int, ...],
                 stride: int, stats: torch.Tensor | None = None) -> torch.Tensor:
        if stats is None and self.card.stats_dim and maps:
            stats = window_stats(maps, fmap.shape[2], windows, stride)
        return self.whiten(regional_gem(fmap.float(), windows, stride, self.card.gem_p), stats)


def load_visual(directory: Path | None) -> VisualHead | None:
    """The visual head in ``directory``, or None when there is none (no visual output served)."""
    if directory is None or not (Path(directory) / CARD_NAME).is_file():
        return None
    from safetensors.torch import load_file

    directory = Path(directory)
    card = VisualCard.read(directory)
    try:
        state = load_file(str(directory / card.weights))
    except Exception as e:
        raise VisualFormatError(f"{directory}: cannot read {card.weights}: {e}") from None
    if "mean" not in state or "projection" not in state:
        raise VisualFormatError(f"{directory}: {card.weights} needs 'mean' and 'projection', has {sorted(state)}")
    return VisualHead(card, state["mean"], state["projection"], state.get("stats_mean"), state.get("stats_scale")).eval()


def _mask_extent_numpy(pixels: torch.Tensor, white: int) -> tuple[Any, Any, int]:
    """Rows and columns holding a pixel darker than ``white`` in some channel, and their count, of a
    CPU (3, H, W) photo: numpy's reductions, ~3x torch's on a strided uint8 tensor."""
    a = pixels.numpy()
    mask = np.minimum(np.minimum(a[0], a[1]), a[2]) < white
    return np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0)), int(np.count_nonzero(mask))


def _mask_extent_torch(pixels: torch.Tensor, white: int) -> tuple[Any, Any, int]:
    """The same as ``_mask_extent_numpy`` in torch, for photos decoded on the GPU."""
    mask = pixels.amin(dim=0) < white
    return torch.nonzero(mask.any(dim=1)).flatten(), torch.nonzero(mask.any(dim=0)).flatten(), int(mask.sum())


def foreground_box(pixels: torch.Tensor, white: int = FOREGROUND_WHITE,
                   margin: float = FOREGROUND_MARGIN) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the non-white pixels of a (3, H, W) [0, 255] photo, grown by
    ``margin`` of the object's longest side; the whole photo when (almost) nothing is non-white.
    Studio photos put a small product on a lot of white: the tight crop is the product.
    On the CPU the mask is reduced in numpy (0.7 vs 2.2 ms on a 500 px photo, same box): every
    ingested product and photo query pays this once."""
    _, h, w = pixels.shape
    extent = _mask_extent_numpy if pixels.device.type == "cpu" else _mask_extent_torch
    ys, xs, count = extent(pixels, white)
    if count < 16 or len(xs) == 0:
        return 0, 0, h, w
    y0, y1, x0, x1 = int(ys[0]), int(ys[-1]), int(xs[0]), int(xs[-1])
    mg = int(margin * max(x1 - x0, y1 - y0))
    return max(0, y0 - mg), max(0, x0 - mg), min(h, y1 + mg + 1), min(w, x1 + mg + 1)
