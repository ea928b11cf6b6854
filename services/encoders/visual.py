"""The ``visual`` image vector: a raw, L2-normalised backbone descriptor for photo -> photo search.

Why a second vector: the text-space ``image`` vector (backbone -> trained head -> e5 space) keeps
what a caption can say (type, colour) and loses what identifies one product among its siblings;
for a shopper photo of a catalogue product the raw backbone features keep it (measured in
docs/evaluation.md, "Photo queries"). The index stores this vector per photo as the ``visual``
multivector (one row per view of each photo, MAX_SIM), and photo queries are compared in it.

Descriptor (``VisualTower``, a plain ``nn.Module`` so the ONNX engine can export it): the last
convolutional feature map of the backbone, generalised-mean pooled (GeM, p = 3; more weight on the
strongest activations = the object, less on flat background than the average), square-rooted
(Hellinger-style power normalisation, tames bursty channels) and L2-normalised.

Views (``preprocess.visual_boxes``): a catalogue photo at index time is described by the whole
padded photo and a tight crop to its foreground (non-white pixels), so the product fills the
frame as it does in a close-up; a query photo is described by several crops (whole, 2x2 and 3x3
overlapping grids, centre), because a shopper photo shows the product somewhere in a room. The
query's score for a product is the best match over its views and the product's views.
"""

from __future__ import annotations

import torch
from torch import nn

VISUAL_VERSION = "gem3-sqrt-v1"
VISUAL_DIM = 1280
GEM_P = 3.0


class VisualTower(nn.Module):
    """(n, 3, S, S) normalised pixels -> (n, 1280) L2-normalised GeM descriptor.

    ``trunk`` is any module whose ``extract_features`` returns the last conv map (n, C, h, w)
    with non-negative activations (EfficientNet-Lite's ReLU6 head)."""

    def __init__(self, trunk: nn.Module, p: float = GEM_P) -> None:
        super().__init__()
        self.trunk = trunk
        self.p = float(p)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """(n, C, h, w) -> (n, C) descriptor, L2-normalised (the part after the backbone)."""
        x = fmap.float().clamp_min(1e-6).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)
        x = x.sqrt()
        return nn.functional.normalize(x, p=2.0, dim=-1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk.extract_features(pixels))
