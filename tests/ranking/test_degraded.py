"""Degraded answers with the encoders gone (real ranking service, real index and Valkey; the
encoder client is pointed at a closed port after startup, as when Triton dies)."""

from __future__ import annotations

import time

import grpc
import pytest

from services.encoders.client import EncoderClient
from tests.fixtures.ranking import sample_products


def _kill_encoders(svc) -> None:
    real = svc.app.query_encoder.encoder
    dead = EncoderClient("127.0.0.1:1", timeout_s=1, retries=0)
    dead._info = real.model_info()  # model info is cached by the live client too
    svc.app.query_encoder.encoder = dead


def test_text_is_answered_from_bm25_marked_degraded_and_image_only_is_unavailable(make_ranking_service, tmp_path):
    svc = make_ranking_service(result_cache_ttl_s=1, stale_result_max_age_s=60)
    svc.ingest(sample_products())
    fresh = svc.rank(text="white bookcase", top_k=3)
    assert not fresh.HasField("degraded")
    _kill_encoders(svc)
    t0 = time.perf_counter()
    resp = svc.rank(text="oak dining table", top_k=3, no_cache=True)
    assert resp.hits and set(resp.degraded.missing_signals) == {"text", "image"}
    assert "encoders unavailable" in resp.degraded.reason and not resp.degraded.stale
    again = svc.rank(text="red sofa", top_k=3, no_cache=True)  # the gate skips the dead encoders: fast
    assert again.degraded.missing_signals and time.perf_counter() - t0 < 5
    with pytest.raises(grpc.RpcError) as err:
        svc.rank(image=sample_products()[0].images[0], top_k=3, no_cache=True)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # a query whose embedding is still cached is answered in full without the encoders
    assert not svc.rank(text="white bookcase", top_k=3, no_cache=True).HasField("degraded")
    # without that embedding, an older cached full answer beats a partial one, marked stale
    r = svc.app.cache._client
    for key in r.scan_iter(f"{svc.settings.cache_prefix}:emb:*"):
        r.delete(key)
    time.sleep(1.2)  # past the 1 s freshness TTL
    stale = svc.rank(text="white bookcase", top_k=3)
    assert [h.product_id for h in stale.hits] == [h.product_id for h in fresh.hits]
    assert stale.cache_hit and stale.degraded.stale and stale.degraded.stale_age_s >= 1.0
