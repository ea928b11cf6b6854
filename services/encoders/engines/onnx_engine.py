"""The ONNX Runtime engine: the ``TextEncoder`` / ``ImageEncoder`` interfaces over exported graphs.

These objects load only the graph (``onnx_export``), the tokenizer and the small card next to
the graph; no PyTorch weights. Tokenising, image decoding/resizing and the extra inputs stay
the same Python code the PyTorch towers use, so the two engines differ only in the network.

Threads: ONNX Runtime's intra-op pool per session (``intra_threads``) and one inter-op thread
(the graphs are sequential). ``spinning=False`` turns off the pool's busy-wait: on a 2-core
machine shared by the text and image instances a spinning idle pool steals the core the
other instance needs (the same trap as OpenMP in PyTorch, see ``repository.torch_threads``).

Batches of more than a few rows (catalog ingestion) take the throughput path of
``parallel_runs``: length-sorted chunks run on ``workers`` threads at once (text: the one
session, which is thread-safe; image: a second, single-threaded session, since the batch-1
session may have several intra-op threads). A batch-1 search never touches it.
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
from services.encoders.engines.parallel_runs import ParallelRuns, available_cores, even_chunks, length_chunks, trim_padding
from services.encoders.engines.graph_inputs import (  # noqa: F401 (re-exported for the model files)
    EXTRA_INPUTS,
    Tokenize,
    extra_input_dim,
    extra_input_specs,
    tokenizer_for,
)

log = logging.getLogger(__name__)

# Batches up to this many rows run as one call on the latency session (the search path).
SMALL_BATCH = 2


def default_workers(intra_threads: int) -> int:
    """Parallel runs of the throughput path: the cores shared out over each run's threads."""
    return max(1, available_cores() // max(1, int(intra_threads)))


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
                 max_chars: int = DEFAULT_MAX_CHARS, device: str | torch.device = "cpu", workers: int = 0) -> None:
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
        # An int8 graph quantizes its activations with one scale per tensor, i.e. per batch: a text's
        # vector would depend on the texts batched with it (cosine down to 0.995 on dev passages).
        # Each text runs alone there, padding-free: measured 5.5 vs 5.0 ms a passage batched.
        self.per_row = card.get("precision", "fp32") != "fp32"
        self._tokenize = tokenizer_for(spec, self.max_tokens)
        gpu = self.device.type == "cuda"  # one device: the batch runs whole there
        self.runs = ParallelRuns(1 if gpu else (workers or default_workers(intra_threads)))

    def check(self, text: str) -> str | None:
        return check_text(text, self.max_chars)

    def encode(self, texts: Sequence[str], mode: TextMode) -> torch.Tensor:
        feeds = self._tokenize(texts, mode)
        feeds = {n: feeds[n] for n in self.inputs}
        if len(texts) == 1 or (len(texts) <= SMALL_BATCH and not self.per_row) or "attention_mask" not in feeds:
            out = self.session.run(["EMBEDDING"], feeds)[0]
            return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
        lengths = feeds["attention_mask"].sum(axis=1).tolist()
        if self.per_row:
            chunks = [[i] for i in sorted(range(len(texts)), key=lambda i: -lengths[i])]
        else:
            chunks = length_chunks(lengths, workers=self.runs.workers)
        parts = self.runs.map(lambda rows: self.session.run(["EMBEDDING"], trim_padding(feeds, rows))[0], chunks)
        out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        for rows, part in zip(chunks, parts):
            out[rows] = part
        return torch.from_numpy(out)


# -- image ------------------------------------------------------------------------------------
class OnnxImageEncoder:
    """``ImageEncoder`` over the exported image graph (pixels in, like the torch tower)."""

    def __init__(self, spec: ModelSpec, intra_threads: int = 1, spinning: bool = False,
                 device: str | torch.device = "cpu", workers: int = 0) -> None:
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
        # throughput path: single-threaded runs side by side (a small graph: the second session is cheap)
        self.runs = ParallelRuns(1 if gpu else (workers or available_cores()))
        self.bulk = self.session if self.runs.workers == 1 or intra_threads == 1 else make_session(graph.path, 1, False)
        # the visual descriptor: a VISUAL output of the image graph (index side) and a graph of
        # its own for query photos at the larger size (onnx_export.export_visual)
        self.visual_version: str = card.get("visual_version", "") if "VISUAL" in card.get("outputs", []) else ""
        self.visual_session = None
        self.scene_session = None
        self.scene_extras: list[dict[str, Any]] = []
        if self.visual_version:
            from services.encoders.engines.onnx_export import export_visual

            vgraph = export_visual(spec)
            self.visual_card: dict[str, Any] = vgraph.card
            self.visual_session = make_session(vgraph.path, intra_threads, spinning, gpu=gpu)
            # shop the look: the 149 windows of one 640 px pass (models.scene_windows)
            scene = export_visual(spec, scene=True)
            self.scene_extras = list(scene.card.get("extra_inputs") or [])
            self.scene_session = make_session(scene.path, intra_threads, spinning, gpu=gpu)

    def _feeds(self, pixels: torch.Tensor, extras: list[dict[str, Any]] | None = None) -> dict[str, np.ndarray]:
        """PIXELS + the graph's extra inputs (``extras``: the image graph's by default)."""
        feeds = {"PIXELS": pixels.numpy()}
        for e in self.extras if extras is None else extras:
            feeds[e["name"]] = EXTRA_INPUTS[e["kind"]](pixels, self.pixel_spec, e).numpy()
        return feeds

    def _outputs(self, pixels: torch.Tensor, names: list[str]) -> list[np.ndarray]:
        """The named outputs of the image graph; a large batch runs as single-threaded chunks side by side."""
        pixels = pixels.float().cpu()
        if len(pixels) <= SMALL_BATCH or self.runs.workers == 1:
            return self.session.run(names, self._feeds(pixels))
        chunks = even_chunks(len(pixels), self.runs.workers)
        parts = self.runs.map(lambda rows: self.bulk.run(names, self._feeds(pixels[rows[0] : rows[-1] + 1])), chunks)
        return [np.concatenate([p[i] for p in parts]) for i in range(len(names))]

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        (out,) = self._outputs(pixels, ["EMBEDDING"])
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))

    def encode_with_visual(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (n, dim), visual rows (n, 512)) from one run of the image graph."""
        if not self.visual_version:
            raise RuntimeError("this image graph has no VISUAL output")
        emb, vis = self._outputs(pixels, ["EMBEDDING", "VISUAL"])
        return (torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(vis, dtype=np.float32)))

    def visual_regions(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, R, 512) regional visual rows of query photos (pixels at the query size)."""
        if self.visual_session is None:
            raise RuntimeError("this image tower has no visual graph")
        out = self.visual_session.run(["VISUAL"], {"PIXELS": pixels.float().cpu().numpy()})[0]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))

    def visual_scene(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shop-the-look rows of room photos (pixels at ``SCENE_SIZE``): (n, 149, 512) window rows
        and (n, 149, dim) text-space window vectors, one run of the scene graph."""
        if self.scene_session is None:
            raise RuntimeError("this image tower has no visual graph")
        rows, emb = self.scene_session.run(["VISUAL", "REGION_EMBEDDING"], self._feeds(pixels.float().cpu(), self.scene_extras))
        return (torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32)))

    @property
    def visual_sizes(self) -> tuple[int, int]:
        """(index size, query size) of the visual views."""
        return int(self.visual_card["index_size"]), int(self.visual_card["query_size"])


# -- engine choice ----------------------------------------------------------------------------
ENGINES = ("onnx", "torch")


def build_text_encoder(spec: ModelSpec, engine: str, *, threads: int = 1, spinning: bool = False,
                       device: str | torch.device = "cpu", half: bool = False, max_chars: int = DEFAULT_MAX_CHARS,
                       workers: int = 0) -> Any:
    """The text tower on ``engine`` ("onnx" default, "torch" the reference)."""
    if engine == "torch":
        if spec.text_precision != "fp32":  # its vectors would be served under the int8 version
            raise ValueError(f"text precision {spec.text_precision!r} needs the onnx engine (torch serves fp32 only)")
        return spec.build_text(device=device, half=half, max_chars=max_chars)
    if engine != "onnx":
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return OnnxTextEncoder(spec, intra_threads=threads, spinning=spinning, max_chars=max_chars, device=device,
                           workers=workers)


def build_image_encoder(spec: ModelSpec, engine: str, *, threads: int = 1, spinning: bool = False,
                        device: str | torch.device = "cpu", half: bool = False, workers: int = 0) -> Any:
    """The image tower on ``engine`` ("onnx" default, "torch" the reference)."""
    if engine == "torch":
        return spec.build_image(device=device, half=half)
    if engine != "onnx":
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return OnnxImageEncoder(spec, intra_threads=threads, spinning=spinning, device=device, workers=workers)
