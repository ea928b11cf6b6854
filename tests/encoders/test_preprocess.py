"""Preprocessing units that need no server: orientation (the GPU path's own code), padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from services.encoders.models.base import PixelSpec
from services.encoders.models.preprocess import ImagePreprocessor, _orient, resize_pad
from PIL import Image, ImageOps

from tests.encoders.helpers import encode_as


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tensor_orientation_matches_pillow_exif_transpose(orientation):
    """nvJPEG output is oriented by `_orient`; it must agree with Pillow for all 8 EXIF values."""
    rng = np.random.default_rng(orientation)
    img = Image.fromarray(rng.integers(0, 255, (5, 7, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    img.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(img))
    got = _orient(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_resize_pad_keeps_aspect_on_white():
    x = torch.zeros((3, 100, 200), dtype=torch.uint8)  # black, landscape
    out = resize_pad(x, 50)
    assert out.shape == (3, 50, 50)
    assert torch.all(out[:, :12] == 255) and torch.all(out[:, -12:] == 255)  # white bands top/bottom
    assert torch.all(out[:, 13:37] == 0)


def test_errors_are_reported_per_item_not_raised():
    spec = PixelSpec(size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    good = encode_as(Image.new("RGB", (40, 20), "red"), "PNG")
    pixels, ok, errors = ImagePreprocessor(spec, torch.device("cpu"))([b"", good, b"junk", good])
    assert ok == [1, 3] and set(errors) == {0, 2} and pixels.shape == (2, 3, 32, 32)
    assert float(pixels.min()) >= -1.0 and float(pixels.max()) <= 1.0
