"""The in-process encoder interfaces every model family implements.

Triton's ``model.py`` files, the benchmark's in-process baseline and the tests all call these
same objects, so "through Triton" and "direct PyTorch" measure and check one code path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

TextMode = Literal["query", "passage"]


class TextEncoder(Protocol):
    """Text -> L2-normalised vectors."""

    version: str
    dim: int
    device: torch.device

    def check(self, text: str) -> str | None:
        """Returns why ``text`` cannot be encoded, or None when it can."""

    def encode(self, texts: Sequence[str], mode: TextMode) -> torch.Tensor:
        """(n, dim) float32 on CPU, rows L2-normalised."""


@dataclass(frozen=True)
class PixelSpec:
    """How decoded images become the image tower's input tensor."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pad_to_square: bool = True  # pad with white: catalog photos are on white backgrounds


class ImageEncoder(Protocol):
    """Preprocessed pixels -> L2-normalised vectors in the text encoder's space."""

    version: str
    dim: int
    device: torch.device
    pixel_spec: PixelSpec

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """``pixels``: (n, 3, size, size) normalised, on ``device``. Returns (n, dim) float32 CPU."""


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), p=2.0, dim=-1)


def read_card(path: Path, fmt: str, error: type[Exception]) -> dict[str, Any]:
    """The JSON model card at ``path`` (a head's or the visual descriptor's): unreadable JSON or
    another ``format`` raises ``error`` naming the file, so a bad card fails at load, not mid-serve."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise error(f"{path}: {e}") from None
    if raw.get("format") != fmt:
        raise error(f"{path}: format {raw.get('format')!r} is not {fmt!r}")
    return raw
