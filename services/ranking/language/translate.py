"""Glossary-based query translation zh→en and en→zh.

zh→en works on the jieba segmentation of each Han run: at every position take the longest
glossary term that ends on a jieba boundary (jieba knows the glossary, so its boundaries
resolve ambiguities such as 沙发床垫 = 沙发 + 床垫), else a ``{n}`` template (``3斗柜``,
``三人沙发`` → ``chest of 3 drawers``, ``3-seat sofa``), else the longest term inside the
segment, else the segment is kept untranslated. Latin words (``KALLAX``, ``grey``) and numbers
pass through as typed.

Chinese puts modifiers before the head like English (``灰色布艺沙发`` → ``grey fabric sofa``),
so word order only needs fixing around 的-clauses: ``带抽屉的白色床头柜`` → ``white bedside table
with drawers``, ``适合小户型的沙发`` → ``sofa for small space``. Good enough for BM25 (order-free)
and for the dense encoder, which is robust to small order changes.

en→zh matches stemmed English term sequences (``chests of drawers`` = ``chest drawer``) against
the glossary's English side, longest first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .english import EN_STOPWORDS, english_terms, latin_terms
from .glossary import NUM, Entry, get_glossary
from .normalize import chinese_number_to_int
from .tokens import ZH_STOPWORDS, segment_han

__all__ = ["Unit", "Translation", "translate_zh_to_en", "translate_en_to_zh", "zh_units", "en_matches", "zh_synonyms",
           "pick_senses"]

_SCAN = re.compile(
    r"(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)"
    r"|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<lat>[A-Za-z\u00c0-\u024f][A-Za-z\u00c0-\u024f'\-+]*)"
    r"|(?P<sep>[,.;:!?/()\[\]\"|]+)"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)"
)
# Function words that shape word order. Longest first within each group.
_MARKERS = {
    "带有": "with", "带着": "with", "配有": "with", "附带": "with", "带": "with", "有": "with", "配": "with",
    "适用于": "for", "适合": "for", "用于": "for", "给": "for",
    "的": "de",
    "和": "and", "与": "and", "及": "and", "跟": "and", "或": "or", "或者": "or",
}
_MAX_MARKER = max(len(k) for k in _MARKERS)
_MAX_STOP = max(len(k) for k in ZH_STOPWORDS)
_CN_NUMERALS = "零〇一二两三四五六七八九十百千"


@dataclass(frozen=True)
class Unit:
    """One piece of a query: source text and its rendering in the target language."""

    src: str
    out: str | None  # None: untranslated
    kind: str  # glossary kind, or latin/number/with/for/and/or/de/stop/sep/unknown
    alts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Translation:
    text: str
    expansions: list[str] = field(default_factory=list)
    units: tuple[Unit, ...] = ()
    core: str = ""  # text without context words (rooms, styles): what BM25 weighs fully
    context: tuple[str, ...] = ()  # room/style renderings: rarely in product text, weighed down

    @property
    def untranslated(self) -> list[str]:
        return [u.src for u in self.units if u.kind == "unknown"]


_CONTENT_KINDS = frozenset({"product", "colour", "material", "style", "room", "part", "attribute", "pattern", "unit"})


def _entry_unit(src: str, e: Entry, n: str | None = None) -> Unit:
    out = e.en if n is None else e.en.replace(NUM, n)
    alts = tuple(a.replace(NUM, n) if n is not None else a for a in e.alts)
    return Unit(src, out, e.kind, alts)


def _han_units(run: str) -> list[Unit]:
    """Translate one run of Han characters into units (see module docstring)."""
    g = get_glossary()
    segs = segment_han(run)
    bounds = set()
    pos = 0
    for s in segs:
        pos += len(s)
        bounds.add(pos)
    units: list[Unit] = []
    i, n = 0, len(run)
    while i < n:
        # 1. longest glossary term ending on a jieba boundary; remember the longest anywhere.
        at_bound: tuple[int, Entry] | None = None
        anywhere: tuple[int, Entry] | None = None
        for L in range(min(g.max_zh_len, n - i), 0, -1):
            e = g.zh.get(run[i:i + L])
            if e is None:
                continue
            # Inside a jieba word only multi-character terms (or colours: 黑白, 红白) count,
            # so 皮带 (belt) does not become 皮 (leather) + 带 (with).
            if anywhere is None and (L >= 2 or e.kind == "colour"):
                anywhere = (L, e)
            if i + L in bounds:
                at_bound = (L, e)
                break
        # 2. numeral + template (三斗柜, 十二件套).
        tmpl: tuple[int, Unit] | None = None
        j = i
        while j < n and run[j] in _CN_NUMERALS:
            j += 1
        if j > i:
            value = chinese_number_to_int(run[i:j])
            if value is not None:
                for L in range(min(g.max_template_len, n - j), 0, -1):
                    e = g.templates.get(run[j:j + L])
                    if e is not None:
                        tmpl = (j - i + L, _entry_unit(run[i:j + L], e, str(value)))
                        break
        unit: Unit | None = None
        if tmpl and (at_bound is None or tmpl[0] > at_bound[0]):
            L, unit = tmpl
        elif at_bound:
            L, e = at_bound
            unit = _entry_unit(run[i:i + L], e)
        else:
            # 3. function words and stopwords (must end on a boundary: 带 in 皮带 is not "with").
            starts_word = i == 0 or i in bounds
            for L in range(min(max(_MAX_MARKER, _MAX_STOP), n - i), 0, -1):
                w = run[i:i + L]
                if starts_word and i + L in bounds and (w in _MARKERS or w in ZH_STOPWORDS):
                    unit = Unit(w, None, _MARKERS.get(w, "stop"))
                    break
            if unit is None and anywhere:
                L, e = anywhere
                unit = _entry_unit(run[i:i + L], e)
            if unit is None:
                # 4. unknown: up to the next boundary or the next multi-character glossary term.
                j = i + 1
                while j < n and j not in bounds and not any(
                    run[j:j + L] in g.zh for L in range(2, min(g.max_zh_len, n - j) + 1)
                ):
                    j += 1
                L, unit = j - i, Unit(run[i:j], None, "unknown")
        # 颜色/材质 + 色: 胡桃木色 = walnut (colour), consume the 色.
        if unit.kind in ("colour", "material") and not unit.src.endswith("色") and run[i + L:i + L + 1] == "色":
            unit = Unit(unit.src + "色", unit.out, unit.kind, unit.alts)
            L += 1
        units.append(unit)
        i += L
    return units


def zh_units(folded: str) -> list[Unit]:
    """Split folded text into units; Han runs translated, Latin words and numbers kept."""
    g = get_glossary()
    units: list[Unit] = []
    for m in _SCAN.finditer(folded):
        kind, s = m.lastgroup, m.group()
        if kind == "han":
            # A number right before a Han run may fill a template: 3人沙发, 2门衣柜.
            if units and units[-1].kind == "number" and m.start() > 0 and folded[m.start() - 1].isdigit():
                num = units[-1].src
                for L in range(min(g.max_template_len, len(s)), 0, -1):
                    e = g.templates.get(s[:L])
                    if e is not None:
                        units[-1] = _entry_unit(num + s[:L], e, num)
                        s = s[L:]
                        break
            if s:
                units.extend(_han_units(s))
        elif kind == "num":
            units.append(Unit(s, s, "number"))
        elif kind == "lat":
            units.append(Unit(s, s, "latin"))
        elif kind == "sep":
            units.append(Unit(s, None, "sep"))
        # whitespace and other symbols (emoji) carry nothing
    return units


def _reorder(clause: list[Unit]) -> list[Unit]:
    """``[带/适合] X 的 Y`` → ``Y with/for X``; other 的 dropped."""
    for _ in range(3):
        a = next((k for k, u in enumerate(clause) if u.kind in ("with", "for") or _is_with_phrase(u)), None)
        if a is None:
            break
        d = next((k for k in range(a + 1, len(clause)) if clause[k].kind == "de"), None)
        if d is None or not any(u.out for u in clause[d + 1:]):
            break
        if clause[a].kind in ("with", "for"):
            marker = Unit(clause[a].src, clause[a].kind, "marker")
            clause = clause[:a] + clause[d + 1:] + [marker] + clause[a + 1:d]
        else:  # glossary phrase that already says "with ...": 带抽屉的 X → X with drawers
            clause = clause[:a] + clause[d + 1:] + clause[a:d]
    return clause


def _is_with_phrase(u: Unit) -> bool:
    return u.kind == "attribute" and u.out is not None and u.out.startswith(("with ", "on "))


def _render(units: list[Unit]) -> str:
    """Join target-language words; markers only between content, no duplicates in a row."""
    words: list[str] = []
    clauses: list[list[Unit]] = [[]]
    for u in units:
        if u.kind == "sep":
            clauses.append([])
        else:
            clauses[-1].append(u)
    for clause in clauses:
        clause = _reorder(clause)
        out: list[str] = []
        for k, u in enumerate(clause):
            if u.kind in ("de", "stop"):
                continue
            if u.kind in ("with", "for", "and", "or", "marker"):
                word = u.out if u.kind == "marker" else (u.kind if u.kind != "with" or k + 1 < len(clause) else None)
                if word and out and any(v.out or v.kind == "unknown" for v in clause[k + 1:]):
                    out.append(word)
                continue
            w = u.out if u.out is not None else u.src
            if not out or out[-1] != w:
                out.append(w)
        if out and out[-1] in ("with", "for", "and", "or"):
            out.pop()
        words.extend(out)
    return " ".join(words)


def _expansions(units: list[Unit], text: str) -> list[str]:
    have = set(text.lower().split())
    seen: list[str] = []
    for u in units:
        for a in u.alts:
            if a.lower() not in have and a not in seen and not set(a.lower().split()) <= have:
                seen.append(a)
    return seen


def translate_zh_to_en(folded: str) -> Translation:
    """Chinese (or mixed) text → English text plus BM25 expansion phrases."""
    units = zh_units(folded)
    text = _render(units)
    core = _render([u for u in units if u.kind not in _CONTEXT_KINDS])
    context = tuple(w for u in units if u.kind in _CONTEXT_KINDS and u.out for w in (u.out, *u.alts))
    expansions = _expansions([u for u in units if u.kind not in _CONTEXT_KINDS], text)
    return Translation(text, expansions, tuple(units), core, context)


# Rooms and styles describe where/how a product is used; product text seldom says so, and a
# full-weight "living room" pulls in whatever description happens to mention it.
_CONTEXT_KINDS = frozenset({"room", "style"})


def zh_synonyms(folded: str, per_term: int = 4) -> list[str]:
    """Chinese synonyms of the glossary terms in Chinese text (边几 → 边桌 角几 ...).

    Synonyms are the other Chinese terms with the same English rendering; used to expand a
    Chinese query on a Chinese catalog, where shop and shopper often use different words.
    """
    g = get_glossary()
    out: list[str] = []
    for u in zh_units(folded):
        if u.kind not in _CONTENT_KINDS or not u.out:
            continue
        key = tuple(english_terms(u.out))
        same_kind = [z for z in g.en.get(key, []) if g.zh[z].kind == u.kind]
        for z in same_kind[: per_term + 1]:
            if z != u.src and z not in out:
                out.append(z)
    return out


# --- en → zh ----------------------------------------------------------------------------------

def en_matches(folded: str) -> list[tuple[str, list[str] | None, str]]:
    """Longest glossary matches over English terms: (source words, zh terms or None, kind).

    Han runs and unknown words come back with ``None`` so callers can keep them as typed.
    """
    g = get_glossary()
    items: list[tuple[str, str | None]] = []  # (source piece, term or None for kept-as-is)
    for m in _SCAN.finditer(folded):
        kind, s = m.lastgroup, m.group()
        if kind == "lat":
            for part in filter(None, re.split(r"[-+]", s)):
                terms = list(latin_terms(part, variants=False))
                if terms:
                    items.append((part, terms[0]))
                elif part.lower() not in EN_STOPWORDS:
                    items.append((part, None))
        elif kind == "num":
            items.append((s, s))
        elif kind == "han":
            items.append((s, None))
    out: list[tuple[str, list[str] | None, str]] = []
    i = 0
    while i < len(items):
        hit = None
        for L in range(min(g.max_en_len, len(items) - i), 0, -1):
            seq = items[i:i + L]
            if any(t is None for _, t in seq):
                continue
            key = tuple(t for _, t in seq)
            zh = g.en.get(key)
            if zh is None:
                nums = [t for t in key if t[0].isdigit()]
                if len(nums) == 1:
                    zh = g.en_template.get(tuple(NUM if t == nums[0] else t for t in key))
                    if zh is not None:
                        zh = [z.replace(NUM, nums[0]) for z in zh]
            if zh is not None:
                hit = (" ".join(s for s, _ in seq), zh, "glossary")
                i += L
                break
        if hit is None:
            src, term = items[i]
            hit = (src, None, "han" if term is None and re.match(r"[\u3400-\u9fff]", src) else "keep")
            i += 1
        out.append(hit)
    return out


def _kind(zh: str) -> str:
    g = get_glossary()
    e = g.zh.get(zh)
    if e is None:
        e = g.templates.get(zh.lstrip("0123456789."))
    return e.kind if e else "product"


def pick_senses(matches: list[tuple[str, list[str] | None, str]]) -> list[tuple[str, list[str] | None, str]]:
    """Resolve English words with several senses by position ("glass" = 玻璃 before a product
    noun, 玻璃杯 as the head): keep only the Chinese terms of the chosen kind."""
    out = []
    for k, (src, zh, kind) in enumerate(matches):
        if zh and len({_kind(z) for z in zh}) > 1:
            head_follows = any(z2 and any(_kind(z) == "product" for z in z2) for _, z2, _ in matches[k + 1:])
            want_product = not head_follows
            chosen = [z for z in zh if (_kind(z) == "product") == want_product] or zh
            zh = chosen
        out.append((src, zh, kind))
    return out


def translate_en_to_zh(folded: str) -> Translation:
    """English (or mixed) text → Chinese text; synonyms become expansions."""
    parts: list[str] = []
    expansions: list[str] = []
    units: list[Unit] = []
    for src, zh, kind in pick_senses(en_matches(folded)):
        if zh:
            parts.append(zh[0])
            expansions.extend(z for z in zh[1:] if z not in expansions)
            units.append(Unit(src, zh[0], "product", tuple(zh[1:])))
        else:
            parts.append(src)
            units.append(Unit(src, src, "latin" if kind == "keep" else "han"))
    return Translation(" ".join(parts), expansions, tuple(units))
