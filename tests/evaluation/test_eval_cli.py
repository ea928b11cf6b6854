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

    def search(self, text=None, image=None, top_k=10, fusion=None, no_cache=False):
        self.calls.append((text, fusion))
        return _Res(["b", "a"] if text == "white bed" else ["x"])

    def close(self):
        pass


def test_eval_through_a_client(tmp_path, capsys):
    cat = tmp_path / "catalog.jsonl"
    cat.write_text("\n".join(json.dumps({"id": i, "title": f"T {i}"}) for i in "abx") + "\n")
    (tmp_path / "queries.jsonl").write_text(
        json.dumps({"id": "q1", "text": "white bed", "relevant": ["a"]}) + "\n"
        + json.dumps({"id": "q2", "text": "red lamp", "relevant": ["c"]}) + "\n")
    fake = _FakeClient()
    assert main(["--catalog", str(cat), "--signals", "image", "--json"], client_factory=lambda: fake) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["metrics"]["n"] == 2
    assert rep["metrics"]["recall@10"] == 0.5 and rep["metrics"]["mrr@10"] == 0.25
    f = fake.calls[0][1]
    assert (f.image_weight, f.text_weight, f.lexical_weight) == (1.0, 0.0, 0.0)


def test_fusion_default_is_none():
    assert fusion_for(None, "") is None
    assert fusion_for("text,lexical", "rrf").method == "rrf"
