"""Ranking admission covers only the expensive part of Rank: with the single slot held by a slow
cache-miss search (a region search over a scene photo), result-cache hits and cached-embedding
text queries still answer OK and fast, while a second miss is refused at once with
RESOURCE_EXHAUSTED + retry-after-ms (real Triton, Qdrant Edge, Valkey)."""

from __future__ import annotations

import io
import random
import threading
import time
import uuid

import grpc

from homesearch.rpc.admission import RETRY_AFTER_KEY
from homesearch.v1 import search_pb2
from services.ranking.metrics import ADMISSION_REFUSED
from tests.fixtures.ranking import sample_products


def _noisy_scene(seed: int) -> bytes:
    """A large, detailed photo: decoding, cropping and embedding every region takes a while."""
    from PIL import Image, ImageDraw

    rnd = random.Random(seed)
    im = Image.new("RGB", (1600, 1200), (200, 190, 170))
    d = ImageDraw.Draw(im)
    for _ in range(400):
        x, y = rnd.randrange(1600), rnd.randrange(1200)
        d.rectangle([x, y, x + rnd.randrange(20, 200), y + rnd.randrange(20, 200)],
                    fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _refused_total() -> float:
    return ADMISSION_REFUSED.labels("Rank")._value.get()


def test_cache_hits_answer_while_a_miss_holds_the_only_slot_and_a_second_miss_is_refused(make_ranking_service):
    svc = make_ranking_service(max_in_flight=1, queue_timeout_ms=0)
    svc.ingest(sample_products())
    adm = svc.app.admission
    svc.rank(text="red sofa", top_k=3)  # fills the result cache and the embedding cache
    assert svc.rank(text="red sofa", top_k=3).cache_hit
    refused_before, adm_refused_before = _refused_total(), adm.refused

    slow_out: dict = {}

    def slow_miss() -> None:
        t0 = time.perf_counter()
        try:
            slow_out["resp"] = svc.rank(image=_noisy_scene(random.randrange(1 << 30)),
                                        region_mode=search_pb2.REGION_MODE_ON, no_cache=True, timeout_s=60)
        except grpc.RpcError as exc:  # pragma: no cover - reported by the assertion below
            slow_out["error"] = exc.code()
        slow_out["s"] = time.perf_counter() - t0

    slow = threading.Thread(target=slow_miss)
    slow.start()
    deadline = time.monotonic() + 10
    while adm._in_flight < 1 and time.monotonic() < deadline and slow.is_alive():
        time.sleep(0.002)
    assert adm._in_flight == 1, "the slow miss never took the slot"

    hit_ms, emb_hit_ms = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        hit = svc.rank(text="red sofa", top_k=3)
        hit_ms.append((time.perf_counter() - t0) * 1000)
        assert hit.cache_hit and hit.hits
        t0 = time.perf_counter()
        emb_hit = svc.rank(text="red sofa", top_k=3, no_cache=True)  # embedding from the cache
        emb_hit_ms.append((time.perf_counter() - t0) * 1000)
        assert not emb_hit.cache_hit and emb_hit.hits
    try:
        svc.rank(text=f"oak bookcase {uuid.uuid4().hex}", no_cache=True)  # must embed: needs the slot
        raise AssertionError("a second cache miss was admitted while the only slot was held")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
        retry = dict(exc.trailing_metadata() or ()).get(RETRY_AFTER_KEY)
        assert retry and int(retry) >= 10
    still_held = adm._in_flight == 1 and slow.is_alive()
    slow.join(60)
    assert "resp" in slow_out, slow_out
    assert still_held, f"the slow miss ended ({slow_out['s']:.3f} s) before the checks were done"
    # hits neither waited for the slot holder nor were refused; only the second miss counted
    assert max(hit_ms) < 0.5 * slow_out["s"] * 1000, (hit_ms, slow_out["s"])
    assert max(emb_hit_ms) < slow_out["s"] * 1000, (emb_hit_ms, slow_out["s"])
    assert adm.refused - adm_refused_before == 1
    assert _refused_total() - refused_before == 1
    assert adm._in_flight == 0  # every taken slot was given back


def test_a_refused_miss_leaves_the_slot_free_and_hits_take_none(make_ranking_service):
    svc = make_ranking_service(max_in_flight=1, queue_timeout_ms=0)
    svc.ingest(sample_products())
    adm = svc.app.admission
    svc.rank(text="white bookcase")
    assert adm.acquire()  # the only slot is busy (as if a miss were running)
    try:
        assert svc.rank(text="white bookcase").cache_hit
        try:
            svc.rank(text=f"lamp {uuid.uuid4().hex}")
            raise AssertionError("a miss was admitted without a free slot")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert int(dict(exc.trailing_metadata())[RETRY_AFTER_KEY]) >= 10
    finally:
        adm.release(0.03)
    assert adm._in_flight == 0
    assert svc.rank(text=f"lamp {uuid.uuid4().hex}").hits  # the slot is free again: the miss runs
    assert adm._in_flight == 0
