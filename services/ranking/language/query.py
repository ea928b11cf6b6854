"""Query analysis (search time) and document enrichment (index time).

The ranking service calls :func:`analyze_query` once per request and uses

- ``QueryAnalysis.dense_text`` for the text embedding: the English translation of a Chinese
  query on an English catalog (the 4-bit e5 does not bridge the languages by itself), the
  query itself otherwise;
- ``QueryAnalysis.sparse_vector()`` for BM25: original terms + translated terms at weight 1,
  glossary synonyms at 0.5. Keeping the original Chinese terms lets a Chinese query also match
  Chinese text in the index (Chinese catalogs, or English ones enriched by
  :func:`enrich_document`);
- ``QueryAnalysis.explanation`` in explain output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from .detect import detect_language
from .normalize import fold
from .sparse import SparseVector, bm25_query_vector, term_index
from .tokens import tokenize
from .translate import Translation, en_matches, pick_senses, translate_en_to_zh, translate_zh_to_en, zh_synonyms, zh_units

__all__ = ["QueryAnalysis", "analyze_query", "english_text", "enrich_document", "CATALOG_LANGUAGES"]

#: ``"mixed"``: the catalog holds both languages (translations go to English, plus expansions).
CATALOG_LANGUAGES = ("en", "zh", "mixed")
EXPANSION_WEIGHT = 0.5  # measured on data/queries/ikea-zh.jsonl: 0.5 > 0.3 > 0.2 > 0 (nDCG 0.941 → 0.930)
CONTEXT_WEIGHT = 0.2  # rooms/styles of a translated query; 0.2 ≈ 0 > 0.5 on the same set


@dataclass(frozen=True)
class QueryAnalysis:
    original: str
    normalized: str
    language: str  # detect_language(original)
    translated: str | None  # text in the catalog's language, None when no translation applies
    expansions: list[str] = field(default_factory=list)  # extra BM25 phrases (synonyms, other language)
    explanation: str = ""
    # BM25 detail (not part of the public constructor contract): the translation without
    # context words, and the context words (rooms/styles), which get the expansion weight.
    bm25_core: str | None = field(default=None, repr=False, compare=False)
    bm25_context: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def dense_text(self) -> str:
        """Text to embed: the translation when there is one (case kept for the cased encoder)."""
        return self.translated if self.translated else fold(self.original)

    def sparse_vector(self, expansion_weight: float = EXPANSION_WEIGHT,
                      context_weight: float = CONTEXT_WEIGHT) -> SparseVector:
        """BM25 query vector: original + translated terms at 1.0, expansions at
        ``expansion_weight``, context words of a translation (rooms, styles) at ``context_weight``."""
        if not self.translated:
            return bm25_query_vector(self.normalized, self.expansions, expansion_weight)
        core = self.translated if self.bm25_core is None else self.bm25_core
        vec = bm25_query_vector(f"{self.normalized} {core}", self.expansions, expansion_weight)
        if not self.bm25_context or context_weight <= 0:
            return vec
        weights = vec.as_dict()
        for term in tokenize(" ".join(self.bm25_context)):
            weights.setdefault(term_index(term), context_weight)
        idx = sorted(weights)
        return SparseVector(idx, [weights[i] for i in idx])


def _explain_zh(tr: Translation) -> str:
    parts = []
    for u in tr.units:
        if u.kind == "latin":
            parts.append(f"{u.src} (kept)")
        elif u.kind == "unknown":
            parts.append(f"{u.src} (untranslated)")
        elif u.kind == "number":
            parts.append(u.src)
        elif u.out is not None and u.kind not in ("sep", "with", "for", "and", "or", "de", "stop"):
            parts.append(f"{u.src}→{u.out}")
    return " · ".join(parts)


def _explain_en(tr: Translation) -> str:
    parts = []
    for u in tr.units:
        parts.append(f"{u.src}→{u.out}" if u.kind == "product" else f"{u.src} (kept)")
    return " · ".join(parts)


def english_text(text: str) -> str:
    """The text in English words: Chinese (or mixed) text through the reviewed glossary
    (深蓝色玻璃 -> dark blue glass), English as it is. For the readers of English word tables
    (colour, material and modifier words) on queries in either language."""
    if any("\u4e00" <= c <= "\u9fff" for c in text):
        return analyze_query(text, catalog_language="en").dense_text
    return text


def analyze_query(text: str, catalog_language: str = "en") -> QueryAnalysis:
    """Normalise, detect the language and translate a query for a catalog in ``catalog_language``.

    ``"白色 KALLAX 书架"`` on an English catalog → translated ``"white KALLAX bookcase"``,
    expansions ``["shelving unit", "shelf unit", "shelf"]``. English on a Chinese catalog goes
    the other way. Same-language queries get no translation. Results are cached (pure
    function); each call gets its own ``expansions`` list.
    """
    original, normalized, lang, translated, expansions, explanation, core, context = _analyze(text, catalog_language)
    return QueryAnalysis(original, normalized, lang, translated, list(expansions), explanation, core, context)


@lru_cache(maxsize=16384)
def _analyze(text: str, catalog_language: str) -> tuple:
    if catalog_language not in CATALOG_LANGUAGES:
        raise ValueError(f"catalog_language must be one of {CATALOG_LANGUAGES}")
    folded = fold(text)
    normalized = folded.lower()
    lang = detect_language(text)
    translated: str | None = None
    expansions: list[str] = []
    core: str | None = None
    context: tuple[str, ...] = ()
    explanation = f"lang={lang}"
    if lang in ("zh", "mixed") and catalog_language in ("en", "mixed"):
        tr = translate_zh_to_en(folded)
        if tr.text and tr.text != folded:
            translated, expansions, core, context = tr.text, tr.expansions, tr.core, tr.context
            explanation += f"; zh→en: {_explain_zh(tr)}"
        elif tr.untranslated:
            explanation += f"; zh→en: nothing in the glossary ({', '.join(tr.untranslated)} untranslated)"
    elif lang in ("en", "mixed") and catalog_language == "zh":
        tr = translate_en_to_zh(folded)
        if tr.text and tr.text != folded:
            translated, expansions = tr.text, tr.expansions
            explanation += f"; en→zh: {_explain_en(tr)}"
    elif lang == "zh" and catalog_language == "zh":
        expansions = zh_synonyms(folded)
        if expansions:
            explanation += "; zh synonyms"
    elif lang == "en" and catalog_language == "mixed":
        tr = translate_en_to_zh(folded)
        expansions = [p for p in [tr.text, *tr.expansions] if p and p != folded]
        if expansions:
            explanation += f"; +zh: {_explain_en(tr)}"
    if expansions:
        explanation += f"; expansions: {', '.join(expansions)}"
    return text, normalized, lang, translated, tuple(expansions), explanation, core, context


@lru_cache(maxsize=4096)
def _zh_terms_for_en(folded: str) -> list[str]:
    terms: list[str] = []
    for _, zh, _ in pick_senses(en_matches(folded)):
        for z in zh or ():
            if z not in terms:
                terms.append(z)
    return terms


def enrich_document(text: str, target_languages: tuple[str, ...] = ("zh",)) -> str:
    """Index-time enrichment of a product's BM25 text with glossary terms of other languages.

    English text + ``"zh"`` → the Chinese terms (all synonyms) of every glossary phrase found
    (``"KALLAX Shelving unit, white"`` gets ``置物架 储物架 ... 白色 白 ...``). Chinese text +
    ``"en"`` → English renderings. Each added term appears once, so it cannot dominate the TF of
    the original words. Use the enriched text for BM25 only (not for the dense embedding), and
    compute ``avg_doc_len`` over enriched texts.
    """
    folded = fold(text)
    if not folded:
        return text
    added: list[str] = []
    if "zh" in target_languages and any(c.isascii() and c.isalpha() for c in folded):
        added.extend(_zh_terms_for_en(folded))
    if "en" in target_languages and detect_language(folded) in ("zh", "mixed"):
        for u in zh_units(folded):
            if u.kind not in ("latin", "number", "sep", "unknown", "stop", "de", "with", "for", "and", "or") and u.out:
                if u.out not in added:
                    added.append(u.out)
    return f"{text} {' '.join(added)}" if added else text
