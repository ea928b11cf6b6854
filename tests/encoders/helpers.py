"""Shared test helpers for the encoder tests (data paths, expected labels, image encoding)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

DATA = Path(__file__).parent / "data"
IKEA = DATA / "ikea"  # 4 catalogue photos (see NOTICE.md / SOURCE.md there)

# shipped photo -> acceptable ImageNet top-1 class ids
IMAGENET_EXPECTED: dict[str, tuple[int, ...]] = {
    "002.806.37.jpg": (846,),  # table lamp
    "902.696.97.jpg": (894,),  # wardrobe
    "602.457.21.jpg": (526,),  # desk
    "702.790.70.jpg": (423, 765, 559),  # swivel chair -> barber / rocking / folding chair
}


def encode_as(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()
