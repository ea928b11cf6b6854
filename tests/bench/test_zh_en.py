import json
import time

from bench import zh_en


def test_pairs_interleaved_and_ratio(tmp_path):
    q = tmp_path / "zh.jsonl"
    q.write_text("\n".join(json.dumps(x) for x in [
        {"id": "a", "text": "白色书架", "text_en": "white bookcase", "relevant": ["1"]},
        {"id": "b", "text": "黑色椅子", "text_en": "black chair", "relevant": ["2"]},
        {"id": "c", "text": "灯", "relevant": ["3"]},  # no English twin: not a pair
    ]) + "\n", encoding="utf-8")
    pairs = zh_en.load_pairs(q)
    assert [p[0] for p in pairs] == ["a", "b"]
    sent = []
    def search(text):
        sent.append(text)
        time.sleep(0.002)

    res = zh_en.run("unused", None, pairs, search=search, log=lambda m: None)
    timed = sent[2 + 4:]  # after 2 warm-ups and the pre-pass that fills the embedding cache
    assert timed == ["白色书架", "white bookcase", "black chair", "黑色椅子"]  # alternating order
    rows = res.data["rows"]
    assert [r["language"] for r in rows] == ["zh", "en", "zh / en"]
    assert rows[0]["n"] == 2 and rows[1]["n"] == 2 and rows[2]["p50_ms"] is not None
    assert "zh / en" in res.markdown()


def test_cold_pass_clears_embeddings_and_emb_hit_pass_is_warmed(tmp_path, monkeypatch):
    import sys
    import types

    events = []

    class _Redis:
        @classmethod
        def from_url(cls, url):
            return cls()

        def scan_iter(self, match, count):
            assert match == "hs:emb:*"
            return iter(["hs:emb:x"])

        def delete(self, *keys):
            events.append("flush")
            return len(keys)

    monkeypatch.setitem(sys.modules, "redis", types.SimpleNamespace(Redis=_Redis))
    pairs = [("a", "白色书架", "white bookcase")]
    res = zh_en.run("unused", None, pairs, redis_url="redis://x", search=lambda t: events.append(t), log=lambda m: None)
    # warm-ups; cold: flush before each timed request; emb-hit: a filling pre-pass, then the timed pair
    assert events[2:] == ["flush", "白色书架", "flush", "white bookcase",
                          "白色书架", "white bookcase", "白色书架", "white bookcase"]
    assert [r["pass"] for r in res.data["rows"]] == ["cold"] * 3 + ["emb-hit"] * 3
