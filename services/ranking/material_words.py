"""Material words (English catalog vocabulary and the glossary's material terms) -> photo material labels.

One table serves every side of the photo-material feature, like ``colour_words`` does for colour:

- training labels: a TRAIN-line product's catalog text ("oak veneer", "stainless steel", "Made from
  100% cotton") is read into one of ``LABELS`` (``label_of_product``);
- the query side: a query's material words ("wooden", "rattan", "玻璃" after glossary translation)
  name the labels whose photo estimate it boosts (``query_labels``);
- the honest implicit-material set strips every phrase of this table (and the glossary's material
  terms) from the indexed text (``homesearch.evaluation.sets.strip_material_words``).

The labels are the materials the dev catalog states often enough to learn a look from (docs/
evaluation.md, "Photo material"): wood (solid wood, veneers, bamboo, cork), metal (steel,
chrome, nickel, aluminium, brass), glass, rattan (woven natural fibres: rattan, seagrass, water
hyacinth, jute), fabric (textiles), ceramic (stoneware, porcelain, earthenware, terracotta, stone),
plastic. Phrases are matched longest first on word boundaries ("stainless steel colour" before
"steel"); colour phrases that merely contain a material word ("porcelain white") map to nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

LABELS = ("wood", "metal", "glass", "rattan", "fabric", "ceramic", "plastic")

# phrase -> label ("" = looks like a material word but is not one: a colour, an effect foil)
MATERIAL_WORDS: dict[str, str] = {
    # wood
    "wood": "wood", "wooden": "wood", "solid wood": "wood", "hardwood": "wood", "softwood": "wood",
    "pine": "wood", "solid pine": "wood", "birch": "wood", "oak": "wood", "solid oak": "wood", "beech": "wood",
    "walnut": "wood", "ash": "wood", "teak": "wood", "acacia": "wood", "larch": "wood", "eucalyptus": "wood",
    "bamboo": "wood", "cork": "wood", "veneer": "wood", "oak veneer": "wood", "birch veneer": "wood",
    "walnut veneer": "wood", "ash veneer": "wood", "plywood": "wood", "birch plywood": "wood", "rubberwood": "wood",
    "white stained oak": "wood", "stained oak": "wood", "black-brown stain": "wood", "white stain": "wood",
    "antique stain": "wood", "black stained": "wood", "lacquered": "", "oak effect": "", "walnut effect": "",
    "wood effect": "", "white stained oak effect": "", "light oak effect": "", "birch effect": "",
    "particleboard": "", "fibreboard": "",
    # metal
    "metal": "metal", "steel": "metal", "stainless steel": "metal", "stainless steel colour": "metal",
    "galvanised": "metal", "galvanized": "metal", "iron": "metal", "cast iron": "metal", "aluminium": "metal",
    "aluminum": "metal", "chrome": "metal", "chrome-plated": "metal", "nickel-plated": "metal", "brass": "metal",
    "brass-colour": "metal", "copper": "metal", "copper-colour": "metal", "silver-colour": "metal",
    "gold-colour": "metal", "zinc": "metal", "wire": "metal",
    # glass
    "glass": "glass", "clear glass": "glass", "frosted glass": "glass", "tempered glass": "glass",
    "mirror glass": "glass", "opal white glass": "glass", "smoked glass": "glass", "glass-door": "glass",
    # woven natural fibre
    "rattan": "rattan", "wicker": "rattan", "seagrass": "rattan", "water hyacinth": "rattan", "banana fibre": "rattan",
    "jute": "rattan", "sisal": "rattan", "natural fibre": "rattan",
    "willow": "rattan", "paper rope": "rattan",
    # fabric
    "fabric": "fabric", "textile": "fabric", "cotton": "fabric", "linen": "fabric", "wool": "fabric",
    "polyester": "fabric", "velvet": "fabric", "lyocell": "fabric", "viscose": "fabric", "felt": "fabric",
    "upholstered": "fabric", "knitted": "fabric", "chenille": "fabric", "corduroy": "fabric", "fleece": "fabric",
    "faux fur": "fabric", "sheepskin": "fabric",
    # ceramic and stone
    "ceramic": "ceramic", "ceramics": "ceramic", "stoneware": "ceramic", "porcelain": "ceramic",
    "bone china": "ceramic", "earthenware": "ceramic", "terracotta": "ceramic", "stone": "ceramic",
    "marble": "ceramic", "granite": "ceramic", "concrete": "ceramic", "porcelain white": "",
    # plastic
    "plastic": "plastic", "polypropylene": "plastic", "acrylic": "plastic", "silicone": "plastic",
    "polycarbonate": "plastic", "rubber": "plastic",
}


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern:
    from services.ranking.colour_words import phrase_pattern

    return phrase_pattern(MATERIAL_WORDS)


def material_phrases(text: str) -> list[str]:
    """Material phrases of an English text (longest match first), in order of appearance."""
    return _pattern().findall(text.lower())


def labels_of_text(text: str) -> list[str]:
    """Labels the text names, de-duplicated, in order of appearance."""
    return list(_labels_in(text))


@lru_cache(maxsize=16384)
def _labels_in(text: str) -> tuple[str, ...]:
    """``labels_of_text``, cached: the material boost reads the stated fields of every hit of every
    material query (~0.9 ms a query of 200 hits uncached, most of it the phrase pattern), and
    catalog texts repeat."""
    out: list[str] = []
    for phrase in material_phrases(text):
        label = MATERIAL_WORDS[phrase]
        if label and label not in out:
            out.append(label)
    return tuple(out)


def stated_labels(p: Mapping) -> list[str]:
    """Labels a product states for its visible surface: its ``color`` attribute first (IKEA names
    the material there: "oak veneer", "stainless steel"), then ``material``, then its title, each
    field read on its own; descriptions mention materials in passing and are left out."""
    attrs = p.get("attributes") or {}
    out: list[str] = []
    for text in (attrs.get("color") or "", attrs.get("material") or "", p.get("title") or ""):
        out += [label for label in _labels_in(str(text)) if label not in out]
    return out


def label_of_product(p: Mapping) -> str | None:
    """The training label of a catalog product: the first stated label (``stated_labels``), else
    its description's first; None when its text names none."""
    found = stated_labels(p) or labels_of_text(p.get("description") or "")
    return found[0] if found else None


def query_labels(text: str) -> list[str]:
    """Material labels an (English or Chinese) query names; [] when none. Chinese goes through the
    reviewed glossary first (玻璃 -> glass, 藤编 -> rattan), like the colour boost."""
    from services.ranking.language import english_text

    text = text.strip()
    return labels_of_text(english_text(text)) if text else []
