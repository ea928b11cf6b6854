"""Synthetic shopper-style photos: a catalogue photo's product cut out, cropped, tilted, scaled,
pasted on a room scene, re-lit and JPEG-recompressed.

Why: the visual descriptor has to match a product photographed "in the wild" to its white-background
studio shot; the only shopper photos we have (``photos.jsonl``) are the evaluation set, so training
pairs are made the same way from the *training* products and *training* scenes only. Everything
is drawn from one ``random.Random`` so a seed gives the same photos on every machine.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

WHITE_THRESHOLD = 235  # a pixel is product when its darkest channel is below this (studio white ~ 245-255)
PHOTO_SIZE = 512


@dataclass(frozen=True)
class Synth:
    """One synthetic photo and where the product landed, in pixels of ``image`` (x0, y0, x1, y1)."""

    image: Image.Image
    box: tuple[int, int, int, int]


def scene_part(scene_id: str, seed: int = 0, heldout_fraction: float = 0.5) -> str:
    """``train`` or ``heldout`` for a room scene, by a hash of its id (the scenes carry no split of
    their own; only ``train`` scenes may be used as backgrounds)."""
    h = hashlib.sha1(f"{seed}:scene:{scene_id}".encode()).digest()
    return "heldout" if int.from_bytes(h[:8], "big") / 2**64 < heldout_fraction else "train"


def foreground_mask(rgb: np.ndarray, threshold: int = WHITE_THRESHOLD) -> np.ndarray:
    """Boolean (h, w) mask of non-white pixels of a studio photo."""
    return rgb.min(axis=2) < threshold


def cut_out(photo: Image.Image, rng: random.Random, keep: tuple[float, float] = (0.7, 1.0)) -> Image.Image | None:
    """The product as RGBA (alpha = foreground mask), randomly cropped to keep a ``keep`` fraction of
    its bounding box per side; None when the photo has (almost) no foreground."""
    rgb = np.asarray(photo.convert("RGB"))
    mask = foreground_mask(rgb)
    ys, xs = np.nonzero(mask)
    if len(xs) < 64:
        return None
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    w, h = x1 - x0, y1 - y0
    kw, kh = rng.uniform(*keep), rng.uniform(*keep)
    cw, ch = max(8, round(w * kw)), max(8, round(h * kh))
    cx0 = x0 + rng.randint(0, w - cw) if w > cw else x0
    cy0 = y0 + rng.randint(0, h - ch) if h > ch else y0
    rgba = np.dstack([rgb, (mask * 255).astype(np.uint8)])[cy0 : cy0 + ch, cx0 : cx0 + cw]
    return Image.fromarray(rgba, "RGBA")


def relight(im: Image.Image, rng: random.Random) -> Image.Image:
    """Brightness, contrast, saturation and a per-channel colour cast, as a phone camera in a room."""
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.65, 1.3))
    im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.7, 1.3))
    im = ImageEnhance.Color(im).enhance(rng.uniform(0.7, 1.3))
    cast = np.array([rng.uniform(0.88, 1.12) for _ in range(3)], dtype=np.float32)
    a = np.clip(np.asarray(im, dtype=np.float32) * cast, 0, 255).astype(np.uint8)
    return Image.fromarray(a, "RGB")


def jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def background(scene: Image.Image, rng: random.Random, size: int = PHOTO_SIZE) -> Image.Image:
    """A random square crop (40-100% of the short side) of a room scene, resized to ``size``."""
    w, h = scene.size
    s = round(min(w, h) * rng.uniform(0.4, 1.0))
    x0, y0 = rng.randint(0, w - s), rng.randint(0, h - s)
    return scene.convert("RGB").crop((x0, y0, x0 + s, y0 + s)).resize((size, size), Image.BILINEAR)


def shopper_photo(
    product: Image.Image,
    scene: Image.Image,
    rng: random.Random,
    size: int = PHOTO_SIZE,
    scale: tuple[float, float] = (0.35, 0.9),
    max_tilt: float = 20.0,
) -> Synth | None:
    """One shopper-style photo of ``product`` (a studio photo) on ``scene``; None without foreground."""
    obj = cut_out(product, rng)
    if obj is None:
        return None
    obj = obj.rotate(rng.uniform(-max_tilt, max_tilt), resample=Image.BILINEAR, expand=True)
    bbox = obj.getchannel("A").getbbox()
    if bbox is None:
        return None
    obj = obj.crop(bbox)
    side = rng.uniform(*scale) * size
    f = side / max(obj.size)
    obj = obj.resize((max(4, round(obj.size[0] * f)), max(4, round(obj.size[1] * f))), Image.BILINEAR)
    ow, oh = obj.size
    x0, y0 = rng.randint(0, size - ow), rng.randint(0, size - oh)
    canvas = background(scene, rng, size)
    canvas.paste(obj.convert("RGB"), (x0, y0), obj.getchannel("A"))
    canvas = relight(canvas, rng)
    if rng.random() < 0.3:
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    canvas = jpeg(canvas, rng.randint(35, 90))
    return Synth(canvas, (x0, y0, x0 + ow, y0 + oh))
