"""Photo material through the real ranking service (Triton encoders, Valkey, both index backends):
estimated at ingestion from the photo's own vectors by the probe of the served tower version,
filterable and faceted as ``photo_material``, boosting a material query whose product text names no
material, and shown by ``explain``. Real IKEA photos (../shared/data/ikea) of known material."""

from __future__ import annotations

from pathlib import Path

import pytest

from homesearch.v1 import search_pb2
from services.encoders.client import EncoderClient
from services.ranking.ingest.photo_material import probe_for
from tests.fixtures.ranking import make_product, start_with_catalog

_NEAR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ikea"
SHARED = _NEAR if _NEAR.is_dir() else Path("/work/shared/data/ikea")

# Three serving bowls and three chairs of known material (their catalog ``color``: "acacia",
# "white" porcelain, "clear glass"; "chrome-plated", "beech", "rattan"). The indexed text names
# no material and differs only in an invented line name.
BOWLS = {"wood": "602.143.43", "ceramic": "501.767.99", "glass": "201.324.53"}
CHAIRS = {"metal": "201.150.38", "wood": "991.278.11", "rattan": "500.583.76"}
LINE = {"wood": "ALFA", "ceramic": "BETA", "glass": "GAMMA", "metal": "DELTA", "rattan": "EPSILON"}


def _photo(pid: str) -> bytes:
    return (SHARED / "images" / f"{pid}.jpg").read_bytes()


def materialless_products():
    out = []
    for material, pid in BOWLS.items():
        out.append(make_product(f"bowl-{material}", f"{LINE[material]} Serving bowl", category="Serving bowl",
                                description="A serving bowl for salads and sides.", images=[_photo(pid)]))
    for material, pid in CHAIRS.items():
        out.append(make_product(f"chair-{material}", f"{LINE[material]} Chair", category="Chair",
                                description="A chair for the dining table.", images=[_photo(pid)]))
    # the wooden bowl's photo, but a text that states another material: the statement decides
    out.append(make_product("bowl-stated-metal", "ZETA Serving bowl", category="Serving bowl",
                            description="A serving bowl for salads and sides.", attributes={"color": "stainless steel"},
                            images=[_photo(BOWLS["wood"])]))
    return out


@pytest.fixture(scope="module", params=["edge", pytest.param("server", marks=pytest.mark.filterwarnings("ignore::UserWarning"))])
def products(request, tmp_path_factory, triton_server, redis_url):
    if not (SHARED / "images").is_dir():
        pytest.skip(f"dev data not found at {SHARED}")
    extra = {"backend": "server", "qdrant_url": ":memory:"} if request.param == "server" else {}
    handle = start_with_catalog(tmp_path_factory.mktemp(f"photo-material-{request.param}"), triton_server, redis_url,
                                materialless_products(), **extra)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def probe(triton_server):
    info = EncoderClient(triton_server.grpc_url, timeout_s=60.0).model_info()
    return probe_for(info.image_version, info.visual_version)


def _ids(resp) -> list[str]:
    return [h.product_id for h in resp.hits]


TEXT_ONLY = search_pb2.Fusion(method=search_pb2.Fusion.WEIGHTED, text_weight=0.6, lexical_weight=0.4)
CASES = [("glass serving bowl", "bowl-glass"), ("ceramic serving bowl", "bowl-ceramic"), ("wooden serving bowl", "bowl-wood"),
         ("metal chair", "chair-metal"), ("rattan chair", "chair-rattan"), ("wooden chair", "chair-wood")]


def test_material_query_ranks_the_right_photo_first_when_the_text_names_no_material(products, probe):
    if probe is None:  # a tower without its probe: no estimate anywhere, and the interpretation says so
        resp = products.rank(text="glass serving bowl", top_k=3, no_cache=True, explain=True)
        assert "photo material glass: not estimated" in resp.interpretation
        assert all("photo_material_boost" not in h.signal_scores for h in resp.hits)
        assert "photo_material" not in products.info().attribute_keys
        return
    decided = 0
    for text, pid in CASES:
        text_alone = products.rank(text=text, top_k=3, fusion=TEXT_ONLY, no_cache=True, explain=True)
        assert all("photo_material_boost" not in h.signal_scores for h in text_alone.hits)  # no photo evidence
        fused = products.rank(text=text, top_k=3, no_cache=True, explain=True)
        assert _ids(fused)[0] == pid, (text, _ids(text_alone), _ids(fused))
        top = fused.hits[0]
        material = pid.split("-")[1]
        assert top.signal_scores["photo_material_boost"] > 0
        assert f"photo material: {material}" in top.explanation and "boost +" in top.explanation
        assert "photo material boost" in fused.interpretation
        decided += _ids(text_alone)[0] != pid
    assert decided >= 3  # text alone (no material words) cannot tell them apart: the photo decided


def test_chinese_material_query_gets_the_same_boost(products, probe):
    if probe is None:
        pytest.skip("no material probe for the served tower version (checked by the test above)")
    resp = products.rank(text="玻璃碗", top_k=3, no_cache=True, explain=True)
    assert _ids(resp)[0] == "bowl-glass"
    assert resp.hits[0].signal_scores["photo_material_boost"] > 0
    resp = products.rank(text="藤编椅子", top_k=3, no_cache=True, explain=True)
    assert _ids(resp)[0] == "chair-rattan"


def test_filter_and_facet_on_photo_material(products, probe):
    if probe is None:
        pytest.skip("no material probe for the served tower version (checked by the test above)")
    assert "photo_material" in products.info().attribute_keys
    flt = search_pb2.Filter(attributes={"photo_material": "glass"})
    assert "bowl-glass" in _ids(products.rank(text="bowl", top_k=10, filter=flt, no_cache=True))
    flt = search_pb2.Filter(attributes={"photo_material": "rattan"}, categories=["Chair"])
    assert _ids(products.rank(text="seat", top_k=10, filter=flt, no_cache=True)) == ["chair-rattan"]
    resp = products.rank(text="chair", top_k=1, facets=search_pb2.FacetSpec(attributes=["photo_material"]), no_cache=True)
    counts = {v.value: v.count for v in resp.facets[0].values}
    assert resp.facets[0].field == "attributes.photo_material"
    for material in ("wood", "metal", "glass", "rattan", "ceramic"):
        assert counts.get(material, 0) >= 1, counts


def test_a_material_stated_in_the_text_beats_the_photo_estimate(products, probe):
    """The stainless-steel bowl shows the wooden bowl's photo: a query for wood must not boost it
    (its text says metal), and explain says where the material came from."""
    if probe is None:
        pytest.skip("no material probe for the served tower version (checked by the first test)")
    resp = products.rank(text="wooden serving bowl", top_k=10, no_cache=True, explain=True)
    stated = next(h for h in resp.hits if h.product_id == "bowl-stated-metal")
    assert "photo_material_boost" not in stated.signal_scores
    assert "stated in the product text: metal" in stated.explanation
    assert _ids(resp)[0] == "bowl-wood"
