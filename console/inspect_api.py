"""HTTP side of relevance inspection (see :mod:`console.relevance` for the runs).

- ``GET  /api/querysets``: the query-set files the console offers (numbered; the page picks by number,
  never by path).
- ``POST /api/inspect``: multipart with ``source`` (a number from the list) or ``file`` (an uploaded
  JSONL, plus its photos as more ``photos`` files); answers ``{"run": {...}}`` at once.
- ``GET  /api/inspect/{run}``: progress, then metrics and per-query results worst first.
- ``GET  /api/inspect/{run}/export``: the finished run as a JSON download.
"""

from __future__ import annotations

import json

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from console.relevance import QuerySetError, file_images, parse_queryset, upload_images
from console.search_api import error


def _querysets(request: Request) -> list[dict]:
    return request.app.state.querysets


async def list_querysets(request: Request) -> Response:
    return JSONResponse({"querysets": [{k: v for k, v in q.items() if k != "path"} for q in _querysets(request)]})


async def start(request: Request) -> Response:
    settings = request.app.state.settings
    if int(request.headers.get("content-length") or 0) > settings.max_queryset_bytes:
        return error("upload", f"query sets may be at most {settings.max_queryset_bytes / 1048576:.0f} MiB "
                     "(JSONL and photos together)", 413)
    try:
        form = await request.form(max_files=2000, max_fields=10)
        upload = form.get("file")
        if isinstance(upload, UploadFile) and upload.filename:
            photos = {}
            for item in form.getlist("photos"):
                if isinstance(item, UploadFile) and item.filename:
                    photos[item.filename.replace("\\", "/").rsplit("/", 1)[-1]] = await item.read()
            name = upload.filename
            queries = parse_queryset(await upload.read(), upload_images(photos), name)
        else:
            try:
                chosen = _querysets(request)[int(str(form.get("source", "")))]
            except (ValueError, IndexError):
                return error("request", "choose a query set from the list or upload a JSONL file", 400)
            name = chosen["name"]
            queries = parse_queryset(chosen["path"].read_bytes(), file_images(chosen["path"].parent), name)
    except QuerySetError as exc:
        return error("upload", str(exc), 400)
    run = request.app.state.inspector.start(name, queries)
    return JSONResponse({"run": run.snapshot(full=False)}, status_code=202)


def _run(request: Request):
    return request.app.state.inspector.get(request.path_params["run"])


async def status(request: Request) -> Response:
    run = _run(request)
    if run is None:
        return error("request", "no such inspection run (the console keeps the last few)", 404)
    return JSONResponse({"run": run.snapshot(full=True)})


async def export(request: Request) -> Response:
    run = _run(request)
    if run is None:
        return error("request", "no such inspection run (the console keeps the last few)", 404)
    if run.state != "done":
        return error("request", f"the run is {run.state}; export it when it is done", 409)
    body = run.snapshot(full=True)
    body["gateway"] = request.app.state.settings.gateway
    body["catalog"] = str(request.app.state.catalog.path) if request.app.state.catalog.path else None
    return Response(
        json.dumps(body, ensure_ascii=False, indent=1),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="inspection-{run.id}.json"'},
    )
