"""The console's JSON search API and the photo route.

``POST /api/search``: multipart with a ``request`` part (a SearchRequest as JSON, proto field
names) and an optional ``image`` file, or a plain JSON body. The answer carries the whole
SearchResponse as JSON (``response``, mapped generically by :mod:`console.protojson`) plus
``products``: catalog facts and console photo URLs for every ``product_id`` found anywhere in
the response (hits and region hits).

``POST /api/similar``: "similar products" for a catalog product by id (the ranking service
searches with the product's stored vectors and leaves the product itself out).

Errors are JSON ``{"error": {"source", "code", "message"}}``: source ``gateway`` carries the gRPC
status name and message, ``upload`` a bad photo, ``request`` a request that does not fit the proto.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from console.catalog import Catalog
from console.observability import GATEWAY_CALLS
from console.protojson import RequestError, message_to_json, request_summary, search_request_from_json
from console.uploads import UploadError, check_photo
from homesearch.client import HomesearchClient, HomesearchError
from homesearch.v1 import search_pb2

log = logging.getLogger(__name__)


def error(source: str, message: str, status: int, code: str = "") -> JSONResponse:
    return JSONResponse({"error": {"source": source, "code": code, "message": message}}, status_code=status)


def _product_ids(node: Any, out: list[str]) -> None:
    """Every ``product_id`` value anywhere in a JSON tree, in order, without repeats."""
    if isinstance(node, dict):
        pid = node.get("product_id")
        if isinstance(pid, str) and pid not in out:
            out.append(pid)
        for value in node.values():
            _product_ids(value, out)
    elif isinstance(node, list):
        for value in node:
            _product_ids(value, out)


def products_for(catalog: Catalog, response: dict) -> dict[str, dict]:
    ids: list[str] = []
    _product_ids(response, ids)
    out: dict[str, dict] = {}
    for pid in ids:
        product = catalog.get(pid)
        entry: dict[str, Any] = product.summary() if product else {"id": pid, "in_catalog": False}
        entry["photo_url"] = catalog.photo_url(pid)
        entry["photo_urls"] = [catalog.photo_url(pid, i) for i in range(len(product.images))] if product else []
        out[pid] = entry
    return out


async def call_gateway(request: Request, req: search_pb2.SearchRequest, kind: str) -> Response:
    """Sends one SearchRequest and answers the page with the response or the gRPC error."""
    client: HomesearchClient = request.app.state.client
    catalog: Catalog = request.app.state.catalog
    t0 = time.perf_counter()
    try:
        resp = await run_in_threadpool(client.search_request, req)
    except HomesearchError as exc:
        GATEWAY_CALLS.labels(kind, exc.code.name).inc()
        log.warning("gateway error", extra={"grpc_code": exc.code.name, "grpc_message": exc.message, "kind": kind})
        return error("gateway", exc.message, 502, exc.code.name)
    GATEWAY_CALLS.labels(kind, "OK").inc()
    body = message_to_json(resp)
    return JSONResponse({
        "request": request_summary(req),
        "response": body,
        "products": products_for(catalog, body),
        "round_trip_ms": round((time.perf_counter() - t0) * 1000, 2),
    })


async def _read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    data = await upload.read(max_bytes + 1)  # one byte past the limit is enough to say "too big"
    check_photo(data, upload.filename or "the file", max_bytes)
    return data


async def search(request: Request) -> Response:
    settings = request.app.state.settings
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.max_upload_bytes + 1024 * 1024:
        return error("upload", f"the upload is {declared / 1048576:.1f} MiB; photos may be at most "
                     f"{settings.max_upload_bytes / 1048576:.1f} MiB", 413)
    image = b""
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=4)
            raw = form.get("request") or "{}"
            obj = json.loads(raw if isinstance(raw, str) else (await raw.read()).decode("utf-8"))
            upload = form.get("image")
            if isinstance(upload, UploadFile) and (upload.filename or upload.size):
                image = await _read_upload(upload, settings.max_upload_bytes)
        else:
            obj = await request.json()
        req = search_request_from_json(obj, image)
    except UploadError as exc:
        return error("upload", str(exc), exc.status)
    except (ValueError, RequestError) as exc:  # json.JSONDecodeError is a ValueError
        return error("request", f"bad request: {exc}", 400)
    return await call_gateway(request, req, "image" if image and not req.text else "text+image" if image else "text")


async def similar(request: Request) -> Response:
    """Similar products by id: ranking searches with the product's stored vectors and leaves
    the product itself out (``similar_to_product_id``)."""
    catalog: Catalog = request.app.state.catalog
    try:
        obj = await request.json()
        pid = str(obj["product_id"])
        base = search_request_from_json(obj.get("request") or {})
    except (ValueError, KeyError, TypeError, RequestError) as exc:
        return error("request", f"bad request: {exc}", 400)
    product = catalog.get(pid)
    if product is None:
        return error("request", f"product {pid!r} is not in the console's catalog", 404)
    base.similar_to_product_id = pid
    base.explain = True
    return await call_gateway(request, base, "similar")


async def photo(request: Request) -> Response:
    """``/photos/{index}/{product_id}``: a catalog photo, never a path from the request."""
    catalog: Catalog = request.app.state.catalog
    found = catalog.photo(request.path_params["pid"], request.path_params["index"])
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    if found.url:
        return RedirectResponse(found.url, status_code=302)
    headers = {"ETag": found.etag, "Cache-Control": "private, max-age=3600" if request.app.state.settings.token
               else "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    if found.etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.content_type, headers=headers)
