"""Regional GeM descriptors of a backbone feature map, as the ``visual`` descriptor computes them.

A shopper photo at 448 px gives a 14x14 Lite0 map; each square window (5, 7, 9 cells, stride 2:
50 windows) is GeM-pooled (p=3) into one 1280-d region descriptor, and the photo's score against a
catalogue photo is the best region. Training needs the same windows and, for a synthetic photo, the
window that best covers the pasted product (its positive).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

GEM_P = 3.0
WINDOWS = (5, 7, 9)
STRIDE = 2
GRID = 14  # 448 px / 32 px per cell (Lite0's output stride)


def pad_square(im: Image.Image, size: int) -> torch.Tensor:
    """(3, size, size) pixels in [-1, 1]: longest side resized to ``size``, centred on white."""
    im = im.convert("RGB")
    w, h = im.size
    s = size / max(w, h)
    im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    c = Image.new("RGB", (size, size), "white")
    c.paste(im, ((size - im.size[0]) // 2, (size - im.size[1]) // 2))
    a = np.asarray(c, dtype=np.float32) / 127.5 - 1
    return torch.from_numpy(a).permute(2, 0, 1)


def fg_crop(im: Image.Image, threshold: int = 235, margin: float = 0.03) -> Image.Image:
    """Tight crop to a studio photo's non-white pixels (with a 3% margin); the photo when empty."""
    a = np.asarray(im.convert("RGB"))
    ys, xs = np.nonzero(a.min(axis=2) < threshold)
    if len(xs) < 16:
        return im
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    mg = int(margin * max(x1 - x0, y1 - y0))
    return im.crop((max(0, x0 - mg), max(0, y0 - mg), min(a.shape[1], x1 + mg + 1), min(a.shape[0], y1 + mg + 1)))


def windows(grid: int = GRID, sizes: tuple[int, ...] = WINDOWS, stride: int = STRIDE) -> list[tuple[int, int, int]]:
    """(y, x, size) of every window, in cells, in the order ``regional_gem`` returns them."""
    return [(y, x, s) for s in sizes for y in range(0, grid - s + 1, stride) for x in range(0, grid - s + 1, stride)]


def gem(m: np.ndarray, p: float = GEM_P) -> np.ndarray:
    """Global GeM of (..., C, h, w) maps -> (..., C)."""
    x = np.clip(m.astype(np.float32), 1e-6, None) ** p
    return x.mean(axis=(-2, -1)) ** (1 / p)


def regional_gem(m: np.ndarray, wins: list[tuple[int, int, int]], p: float = GEM_P) -> np.ndarray:
    """(len(wins), C) GeM of each window of a (C, h, w) map, via an integral image."""
    c, h, w = m.shape
    x = np.clip(m.astype(np.float32), 1e-6, None).astype(np.float64) ** p
    integ = np.zeros((c, h + 1, w + 1), np.float64)
    integ[:, 1:, 1:] = x.cumsum(1).cumsum(2)
    out = np.empty((len(wins), c), np.float32)
    for i, (y, xx, s) in enumerate(wins):
        v = (integ[:, y + s, xx + s] - integ[:, y, xx + s] - integ[:, y + s, xx] + integ[:, y, xx]) / (s * s)
        out[i] = np.clip(v, 1e-12, None) ** (1 / p)
    return out


def best_cover(box: tuple[float, float, float, float], image_size: int, wins: list[tuple[int, int, int]], grid: int = GRID) -> int:
    """Index of the window with the highest IoU with ``box`` (pixels of a square ``image_size`` photo)."""
    cell = image_size / grid
    bx0, by0, bx1, by1 = box
    best, best_iou = 0, -1.0
    area_b = (bx1 - bx0) * (by1 - by0)
    for i, (y, x, s) in enumerate(wins):
        wx0, wy0, wx1, wy1 = x * cell, y * cell, (x + s) * cell, (y + s) * cell
        iw = max(0.0, min(bx1, wx1) - max(bx0, wx0))
        ih = max(0.0, min(by1, wy1) - max(by0, wy0))
        inter = iw * ih
        iou = inter / (area_b + (s * cell) ** 2 - inter)
        if iou > best_iou:
            best, best_iou = i, iou
    return best


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
