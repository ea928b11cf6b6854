"""Query side of the photo colour and the photo material: a bounded additive boost for products whose
photo shows the colour (or the material) the query names.

Why a boost and not a filter: the estimate is from pixels and wrong for a share of products
(docs/evaluation.md, "Photo colour"), and a query's colour word may describe a part of the
product; a filter would drop right products, a small bounded boost only reorders near-ties of the
fused score (which is in [0, 1] for weighted fusion).

Reading the query: Chinese (or mixed) text goes through the reviewed glossary (``analyze_query``,
深蓝色 -> dark blue), then English colour phrases are read by ``colour_words.accepted_names``.

The boost is part of the *photo* evidence: it applies only when the request's image weight is
above zero, so ``--signals text`` stays a text-only ranking, and only to weighted fusion (RRF
scores are rank-based, on another scale).

Material (``services.ranking.ingest.photo_material``): the query's material words
(``material_words.query_labels``) against the photo's probe probabilities; a product gains
``weight * min(1, p(label) / full)``. The same reasons hold: a probe is wrong for a share of photos.
What the catalog states beats what the pixels estimate, for both: a product whose ``color``
attribute (or title) names a colour, or whose title or colour/material attribute names a material,
is judged by that statement (``product_colour_match``, ``product_material_match``); the estimate is
for catalogs that do not say it (a photo read as white must not lift a product the catalog calls
black for "white sofa", nor sink the one it calls white). Only when the request ranks on text
(text or lexical weight above zero): a photo-only ranking (``--signals image``) is judged by the
photo alone, so it stays a measure of the photo.
"""

from __future__ import annotations

from services.ranking.colour_words import accepted_names, stated_colours
from services.ranking.fusion import FusedHit, add_boost
from services.ranking.material_words import stated_labels

BOOST = "photo_color"
MATERIAL_BOOST = "photo_material"


def query_colours(text: str) -> dict[str, float]:
    """Palette names (with weight 1 or 0.5) that the query's colour words accept; {} when none."""
    from services.ranking.language import english_text

    text = text.strip()
    return accepted_names(english_text(text)) if text else {}


def photo_match(accepted: dict[str, float], photo: list[dict] | None, full: float) -> float:
    """0..1: the accepted share of the photo's foreground (each name's fraction times its weight),
    reaching 1 at ``full``."""
    if not accepted or not photo:
        return 0.0
    share = sum(float(c.get("fraction", 0.0)) * accepted.get(str(c.get("name")), 0.0) for c in photo)
    return min(1.0, share / full) if full > 0 else float(share > 0)


def product_colour_match(accepted: dict[str, float], payload: dict, full: float, stated: bool = True) -> float:
    """0..1: with ``stated``, a product whose text states colours matches by the share of them the
    query accepts (each 1 for a main reading of the query's colour, 0.5 for a looser one, 0 for
    none), as a photo matches by the accepted share of its foreground: for "white desk" an all-white
    desk (1) before a white-and-grey one (0.5); for "white grey desk" both. A product that states
    none, or any product without ``stated``, matches by its photo (``photo_match``)."""
    names = stated_colours(payload) if stated else []
    if names:
        return sum(accepted.get(n, 0.0) for n in names) / len(names)
    return photo_match(accepted, payload.get(BOOST), full)


def apply_boost(hits: list[FusedHit], accepted: dict[str, float], weight: float, full: float,
                stated: bool = True) -> list[FusedHit]:
    """The colour boost: ``weight * product_colour_match`` per hit."""
    if not accepted or weight <= 0:
        return hits
    return add_boost(hits, BOOST, lambda h: product_colour_match(accepted, h.payload, full, stated), weight)


def material_match(labels: list[str], photo: list[dict] | None, full: float) -> float:
    """0..1: the probe probability of the query's material (the largest when it names several),
    reaching 1 at ``full``."""
    if not labels or not photo:
        return 0.0
    p = max((float(c.get("p", 0.0)) for c in photo if c.get("name") in labels), default=0.0)
    return min(1.0, p / full) if full > 0 else float(p > 0)


def product_material_match(labels: list[str], payload: dict, full: float, stated: bool = True) -> float:
    """What the catalog states beats what the probe estimates: with ``stated``, a product whose
    text names a material matches fully when it is one of the query's and not at all otherwise (a
    wrong estimate must not lift an oak table for "glass table", nor sink the glass table whose
    text says so); a product whose text names none, or any product without ``stated``, is judged
    by its photo."""
    named = stated_labels(payload) if stated else []
    if named:
        return 1.0 if any(label in named for label in labels) else 0.0
    return material_match(labels, payload.get(MATERIAL_BOOST), full)


def apply_material_boost(hits: list[FusedHit], labels: list[str], weight: float, full: float,
                         stated: bool = True) -> list[FusedHit]:
    """The material boost: ``weight * product_material_match`` per hit."""
    if not labels or weight <= 0:
        return hits
    return add_boost(hits, MATERIAL_BOOST, lambda h: product_material_match(labels, h.payload, full, stated), weight)


def describe_photo(photo: list[dict] | None) -> str:
    """``"photo colour: blue 62%, white 30%"`` for explain."""
    if not photo:
        return "photo colour: none estimated"
    return "photo colour: " + ", ".join(f"{c.get('name')} {round(100 * float(c.get('fraction', 0)))}%" for c in photo)


def describe_material(photo: list[dict] | None) -> str:
    """``"photo material: wood 81%, metal 12%"`` for explain."""
    if not photo:
        return "photo material: none estimated"
    return "photo material: " + ", ".join(f"{c.get('name')} {round(100 * float(c.get('p', 0)))}%" for c in photo)
