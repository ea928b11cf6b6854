"""The ``visual`` photo->photo descriptor: pooling, views, export parity, and the served output."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image


def _jpeg(img: Image.Image, quality: int = 80) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_regional_gem_equals_a_direct_gem_of_each_cropped_map():
    from services.encoders.models.visual import gem, region_boxes, region_count, regional_gem

    fmap = torch.rand(2, 16, 14, 14) * 3
    rows = regional_gem(fmap, (5, 7, 9), 2)
    assert rows.shape == (2, 50, 16) and region_count(14, (5, 7, 9), 2) == 50
    boxes = region_boxes(14, (5, 7, 9), 2)
    assert len(boxes) == 50
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        ys, xs = slice(round(y0 * 14), round(y1 * 14)), slice(round(x0 * 14), round(x1 * 14))
        direct = gem(fmap[:, :, ys, xs])
        assert torch.allclose(rows[:, k], direct, rtol=1e-4, atol=1e-6), k
    # a 7x7 map (index size) has no 9-cell window: those are left out, not padded
    assert regional_gem(torch.rand(1, 16, 7, 7), (5, 7, 9), 2).shape == (1, region_count(7, (5, 7, 9), 2), 16) == (1, 5, 16)


def test_foreground_box_is_tight_on_a_studio_photo_and_whole_on_a_scene():
    from services.encoders.models.visual import foreground_box

    x = torch.full((3, 100, 200), 255, dtype=torch.uint8)
    x[:, 40:60, 120:170] = 30  # a dark object on white
    assert foreground_box(x, margin=0.0) == (40, 120, 60, 170)
    t, l, b, r = foreground_box(x)  # grown by 3 % of the object's longest side
    assert (t, l, b, r) == (39, 119, 61, 171)
    scene = torch.randint(0, 200, (3, 50, 80), dtype=torch.uint8)
    assert foreground_box(scene) == (0, 0, 50, 80)
    assert foreground_box(torch.full((3, 10, 10), 255, dtype=torch.uint8)) == (0, 0, 10, 10)


def test_foreground_box_cpu_path_matches_the_torch_reduction(monkeypatch):
    """The CPU path reduces the mask in numpy; its box must be the one the torch reduction (the GPU
    path, run here on CPU tensors) gives, also for a colour in one channel only, few dark pixels
    and a strided view."""
    from services.encoders.models import visual

    g = torch.Generator().manual_seed(0)
    cases = []
    for k in range(40):
        x = torch.full((3, 60 + k, 90 - k), 255, dtype=torch.uint8)
        n = int(torch.randint(1, 30, (1,), generator=g))  # sometimes under the 16-pixel floor
        ys = torch.randint(0, x.shape[1], (n,), generator=g)
        xs = torch.randint(0, x.shape[2], (n,), generator=g)
        x[k % 3, ys, xs] = 200  # one channel dark enough: still foreground
        cases.append(x)
    photo = torch.randint(200, 256, (3, 80, 120), dtype=torch.uint8, generator=g)
    cases += [photo, photo[:, 10:70, 5:100], photo.flip(2)]
    numpy_boxes = [visual.foreground_box(x) for x in cases]
    monkeypatch.setattr(visual, "_mask_extent_numpy", visual._mask_extent_torch)
    assert [visual.foreground_box(x) for x in cases] == numpy_boxes
    assert len(set(numpy_boxes)) > 10  # the cases differ: whole photos and tight boxes both


def test_visual_views_per_mode(photos):
    from services.encoders.models.effnet_image import DEFAULT_PIXELS
    from services.encoders.models.preprocess import ImagePreprocessor

    pre = ImagePreprocessor(DEFAULT_PIXELS, torch.device("cpu"))
    data = next(iter(photos.values()))
    views, errors = pre.decode_views([data, b"not an image"], "index")
    assert list(errors) == [1] and views[1] is None
    assert len(views[0]) == 2 and all(v.shape == (3, 224, 224) for v in views[0])
    assert not torch.equal(views[0][0], views[0][1])  # the crop is tighter than the padded photo
    main, _ = pre.decode([data])
    assert torch.allclose(views[0][0], main[0])  # view 0 = the main tower's input
    q, _ = pre.decode_views([data], "query")
    assert len(q[0]) == 1 and q[0][0].shape == (3, 448, 448)
    with pytest.raises(ValueError, match="visual mode"):
        pre.decode_views([data], "gallery")


@pytest.fixture(scope="module")
def tower():
    from services.encoders.models.spec import ModelSpec

    spec = ModelSpec()
    assert spec.visual_version(), "the shipped visual-default directory is missing"
    return spec, spec.build_image()


def test_scene_pass_shares_block_statistics_without_changing_the_rows(tower):
    """The room pass computes each block's window statistics once for the image head and the visual
    rows (the shipped cards read blocks 10, 14 and 6, 10, 14): its rows equal the visual head's own
    scene rows from the same maps, exactly."""
    _, enc = tower
    assert set(enc.stat_blocks) & set(enc.visual_blocks)  # the shipped cards share blocks
    torch.manual_seed(0)
    px = torch.randn(1, 3, 640, 640)
    with torch.no_grad():
        rows, _ = enc.visual_scene_forward(px, **enc.scene_extra_inputs(px))
        fmap, maps = enc._maps(px)
        own = enc.visual.scene_rows(fmap, [maps[b] for b in enc.visual_blocks])
    assert torch.equal(rows, own)


def test_descriptor_shapes_and_a_shopper_style_crop_finds_its_photo(tower, photos):
    """Index rows (n, 2, 512) and query regions (50, 512) are unit rows; a tilted, re-lit,
    recompressed crop of a catalogue photo pasted on a grey room finds that photo first."""
    from services.encoders.models.preprocess import ImagePreprocessor

    _, enc = tower
    pre = ImagePreprocessor(enc.pixel_spec, torch.device("cpu"))
    names = sorted(photos)
    views, _ = pre.decode_views([photos[n] for n in names], "index")
    emb, vis = enc.encode_with_visual(pre.normalize(torch.stack([v for vs in views for v in vs])))
    assert emb.shape == (2 * len(names), enc.dim) and vis.shape == (2 * len(names), 512)
    assert torch.allclose(vis.norm(dim=1), torch.ones(len(vis)), atol=1e-4)
    assert torch.allclose(emb[0::2], enc.encode_pixels(pre.normalize(torch.stack([v[0] for v in views]))), atol=1e-5)
    gallery = vis.reshape(len(names), 2, 512)
    for i, n in enumerate(names):
        img = Image.open(io.BytesIO(photos[n])).convert("RGB")
        w, h = img.size
        obj = img.crop((w // 10, h // 12, w - w // 10, h - h // 12)).rotate(8, expand=True, fillcolor=(150, 140, 130))
        room = Image.new("RGB", (640, 480), (120, 110, 100))
        obj.thumbnail((300, 300))
        room.paste(obj, (200, 120))
        room = Image.eval(room, lambda v: min(255, int(v * 0.85 + 20)))
        q, _ = pre.decode_views([_jpeg(room, 60)], "query")
        rows = enc.visual_regions(pre.normalize(torch.stack(q[0])))
        assert rows.shape == (1, 50, 512)
        scores = torch.einsum("rd,nvd->nrv", rows[0], gallery).amax(dim=(1, 2))
        assert int(scores.argmax()) == i, (n, scores.tolist())


def test_onnx_export_of_both_visual_outputs_matches_torch(tower, photos, tmp_path):
    """Export parity at prepare-models: the image graph's VISUAL output and the query graph."""
    from dataclasses import replace

    from services.encoders.engines.onnx_engine import OnnxImageEncoder
    from services.encoders.engines.onnx_export import export_image, export_visual, row_cosines
    from services.encoders.models.preprocess import ImagePreprocessor

    spec, enc = tower
    spec = replace(spec, cache_dir=tmp_path)
    g = export_image(spec, enc)
    assert g.card["outputs"] == ["EMBEDDING", "VISUAL"] and g.card["parity_min_cosine"] >= 0.999
    assert g.card["visual_version"] == spec.visual_version()
    v = export_visual(spec, enc)
    assert v.card["regions"] == 50 and v.card["parity_min_cosine"] >= 0.999
    onnx = OnnxImageEncoder(spec)
    pre = ImagePreprocessor(enc.pixel_spec, torch.device("cpu"))
    imgs = list(photos.values())
    views, _ = pre.decode_views(imgs, "index")
    px = pre.normalize(torch.stack([x for vs in views for x in vs]))
    (e1, v1), (e2, v2) = enc.encode_with_visual(px), onnx.encode_with_visual(px)
    assert row_cosines(e1.numpy(), e2.numpy()).min() >= 0.999
    assert row_cosines(v1.numpy(), v2.numpy()).min() >= 0.999
    q, _ = pre.decode_views(imgs, "query")
    qp = pre.normalize(torch.stack([x[0] for x in q]))
    r1, r2 = enc.visual_regions(qp).numpy(), onnx.visual_regions(qp).numpy()
    assert row_cosines(r1.reshape(-1, 512), r2.reshape(-1, 512)).min() >= 0.999
    # a new visual version is a new graph (the cache is keyed by it)
    from services.encoders.engines.onnx_export import graph_dir

    assert graph_dir(spec, "image") != graph_dir(replace(spec, visual_dir=None), "image")


def test_served_visual_matches_in_process(encoder_client, photos, tower):
    from services.encoders.models.preprocess import ImagePreprocessor

    spec, enc = tower
    info = encoder_client.model_info()
    assert info.visual_version == spec.visual_version()
    assert info.model_version == f"{info.text_version}|{info.image_version}|{info.visual_version}"
    imgs = list(photos.values())[:3]
    visual, emb = encoder_client.embed_images_visual(imgs, "index")
    assert visual.shape == (3, 2, 512) and emb.shape == (3, info.dim)
    assert np.allclose(np.linalg.norm(visual, axis=-1), 1.0, atol=1e-4)
    plain = encoder_client.embed_images(imgs)
    assert (plain * emb).sum(1).min() > 0.999  # the same text-space vector as a plain request
    q, none = encoder_client.embed_images_visual(imgs[:2], "query")
    assert q.shape == (2, 50, 512) and none is None
    pre = ImagePreprocessor(enc.pixel_spec, torch.device("cpu"))
    views, _ = pre.decode_views(imgs[:2], "query")
    local = enc.visual_regions(pre.normalize(torch.stack([v[0] for v in views]))).numpy()
    assert (local * q).sum(-1).min() > 0.999


def test_photo_views_are_index_then_query_views_from_one_decode(photos):
    """``photo`` mode's views equal index's and query's exactly: a small photo is decoded once, a
    JPEG big enough for Pillow's draft to reduce it differently at 224 and 448 px twice."""
    from services.encoders.models.effnet_image import DEFAULT_PIXELS
    from services.encoders.models.preprocess import ImagePreprocessor, draft_box

    pre = ImagePreprocessor(DEFAULT_PIXELS, torch.device("cpu"))
    small = next(iter(photos.values()))
    big = _jpeg(Image.open(io.BytesIO(small)).convert("RGB").resize((2400, 1800)))
    assert draft_box(2400, 1800, 224) != draft_box(2400, 1800, 448)  # the two modes decode it differently
    imgs = [small, big, b"not an image"]
    got, errors = pre.decode_views(imgs, "photo")
    idx, _ = pre.decode_views(imgs, "index")
    qry, _ = pre.decode_views(imgs, "query")
    assert list(errors) == [2] and got[2] is None
    for k in (0, 1):
        assert len(got[k]) == 3
        for a, b in zip(got[k], [*idx[k], *qry[k]]):
            assert a.shape == b.shape and torch.equal(a, b)
    calls: list[int] = []
    decode_raw = pre.decode_raw
    pre.decode_raw = lambda items, size, resize=True: calls.append(len(items)) or decode_raw(items, size, resize)
    pre.decode_views([small], "photo")
    assert calls == [1]  # one decode for a photo no draft reduces


def test_served_photo_mode_is_index_and_query_in_one_request(encoder_client, photos):
    """A photo query's one request answers exactly what the index and query requests answer."""
    imgs = list(photos.values())[:2]
    for data in imgs:
        rows, emb = encoder_client.embed_images_visual([data], "photo")
        (irows, iemb), (qrows, _) = (encoder_client.embed_images_visual([data], m) for m in ("index", "query"))
        assert rows.shape == (1, 2 + qrows.shape[1], 512)
        assert np.array_equal(rows, np.concatenate([irows, qrows], axis=1)) and np.array_equal(emb, iemb)
    both, emb2 = encoder_client.embed_images_visual(imgs, "photo")  # several photos in one request
    assert both.shape == (2, 52, 512) and emb2.shape == (2, encoder_client.model_info().dim)


def test_bad_photo_in_a_visual_request_names_the_item(encoder_client, photos):
    from services.encoders.client import InvalidInputError

    with pytest.raises(InvalidInputError) as e:
        encoder_client.embed_images_visual([next(iter(photos.values())), b"garbage"], "query")
    assert e.value.index == 1
    with pytest.raises(ValueError, match="mode"):
        encoder_client.embed_images_visual([b"x"], "gallery")  # type: ignore[arg-type]
