"""``homesearch index`` / ``homesearch delete`` against a live ranking service, plus the reader."""

from __future__ import annotations

import functools
import http.server
import json
import threading

import pytest

from services.ranking.ingest import cli, cli_delete
from services.ranking.ingest.images import ImageLoadError, load_image
from services.ranking.ingest.reader import CatalogRecord, LineError, read_catalog
from tests.fixtures.ranking import draw_product_image


@pytest.fixture
def http_images(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "lamp.jpg").write_bytes(draw_product_image("lamp", (230, 200, 30)))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _write_catalog(tmp_path, base_url: str):
    img = tmp_path / "images"
    img.mkdir()
    (img / "sofa.jpg").write_bytes(draw_product_image("sofa", (200, 30, 30)))
    (img / "chair.png").write_bytes(draw_product_image("chair", (40, 160, 60), fmt="PNG"))
    (img / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    abs_bookcase = tmp_path / "elsewhere.jpg"
    abs_bookcase.write_bytes(draw_product_image("bookcase", (235, 235, 228)))
    lines = [
        {"id": "s1", "title": "KLIPPAN Sofa", "category": "Sofa", "attributes": {"color": "red"},
         "price": 299, "in_stock": True, "image": "images/sofa.jpg"},
        {"id": "c1", "title": "ADDE Chair", "category": "Chair", "image": "images/chair.png",
         "images": ["images/chair.png", "images/sofa.jpg"]},
        {"id": "b1", "title": "BILLY Bookcase", "category": "Bookcase", "image": str(abs_bookcase)},
        {"id": "l1", "title": "FADO Lamp", "category": "Lamp", "image": f"{base_url}/lamp.jpg"},
        "{not json",
        {"id": "t1", "category": "Missing title"},
        {"id": "s1", "title": "Duplicate sofa"},
        {"id": "m1", "title": "Missing photo", "image": "images/nope.jpg"},
        {"id": "u1", "title": "Unreachable photo", "image": f"{base_url}/missing.jpg"},
        {"id": "x1", "title": "Corrupt photo", "image": "images/broken.jpg"},
        {"id": "p1", "title": "Bad price", "price": "cheap"},
        {"id": "r1", "title": "Rug without photo", "category": "Rug", "description": "grey wool rug"},
    ]
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n")
    return path


def test_reader_reports_bad_lines(tmp_path, http_images):
    path = _write_catalog(tmp_path, http_images)
    items = list(read_catalog(path))
    errors = {e.line: e for e in items if isinstance(e, LineError)}
    records = [r for r in items if isinstance(r, CatalogRecord)]
    assert set(errors) == {5, 6, 7, 11}
    assert "invalid JSON" in errors[5].message
    assert "title" in errors[6].message
    assert "duplicate" in errors[7].message and "line 1" in errors[7].message
    assert "price" in errors[11].message
    assert [r.id for r in records] == ["s1", "c1", "b1", "l1", "m1", "u1", "x1", "r1"]
    assert records[1].image_refs == ["images/chair.png", "images/sofa.jpg"]


def test_image_loader_limits(tmp_path):
    p = tmp_path / "big.jpg"
    p.write_bytes(b"x" * 2048)
    with pytest.raises(ImageLoadError, match="limit"):
        load_image("big.jpg", tmp_path, max_bytes=1024)
    with pytest.raises(ImageLoadError, match="scheme"):
        load_image("ftp://host/x.jpg", tmp_path)
    assert load_image(str(p), tmp_path) == b"x" * 2048


def test_index_cli_end_to_end(make_ranking_service, tmp_path, http_images, capsys):
    svc = make_ranking_service()
    path = _write_catalog(tmp_path, http_images)
    argv = [str(path), "--ranking-addr", svc.address, "--batch-size", "3", "--no-progress", "--json"]
    assert cli.main(argv) == 1  # failures => non-zero
    summary = json.loads(capsys.readouterr().out)
    assert (summary["upserted"], summary["unchanged"]) == (5, 0)
    failed = {f["product_id"]: f for f in summary["failures"]}
    assert set(failed) == {"", "t1", "s1", "m1", "u1", "x1", "p1"}
    assert failed["x1"]["line"] == 10 and "image" in failed["x1"]["message"]
    assert failed["m1"]["line"] == 8
    lines = [f["line"] for f in summary["failures"]]  # streams answer out of order; listed by line
    assert lines == sorted(lines)
    assert summary["products_per_s"] > 0
    assert svc.info().products == 5
    hit = svc.rank(text="red sofa", top_k=1).hits[0]
    assert hit.product_id == "s1" and hit.image_uri == "images/sofa.jpg"
    # Re-run: everything already indexed is unchanged; --allow-failures tolerates the bad lines.
    assert cli.main([*argv, "--allow-failures"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["upserted"], again["unchanged"]) == (0, 5)
    # Delete CLI.
    assert cli_delete.main(["s1", "ghost", "--ranking-addr", svc.address, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["deleted"] == 1 and out["not_found"] == ["ghost"]
    assert svc.info().products == 4


def test_cli_help_and_missing_file(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0 and "--ranking-addr" in capsys.readouterr().out
    assert cli.main(["/nonexistent/catalog.jsonl"]) == 2
    with pytest.raises(SystemExit):
        cli_delete.main(["--help"])


def test_cli_unreachable_service(tmp_path, capsys):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "a", "title": "A"}) + "\n")
    rc = cli.main([str(path), "--ranking-addr", "127.0.0.1:1", "--no-progress", "--rpc-timeout-s", "2", "--retries", "0"])
    assert rc == 1
    assert "UNAVAILABLE" in capsys.readouterr().err
