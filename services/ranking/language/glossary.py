"""The reviewed zh↔en home-furnishing glossary (``data/glossary.tsv``) and its lookup tables.

Why a hand-made glossary and not machine translation: no MT model can be installed from the
registries, and the 4-bit multilingual e5 does not bridge short Chinese queries to English
product text (R@10 0.12). Furnishing vocabulary is small and closed (product types, colours,
materials, rooms, parts), so a reviewed table gives exact, explainable, microsecond
translations in both directions.

File format (TSV, UTF-8, ``#`` lines are comments, first data line is the header
``zh en kind alt``):

- ``zh``: simplified Chinese term, already in :func:`normalize` form. ``{n}`` marks a number
  slot (``{n}斗柜`` matches ``3斗柜`` and ``三斗柜``).
- ``en``: the preferred English rendering, in the catalog's vocabulary (British spelling).
- ``kind``: product, colour, material, style, room, part, attribute, pattern, unit.
- ``alt``: ``|``-separated extra English terms, used only as weighted BM25 expansions.

For en→zh, the first row whose ``en`` equals an English phrase gives the preferred Chinese
term; further rows with the same ``en`` are synonyms used for expansion and enrichment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from .english import english_terms

__all__ = ["Entry", "Glossary", "get_glossary", "GLOSSARY_PATH", "NUM"]

GLOSSARY_PATH = Path(__file__).with_name("data") / "glossary.tsv"
NUM = "{n}"
_SLOT = "qqnumslotqq"  # stands in for {n} while the English side is tokenised
KINDS = frozenset({"product", "colour", "material", "style", "room", "part", "attribute", "pattern", "unit"})


@dataclass(frozen=True)
class Entry:
    zh: str
    en: str
    kind: str
    alts: tuple[str, ...] = ()

    @property
    def is_template(self) -> bool:
        return NUM in self.zh


class Glossary:
    """Immutable lookup tables built once from the TSV rows."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries
        self.zh: dict[str, Entry] = {}
        self.templates: dict[str, Entry] = {}  # suffix after {n} → entry
        for e in entries:
            if e.is_template:
                if not e.zh.startswith(NUM):
                    raise ValueError(f"glossary template must start with {NUM}: {e.zh}")
                self.templates[e.zh[len(NUM):]] = e
            else:
                self.zh[e.zh] = e
        self.max_zh_len = max(len(k) for k in self.zh)
        self.max_template_len = max((len(k) for k in self.templates), default=0)
        # en phrase (as stemmed BM25 terms, stopwords removed) → Chinese terms, preferred first.
        self.en: dict[tuple[str, ...], list[str]] = {}
        self.en_template: dict[tuple[str, ...], list[str]] = {}
        for e in entries:
            terms = english_terms(e.en.replace(NUM, f" {_SLOT} "))
            key = tuple(NUM if t == _SLOT else t for t in terms)
            # A bare number or "number + unit" says nothing about furnishing: not reversible
            # (otherwise every "57" in a product text would gain 57个, 57只 ...).
            if not key or set(key) == {NUM} or (NUM in key and e.kind == "unit"):
                continue
            table = self.en_template if NUM in key else self.en
            table.setdefault(key, [])
            if e.zh not in table[key]:
                table[key].append(e.zh)
        self.max_en_len = max(len(k) for k in list(self.en) + list(self.en_template))

    def jieba_words(self) -> list[str]:
        """Terms to add to jieba's dictionary so furnishing compounds segment as one word."""
        # Template suffixes (人沙发, 斗柜 ...) are not added: numbers are matched by the translator.
        return [k for k in self.zh if len(k) >= 2]


def load_entries(path: Path = GLOSSARY_PATH) -> list[Entry]:
    """Parse the TSV. Raises ValueError on malformed rows so a bad edit fails loudly."""
    entries: list[Entry] = []
    header_seen = False
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("# "):
                continue
            cols = line.split("\t")
            if not header_seen:
                if cols[:4] != ["zh", "en", "kind", "alt"]:
                    raise ValueError(f"{path}:{lineno}: expected header 'zh en kind alt'")
                header_seen = True
                continue
            if len(cols) != 4:
                raise ValueError(f"{path}:{lineno}: expected 4 tab-separated columns, got {len(cols)}")
            zh, en, kind, alt = (c.strip() for c in cols)
            if not zh or not en:
                raise ValueError(f"{path}:{lineno}: empty zh or en")
            if kind not in KINDS:
                raise ValueError(f"{path}:{lineno}: unknown kind {kind!r}")
            alts = tuple(a.strip() for a in alt.split("|") if a.strip())
            entries.append(Entry(zh, en, kind, alts))
    return entries


_lock = threading.Lock()
_glossary: Glossary | None = None


def get_glossary() -> Glossary:
    """The process-wide glossary, loaded on first use (thread-safe, ~10 ms)."""
    global _glossary
    if _glossary is None:
        with _lock:
            if _glossary is None:
                _glossary = Glossary(load_entries())
    return _glossary
