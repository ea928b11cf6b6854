"""A small lexical boost for products whose whole category the query names.

Why: a compound product type puts its head noun last ("desk organiser" is an organiser, "parasol
base" a base, "table lamp" a lamp), and both text signals reward the shared word: for "white desk"
BM25 and the e5 vector rank a white desk organiser beside the desks. A shopper who names a type
wants that type. So a product whose every category word appears in the query ("Desk" for "white
desk", "Rug, low pile" for "black rug, low pile") gains ``weight`` on its fused score; "Desk
organiser" does not (the query never says "organiser"), and a query that names no category changes
nothing.

Matching: the query in the catalog's language (``analyze_query(...).dense_text``: a Chinese query on
an English catalog is matched by its glossary translation, and the other way round). Latin words must
appear as words of the query; a run of Chinese characters (a Chinese category, "衣柜") as a substring,
since Chinese queries are not split into words. Case and punctuation are ignored.

It applies to the fused text ranking (weighted fusion with text and lexical weight > 0: the
default), not to single-signal rankings (``--signals text`` / ``lexical``), which stay the plain
baselines they are reported as, nor to RRF (its scores are ranks). The weight was chosen on the tune
part of the line split (docs/evaluation.md, "Category named by the query").
"""

from __future__ import annotations

import re
from functools import lru_cache

from services.ranking.fusion import FusedHit, add_boost

BOOST = "category_match"
_LATIN = re.compile(r"[0-9a-z]+")
_TERMS = re.compile(r"[0-9a-z]+|[\u3400-\u9fff]+")


@lru_cache(maxsize=8192)
def category_terms(category: str) -> tuple[str, ...]:
    """Lower-case Latin words and runs of Chinese characters of a category ("Floor,reading lamp" ->
    floor, reading, lamp)."""
    return tuple(_TERMS.findall(category.lower()))


def _names(text: str, words: set[str], category: str) -> bool:
    """``names_category`` on a query already lower-cased (``text``) and split into Latin ``words``."""
    terms = category_terms(category)
    return bool(terms) and all((t in words) if t.isascii() else (t in text) for t in terms)


def names_category(query: str, category: str) -> bool:
    """True when every term of ``category`` is in ``query`` (Latin as a word, Chinese as a substring)."""
    text = query.lower()
    return _names(text, set(_LATIN.findall(text)), category)


def apply_category_boost(hits: list[FusedHit], query: str, weight: float) -> list[FusedHit]:
    """``weight`` for each hit whose category the query names (recorded as ``boosts["category_match"]``);
    the query is read once, not once per hit."""
    if weight <= 0 or not query.strip():
        return hits
    text = query.lower()
    words = set(_LATIN.findall(text))
    return add_boost(hits, BOOST, lambda h: float(_names(text, words, str(h.payload.get("category") or ""))), weight)
