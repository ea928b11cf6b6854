"""Search suite: latency and throughput through the gateway, with same-run baselines.

Closed-loop load (each of C workers sends its next request when the previous one returned) at
concurrency 1, 4, 16, 64 for text, image and image+text queries in three cache states:

- ``miss``: every request unique (text from a combinatorial pool, photos re-encoded with a
  one-pixel mark) and ``no_cache=True``: embedding + index + fusion every time;
- ``emb-hit``: a small repeated query set with ``no_cache=True``: the embedding comes from the
  Redis embedding cache, the result is recomputed (index + fusion);
- ``hit``: the same small set, result cache warm: the cached response is served.

Baselines, measured in the same run at the same concurrency:
- ``Health.Check`` on the gateway: the gRPC transport floor of this client/machine;
- ``RankingService.Rank`` called directly with the same requests: gateway overhead = difference;
- the encoder alone (``EncoderClient`` -> Triton, one query text/photo): the embedding floor.
Stage means (embed / index / fusion) come from the ranking's ``homesearch_stage_seconds``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable

from bench.harness import SuiteResult, Table, closed_loop, latency_summary, machine_info, ratio, time_calls
from bench.stack_proc import DEMO_CATALOG, StackAddrs, scrape_stage_seconds, stage_means_ms

COLOURS = ["white", "black", "grey", "beige", "brown", "oak", "walnut", "green", "blue", "red", "yellow", "pink",
           "白色", "黑色", "灰色"]
ADJ = ["modern", "small", "large", "cheap", "scandinavian", "vintage", "minimalist", "cosy", "sturdy", "compact"]
NOUNS = ["sofa", "armchair", "chair", "bookcase", "wardrobe", "mirror", "pendant lamp", "table lamp", "rug",
         "dining table", "bed frame", "desk", "cabinet", "shelf", "cushion", "curtains", "沙发", "椅子", "书柜", "镜子"]
EXTRA = ["", "with drawers", "for kids", "with storage", "for small spaces", "with doors", "in solid wood", "on legs"]
HOT_TEXTS = ["white bookcase", "modern sofa", "pendant lamp", "白色椅子", "white wardrobe with sliding doors",
             "black armchair", "round mirror", "grey rug"]


def unique_text(i: int) -> str:
    """Distinct, realistic query number ``i`` (15*10*20*8 = 24000 combinations, then a size suffix)."""
    combos = len(COLOURS) * len(ADJ) * len(NOUNS) * len(EXTRA)
    j, rest = i % combos, i // combos
    c, j = j % len(COLOURS), j // len(COLOURS)
    a, j = j % len(ADJ), j // len(ADJ)
    n, e = j % len(NOUNS), j // len(NOUNS)
    q = f"{ADJ[a]} {COLOURS[c]} {NOUNS[n]} {EXTRA[e]}".strip()
    return q + (f" {60 + 20 * rest} cm" if rest else "")


class ImagePool:
    """Catalog photos; ``variant(i)`` is photo i mod n with a one-pixel mark unique to i
    (a different byte string, so it misses every cache, with the same content)."""

    def __init__(self, catalog: Path = DEMO_CATALOG, limit: int = 64) -> None:
        rows = [json.loads(line) for line in catalog.read_text(encoding="utf-8").splitlines() if line.strip()]
        self.images = [(catalog.parent / r["image"]).read_bytes() for r in rows if r.get("image")][:limit]
        self._cache: dict[int, bytes] = {}

    def hot(self, i: int) -> bytes:
        return self.images[i % len(self.images)]

    def variant(self, i: int) -> bytes:
        if i not in self._cache:
            from PIL import Image

            im = Image.open(io.BytesIO(self.images[i % len(self.images)])).convert("RGB")
            x, y = (i // len(self.images)) % im.width, (i // (len(self.images) * im.width)) % im.height
            im.putpixel((x, y), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=90)
            self._cache[i] = buf.getvalue()
        return self._cache[i]

    def prepare(self, indices) -> None:
        for i in indices:
            self.variant(i)


class Clients:
    def __init__(self, addrs: StackAddrs) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from homesearch.v1 import ranking_pb2_grpc, search_pb2_grpc

        opts = [("grpc.max_send_message_length", 32 << 20), ("grpc.max_receive_message_length", 32 << 20)]
        self.gw_channel = grpc.insecure_channel(addrs.gateway, options=opts)
        self.rk_channel = grpc.insecure_channel(addrs.ranking, options=opts)
        self.search = search_pb2_grpc.SearchServiceStub(self.gw_channel)
        self.rank = ranking_pb2_grpc.RankingServiceStub(self.rk_channel)
        self.health = health_pb2_grpc.HealthStub(self.gw_channel)
        self.health_req = health_pb2.HealthCheckRequest(service="")
        self.md = (("authorization", f"Bearer {addrs.api_key}"),) if addrs.api_key else ()
        self.rank_md = (("authorization", f"Bearer {addrs.read_token}"),) if addrs.read_token else ()
        from services.encoders.client import EncoderClient

        self.encoder = EncoderClient(addrs.triton, timeout_s=60)

    def close(self) -> None:
        self.gw_channel.close()
        self.rk_channel.close()
        self.encoder.close()


def run(addrs: StackAddrs, *, quick: bool = False, concurrency: list[int] | None = None, log=print) -> SuiteResult:
    from homesearch.v1 import search_pb2

    conc = concurrency or [1, 4, 16, 64]
    duration = 4.0 if quick else 10.0
    max_req = 400 if quick else 2000
    res = SuiteResult("search", meta={**machine_info(), "duration_s_per_point": duration, "max_requests_per_point": max_req,
                                      "catalog": "data/demo/catalog.jsonl (200 products)"})
    cl = Clients(addrs)
    pool = ImagePool()
    next_block = {"start": 0}

    def block(n: int) -> int:
        s = next_block["start"]
        next_block["start"] += n + 10**6 + 10  # room for warm-up numbers
        return s

    def request(kind: str, state: str, base: int) -> Callable[[int], Any]:
        def make(i: int) -> search_pb2.SearchRequest:
            if state == "miss":
                text = unique_text(base + i) if kind != "image" else ""
                image = pool.variant(base + i) if kind != "text" else b""
            else:
                text = HOT_TEXTS[i % len(HOT_TEXTS)] if kind != "image" else ""
                image = pool.hot(i % 8) if kind != "text" else b""
            if kind == "image+text":  # "this, but in <colour>": the unique photo carries the miss
                text = COLOURS[(base + i) % 12] if state == "miss" else COLOURS[i % 4]
            return search_pb2.SearchRequest(text=text, image=image, top_k=10, no_cache=state != "hit")
        return make

    rows: list[dict] = []
    stage_rows: list[dict] = []

    def point(kind: str, state: str, target: str, c: int) -> dict:
        base = block(max_req)
        make = request(kind, state, base)
        if state == "miss" and kind != "text":
            pool.prepare(range(base, base + (150 if quick else 400)))  # later ones are made on demand
        if target == "gateway":
            def call(i: int):
                return cl.search.Search(make(i), metadata=cl.md, timeout=30)
        elif target == "ranking (direct)":
            def call(i: int):
                return cl.rank.Rank(make(i), timeout=30, metadata=cl.rank_md)
        else:
            raise ValueError(target)
        if state == "hit":  # warm the result cache for the hot set
            for i in range(16):
                call(i)
        before = scrape_stage_seconds(addrs.ranking_metrics)
        lr = closed_loop(call, c, duration_s=duration, max_requests=max_req, warmup=0 if state == "miss" else 2)
        stages = stage_means_ms(before, scrape_stage_seconds(addrs.ranking_metrics))
        row = {"query": kind, "cache": state, "target": target, **lr.summary()}
        row.pop("error_kinds", None)
        if lr.error_kinds:
            row["error_kinds"] = json.dumps(lr.error_kinds)
        if c == 1 and state != "hit":
            stage_rows.append({"query": kind, "cache": state, "target": target, **{f"{k}_ms": v for k, v in stages.items()},
                               "client_p50_ms": row["p50_ms"]})
        log(f"[search] {kind:10s} {state:7s} {target:17s} c={c:<3d} p50 {row['p50_ms']:.2f} ms p99 {row['p99_ms']:.2f} "
            f"qps {row['qps']:.1f} errors {row['errors']}")
        rows.append(row)
        return row

    # Warm every model path once.
    for kind in ("text", "image", "image+text"):
        cl.search.Search(request(kind, "miss", block(10))(0), metadata=cl.md, timeout=60)

    # Baseline: transport floor.
    base_rows: list[dict] = []
    for c in conc:
        lr = closed_loop(lambda i: cl.health.Check(cl.health_req, timeout=10), c, duration_s=min(duration, 3.0),
                         max_requests=max_req, warmup=5)
        base_rows.append({"baseline": "gateway Health.Check (transport floor)", **lr.summary()})
    # Baseline: embedding floor (encoder alone, one query at a time, unique inputs).
    eb = block(200)
    n_enc = 30 if quick else 80
    t_text = time_calls(lambda i: cl.encoder.embed_texts([unique_text(eb + i)], "query"), n_enc)
    pool.prepare(range(eb, eb + n_enc + 2))
    t_img = time_calls(lambda i: cl.encoder.embed_images([pool.variant(eb + i)]), n_enc)
    enc = {"text": latency_summary(t_text), "image": latency_summary(t_img)}
    base_rows.append({"baseline": "encoder alone: query text -> Triton", "concurrency": 1, **enc["text"]})
    base_rows.append({"baseline": "encoder alone: photo -> Triton", "concurrency": 1, **enc["image"]})
    for c in (conc if not quick else conc[:2]):
        eb2 = block(max_req)
        lr = closed_loop(lambda i: cl.encoder.embed_texts([unique_text(eb2 + i)], "query"), c, duration_s=duration,
                         max_requests=max_req)
        if c > 1:
            base_rows.append({"baseline": "encoder alone: query text -> Triton", **lr.summary()})

    # Subject: the gateway, plus ranking direct for the text paths.
    plan = [("text", "miss"), ("text", "emb-hit"), ("text", "hit"), ("image", "miss"), ("image", "hit"),
            ("image+text", "miss"), ("image+text", "hit")]
    for kind, state in plan:
        for c in conc:
            point(kind, state, "gateway", c)
            if kind == "text" or c == 1:
                point(kind, state, "ranking (direct)", c)
    cl.close()

    # Ratios against the same-run baselines.
    health = {r["concurrency"]: r for r in base_rows if r["baseline"].startswith("gateway Health")}
    direct = {(r["query"], r["cache"], r["concurrency"]): r for r in rows if r["target"] == "ranking (direct)"}
    for r in rows:
        if r["target"] != "gateway":
            continue
        d = direct.get((r["query"], r["cache"], r["concurrency"]))
        if d:
            r["gateway_overhead_p50_ms"] = round(r["p50_ms"] - d["p50_ms"], 2)
            r["x_direct_p50"] = ratio(r["p50_ms"], d["p50_ms"])
        h = health.get(r["concurrency"])
        if h:
            r["x_health_p50"] = ratio(r["p50_ms"], h["p50_ms"], 1)
        floor = enc["image" if r["query"] != "text" else "text"]["p50_ms"]
        if r["cache"] == "miss" and r["concurrency"] == 1:
            r["x_encoder_p50"] = ratio(r["p50_ms"], floor)

    cols = ["query", "cache", "target", "concurrency", "p50_ms", "p95_ms", "p99_ms", "qps", "errors", "x_direct_p50",
            "gateway_overhead_p50_ms", "x_health_p50", "x_encoder_p50"]
    res.tables.append(Table("Search through the gateway (closed loop) vs ranking called directly", cols, rows, headers={
        "x_direct_p50": "p50 / ranking-direct p50", "gateway_overhead_p50_ms": "gateway overhead p50 ms",
        "x_health_p50": "p50 / Health.Check p50", "x_encoder_p50": "p50 / encoder-alone p50"},
        notes=["miss = unique query, no_cache (embedding computed); emb-hit = repeated query, no_cache (embedding "
               "from Redis, index + fusion recomputed); hit = result-cache hit",
               "load generator runs on the same 2 cores as the stack (its CPU use is part of every number)"]))
    res.tables.append(Table("Same-run baselines", ["baseline", "concurrency", "p50_ms", "p95_ms", "p99_ms", "qps", "errors"],
                            base_rows))
    res.tables.append(Table("Where the time goes (ranking stages, mean ms per request, concurrency 1)",
                            ["query", "cache", "target", "embed_ms", "index_ms", "fusion_ms", "client_p50_ms"], stage_rows,
                            notes=["embed includes language analysis and the embedding-cache lookup; from "
                                   "homesearch_stage_seconds on the ranking's /metrics"]))
    res.data = {"points": rows, "baselines": base_rows, "stages": stage_rows, "encoder_alone": enc}
    res.data["targets"] = targets(rows)
    res.tables.append(Table("Targets", ["target", "measured", "met"], res.data["targets"]))
    return res


def targets(rows: list[dict]) -> list[dict]:
    def get(kind, state, c, target="gateway"):
        return next((r for r in rows if r["query"] == kind and r["cache"] == state and r["concurrency"] == c
                     and r["target"] == target), None)

    out = []
    m = get("text", "miss", 1)
    if m:
        out.append({"target": "text, cache miss, c=1: p50 <= 15 ms", "measured": f"{m['p50_ms']:.1f} ms",
                    "met": m["p50_ms"] <= 15})
        out.append({"target": "text, cache miss, c=1: p99 <= 40 ms", "measured": f"{m['p99_ms']:.1f} ms",
                    "met": m["p99_ms"] <= 40})
    h = get("text", "hit", 1)
    if h:
        out.append({"target": "text, result-cache hit, c=1: p50 <= 2 ms", "measured": f"{h['p50_ms']:.2f} ms",
                    "met": h["p50_ms"] <= 2})
    for state in ("emb-hit", "hit"):
        q = get("text", state, 16)
        if q:
            out.append({"target": f"text {state}, c=16: >= 100 QPS, 0 errors",
                        "measured": f"{q['qps']:.0f} QPS, {q['errors']} errors", "met": q["qps"] >= 100 and q["errors"] == 0})
    # Cache misses at c=16 overload 2 CPU cores on purpose: admission control (ranking's max_in_flight)
    # refuses the excess with RESOURCE_EXHAUSTED + retry-after-ms, so "0 errors" cannot be the goal.
    # The goal: nothing fails any other way, and the accepted throughput holds at least 90 % of c=1's.
    q, one = get("text", "miss", 16), get("text", "miss", 1)
    if q and one:
        kinds = json.loads(q.get("error_kinds") or "{}")
        other = sum(v for k, v in kinds.items() if k != "RESOURCE_EXHAUSTED")
        out.append({"target": "text miss, c=16 (overload): no errors but admission refusals, accepted QPS >= 0.9x c=1",
                    "measured": f"{q['qps']:.0f} QPS accepted vs {one['qps']:.0f} at c=1, "
                                f"{kinds.get('RESOURCE_EXHAUSTED', 0)} refused, {other} other errors",
                    "met": other == 0 and q["qps"] >= 0.9 * one["qps"]})
    return out
