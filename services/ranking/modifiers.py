"""Reads the text of a composed query ("this one, but in green", "换成绿色的") as modifiers.

The photo (or a named product) gives the identity; the text gives the change. Parsing is
deliberately catalog-driven rather than a fixed word list, so it carries over to other
catalogs and product lines:

1. Chinese is translated through the reviewed glossary (``analyze_query``): 换成绿色的 -> green.
2. Filler that says "change it" ("but", "in", "the same", "make it", "换成", "的") is dropped.
3. Size comparatives ("smaller", "larger", "更小", "大一点") become a size direction.
4. "without X" / "no X" / "不带X" / "无X" become negative terms (demote products whose
   title/category/attributes mention X).
5. What is left is the *attribute phrase*. It is matched against each candidate's attribute
   values (every key the catalog has: colour, material, ...) by token overlap, so
   "dark grey" prefers "dark grey" over "grey" and "black-brown" does not match "black".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.ranking.index.schema import attr_match_values

_FILLER = {
    "but", "in", "the", "same", "this", "that", "one", "it", "make", "made", "with", "a", "an", "please",
    "instead", "version", "variant", "colour", "color", "coloured", "colored", "want", "i", "like", "of",
    "please", "same", "just", "model", "product", "option", "available", "do", "you", "have", "as", "well",
}
# Chinese "change it to": stripped before translation so only the modifier reaches the glossary.
_ZH_FILLER = ("换成", "改成", "换一个", "换个", "要", "我想要", "有没有", "一样的", "同款", "这个", "这款", "但是", "颜色", "色的", "的")
_SMALLER = re.compile(r"\b(smaller|small|narrower|shorter|lower|compact|less wide)\b|更小|小一点|小一些|小号|小的")
_LARGER = re.compile(r"\b(larger|bigger|big|large|wider|longer|taller|higher)\b|更大|大一点|大一些|大号|大的")
_WITHOUT_EN = re.compile(r"\b(?:without|no|minus|w/o)\s+(?:the\s+|any\s+)?([a-z][a-z\- ]*?)(?=$|[,.;]| and | but )")
_WITHOUT_ZH = re.compile(r"(?:不带|没有|无|不要|去掉)([\u4e00-\u9fff]{1,4}?)(?:的|$)")
PART_FACTOR = 0.9
_TOKEN = re.compile(r"[a-z0-9][a-z0-9\-]*")


@dataclass
class Modifiers:
    """What the text asks to change."""

    phrase: str = ""  # attribute phrase, lower case English ("dark grey")
    size: int = 0  # -1 smaller, +1 larger, 0 not asked
    without: list[str] = field(default_factory=list)  # English terms the product must not have
    translated_from: str = ""  # the original text when it was translated

    def without_identity(self, payload: dict) -> "Modifiers":
        """Drops phrase words naming the reference itself ("this *sofa*, but in green" -> green)."""
        ident = set(tokens(f"{payload.get('title', '')} {payload.get('category', '')}"))
        kept = [t for t in tokens(self.phrase) if t not in ident and t.rstrip("s") not in ident]
        return Modifiers(" ".join(kept), self.size, list(self.without), self.translated_from)

    def is_empty(self) -> bool:
        return not (self.phrase or self.size or self.without)

    def describe(self) -> str:
        parts = []
        if self.translated_from:
            parts.append(f"text {self.translated_from!r} translated")
        if self.phrase:
            parts.append(f"attribute ≈ {self.phrase!r}")
        if self.size:
            parts.append("size " + ("smaller" if self.size < 0 else "larger") + " than the reference")
        if self.without:
            parts.append("without " + ", ".join(self.without))
        return "; ".join(parts) if parts else "no modifier understood"


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _translate(zh: str) -> str:
    from services.ranking.language import analyze_query

    return analyze_query(zh, catalog_language="en").dense_text


def parse_modifiers(text: str) -> Modifiers:
    """Modifiers of a composed query's text (English or Chinese)."""
    mods = Modifiers()
    raw = text.strip()
    if not raw:
        return mods
    has_han = any("\u4e00" <= c <= "\u9fff" for c in raw)
    if has_han:
        work = raw
        if _SMALLER.search(work):
            mods.size = -1
        elif _LARGER.search(work):
            mods.size = 1
        for m in _WITHOUT_ZH.finditer(work):
            mods.without.extend(tokens(_translate(m.group(1))))
        work = _WITHOUT_ZH.sub(" ", work)
        work = _SMALLER.sub(" ", _LARGER.sub(" ", work))
        for f in _ZH_FILLER:
            work = work.replace(f, " ")
        english = _translate(work) if work.strip() else ""
        mods.translated_from = raw
        low = english.lower()
    else:
        low = raw.lower()
        for m in _WITHOUT_EN.finditer(low):
            mods.without.extend(t for t in tokens(m.group(1)) if t not in _FILLER)
        low = _WITHOUT_EN.sub(" ", low)
        if _SMALLER.search(low):
            mods.size = -1
        elif _LARGER.search(low):
            mods.size = 1
        low = _SMALLER.sub(" ", _LARGER.sub(" ", low))
    kept = [t for t in tokens(low) if t not in _FILLER]
    mods.phrase = " ".join(kept)
    return mods


def phrase_match(phrase: str, attributes: dict[str, str]) -> float:
    """Best token-overlap (Jaccard) of ``phrase`` with any attribute value or value part, 0..1.

    The whole value and its comma/slash parts both count ("white, pine" matches "white"
    at ``PART_FACTOR``), the same rule the attribute filter uses.
    """
    q = set(tokens(phrase))
    if not q:
        return 0.0
    best = 0.0
    for value in attributes.values():
        for i, v in enumerate(attr_match_values(str(value))):
            vt = set(tokens(v))
            if vt:
                # A part ("white" of "white, pine") is a slightly weaker match than a whole value.
                best = max(best, len(q & vt) / len(q | vt) * (1.0 if i == 0 else PART_FACTOR))
    return best


_DIMS = re.compile(r"\d+(?:[.,]\d+)?")


def size_measure(attributes: dict[str, str]) -> float | None:
    """A comparable size: the product of the numbers of the first size-like attribute."""
    for key, value in attributes.items():
        if "size" in key.lower() or "dimension" in key.lower():
            nums = [float(n.replace(",", ".")) for n in _DIMS.findall(str(value).split(",")[0])]
            if nums:
                out = 1.0
                for n in nums[:3]:
                    out *= max(n, 1e-6)
                return out
    return None


def mentions(terms: list[str], payload: dict) -> bool:
    """True when the product's title, category or attributes mention any of ``terms``."""
    text = " ".join([payload.get("title", ""), payload.get("category", ""), *map(str, (payload.get("attributes") or {}).values())])
    have = tokens(text)
    # Stem-prefix match: "arms" -> "arm" also finds "armrests" and "armchair".
    stems = [t.rstrip("s") for t in terms if len(t.rstrip("s")) >= 3]
    return any(h.startswith(s) for s in stems for h in have)
