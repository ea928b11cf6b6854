"""Script-based language detection for short shopper queries.

Statistical detectors are unreliable on 1-3 character queries ("床", "灯", "tv"), and this
system only has to choose between its two pipelines, so we classify by script instead:

- ``"zh"``: Han characters, optionally with Latin *codes* only - ALL-CAPS names of at least two
  letters (``KALLAX``, ``LED``), tokens with digits (``90x200``, ``A++``) and units (``cm``).
  ``"白色 KALLAX 书架"`` is Chinese: the brand name is language-neutral.
- ``"en"``: Latin letters and no Han. Any Latin-script language lands here; the catalogs we
  serve are English or Chinese, and English processing is harmless for e.g. Swedish names.
- ``"mixed"``: Han plus ordinary Latin words (``"grey 沙发 with wooden legs"``, ``"kallax 书架"``
  typed in lower case). Treated like ``"zh"`` for translation; the Latin words are kept.
- ``"other"``: nothing to classify (empty, digits or punctuation only, emoji) or another
  script: kana (Japanese), Hangul, Cyrillic, Arabic, ... Callers search without translation.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["detect_language", "LANGUAGES", "is_han"]

LANGUAGES = ("zh", "en", "mixed", "other")

_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f][A-Za-z0-9\u00c0-\u024f'+\-]*|\d+[A-Za-z][A-Za-z0-9]*")
_UNITS = frozenset({"cm", "mm", "m", "kg", "g", "l", "dl", "ml", "w", "x"})


def is_han(c: str) -> bool:
    """True for CJK unified ideographs (incl. extension A and compatibility ideographs)."""
    o = ord(c)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F


def _is_code(word: str) -> bool:
    """Brand names, model codes and units do not make a Chinese query 'mixed'."""
    if any(c.isdigit() for c in word):
        return True
    if word.lower() in _UNITS:
        return True
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


def detect_language(text: str) -> str:
    """Return ``"zh"``, ``"en"``, ``"mixed"`` or ``"other"`` (see module docstring).

    Works on raw input (full-width Latin is folded first), costs a few µs.
    """
    if not text:
        return "other"
    text = unicodedata.normalize("NFKC", text)
    han = latin = foreign = 0
    for c in text:
        if is_han(c):
            han += 1
        elif c.isalpha():
            o = ord(c)
            if o < 0x250 or 0x1E00 <= o <= 0x1EFF:  # Latin incl. accented letters
                latin += 1
            elif 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF:  # kana → Japanese
                return "other"
            else:
                foreign += 1
    if han:
        if foreign > han:
            return "other"
        if latin == 0:
            return "zh"
        words = _LATIN_WORD.findall(text)
        return "zh" if all(_is_code(w) for w in words) else "mixed"
    if latin and latin >= foreign:
        return "en"
    return "other"
