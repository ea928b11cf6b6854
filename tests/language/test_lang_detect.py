import pytest

from services.ranking.language import detect_language


@pytest.mark.parametrize(
    "text, lang",
    [
        ("", "other"),
        ("   ", "other"),
        ("123", "other"),
        ("90x200", "en"),  # the x is a Latin letter; harmless
        ("😀🛋️", "other"),
        ("？！。", "other"),
        ("床", "zh"),
        ("灯", "zh"),
        ("书架", "zh"),
        ("tv", "en"),
        ("a", "en"),
        ("sofa", "en"),
        ("Sofá cama", "en"),  # any Latin-script language is handled as English
        ("白色 KALLAX 书架", "zh"),  # brand names in caps do not make it mixed
        ("LED台灯", "zh"),
        ("1.8米床 180cm", "zh"),
        ("ＫＡＬＬＡＸ 书架", "zh"),  # full-width brand
        ("grey 沙发 with wooden legs", "mixed"),
        ("kallax 书架", "mixed"),
        ("北歐風沙發", "zh"),  # traditional
        ("ソファ", "other"),  # Japanese kana
        ("白いソファ", "other"),  # kanji + kana is Japanese
        ("소파", "other"),  # Hangul
        ("диван", "other"),  # Cyrillic
        ("沙发😀", "zh"),
    ],
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang
