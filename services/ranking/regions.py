"""Shop the look: region proposals for a room photo and the merge of per-region hits.

No detector weights ship on the registries, so regions come from what does. Chosen by
measurement on the dev half of ``scenes.jsonl`` (split: sha1("h13-scenes:<id>")[0] < 128 is
held out and was never used to choose; see docs/shop-the-look.md):

| proposals (EfficientNet-Lite0 crops) | merge | dev nDCG@10 |
|---|---|---|
| one global vector | - | 0.039 |
| 1+2x2+3x3+4x4 grid (30 windows) | max over regions | 0.098 |
| same grid | round robin over regions | 0.115 |
| OpenCV selective search (40 boxes) + global | round robin | 0.096 |

(head-projected ``image`` vector; raw backbone features reach 0.12-0.18 with the same
proposals, see the doc.) Selective search adds an opencv-contrib dependency and did not
beat the grid, so the service uses the grid.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

from services.ranking.fusion import FusedHit
from services.ranking.index.schema import Candidate

Box = tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in 0..1
# (When the encoders serve the ``visual`` descriptor the service uses the 149 windows of one
# 640 px pass instead of these crops: ``services.ranking.scene_search``; this module keeps the
# merge, the scene test and the crop fallback for towers without it.)


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


_SCENE_LIKE: dict[bytes, bool] = {}  # photo digest -> answer, for the few photos in flight


def scene_like(data: bytes) -> bool:
    """``is_scene_like`` of encoded photo bytes, remembered by digest (one request may ask twice:
    region mode, then how to describe the photo; a decode is ~4 ms). Raises when undecodable."""
    key = hashlib.blake2b(data, digest_size=16).digest()
    got = _SCENE_LIKE.get(key)
    if got is None:
        got = is_scene_like(decode(data))
        if len(_SCENE_LIKE) >= 64:
            _SCENE_LIKE.clear()
        _SCENE_LIKE[key] = got
    return got


def is_scene_like(im) -> bool:
    """A packshot has a plain light border; a room photo has content up to its edges."""
    import numpy as np

    a = np.asarray(im.resize((64, 64)), dtype=np.int16)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    light = (border.min(axis=1) > 225).mean()
    return light < 0.5


def window_boxes(levels: tuple[int, ...]) -> list[Box]:
    """Non-overlapping n x n grids for each level (1 = the whole photo): 1+4+9+16 = 30 windows."""
    boxes: list[Box] = []
    for n in levels:
        step = 1.0 / n
        for i in range(n):
            for j in range(n):
                boxes.append((j * step, i * step, min(1.0, (j + 1) * step), min(1.0, (i + 1) * step)))
    return boxes


def visual_region_boxes(width: int, height: int, cells: int = 14, windows: tuple[int, ...] = (5, 7, 9),
                        stride: int = 2) -> list[Box]:
    """The photo boxes of the ``visual`` query regions (services.encoders.models.visual): square
    windows of the feature map of the white-padded square, mapped back onto the photo (the
    longest side fills the square, the other is centred) and clipped to it."""
    side = max(width, height)
    pad_x, pad_y = (side - width) / 2 / side, (side - height) / 2 / side
    fx, fy = side / width, side / height

    def clip(v: float) -> float:
        return min(1.0, max(0.0, v))

    out: list[Box] = []
    for s in windows:
        for y in range(0, cells - s + 1, stride):
            for x in range(0, cells - s + 1, stride):
                x0, y0, x1, y1 = x / cells, y / cells, (x + s) / cells, (y + s) / cells
                out.append((clip((x0 - pad_x) * fx), clip((y0 - pad_y) * fy), clip((x1 - pad_x) * fx), clip((y1 - pad_y) * fy)))
    return out


def crop_jpeg(im, box: Box, quality: int = 90) -> bytes:
    w, h = im.size
    c = im.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))
    buf = io.BytesIO()
    c.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def merge(
    boxes: list[Box], results: list[list[Candidate]] | list[list[FusedHit]], depth: int,
    order_scores: list[float] | None = None,
) -> tuple[list[RegionResult], list[FusedHit]]:
    """Per-region hit lists, and the merged list by round robin over regions.

    Regions are visited best first (by their top score); each round every region contributes
    its next product not taken yet. A room holds many products, each matching one region well,
    so interleaving beats one global max (which lets the region most similar to *everything*,
    usually a wall or floor window, fill the page). Merged scores decrease with the position
    (1 .. 1/n); the region's cosine stays in the ``image`` signal for explain.
    """
    regions = []
    for box, cands in zip(boxes, results):
        hits = [c if isinstance(c, FusedHit) else FusedHit(c.product_id, c.score, c.payload, {"image": c.score})
                for c in cands]
        regions.append(RegionResult(box, hits[0].score if hits else 0.0, hits))
    if order_scores is not None:  # the region's best photo match, when its list is a per-region fusion
        for r, score in zip(regions, order_scores):
            r.score = score
    ordered = sorted(range(len(regions)), key=lambda i: -regions[i].score)
    merged: list[FusedHit] = []
    seen: set[str] = set()
    for rank in range(max((len(r.hits) for r in regions), default=0)):
        for i in ordered:
            hits = regions[i].hits
            if rank < len(hits) and hits[rank].product_id not in seen:
                h = hits[rank]
                seen.add(h.product_id)
                merged.append(FusedHit(h.product_id, 0.0, h.payload, dict(h.raw), {"region": float(i)}))
        if len(merged) >= depth:
            break
    n = max(1, len(merged))
    for pos, h in enumerate(merged):
        h.score = (n - pos) / n
    return [regions[i] for i in ordered], merged
