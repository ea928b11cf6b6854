"""Renders the runtime Triton model repository from the declarative templates in git.

The templates (``model_repository/*/config.pbtxt``) stay untouched; at launch we parse them
as ``ModelConfig`` protos, set what depends on the machine and the configured model
(instance kind/count, batching, output dimension, version strings, model spec, input
limits) and write the copy Triton loads. Parsing the proto, rather than string templating,
keeps every other field exactly as written and fails loudly on a typo.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from services.encoders.serving import wire
from services.encoders.serving.config import TritonSettings, cuda_available
from services.encoders.models.image_head import head_version
from tritonclient.grpc import model_config_pb2 as mc

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "model_repository"


@dataclass(frozen=True)
class RenderedRepository:
    path: Path
    kind: str  # "KIND_GPU" | "KIND_CPU"
    text_version: str
    image_version: str
    dim: int


def resolve_kind(device: str) -> str:
    """auto -> KIND_GPU when CUDA is visible to this interpreter, else KIND_CPU."""
    if device == "gpu":
        if not cuda_available():
            raise RuntimeError("device=gpu requested but CUDA is not available to this Python")
        return "KIND_GPU"
    if device == "cpu":
        return "KIND_CPU"
    return "KIND_GPU" if cuda_available() else "KIND_CPU"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def torch_threads(settings: TritonSettings) -> int:
    """Intra-op threads per model instance for the torch engine: the cores shared out over all instances.

    Oversubscribing is far worse than idling a core: with 2 cores, a 2-thread e5 forward
    took ~900 ms while another process held one core, vs ~15 ms single-threaded, because
    OpenMP threads spin on barriers waiting for a descheduled sibling.
    """
    if settings.torch_threads > 0:
        return settings.torch_threads
    return max(1, available_cores() // (settings.text_instances + settings.image_instances))


def model_threads(settings: TritonSettings, model: str) -> int:
    """Intra-op threads per instance of ``model`` (explicit > legacy torch_threads > engine default).

    ONNX defaults, tuned on 2 cores (docs/performance.md): text serves latency, so one
    thread per instance (a batch-1 e5 forward barely gains from a second thread, and the
    other core stays free for the image encoder and the services); image serves
    throughput, so the cores are shared over its instances. ONNX Runtime's pool does not
    spin by default (``onnx_spinning``), so the image pool overlapping the text thread
    costs a context switch, not a stalled barrier.
    """
    explicit = settings.text_threads if model == wire.TEXT_MODEL else settings.image_threads
    if explicit > 0:
        return explicit
    if settings.torch_threads > 0 or settings.engine == "torch":
        return torch_threads(settings)
    if model == wire.TEXT_MODEL:
        return 1
    return max(1, available_cores() // settings.image_instances)


def queue_delay_us(settings: TritonSettings, model: str) -> int:
    if settings.max_queue_delay_us is not None:
        return settings.max_queue_delay_us
    return settings.text_queue_delay_us if model == wire.TEXT_MODEL else settings.image_queue_delay_us


def _set_params(cfg: mc.ModelConfig, params: dict[str, str]) -> None:
    for key, value in params.items():
        cfg.parameters[key].string_value = str(value)


def _warn_on_space_mismatch(head_dir: Path | None, text_version: str) -> None:
    """A head trained against another text model maps images into the wrong space: say so loudly."""
    from services.encoders.models.image_head import CARD_NAME, HeadCard

    if head_dir is None or not (Path(head_dir) / CARD_NAME).is_file():
        return
    trained_for = HeadCard.read(Path(head_dir)).text_model
    if trained_for and trained_for != text_version:
        log.warning(
            "image head was trained for another text model: image and text vectors will not match",
            extra={"head_dir": str(head_dir), "head_text_model": trained_for, "text_version": text_version},
        )


def render_repository(
    settings: TritonSettings, target: Path, kind: str | None = None, portable: bool = False
) -> RenderedRepository:
    """Writes the runtime repository to ``target`` (replacing it) and returns what it serves.

    ``portable``: the repository is for another machine, so thread counts are not derived
    from this machine's cores (0 = each model decides from its own machine at load time).
    """
    spec = settings.model_spec()
    kind = kind or resolve_kind(settings.device)
    text_version, image_version, dim = spec.text_version(), spec.image_version(), spec.dim()
    _warn_on_space_mismatch(spec.head_dir if spec.model_dir is None else None, spec.reference_text_version())
    if target.exists():
        shutil.rmtree(target)
    common = {
        wire.PARAM_DIM: str(dim),
        "model_family": spec.family,
        "half": str(settings.half).lower(),
        "engine": settings.engine,
        "onnx_spinning": str(settings.onnx_spinning).lower(),
        **spec.to_params(),
    }
    per_model = {
        wire.TEXT_MODEL: (
            settings.text_instances,
            {wire.PARAM_VERSION: text_version, "max_text_chars": str(settings.max_text_chars)},
        ),
        wire.IMAGE_MODEL: (
            settings.image_instances,
            {
                wire.PARAM_VERSION: image_version,
                "head_version": head_version(spec.head_dir) if spec.model_dir is None else "",
                wire.PARAM_VISUAL_VERSION: spec.visual_version(),
                "max_image_bytes": str(settings.max_image_bytes),
                "max_image_pixels": str(settings.max_image_pixels),
                "gpu_decode": str(settings.gpu_decode).lower(),
            },
        ),
    }
    for name, (count, params) in per_model.items():
        src = TEMPLATE_DIR / name
        cfg = text_format.Parse((src / "config.pbtxt").read_text(encoding="utf-8"), mc.ModelConfig())
        cfg.max_batch_size = settings.max_batch_size
        cfg.dynamic_batching.max_queue_delay_microseconds = queue_delay_us(settings, name)
        explicit = settings.text_threads if name == wire.TEXT_MODEL else settings.image_threads
        threads = (explicit or settings.torch_threads) if portable else model_threads(settings, name)
        params = {**params, "intra_threads": str(threads)}
        del cfg.instance_group[:]
        group = cfg.instance_group.add()
        group.kind = mc.ModelInstanceGroup.Kind.Value(kind)
        group.count = count
        for out in cfg.output:
            if out.name == wire.EMBEDDING:
                del out.dims[:]
                out.dims.append(dim)
            elif out.name == wire.REGION_EMBEDDING:
                del out.dims[:]
                out.dims.extend([-1, dim])
        _set_params(cfg, {**common, **params})
        dst = target / name
        (dst / "1").mkdir(parents=True)
        shutil.copy2(src / "1" / "model.py", dst / "1" / "model.py")
        (dst / "config.pbtxt").write_text(text_format.MessageToString(cfg), encoding="utf-8")
    log.info(
        "rendered model repository",
        extra={
            "path": str(target),
            "kind": kind,
            "text_version": text_version,
            "image_version": image_version,
            "dim": dim,
        },
    )
    return RenderedRepository(target, kind, text_version, image_version, dim)
