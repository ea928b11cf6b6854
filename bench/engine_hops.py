"""Where a cache-miss search spends its time, hop by hop (issue 11), against a running stack.

``homesearch bench engine`` gives the four ratios; this says which hop to work on. Every step
runs call by call, interleaved with the others (so load hits them alike), each on its own
unique inputs (``unique_text`` / ``ImagePool.variant``) so no cache answers:

- gateway ``Search`` and ranking ``Rank`` (direct, service token), ``no_cache``;
- the encoder alone through ``EncoderClient``: a photo query's visual request(s) (``photo``
  mode, and the former ``index`` + ``query`` pair for comparison), a text query;
- in process: decode of the views, the ONNX graphs on those pixels (same threads as served:
  1), the e5 ONNX forward with its tokenizer, the ranking's scene check (decode + border);
- ranking's own stage histograms (``homesearch_stage_seconds``: embed / index / fusion),
  mean per call over the gateway calls of this run.

    python -m bench.engine_hops --gateway H:P --ranking H:P --triton H:P --api-key K \\
        --read-token T --ranking-metrics http://H:P/metrics --catalog .../catalog.jsonl -n 40
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

from bench.search import Clients, ImagePool, unique_text
from bench.stack_proc import StackAddrs


def _stage_sums(url: str | None) -> dict[str, tuple[float, float]]:
    """stage -> (sum seconds, count) from ranking's /metrics."""
    if not url:
        return {}
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out: dict[str, list[float]] = {}
    for m in re.finditer(r'homesearch_stage_seconds_(sum|count)\{stage="(\w+)"\} ([0-9.e+-]+)', text):
        out.setdefault(m.group(2), [0.0, 0.0])["sum count".split().index(m.group(1))] = float(m.group(3))
    return {k: (v[0], v[1]) for k, v in out.items()}


def _stage_means(before: dict, after: dict) -> dict[str, float]:
    return {k: round((after[k][0] - before.get(k, (0, 0))[0]) * 1000 / max(1.0, after[k][1] - before.get(k, (0, 0))[1]), 2)
            for k in after}


def run_steps(steps: dict[str, Callable[[int], Any]], n: int, warmup: int = 2) -> dict[str, float]:
    """p50 ms of each step, the steps alternated call by call."""
    times: dict[str, list[float]] = {k: [] for k in steps}
    for i in range(n + warmup):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn(i)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {k: round(statistics.median(v) * 1000, 2) for k, v in times.items()}


def photo_steps(cl: Clients, pool: ImagePool, md: tuple) -> dict[str, Callable[[int], Any]]:
    import torch
    from homesearch.v1 import search_pb2
    from services.encoders.engines.onnx_engine import OnnxImageEncoder
    from services.encoders.models.preprocess import ImagePreprocessor
    from services.encoders.serving.config import TritonSettings
    from services.ranking import regions

    torch.set_num_threads(1)  # as the image stub preprocesses on the onnx engine
    spec = TritonSettings().model_spec()
    enc = OnnxImageEncoder(spec, intra_threads=1, workers=1)
    pre = ImagePreprocessor(enc.pixel_spec, torch.device("cpu"))
    isz, qsz = enc.visual_sizes
    v = lambda base: (lambda i: pool.variant(base + i))  # noqa: E731  (each step its own unique photos)
    g, r, e1, e2, d = v(4 * 10**7), v(5 * 10**7), v(6 * 10**7), v(7 * 10**7), v(8 * 10**7)

    def forward(i: int) -> Any:
        views, _ = pre.decode_views([d(i)], "photo", isz, qsz)
        enc.encode_with_visual(pre.normalize(torch.stack(views[0][:2])))
        return enc.visual_regions(pre.normalize(torch.stack(views[0][2:])))

    steps = {
        "gateway Search (photo, no_cache)": lambda i: cl.search.Search(
            search_pb2.SearchRequest(image=g(i), top_k=10, no_cache=True), metadata=cl.md, timeout=60),
        "ranking Rank direct (photo, no_cache)": lambda i: cl.rank.Rank(
            search_pb2.SearchRequest(image=r(i), top_k=10, no_cache=True), metadata=md, timeout=60),
        "encoder: one 'photo' request": lambda i: cl.encoder.embed_images_visual([e1(i)], "photo"),
        "encoder: 'index' + 'query' requests": lambda i: (cl.encoder.embed_images_visual([e2(i)], "index"),
                                                          cl.encoder.embed_images_visual([e2(i)], "query")),
        "in-process decode of the photo views": lambda i: pre.decode_views([d(i)], "photo", isz, qsz),
        "in-process decode + ONNX 224 x2 + 448 x1": forward,
        "in-process ranking scene check (decode + border)": lambda i: regions.is_scene_like(regions.decode(d(i))),
    }
    try:  # encoders from before the one-request ``photo`` mode
        cl.encoder.embed_images_visual([pool.hot(0)], "photo")
    except Exception:  # noqa: BLE001
        del steps["encoder: one 'photo' request"]
    return steps


def text_steps(cl: Clients, md: tuple) -> dict[str, Callable[[int], Any]]:
    from homesearch.v1 import search_pb2
    from services.encoders.engines.onnx_engine import OnnxTextEncoder
    from services.encoders.serving.config import TritonSettings

    enc = OnnxTextEncoder(TritonSettings().model_spec(), intra_threads=1, workers=1)
    u = lambda base: (lambda i: unique_text(base + i))  # noqa: E731
    g, r, e, p = u(4 * 10**7), u(5 * 10**7), u(6 * 10**7), u(7 * 10**7)
    return {
        "gateway Search (text, no_cache)": lambda i: cl.search.Search(
            search_pb2.SearchRequest(text=g(i), top_k=10, no_cache=True), metadata=cl.md, timeout=60),
        "ranking Rank direct (text, no_cache)": lambda i: cl.rank.Rank(
            search_pb2.SearchRequest(text=r(i), top_k=10, no_cache=True), metadata=md, timeout=60),
        "encoder: embed_texts query": lambda i: cl.encoder.embed_texts([e(i)], "query"),
        "in-process e5 ONNX incl. tokenizer (1 thread)": lambda i: enc.encode([p(i)], "query"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gateway", required=True)
    p.add_argument("--ranking", required=True)
    p.add_argument("--triton", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--read-token", required=True)
    p.add_argument("--ranking-metrics")
    p.add_argument("--catalog", type=Path, required=True)
    p.add_argument("-n", type=int, default=40)
    p.add_argument("--only", choices=("photo", "text"))
    args = p.parse_args(argv)
    addrs = StackAddrs(args.gateway, args.ranking, args.triton, args.api_key, args.ranking_metrics,
                       read_token=args.read_token)
    cl = Clients(addrs)
    md = (("authorization", f"Bearer {args.read_token}"),)
    out: dict[str, Any] = {}
    for kind in ("photo", "text"):
        if args.only and args.only != kind:
            continue
        steps = photo_steps(cl, ImagePool(args.catalog, limit=64), md) if kind == "photo" else text_steps(cl, md)
        before = _stage_sums(args.ranking_metrics)
        out[kind] = run_steps(steps, args.n)
        if args.ranking_metrics:  # gateway + direct Rank calls both count here
            out[kind]["ranking stages, mean ms per Rank"] = _stage_means(before, _stage_sums(args.ranking_metrics))
    cl.close()
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
