import pytest

from services.ranking.language import normalize
from services.ranking.language.normalize import chinese_number_to_int, fold


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("北歐風灰色布藝沙發", "北欧风灰色布艺沙发"),  # traditional → simplified
        ("衣櫃 檯燈 窗簾 鏡子", "衣柜 台灯 窗帘 镜子"),
        ("ＫＡＬＬＡＸ　書架", "kallax 书架"),  # full-width Latin and ideographic space
        ("１２０ＣＭ", "120cm"),
        ("白色，简约。", "白色, 简约."),
        ("【北欧】《沙发》", '[北欧]"沙发"'),
        ("  many   spaces  ", "many spaces"),
        ("", ""),
    ],
)
def test_normalize_scripts_and_width(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("宽一百二十厘米", "宽120cm"),
        ("一米八的床", "180cm的床"),
        ("1米8的床", "180cm的床"),
        ("1.5米沙发", "150cm沙发"),
        ("两米", "200cm"),
        ("80公分", "80cm"),
        ("45 毫米", "45mm"),
        ("90×200 cm", "90x200cm"),
        ("二十五个", "25个"),
        # not numbers / not units
        ("米色地毯", "米色地毯"),
        ("米白", "米白"),
        ("百叶窗", "百叶窗"),
        ("万向轮", "万向轮"),
        ("十分好看", "十分好看"),
        ("三人沙发", "三人沙发"),  # lone numerals before measure words: glossary phrase
        ("四件套", "四件套"),
    ],
)
def test_numbers_and_units(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_fold_keeps_case_for_brand_names() -> None:
    assert fold("白色 KALLAX 書架") == "白色 KALLAX 书架"
    assert normalize("白色 KALLAX 書架") == "白色 kallax 书架"


def test_idempotent() -> None:
    for s in ["北歐風灰色布藝沙發 １.５米", "HEMNES Bed frame 160x200 cm", "一百二十厘米的書桌"]:
        assert normalize(normalize(s)) == normalize(s)


@pytest.mark.parametrize("s, n", [("一百二十", 120), ("十五", 15), ("二十", 20), ("一千二百", 1200), ("一二零", 120), ("两", 2), ("三万", 30000)])
def test_chinese_number_to_int(s: str, n: int) -> None:
    assert chinese_number_to_int(s) == n


def test_chinese_number_rejects_non_numerals() -> None:
    assert chinese_number_to_int("沙发") is None
    assert chinese_number_to_int("") is None


def test_fallback_table_agrees_with_opencc() -> None:
    """The shipped trad→simp table (used without the opencc wheel) must not contradict OpenCC."""
    opencc = pytest.importorskip("opencc")
    from services.ranking.language.normalize import _T2S_FALLBACK

    cc = opencc.OpenCC("t2s")
    assert all(cc.convert(chr(k)) == chr(v) for k, v in _T2S_FALLBACK.items())
