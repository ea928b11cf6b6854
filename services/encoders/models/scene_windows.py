"""The regions of a ``scene`` photo (shop the look), defined once for the graph and the boxes.

Why a module of its own: the image encoder pools these windows of one backbone pass
(``services.encoders.models.visual.regional_gem``) and the ranking service turns row ``r`` of
the answer back into a box on the shopper's photo. Both read this one definition, and it
imports nothing heavy (the ranking service never loads torch).

A scene photo's longest side goes to ``SCENE_SIZE`` (640 px), centred on a white square; the
backbone's last map is then ``SCENE_CELLS`` x ``SCENE_CELLS`` (20 x 20, stride 32). Square
windows of 5, 7 and 9 cells at stride 2: 64 + 49 + 36 = 149 regions, row-major per window
size. Chosen offline on the dev scenes (docs/shop-the-look.md): 448 px (14 x 14) lost most of
it (~0.09 nDCG@10), rectangles and more shapes (389-529 regions) did worse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Box = tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in 0..1

SCENE_SIZE = 640
FEATURE_STRIDE = 32  # EfficientNet-Lite0's last map: one cell per 32 px
SCENE_CELLS = SCENE_SIZE // FEATURE_STRIDE
SCENE_WINDOWS: tuple[int, ...] = (5, 7, 9)
SCENE_STRIDE = 2


def window_cells(cells: int, windows: tuple[int, ...], stride: int) -> list[tuple[int, int, int, int]]:
    """(col0, row0, col1, row1) in whole map cells of every square window, in ``regional_gem``
    order: for each window size, rows top to bottom, each left to right (what ``avg_pool2d`` +
    reshape gives)."""
    out: list[tuple[int, int, int, int]] = []
    for s in windows:
        if s > cells:
            continue
        for y in range(0, cells - s + 1, stride):
            for x in range(0, cells - s + 1, stride):
                out.append((x, y, x + s, y + s))
    return out


def window_boxes(cells: int, windows: tuple[int, ...], stride: int) -> list[Box]:
    """``window_cells`` as (x0, y0, x1, y1) in [0, 1] of the square map, same order."""
    return [(x0 / cells, y0 / cells, x1 / cells, y1 / cells) for x0, y0, x1, y1 in window_cells(cells, windows, stride)]


def scene_colour_histograms(pixels: Any, bins: int, mean: Sequence[float], std: Sequence[float]) -> Any:
    """(n, 3, 640, 640) float32 numpy model input -> (n, 149, bins**3): each window's colour
    histogram, the scene graph's extra input (one definition for the torch tower and the ONNX
    engine; ``colour.window_colour_histograms``, imported here lazily: it needs torch)."""
    from services.encoders.models.colour import window_colour_histograms

    return window_colour_histograms(pixels, bins, mean, std, FEATURE_STRIDE,
                                    window_cells(SCENE_CELLS, SCENE_WINDOWS, SCENE_STRIDE))


def scene_region_count() -> int:
    return len(window_boxes(SCENE_CELLS, SCENE_WINDOWS, SCENE_STRIDE))


def scene_boxes(width: int, height: int) -> list[Box]:
    """The box of each scene row on a ``width`` x ``height`` photo, in [0, 1] of the photo.

    The photo sits centred in the padded square (``preprocess.resize_pad``), so a window is
    shifted and scaled out of the square and clipped to the photo (a window may cover padding)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"photo size must be positive, got {width}x{height}")
    scale = SCENE_SIZE / max(width, height)
    nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
    left, top = (SCENE_SIZE - nw) // 2, (SCENE_SIZE - nh) // 2

    def clip(v: float) -> float:
        return min(1.0, max(0.0, v))

    out: list[Box] = []
    for x0, y0, x1, y1 in window_boxes(SCENE_CELLS, SCENE_WINDOWS, SCENE_STRIDE):
        out.append((clip((x0 * SCENE_SIZE - left) / nw), clip((y0 * SCENE_SIZE - top) / nh),
                    clip((x1 * SCENE_SIZE - left) / nw), clip((y1 * SCENE_SIZE - top) / nh)))
    return out
