"""Text analysis for Chinese and English product search (issue #8).

Public interface (the ranking service codes against these names):

- :func:`detect_language` → ``"zh" | "en" | "mixed" | "other"``
- :func:`normalize` → canonical text (NFKC, simplified Chinese, numbers/units, lower case)
- :func:`tokenize` → BM25 terms (jieba for Chinese, light stemming for English)
- :class:`SparseVector`, :func:`bm25_document_vector`, :func:`bm25_query_vector` → BM25 for
  Qdrant sparse vectors with the ``idf`` modifier
- :class:`QueryAnalysis`, :func:`analyze_query` → translation/expansion for the catalog language
- :func:`enrich_document` → index-time cross-language terms for the BM25 field

Resources load lazily on first use (jieba + glossary ≈ 0.5 s, once per process, thread-safe);
call :func:`warm_up` at service start to keep that off the first request.
"""

from .detect import detect_language
from .normalize import normalize
from .query import QueryAnalysis, analyze_query, english_text, enrich_document
from .sparse import SparseVector, bm25_document_vector, bm25_query_vector, term_index
from .tokens import tokenize

__all__ = [
    "detect_language",
    "normalize",
    "tokenize",
    "SparseVector",
    "bm25_document_vector",
    "bm25_query_vector",
    "term_index",
    "QueryAnalysis",
    "analyze_query",
    "english_text",
    "enrich_document",
    "warm_up",
]


def warm_up() -> None:
    """Load jieba, the glossary and OpenCC now (service start-up) instead of on the first query."""
    analyze_query("白色書架 warm-up", "en")
    analyze_query("white bookcase", "zh")
