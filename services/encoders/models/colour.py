"""The colour histogram a head may take next to the 1280-d backbone features: one implementation,
imported by the serving image tower (``effnet_image``) and by head training
(``training.features``), so both compute the same numbers from the same pixels.

Input: the image tower's preprocessed batch (``preprocess.ImagePreprocessor``: EXIF, RGB, longest
side to ``size``, white pad to a square; then normalised with the tower's ``PixelSpec``), on CPU
or GPU. Steps (method ``COLOUR_HIST_METHOD``):

1. undo the normalisation (``x * std * 255 + mean * 255``) and round to integer 0..255 (the
   rounding removes the float error of normalise/undo, so CPU values are exactly the decoder's
   uint8; GPU bilinear resizing in float differs only by that rounding);
2. drop near-white pixels, ``min(R, G, B) >= 235`` (the background and the white padding),
   unless 16 or fewer pixels would remain (then every pixel counts);
3. joint RGB histogram, ``bins`` per channel (``bins**3`` cells, cell of a channel value ``v`` is
   ``v * bins // 256``; index ``(r * bins + g) * bins + b``), L1-normalised.

Integer counting (``bincount`` without weights), so the result is exact and deterministic on
either device. On CPU the same steps run in numpy on 16-bit integers (``colour_histogram_numpy``):
12x less CPU than the int64 torch ops at ingestion (0.5 vs 6.5 ms per 224 px view, batch 32,
1 thread), bit-identical (tests/encoders/test_colour.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

COLOUR_HIST_METHOD = "rgb-joint-pad224-nowhite235-v1"
WHITE_MIN = 235  # a pixel whose darkest channel is >= this is background
MIN_KEPT = 16  # fewer kept pixels than this + 1: use all pixels


def histogram_dim(bins: int) -> int:
    return int(bins) ** 3 if bins else 0


def to_uint8_range(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(n, 3, H, W) normalised model input -> (n, 3, H, W) int64 in 0..255 (undo + round)."""
    x = pixels.float()
    m = torch.tensor(tuple(mean), device=x.device, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(tuple(std), device=x.device, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    return torch.round(x * s + m).clamp_(0, 255).long()


def _check(shape: tuple[int, ...], bins: int) -> None:
    """The input rules both implementations share."""
    if len(shape) != 4 or shape[1] != 3:
        raise ValueError(f"expected (n, 3, H, W) pixels, got {tuple(shape)}")
    if bins < 1 or bins > 256:
        raise ValueError(f"bins must be in 1..256, got {bins}")


def colour_histogram_uint8(rgb: torch.Tensor, bins: int) -> torch.Tensor:
    """(n, 3, H, W) integer 0..255 -> (n, bins**3) float32 L1-normalised histograms (same device)."""
    _check(tuple(rgb.shape), bins)
    n = rgb.shape[0]
    cells = bins**3
    x = rgb.long().flatten(2)  # (n, 3, P)
    keep = x.min(dim=1).values < WHITE_MIN  # (n, P)
    few = keep.sum(dim=1) <= MIN_KEPT  # mostly-white image: count every pixel
    keep = keep | few[:, None]
    q = (x * bins) // 256
    idx = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]  # (n, P)
    offset = torch.arange(n, device=x.device)[:, None] * cells
    dump = n * cells  # dropped pixels land in one extra cell that is cut off
    flat = torch.where(keep, idx + offset, torch.full_like(idx, dump)).reshape(-1)
    counts = torch.bincount(flat, minlength=dump + 1)[:dump].reshape(n, cells).float()
    return counts / counts.sum(dim=1, keepdim=True).clamp_min(1.0)


def _binned_numpy(pixels: np.ndarray, bins: int, mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, H, W) float32 model input -> (cell number (n, P), kept = not near-white (n, P)): the
    undo in float32 (so the same rounding as torch), then 16-bit integer binning."""
    _check(pixels.shape, bins)
    n, cells = pixels.shape[0], bins**3
    m = (np.asarray(mean, dtype=np.float32) * np.float32(255.0)).reshape(1, 3, 1, 1)
    s = (np.asarray(std, dtype=np.float32) * np.float32(255.0)).reshape(1, 3, 1, 1)
    x = pixels.astype(np.float32, copy=False) * s
    x += m
    np.rint(x, out=x)  # round half to even, like torch.round
    np.clip(x, 0, 255, out=x)
    rgb = x.astype(np.uint16).reshape(n, 3, -1)
    keep = rgb.min(axis=1) < WHITE_MIN  # (n, P)
    q = (rgb * bins) >> 8  # v * bins // 256; at most 255 * 256, fits 16 bits
    if cells > 1 << 16:  # bins > 40: cell numbers need more than 16 bits
        q = q.astype(np.uint32)
    return (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2], keep


def colour_histogram_numpy(pixels: np.ndarray, bins: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The CPU path of ``colour_histogram`` on a float32 numpy batch: the same steps and the same
    float32 arithmetic for the undo (so the same rounding), then 16-bit integer binning."""
    idx, keep = _binned_numpy(pixels, bins, mean, std)
    n, cells = pixels.shape[0], bins**3
    out = np.empty((n, cells), dtype=np.float32)
    for i in range(n):
        kept = keep[i]
        cell = idx[i][kept] if np.count_nonzero(kept) > MIN_KEPT else idx[i]  # mostly white: every pixel
        counts = np.bincount(cell, minlength=cells).astype(np.float32)
        out[i] = counts / max(float(counts.sum()), 1.0)
    return out


def window_colour_histograms(pixels: np.ndarray, bins: int, mean: Sequence[float], std: Sequence[float],
                             cell: int, windows: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
    """(n, 3, H, W) float32 model input -> (n, R, bins**3): ``colour_histogram`` of each window's
    crop, ``windows`` given as (col0, row0, col1, row1) in ``cell``-pixel units (the backbone map's
    cells, so a window's crop is whole cells). Equal to cropping and calling ``colour_histogram``
    per window, but the pixels are binned once and each window sums per-cell counts from a
    summed-area table: 149 windows of a 640 px room cost one pass over the photo
    (tests/encoders/test_colour.py checks the equality)."""
    idx, keep = _binned_numpy(pixels, bins, mean, std)
    n, _c, h, w = pixels.shape
    cells, gh, gw = bins**3, h // cell, w // cell
    rows = np.arange(h)[:, None] // cell
    cols = np.arange(w)[None, :] // cell
    grid = np.minimum(rows, gh - 1) * gw + np.minimum(cols, gw - 1)  # the map cell of each pixel
    inside = ((rows < gh) & (cols < gw)).reshape(-1)
    where = grid.reshape(-1).astype(np.int64) * cells
    out = np.empty((n, len(windows), cells), dtype=np.float32)
    for i in range(n):
        tables = []
        for mask in (keep[i] & inside, inside):  # near-white dropped; every pixel (mostly-white crops)
            counts = np.bincount(where[mask] + idx[i][mask], minlength=gh * gw * cells).reshape(gh, gw, cells)
            sat = np.zeros((gh + 1, gw + 1, cells), dtype=np.int64)
            sat[1:, 1:] = counts.cumsum(0).cumsum(1)
            tables.append(sat)
        for r, (c0, r0, c1, r1) in enumerate(windows):
            kept, every = ((t[r1, c1] - t[r0, c1] - t[r1, c0] + t[r0, c0]) for t in tables)
            counts = kept if int(kept.sum()) > MIN_KEPT else every
            out[i, r] = counts.astype(np.float32) / np.float32(max(float(counts.sum()), 1.0))
    return out


def colour_histogram(pixels: torch.Tensor, bins: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(n, 3, H, W) normalised model input (as the image tower receives it) -> (n, bins**3) float32.
    CPU tensors take the numpy path (same numbers, a fraction of the CPU); GPU tensors stay on the GPU."""
    if pixels.device.type == "cpu":
        return torch.from_numpy(colour_histogram_numpy(pixels.detach().float().numpy(), bins, mean, std))
    return colour_histogram_uint8(to_uint8_range(pixels, mean, std), bins)
