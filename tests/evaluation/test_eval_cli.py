import json
from dataclasses import dataclass

from homesearch.evaluation.cli import fusion_for, main


@dataclass
class _Res:
    product_ids: list
    model_version: str = "fake-v1"


class _FakeClient:
    def __init__(self):
        self.calls = []
        self.region_modes = []

    def search(self, text=None, image=None, top_k=10, fusion=None, no_cache=False, region_mode="auto"):
        self.calls.append((text, fusion))
        self.region_modes.append(region_mode)
        return _Res(["b", "a"] if text == "white bed" else ["x"])

    def close(self):
        pass


def _write_jsonl(path, rows):
    """Writes ``rows`` as JSONL at ``path`` (catalogs and query sets of these tests); returns it."""
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _catalog(tmp_path):
    """A three-product catalog (ids a, b, x) in ``tmp_path``; returns its path."""
    return _write_jsonl(tmp_path / "catalog.jsonl", [{"id": i, "title": f"T {i}"} for i in "abx"])


def test_eval_through_a_client(tmp_path, capsys):
    cat = _catalog(tmp_path)
    _write_jsonl(tmp_path / "queries.jsonl", [{"id": "q1", "text": "white bed", "relevant": ["a"]},
                                              {"id": "q2", "text": "red lamp", "relevant": ["c"]}])
    fake = _FakeClient()
    assert main(["--catalog", str(cat), "--signals", "image", "--json"], client_factory=lambda: fake) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["metrics"]["n"] == 2
    assert rep["metrics"]["recall@10"] == 0.5 and rep["metrics"]["mrr@10"] == 0.25
    f = fake.calls[0][1]
    assert (f.image_weight, f.text_weight, f.lexical_weight) == (1.0, 0.0, 0.0)


def test_region_mode_reaches_every_photo_query_and_the_report(tmp_path, capsys):
    cat = _catalog(tmp_path)
    photos = _write_jsonl(tmp_path / "photos.jsonl", [{"id": "p1", "image": "photos/1.jpg", "relevant": ["x"]},
                                                      {"id": "p2", "image": "photos/2.jpg", "relevant": ["a"]}])
    fake = _FakeClient()
    argv = ["--catalog", str(cat), "--queries", str(photos), "--json"]
    assert main([*argv, "--region-mode", "off"], client_factory=lambda: fake) == 0
    rep = json.loads(capsys.readouterr().out)
    assert fake.region_modes == ["off", "off"] and rep["region_mode"] == "off"
    assert rep["metrics"]["recall@1"] == 0.5
    fake.region_modes.clear()
    assert main(argv, client_factory=lambda: fake) == 0  # default: the service decides
    assert fake.region_modes == ["auto", "auto"] and json.loads(capsys.readouterr().out)["region_mode"] == "auto"


def test_fusion_default_is_none():
    assert fusion_for(None, "") is None
    assert fusion_for("text,lexical", "rrf").method == "rrf"


class _Retryable(Exception):
    retryable = True


def test_text_field_and_retry_of_rate_limited_queries(tmp_path, capsys):
    cat = _catalog(tmp_path)
    qs = _write_jsonl(tmp_path / "zh.jsonl", [{"id": "q1", "text": "白色床", "text_en": "white bed", "relevant": ["a"]},
                                              {"id": "q2", "text": "红色灯", "relevant": ["c"]}])
    fake = _FakeClient()
    fails = {"n": 2}
    inner = fake.search

    def flaky(**kw):
        if fails["n"]:
            fails["n"] -= 1
            raise _Retryable("RESOURCE_EXHAUSTED: rate limited")
        return inner(**kw)

    fake.search = flaky
    runs = tmp_path / "runs.json"
    argv = ["--catalog", str(cat), "--queries", str(qs), "--text-field", "text_en", "--json", "--runs-out", str(runs)]
    assert main(argv, client_factory=lambda: fake) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["errors"] == 0 and rep["text_field"] == "text_en"
    assert rep["metrics"]["n"] == 1  # q2 has no text_en: skipped, not scored as a miss
    assert fake.calls[0][0] == "white bed"
    assert rep["metrics"]["mrr@10"] == 0.5 and rep["ci95"]["mrr@10"] == [0.5, 0.5]
    assert json.loads(runs.read_text())["q1"]["ranked"] == ["b", "a"]


def test_non_retryable_error_is_scored_as_a_miss(tmp_path, capsys):
    cat = _write_jsonl(tmp_path / "catalog.jsonl", [{"id": "a", "title": "T a"}])
    _write_jsonl(tmp_path / "queries.jsonl", [{"id": "q1", "text": "x", "relevant": ["a"]}])

    class _Broken:
        def search(self, **kw):
            raise ValueError("boom")

    assert main(["--catalog", str(cat), "--json"], client_factory=_Broken) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["errors"] == 1 and rep["metrics"]["recall@10"] == 0.0


def test_heldout_subset_reports_seen_and_unseen_types(tmp_path, capsys):
    from homesearch.evaluation.split import make_split

    # enough product lines that some are held out; one category only in held-out lines = unseen type
    cat = [{"id": f"p{i}", "title": f"LINE{i} Thing", "category": "chair" if i % 2 else f"odd{i}"} for i in range(60)]
    qs = [{"id": f"q{i}", "text": f"t{i}", "relevant": [f"p{i}"]} for i in range(60)]
    split = make_split(cat, qs)
    held = [q for q in qs if split.query_part.get(q["id"]) in ("dev", "test")]
    assert held and any(split.query_seen_type[q["id"]] for q in held) and any(not split.query_seen_type[q["id"]] for q in held)
    _write_jsonl(tmp_path / "catalog.jsonl", cat)
    _write_jsonl(tmp_path / "queries.jsonl", qs)

    class _Exact:
        def search(self, text=None, **kw):
            return _Res([f"p{text[1:]}"])

    assert main(["--catalog", str(tmp_path / "catalog.jsonl"), "--subset", "heldout", "--json"], client_factory=_Exact) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["metrics"]["n"] == len(held)
    assert rep["seen_type"]["n"] + rep["unseen_type"]["n"] == len(held)
    assert rep["unseen_type"]["n"] > 0 and rep["unseen_type"]["recall@10"] == 1.0


def test_index_summary_does_not_break_json_report(tmp_path, capsys, monkeypatch):
    import services.ranking.ingest.cli as ingest_cli

    seen = []

    def fake_index(argv):
        seen.append(argv)
        print("upserted 1, unchanged 0, failed 0")
        return 0

    monkeypatch.setattr(ingest_cli, "main", fake_index)
    cat = _write_jsonl(tmp_path / "catalog.jsonl", [{"id": "a", "title": "T a"}])
    _write_jsonl(tmp_path / "queries.jsonl", [{"id": "q1", "text": "white bed", "relevant": ["a"]}])
    assert main(["--catalog", str(cat), "--index", "--json"], client_factory=_FakeClient) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["metrics"]["recall@10"] == 1.0 and "upserted 1" in err
    assert seen and seen[0][0] == str(cat)


def test_implicit_material_runs_fused_text_and_photo_in_one_report(tmp_path, capsys):
    rows = [("w1", "A Chair", "oak"), ("m1", "B Chair", "chrome-plated"), ("w2", "C Table", "birch"), ("g2", "D Table", "clear glass")]
    cat = _write_jsonl(tmp_path / "catalog.jsonl", [{"id": i, "title": t, "category": t.split()[1], "attributes": {"color": c}}
                                                    for i, t, c in rows])

    class _ByWeights(_FakeClient):  # photo alone gets every query right, text alone none
        def search(self, text=None, image=None, top_k=10, fusion=None, no_cache=False):
            self.calls.append((text, fusion))
            right = {"wooden chair": "w1", "metal chair": "m1", "wooden table": "w2", "glass table": "g2"}[text]
            photo = fusion is not None and fusion.image_weight == 1.0
            return _Res([right] if photo else ["zz", right])

    fake = _ByWeights()
    assert main(["--catalog", str(cat), "--implicit-material", "--json"], client_factory=lambda: fake) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["implicit_material"]["queries"] == 4 and len(fake.calls) == 12  # 4 queries x 3 systems
    assert rep["photo"]["all"]["recall@1"] == 1.0 and rep["text"]["all"]["recall@1"] == 0.0
    assert {"material:wood", "material:metal", "material:glass"} <= set(rep["fused"])
    assert sum(rep["fused"][g]["n"] for g in rep["fused"] if g.startswith("part:")) == 4
