from collections import Counter

from services.ranking.language import normalize
from services.ranking.language.glossary import GLOSSARY_PATH, KINDS, NUM, get_glossary, load_entries


def test_glossary_well_formed() -> None:
    entries = load_entries()  # raises on wrong column count, empty sides, unknown kind
    assert len(entries) >= 500
    dup = [zh for zh, n in Counter(e.zh for e in entries).items() if n > 1]
    assert not dup, f"duplicate zh terms: {dup}"
    for e in entries:
        assert e.zh.strip() == e.zh and e.en.strip() == e.en and e.zh and e.en
        assert e.kind in KINDS
        assert (NUM in e.zh) == (NUM in e.en), e  # number slot on both sides or neither
        if NUM in e.zh:
            assert e.zh.startswith(NUM)
        else:
            assert normalize(e.zh) == e.zh, f"not in normalized form: {e.zh}"
        assert all(a.strip() for a in e.alts)
        assert e.en == e.en.strip() and "\t" not in e.en


def test_glossary_file_has_header_and_tabs() -> None:
    lines = [l for l in GLOSSARY_PATH.read_text(encoding="utf-8").splitlines() if l and not l.startswith("# ")]
    assert lines[0] == "zh\ten\tkind\talt"
    assert all(l.count("\t") == 3 for l in lines)


def test_coverage_of_core_vocabulary() -> None:
    g = get_glossary()
    for zh in ["沙发", "布艺沙发", "书架", "书柜", "橱柜", "衣柜", "床", "床头柜", "茶几", "餐桌", "办公椅", "灯", "台灯",
               "落地灯", "吊灯", "地毯", "窗帘", "镜子", "收纳盒", "米色", "原木色", "胡桃木色", "灰色", "深灰", "实木",
               "橡木", "松木", "桦木", "竹", "藤编", "金属", "玻璃", "丝绒", "皮革", "布艺", "亚麻", "北欧风", "现代",
               "简约", "复古", "工业风", "客厅", "卧室", "厨房", "浴室", "儿童房", "拉手", "柜门", "抽屉", "扶手", "靠背",
               "带轮子", "可折叠", "可调节"]:
        assert zh in g.zh, zh
    assert g.en[("bookcase",)][0] == "书架"
