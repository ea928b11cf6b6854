"""Exports both towers to ONNX at ``homesearch prepare-models``, checked against PyTorch.

Why: on 2 CPU cores ONNX Runtime runs the same weights at ~0.5x (e5) and ~0.1-0.16x
(EfficientNet-Lite0) of PyTorch eager's time (docs/performance.md). PyTorch stays the
reference: every graph is compared with the torch tower it came from before it is cached,
and a graph whose outputs differ (cosine < ``MIN_COSINE`` on any row) is refused.

What a graph contains (the part the engine runs; the rest stays in Python):

* text: token ids + attention mask (+ token type ids for Chinese-CLIP) -> L2-normalised
  embedding. Tokenising and the e5 "query: "/"passage: " prefix stay outside (Rust
  tokenizers, ~1 ms).
* image: normalised pixels (n, 3, S, S) plus the tower's *extra inputs* -> embedding (plus
  any extra outputs the tower declares). Extra inputs are what the tower computes from the
  pixels outside its network, e.g. the colour histogram a head may take (``bincount`` has no
  ONNX op); the graph receives them as named inputs and the runtime computes them with the
  same code (``graph_inputs.EXTRA_INPUTS``).

The image export is generic over the torch tower object: a tower that defines
``graph_extra_inputs(pixels) -> dict[name, Tensor]`` and ``graph_forward(pixels, **extras)``
is exported through those; any other tower (the pluggable CLIP directory, a new head whose
ops all export) is traced through its ``encode_pixels``. ``graph_output_names`` (optional)
names extra outputs after ``EMBEDDING``.

Cache layout, beside the converted weights (``HOMESEARCH_MODEL_CACHE``)::

    <cache>/onnx/<tower>/<model version>#<key>/model.onnx + graph.json

``key`` hashes the model version, a fingerprint of the source weights and ``EXPORT_VERSION``,
so a new head, checkpoint or exporter never reuses an old graph. ``graph.json`` records the
inputs, outputs, pixel spec, extra inputs and the parity measured at export.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from services.encoders.models.e5_convert import cache_lock, default_cache_dir
from services.encoders.models.spec import ModelSpec

log = logging.getLogger(__name__)

EXPORT_VERSION = 1
# A tower whose graph changed inputs/outputs gets its own format number (part of the cache key), so
# its cached graph is re-exported while the others stay: scene 2 = + REGION_EMBEDDING output.
GRAPH_FORMATS: dict[str, int] = {"scene": 2}
OPSET = 17
MIN_COSINE = 0.999
# A text graph with dynamic int8 weights (ModelSpec.text_precision) is another model version, held
# to its own bar: the shipped recipe (7-bit weights) measured 0.9973 min on the parity texts, 0.9971
# min / 0.9980 mean on 80 dev passages (docs/performance.md, Stop 26); a broken quantization lands far below.
MIN_COSINE_INT8 = 0.99
GRAPH_FILE = "model.onnx"
CARD_FILE = "graph.json"
EMBEDDING = "EMBEDDING"

# Mixed Chinese/English texts of different lengths: the export-time parity set.
PARITY_TEXTS: tuple[str, ...] = (
    "白色的现代沙发",
    "modern cabinet, white doors, gold handles",
    "带有金色拉手和白色柜门的现代风格橱柜",
    "oak dining table 橡木餐桌 for six people",
    "KURA Reversible bed. Turned upside down the bed quickly converts from a low to a high bed. "
    "Sturdy frame in solid pine, 90x200 cm, 可翻转的儿童床, suits kids from six years.",
    "lamp",
)


class OnnxParityError(RuntimeError):
    """The exported graph does not reproduce the PyTorch tower; it is not cached or served."""


@dataclass(frozen=True)
class ExportedGraph:
    """One cached graph: where it is and what its card says."""

    path: Path  # the model.onnx file
    card: dict[str, Any]

    @property
    def directory(self) -> Path:
        return self.path.parent


# -- graph modules --------------------------------------------------------------------------
class E5TextGraph(torch.nn.Module):
    """BertModel + mean pooling over real tokens + L2 norm (the e5 convention)."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return F.normalize(pooled, p=2.0, dim=-1)


class ClipTextGraph(torch.nn.Module):
    """A CLIP / Chinese-CLIP text tower's projected features, L2-normalised."""

    def __init__(self, model: torch.nn.Module, with_token_types: bool) -> None:
        super().__init__()
        self.model = model
        self.with_token_types = with_token_types

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        from services.encoders.models.clip_models import _features

        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.with_token_types:
            kwargs["token_type_ids"] = rest[0]
        return F.normalize(_features(self.model.get_text_features(**kwargs)), p=2.0, dim=-1)


class ImageGraph(torch.nn.Module):
    """Any torch image tower object as a module: ``graph_forward`` or, failing that, ``encode_pixels``."""

    def __init__(self, tower: Any, extra_names: Sequence[str]) -> None:
        super().__init__()
        self.tower = tower
        self.extra_names = tuple(extra_names)
        for name, value in vars(tower).items():  # register the tower's modules (weights become initializers)
            if isinstance(value, torch.nn.Module):
                self.add_module(f"tower_{name}", value)

    def forward(self, pixels: torch.Tensor, *extras: torch.Tensor) -> Any:
        if hasattr(self.tower, "graph_forward"):
            return self.tower.graph_forward(pixels, **dict(zip(self.extra_names, extras)))
        return self.tower.encode_pixels(pixels)


# -- identity of what is exported -------------------------------------------------------------
def _sha_files(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def source_fingerprint(spec: ModelSpec, tower: str) -> str:
    """Content fingerprint of the weights a tower's graph is made from (cheap: small files only)."""
    if spec.model_dir is not None:
        return spec.reference_text_version()  # checkpoint_version is already content-derived
    if tower == "text":
        from services.encoders.models.e5_convert import e5_cache_path

        return _sha_files([e5_cache_path(spec.cache_dir) / "manifest.json"])
    from services.encoders.models.image_head import CARD_NAME, HeadCard

    head = Path(spec.head_dir) if spec.head_dir else None
    if head is None or not (head / CARD_NAME).is_file():
        base = "random-head"
    else:
        card = HeadCard.read(head)
        base = _sha_files([head / CARD_NAME, head / card.weights])
    if tower in ("image", "visual", "scene") and spec.visual_version():
        from services.encoders.models.visual import CARD_NAME as VISUAL_CARD, VisualCard

        vdir = Path(spec.visual_dir)  # type: ignore[arg-type]
        base += "+" + _sha_files([vdir / VISUAL_CARD, vdir / VisualCard.read(vdir).weights])
    return base


def graph_dir(spec: ModelSpec, tower: str) -> Path:
    """``<cache>/onnx/<tower>/<version>#<key>`` for ``tower`` in ("text", "image", "visual")."""
    version = spec.text_version() if tower == "text" else spec.image_version()
    if tower != "text" and spec.visual_version():
        version += f"+{spec.visual_version()}"
    fmt = f"|{GRAPH_FORMATS[tower]}" if tower in GRAPH_FORMATS else ""
    key = hashlib.sha256(f"{version}|{source_fingerprint(spec, tower)}|{EXPORT_VERSION}|{OPSET}{fmt}".encode())
    safe = re.sub(r"[^A-Za-z0-9._+@-]+", "_", version)
    return (spec.cache_dir or default_cache_dir()) / "onnx" / tower / f"{safe}#{key.hexdigest()[:10]}"


def load_exported(spec: ModelSpec, tower: str) -> ExportedGraph | None:
    """The cached graph for ``tower``, or None when it is missing or incomplete."""
    d = graph_dir(spec, tower)
    try:
        card = json.loads((d / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (d / GRAPH_FILE).is_file() or card.get("export_version") != EXPORT_VERSION:
        return None
    return ExportedGraph(d / GRAPH_FILE, card)


# -- parity -----------------------------------------------------------------------------------
def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na = np.linalg.norm(a, axis=1).clip(1e-12)
    nb = np.linalg.norm(b, axis=1).clip(1e-12)
    return (a * b).sum(1) / (na * nb)


def parity_bar(precision: str) -> float:
    """The least cosine to PyTorch a graph of this precision must reach on every parity row."""
    return MIN_COSINE if precision == "fp32" else MIN_COSINE_INT8


def _check_parity(what: str, reference: np.ndarray, got: np.ndarray, bar: float = MIN_COSINE) -> float:
    if reference.shape != got.shape:
        raise OnnxParityError(f"{what}: ONNX output shape {got.shape} differs from PyTorch {reference.shape}")
    cos = float(row_cosines(reference, got).min())
    if not np.isfinite(cos) or cos < bar:
        raise OnnxParityError(f"{what}: ONNX vs PyTorch cosine {cos:.5f} < {bar}; graph refused")
    return cos


def _session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


# -- export -----------------------------------------------------------------------------------
def _export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, inputs: list[str],
            outputs: list[str], dynamic: dict[str, dict[int, str]]) -> None:
    with torch.no_grad():
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _write(spec: ModelSpec, tower: str, build: Callable[[Path], dict[str, Any]]) -> ExportedGraph:
    """Exports into a temp dir and renames it into place under the cache lock (idempotent)."""
    target = graph_dir(spec, tower)
    target.parent.mkdir(parents=True, exist_ok=True)
    with cache_lock(target.parent):
        done = load_exported(spec, tower)
        if done is not None:
            return done
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; serving may run as another user
        try:
            t0 = time.monotonic()
            card = build(tmp / GRAPH_FILE)
            card.update(export_version=EXPORT_VERSION, opset=OPSET, torch_version=torch.__version__,
                        export_s=round(time.monotonic() - t0, 2), source=source_fingerprint(spec, tower))
            (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported ONNX graph", extra={"tower": tower, "path": str(target), "min_cosine": card["parity_min_cosine"]})
    return ExportedGraph(target / GRAPH_FILE, card)


def text_graph_module(encoder: Any) -> tuple[torch.nn.Module, list[str]]:
    """The exportable module of a torch text tower and its input names."""
    from services.encoders.models.e5_text import E5TextEncoder

    if isinstance(encoder, E5TextEncoder):
        return E5TextGraph(encoder.model), ["input_ids", "attention_mask"]
    with_types = "token_type_ids" in encoder.tokenizer(["a"], return_tensors="pt")
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    return ClipTextGraph(encoder.model, with_types), names


def _text_parity(sess: Any, names: Sequence[str], tokenize: Callable[..., dict[str, np.ndarray]],
                 encoder: Any, bar: float, one_at_a_time: bool = False) -> float:
    """The least cosine between the graph and the PyTorch tower over the parity texts, both modes,
    batched and single (raises OnnxParityError below ``bar``). ``one_at_a_time``: every text runs
    alone, as an int8 graph is served (``OnnxTextEncoder.per_row``)."""
    worst = 1.0
    # one at a time, the single-text batches would only repeat rows of the whole list
    batches = [list(PARITY_TEXTS)] if one_at_a_time else [list(PARITY_TEXTS), [PARITY_TEXTS[0]], [PARITY_TEXTS[4]]]
    for mode in ("query", "passage"):
        for batch in batches:
            runs = [[t] for t in batch] if one_at_a_time else [batch]
            got = np.concatenate([sess.run([EMBEDDING], {n: f[n] for n in names})[0]
                                  for f in (tokenize(run, mode) for run in runs)])
            ref = encoder.encode(batch, mode).numpy()
            worst = min(worst, _check_parity(f"text tower ({mode}, batch {len(batch)})", ref, got, bar))
    return worst


def export_text(spec: ModelSpec, encoder: Any | None = None) -> ExportedGraph:
    """The text tower's graph (exported now unless cached); raises OnnxParityError on mismatch.
    At ``text_precision`` int8 it is the fp32 graph (exported and checked first) with ONNX
    Runtime's dynamic int8 weights, checked against PyTorch at ``MIN_COSINE_INT8``."""
    cached = load_exported(spec, "text")
    if cached is not None:
        return cached
    from services.encoders.engines.graph_inputs import tokenizer_for

    encoder = encoder or spec.build_text()
    tokenize = tokenizer_for(spec, max_tokens=encoder.max_tokens)
    if spec.text_precision != "fp32":  # the fp32 graph first, outside this graph's cache lock
        fp32 = export_text(replace(spec, text_precision="fp32"), encoder)
        return _write(spec, "text", lambda path: _quantize_text(spec, fp32, encoder, tokenize, path))
    module, names = text_graph_module(encoder)

    def build(path: Path) -> dict[str, Any]:
        example = tokenize(list(PARITY_TEXTS[:2]), "query")
        args = tuple(torch.from_numpy(example[n]) for n in names)
        _export(module, args, path, names, [EMBEDDING],
                {**{n: {0: "batch", 1: "sequence"} for n in names}, EMBEDDING: {0: "batch"}})
        worst = _text_parity(_session(path), names, tokenize, encoder, MIN_COSINE)
        return {"tower": "text", "family": spec.family, "version": encoder.version, "dim": encoder.dim,
                "inputs": names, "outputs": [EMBEDDING], "max_tokens": encoder.max_tokens, "precision": "fp32",
                "parity_min_cosine": round(worst, 6), "parity_texts": len(PARITY_TEXTS)}

    return _write(spec, "text", build)


def _quantize_text(spec: ModelSpec, fp32: ExportedGraph, encoder: Any,
                   tokenize: Callable[..., dict[str, np.ndarray]], path: Path) -> dict[str, Any]:
    """Writes ``fp32`` with int8 weights to ``path`` (``text_quantization``; the outlier layer is
    found on the parity texts, one at a time as served) and returns its card."""
    from services.encoders.engines.text_quantization import quantize_text_graph

    names = fp32.card["inputs"]
    feeds = [{n: f[n] for n in names} for f in (tokenize([t], m) for m in ("query", "passage") for t in PARITY_TEXTS)]
    how = quantize_text_graph(fp32.path, path, feeds)
    bar = parity_bar(spec.text_precision)
    worst = _text_parity(_session(path), names, tokenize, encoder, bar, one_at_a_time=True)
    return {**{k: fp32.card[k] for k in ("tower", "family", "dim", "inputs", "outputs", "max_tokens", "parity_texts")},
            "version": spec.text_version(), "precision": spec.text_precision, "quantized_from": fp32.directory.name,
            **how, "parity_bar": bar, "parity_min_cosine": round(worst, 6)}


def parity_images(size: int) -> list[bytes]:
    """Deterministic JPEG/PNG test images (gradients, noise, a dark and a white-background object)."""
    import io

    from PIL import Image, ImageDraw

    rng = np.random.default_rng(7)
    images = []
    for k in range(4):
        w, h = (size * 2 + 37 * k, size + 23 * k) if k % 2 else (size + 11 * k, size * 3 // 2)
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if k == 1 else np.full((h, w, 3), 255, np.uint8)
        img = Image.fromarray(arr)
        draw = ImageDraw.Draw(img)
        draw.rectangle((w // 5, h // 4, w * 3 // 4, h * 4 // 5), fill=(40 * k, 120, 200 - 30 * k))
        draw.ellipse((w // 3, h // 3, w // 2, h // 2), fill=(200, 60 + 40 * k, 30))
        buf = io.BytesIO()
        img.save(buf, format="PNG" if k == 3 else "JPEG", quality=90)
        images.append(buf.getvalue())
    return images


def export_image(spec: ModelSpec, encoder: Any | None = None, images: Sequence[bytes] | None = None) -> ExportedGraph:
    """The image tower's graph (exported now unless cached); raises OnnxParityError on mismatch."""
    cached = load_exported(spec, "image")
    if cached is not None:
        return cached
    from services.encoders.engines.graph_inputs import extra_input_specs
    from services.encoders.models.preprocess import ImagePreprocessor

    encoder = encoder or spec.build_image()
    ps = encoder.pixel_spec
    pre = ImagePreprocessor(ps, torch.device("cpu"))
    pixels, _, errors = pre(list(images) if images else parity_images(ps.size))
    if errors or pixels is None:
        raise OnnxParityError(f"image parity inputs failed to decode: {errors}")
    extras_spec = extra_input_specs(encoder)
    extras = encoder.graph_extra_inputs(pixels) if hasattr(encoder, "graph_extra_inputs") else {}
    if sorted(extras) != sorted(e["name"] for e in extras_spec):
        raise OnnxParityError(f"image tower extra inputs {sorted(extras)} are not the declared {extras_spec}")
    extra_names = [e["name"] for e in extras_spec]
    extras_spec = [{**e, "dim": int(extras[e["name"]].shape[1])} for e in extras_spec]
    outputs = [EMBEDDING, *getattr(encoder, "graph_output_names", ())]
    module = ImageGraph(encoder, extra_names)
    names = ["PIXELS", *extra_names]

    def build(path: Path) -> dict[str, Any]:
        args = (pixels[:2], *(extras[n][:2] for n in extra_names))
        with torch.inference_mode(False):
            _export(module, args, path, names, outputs, {n: {0: "batch"} for n in (*names, *outputs)})
        sess = _session(path)
        worst = 1.0
        for sl in (slice(None), slice(0, 1), slice(2, 3)):
            feeds = {"PIXELS": pixels[sl].numpy(), **{n: extras[n][sl].numpy() for n in extra_names}}
            got = sess.run(outputs, feeds)
            # the reference is what the torch tower serves (encode_pixels), not the traced function
            refs = [encoder.encode_pixels(pixels[sl])]
            if "VISUAL" in outputs:
                refs.append(encoder.encode_with_visual(pixels[sl])[1])
            for name, r, g in zip(outputs, refs, got):
                r = r.float().cpu().numpy()
                worst = min(worst, _check_parity(f"image tower {name} (batch {len(r)})", r.reshape(len(r), -1),
                                                 g.reshape(len(g), -1)))
        return {"tower": "image", "family": spec.family, "version": encoder.version, "dim": encoder.dim,
                "visual_version": getattr(encoder, "visual_version", ""),
                "inputs": names, "outputs": outputs, "extra_inputs": extras_spec,
                "pixels": {"size": ps.size, "mean": list(ps.mean), "std": list(ps.std), "pad_to_square": ps.pad_to_square},
                "parity_min_cosine": round(worst, 6), "parity_images": int(pixels.shape[0])}

    return _write(spec, "image", build)


class VisualRegionGraph(torch.nn.Module):
    """The query side of the ``visual`` descriptor: pixels at the query size -> regional rows;
    with ``scene``, room pixels (+ each window's colour histogram) -> window rows and the
    windows' text-space vectors."""

    def __init__(self, tower: Any, scene: bool = False, extra_names: Sequence[str] = ()) -> None:
        super().__init__()
        self.tower = tower
        self.backbone = tower.backbone
        self.visual = tower.visual
        self.head = getattr(tower, "head", None)
        self.scene = scene
        self.extra_names = list(extra_names)

    def forward(self, pixels: torch.Tensor, *extras: torch.Tensor) -> Any:
        if self.scene:
            return self.tower.visual_scene_forward(pixels, **dict(zip(self.extra_names, extras)))
        return self.tower.visual_region_forward(pixels)


VISUAL_REGIONS = "VISUAL"
REGION_EMBEDDING = "REGION_EMBEDDING"


def export_visual(spec: ModelSpec, encoder: Any | None = None, images: Sequence[bytes] | None = None,
                  scene: bool = False) -> ExportedGraph:
    """The query-side visual graph (448 px pixels -> (n, R, 512) region rows), checked against
    PyTorch on every row like the other graphs; raises OnnxParityError on mismatch. With
    ``scene``: the shop-the-look graph (640 px -> (n, 149, 512), tower ``scene``)."""
    from services.encoders.models.scene_windows import SCENE_SIZE

    tower = "scene" if scene else "visual"
    cached = load_exported(spec, tower)
    if cached is not None:
        return cached
    from services.encoders.models.preprocess import ImagePreprocessor

    encoder = encoder or spec.build_image()
    if getattr(encoder, "visual", None) is None:
        raise OnnxParityError("this image tower has no visual head to export")
    card = encoder.visual.card
    ps = encoder.pixel_spec
    pre = ImagePreprocessor(ps, torch.device("cpu"))
    size = SCENE_SIZE if scene else card.query_size
    views, errors = pre.decode_views(list(images) if images else parity_images(size), "query",
                                     card.index_size, size)
    if errors:
        raise OnnxParityError(f"visual parity inputs failed to decode: {errors}")
    pixels = pre.normalize(torch.stack([v[0] for v in views]))  # type: ignore[index]
    extras_spec = list(encoder.scene_extra_input_specs) if scene else []
    extras = encoder.scene_extra_inputs(pixels) if scene else {}
    extra_names = [e["name"] for e in extras_spec]
    extras_spec = [{**e, "dim": int(extras[e["name"]].shape[-1])} for e in extras_spec]
    module = VisualRegionGraph(encoder, scene=scene, extra_names=extra_names)
    names = ["PIXELS", *extra_names]
    outputs = [VISUAL_REGIONS, REGION_EMBEDDING] if scene else [VISUAL_REGIONS]

    def build(path: Path) -> dict[str, Any]:
        with torch.inference_mode(False):
            _export(module, (pixels[:2], *(extras[n][:2] for n in extra_names)), path, names, outputs,
                    {n: {0: "batch"} for n in (*names, *outputs)})
        sess = _session(path)
        worst = 1.0
        for sl in (slice(None), slice(0, 1), slice(2, 3)):
            got = sess.run(outputs, {"PIXELS": pixels[sl].numpy(), **{n: extras[n][sl].numpy() for n in extra_names}})
            refs = encoder.visual_scene(pixels[sl]) if scene else (encoder.visual_regions(pixels[sl]),)
            for name, r, g in zip(outputs, refs, got):
                r = r.numpy()
                worst = min(worst, _check_parity(f"{tower} {name} (batch {len(r)})", r.reshape(-1, r.shape[-1]),
                                                 g.reshape(-1, g.shape[-1])))
        return {"tower": tower, "family": spec.family, "version": encoder.version,
                "visual_version": encoder.visual_version, "dim": card.dim, "regions": int(got[0].shape[1]),
                "query_size": size, "index_size": card.index_size, "inputs": names, "extra_inputs": extras_spec,
                "outputs": outputs, "parity_min_cosine": round(worst, 6), "parity_images": int(pixels.shape[0])}

    return _write(spec, tower, build)


def export_models(spec: ModelSpec, force: bool = False) -> dict[str, Any]:
    """Every graph for ``spec`` (exported now unless cached); returns their paths and parity."""
    towers: list[tuple[str, Callable[[ModelSpec], ExportedGraph]]] = [("text", export_text), ("image", export_image)]
    if spec.visual_version():
        towers.append(("visual", export_visual))
        towers.append(("scene", lambda sp: export_visual(sp, scene=True)))
    if force:
        for tower, _ in towers:
            shutil.rmtree(graph_dir(spec, tower), ignore_errors=True)
        if spec.text_precision != "fp32":  # the graph the quantized one is made from
            shutil.rmtree(graph_dir(replace(spec, text_precision="fp32"), "text"), ignore_errors=True)
    out: dict[str, Any] = {}
    for tower, fn in towers:
        g = fn(spec)
        out[f"{tower}_onnx"] = str(g.path)
        out[f"{tower}_onnx_min_cosine"] = g.card["parity_min_cosine"]
    return out
