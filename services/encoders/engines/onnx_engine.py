"""The ONNX Runtime engine: the ``TextEncoder`` / ``ImageEncoder`` interfaces over exported graphs.

These objects load only the graph (``onnx_export``), the tokenizer and the small card next to
the graph; no PyTorch weights. Tokenising, image decoding/resizing and the extra inputs stay
the same Python code the PyTorch towers use, so the two engines differ only in the network.

Threads: ONNX Runtime's intra-op pool per session (``intra_threads``) and one inter-op thread
(the graphs are sequential). ``spinning=False`` turns off the pool's busy-wait: on a 2-core
machine shared by the text and image instances a spinning idle pool steals the core the
other instance needs (the same trap as OpenMP in PyTorch, see ``repository.torch_threads``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from services.encoders.models.e5_text import DEFAULT_MAX_CHARS, check_text
from services.encoders.models.base import PixelSpec, TextMode
from services.encoders.models.spec import ModelSpec
from services.encoders.engines.graph_inputs import (  # noqa: F401 (re-exported for the model files)
    EXTRA_INPUTS,
    Tokenize,
    extra_input_dim,
    extra_input_specs,
    tokenizer_for,
)

log = logging.getLogger(__name__)

def make_session(path: Path, intra_threads: int = 1, spinning: bool = False, gpu: bool = False) -> Any:
    """An InferenceSession with full graph optimisation and the given thread budget."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = max(1, int(intra_threads))
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), opts, providers=providers)


# -- text -------------------------------------------------------------------------------------
class OnnxTextEncoder:
    """``TextEncoder`` over the exported text graph."""

    def __init__(self, spec: ModelSpec, intra_threads: int = 1, spinning: bool = False,
                 max_chars: int = DEFAULT_MAX_CHARS, device: str | torch.device = "cpu") -> None:
        from services.encoders.engines.onnx_export import export_text

        graph = export_text(spec)  # cached by prepare-models; exported here only if missing
        card = graph.card
        self.device = torch.device(device)
        self.version: str = card["version"]
        self.dim: int = int(card["dim"])
        self.max_chars = max_chars
        self.max_tokens = int(card["max_tokens"])
        self.inputs: list[str] = list(card["inputs"])
        self.graph_path = graph.path
        self.session = make_session(graph.path, intra_threads, spinning, gpu=self.device.type == "cuda")
        self._tokenize = tokenizer_for(spec, self.max_tokens)

    def check(self, text: str) -> str | None:
        return check_text(text, self.max_chars)

    def encode(self, texts: Sequence[str], mode: TextMode) -> torch.Tensor:
        feeds = self._tokenize(texts, mode)
        out = self.session.run(["EMBEDDING"], {n: feeds[n] for n in self.inputs})[0]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


# -- image ------------------------------------------------------------------------------------
class OnnxImageEncoder:
    """``ImageEncoder`` over the exported image graph (pixels in, like the torch tower)."""

    def __init__(self, spec: ModelSpec, intra_threads: int = 1, spinning: bool = False,
                 device: str | torch.device = "cpu") -> None:
        from services.encoders.engines.onnx_export import export_image

        graph = export_image(spec)
        card = graph.card
        self.device = torch.device("cpu")  # pixels are handed over as numpy; decode on CPU
        self.version: str = card["version"]
        self.dim: int = int(card["dim"])
        self.head_version = self.version.split("+", 1)[1] if "+" in self.version else None
        px = card["pixels"]
        self.pixel_spec = PixelSpec(size=int(px["size"]), mean=tuple(px["mean"]), std=tuple(px["std"]),  # type: ignore[arg-type]
                                    pad_to_square=bool(px.get("pad_to_square", True)))
        self.extras: list[dict[str, Any]] = list(card.get("extra_inputs") or [])
        self.graph_path = graph.path
        gpu = torch.device(device).type == "cuda"
        self.session = make_session(graph.path, intra_threads, spinning, gpu=gpu)
        # the visual descriptor: a VISUAL output of the image graph (index side) and a graph of
        # its own for query photos at the larger size (onnx_export.export_visual)
        self.visual_version: str = card.get("visual_version", "") if "VISUAL" in card.get("outputs", []) else ""
        self.visual_session = None
        self.scene_session = None
        if self.visual_version:
            from services.encoders.engines.onnx_export import export_visual

            vgraph = export_visual(spec)
            self.visual_card: dict[str, Any] = vgraph.card
            self.visual_session = make_session(vgraph.path, intra_threads, spinning, gpu=gpu)
            # shop the look: the 149 windows of one 640 px pass (models.scene_windows)
            self.scene_session = make_session(export_visual(spec, scene=True).path, intra_threads, spinning, gpu=gpu)

    def _feeds(self, pixels: torch.Tensor) -> dict[str, np.ndarray]:
        pixels = pixels.float().cpu()
        feeds = {"PIXELS": pixels.numpy()}
        for e in self.extras:
            feeds[e["name"]] = EXTRA_INPUTS[e["kind"]](pixels, self.pixel_spec, e).numpy()
        return feeds

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.session.run(["EMBEDDING"], self._feeds(pixels))[0]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))

    def encode_with_visual(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (n, dim), visual rows (n, 512)) from one run of the image graph."""
        if not self.visual_version:
            raise RuntimeError("this image graph has no VISUAL output")
        emb, vis = self.session.run(["EMBEDDING", "VISUAL"], self._feeds(pixels))
        return (torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(vis, dtype=np.float32)))

    def visual_regions(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, R, 512) regional visual rows of query photos (pixels at the query size)."""
        if self.visual_session is None:
            raise RuntimeError("this image tower has no visual graph")
        out = self.visual_session.run(["VISUAL"], {"PIXELS": pixels.float().cpu().numpy()})[0]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))

    def visual_scene(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 149, 512) shop-the-look rows of room photos (pixels at ``SCENE_SIZE``)."""
        if self.scene_session is None:
            raise RuntimeError("this image tower has no visual graph")
        out = self.scene_session.run(["VISUAL"], {"PIXELS": pixels.float().cpu().numpy()})[0]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))

    @property
    def visual_sizes(self) -> tuple[int, int]:
        """(index size, query size) of the visual views."""
        return int(self.visual_card["index_size"]), int(self.visual_card["query_size"])


# -- engine choice ----------------------------------------------------------------------------
ENGINES = ("onnx", "torch")


def build_text_encoder(spec: ModelSpec, engine: str, *, threads: int = 1, spinning: bool = False,
                       device: str | torch.device = "cpu", half: bool = False, max_chars: int = DEFAULT_MAX_CHARS) -> Any:
    """The text tower on ``engine`` ("onnx" default, "torch" the reference)."""
    if engine == "torch":
        return spec.build_text(device=device, half=half, max_chars=max_chars)
    if engine != "onnx":
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return OnnxTextEncoder(spec, intra_threads=threads, spinning=spinning, max_chars=max_chars, device=device)


def build_image_encoder(spec: ModelSpec, engine: str, *, threads: int = 1, spinning: bool = False,
                        device: str | torch.device = "cpu", half: bool = False) -> Any:
    """The image tower on ``engine`` ("onnx" default, "torch" the reference)."""
    if engine == "torch":
        return spec.build_image(device=device, half=half)
    if engine != "onnx":
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return OnnxImageEncoder(spec, intra_threads=threads, spinning=spinning, device=device)
