"""Relevance inspection: run a query set (formats.md JSONL) through the gateway and score it.

A run goes in a background thread, one query after another through the public Search API
(the same client, retries and metrics as ``homesearch eval``), so the page polls its progress.
The scores come from :mod:`homesearch.evaluation.metrics` (``evaluate`` overall,
``query_metrics`` per query); nothing here computes a metric itself. A finished run keeps,
per query, the ranked ids with scores so the page can show the expected products beside
what came back, and exports as JSON.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from console.catalog import resolve_inside
from homesearch.evaluation.cli import _search_with_retry
from homesearch.evaluation.metrics import evaluate, query_metrics

MAX_QUERIES = 5000
KEEP_RUNS = 8


class QuerySetError(ValueError):
    """A query set that cannot be run; the message names the line."""


@dataclass
class Query:
    id: str
    relevant: list[str]
    text: str = ""
    image_ref: str = ""
    image: bytes | None = None
    image_problem: str = ""


def parse_queryset(data: bytes, images: Callable[[str], bytes | None], name: str) -> list[Query]:
    """Queries of a JSONL query set; ``images(ref)`` gives the bytes of a query's photo or None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QuerySetError(f"{name} is not UTF-8 text ({exc})") from None
    queries: list[Query] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise QuerySetError(f"{name} line {lineno}: not JSON ({exc})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), (str, int)):
            raise QuerySetError(f"{name} line {lineno}: a query needs an 'id'")
        qid = str(obj["id"])
        if qid in seen:
            raise QuerySetError(f"{name} line {lineno}: duplicate query id {qid!r}")
        relevant = obj.get("relevant")
        if not isinstance(relevant, list) or not relevant:
            raise QuerySetError(f"{name} line {lineno}: query {qid!r} needs a non-empty 'relevant' list")
        qtext, ref = str(obj.get("text") or ""), str(obj.get("image") or "")
        if not qtext.strip() and not ref:
            raise QuerySetError(f"{name} line {lineno}: query {qid!r} has neither 'text' nor 'image'")
        q = Query(id=qid, relevant=[str(r) for r in relevant], text=qtext, image_ref=ref)
        if ref:
            q.image = images(ref)
            if q.image is None:
                q.image_problem = f"photo {ref!r} not found beside the query set"
        queries.append(q)
        seen.add(qid)
        if len(queries) > MAX_QUERIES:
            raise QuerySetError(f"{name}: more than {MAX_QUERIES} queries")
    if not queries:
        raise QuerySetError(f"{name} holds no queries")
    return queries


def file_images(root: Path) -> Callable[[str], bytes | None]:
    """Photo lookup for a query set file: paths relative to its folder, never outside it."""

    def get(ref: str) -> bytes | None:
        path = resolve_inside(root, ref)
        return path.read_bytes() if path else None

    return get


def upload_images(files: dict[str, bytes]) -> Callable[[str], bytes | None]:
    """Photo lookup for an uploaded query set: the photos uploaded with it, matched by file name."""

    def get(ref: str) -> bytes | None:
        return files.get(ref.replace("\\", "/").rsplit("/", 1)[-1])

    return get


def find_querysets(dirs: list[Path], limit: int = 200) -> list[dict]:
    """Query-set files (JSONL whose first line has 'relevant') under ``dirs``, numbered for the page."""
    found: list[dict] = []
    for root in dirs:
        # At most two folders deep: a catalog folder may hold a large tree of photos.
        for path in sorted(p for pattern in ("*.jsonl", "*/*.jsonl", "*/*/*.jsonl") for p in root.glob(pattern)):
            try:
                with path.open(encoding="utf-8") as f:
                    first = next((line for line in f if line.strip()), "")
                    lines = 1 + sum(1 for line in f if line.strip())
                if '"relevant"' not in first:
                    continue
            except (OSError, UnicodeDecodeError):
                continue
            found.append({"id": len(found), "name": f"{root.name}/{path.relative_to(root)}", "path": path,
                          "queries": lines})
            if len(found) >= limit:
                return found
    return found


@dataclass
class Run:
    id: str
    name: str
    queries: list[Query]
    state: str = "running"
    done: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    results: dict[str, dict] = field(default_factory=dict)
    metrics: dict | None = None
    failure: str = ""

    def snapshot(self, full: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "name": self.name, "state": self.state, "done": self.done, "total": len(self.queries),
            "errors": sum(1 for r in self.results.values() if r.get("error")), "started": self.started,
            "finished": self.finished, "failure": self.failure,
        }
        if full and self.metrics is not None:
            out["metrics"] = self.metrics
            out["queries"] = sorted(self.results.values(), key=lambda r: (r["ndcg@10"], r["recall@10"], r["id"]))
        return out


class Inspector:
    """Runs query sets through a client, one run at a time, keeping the last few runs."""

    def __init__(self, client: Any, retries: int = 5) -> None:
        self._client = client  # a HomesearchClient (anything with its .search)
        self._retries = retries
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._lock = threading.Lock()
        self._busy = threading.Lock()

    def start(self, name: str, queries: list[Query]) -> Run:
        run = Run(id=uuid.uuid4().hex[:12], name=name, queries=queries)
        with self._lock:
            self._runs[run.id] = run
            while len(self._runs) > KEEP_RUNS:
                self._runs.popitem(last=False)
        threading.Thread(target=self._execute, args=(run,), name=f"inspect-{run.id}", daemon=True).start()
        return run

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def _one(self, q: Query) -> dict:
        out: dict[str, Any] = {"id": q.id, "text": q.text, "image": q.image_ref, "relevant": q.relevant,
                               "ranked": [], "scores": [], "error": ""}
        if q.image_problem and not q.text:
            out["error"] = q.image_problem
            return out

        t0 = time.perf_counter()
        try:
            result = _search_with_retry(self._client, self._retries, text=q.text or None, image=q.image, top_k=10,
                                        no_cache=True)
        except Exception as exc:  # noqa: BLE001 - a failed query scores zero and is shown
            out["error"] = str(exc)[:300]
            return out
        out["ms"] = round((time.perf_counter() - t0) * 1000, 1)
        out["ranked"] = result.product_ids
        out["scores"] = [round(h.score, 4) for h in result.hits]
        if q.image_problem:
            out["error"] = q.image_problem + " (ran on the text alone)"
        return out

    def _execute(self, run: Run) -> None:
        with self._busy:  # one run at a time: the gateway's rate limit is per key
            try:
                for q in run.queries:
                    result = self._one(q)
                    result.update(query_metrics(result["ranked"], q.relevant))
                    result["found"] = [pid for pid in q.relevant if pid in result["ranked"][:10]]
                    result["missed"] = [pid for pid in q.relevant if pid not in result["ranked"][:10]]
                    run.results[q.id] = result
                    run.done += 1
                runs = {qid: r["ranked"] for qid, r in run.results.items()}  # a failed query ranks nothing: zero
                run.metrics = evaluate(runs, {q.id: q.relevant for q in run.queries})
                run.state = "done"
            except Exception as exc:  # noqa: BLE001 - shown on the page instead of a silent dead thread
                run.state, run.failure = "failed", f"{type(exc).__name__}: {exc}"
            finally:
                run.finished = time.time()
