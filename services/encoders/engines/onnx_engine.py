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

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from services.encoders.models.e5_text import DEFAULT_MAX_CHARS, check_text
from services.encoders.models.base import PixelSpec, TextMode
from services.encoders.models.spec import ModelSpec

log = logging.getLogger(__name__)

Tokenize = Callable[[Sequence[str], TextMode], dict[str, np.ndarray]]


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
def _colour_histogram(pixels: torch.Tensor, spec: PixelSpec, entry: dict[str, Any]) -> torch.Tensor:
    from services.encoders.models.colour import colour_histogram

    return colour_histogram(pixels, int(entry["bins"]), spec.mean, spec.std)


# Extra graph inputs by kind: computed from the normalised pixels, exactly as the torch tower does.
EXTRA_INPUTS: dict[str, Callable[[torch.Tensor, PixelSpec, dict[str, Any]], torch.Tensor]] = {
    "colour_histogram": _colour_histogram,
}


def extra_input_dim(entry: dict[str, Any]) -> int:
    """Width of one extra input (recorded at export; derived for graphs exported before that)."""
    if "dim" in entry:
        return int(entry["dim"])
    if entry["kind"] == "colour_histogram":
        return int(entry["bins"]) ** 3
    raise ValueError(f"unknown extra input {entry}")


def extra_input_specs(tower: Any) -> list[dict[str, Any]]:
    """What a torch image tower declares it computes outside its network (checked against EXTRA_INPUTS)."""
    specs = list(getattr(tower, "graph_extra_input_specs", []) or [])
    unknown = [e for e in specs if e.get("kind") not in EXTRA_INPUTS]
    if unknown:
        raise ValueError(f"image tower declares extra inputs the ONNX engine cannot compute: {unknown}")
    return specs


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
        self.session = make_session(graph.path, intra_threads, spinning, gpu=torch.device(device).type == "cuda")

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.float().cpu()
        feeds = {"PIXELS": pixels.numpy()}
        for e in self.extras:
            feeds[e["name"]] = EXTRA_INPUTS[e["kind"]](pixels, self.pixel_spec, e).numpy()
        out = self.session.run(["EMBEDDING"], feeds)[0]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


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
