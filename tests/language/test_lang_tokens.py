import pytest

from services.ranking.language import tokenize
from services.ranking.language.tokens import stem


@pytest.mark.parametrize(
    "text, must_contain",
    [
        ("北欧风灰色布艺沙发", ["布艺沙发", "沙发", "北欧风", "灰"]),
        ("带抽屉的白色床头柜", ["床头柜", "抽屉", "白"]),
        ("胡桃木色茶几", ["胡桃木", "茶几"]),
        ("实木落地灯", ["实木", "落地灯"]),
        ("浅灰色羽绒被套", ["浅灰", "羽绒被"]),
        ("儿童房收纳盒", ["儿童房", "收纳盒"]),
        ("黑褐色电视柜", ["黑褐", "电视柜"]),
        ("洗脸盆柜 镜柜 毛巾架", ["洗脸盆", "镜柜", "毛巾架"]),
    ],
)
def test_furnishing_terms_segment_whole(text: str, must_contain: list[str]) -> None:
    toks = tokenize(text)
    for t in must_contain:
        assert t in toks, (text, toks)


def test_precise_mode_keeps_compounds_only() -> None:
    assert tokenize("北欧风灰色布艺沙发", mode="precise") == ["北欧风", "灰", "布艺沙发"]


def test_colour_suffix_stripped_so_short_forms_match() -> None:
    assert tokenize("白色") == tokenize("白") == ["白"]
    assert "颜色" in tokenize("颜色")  # not a colour suffix


def test_stopwords_and_filler_dropped() -> None:
    assert tokenize("我想买一个白色的沙发") == ["白", "沙发"]
    assert tokenize("a sofa with the cushions") == ["sofa", "cushion"]


def test_brand_names_kept() -> None:
    assert tokenize("白色 KALLAX 书架") == ["白", "kallax", "书架"]
    assert "hemnes" in tokenize("HEMNES Bookcase")  # caps: not stemmed
    # Documents also carry the stemmed spelling, so a lower-case query still matches.
    assert set(tokenize("hemnes")) <= set(tokenize("HEMNES", variants=True))


@pytest.mark.parametrize(
    "word, stemmed",
    [("drawers", "drawer"), ("shelves", "shelf"), ("boxes", "box"), ("knives", "knife"), ("shoes", "shoe"),
     ("glasses", "glass"), ("glass", "glass"), ("accessories", "accessory"), ("benches", "bench"),
     ("gray", "grey"), ("colors", "colour"), ("cactus", "cactus"), ("tv", "tv")],
)
def test_stem(word: str, stemmed: str) -> None:
    assert stem(word) == stemmed


def test_latin_splitting() -> None:
    assert tokenize("90x200 cm wash-basin, 12-piece") == ["90", "200", "cm", "wash", "basin", "12", "piece"]
    assert tokenize("children's chair") == ["children", "chair"]
    assert tokenize("Ｗｈｉｔｅ Sofa") == ["white", "sofa"]


def test_empty_and_symbols() -> None:
    assert tokenize("") == []
    assert tokenize("😀 ？！") == []


def test_bad_mode() -> None:
    with pytest.raises(ValueError):
        tokenize("x", mode="fast")
