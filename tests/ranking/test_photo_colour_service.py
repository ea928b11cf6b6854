"""Photo colour through the real ranking service (Triton encoders, Valkey, both index backends):
estimated at ingestion, filterable and faceted as ``photo_color``, boosting a colour query whose
product text names no colour, and shown by ``explain``."""

from __future__ import annotations

import pytest

from homesearch.v1 import search_pb2
from tests.fixtures.ranking import draw_product_image, make_product, start_with_catalog

BLUE, RED, GREEN = (30, 60, 200), (200, 30, 30), (40, 160, 60)


def colourless_sofas():
    """Three sofas whose text never names a colour and differs only in the line name; only the photos
    differ (the implicit attribute). A chair and a lamp anchor the bottom of each signal's pool."""
    desc = "Three-seat sofa with a removable cover."
    return [
        make_product("sofa-a", "KIVIK Sofa", category="Sofa", description=desc, images=[draw_product_image("sofa", RED)]),
        make_product("sofa-b", "EKTORP Sofa", category="Sofa", description=desc, images=[draw_product_image("sofa", GREEN)]),
        make_product("sofa-c", "VIMLE Sofa", category="Sofa", description=desc, images=[draw_product_image("sofa", BLUE)]),
        make_product("chair-d", "ADDE Chair", category="Chair", description="Stackable chair.",
                     images=[draw_product_image("chair", BLUE)]),
        make_product("lamp-e", "FADO Table lamp", category="Table lamp", description="Soft mood light.",
                     images=[draw_product_image("lamp", (230, 200, 30))]),
    ]


SOFA_OF = {"red": "sofa-a", "green": "sofa-b", "blue": "sofa-c"}


@pytest.fixture(scope="module", params=["edge", pytest.param("server", marks=pytest.mark.filterwarnings("ignore::UserWarning"))])
def sofas(request, tmp_path_factory, triton_server, redis_url):
    extra = {"backend": "server", "qdrant_url": ":memory:"} if request.param == "server" else {}
    handle = start_with_catalog(tmp_path_factory.mktemp(f"photo-colour-{request.param}"), triton_server, redis_url,
                                colourless_sofas(), **extra)
    yield handle
    handle.stop()


def _ids(resp) -> list[str]:
    return [h.product_id for h in resp.hits]


TEXT_ONLY = search_pb2.Fusion(method=search_pb2.Fusion.WEIGHTED, text_weight=0.6, lexical_weight=0.4)


def test_colour_query_ranks_the_right_photo_first_when_the_text_has_no_colour(sofas):
    tried = []
    for colour, pid in SOFA_OF.items():
        text_alone = sofas.rank(text=f"{colour} sofa", top_k=3, fusion=TEXT_ONLY, no_cache=True, explain=True)
        assert all("photo_color_boost" not in h.signal_scores for h in text_alone.hits)  # text alone: no photo evidence
        if _ids(text_alone)[0] == pid:  # the text happens to prefer it: no evidence either way, try another colour
            tried.append(colour)
            continue
        fused = sofas.rank(text=f"{colour} sofa", top_k=3, no_cache=True, explain=True)
        assert _ids(fused)[0] == pid, (colour, _ids(text_alone), _ids(fused))
        top = fused.hits[0]
        assert top.signal_scores["photo_color_boost"] > 0
        assert f"photo colour: {colour}" in top.explanation and "boost +" in top.explanation
        assert "photo colour boost" in fused.interpretation
        other = next(h for h in fused.hits if h.product_id != pid and h.product_id.startswith("sofa"))
        assert "photo colour:" in other.explanation and "photo_color_boost" not in other.signal_scores
    assert len(tried) <= 1  # text alone ranks one product first, so at least two colours were checked


def test_chinese_colour_query_gets_the_same_boost(sofas):
    resp = sofas.rank(text="蓝色沙发", top_k=3, no_cache=True, explain=True)
    assert _ids(resp)[0] == "sofa-c"
    assert resp.hits[0].signal_scores["photo_color_boost"] > 0


def test_filter_on_photo_color(sofas):
    flt = search_pb2.Filter(attributes={"photo_color": "blue"})
    assert set(_ids(sofas.rank(text="sofa", top_k=10, filter=flt, no_cache=True))) == {"sofa-c", "chair-d"}
    flt = search_pb2.Filter(attributes={"photo_color": "green"}, categories=["Sofa"])
    assert _ids(sofas.rank(text="seat", top_k=10, filter=flt, no_cache=True)) == ["sofa-b"]
    assert "photo_color" in sofas.info().attribute_keys


def test_facet_counts_photo_color(sofas):
    resp = sofas.rank(text="sofa", top_k=1, facets=search_pb2.FacetSpec(attributes=["photo_color"]), no_cache=True)
    counts = {v.value: v.count for v in resp.facets[0].values}
    assert resp.facets[0].field == "attributes.photo_color"
    assert counts["blue"] == 2 and counts["red"] == 1 and counts["green"] == 1, counts


def test_undecodable_photo_fails_only_its_product(make_ranking_service):
    svc = make_ranking_service()
    good = make_product("ok", "KIVIK Sofa", category="Sofa", images=[draw_product_image("sofa", RED)])
    bad = make_product("bad", "EKTORP Sofa", category="Sofa", images=[b"\xff\xd8\xff\xe0 not really a jpeg"])
    resp = svc.ingest([good, bad])
    assert resp.upserted == 1 and [f.product_id for f in resp.failed] == ["bad"]
    assert resp.failed[0].code == "INVALID_ARGUMENT"
    hit = svc.rank(text="sofa", top_k=5, no_cache=True, explain=True).hits
    assert [h.product_id for h in hit] == ["ok"] and "photo colour: red" in hit[0].explanation


def test_the_catalog_colour_beats_the_photo_estimate_when_the_ranking_reads_text(make_ranking_service):
    """A product whose catalog text says "white" is not lifted for "blue sofa" by a photo read as blue,
    nor is one that says "blue" sunk by a photo read as red; a photo-only ranking judges the photos."""
    svc = make_ranking_service()
    desc = "Three-seat sofa with a removable cover."
    resp = svc.ingest([
        make_product("says-white", "KIVIK Sofa", category="Sofa", description=desc, attributes={"color": "white"},
                     images=[draw_product_image("sofa", BLUE)]),
        make_product("says-blue", "EKTORP Sofa", category="Sofa", description=desc, attributes={"color": "blue"},
                     images=[draw_product_image("sofa", RED)]),
    ])
    assert resp.upserted == 2
    fused = {h.product_id: h for h in svc.rank(text="blue sofa", top_k=2, no_cache=True, explain=True).hits}
    assert fused["says-blue"].signal_scores["photo_color_boost"] > 0
    assert "photo_color_boost" not in fused["says-white"].signal_scores
    assert "colour stated in the product text: blue" in fused["says-blue"].explanation
    photos = svc.rank(text="blue sofa", top_k=2, no_cache=True, explain=True,
                      fusion=search_pb2.Fusion(method=search_pb2.Fusion.WEIGHTED, image_weight=1.0))
    by_id = {h.product_id: h for h in photos.hits}
    assert by_id["says-white"].signal_scores["photo_color_boost"] > 0
    assert "photo_color_boost" not in by_id["says-blue"].signal_scores
    assert "colour stated" not in by_id["says-blue"].explanation
    assert "judged by the photos alone" in photos.interpretation
