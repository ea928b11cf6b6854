"""The console's HTTP side without a browser: photo confinement and caching headers, upload and
request errors, gateway errors, login, /healthz, /metrics, JSON logs, graceful shutdown, the
query sets of the repository. Every console here is a real ``python -m console`` process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from homesearch.stack import free_ports
from homesearch.v1 import search_pb2
from tests.console.conftest import DEMO, ROOT

PHOTO = DEMO / "queries" / "chair.jpg"


def _crafted_catalog(tmp_path: Path) -> Path:
    """A catalog folder whose lines try every way out of it, beside two honest products."""
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(PHOTO, outside / "secret.jpg")
    (outside / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    cat = tmp_path / "shop"
    (cat / "images").mkdir(parents=True)
    shutil.copy(PHOTO, cat / "images" / "ok.jpg")
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(cat / "images" / "ok.png")
    (cat / "images" / "fake.jpg").write_text("not an image at all")
    (cat / "images" / "link.jpg").symlink_to(outside / "secret.jpg")
    (cat / "linkdir").symlink_to(outside, target_is_directory=True)
    lines = [
        {"id": "ok", "title": "OK chair", "image": "images/ok.jpg", "images": ["images/ok.png"]},
        {"id": "dotdot", "title": "x", "image": "../outside/secret.jpg"},
        {"id": "absolute", "title": "x", "image": str(outside / "secret.jpg")},
        {"id": "passwd", "title": "x", "image": "/etc/passwd"},
        {"id": "symlink", "title": "x", "image": "images/link.jpg"},
        {"id": "symlinkdir", "title": "x", "image": "linkdir/secret.jpg"},
        {"id": "fake", "title": "x", "image": "images/fake.jpg"},
        {"id": "missing", "title": "x", "image": "images/nope.jpg"},
        {"id": "a/b", "title": "slash in id", "image": "images/ok.jpg"},
    ]
    (cat / "catalog.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return cat / "catalog.jsonl"


def _dead_gateway() -> str:
    return f"127.0.0.1:{free_ports(1)[0]}"  # nobody listens: calls fail with UNAVAILABLE


def test_photos_are_served_only_from_inside_the_catalog_folder(start_console, tmp_path: Path) -> None:
    console = start_console("--gateway", _dead_gateway(), "--catalog", str(_crafted_catalog(tmp_path)))
    status, headers, body = console.get("/photos/0/ok")
    assert status == 200 and body == PHOTO.read_bytes()
    assert headers["content-type"] == "image/jpeg"
    assert headers["cache-control"] == "public, max-age=3600"
    etag = headers["etag"]
    assert etag.startswith('"') and len(etag) > 10
    status, headers2, body = console.get("/photos/0/ok", headers={"If-None-Match": etag})
    assert status == 304 and body == b"" and headers2["etag"] == etag
    status, headers, _ = console.get("/photos/1/ok")
    assert status == 200 and headers["content-type"] == "image/png" and headers["etag"] != etag
    assert console.get("/photos/0/a%2Fb")[0] == 200  # ids are looked up, not parsed as paths
    for pid in ("dotdot", "absolute", "passwd", "symlink", "symlinkdir", "fake", "missing", "nope"):
        status, _, body = console.get(f"/photos/0/{pid}")
        assert status == 404, pid
        assert b"root:" not in body and body != PHOTO.read_bytes()
    for path in ("/photos/2/ok", "/photos/-1/ok", "/photos/0/../../outside/secret.jpg", "/photos/x/ok"):
        assert console.get(path)[0] == 404, path


def test_gateway_errors_carry_the_grpc_status(start_console, tmp_path: Path) -> None:
    console = start_console("--gateway", _dead_gateway(), "--timeout", "2")
    r = httpx.post(console.url + "/api/search", json={"text": "sofa"}, timeout=30)
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["source"] == "gateway" and err["code"] == "UNAVAILABLE" and err["message"]
    assert httpx.get(console.url + "/healthz", timeout=10).json() == {"status": "ok", "gateway": "not serving"}


def test_bad_uploads_and_requests_get_clear_messages(console_server, tmp_path: Path) -> None:
    url = console_server.url + "/api/search"
    req = {"request": json.dumps({"text": ""})}
    cases = [
        (("notes.txt", b"hello, not a picture", "text/plain"), 400, "not a photo"),
        (("broken.jpg", PHOTO.read_bytes()[:300], "image/jpeg"), 400, "cannot be read"),
        (("big.jpg", PHOTO.read_bytes() + b"\0" * (10 * 1024 * 1024), "image/jpeg"), 413, "at most 10.0 MiB"),
        (("empty.jpg", b"", "image/jpeg"), 400, "empty"),
    ]
    for file, status, text in cases:
        r = httpx.post(url, data=req, files={"image": file}, timeout=60)
        assert r.status_code == status, (file[0], r.text)
        assert r.json()["error"]["source"] == "upload" and text in r.json()["error"]["message"], r.text
    r = httpx.post(url, json={"text": "sofa", "no_such_field": 1}, timeout=30)
    assert r.status_code == 400 and "no_such_field" in r.json()["error"]["message"]
    r = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["source"] == "request"
    r = httpx.post(url, json={"text": "   "}, timeout=30)  # the gateway's own validation, passed through
    assert r.status_code == 502 and r.json()["error"]["code"] == "INVALID_ARGUMENT"
    # ... and the console still works.
    r = httpx.post(url, data={"request": json.dumps({"text": "chair", "top_k": 3, "explain": True})},
                   files={"image": ("chair.jpg", PHOTO.read_bytes(), "image/jpeg")}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    hits = body["response"]["hits"]
    assert len(hits) == 3 and body["request"]["image_bytes"] == PHOTO.stat().st_size
    assert all(body["products"][h["product_id"]]["photo_url"] for h in hits)
    assert set(hits[0]["signal_scores"]) >= {"text", "image"}


def test_login_is_required_when_a_token_is_set(start_console) -> None:
    token = "tok-" + "x" * 20
    console = start_console("--gateway", _dead_gateway(), "--token", token)
    status, headers, _ = console.get("/")
    assert status == 303 and headers["location"] == "/login"
    assert console.get("/api/info")[0] == 401
    assert console.get("/photos/0/x")[0] == 401
    assert console.get("/healthz")[0] == 200 and console.get("/metrics")[0] == 200
    with httpx.Client(base_url=console.url, timeout=10) as c:
        assert c.post("/login", data={"token": "wrong"}).status_code == 401
        r = c.post("/login", data={"token": token})
        assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
        assert token not in r.headers["set-cookie"]
        assert c.get("/api/info").status_code == 200 and c.get("/").status_code == 200
    assert console.get("/api/info", headers={"Authorization": f"Bearer {token}"})[0] == 200


def test_dns_rebinding_and_cross_site_posts_are_refused(console_server) -> None:
    status, _, body = console_server.get("/api/info", headers={"Host": "evil.example:8080"})
    assert status == 403 and b"localhost only" in body
    assert console_server.get("/api/info", headers={"Host": "localhost"})[0] == 200
    r = httpx.post(console_server.url + "/api/search", json={"text": "chair"}, timeout=30,
                   headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["error"]["message"]
    same = console_server.url  # the page's own origin is fine
    assert httpx.post(same + "/api/search", json={"text": "chair"}, headers={"Origin": same}, timeout=30).status_code == 200


def test_refuses_to_listen_beyond_localhost_without_a_token() -> None:
    port = free_ports(1)[0]
    out = subprocess.run([sys.executable, "-m", "console", "--addr", f"0.0.0.0:{port}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, env={**os.environ, "HOMESEARCH_CONSOLE_TOKEN": ""})
    assert out.returncode == 2
    assert "without a login" in out.stderr and "--token" in out.stderr


def test_help_names_flags_and_env() -> None:
    out = subprocess.run([sys.executable, "-m", "console", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0
    for word in ("--addr", "--gateway", "--catalog", "--token", "HOMESEARCH_CONSOLE_ADDR", "HOMESEARCH_API_KEY"):
        assert word in out.stdout


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_json_logs_and_graceful_shutdown(start_console, console_backend, console_catalog) -> None:
    console = start_console("--gateway", console_backend.gateway_addr, "--catalog", str(console_catalog),
                            env={"HOMESEARCH_CONSOLE_API_KEY": console_backend.api_key})
    assert httpx.get(console.url + "/healthz", timeout=10).json()["gateway"] == "serving"
    for _ in range(2):
        assert httpx.post(console.url + "/api/search", json={"text": "mirror"}, timeout=60).status_code == 200
    httpx.post(console.url + "/api/search", json={"text": " "}, timeout=60)
    metrics = _samples(httpx.get(console.url + "/metrics", timeout=10).text)
    key = ("http_requests_total", frozenset({("method", "POST"), ("handler", "/api/search"), ("status", "200")}))
    assert metrics[key] == 2
    assert metrics[("homesearch_console_gateway_calls_total", frozenset({("kind", "text"), ("grpc_code", "OK")}))] == 2
    assert metrics[("homesearch_console_gateway_calls_total",
                    frozenset({("kind", "text"), ("grpc_code", "INVALID_ARGUMENT")}))] == 1
    assert metrics[("http_request_duration_seconds_count", frozenset({("method", "POST"), ("handler", "/api/search")}))] == 3
    assert console.stop() == 0  # SIGTERM: drained and exited cleanly
    records = [json.loads(line) for line in console.log.read_text().splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("msg") == "http request" and r.get("handler") == "/api/search"]
    assert len(access) == 3 and {r["status"] for r in access} == {200, 502}
    assert all(r["service"] == "console" for r in records)
    assert records[-1]["msg"] == "console stopped"
    assert console_backend.api_key not in console.log.read_text()


def test_repository_query_sets_are_offered_and_run(console_server) -> None:
    sets = httpx.get(console_server.url + "/api/querysets", timeout=10).json()["querysets"]
    demo = next(q for q in sets if q["name"] == "data/demo/queries.jsonl")
    assert demo["queries"] == len((DEMO / "queries.jsonl").read_text().splitlines())
    assert all("path" not in q for q in sets)  # the page never sees (or sends) paths
    r = httpx.post(console_server.url + "/api/inspect", data={"source": str(demo["id"])}, timeout=30)
    assert r.status_code == 202, r.text
    run_id = r.json()["run"]["id"]
    deadline = time.monotonic() + 120
    while (run := httpx.get(f"{console_server.url}/api/inspect/{run_id}", timeout=10).json()["run"])["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert run["state"] == "done" and run["done"] == run["total"] == demo["queries"]
    by_id = {q["id"]: q for q in run["queries"]}
    assert by_id["img-chair"]["error"] == "" and by_id["img-chair"]["ranked"]  # photo beside the query set
    assert httpx.post(console_server.url + "/api/inspect", data={"source": "999"}, timeout=10).status_code == 400
    bad = httpx.post(console_server.url + "/api/inspect", files={"file": ("q.jsonl", b'{"id": "a", "text": "x"}\n')},
                     timeout=10)
    assert bad.status_code == 400 and "line 1" in bad.json()["error"]["message"]


def test_protobuf_mapping_is_generic() -> None:
    from console.protojson import RequestError, message_to_json, search_request_from_json

    resp = search_pb2.SearchResponse(hits=[search_pb2.Hit(product_id="p", score=0.5)], took_ms=3.0)
    out = message_to_json(resp)
    # Every field without presence is there, named as in the proto, including ones never set; a
    # message field (e.g. `degraded`) appears exactly when it is set.
    fields = search_pb2.SearchResponse.DESCRIPTOR.fields
    assert {f.name for f in fields if not f.has_presence} <= set(out) <= {f.name for f in fields}
    assert "degraded" not in out
    resp.degraded.missing_signals.append("text")
    assert message_to_json(resp)["degraded"]["missing_signals"] == ["text"]
    assert set(out["hits"][0]) >= {f.name for f in search_pb2.Hit.DESCRIPTOR.fields} - {"price"}
    req = search_request_from_json({"text": "sofa", "filter": {"categories": ["Sofa"], "min_price": 10},
                                    "fusion": {"method": "RRF"}}, image=b"img")
    assert req.filter.HasField("min_price") and req.fusion.method == search_pb2.Fusion.RRF and req.image == b"img"
    with pytest.raises(RequestError, match="bogus"):
        search_request_from_json({"bogus": 1})
    with pytest.raises(RequestError, match="multipart"):
        search_request_from_json({"image": "AAAA"})
