"""Named colours from pixels (services/ranking/ingest/photo_colour.py) and their query side
(colour_words.py, photo_boost.py): synthetic photos of known colours, a real catalogue photo,
undecodable input, and the colour words of English and Chinese queries."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from services.ranking.colour_words import accepted_names, palette_names, stated_colours
from services.ranking.fusion import FusedHit
from services.ranking.ingest.photo_colour import main_photo_colours, photo_colours
from services.ranking.photo_boost import apply_boost, photo_match, product_colour_match, query_colours
from tests.fixtures.ranking import draw_product_image

_NEAR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ikea"
SHARED = _NEAR if _NEAR.is_dir() else Path("/work/shared/data/ikea")


def _names(data: bytes) -> list[str]:
    return [c.name for c in photo_colours(data)]


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((200, 30, 30), "red"),
        ((30, 60, 200), "blue"),
        ((40, 160, 60), "green"),
        ((230, 200, 30), "yellow"),
        ((20, 20, 20), "black"),
        ((128, 128, 128), "grey"),
        ((110, 70, 40), "brown"),
        ((240, 140, 20), "orange"),
        ((240, 170, 190), "pink"),
        ((40, 190, 190), "turquoise"),
    ],
)
def test_one_coloured_object_on_white_is_named_by_its_colour(rgb, name):
    names = _names(draw_product_image("sofa", rgb))
    assert names[0] == name, names


def test_the_white_background_is_not_the_product_colour():
    fr = {c.name: c.fraction for c in photo_colours(draw_product_image("circle", (30, 60, 200)))}
    assert fr.get("blue", 0) > 0.8 and "white" not in fr, fr


def test_a_white_product_outlined_on_white_is_white():
    im = Image.new("RGB", (240, 240), "white")
    d = ImageDraw.Draw(im)
    d.rectangle([60, 20, 180, 220], fill=(236, 236, 234), outline=(110, 110, 110), width=4)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=92)
    assert _names(buf.getvalue())[0] == "white"


def test_a_busy_border_falls_back_to_the_centre():
    im = Image.new("RGB", (200, 200), (200, 30, 30))  # red room ...
    for x in range(0, 200, 10):
        ImageDraw.Draw(im).line([x, 0, x, 200], fill=(30, 160, 60), width=4)  # ... striped green
    ImageDraw.Draw(im).rectangle([30, 30, 170, 170], fill=(30, 60, 200))  # blue product in the centre
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    assert _names(buf.getvalue())[0] == "blue"


def test_two_coloured_product_keeps_both_names_with_fractions():
    im = Image.new("RGB", (200, 200), "white")
    ImageDraw.Draw(im).rectangle([20, 20, 100, 180], fill=(200, 30, 30))
    ImageDraw.Draw(im).rectangle([100, 20, 180, 180], fill=(30, 60, 200))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    got = {c.name: c.fraction for c in photo_colours(buf.getvalue())}
    assert set(got) >= {"red", "blue"} and 0.35 < got["red"] < 0.65, got


def test_transparent_png_background_counts_as_white():
    im = Image.new("RGBA", (120, 120), (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse([20, 20, 100, 100], fill=(40, 160, 60, 255))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    assert _names(buf.getvalue())[0] == "green"


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared IKEA dev data not present")
@pytest.mark.parametrize(("pid", "name"), [("502.962.97", "orange")])
def test_a_real_catalogue_photo_is_named_by_its_catalog_colour(pid, name):
    data = (SHARED / "images" / f"{pid}.jpg").read_bytes()
    assert name in _names(data)


def test_undecodable_bytes_raise_and_the_ingest_helper_returns_none():
    with pytest.raises(Exception):
        photo_colours(b"not an image at all")
    assert main_photo_colours([b"\xff\xd8\xff\xe0 truncated jpeg"]) is None
    assert main_photo_colours([]) is None
    assert main_photo_colours([draw_product_image("chair", (40, 160, 60))])[0][0] == "green"


def test_colour_words_read_longest_phrase_first():
    assert palette_names("dark grey wardrobe") == ["dark grey"]
    assert palette_names("black-brown bed frame") == ["dark brown"]
    assert palette_names("white stained oak effect") == ["beige"]
    assert palette_names("sofa with greyish legs") == []
    acc = accepted_names("light blue cushion")
    assert acc["blue"] == 1.0 and acc["turquoise"] == 0.5


def test_chinese_query_colour_goes_through_the_glossary():
    assert query_colours("深蓝色的沙发")["blue"] == 1.0
    assert query_colours("白色书架")["white"] == 1.0
    assert query_colours("沙发") == {}
    assert query_colours("green sofa")["green"] == 1.0


def test_boost_is_bounded_and_reorders_only_on_photo_colour():
    blue = [{"name": "blue", "fraction": 0.9}]
    red = [{"name": "red", "fraction": 0.9}]
    hits = [FusedHit("a", 0.80, {"photo_color": red}), FusedHit("b", 0.75, {"photo_color": blue}),
            FusedHit("c", 0.70, {})]
    out = apply_boost(hits, query_colours("blue sofa"), weight=0.1, full=0.5)
    assert [h.product_id for h in out] == ["b", "a", "c"]
    assert out[0].score == pytest.approx(0.85) and out[0].boosts["photo_color"] == pytest.approx(0.1)
    assert photo_match({"blue": 1.0}, [{"name": "blue", "fraction": 0.2}], full=0.5) == pytest.approx(0.4)
    assert apply_boost(hits, {}, 0.1, 0.5) is hits


def test_a_product_states_its_colour_in_its_colour_attribute_else_its_title():
    assert stated_colours({"title": "KIVIK Sofa", "attributes": {"color": "black-brown, grey"}}) == ["dark brown", "grey"]
    assert stated_colours({"title": "Grey velvet sofa", "attributes": {}}) == ["grey"]
    assert stated_colours({"title": "Green sofa", "attributes": {"color": "white"}}) == ["white"]  # the attribute first
    assert stated_colours({"title": "BREIM 衣柜", "attributes": {"color": "黑色"}}) == ["black"]  # glossary
    assert stated_colours({"title": "MALA Watercolour box", "attributes": {"color": "assorted colours"}}) == []
    assert stated_colours({}) == []


def test_a_stated_colour_beats_the_photo_estimate_unless_asked_for_the_photo_alone():
    accepted = query_colours("light blue sofa")  # blue 1, turquoise 0.5
    looks_blue = [{"name": "blue", "fraction": 0.9}]
    says_white = {"attributes": {"color": "white"}, "photo_color": looks_blue}
    says_turquoise = {"attributes": {"color": "turquoise"}, "photo_color": [{"name": "red", "fraction": 0.9}]}
    unstated = {"title": "KIVIK Sofa", "photo_color": looks_blue}
    assert product_colour_match(accepted, says_white, full=0.5) == 0.0  # the photo is not asked
    assert product_colour_match(accepted, says_turquoise, full=0.5) == 0.5  # a looser reading, half
    assert product_colour_match(accepted, unstated, full=0.5) == 1.0
    white_and_grey = {"attributes": {"color": "white, grey"}}
    assert product_colour_match(query_colours("white desk"), white_and_grey, full=0.5) == 0.5  # the share stated
    assert product_colour_match(query_colours("white grey desk"), white_and_grey, full=0.5) == 1.0
    assert product_colour_match(accepted, says_white, full=0.5, stated=False) == 1.0
    assert product_colour_match(accepted, says_turquoise, full=0.5, stated=False) == 0.0
    hits = [FusedHit("white", 0.8, says_white), FusedHit("turq", 0.75, says_turquoise)]
    assert [h.product_id for h in apply_boost(hits, accepted, 0.2, 0.5)] == ["turq", "white"]
