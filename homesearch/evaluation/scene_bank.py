"""Builds the hubness bank of shop the look: the window rows of the DEV scenes (float16).

    python -m homesearch.evaluation.scene_bank --data ../shared/data/ikea [--visual-dir DIR]

Why only dev: the bank is what the correction learns from; held-out (test) scenes must not
be in it, or the test number would be measured on scenes the system has seen. Same split as
``homesearch eval-journeys scenes`` (``part_of``). The rows come from the image tower in
process (the served ONNX graph matches it to cosine > 0.999, ``onnx_export``), at the scene
size and windows of ``services.encoders.models.scene_windows``; the file is named by the
visual version (``services.ranking.scene_search.bank_path``), so a new descriptor needs a
new bank: ``--visual-dir`` builds it for a candidate descriptor before it is shipped (default:
the one the encoders serve, ``HOMESEARCH_VISUAL_DIR`` included). It also writes the mean
text-space vector of the same dev windows (the centre of the window type term,
``scene_search.type_centre_path``, named by the image tower version).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from homesearch.evaluation.journeys import part_of


def dev_scene_rows(data: Path, visual_dir: Path | None = None,
                   batch: int = 4) -> tuple[str, np.ndarray, int, str, np.ndarray]:
    """(visual version, (n_dev * 149, 512) rows, n_dev scenes, image version, (dim,) mean
    text-space window vector) from the image tower the encoders serve, with ``visual_dir``'s
    descriptor when given."""
    import dataclasses

    import torch

    from services.encoders.models.preprocess import ImagePreprocessor
    from services.encoders.serving.config import TritonSettings

    spec = TritonSettings().model_spec()
    if visual_dir is not None:
        spec = dataclasses.replace(spec, visual_dir=visual_dir)
    enc = spec.build_image()
    if enc.visual is None:
        raise SystemExit("the image tower has no visual head: no bank to build")
    pre = ImagePreprocessor(enc.pixel_spec, enc.device)
    scenes = [json.loads(line) for line in (data / "scenes.jsonl").read_text().splitlines() if line.strip()]
    dev = [s for s in scenes if part_of("scenes", s["id"]) == "dev"]
    out, types = [], []
    for i in range(0, len(dev), batch):
        imgs = [(data / s["image"]).read_bytes() for s in dev[i : i + batch]]
        views, errors = pre.decode_views(imgs, "scene")
        if errors:
            raise SystemExit(f"scene photos failed to decode: {errors}")
        pixels = pre.normalize(torch.stack([v[0] for v in views]))  # type: ignore[index]
        rows, emb = enc.visual_scene(pixels)
        out.append(rows.reshape(-1, enc.visual.card.dim).numpy())
        types.append(emb.reshape(-1, emb.shape[-1]).numpy())
    centre = np.concatenate(types).astype(np.float64).mean(axis=0).astype(np.float32)
    return enc.visual_version, np.concatenate(out), len(dev), enc.version, centre


def main(argv: list[str] | None = None) -> int:
    from services.ranking.scene_search import BANK_DIR, bank_path, type_centre_path

    ap = argparse.ArgumentParser(prog="python -m homesearch.evaluation.scene_bank", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with scenes.jsonl and scenes/")
    ap.add_argument("--out-dir", type=Path, default=BANK_DIR)
    ap.add_argument("--visual-dir", type=Path,
                    help="visual descriptor directory (default: the served one, $HOMESEARCH_VISUAL_DIR included)")
    args = ap.parse_args(argv)
    version, rows, n, image_version, centre = dev_scene_rows(args.data, args.visual_dir)
    path = bank_path(version, args.out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, rows.astype(np.float16))
    cpath = type_centre_path(image_version, args.out_dir)
    np.save(cpath, centre)
    print(json.dumps({"bank": str(path), "visual_version": version, "dev_scenes": n, "rows": int(rows.shape[0]),
                      "type_centre": str(cpath), "image_version": image_version}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
