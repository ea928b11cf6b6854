"""Encoder benchmark: latency and throughput through Triton vs the same model in-process.

For each encoder (text, image) and batch size (default 1 and 32) it times
  * triton:     EncoderClient -> gRPC -> tritonserver -> python backend (decode included)
  * in-process: the very same encoder objects called directly (decode included for images)
so the Triton overhead ratio (p50 triton / p50 in-process) is measured in one run, on one
machine, under the same thread budget. Prints a markdown table and a JSON document.

    python bench/encoders.py [--iters-b1 30] [--iters-b32 5] [--json-out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IKEA = REPO.parent / "shared" / "data" / "ikea"
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def _reexec_with_malloc_tuning() -> None:
    """glibc reads these at start-up: re-exec so the in-process baseline runs like the server."""
    if os.environ.get("HOMESEARCH_BENCH_NO_MALLOC_TUNING") or all(k in os.environ for k in MALLOC_ENV):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})


def load_inputs(n_images: int = 64) -> tuple[list[str], list[str], list[bytes]]:
    """Catalog texts and photos (IKEA sample when present, the test photos otherwise)."""
    queries = ["白色的现代沙发", "modern cabinet, white doors, gold handles", "oak dining table 橡木餐桌"]
    passages = ["KURA Reversible bed. Turned upside down the bed quickly converts from a low to a high bed."]
    images: list[bytes] = []
    if (IKEA / "catalog.jsonl").is_file():
        rows = [json.loads(line) for line in (IKEA / "catalog.jsonl").read_text(encoding="utf-8").splitlines()]
        passages = [f"{r['title']}. {r.get('description', '')}" for r in rows[:256]]
        queries = [json.loads(line)["text"] for line in (IKEA / "queries.jsonl").read_text(encoding="utf-8").splitlines()[:256]]
        images = [(IKEA / r["image"]).read_bytes() for r in rows[:n_images] if (IKEA / r["image"]).is_file()]
    if not images:
        images = [p.read_bytes() for p in sorted((REPO / "tests" / "encoders" / "data" / "ikea").glob("*.jpg"))]
    return queries, passages, images


def timeit(fn: Callable[[int], object], iters: int, warmup: int = 2) -> list[float]:
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(iters):
        t0 = time.perf_counter()
        fn(warmup + i)
        out.append(time.perf_counter() - t0)
    return out


def summarize(name: str, path: str, batch: int, secs: list[float]) -> dict:
    ms = sorted(s * 1000 for s in secs)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return {
        "encoder": name,
        "path": path,
        "batch": batch,
        "iters": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(p99, 1),
        "items_per_s": round(batch * len(ms) / (sum(ms) / 1000), 1),
    }


def cycle(items: list, start: int, n: int) -> list:
    return [items[(start + k) % len(items)] for k in range(n)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--iters-b1", type=int, default=30, help="timed calls at batch 1")
    ap.add_argument("--iters-big", type=int, default=5, help="timed calls at larger batches")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"])
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    _reexec_with_malloc_tuning()

    import torch
    from services.encoders.client import EncoderClient
    from services.encoders.serving.launcher import TritonServer
    from services.encoders.models.spec import ModelSpec
    from services.encoders.models.preprocess import ImagePreprocessor
    from services.encoders.serving.repository import torch_threads

    queries, passages, images = load_inputs()
    results: list[dict] = []
    t0 = time.monotonic()
    server = TritonServer(http_port=0, grpc_port=0, metrics_port=0, device=args.device).start()
    start_s = time.monotonic() - t0
    try:
        # in-process baseline: the same objects the Triton models use, same threads per instance
        device = "cuda" if server.rendered and server.rendered.kind == "KIND_GPU" else "cpu"
        torch.set_num_threads(torch_threads(server.settings))
        spec = ModelSpec()
        text = spec.build_text(device=device, half=device == "cuda")
        image = spec.build_image(device=device, half=device == "cuda")
        pre = ImagePreprocessor(image.pixel_spec, torch.device(device))

        def embed_images(batch: list[bytes]) -> object:
            pixels, _, errors = pre(batch)
            assert not errors
            return image.encode_pixels(pixels)

        client = EncoderClient(server.grpc_url, timeout_s=120, max_batch=max(args.batches))
        info = client.model_info()
        cases = [
            ("text(query)", lambda b, i: client.embed_texts(cycle(queries, i * b, b), "query"),
             lambda b, i: text.encode(cycle(queries, i * b, b), "query")),
            ("text(passage)", lambda b, i: client.embed_texts(cycle(passages, i * b, b), "passage"),
             lambda b, i: text.encode(cycle(passages, i * b, b), "passage")),
            ("image", lambda b, i: client.embed_images(cycle(images, i * b, b)),
             lambda b, i: embed_images(cycle(images, i * b, b))),
        ]
        for b in args.batches:
            iters = args.iters_b1 if b == 1 else args.iters_big
            for name, via_triton, direct in cases:
                # interleave the two paths call by call so background load hits both alike
                t_secs, d_secs = [], []
                for i in range(iters + 2):
                    t_secs += timeit(lambda k: via_triton(b, i), 1, warmup=0)
                    d_secs += timeit(lambda k: direct(b, i), 1, warmup=0)
                results.append(summarize(name, "triton", b, t_secs[2:]))
                results.append(summarize(name, "in-process", b, d_secs[2:]))
        client.close()
    finally:
        server.stop()

    base = {(r["encoder"], r["batch"]): r for r in results if r["path"] == "in-process"}
    for r in results:
        if r["path"] == "triton":
            r["overhead_x"] = round(r["p50_ms"] / max(base[(r["encoder"], r["batch"])]["p50_ms"], 1e-6), 2)

    meta = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "device": device,
        "model_version": info.model_version,
        "server_start_s": round(start_s, 1),
        "malloc_tuned": all(k in os.environ for k in MALLOC_ENV),
        "torch_threads": torch.get_num_threads(),
        "n_images": len(images),
    }
    print(f"\n{meta}\n")
    print("| encoder | batch | path | p50 ms | p99 ms | items/s | triton/in-process (p50) |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(results, key=lambda r: (r["encoder"], r["batch"], r["path"] != "triton")):
        print(f"| {r['encoder']} | {r['batch']} | {r['path']} | {r['p50_ms']} | {r['p99_ms']} | {r['items_per_s']} | {r.get('overhead_x', '')} |")
    doc = {"meta": meta, "results": results}
    print("\n" + json.dumps(doc))
    if args.json_out:
        args.json_out.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
