"""What would int8 dynamic quantisation of the e5 query tower buy? (a proposal, measured cheaply)

In-process, batch 1, same thread budget, same queries, interleaved query by query:
fp32 ``E5TextEncoder`` (what Triton serves) vs ``torch.ao.quantization.quantize_dynamic``
(Linear layers -> int8) of a copy of the same model. Quality: cosine of the int8 query vector to
the fp32 one, and recall@10 of int8 queries against fp32 passage vectors of the demo catalog,
with the fp32 query's top-10 as ground truth. Nothing in the serving path is changed.

    python -m bench.text_quant [--n 60]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

from bench.harness import Table, latency_summary, ratio, recall_at_k
from bench.search import unique_text
from bench.stack_proc import DEMO_CATALOG


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=60, help="timed queries per variant")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)

    import torch

    from services.encoders.models.e5_text import E5TextEncoder

    torch.set_num_threads(args.threads)
    fp32 = E5TextEncoder()
    int8 = copy.copy(fp32)
    int8.model = torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32.model), {torch.nn.Linear}, dtype=torch.qint8)

    rows = [json.loads(x) for x in DEMO_CATALOG.read_text(encoding="utf-8").splitlines() if x.strip()]
    passages = [f"{r['title']}. {r.get('category', '')}. {r.get('description', '')}" for r in rows]
    pv = torch.cat([fp32.encode(passages[i:i + 32], "passage") for i in range(0, len(passages), 32)])
    queries = [unique_text(i * 7919) for i in range(args.n)]
    for q in queries[:3]:
        fp32.encode([q], "query"), int8.encode([q], "query")
    lat = {"fp32": [], "int8": []}
    vecs = {"fp32": [], "int8": []}
    for q in queries:
        for name, enc in (("fp32", fp32), ("int8", int8)):
            t0 = time.perf_counter()
            v = enc.encode([q], "query")
            lat[name].append(time.perf_counter() - t0)
            vecs[name].append(v[0])
    qf, qi = torch.stack(vecs["fp32"]), torch.stack(vecs["int8"])
    cos = (qf * qi).sum(1)
    top_f = (qf @ pv.T).topk(10, dim=1).indices.tolist()
    top_i = (qi @ pv.T).topk(10, dim=1).indices.tolist()
    sf, si = latency_summary(lat["fp32"]), latency_summary(lat["int8"])
    out = [
        {"variant": "fp32 (served today)", **sf, "speedup_p50": 1.0, "cos_to_fp32_min": 1.0, "recall@10_vs_fp32": 1.0},
        {"variant": "int8 dynamic (Linear)", **si, "speedup_p50": ratio(sf["p50_ms"], si["p50_ms"]),
         "cos_to_fp32_min": round(float(cos.min()), 4), "cos_to_fp32_mean": round(float(cos.mean()), 4),
         "recall@10_vs_fp32": round(recall_at_k(top_i, top_f, 10), 3)},
    ]
    t = Table(f"e5 query embedding in-process, batch 1, {args.threads} threads",
              ["variant", "p50_ms", "p95_ms", "p99_ms", "speedup_p50", "cos_to_fp32_min", "recall@10_vs_fp32"], out)
    print(t.markdown())
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
