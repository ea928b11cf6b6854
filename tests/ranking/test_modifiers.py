"""How composed-query text is read (pure parsing; the journey itself is tested through the service)."""

from __future__ import annotations

import pytest

from services.ranking.modifiers import mentions, parse_modifiers, phrase_match, size_measure


@pytest.mark.parametrize(
    "text,phrase,size,without",
    [
        ("white", "white", 0, []),
        ("but in dark grey", "dark grey", 0, []),
        ("same one in black-brown", "black-brown", 0, []),
        ("换成绿色的", "green", 0, []),
        ("白色", "white", 0, []),
        ("smaller", "", -1, []),
        ("a bigger one", "", 1, []),
        ("换成小一点的", "", -1, []),
        ("without arms", "", 0, ["arms"]),
        ("不带扶手的", "", 0, ["armrests"]),
        ("in green, without arms", "green", 0, ["arms"]),
    ],
)
def test_parse_modifiers(text, phrase, size, without):
    m = parse_modifiers(text)
    assert (m.phrase, m.size, m.without) == (phrase, size, without)
    assert m.describe()


def test_identity_words_are_not_modifiers():
    m = parse_modifiers("this sofa, but in green").without_identity({"title": "KLIPPAN Two-seat sofa", "category": "Sofa"})
    assert m.phrase == "green"


def test_phrase_match_prefers_the_exact_value():
    assert phrase_match("dark grey", {"color": "dark grey"}) == 1.0
    assert phrase_match("dark grey", {"color": "grey"}) < phrase_match("dark grey", {"color": "dark grey"})
    assert phrase_match("black-brown", {"color": "black"}) == 0.0
    assert phrase_match("white", {"color": "white"}) > phrase_match("white", {"color": "white, pine"}) > 0.8


def test_size_and_mentions():
    assert size_measure({"size": "90x55 cm"}) > size_measure({"size": "55x55 cm"})
    assert size_measure({"color": "white"}) is None
    assert mentions(["arms"], {"title": "EKTORP Armchair", "category": "Armchair"})
    assert not mentions(["arms"], {"title": "ADDE Chair", "category": "Chair"})
