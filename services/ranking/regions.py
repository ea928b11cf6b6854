"""Shop the look: region proposals for a room photo and the merge of per-region hits.

PLACEHOLDER proposals (multi-scale windows) until the offline study picks the method.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from homesearch.ranking.fusion import FusedHit

Box = tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in 0..1


@dataclass
class RegionResult:
    box: Box
    score: float
    hits: list[FusedHit] = field(default_factory=list)


def decode(data: bytes):
    from PIL import Image, ImageOps

    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im)
    return im.convert("RGB")


def is_scene_like(im) -> bool:
    """A packshot has a plain light border; a room photo has content up to its edges."""
    import numpy as np

    a = np.asarray(im.resize((64, 64)), dtype=np.int16)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    light = (border.min(axis=1) > 225).mean()
    return light < 0.5


def window_boxes(max_regions: int) -> list[Box]:
    boxes: list[Box] = [(0.0, 0.0, 1.0, 1.0)]
    for n in (2, 3):
        step = 1.0 / n
        for i in range(n):
            for j in range(n):
                boxes.append((j * step, i * step, (j + 1) * step, (i + 1) * step))
    return boxes[:max_regions]


def crop_jpeg(im, box: Box, quality: int = 90) -> bytes:
    w, h = im.size
    c = im.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))
    buf = io.BytesIO()
    c.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def propose(im, max_regions: int) -> list[Box]:
    return window_boxes(max_regions)


def merge(boxes: list[Box], results) -> tuple[list[RegionResult], list[FusedHit]]:
    regions = []
    best: dict[str, FusedHit] = {}
    for box, cands in zip(boxes, results):
        hits = [FusedHit(c.product_id, c.score, c.payload, {"image": c.score}) for c in cands]
        regions.append(RegionResult(box, hits[0].score if hits else 0.0, hits))
        for h in hits:
            if h.product_id not in best or h.score > best[h.product_id].score:
                best[h.product_id] = h
    return regions, sorted(best.values(), key=lambda h: (-h.score, h.product_id))
