"""Pluggable image-text towers from a local Hugging Face CLIP / Chinese-CLIP checkpoint.

A directory written by ``save_pretrained`` (``config.json`` with ``model_type`` ``clip`` or
``chinese_clip``, weights, tokenizer files, optionally ``preprocessor_config.json``) serves
both encoders with no code change. Image preprocessing keeps our pipeline (EXIF, white
square padding instead of CLIP's centre crop, so whole products stay in view) with the
checkpoint's own input size and mean/std. Query/passage mode does not apply to CLIP-style
text towers and is ignored.

OpenCLIP checkpoints (``open_clip_config.json`` + ``open_clip_pytorch_model.bin``) need the
``open_clip_torch`` package, which pulls CUDA torch and torchvision; convert them once to the
Hugging Face layout instead (transformers' ``convert_clip_original_pytorch_to_hf`` script, or
use the HF-format files most hub OpenCLIP repos already ship) and point at the result.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from services.encoders.models.e5_text import DEFAULT_MAX_CHARS, check_text
from services.encoders.models.base import PixelSpec, TextMode, l2_normalize

log = logging.getLogger(__name__)

SUPPORTED_TYPES = ("clip", "chinese_clip")
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class CheckpointError(ValueError):
    """The directory is not a usable checkpoint; the message says what is missing."""


def checkpoint_type(model_dir: Path) -> str:
    """``clip`` / ``chinese_clip``; a clear error for OpenCLIP or unknown layouts."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"model directory {model_dir} does not exist")
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        if (model_dir / "open_clip_config.json").is_file():
            raise CheckpointError(
                f"{model_dir} is an OpenCLIP checkpoint; convert it to the Hugging Face CLIP layout "
                "(config.json + model.safetensors + tokenizer files) and point HOMESEARCH_MODEL_DIR there"
            )
        raise CheckpointError(f"{model_dir} has no config.json (expected a Hugging Face CLIP checkpoint)")
    model_type = json.loads(cfg_path.read_text(encoding="utf-8")).get("model_type")
    if model_type not in SUPPORTED_TYPES:
        raise CheckpointError(f"{model_dir}: model_type {model_type!r} is not one of {SUPPORTED_TYPES}")
    return str(model_type)


def checkpoint_version(model_dir: Path) -> str:
    """Stable content-derived id, e.g. ``clip:my-ckpt#3f2a9c1d``.

    Hashes config.json plus each weight file's size and first/last MiB: cheap for multi-GB
    files, stable across copies (unlike mtimes), and changes whenever the weights do.
    """
    model_dir = Path(model_dir)
    model_type = checkpoint_type(model_dir)
    h = hashlib.sha256((model_dir / "config.json").read_bytes())
    weights = [model_dir / n for n in _WEIGHT_FILES if (model_dir / n).is_file()]
    if not weights:
        raise CheckpointError(f"{model_dir}: no weights ({' or '.join(_WEIGHT_FILES)})")
    for w in weights:
        size = w.stat().st_size
        h.update(f"{w.name}:{size}".encode())
        with w.open("rb") as f:
            h.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            h.update(f.read(1 << 20))
    return f"{model_type}:{model_dir.name}#{h.hexdigest()[:8]}"


def _load_model(model_dir: Path, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import ChineseCLIPModel, CLIPModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # progress bars would flood the server log
    cls = ChineseCLIPModel if checkpoint_type(model_dir) == "chinese_clip" else CLIPModel
    model = cls.from_pretrained(str(model_dir), local_files_only=True)
    return model.eval().to(device, dtype)


def _features(out: object) -> torch.Tensor:
    """transformers 5 returns an output object (projected features in pooler_output); 4.x a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output  # type: ignore[attr-defined]


class ClipTextEncoder:
    """``TextEncoder`` over a CLIP-family text tower."""

    def __init__(
        self,
        model_dir: Path,
        device: str | torch.device = "cpu",
        half: bool = False,
        max_chars: int = DEFAULT_MAX_CHARS,
        model: torch.nn.Module | None = None,
    ) -> None:
        from transformers import AutoTokenizer

        self.device = torch.device(device)
        self.dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        self.model = model or _load_model(Path(model_dir), self.device, self.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.max_tokens = int(self.model.config.text_config.max_position_embeddings)
        self.max_chars = max_chars
        self.version = checkpoint_version(Path(model_dir))
        self.dim = int(self.model.config.projection_dim)

    def check(self, text: str) -> str | None:
        return check_text(text, self.max_chars)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], mode: TextMode) -> torch.Tensor:
        if mode not in ("query", "passage"):
            raise ValueError(f"mode must be 'query' or 'passage', got {mode!r}")
        enc = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        kwargs = {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}
        if "token_type_ids" in enc:  # Chinese-CLIP's BERT text tower
            kwargs["token_type_ids"] = enc["token_type_ids"].to(self.device)
        return l2_normalize(_features(self.model.get_text_features(**kwargs))).cpu()


def pixel_spec(model_dir: Path, image_size: int) -> PixelSpec:
    """Input size and mean/std from preprocessor_config.json, CLIP defaults otherwise."""
    p = Path(model_dir) / "preprocessor_config.json"
    cfg = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
    size = cfg.get("crop_size") or cfg.get("size") or image_size
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge") or image_size
    return PixelSpec(
        size=int(size),
        mean=tuple(cfg.get("image_mean", OPENAI_MEAN)),  # type: ignore[arg-type]
        std=tuple(cfg.get("image_std", OPENAI_STD)),  # type: ignore[arg-type]
    )


class ClipImageEncoder:
    """``ImageEncoder`` over a CLIP-family vision tower."""

    def __init__(
        self,
        model_dir: Path,
        device: str | torch.device = "cpu",
        half: bool = False,
        model: torch.nn.Module | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        self.model = model or _load_model(Path(model_dir), self.device, self.dtype)
        self.version = checkpoint_version(Path(model_dir))
        self.dim = int(self.model.config.projection_dim)
        self.pixel_spec = pixel_spec(Path(model_dir), int(self.model.config.vision_config.image_size))

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
        return l2_normalize(_features(out)).cpu()
