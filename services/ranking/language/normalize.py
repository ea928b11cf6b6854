"""Text normalisation shared by indexing and querying.

Both sides of BM25 (product text at index time, the shopper's query at search time) and the
embedding/result caches key on this output, so it must be deterministic and cheap. Steps:

1. NFKC: full-width ASCII (``ＫＡＬＬＡＸ１２０``) → half-width, compatibility forms folded.
2. CJK punctuation that NFKC keeps (``。、【】《》“”``) → ASCII, invisible characters dropped.
3. Traditional → simplified Chinese (OpenCC ``t2s`` when the ``opencc`` wheel is installed; a
   small shipped character table otherwise, enough for furnishing vocabulary).
4. Chinese numbers and length units: ``一百二十厘米`` → ``120cm``, ``1米8`` → ``180cm``,
   ``1.5米`` → ``150cm`` (the catalogs give sizes in cm). Lone numerals before measure words
   (``三人沙发``, ``四件套``) are left alone: the glossary handles them as fixed phrases.
5. ``×``/``*`` between digits → ``x`` (``90×200`` → ``90x200``); whitespace collapsed.
6. Latin lower-cased (only in :func:`normalize`; :func:`fold` keeps case so the translator can
   keep brand names such as ``KALLAX`` as typed).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import Callable

__all__ = ["normalize", "fold", "to_simplified", "chinese_number_to_int"]

# Characters NFKC leaves alone but that should not split or confuse tokens downstream.
_PUNCT_MAP = str.maketrans(
    {
        "。": ". ", "、": ", ", "，": ", ", "；": "; ", "：": ": ", "？": "? ", "！": "! ",
        "【": "[", "】": "]", "《": '"', "》": '"', "〈": '"', "〉": '"', "「": '"', "」": '"',
        "『": '"', "』": '"', "“": '"', "”": '"', "‘": "'", "’": "'", "（": "(", "）": ")",
        "～": "~", "·": " ", "・": " ", "—": "-", "–": "-", "－": "-", "…": " ",
        "\u3000": " ", "\u200b": "", "\u200c": "", "\u200d": "", "\ufeff": "", "\u00ad": "",
    }
)

# Fallback traditional→simplified table (used only when OpenCC is not importable). Covers the
# characters that occur in furnishing queries; OpenCC covers everything.
_T2S_FALLBACK = str.maketrans(
    "櫃櫥檯燈簾鏡臥廳廚櫥衛浴發書開關門窗紗網籃盒蓋層隔擱鉤掛鞋襪衣褲兒童嬰寶椅凳墊毯絨棉麻絲綢"
    "皮革鐵鋼鋁銅鎳鉻玻璃瓷陶藝術風現簡約復舊傳統歐並條紋點圓橢長寬厚輕軟硬調節摺疊擴轉輪"
    "滑動電線頭燭臺壺鍋碗盤杯碟刀叉筷餐廣場實樺櫸胡桃紅綠藍黃紫灰銀銀極組裝帶組邊幾張把個"
    "對雙單兩輛間歲號夠變觀樣舊價買賣這樣為與從們來麼裡裏頂燒爐鍋蓆遮陽傘園藝植盆瓶飾畫鐘錶",
    "柜橱台灯帘镜卧厅厨橱卫浴发书开关门窗纱网篮盒盖层隔搁钩挂鞋袜衣裤儿童婴宝椅凳垫毯绒棉麻丝绸"
    "皮革铁钢铝铜镍铬玻璃瓷陶艺术风现简约复旧传统欧并条纹点圆椭长宽厚轻软硬调节折叠扩转轮"
    "滑动电线头烛台壶锅碗盘杯碟刀叉筷餐广场实桦榉胡桃红绿蓝黄紫灰银银极组装带组边几张把个"
    "对双单两辆间岁号够变观样旧价买卖这样为与从们来么里里顶烧炉锅席遮阳伞园艺植盆瓶饰画钟表",
)

_converter_lock = threading.Lock()
_converter: Callable[[str], str] | None = None


def _get_converter() -> Callable[[str], str]:
    """Load OpenCC once (thread-safe); fall back to the shipped table if it is missing."""
    global _converter
    if _converter is None:
        with _converter_lock:
            if _converter is None:
                try:
                    import opencc  # Apache-2.0, C++ core: ~1 µs per short query

                    cc = opencc.OpenCC("t2s")
                    _converter = cc.convert
                except Exception:  # pragma: no cover - exercised only without the wheel
                    _converter = lambda s: s.translate(_T2S_FALLBACK)  # noqa: E731
    return _converter


_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def to_simplified(text: str) -> str:
    """Traditional → simplified Chinese; text without Han characters is returned untouched."""
    if not _HAN_RE.search(text):
        return text
    return _get_converter()(text)


# --- Chinese numerals -------------------------------------------------------------------------
_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
           "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUM_CHARS = "零〇一二两三四五六七八九十百千万"


def chinese_number_to_int(s: str) -> int | None:
    """Parse a Chinese numeral (``一百二十`` → 120, ``十五`` → 15, ``一二零`` → 120).

    Returns None for strings that are not a well-formed numeral.
    """
    if not s or any(c not in _NUM_CHARS for c in s):
        return None
    if all(c in _DIGITS for c in s):  # digit-by-digit reading: 一二零
        return int("".join(str(_DIGITS[c]) for c in s))
    total, section, digit = 0, 0, None
    for c in s:
        if c in _DIGITS:
            digit = _DIGITS[c]
        elif c in _UNITS:
            section += (1 if digit is None else digit) * _UNITS[c]
            digit = None
        elif c == "万":
            section += digit or 0
            total += (section or 1) * 10000
            section, digit = 0, None
    return total + section + (digit or 0)


# A multi-character numeral that contains a place value (十/百/千/万) is unambiguous
# (二十, 一百二十); a run of bare digits (一二零) only counts before a unit.
_CN_NUM_PLACE = re.compile(r"[零〇一二两三四五六七八九]*[十百千万][零〇一二两三四五六七八九十百千万]*")
_CN_NUM_BEFORE_UNIT = re.compile(r"([零〇一二两三四五六七八九十百千]+)(?=(?:厘米|公分|毫米|米|寸|升))")
_CN_DECIMETRE = re.compile(r"(?<=\d米)([一二三四五六七八九])(?![十百千]|厘米|公分|毫米)")
# Words containing a place-value character that are not numbers.
_NOT_NUMBERS = ("十分", "十字", "百叶", "百褶", "百搭", "百货", "千万", "万一", "万能", "万向", "十足")

# Length units. 米 only counts right after a number (米色 = beige, 米白 = off-white).
_M_WITH_DECIMETRE = re.compile(r"(\d+)米(\d)(?![\d.]|厘米|公分|毫米)")  # 1米8 = 1.8 m
_M = re.compile(r"(\d+(?:\.\d+)?)\s*米(?!色|白|黄|灰|咖)")
_CM = re.compile(r"(\d+(?:\.\d+)?)\s*(?:厘米|公分|cm|CM|Cm)(?![A-Za-z])")
_MM = re.compile(r"(\d+(?:\.\d+)?)\s*(?:毫米|mm|MM)(?![A-Za-z])")
_TIMES = re.compile(r"(?<=\d)\s*[×xX*＊]\s*(?=\d)")
_SPACES = re.compile(r"\s+")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _replace_cn_numbers(text: str) -> str:
    def place(m: re.Match[str]) -> str:
        s = m.group(0)
        start = m.start()
        if len(s) < 2:  # a lone 十/百/千 is more often part of a word than a number
            return s
        # Leave idioms alone (百叶窗, 十分, 万向轮 ...).
        for w in _NOT_NUMBERS:
            if text.startswith(w, start) or (w in s):
                return s
        n = chinese_number_to_int(s)
        return s if n is None else str(n)

    text = _CN_NUM_PLACE.sub(place, text)

    def before_unit(m: re.Match[str]) -> str:
        n = chinese_number_to_int(m.group(1))
        return m.group(1) if n is None else str(n)

    text = _CN_NUM_BEFORE_UNIT.sub(before_unit, text)
    # 一米八 → 1米8 (colloquial metres + decimetres), handled with the units below.
    return _CN_DECIMETRE.sub(lambda m: str(_DIGITS[m.group(1)]), text)


def _replace_units(text: str) -> str:
    text = _M_WITH_DECIMETRE.sub(lambda m: f"{_fmt(int(m.group(1)) * 100 + int(m.group(2)) * 10)}cm", text)
    text = _M.sub(lambda m: f"{_fmt(round(float(m.group(1)) * 100, 1))}cm", text)
    text = _CM.sub(lambda m: f"{m.group(1)}cm", text)
    text = _MM.sub(lambda m: f"{m.group(1)}mm", text)
    return text


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Everything :func:`normalize` does except lower-casing (keeps ``KALLAX`` readable)."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text.translate(_PUNCT_MAP))
    text = "".join(c for c in text if c.isprintable() or c in " \t\n")
    text = to_simplified(text)
    if any(c in _NUM_CHARS for c in text):
        text = _replace_cn_numbers(text)
    if any(c.isdigit() for c in text):
        text = _replace_units(text)
        text = _TIMES.sub("x", text)
    return _SPACES.sub(" ", text).strip()


@lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    """Canonical form of a query or product text (see module docstring for the steps).

    >>> normalize("ＫＡＬＬＡＸ 書櫃，寬一百二十公分")
    'kallax 书柜, 宽120cm'
    """
    return fold(text).lower()
