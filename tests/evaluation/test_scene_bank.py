"""The hub bank builder: dev scenes only, and for the visual descriptor it is pointed at
(`--visual-dir` or the served `HOMESEARCH_VISUAL_DIR`), so a candidate gets its bank before it
is shipped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from homesearch.evaluation import scene_bank
from homesearch.evaluation.journeys import part_of

HEADS = Path(__file__).resolve().parents[2] / "services" / "encoders" / "heads"


def _scenes(tmp_path: Path) -> Path:
    """Two dev scenes and one test scene (noise photos)."""
    ids = [f"s{i:04d}" for i in range(40)]
    dev = [i for i in ids if part_of("scenes", i) == "dev"][:2]
    test = [i for i in ids if part_of("scenes", i) == "test"][:1]
    rng = np.random.default_rng(0)
    (tmp_path / "scenes").mkdir(parents=True)
    rows = []
    for sid in dev + test:
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(tmp_path / "scenes" / f"{sid}.jpg")
        rows.append({"id": sid, "image": f"scenes/{sid}.jpg", "relevant": []})
    (tmp_path / "scenes.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return tmp_path


def _visual_dirs() -> list[Path]:
    dirs = sorted(d for d in HEADS.glob("visual-shop-*") if (d / "visual.json").is_file())
    if len(dirs) < 2:
        pytest.skip("needs two shipped visual descriptors")
    return dirs


def test_visual_dir_and_the_served_env_pick_the_descriptor_of_the_bank(tmp_path, monkeypatch, capsys):
    pytest.importorskip("efficientnet_lite_pytorch")
    from services.encoders.models.scene_windows import scene_region_count
    from services.encoders.models.visual import visual_version

    data = _scenes(tmp_path / "data")
    first, second = _visual_dirs()[:2]
    monkeypatch.setenv("HOMESEARCH_VISUAL_DIR", str(first))
    for flag, want in (([], first), (["--visual-dir", str(second)], second)):
        out = tmp_path / want.name
        assert scene_bank.main(["--data", str(data), "--out-dir", str(out), *flag]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["visual_version"] == visual_version(want) and report["dev_scenes"] == 2
        bank = np.load(out / f"{visual_version(want)}.npy")
        assert bank.shape == (2 * scene_region_count(), 512)  # the test scene is not in it
    a, b = (np.load(tmp_path / d.name / f"{visual_version(d)}.npy") for d in (first, second))
    assert not np.allclose(a, b, atol=1e-2)  # two descriptors, two banks
