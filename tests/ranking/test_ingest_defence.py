"""Ingestion regressions (issue 14 items 4, 5, 6, 10) against the real ranking service
(real Triton encoders, Qdrant Edge): oversized products, failed streams, wide/palette/alpha
images, and precise per-product error messages."""

from __future__ import annotations

import io
import json

import grpc
import numpy as np
import pytest
from PIL import Image

from services.ranking.ingest import cli
from homesearch.v1 import ranking_pb2
from tests.fixtures.ranking import draw_product_image, make_product, sample_products


def _run_cli(capsys, catalog, address: str, *extra: str) -> tuple[int, dict]:
    rc = cli.main([str(catalog), "--ranking-addr", address, "--no-progress", "--json", "--allow-failures", *extra])
    out = capsys.readouterr().out
    return rc, json.loads(out[out.index("{"):])


def test_oversized_product_is_a_per_product_error_and_the_rest_lands(make_ranking_service, tmp_path, capsys):
    """Item 4: a product over the 32 MiB message limit used to abort the whole run."""
    svc = make_ranking_service()
    rng = np.random.default_rng(0)
    photos = []
    for i in range(4):  # 4 incompressible ~8.7 MB PNGs: one product of ~35 MB
        path = tmp_path / f"noise{i}.png"
        Image.fromarray(rng.integers(0, 256, (1700, 1700, 3), dtype=np.uint8)).save(path, compress_level=0)
        photos.append(str(path))
    (tmp_path / "sofa.jpg").write_bytes(draw_product_image("sofa", (200, 30, 30)))
    lines = [
        {"id": "before", "title": "KLIPPAN Sofa", "category": "Sofa", "image": "sofa.jpg"},
        {"id": "huge", "title": "Huge photo set", "category": "Sofa", "image": photos[0], "images": photos[1:]},
        {"id": "after", "title": "EKTORP Sofa", "category": "Sofa"},
    ]
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    rc, summary = _run_cli(capsys, catalog, svc.address)
    assert rc == 0
    assert summary["upserted"] == 2
    [failure] = summary["failures"]
    assert failure["product_id"] == "huge" and failure["line"] == 2 and failure["code"] == "INVALID_ARGUMENT"
    assert "at most" in failure["message"] and "bytes" in failure["message"]
    assert set(svc.app.index.content_hashes(["before", "huge", "after"])) == {"before", "after"}


def _raw_product(pid: str, title: bytes) -> bytes:
    """An UpsertRequest with ``title`` as raw bytes (may be invalid UTF-8)."""
    def field(num: int, payload: bytes) -> bytes:
        return bytes([(num << 3) | 2]) + _varint(len(payload)) + payload

    product = field(1, pid.encode()) + field(2, title)
    return field(1, product)


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def test_a_failed_stream_writes_nothing(make_ranking_service):
    """Item 5: five good products then one with invalid UTF-8: the call fails, and none of the
    five is written (they were never acknowledged). Resending the good ones writes them."""
    svc = make_ranking_service(ingest_batch_size=2)
    good = sample_products()[:5]
    raw = [ranking_pb2.UpsertRequest(product=p).SerializeToString() for p in good]
    raw.append(_raw_product("bad-utf8", b"Sofa \xff\xfe broken"))
    upsert = svc._channel.stream_unary("/homesearch.v1.CatalogService/Upsert",
                                       request_serializer=lambda b: b,
                                       response_deserializer=ranking_pb2.UpsertResponse.FromString)
    with pytest.raises(grpc.RpcError) as err:
        upsert(iter(raw), timeout=120)
    assert err.value.code() != grpc.StatusCode.OK
    import time

    time.sleep(1.0)  # the old bug wrote the pending batch ~0.5 s after the failure
    assert svc.app.index.content_hashes([p.id for p in good]) == {}
    assert svc.info().products == 0
    assert svc.ingest(good).upserted == 5


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _wide_modes_and_reference() -> list[tuple[str, bytes, np.ndarray]]:
    """(name, PNG bytes, reference RGB uint8 array computed independently with numpy)."""
    yy, xx = np.mgrid[0:128, 0:128]
    g16 = ((xx * 512 + yy * 8) % 65536).astype(np.uint16)
    ref16 = np.repeat((g16 >> 8).astype(np.uint8)[..., None], 3, axis=2)  # /256 vs /257: <= 1 apart
    rgb = np.stack([xx * 2, yy * 2, 255 - xx * 2], axis=2).astype(np.uint8)
    pal = Image.fromarray(rgb).quantize(64)
    ref_pal = np.asarray(pal.convert("RGB"))
    alpha = (xx * 2).astype(np.uint8)
    rgba = np.dstack([rgb, alpha])
    a = alpha[..., None].astype(np.float64) / 255
    ref_alpha = np.rint(rgb * a + 255 * (1 - a)).astype(np.uint8)  # over white
    return [
        ("16-bit grayscale", _png(Image.fromarray(g16)), ref16),
        ("palette", _png(pal), ref_pal),
        ("RGBA", _png(Image.fromarray(rgba, "RGBA")), ref_alpha),
    ]


@pytest.mark.parametrize("case", range(3), ids=["16-bit", "palette", "alpha"])
def test_wide_palette_and_alpha_images_decode_like_the_reference(case):
    """Item 6, decode level: every decode path goes through preprocess.to_rgb."""
    from services.encoders.models.preprocess import to_rgb
    from services.encoders.training.features import pad_to_square

    name, data, ref = _wide_modes_and_reference()[case]
    got = np.asarray(to_rgb(Image.open(io.BytesIO(data)))).astype(int)
    assert np.abs(got - ref.astype(int)).max() <= 1, name
    assert np.abs(np.asarray(pad_to_square(Image.open(io.BytesIO(data)))).astype(int) - ref.astype(int)).max() <= 1


def test_16bit_photo_embeds_like_its_8bit_reference_not_like_a_blank(triton_server):
    """Item 6, end to end through Triton: a 16-bit grayscale PNG used to decode as solid white."""
    from services.encoders.client import EncoderClient

    rng = np.random.default_rng(1)
    base = np.asarray(Image.open(io.BytesIO(draw_product_image("sofa", (90, 90, 90)))).convert("L"), dtype=np.uint16)
    # full 16-bit detail below the 8-bit step (no wrap-around at white)
    g16 = np.clip(base.astype(np.int64) * 257 - rng.integers(0, 128, base.shape), 0, 65535).astype(np.uint16)
    ref8 = _png(Image.fromarray(np.rint(g16 / 257).astype(np.uint8)).convert("RGB"))  # reference conversion
    blank = _png(Image.new("RGB", base.shape[::-1], "white"))
    with EncoderClient(triton_server.grpc_url) as enc:
        v16, v8, vblank = enc.embed_images([_png(Image.fromarray(g16)), ref8, blank])
    assert float(np.dot(v16, v8)) > 0.99
    assert float(np.dot(v16, vblank)) < float(np.dot(v16, v8)) - 0.05


def test_error_messages_name_the_right_product_without_object_reprs(make_ranking_service):
    """Item 10: one message per product, no batch-relative item numbers, no <_io.BytesIO ...>."""
    svc = make_ranking_service(ingest_batch_size=8)
    products = [
        make_product("ok-1", "Good sofa", category="Sofa"),
        make_product("junk-photo", "Junk photo lamp", category="Lamp", images=[b"GIF89a not an image at all"]),
        make_product("ok-2", "Good chair", category="Chair"),
        make_product("trunc", "Truncated photo", category="Lamp",
                     images=[draw_product_image("lamp", (1, 2, 3))[:200]]),
    ]
    resp = svc.ingest(products)
    failed = {f.product_id: f.message for f in resp.failed}
    assert set(failed) == {"junk-photo", "trunc"} and resp.upserted == 2
    assert failed["junk-photo"] == "image 0 is not a JPEG, PNG or WebP image"
    for msg in failed.values():
        assert "BytesIO" not in msg and " at 0x" not in msg and "item " not in msg, msg


def test_item_reason_picks_the_named_item_only():
    from services.ranking.catalog_service import item_reason

    msg = "invalid input: item 2: empty text; item 5: text is 3000 characters, limit is 2048"
    assert item_reason(msg, 5) == "text is 3000 characters, limit is 2048"
    assert item_reason(msg, 2) == "empty text"
    assert item_reason("no items here", None) == "no items here"


def test_cli_reports_absolute_lines_and_unknown_fields(make_ranking_service, tmp_path, capsys):
    svc = make_ranking_service()
    lines = ['{"id": "a", "title": "Sofa A"}', "", '{"id": "b", "title": "Sofa B", "colour": "red", "sku": 1}',
             "not json", '{"id": "c", "title": "Sofa C", "image": "missing.jpg"}']
    catalog = tmp_path / "c.jsonl"
    catalog.write_text("\n".join(lines) + "\n")
    rc, summary = _run_cli(capsys, catalog, svc.address, "--batch-size", "1")
    assert summary["upserted"] == 2
    assert summary["warnings"] == ["line 3 id=b: unknown field 'colour' ignored", "line 3 id=b: unknown field 'sku' ignored"]
    lines_failed = {(f["line"], f["product_id"]) for f in summary["failures"]}
    assert lines_failed == {(4, ""), (5, "c")}
