"""JPEG draft decode: only photos with room for a 2x-oversampled DCT reduction are decoded small,
and what the tower sees stays the full decode's picture (the relevance check is bench/decode_draft.py)."""

from __future__ import annotations

import io

import numpy as np
import torch
from homesearch.encoders.effnet_image import DEFAULT_PIXELS
from homesearch.encoders.preprocess import DRAFT_OVERSAMPLE, ImagePreprocessor, draft_box
from PIL import Image

from tests.encoders.helpers import encode_as


def test_draft_box_keeps_twice_the_input_size():
    assert DRAFT_OVERSAMPLE == 2.0
    assert draft_box(500, 500, 224) is None  # catalogue photos: full decode
    assert draft_box(1024, 765, 224) is None  # the short side has no room for 1/2 at 448
    assert draft_box(4032, 3024, 224) == (448, 448)  # a phone photo
    assert draft_box(4032, 3024, 224, oversample=1.0) == (224, 224)


def test_big_photo_decodes_small_and_looks_the_same(photos):
    base = Image.open(io.BytesIO(photos["002.806.37.jpg"])).convert("RGB")
    big = encode_as(base.resize((2400, 2400), Image.BICUBIC), "JPEG", quality=92)
    img = Image.open(io.BytesIO(big))
    img.draft("RGB", draft_box(*img.size, DEFAULT_PIXELS.size))
    assert max(img.size) < 2400 and min(img.size) >= 2 * DEFAULT_PIXELS.size  # the decoder did less work
    drafted = ImagePreprocessor(DEFAULT_PIXELS, torch.device("cpu")).decode([big])[0][0]
    full = ImagePreprocessor(DEFAULT_PIXELS, torch.device("cpu"), draft_oversample=float("inf")).decode([big])[0][0]
    diff = (drafted - full).abs()
    assert drafted.shape == full.shape == (3, DEFAULT_PIXELS.size, DEFAULT_PIXELS.size)
    assert float(diff.mean()) < 1.5 and float(np.percentile(diff.numpy(), 99)) < 12  # 0..255 scale
