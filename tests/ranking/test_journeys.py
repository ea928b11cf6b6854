"""Issue 13 journeys through the real ranking service (Triton encoders, Qdrant Edge / qdrant-client
local mode, Valkey): facets, similar products by id, composed queries, shop the look."""

from __future__ import annotations

import io
from collections import Counter

import grpc
import pytest

from services.ranking.index.schema import attr_match_values
from homesearch.v1 import search_pb2
from tests.fixtures.ranking import draw_product_image, make_product, start_with_catalog

RED, BLUE, GREEN, WHITE, BLACK = (200, 30, 30), (30, 60, 200), (40, 160, 60), (235, 235, 228), (30, 30, 30)


def journey_products():
    """Variants (same title + category, other colour/size) beside unrelated products, with prices."""
    P = make_product
    img = draw_product_image
    return [
        P("sofa-red", "KLIPPAN Two-seat sofa", category="Sofa", price=299.0, attributes={"color": "red", "size": "180x88 cm"},
          images=[img("sofa", RED)]),
        P("sofa-blue", "KLIPPAN Two-seat sofa", category="Sofa", price=299.0, attributes={"color": "blue", "size": "180x88 cm"},
          images=[img("sofa", BLUE)]),
        P("sofa-green", "KLIPPAN Two-seat sofa", category="Sofa", price=319.0, attributes={"color": "green", "size": "180x88 cm"},
          images=[img("sofa", GREEN)]),
        P("sofa-ektorp", "EKTORP Three-seat sofa", category="Sofa", price=549.0, attributes={"color": "green, beige"},
          images=[img("sofa", (60, 150, 70))]),
        P("chair-white", "ADDE Chair", category="Chair", price=19.0, attributes={"color": "white"}, images=[img("chair", WHITE)]),
        P("chair-black", "ADDE Chair", category="Chair", price=19.0, attributes={"color": "black"}, images=[img("chair", BLACK)]),
        P("chair-green", "TEODORES Chair", category="Chair", price=35.0, attributes={"color": "green"}, images=[img("chair", GREEN)]),
        P("table-small", "LACK Side table", category="Side table", price=9.99,
          attributes={"color": "white", "size": "55x55 cm"}, images=[img("table", WHITE)]),
        P("table-large", "LACK Side table", category="Side table", price=14.99,
          attributes={"color": "white", "size": "90x55 cm"}, images=[img("table", (225, 225, 220))]),
        P("lamp-yellow", "FADO Table lamp", category="Table lamp", price=24.99, attributes={"color": "yellow"},
          images=[img("lamp", (230, 200, 30))]),
        P("bookcase-white", "BILLY Bookcase", category="Bookcase", price=79.0, attributes={"color": "white, birch"},
          images=[img("bookcase", WHITE)]),
        P("rug-grey", "STOCKHOLM Rug", category="Rug", attributes={"color": "grey", "material": "wool"}),  # no price, no photo
    ]


@pytest.fixture(scope="module", params=["edge", pytest.param("server", marks=pytest.mark.filterwarnings("ignore::UserWarning"))])
def journeys(request, tmp_path_factory, triton_server, redis_url):
    """One service per backend with journey_products() ingested."""
    extra = {"backend": "server", "qdrant_url": ":memory:"} if request.param == "server" else {}
    handle = start_with_catalog(
        tmp_path_factory.mktemp(f"journeys-{request.param}"), triton_server, redis_url, journey_products(), **extra
    )
    yield handle
    handle.stop()


def _ids(resp) -> list[str]:
    return [h.product_id for h in resp.hits]


def _image(handle, pid: str) -> bytes:
    return next(p for p in handle.catalog if p.id == pid).images[0]


def _abort_code(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    return ei.value.code(), ei.value.details()


# -- facets ---------------------------------------------------------------------------------
def _brute_force(products, *, categories=(), attrs=None, min_price=None):
    """Counts as the filter semantics define them, straight from the products."""
    keep = []
    for p in products:
        if categories and p.category.lower() not in {c.lower() for c in categories}:
            continue
        if attrs and any(v.lower() not in attr_match_values(p.attributes.get(k, "")) for k, v in attrs.items()):
            continue
        if min_price is not None and not (p.HasField("price") and p.price >= min_price):
            continue
        keep.append(p)
    cats = Counter(p.category for p in keep)
    colors = Counter(v for p in keep for v in attr_match_values(p.attributes.get("color", "")))
    edges = [20.0, 100.0, 300.0]
    bounds = [None, *edges, None]
    prices = [
        sum(1 for p in keep if p.HasField("price") and (lo is None or p.price >= lo) and (hi is None or p.price < hi))
        for lo, hi in zip(bounds[:-1], bounds[1:])
    ]
    return cats, colors, prices


@pytest.mark.parametrize(
    "flt",
    [{}, {"categories": ["Sofa", "Chair"]}, {"attributes": {"color": "white"}}, {"min_price": 15.0}],
    ids=["all", "categories", "attribute", "min-price"],
)
def test_facet_counts_equal_a_brute_force_count(journeys, flt):
    spec = search_pb2.FacetSpec(categories=True, attributes=["Color"], price_edges=[20, 100, 300], limit=100)
    resp = journeys.rank(text="furniture", top_k=2, facets=spec, filter=search_pb2.Filter(**flt), no_cache=True)
    by_field = {f.field: f for f in resp.facets}
    assert set(by_field) == {"category", "attributes.color", "price"}
    cats, colors, prices = _brute_force(journeys.catalog, **{"attrs" if k == "attributes" else k: v for k, v in flt.items()})
    assert {v.value: v.count for v in by_field["category"].values} == dict(cats)
    assert {v.value: v.count for v in by_field["attributes.color"].values} == dict(colors)
    assert [v.count for v in by_field["price"].values] == prices
    assert [v.value for v in by_field["price"].values] == ["*-20", "20-100", "100-300", "300-*"]
    counts = [v.count for v in by_field["category"].values]
    assert counts == sorted(counts, reverse=True)
    assert len(resp.hits) <= 2  # facets are over the filtered catalog, not the page


def test_facets_are_absent_unless_asked(journeys):
    assert not journeys.rank(text="sofa", no_cache=True).facets


@pytest.mark.parametrize(
    "spec,needle",
    [
        (search_pb2.FacetSpec(attributes=["nope"]), "unknown facets.attributes key 'nope'"),
        (search_pb2.FacetSpec(price_edges=[100, 50]), "strictly increasing"),
        (search_pb2.FacetSpec(price_edges=[-1]), ">= 0"),
        (search_pb2.FacetSpec(categories=True, limit=1000), "facets.limit"),
    ],
)
def test_bad_facet_specs_are_invalid_argument(journeys, spec, needle):
    code, details = _abort_code(lambda: journeys.rank(text="sofa", facets=spec))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in details


# -- similar products -------------------------------------------------------------------------
def test_similar_by_id_excludes_itself_and_finds_its_variants(journeys):
    resp = journeys.rank(similar_to_product_id="sofa-red", top_k=5, explain=True, no_cache=True)
    ids = _ids(resp)
    assert "sofa-red" not in ids
    assert {"sofa-blue", "sofa-green"} <= set(ids[:3]), ids
    assert "similar to sofa-red" in resp.interpretation


def test_similar_same_category_only(journeys):
    resp = journeys.rank(similar_to_product_id="chair-white", top_k=20, no_cache=True,
                         similar_scope=search_pb2.SIMILAR_SCOPE_SAME_CATEGORY)
    assert resp.hits and {h.category for h in resp.hits} == {"Chair"}
    assert "chair-white" not in _ids(resp)


def test_complete_the_look_never_returns_the_own_category(journeys):
    resp = journeys.rank(similar_to_product_id="sofa-red", top_k=20, no_cache=True,
                         similar_scope=search_pb2.SIMILAR_SCOPE_OTHER_CATEGORIES)
    assert len(resp.hits) == len(journeys.catalog) - 4  # everything but the four sofas
    assert "Sofa" not in {h.category for h in resp.hits}


def test_similar_unknown_product_is_not_found(journeys):
    code, details = _abort_code(lambda: journeys.rank(similar_to_product_id="no-such-id"))
    assert code == grpc.StatusCode.NOT_FOUND
    assert "no-such-id" in details


def test_similar_with_image_or_scope_alone_is_invalid(journeys):
    code, details = _abort_code(lambda: journeys.rank(similar_to_product_id="sofa-red", image=_image(journeys, "sofa-red")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cannot be combined with image" in details
    code, details = _abort_code(lambda: journeys.rank(text="sofa", similar_scope=search_pb2.SIMILAR_SCOPE_SAME_CATEGORY))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "similar_scope needs similar_to_product_id" in details


# -- composed queries ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "photo,text,expected",
    [
        ("sofa-red", "but in blue", "sofa-blue"),
        ("sofa-red", "换成绿色的", "sofa-green"),
        ("chair-white", "black", "chair-black"),
        ("table-large", "smaller", "table-small"),
    ],
)
def test_composed_query_ranks_the_matching_sibling_first(journeys, photo, text, expected):
    resp = journeys.rank(image=_image(journeys, photo), text=text, top_k=5, explain=True, no_cache=True)
    assert _ids(resp)[0] == expected, [(h.product_id, h.score) for h in resp.hits]
    assert "text read as:" in resp.interpretation
    assert f"reference {photo}" in resp.interpretation


def test_composed_query_by_id(journeys):
    resp = journeys.rank(similar_to_product_id="sofa-blue", text="red", top_k=3, explain=True, no_cache=True)
    assert _ids(resp)[0] == "sofa-red"
    assert "attribute ≈ 'red'" in resp.hits[0].explanation


# -- shop the look ---------------------------------------------------------------------------
def _scene(handle) -> bytes:
    """A 'room': three products pasted onto a textured wall/floor, content up to the edges."""
    from PIL import Image, ImageDraw

    room = Image.new("RGB", (900, 600), (150, 120, 90))
    d = ImageDraw.Draw(room)
    d.rectangle([0, 0, 900, 380], fill=(180, 170, 150))
    for x in range(0, 900, 40):
        d.line([x, 380, x + 60, 600], fill=(120, 95, 70), width=3)
    for pid, (x, y) in (("sofa-red", (20, 200)), ("lamp-yellow", (470, 120)), ("bookcase-white", (640, 20))):
        im = Image.open(io.BytesIO(_image(handle, pid))).convert("RGB").resize((256, 256))
        room.paste(im, (x, y))
    buf = io.BytesIO()
    room.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def test_shop_the_look_returns_regions_and_a_merged_list(journeys):
    resp = journeys.rank(image=_scene(journeys), top_k=10, explain=True, no_cache=True)  # auto: scene-like
    assert resp.regions, "a room photo is searched by regions automatically"
    for r in resp.regions:
        b = r.box
        assert 0 <= b.x_min < b.x_max <= 1 and 0 <= b.y_min < b.y_max <= 1
        assert r.hits
    top = set(_ids(resp)[:6])
    assert len(top & {"sofa-red", "lamp-yellow", "bookcase-white"}) >= 2, _ids(resp)
    assert "shop the look" in resp.interpretation


def test_region_mode_off_and_packshots_use_one_vector(journeys):
    off = journeys.rank(image=_scene(journeys), region_mode=search_pb2.REGION_MODE_OFF, no_cache=True)
    assert not off.regions and off.hits
    packshot = journeys.rank(image=_image(journeys, "lamp-yellow"), no_cache=True)
    assert not packshot.regions
    assert _ids(packshot)[0] == "lamp-yellow"
    forced = journeys.rank(image=_image(journeys, "lamp-yellow"), region_mode=search_pb2.REGION_MODE_ON, no_cache=True)
    assert forced.regions


def test_region_fields_are_validated(journeys):
    code, details = _abort_code(lambda: journeys.rank(text="sofa", region_mode=search_pb2.REGION_MODE_ON))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "needs an image" in details
    code, details = _abort_code(lambda: journeys.rank(image=_scene(journeys), max_regions=99))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "max_regions" in details
