"""The ``visual`` photo->photo vector: views, descriptor, and the served output (real Triton)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image


def _decoded(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()).permute(2, 0, 1)


def test_foreground_box_is_tight_on_a_studio_photo_and_whole_on_a_scene():
    from homesearch.encoders.preprocess import foreground_box

    x = torch.full((3, 100, 200), 255, dtype=torch.uint8)
    x[:, 40:60, 120:170] = 30  # a dark object on white
    t, l, b, r = foreground_box(x, margin=0.0)
    assert (t, l, b, r) == (40, 120, 60, 170)
    t, l, b, r = foreground_box(x)  # grown by 4 % of the object's size
    assert t <= 40 and l <= 120 and b >= 60 and r >= 170 and b - t < 30
    scene = torch.randint(0, 200, (3, 50, 80), dtype=torch.uint8)
    assert foreground_box(scene) == (0, 0, 50, 80)
    assert foreground_box(torch.full((3, 10, 10), 255, dtype=torch.uint8)) == (0, 0, 10, 10)


def test_visual_views_per_mode(photos):
    from homesearch.encoders.effnet_image import DEFAULT_PIXELS
    from homesearch.encoders.preprocess import ImagePreprocessor, visual_boxes

    pre = ImagePreprocessor(DEFAULT_PIXELS, torch.device("cpu"))
    data = next(iter(photos.values()))
    views, errors = pre.decode_views([data, b"not an image"], "index")
    assert list(errors) == [1] and views[1] is None
    assert len(views[0]) == 2 and all(v.shape == (3, 224, 224) for v in views[0])
    q, _ = pre.decode_views([data], "query")
    assert len(q[0]) == 15
    # view 0 of either mode is the whole photo, as the main view preprocesses it
    main, _ = pre.decode([data])
    assert torch.allclose(q[0][0], main[0], atol=1.0)
    with pytest.raises(ValueError, match="visual mode"):
        visual_boxes(_decoded(data), "gallery")


def test_visual_descriptor_finds_a_catalogue_photo_from_a_crop(photos):
    """A shopper-style crop of one catalogue photo is nearer to it than to the other photos."""
    from homesearch.encoders.effnet_image import DEFAULT_PIXELS, EffNetImageEncoder
    from homesearch.encoders.preprocess import ImagePreprocessor

    enc = EffNetImageEncoder(head_dir=None)
    pre = ImagePreprocessor(DEFAULT_PIXELS, torch.device("cpu"))
    names = sorted(photos)
    gallery, _ = pre.decode_views([photos[n] for n in names], "index")
    g = torch.stack([enc.encode_visual(pre.normalize(torch.stack(v))) for v in gallery])  # (n, 2, 512)
    assert torch.allclose(g.norm(dim=-1), torch.ones(g.shape[:2]), atol=1e-4)
    for i, n in enumerate(names):
        img = Image.open(io.BytesIO(photos[n])).convert("RGB")
        w, h = img.size
        crop = img.crop((w // 8, h // 10, w - w // 10, h - h // 8)).rotate(8, fillcolor=(180, 170, 160))
        buf = io.BytesIO()
        crop.save(buf, "JPEG", quality=70)
        qv, _ = pre.decode_views([buf.getvalue()], "query")
        q = enc.encode_visual(pre.normalize(torch.stack(qv[0])))  # (15, 512)
        scores = torch.einsum("kd,nvd->nkv", q, g).amax(dim=(1, 2))
        assert int(scores.argmax()) == i, (n, scores.tolist())


def test_served_visual_matches_in_process(encoder_client, photos):
    from homesearch.encoders.effnet_image import DEFAULT_PIXELS, EffNetImageEncoder
    from homesearch.encoders.preprocess import ImagePreprocessor

    info = encoder_client.model_info()
    assert info.visual_version.startswith("effnet-lite0+gem3-pw512")
    assert info.model_version.endswith("|" + info.visual_version)
    imgs = list(photos.values())[:3]
    visual, emb = encoder_client.embed_images_visual(imgs, "index", with_embedding=True)
    assert visual.shape == (3, 2, 512) and emb.shape == (3, 384)
    assert np.allclose(np.linalg.norm(visual, axis=-1), 1.0, atol=1e-4)
    plain = encoder_client.embed_images(imgs)
    assert (plain * emb).sum(1).min() > 0.999  # same text-space vector as a plain request
    q, none = encoder_client.embed_images_visual(imgs[:1], "query")
    assert q.shape == (1, 15, 512) and none is None
    enc = EffNetImageEncoder(head_dir=None)
    pre = ImagePreprocessor(DEFAULT_PIXELS, torch.device("cpu"))
    views, _ = pre.decode_views(imgs[:1], "index")
    local = enc.encode_visual(pre.normalize(torch.stack(views[0]))).numpy()
    assert (local * visual[0]).sum(1).min() > 0.999


def test_bad_photo_in_a_visual_request_names_the_item(encoder_client, photos):
    from homesearch.encoders.client import InvalidInputError

    with pytest.raises(InvalidInputError) as e:
        encoder_client.embed_images_visual([next(iter(photos.values())), b"garbage"], "query")
    assert e.value.index == 1
