"""Accuracy of the pixel colour estimate (``services.ranking.ingest.photo_colour``) against the
catalog's ``color`` attribute, and the threshold search that chose its defaults.

  python -m homesearch.evaluation.photo_colour --catalog ../shared/data/ikea/catalog.jsonl [--tune] [--json]

Truth: the main palette reading (``services.ranking.colour_words``) of each colour phrase of the
product's ``color`` value; products whose value names no colour with a look (multicolour, clear
glass, patterns, missing) are left out. ``top1`` = the largest estimated name is one of them;
``any`` = any kept name is; ``kept`` = mean number of kept names. ``--tune`` searches a small grid
on the TRAIN part of the line split only and reports the chosen thresholds on the held-out lines
(line split) and held-out types (type split), which were not used to choose them.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from homesearch.evaluation.split import load_jsonl, make_split
from services.ranking.colour_words import palette_names
from services.ranking.ingest.photo_colour import (
    DEFAULT, PALETTE, Thresholds, classify, decode_small, foreground_mask, rgb_to_lab,
)

GRID = {
    "achromatic_c": (3.0, 4.5, 6.5, 10.0),
    "tint_c": (7.0, 10.0, 16.0),
    "white_l": (72.0, 76.0, 80.0, 88.0),
    "grey_l": (40.0, 50.0, 60.0),
    "black_l": (20.0, 25.0, 30.0),
    "pink_l": (50.0, 60.0, 70.0),
    "min_fraction": (0.1, 0.15, 0.25),
}


def load_foregrounds(catalog: list[dict], base: Path) -> dict[str, np.ndarray]:
    """Foreground Lab pixels (N, 3) of each product's main photo."""
    out = {}
    for p in catalog:
        if not p.get("image"):
            continue
        lab = rgb_to_lab(decode_small((base / p["image"]).read_bytes()))
        out[p["id"]] = lab[foreground_mask(lab)]
    return out


def score(fg: dict[str, np.ndarray], truth: dict[str, set[str]], ids: list[str], t: Thresholds) -> dict:
    top1 = anyk = kept = 0
    n = 0
    for pid in ids:
        if pid not in fg or not truth.get(pid):
            continue
        counts = np.bincount(classify(fg[pid], t), minlength=len(PALETTE)) / max(1, len(fg[pid]))
        order = np.argsort(-counts, kind="stable")
        names = [PALETTE[i] for i in order if counts[i] >= t.min_fraction] or [PALETTE[order[0]]]
        n += 1
        top1 += names[0] in truth[pid]
        anyk += bool(set(names) & truth[pid])
        kept += len(names)
    return {"n": n, "top1": round(top1 / n, 4) if n else 0.0, "any": round(anyk / n, 4) if n else 0.0,
            "kept": round(kept / n, 2) if n else 0.0}


def _key(s: dict) -> tuple:
    return (s["top1"] + s["any"], -s["kept"])


def tune(fg: dict[str, np.ndarray], truth: dict[str, set[str]], ids: list[str], passes: int = 2) -> Thresholds:
    """Coordinate ascent over ``GRID`` from the defaults (a full grid is too slow on 2 cores):
    each threshold in turn takes its best value with the others fixed, ``passes`` times."""
    best = DEFAULT
    best_key = _key(score(fg, truth, ids, best))
    for _ in range(passes):
        for name, values in GRID.items():
            for v in values:
                cand = replace(best, **{name: v})
                k = _key(score(fg, truth, ids, cand))
                if k > best_key:
                    best, best_key = cand, k
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m homesearch.evaluation.photo_colour", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--tune", action="store_true", help="grid-search thresholds on the train lines")
    ap.add_argument("--tune-on", choices=["line", "both"], default="line",
                    help="tune on the train lines, or on products in train of both the line and the type split "
                         "(so the held-out types are unseen by the tuning too)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    path = Path(args.catalog).resolve()
    catalog = load_jsonl(path)
    truth = {p["id"]: set(palette_names((p.get("attributes") or {}).get("color", ""))) for p in catalog}
    fg = load_foregrounds(catalog, path.parent)
    line, typ = make_split(catalog, by="line"), make_split(catalog, by="type")
    train = line.products("train")
    if args.tune_on == "both":
        in_type_train = set(typ.products("train"))
        train = [p for p in train if p in in_type_train]
    t = DEFAULT
    report: dict = {}
    if args.tune:
        t = tune(fg, truth, train)
        report["chosen_on_train"] = {k: getattr(t, k) for k in GRID}
        report["tuned_on"] = args.tune_on
    report["thresholds"] = asdict(t)
    report["train_lines"] = score(fg, truth, train, t)
    report["heldout_lines"] = score(fg, truth, line.products("dev", "test"), t)
    report["heldout_types"] = score(fg, truth, typ.products("dev", "test"), t)
    report["all"] = score(fg, truth, list(fg), t)
    print(json.dumps(report, indent=1) if args.json else report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
