from homesearch.evaluation.split import make_split, product_line


def _catalog():
    cats = ["Bed", "Chair", "Table", "Lamp"]
    return [
        {"id": f"{line}-{i}", "title": f"{line} {cats[i % 4]}", "category": cats[i % 4],
         "attributes": {"color": "white"}}
        for line in ["KURA", "MALM", "HEMNES", "BILLY", "EKET", "LACK", "POANG", "IVAR", "ALEX", "KALLAX"]
        for i in range(3)
    ]


def test_product_line():
    assert product_line("KURA Reversible bed") == "KURA"
    assert product_line("Rug, braided") == "Rug"  # no upper-case word: first word
    assert product_line("IKEA PS 2014 Lamp") == "IKEA"


def test_split_is_deterministic_and_by_line():
    cat = _catalog()
    q = [{"id": "q1", "text": "white bed", "relevant": [p["id"] for p in cat if p["category"] == "Bed"]}]
    a, b = make_split(cat, q, seed=3, heldout_fraction=0.4), make_split(cat, q, seed=3, heldout_fraction=0.4)
    assert a.to_json() == b.to_json()
    by_line = {}
    for pid, part in a.product_part.items():
        by_line.setdefault(pid.split("-")[0], set()).add(part)
    assert all(len(parts) == 1 for parts in by_line.values())
    held = a.products("dev", "test")
    assert 0 < len(held) < len(cat)
    if a.query_part["q1"] != "train":
        assert set(a.query_relevant["q1"]) <= set(held)
    # every held-out product type also exists in train here
    assert all(a.product_seen_type.values())
    assert make_split(cat, q, seed=4, heldout_fraction=0.4).product_part != a.product_part


def test_unseen_type_marked():
    cat = _catalog() + [{"id": "ODD-0", "title": "ODD Hammock", "category": "Hammock"}]
    for seed in range(50):
        s = make_split(cat, [{"id": "q", "text": "hammock", "relevant": ["ODD-0"]}], seed=seed, heldout_fraction=0.5)
        if s.product_part["ODD-0"] != "train":
            assert s.product_seen_type["ODD-0"] is False
            assert s.query_seen_type["q"] is False
            return
    raise AssertionError("ODD never held out")
