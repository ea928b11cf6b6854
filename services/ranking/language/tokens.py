"""BM25 tokenisation for Chinese, English and mixed text.

One function serves documents and queries, so both sides always agree on terms:

- Text is :func:`~.normalize.fold`-ed first (NFKC, simplified Chinese, numbers and units).
- Han runs go through jieba with the glossary as user dictionary, so ``布艺沙发``/``床头柜``
  stay whole. ``mode="search"`` (default) also emits the dictionary sub-words
  (``布艺沙发`` → ``布艺 沙发 布艺沙发``) so a query for ``沙发`` finds a ``布艺沙发`` and vice versa.
  On our sets search and precise mode measure within noise of each other (README); search mode
  is kept for its recall on compounds the glossary does not know.
  Colour words lose their ``色`` suffix (``白色`` → ``白``) so ``白``/``白色`` match.
- Latin runs are split into letters/digits (``90x200cm`` → ``90 200 cm``, ``wash-basin`` →
  ``wash basin``), lower-cased, US spellings mapped to the catalog's British ones and plurals
  stripped (``shelves`` → ``shelf``, ``boxes`` → ``box``).
- ALL-CAPS words of two or more letters are brand/line names (``KALLAX``, ``HEMNES``): never
  stemmed, never dropped. With ``variants=True`` (documents) the stemmed spelling is emitted as
  well, so a lower-case query ``hemnes`` (stemmed to ``hemne``) still matches ``HEMNES``.
- Stopwords (function words, shopper filler such as ``我想买``/``推荐``) are dropped.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterator

from .english import PIECES, latin_terms
from .glossary import get_glossary
from .normalize import fold

__all__ = ["tokenize", "segment_han", "ZH_STOPWORDS"]

ZH_STOPWORDS = frozenset(
    """的 地 得 了 着 和 与 及 或 跟 同 是 在 把 被 给 很 也 都 就 又 还 吗 呢 吧 啊 哦 嘛 呀 啦
    个 款 只 些 这 那 这个 那个 这款 那种 我 你 他 她 它 我们 你们 要 想 买 找 求 请 有 带 用 配
    一个 一款 一张 一把 一只 一件 一套 适合 适用 用于 用的 推荐 求推荐 什么 哪里 哪种 怎么 可以 能 需要
    想要 我想 想买 我要 好看 漂亮 便宜 实惠 性价比 左右 以上 以下 之间 一点 一些 比较 非常 特别 超
    """.split()
)
# Colour words whose 色 is not a colour suffix.
_SE_KEEP = frozenset({"颜色", "彩色", "多色", "本色", "特色", "出色", "角色", "景色", "原色", "混色", "无色", "纯色", "深色", "浅色"})
_jieba_lock = threading.Lock()
_jieba = None


def _get_jieba():
    """A private jieba.Tokenizer with the glossary as user dictionary (built once, ~0.5 s)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tk = jieba.Tokenizer()
                tk.initialize()
                for w in get_glossary().jieba_words():
                    tk.add_word(w)  # freq suggested so the compound beats its own split
                _jieba = tk
    return _jieba


def segment_han(run: str, mode: str = "precise") -> list[str]:
    """jieba segmentation of a run of Han characters (no HMM: deterministic, dictionary-led)."""
    tk = _get_jieba()
    if mode == "search":
        return list(tk.cut_for_search(run, HMM=False))
    return list(tk.cut(run, HMM=False))


def _han_terms(run: str, mode: str) -> Iterator[str]:
    for w in segment_han(run, mode):
        if w in ZH_STOPWORDS:
            continue
        if len(w) >= 2 and w.endswith("色") and w not in _SE_KEEP:
            w = w[:-1]
        yield w


def _terms(text: str, mode: str, variants: bool) -> Iterator[str]:
    for m in PIECES.finditer(fold(text)):
        kind = m.lastgroup
        s = m.group()
        if kind == "han":
            yield from _han_terms(s, mode)
        elif kind == "lat":
            yield from latin_terms(s, variants)
        elif kind == "num":
            yield s
        else:  # other scripts (kana, Hangul, Cyrillic): keep as opaque lower-cased words
            yield s.lower()


#: jieba mode used when ``tokenize`` gets no ``mode`` (documents and queries must agree).
DEFAULT_MODE = "search"


def tokenize(text: str, mode: str | None = None, variants: bool = False) -> list[str]:
    """BM25 terms of ``text`` (see module docstring). ``mode``: ``"search"`` (default) or ``"precise"``.

    >>> tokenize("白色 KALLAX 书架, 2 shelves")
    ['白', 'kallax', '书架', '2', 'shelf']
    """
    mode = mode or DEFAULT_MODE
    if mode not in ("search", "precise"):
        raise ValueError("mode must be 'search' or 'precise'")
    return list(_terms(text, mode, variants))
