"""Colour words (English catalog vocabulary and the glossary's colour terms) -> photo palette names.

One table serves both sides of the photo-colour feature: a query's colour ("dark blue", "深蓝色"
after glossary translation) and a catalog ``color`` value ("black-brown", "white stained oak
effect") are read into the same palette names that ``services.ranking.ingest.photo_colour``
estimates from pixels. Materials that have a typical look (pine, stainless steel) map to it;
words with no single look (multicolour, clear glass, transparent, patterned) map to nothing, so
they neither boost nor count in the accuracy study.

Phrases are matched longest first on word boundaries, so "dark grey" is read as dark grey and
not as grey, and "light grey-green" as grey-green.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

# phrase -> palette names (first = the main reading)
COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "white": ("white",), "porcelain white": ("white",), "high-gloss white": ("white",),
    "off-white": ("off-white", "white", "beige"), "cream": ("off-white", "beige"), "ivory": ("off-white", "beige"),
    "beige": ("beige", "off-white", "light brown"), "light beige": ("beige", "off-white"), "dark beige": ("beige", "light brown"),
    "natural": ("light brown", "beige"), "natural colour": ("light brown", "beige"),
    "grey": ("grey",), "gray": ("grey",), "light grey": ("grey", "white"), "medium grey": ("grey",),
    "dark grey": ("dark grey", "grey"), "anthracite": ("dark grey", "black"),
    "black": ("black", "dark grey"),
    "brown": ("brown", "dark brown", "light brown"), "light brown": ("light brown", "brown", "beige"),
    "dark brown": ("dark brown", "brown"), "black-brown": ("dark brown", "black"), "brown-black": ("dark brown", "black"),
    "red-brown": ("brown", "red"), "grey-brown": ("brown", "grey", "dark grey"), "walnut effect": ("brown", "dark brown"),
    "walnut": ("brown", "dark brown"), "oak effect": ("light brown", "beige"), "oak": ("light brown", "beige"),
    "light oak effect": ("light brown", "beige"), "white stained oak effect": ("beige", "off-white", "light brown"),
    "white stain": ("off-white", "beige", "white"), "antique stain": ("brown", "light brown"),
    "pine": ("light brown", "beige"), "birch": ("light brown", "beige"), "beech": ("light brown", "beige"),
    "bamboo": ("light brown", "beige"), "wood": ("light brown", "brown"), "cork": ("light brown", "brown"),
    "rattan": ("light brown", "brown"), "seagrass": ("light brown", "beige"), "terracotta": ("orange", "brown", "red"),
    "red": ("red",), "bright red": ("red",), "dark red": ("red", "dark brown"),
    "pink": ("pink",), "light pink": ("pink", "off-white"), "dark pink": ("pink", "red"), "orchid pink": ("pink", "lilac"),
    "orange": ("orange",), "light orange": ("orange", "beige"),
    "yellow": ("yellow",), "light yellow": ("yellow", "off-white"),
    "green": ("green",), "light green": ("green",), "dark green": ("green", "dark grey"), "grey-green": ("green", "grey"),
    "turquoise": ("turquoise", "blue"), "light turquoise": ("turquoise", "blue"),
    "blue": ("blue", "turquoise"), "light blue": ("blue", "turquoise"), "medium blue": ("blue",),
    "dark blue": ("blue", "dark grey"), "navy": ("blue", "dark grey"),
    "lilac": ("lilac", "pink"), "dark lilac": ("lilac",), "purple": ("lilac",),
    "stainless steel": ("grey",), "stainless steel colour": ("grey",), "silver-colour": ("grey", "white"),
    "chrome-plated": ("grey", "white"), "nickel-plated": ("grey",), "aluminium": ("grey",),
    "gold-colour": ("yellow", "light brown"), "brass-colour": ("yellow", "light brown"), "copper-colour": ("orange", "brown"),
}


def phrase_pattern(phrases) -> re.Pattern:
    """Whole-phrase matcher (longest first, hyphenated words are one word) over lower-case text;
    shared with ``material_words``."""
    alts = sorted(phrases, key=len, reverse=True)
    return re.compile(r"(?<![a-z\-])(" + "|".join(re.escape(a) for a in alts) + r")(?![a-z\-])")


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern:
    return phrase_pattern(COLOUR_WORDS)


def colour_phrases(text: str) -> list[str]:
    """Colour phrases in an English text, longest match first, in order of appearance."""
    return _pattern().findall(text.lower())


def palette_names(text: str) -> list[str]:
    """Main palette names of every colour phrase in ``text`` (de-duplicated, in order)."""
    out: list[str] = []
    for phrase in colour_phrases(text):
        name = COLOUR_WORDS[phrase][0]
        if name not in out:
            out.append(name)
    return out


def accepted_names(text: str) -> dict[str, float]:
    """Palette names a photo may show to match the colours ``text`` names: the main reading of
    each phrase counts fully, its looser readings (``COLOUR_WORDS`` order) at half weight."""
    out: dict[str, float] = {}
    for phrase in colour_phrases(text):
        for i, name in enumerate(COLOUR_WORDS[phrase]):
            out[name] = max(out.get(name, 0.0), 1.0 if i == 0 else 0.5)
    return out


def stated_colours(p: Mapping) -> list[str]:
    """Palette names a product states for itself: the main reading of its ``color`` (or
    ``colour``) attribute, else of its title (a catalog without colour attributes may say "grey
    sofa"); Chinese text through the reviewed glossary. [] when neither names a colour with a
    single look ("multicolour", "clear glass"), so the photo estimate decides."""
    attrs = p.get("attributes") or {}
    for text in (attrs.get("color") or attrs.get("colour") or "", p.get("title") or ""):
        names = _stated_in(str(text))
        if names:
            return list(names)
    return []


@lru_cache(maxsize=16384)
def _stated_in(text: str) -> tuple[str, ...]:
    """``palette_names`` of a product's colour attribute or title, cached: the colour boost reads it
    for every hit of every colour query (~0.15 ms a query uncached), and catalog texts repeat."""
    from services.ranking.language import english_text

    return tuple(palette_names(english_text(text))) if text.strip() else ()
