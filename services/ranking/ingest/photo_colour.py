"""Named colours of a product photo's foreground, estimated from its pixels at ingestion.

Why: many catalogs do not state in their text what the photo shows (issue 12's implicit-attribute
set). A cheap pixel estimate, stored as the indexed attribute ``photo_color``, lets a search filter
on it, a facet count it, and a query that names a colour boost products whose photo has it.

How (a few ms per photo, no model):

1. Decode small: Pillow draft mode (JPEG DCT scaling) then a thumbnail of ``SIZE`` px.
2. Foreground: catalogue photos are studio shots on a plain (white) background. Background =
   pixels close to the border's median colour that are *connected to the border* (a flood fill),
   so the inside of a white product outlined by its shading still counts as product. When the
   border is not plain (a room shot), the centre ``CENTRE`` box is used instead.
3. CIELAB (D65) per pixel; each pixel gets one palette name from lightness L, chroma C and hue h
   (``classify``). Thresholds (``Thresholds``) were chosen on the TRAIN part of the line split
   (``python -m services.ranking.ingest.photo_colour_study``), see docs/evaluation.md.
4. Names covering at least ``min_fraction`` of the foreground are kept, largest first, with their
   fractions.

Palette names are the English colour words of the glossary (``services/ranking/language/data``), so
a query colour in English or Chinese maps onto them (``services.ranking.photo_boost``).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

METHOD = "lab-palette-v1"
SIZE = 80  # px, longest side
CENTRE = 0.6  # centre box side when the border is not plain
PALETTE = (
    "white", "off-white", "beige", "grey", "dark grey", "black", "brown", "light brown", "dark brown",
    "red", "pink", "orange", "yellow", "green", "turquoise", "blue", "lilac",
)


@dataclass(frozen=True)
class Thresholds:
    """Decision boundaries in CIELAB (L 0..100, chroma C, hue h in degrees).

    Defaults: coordinate ascent on the TRAIN lines of the line split (seed 0) only
    (``python -m homesearch.evaluation.photo_colour --tune``); studio photos are desaturated, so
    the achromatic chroma bound is low (beige and pink photos have a median C of only 9-13).
    """

    achromatic_c: float = 4.5  # C below: white / grey / black by L
    tint_c: float = 7.0  # C below (and light): off-white (warm) or white (cool)
    white_l: float = 76.0  # achromatic L at or above: white (studio shading: white products sit at L 75-88)
    grey_l: float = 40.0  # achromatic L at or above (below white_l): grey
    black_l: float = 30.0  # achromatic L below: black (between: dark grey)
    warm_c: float = 24.0  # light warm hue with C below: beige; below warm_c + 15: light brown
    beige_l: float = 72.0
    brown_l: float = 55.0  # warm hue below this L: brown
    dark_brown_l: float = 30.0  # warm hue below this L: dark brown
    pink_l: float = 50.0  # red hues at or above this L (and not saturated red-orange): pink
    min_fraction: float = 0.1  # keep names covering at least this share of the foreground
    bg_delta: float = 12.0  # Lab distance to the border colour that still counts as background


DEFAULT = Thresholds()


@dataclass(frozen=True)
class PhotoColour:
    name: str
    fraction: float


def decode_small(data: bytes, size: int = SIZE) -> np.ndarray:
    """RGB uint8 array of at most ``size`` px per side; raises on undecodable data."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (size * 2, size * 2))  # JPEG: decode at 1/2..1/8 scale, cheap
        im = im.convert("RGBA") if im.mode in ("P", "LA", "RGBA") else im.convert("RGB")
        im.thumbnail((size, size))
        if im.mode == "RGBA":  # transparent background -> white, like a studio shot
            bg = Image.new("RGB", im.size, (255, 255, 255))
            bg.paste(im, mask=im.split()[3])
            im = bg
        return np.asarray(im, dtype=np.uint8)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (..., 3) -> CIELAB (D65) float (..., 3)."""
    c = rgb.astype(np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def _border(lab: np.ndarray) -> np.ndarray:
    return np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])


def foreground_mask(lab: np.ndarray, t: Thresholds = DEFAULT) -> np.ndarray:
    """Boolean mask of product pixels (see the module docstring)."""
    h, w = lab.shape[:2]
    border = _border(lab)
    ref = np.median(border, axis=0)
    near = np.linalg.norm(lab - ref, axis=-1) < t.bg_delta
    if np.mean(np.linalg.norm(border - ref, axis=-1) < t.bg_delta) < 0.7:  # border not plain: centre box
        mask = np.zeros((h, w), dtype=bool)
        dy, dx = int(h * (1 - CENTRE) / 2), int(w * (1 - CENTRE) / 2)
        mask[dy:h - dy, dx:w - dx] = True
        return mask
    bg = np.zeros((h, w), dtype=bool)
    bg[0], bg[-1], bg[:, 0], bg[:, -1] = near[0], near[-1], near[:, 0], near[:, -1]
    while True:  # flood fill from the border through near-background pixels (4-neighbours)
        grown = bg.copy()
        grown[1:] |= bg[:-1]
        grown[:-1] |= bg[1:]
        grown[:, 1:] |= bg[:, :-1]
        grown[:, :-1] |= bg[:, 1:]
        grown &= near
        if np.array_equal(grown, bg):
            break
        bg = grown
    fg = ~bg
    if fg.mean() < 0.01:  # nothing stands out (e.g. a white product filling a white frame): all pixels
        fg = np.ones((h, w), dtype=bool)
    return fg


def classify(lab: np.ndarray, t: Thresholds = DEFAULT) -> np.ndarray:
    """Palette index (into ``PALETTE``) per pixel of an (N, 3) Lab array; first rule that holds wins.

    Hue anchors (sRGB -> CIELAB): red 40, brown 55, orange 73, yellow 103, green 136, turquoise 185,
    light blue 219, blue 306, lilac 324, pink 8 degrees.
    """
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    C = np.hypot(a, b)
    h = np.degrees(np.arctan2(b, a)) % 360
    warm = (h >= 30) & (h < 100)
    by_l = np.select([L >= t.white_l, L >= t.grey_l, L >= t.black_l], [0, 3, 4], 5)  # white, grey, dark grey, black
    rules = [
        (C < t.achromatic_c, by_l),
        (warm & (C < t.tint_c) & (L >= t.white_l - 6), 1),  # off-white
        ((C < t.tint_c) & (L >= t.white_l), 0),  # cool tinted white
        (warm & (L < t.dark_brown_l), 8),  # dark brown
        ((C < t.tint_c) & ~warm, by_l),  # tinted greys
        (warm & (L < t.brown_l) & ~((h < 45) & (C >= 40)), 6),  # brown
        (warm & (L >= t.beige_l) & (C < t.warm_c), 2),  # beige
        (warm & (C < t.warm_c + 15) & (h >= 45), 7),  # light brown
        ((h >= 345) | (h < 44), np.where((L >= t.pink_l) & ((C < 55) | (h >= 345) | (h < 20)), 10, 9)),  # pink / red
        (h < 82, 11),  # orange
        (h < 115, np.where(L >= 55, 12, 13)),  # yellow (dark: olive green)
        (h < 180, 13),  # green
        (h < 212, 14),  # turquoise
        (h < 315, 15),  # blue
    ]
    return np.select([c for c, _ in rules], [np.broadcast_to(v, L.shape) for _, v in rules], 16)  # else lilac


def colours_of_lab(lab: np.ndarray, t: Thresholds = DEFAULT) -> list[PhotoColour]:
    """Kept palette names with their foreground fractions, largest first."""
    fg = lab[foreground_mask(lab, t)]
    counts = np.bincount(classify(fg, t), minlength=len(PALETTE)) / max(1, len(fg))
    order = np.argsort(-counts, kind="stable")
    kept = [PhotoColour(PALETTE[i], round(float(counts[i]), 3)) for i in order if counts[i] >= t.min_fraction]
    return kept or [PhotoColour(PALETTE[order[0]], round(float(counts[order[0]]), 3))]


def photo_colours(data: bytes, t: Thresholds = DEFAULT) -> list[PhotoColour]:
    """Named colours of one photo's foreground; raises on undecodable data (callers skip it)."""
    return colours_of_lab(rgb_to_lab(decode_small(data)), t)


def main_photo_colours(images: list[bytes]) -> list[tuple[str, float]] | None:
    """``(name, fraction)`` of the first photo, or None when there is none or it does not decode.

    Never raises: the photo was already validated (and embedded) for the product, so a decoder
    quirk here must only leave the estimate out, not fail the product.
    """
    if not images:
        return None
    try:
        return [(c.name, c.fraction) for c in photo_colours(images[0])]
    except Exception:  # noqa: BLE001 - PIL raises many types for odd data
        log.warning("photo colour not estimated", exc_info=True)
        return None
