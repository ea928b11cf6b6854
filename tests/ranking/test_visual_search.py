"""Shopper photos find their product through the real ranking service (Triton encoders with the
``visual`` descriptor, Qdrant Edge and the qdrant-client backend, Valkey), on a small subset of
the IKEA dev catalogue: the ``visual`` rows are written at ingestion, a photo query searches
them once per region and keeps each product's best, and explain shows the visual score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.ranking import make_product, start_with_catalog

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ikea"
if not (DATA / "photos.jsonl").is_file():  # worktrees sit two levels below /work
    DATA = Path("/work/shared/data/ikea")
needs_data = pytest.mark.skipif(not (DATA / "photos.jsonl").is_file(), reason="shared IKEA dev data not present")

# Shopper photos queried (their products + distractors of the same types are indexed): ones the
# descriptor ranks first against the whole catalogue offline (services.encoders.training.visual),
# so a miss here is the serving path (ingestion rows, region searches, merge, fusion) failing.
# Picked for the PCA whitening (visual-gem3-r579-pw512-78416cbe); re-checked by the same rule for
# the learned projection now shipped (visual-shop-a0d227b1): it ranks all 8 first too (141 of the
# 200 photos, best raw ``visual`` score through the services on the full catalogue), so the ids
# stay. (With it and the a-priori visual weight 0.6 this test got 5 of 8: the weight, re-chosen on
# the tune part of the photos, is what changed, not the photos.)
PHOTO_IDS = ("p0005", "p0006", "p0008", "p0016", "p0020", "p0024", "p0025", "p0026")
N_PHOTOS = len(PHOTO_IDS)
N_DISTRACTORS = 40


def _subset() -> tuple[list, list[dict]]:
    catalog = [json.loads(line) for line in (DATA / "catalog.jsonl").open(encoding="utf-8")]
    photos = [q for q in map(json.loads, (DATA / "photos.jsonl").open(encoding="utf-8")) if q["id"] in PHOTO_IDS]
    want = {p["relevant"][0] for p in photos}
    types = {p["category"] for p in catalog if p["id"] in want}
    same_type = [p for p in catalog if p["category"] in types and p["id"] not in want][:N_DISTRACTORS // 2]
    others = [p for p in catalog if p["category"] not in types][: N_DISTRACTORS - len(same_type)]
    chosen = [p for p in catalog if p["id"] in want] + same_type + others
    products = [make_product(p["id"], p["title"], category=p["category"], description=p.get("description", ""),
                             attributes=p.get("attributes", {}), images=[(DATA / p["image"]).read_bytes()])
                for p in chosen]
    return products, photos


@pytest.fixture(scope="module", params=["edge", pytest.param("server", marks=pytest.mark.filterwarnings("ignore::UserWarning"))])
def shop(request, tmp_path_factory, triton_server, redis_url):
    if not (DATA / "photos.jsonl").is_file():
        pytest.skip("shared IKEA dev data not present")
    products, photos = _subset()
    extra = {"backend": "server", "qdrant_url": ":memory:"} if request.param == "server" else {}
    handle = start_with_catalog(tmp_path_factory.mktemp(f"visual-{request.param}"), triton_server, redis_url,
                                products, **extra)
    yield handle, photos
    handle.stop()


@needs_data
def test_index_stores_two_visual_rows_per_photo(shop):
    handle, photos = shop
    pid = photos[0]["relevant"][0]
    stored = handle.app.index.retrieve([pid])[pid]
    rows = stored.vectors["visual"]
    assert len(rows) == 2 and all(len(r) == 512 for r in rows)


@needs_data
def test_shopper_photos_find_their_product(shop):
    from homesearch.v1 import search_pb2

    handle, photos = shop
    hits1 = 0
    for q in photos:
        resp = handle.rank(image=(DATA / q["image"]).read_bytes(), top_k=10, explain=True,
                           region_mode=search_pb2.REGION_MODE_OFF)
        ids = [h.product_id for h in resp.hits]
        assert q["relevant"][0] in ids, (q, ids)
        hits1 += ids[0] == q["relevant"][0]
        top = resp.hits[0]
        assert "visual" in top.signal_scores and 0.0 < top.signal_scores["visual"] <= 1.0001
        assert "image" in top.signal_scores and "visual=8" in top.explanation  # both photo signals fused
        assert "visual vector (best of 52 rows: whole photo, foreground, 50 regions)" in top.explanation
    assert hits1 >= N_PHOTOS - 2, hits1


@needs_data
def test_model_version_names_the_visual_descriptor(shop):
    handle, photos = shop
    resp = handle.rank(text="chair", top_k=3)
    info = handle.app.index.meta.model_version
    assert info == resp.model_version and info.count("|") == 2 and info.rsplit("|", 1)[1].startswith("visual-")


def test_visual_region_boxes_map_the_padded_square_back_onto_the_photo():
    from services.ranking.regions import visual_region_boxes

    square = visual_region_boxes(448, 448)
    assert len(square) == 50 and square[0] == (0.0, 0.0, 5 / 14, 5 / 14) and square[-1] == (4 / 14, 4 / 14, 13 / 14, 13 / 14)
    wide = visual_region_boxes(800, 400)  # padded above and below: a quarter of the square each side
    assert wide[0] == pytest.approx((0.0, 0.0, 5 / 14, (5 / 14 - 0.25) * 2))
    assert all(0.0 <= v <= 1.0 for b in wide for v in b) and all(b[0] < b[2] for b in wide)


@needs_data
def test_region_mode_on_the_visual_rows_of_one_pass(shop):
    """Shop the look on ``regions.vector=visual``: 51 regions (50 windows + the whole photo) from the
    photo's one 448 px visual pass, boxes inside the photo, the pictured product in the merged list;
    ``image`` brings back the 30-crop grid on the text-space vector, and the default (auto) is the
    scene search of scene_search.py (149 windows of one 640 px pass)."""
    from homesearch.v1 import search_pb2

    handle, photos = shop
    rs = handle.app.settings.regions
    assert rs.vector == "auto"
    old = rs.vector
    try:
        auto = handle.rank(image=(DATA / photos[0]["image"]).read_bytes(), top_k=10, no_cache=True,
                           region_mode=search_pb2.REGION_MODE_ON, explain=True)
        assert "149 windows of one 640 px pass" in auto.interpretation
        rs.vector = "image"
        grid = handle.rank(image=(DATA / photos[0]["image"]).read_bytes(), top_k=10, no_cache=True,
                           region_mode=search_pb2.REGION_MODE_ON, explain=True)
        assert "30 regions searched on vector 'image'" in grid.interpretation
        rs.vector = "visual"
        found = 0
        for q in photos[:4]:
            resp = handle.rank(image=(DATA / q["image"]).read_bytes(), top_k=10, no_cache=True,
                               region_mode=search_pb2.REGION_MODE_ON, explain=True)
            assert resp.regions and len(resp.regions) <= rs.max_regions
            assert all(0.0 <= r.box.x_min < r.box.x_max <= 1.0 and 0.0 <= r.box.y_min < r.box.y_max <= 1.0
                       for r in resp.regions)
            assert "51 regions searched on vector 'visual'" in resp.interpretation
            found += q["relevant"][0] in [h.product_id for h in resp.hits]
        assert found >= 3, found
    finally:
        rs.vector = old


@needs_data
def test_auto_mode_puts_the_one_product_of_a_shopper_photo_first(shop):
    """A shopper photo is scene-like, so auto region mode searches its regions; its best ``visual``
    match is far above ``regions.one_product_visual`` (one product in view), so the photo query's
    first ``regions.one_product_hits`` lead the merged list, the rooms' round robin fills the rest
    (no product twice) and the regions stay in the response. With the rule off, the same photo gets
    the rooms' round robin only."""
    from homesearch.v1 import search_pb2

    handle, photos = shop
    rs = handle.app.settings.regions
    led = 0
    for q in photos[:4]:
        img = (DATA / q["image"]).read_bytes()
        auto = handle.rank(image=img, top_k=10, no_cache=True, explain=True)
        off = handle.rank(image=img, top_k=10, no_cache=True, region_mode=search_pb2.REGION_MODE_OFF)
        assert auto.regions and "149 windows of one 640 px pass" in auto.interpretation
        if "one product in view" in auto.interpretation:
            led += 1
            n, got = rs.one_product_hits, [h.product_id for h in auto.hits]
            assert 0 < n < len(got) and got[:n] == [h.product_id for h in off.hits][:n]
            assert len(set(got)) == len(got)
    assert led >= 3, led
    old = rs.one_product_visual
    try:
        rs.one_product_visual = 2.0  # above any cosine: always "a room of products"
        resp = handle.rank(image=(DATA / photos[0]["image"]).read_bytes(), top_k=10, no_cache=True, explain=True)
        assert "a room of products" in resp.interpretation and "one product in view" not in resp.interpretation
        assert resp.hits[0].product_id == resp.regions[0].hits[0].product_id  # round robin starts the list
    finally:
        rs.one_product_visual = old


@needs_data
def test_packshot_regions_off_skips_the_448_pass_for_packshots_only(shop):
    """``regions.packshot_regions=False``: a catalogue packshot (light border) is searched on its
    whole + foreground rows only and still finds its product first; a room photo forced onto the
    single-vector path keeps its 50 regions. The default keeps the regions for every photo."""
    from homesearch.v1 import search_pb2

    handle, photos = shop
    rs = handle.app.settings.regions
    assert rs.packshot_regions is True
    pid = photos[0]["relevant"][0]
    row = next(json.loads(line) for line in (DATA / "catalog.jsonl").open(encoding="utf-8") if json.loads(line)["id"] == pid)
    packshot, room = (DATA / row["image"]).read_bytes(), (DATA / photos[0]["image"]).read_bytes()
    try:
        rs.packshot_regions = False
        resp = handle.rank(image=packshot, top_k=5, no_cache=True, explain=True)
        assert resp.hits[0].product_id == pid
        assert "best of 2 rows: whole photo, foreground, 0 regions" in resp.hits[0].explanation
        scene = handle.rank(image=room, top_k=5, no_cache=True, explain=True, region_mode=search_pb2.REGION_MODE_OFF)
        assert "best of 52 rows" in scene.hits[0].explanation
    finally:
        rs.packshot_regions = True
    resp = handle.rank(image=packshot, top_k=5, no_cache=True, explain=True)
    assert resp.hits[0].product_id == pid and "best of 52 rows" in resp.hits[0].explanation


@needs_data
def test_a_packshot_without_a_close_match_is_ranked_by_its_type(shop):
    """``fusion.unmatched_visual_below``: a packshot whose best ``visual`` cosine is below it has no
    copy in the catalogue, so the visual weight drops to ``unmatched_visual_weight`` and the
    interpretation says so. Only for photo-only packshots in auto region mode with default
    weights: region mode off, explicit weights and scene-like photos keep the visual weight."""
    from homesearch.v1 import search_pb2

    handle, photos = shop
    fz = handle.app.settings.fusion
    pid = photos[0]["relevant"][0]
    row = next(json.loads(line) for line in (DATA / "catalog.jsonl").open(encoding="utf-8") if json.loads(line)["id"] == pid)
    packshot, room = (DATA / row["image"]).read_bytes(), (DATA / photos[0]["image"]).read_bytes()
    kept = f"visual={fz.image_query_visual_weight:g}"
    # the shipped threshold: the product itself is indexed, a near-1 match, so nothing changes
    assert 0 < fz.unmatched_visual_below < 0.9
    resp = handle.rank(image=packshot, top_k=5, no_cache=True, explain=True)
    assert resp.hits[0].product_id == pid and "no close match" not in resp.interpretation
    assert kept in resp.hits[0].explanation
    old = fz.unmatched_visual_below
    try:
        fz.unmatched_visual_below = 2.0  # above any cosine: every packshot counts as unmatched
        resp = handle.rank(image=packshot, top_k=5, no_cache=True, explain=True)
        assert "no close match for this product photo" in resp.interpretation
        assert f"visual={fz.unmatched_visual_weight:g}" in resp.hits[0].explanation
        assert kept not in resp.hits[0].explanation
        off = handle.rank(image=packshot, top_k=5, no_cache=True, explain=True, region_mode=search_pb2.REGION_MODE_OFF)
        assert "no close match" not in off.interpretation and kept in off.hits[0].explanation
        weights = search_pb2.Fusion(image_weight=0.7, text_weight=0.3)
        explicit = handle.rank(image=packshot, top_k=5, no_cache=True, explain=True, fusion=weights)
        assert "no close match" not in explicit.interpretation
        scene = handle.rank(image=room, top_k=5, no_cache=True, explain=True)
        assert scene.regions and "no close match" not in scene.interpretation
        fz.unmatched_visual_below = 0.0  # off
        resp = handle.rank(image=packshot, top_k=5, no_cache=True, explain=True)
        assert "no close match" not in resp.interpretation and kept in resp.hits[0].explanation
    finally:
        fz.unmatched_visual_below = old


@needs_data
def test_unlisted_journey_through_the_gateway(shop, make_gateway, tmp_path):
    """``eval-journeys unlisted`` on this slice, through a real gateway: every query is answered
    with its own product, variants and look-alikes filtered out, and reports the type precision."""
    from homesearch.client import HomesearchClient
    from homesearch.evaluation.journeys import eval_unlisted, unlisted_queries

    handle, _photos = shop
    ids = {p.id for p in handle.catalog}
    rows = [dict(json.loads(line), image=str(DATA / json.loads(line)["image"]))
            for line in (DATA / "catalog.jsonl").open(encoding="utf-8") if json.loads(line)["id"] in ids]
    (tmp_path / "catalog.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    digest = {r["id"]: r["id"] for r in rows}
    expected = unlisted_queries(rows, digest, "all")
    assert len(expected) >= 4
    gw = make_gateway(handle.address)
    with HomesearchClient(gw.address, api_key=gw.api_key, timeout_s=60) as client:
        report = eval_unlisted(client, tmp_path, "all", 4, lambda items, desc: items)
    assert report["all"]["n"] == 4 and report["excluded_products_returned"] == 0
    assert 0.0 <= report["all"]["precision@5"] <= 1.0 and report["weak_visual"]["n"] <= 4
