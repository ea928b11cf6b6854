"""The category-match boost (services/ranking/category_match.py): which categories a query names,
the boost on fused hits, and its conditions through the real ranking service."""

from __future__ import annotations

import pytest

from homesearch.v1 import search_pb2
from services.ranking.category_match import apply_category_boost, category_terms, names_category
from services.ranking.fusion import FusedHit
from tests.fixtures.ranking import draw_product_image, make_product


def test_a_query_names_a_category_when_it_holds_every_category_word():
    assert names_category("white desk", "Desk")
    assert not names_category("white desk", "Desk organiser")  # the type is the organiser
    assert names_category("Black rug, low pile", "Rug, low pile")
    assert names_category("nickel-plated floor,reading lamp", "Floor,reading lamp")
    assert not names_category("white table", "Table lamp")
    assert not names_category("desks", "Desk")  # whole words only
    assert names_category("黑色衣柜", "衣柜") and not names_category("黑色椅子", "衣柜")  # Chinese: substring
    assert not names_category("anything", "") and not names_category("anything", "!!")
    assert category_terms("Floor,reading lamp") == ("floor", "reading", "lamp")


def test_the_boost_lifts_only_products_whose_category_is_named():
    hits = [FusedHit("organiser", 0.80, {"category": "Desk organiser"}), FusedHit("desk", 0.75, {"category": "Desk"}),
            FusedHit("none", 0.70, {})]
    out = apply_category_boost(hits, "white desk", 0.1)
    assert [h.product_id for h in out] == ["desk", "organiser", "none"]
    assert out[0].boosts == {"category_match": pytest.approx(0.1)} and out[0].score == pytest.approx(0.85)
    assert apply_category_boost(hits, "white desk", 0.0) is hits and apply_category_boost(hits, " ", 0.1) is hits


def test_a_named_category_ranks_first_in_the_fused_text_ranking(make_ranking_service):
    svc = make_ranking_service()
    white = (245, 245, 245)
    resp = svc.ingest([
        make_product("organiser", "KVISSLE Desk organiser", category="Desk organiser", attributes={"color": "white"},
                     description="Keeps a white desk tidy: pens and paper in one place on the desk.", images=[draw_product_image("box", white)]),
        make_product("desk", "BRUSALI Desk", category="Desk", attributes={"color": "white"},
                     description="A work surface with a shelf.", images=[draw_product_image("table", white)]),
        make_product("chair", "ADDE Chair", category="Chair", description="Stackable chair.",
                     images=[draw_product_image("chair", (30, 60, 200))]),
        make_product("lamp", "FADO Table lamp", category="Table lamp", description="Soft mood light.",
                     images=[draw_product_image("lamp", (230, 200, 30))]),
        make_product("rug", "STOCKHOLM Rug, flatwoven", category="Rug, flatwoven", description="Handwoven wool rug.",
                     images=[draw_product_image("rug", (200, 30, 30))]),
    ])
    assert resp.upserted == 5
    fused = svc.rank(text="white desk", top_k=5, no_cache=True, explain=True)
    by_id = {h.product_id: h for h in fused.hits}
    assert by_id["desk"].signal_scores["category_match_boost"] > 0
    assert "category_match_boost" not in by_id["organiser"].signal_scores
    assert [h.product_id for h in fused.hits][0] == "desk", [(h.product_id, h.score) for h in fused.hits]
    assert "category named by the query (+0.1): Desk" in fused.interpretation
    dense = svc.rank(text="white desk", top_k=2, no_cache=True, explain=True,
                     fusion=search_pb2.Fusion(method=search_pb2.Fusion.WEIGHTED, text_weight=1.0))
    assert all("category_match_boost" not in h.signal_scores for h in dense.hits)  # single signals stay plain baselines
    bm25 = svc.rank(text="white desk", top_k=2, no_cache=True, explain=True,
                    fusion=search_pb2.Fusion(method=search_pb2.Fusion.WEIGHTED, lexical_weight=1.0))
    assert all("category_match_boost" not in h.signal_scores for h in bm25.hits)
    chinese = svc.rank(text="白色书桌", top_k=2, no_cache=True, explain=True)  # glossary: white desk
    assert {h.product_id: h for h in chinese.hits}["desk"].signal_scores["category_match_boost"] > 0
