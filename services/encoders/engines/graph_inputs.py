"""What feeds an exported graph besides pixels: the text towers' tokenizers and the image towers'
extra inputs (computed outside the network, e.g. the colour histogram). Shared by the exporter
(``onnx_export``, which checks parity through them) and the engine (``onnx_engine``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from services.encoders.models.base import PixelSpec, TextMode
from services.encoders.models.spec import ModelSpec

Tokenize = Callable[[Sequence[str], TextMode], dict[str, np.ndarray]]


def tokenizer_for(spec: ModelSpec, max_tokens: int | None = None) -> Tokenize:
    """The tokenizer of ``spec``'s text tower as int64 numpy feeds keyed by graph input name."""
    if spec.model_dir is None:
        from services.encoders.models.e5_convert import convert_e5
        from services.encoders.models.e5_text import e5_token_arrays
        from services.encoders.models.e5_tokenizer import E5Tokenizer

        model_dir = convert_e5(spec.cache_dir)
        tok = E5Tokenizer.load(model_dir)
        limit = max_tokens or int(json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["max_position_embeddings"])

        def e5(texts: Sequence[str], mode: TextMode) -> dict[str, np.ndarray]:
            ids, mask = e5_token_arrays(tok, texts, mode, limit)
            return {"input_ids": ids, "attention_mask": mask}

        return e5
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(spec.model_dir), local_files_only=True)
    if max_tokens is None:
        cfg = json.loads((Path(spec.model_dir) / "config.json").read_text(encoding="utf-8"))
        max_tokens = int(cfg.get("text_config", {}).get("max_position_embeddings", 77))

    def clip(texts: Sequence[str], mode: TextMode) -> dict[str, np.ndarray]:
        if mode not in ("query", "passage"):
            raise ValueError(f"mode must be 'query' or 'passage', got {mode!r}")
        enc = hf(list(texts), padding=True, truncation=True, max_length=max_tokens, return_tensors="np")
        return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}

    return clip


def _colour_histogram(pixels: torch.Tensor, spec: PixelSpec, entry: dict[str, Any]) -> torch.Tensor:
    from services.encoders.models.colour import colour_histogram

    return colour_histogram(pixels, int(entry["bins"]), spec.mean, spec.std)


def _window_colour_histograms(pixels: torch.Tensor, spec: PixelSpec, entry: dict[str, Any]) -> torch.Tensor:
    """Each shop-the-look window's colour histogram (the scene graph's extra input)."""
    from services.encoders.models.scene_windows import scene_colour_histograms

    return torch.from_numpy(scene_colour_histograms(pixels.detach().float().cpu().numpy(), int(entry["bins"]),
                                                    spec.mean, spec.std))


# Extra graph inputs by kind: computed from the normalised pixels, exactly as the torch tower does.
EXTRA_INPUTS: dict[str, Callable[[torch.Tensor, PixelSpec, dict[str, Any]], torch.Tensor]] = {
    "colour_histogram": _colour_histogram,
    "window_colour_histogram": _window_colour_histograms,
}


def extra_input_dim(entry: dict[str, Any]) -> int:
    """Width of one extra input (recorded at export; derived for graphs exported before that)."""
    if "dim" in entry:
        return int(entry["dim"])
    if entry["kind"] in ("colour_histogram", "window_colour_histogram"):
        return int(entry["bins"]) ** 3
    raise ValueError(f"unknown extra input {entry}")


def extra_input_specs(tower: Any) -> list[dict[str, Any]]:
    """What a torch image tower declares it computes outside its network (checked against EXTRA_INPUTS)."""
    specs = list(getattr(tower, "graph_extra_input_specs", []) or [])
    unknown = [e for e in specs if e.get("kind") not in EXTRA_INPUTS]
    if unknown:
        raise ValueError(f"image tower declares extra inputs the ONNX engine cannot compute: {unknown}")
    return specs


