import pytest

from services.ranking.language import QueryAnalysis, analyze_query, enrich_document, term_index, tokenize


def test_brand_kept_and_translated() -> None:
    a = analyze_query("白色 KALLAX 书架", "en")
    assert a.language == "zh"
    assert a.translated == "white KALLAX bookcase"
    assert "shelving unit" in a.expansions
    assert a.normalized == "白色 kallax 书架"
    assert "KALLAX (kept)" in a.explanation and "书架→bookcase" in a.explanation
    assert a.dense_text == "white KALLAX bookcase"


@pytest.mark.parametrize(
    "zh, en",
    [
        ("北欧风灰色布艺沙发", "scandinavian grey fabric sofa"),
        ("带抽屉的白色床头柜", "white bedside table with drawers"),
        ("带金色拉手和白色柜门的现代风格橱柜", "modern cabinet with gold-colour handle and white door"),
        ("适合小户型的沙发", "sofa for small space"),
        ("胡桃木色茶几", "walnut effect coffee table"),
        ("三斗柜", "chest of 3 drawers"),
        ("3人沙发", "3-seat sofa"),
        ("北歐風沙發", "scandinavian sofa"),
        ("1米8的床", "180 cm bed"),
        ("grey 沙发 with wooden legs", "grey sofa with wooden legs"),
    ],
)
def test_zh_to_en(zh: str, en: str) -> None:
    assert analyze_query(zh, "en").translated == en


def test_untranslated_chinese_is_kept_and_explained() -> None:
    a = analyze_query("皮带", "en")  # belt: not furnishing; must not become 皮 (leather) + 带 (with)
    assert a.translated is None and a.dense_text == "皮带"
    assert "皮带 untranslated" in a.explanation
    b = analyze_query("超好看的花生灯", "en")  # partly known: unknown words stay in the text
    assert b.translated == "花生 lamp" and "花生 (untranslated)" in b.explanation


def test_same_language_has_no_translation() -> None:
    a = analyze_query("white bookcase", "en")
    assert a.translated is None and a.expansions == [] and a.language == "en"
    assert a.sparse_vector().as_dict() == {term_index("white"): 1.0, term_index("bookcase"): 1.0}


def test_en_to_zh_for_chinese_catalog() -> None:
    a = analyze_query("white KALLAX bookcase", "zh")
    assert a.translated == "白色 KALLAX 书架"
    assert "书柜" in a.expansions
    assert analyze_query("grey glass side table", "zh").translated == "灰色 玻璃 边桌"  # glass = material here
    assert analyze_query("whiskey glass", "zh").translated == "威士忌杯"  # glass = product here


def test_zh_synonyms_on_chinese_catalog() -> None:
    a = analyze_query("灰色玻璃边几", "zh")
    assert a.translated is None and "边桌" in a.expansions


def test_sparse_vector_weights() -> None:
    a = analyze_query("客厅白色书架", "en")
    d = a.sparse_vector().as_dict()
    assert d[term_index("白")] == 1.0 and d[term_index("bookcase")] == 1.0  # original + translation
    assert d[term_index("shelving")] == 0.5  # expansion
    assert d[term_index("living")] == pytest.approx(0.2)  # room = context


def test_other_and_empty() -> None:
    for text in ["", "😀", "123"]:
        a = analyze_query(text, "en")
        assert a.language == "other" and a.translated is None


def test_bad_catalog_language() -> None:
    with pytest.raises(ValueError):
        analyze_query("sofa", "fr")


def test_result_lists_are_independent() -> None:
    a = analyze_query("白色书架", "en")
    a.expansions.append("junk")
    assert "junk" not in analyze_query("白色书架", "en").expansions
    assert isinstance(a, QueryAnalysis)


def test_enrich_english_document_with_chinese() -> None:
    text = "KALLAX Shelving unit, white"
    out = enrich_document(text)
    assert out.startswith(text)
    toks = set(tokenize(out))
    assert {"置物架", "白"} <= toks
    # a raw Chinese query now matches
    assert set(tokenize("白色置物架")) <= toks


def test_enrich_chinese_document_with_english() -> None:
    out = enrich_document("HEMNES 床头柜 白色", ("en",))
    assert "bedside table" in out and "white" in out


def test_enrich_noop() -> None:
    assert enrich_document("") == ""
    assert enrich_document("Xyzzy plugh") == "Xyzzy plugh"
    assert enrich_document("KALLAX Shelving unit", ()) == "KALLAX Shelving unit"
