"""The colour histogram shared by head training and the serving image tower (services.encoders.models.colour)."""

from __future__ import annotations

import io

import pytest
import torch
from services.encoders.models.colour import colour_histogram, colour_histogram_uint8, to_uint8_range
from services.encoders.models.effnet_image import DEFAULT_PIXELS
from services.encoders.models.preprocess import ImagePreprocessor
from PIL import Image


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_known_pixels_give_known_histogram():
    # 10 x 10 image: 50 red (200, 30, 30), 30 blue (30, 30, 200), 20 near-white (240, 250, 236) dropped
    x = torch.zeros((1, 3, 10, 10), dtype=torch.long)
    flat = x.view(3, 100)
    flat[:, :50] = torch.tensor([200, 30, 30])[:, None]
    flat[:, 50:80] = torch.tensor([30, 30, 200])[:, None]
    flat[:, 80:] = torch.tensor([240, 250, 236])[:, None]
    h = colour_histogram_uint8(x, 4)
    want = torch.zeros(1, 64)
    want[0, (3 * 4 + 0) * 4 + 0] = 50 / 80  # red: 200*4//256 = 3, 30*4//256 = 0
    want[0, (0 * 4 + 0) * 4 + 3] = 30 / 80  # blue
    assert h.dtype == torch.float32 and torch.equal(h, want)
    # bin edges (v * bins // 256): 63 -> 0, 64 -> 1, 191 -> 2, 192 -> 3; min channel 234 kept, 235 dropped
    px = {(63, 192, 0): (0 * 4 + 3) * 4 + 0, (64, 191, 234): (1 * 4 + 2) * 4 + 3, (234, 255, 255): 63, (235, 240, 255): None}
    e = torch.tensor([c for c in px for _ in range(20)]).T.reshape(1, 3, 4, 20)
    h2 = colour_histogram_uint8(e, 4)
    want2 = torch.zeros(1, 64)
    for cell in px.values():
        if cell is not None:
            want2[0, cell] = 1 / 3
    assert torch.allclose(h2, want2) and h2.sum() == pytest.approx(1.0)


def test_all_white_image_falls_back_to_every_pixel_and_empty_batch_is_fine():
    white = torch.full((2, 3, 8, 8), 255, dtype=torch.long)
    white[1, :, 0, 0] = 0  # one dark pixel out of 64: too few kept, so every pixel counts
    h = colour_histogram_uint8(white, 2)
    assert torch.equal(h[0], torch.tensor([0, 0, 0, 0, 0, 0, 0, 1.0]))
    assert torch.allclose(h[1], torch.tensor([1 / 64, 0, 0, 0, 0, 0, 0, 63 / 64]))
    assert colour_histogram_uint8(torch.zeros((0, 3, 4, 4), dtype=torch.long), 4).shape == (0, 64)
    with pytest.raises(ValueError):
        colour_histogram_uint8(torch.zeros((3, 4, 4), dtype=torch.long), 4)


def test_normalised_model_input_round_trips_to_the_decoded_pixels():
    spec = DEFAULT_PIXELS
    pre = ImagePreprocessor(spec, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (2, 3, 224, 224), generator=g)
    pixels = pre.normalize(rgb.float())
    assert torch.equal(to_uint8_range(pixels, spec.mean, spec.std), rgb)
    assert torch.equal(colour_histogram(pixels, 4, spec.mean, spec.std), colour_histogram_uint8(rgb, 4))


def test_histogram_of_the_served_padded_view():
    """A solid-colour photo, through the serving preprocessing (pad to a white 224 square):
    the padding is background, so the histogram is one cell; the training helper agrees."""
    pre = ImagePreprocessor(DEFAULT_PIXELS, torch.device("cpu"))
    photo = _png(Image.new("RGB", (224, 100), (20, 120, 220)))  # longest side 224: no resampling
    pixels, ok, errors = pre([photo])
    assert ok == [0] and not errors
    h = colour_histogram(pixels, 4, DEFAULT_PIXELS.mean, DEFAULT_PIXELS.std)
    cell = (0 * 4 + 1) * 4 + 3  # 20 -> 0, 120 -> 1, 220 -> 3
    want = torch.zeros(1, 64)
    want[0, cell] = 1.0
    assert torch.equal(h, want)


def test_training_uses_the_same_implementation(tmp_path):
    from services.encoders.training import features as F

    img = Image.new("RGB", (300, 180), (250, 250, 250))
    img.paste(Image.new("RGB", (120, 90), (180, 40, 40)), (30, 30))
    img.paste(Image.new("RGB", (60, 60), (40, 90, 40)), (200, 100))
    path = tmp_path / "p.png"
    img.save(path)
    pixels, _, _ = ImagePreprocessor(DEFAULT_PIXELS, torch.device("cpu"))([path.read_bytes()])
    served = colour_histogram(pixels, 4, DEFAULT_PIXELS.mean, DEFAULT_PIXELS.std)[0].numpy()
    trained = F.colour_histograms_of_files([path], 4)[0]
    assert (trained == served).all()
    assert trained.sum() == pytest.approx(1.0) and (trained > 0).sum() >= 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_equals_cpu():
    g = torch.Generator().manual_seed(1)
    rgb = torch.randint(0, 256, (3, 3, 224, 224), generator=g)
    rgb[:, :, :100] = 255
    assert torch.equal(colour_histogram_uint8(rgb.cuda(), 4).cpu(), colour_histogram_uint8(rgb, 4))


@pytest.mark.parametrize("bins", [1, 2, 4, 8, 40, 41, 64])
def test_numpy_path_equals_the_torch_integer_path(bins):
    """The CPU path (numpy, 16-bit) gives bit-identical histograms to the int64 torch ops, for both
    shipped pixel specs, mostly-white images and near-boundary values."""
    from services.encoders.models.colour import colour_histogram_numpy

    g = torch.Generator().manual_seed(bins)
    rgb = torch.randint(0, 256, (5, 3, 64, 48), generator=g)
    rgb[:, :, :20] = 250  # white background rows
    rgb[1] = 255
    rgb[1, :, 0, :16] = 3  # 16 dark pixels: too few kept, every pixel counts
    rgb[2] = 255
    rgb[2, :, 0, :17] = 3  # 17 kept: only those count
    rgb[3, :, 5] = torch.tensor([234, 235, 63])[:, None]  # edges of the white cut and the bins
    for mean, std in (((0.5,) * 3, (0.5,) * 3), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        pixels = (rgb.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        assert torch.equal(to_uint8_range(pixels, mean, std), rgb)
        want = colour_histogram_uint8(to_uint8_range(pixels, mean, std), bins)
        got = colour_histogram_numpy(pixels.numpy(), bins, mean, std)
        assert got.dtype == want.numpy().dtype and (got == want.numpy()).all()
        assert torch.equal(colour_histogram(pixels, bins, mean, std), want)


@pytest.mark.parametrize("bins", [2, 4, 8])
def test_window_histograms_equal_the_histogram_of_each_crop(bins):
    """``window_colour_histograms`` (per-cell counts + a summed-area table) gives exactly what
    ``colour_histogram_numpy`` gives for each window's crop: on noise, on a photo with a white
    studio margin (near-white pixels dropped), and where a window is almost all white (the
    every-pixel fallback), at the served scene geometry and at a small odd one."""
    import numpy as np
    from services.encoders.models.colour import colour_histogram_numpy, window_colour_histograms
    from services.encoders.models.scene_windows import SCENE_CELLS, SCENE_STRIDE, SCENE_WINDOWS, window_cells

    spec = DEFAULT_PIXELS
    rng = np.random.default_rng(bins)
    for cells, cell, windows, stride in ((SCENE_CELLS, 32, SCENE_WINDOWS, SCENE_STRIDE), (5, 7, (1, 2, 3), 1)):
        size = cells * cell
        rgb = rng.integers(0, 256, (3, 3, size, size))
        rgb[1, :, :, : size // 2] = 255  # left half white: windows there keep every pixel
        rgb[1, :, 0, 0] = 10  # ... but one dark pixel (16 or fewer kept: still every pixel)
        rgb[2] = 250
        k = size // 2 - size // 3  # a dark patch on a white image: some windows see it, others are all white
        rgb[2, :, size // 3 : size // 2, size // 3 : size // 2] = rng.integers(0, 235, (3, k, k))
        pixels = ((rgb / 255.0 - np.asarray(spec.mean)[None, :, None, None]) / np.asarray(spec.std)[None, :, None, None]).astype(np.float32)
        boxes = window_cells(cells, windows, stride)
        got = window_colour_histograms(pixels, bins, spec.mean, spec.std, cell, boxes)
        assert got.shape == (3, len(boxes), bins**3) and got.dtype == np.float32
        for r, (c0, r0, c1, r1) in enumerate(boxes):
            crop = np.ascontiguousarray(pixels[:, :, r0 * cell : r1 * cell, c0 * cell : c1 * cell])
            assert np.array_equal(got[:, r], colour_histogram_numpy(crop, bins, spec.mean, spec.std)), (cells, r)
