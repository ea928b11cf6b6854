"""The English side of term analysis: stop words, British spelling, light stemming, and the
script splitter (``PIECES``) shared with the mixed-script tokenizer in ``tokens``.

Why its own module: the glossary keys its English side with these terms, and ``tokens`` seeds
jieba from the glossary; keeping the English rules here lets both import them without a cycle.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterator

from .normalize import fold

__all__ = ["english_terms", "latin_terms", "stem", "EN_STOPWORDS", "PIECES"]

EN_STOPWORDS = frozenset(
    """a an the and or of to in on at by for with w from into onto as is are be been it its
    this that these those you your yours our we i me my so if than then when which who what
    can may will also not no s t x about up out over under more most very just""".split()
)
# US → British (catalog) spelling for common furnishing words.
_SPELLING = {
    "gray": "grey", "color": "colour", "colors": "colours", "colored": "coloured", "aluminum": "aluminium",
    "organizer": "organiser", "organizers": "organisers", "fiber": "fibre", "fibers": "fibres",
    "center": "centre", "jewelry": "jewellery", "rumpus": "playroom", "cozy": "cosy", "mold": "mould",
}

PIECES = re.compile(
    r"(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)"
    r"|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<lat>[A-Za-z\u00c0-\u024f]+(?:'[A-Za-z]+)?)"
    r"|(?P<other>[^\W\d_A-Za-z\u00c0-\u024f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)"
)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Light English normalisation: spelling map + plural stripping (lower-case input)."""
    word = _SPELLING.get(word, word)
    n = len(word)
    if n <= 3 or not word.endswith("s"):
        return word
    if word.endswith("ies") and n > 4:
        return word[:-3] + "y"
    if word.endswith("lves"):
        return word[:-3] + "f"  # shelves → shelf
    if word.endswith("ives") and n > 5:
        return word[:-3] + "fe"  # knives → knife
    if word.endswith(("sses", "ches", "shes", "xes", "zzes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is", "ous")):
        return word
    return word[:-1]


def latin_terms(word: str, variants: bool) -> Iterator[str]:
    if "'" in word:
        word = word.split("'", 1)[0]  # children's → children
    low = word.lower()
    if len(word) >= 2 and word.isupper():  # brand / line name as typed: keep exact
        yield low
        if variants:
            s = stem(low)
            if s != low:
                yield s
        return
    if low in EN_STOPWORDS:
        return
    yield stem(low)


def english_terms(text: str) -> list[str]:
    """Terms of English text only (no jieba): used to key the glossary's English side."""
    return [t for m in PIECES.finditer(fold(text)) if m.lastgroup in ("lat", "num")
            for t in (latin_terms(m.group(), False) if m.lastgroup == "lat" else [m.group()])]
