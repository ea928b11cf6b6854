"""The ``visual`` image vector: a raw, L2-normalised backbone descriptor for photo -> photo search.

Why a second vector: the text-space ``image`` vector (backbone -> trained head -> e5 space) keeps
what a caption can say (type, colour) and loses what identifies one product among its siblings;
for a shopper photo of a catalogue product the raw backbone features keep it (measured in
docs/evaluation.md, "Photo queries"). The index stores this vector per photo as the ``visual``
multivector (one row per view of each photo, MAX_SIM), and photo queries are compared in it.

Descriptor (``VisualTower``, a plain ``nn.Module`` so the ONNX engine can export it): the last
convolutional feature map of the backbone, generalised-mean pooled (GeM, p = 3; more weight on the
strongest activations = the object, less on flat background than the average), L2-normalised,
PCA-whitened to 512 dimensions (shrinkage 0.5: divide by the square root of each component's
standard deviation) and L2-normalised again. The whitening (``heads/visual-*/whitening.safetensors``)
is learned, unsupervised, on the catalogue photos (whole + foreground crop) of the *training*
product lines only, so held-out numbers stay held out.

Measured on the 200 shopper photos against the 1,685 dev catalogue photos (offline, ONNX Runtime,
docs/evaluation.md "Photo queries"): max over the 15 query crops and the 2 catalogue views,
Hit@1 / R@10: average pool 0.425 / 0.655; GeM 0.445 / 0.675; GeM + whitening 0.495 / 0.730.
Lost: square-rooting (0.22 / 0.45), max pooling, 288 px views, summing over the crops instead of
taking the best one (Qdrant's multi-row MAX_SIM sums: 0.27 / 0.54, so the ranking service runs one
search per crop and keeps each product's best).

Views (``preprocess.visual_boxes``): a catalogue photo at index time is described by the whole
padded photo and a tight crop to its foreground (non-white pixels), so the product fills the
frame as it does in a close-up; a query photo is described by several crops (whole, 2x2 and 3x3
overlapping grids, centre), because a shopper photo shows the product somewhere in a room. The
query's score for a product is the best match over its views and the product's views.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

VISUAL_VERSION = "gem3-pw512-c35bf4d4"
DEFAULT_VISUAL_DIR = Path(__file__).resolve().parent / "heads" / f"visual-{VISUAL_VERSION}"
BACKBONE_DIM = 1280
VISUAL_DIM = 512
GEM_P = 3.0


class VisualTower(nn.Module):
    """(n, 3, S, S) normalised pixels -> (n, 512) L2-normalised whitened GeM descriptor.

    ``trunk`` is any module whose ``extract_features`` returns the last conv map (n, C, h, w)
    with non-negative activations (EfficientNet-Lite's ReLU6 head)."""

    def __init__(self, trunk: nn.Module, whitening_dir: Path = DEFAULT_VISUAL_DIR, p: float = GEM_P) -> None:
        super().__init__()
        from safetensors.torch import load_file

        self.trunk = trunk
        self.p = float(p)
        w = load_file(str(Path(whitening_dir) / "whitening.safetensors"))
        if tuple(w["projection"].shape) != (BACKBONE_DIM, VISUAL_DIM):
            raise ValueError(f"{whitening_dir}: projection must be {BACKBONE_DIM}x{VISUAL_DIM}")
        self.register_buffer("mean", w["mean"].float(), persistent=False)
        self.register_buffer("projection", w["projection"].float(), persistent=False)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """(n, C, h, w) -> (n, 512) descriptor (the part after the backbone)."""
        x = fmap.float().clamp_min(1e-6).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)
        x = nn.functional.normalize(x, p=2.0, dim=-1)
        x = (x - self.mean) @ self.projection
        return nn.functional.normalize(x, p=2.0, dim=-1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk.extract_features(pixels))
