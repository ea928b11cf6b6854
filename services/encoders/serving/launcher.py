"""Runs tritonserver (from the ``nvidia-pytriton`` wheel) with the encoder models.

What it takes to run the wheel's server outside PyTriton (docs/architecture.md, "Triton from the nvidia-pytriton wheel"):
a backend directory holding ``libtriton_python.so`` plus the python-backend stub built for
*this* interpreter's version; ``LD_LIBRARY_PATH`` starting with the interpreter's own
``LIBDIR`` (the system ``libpython`` on this image mismatches the venv's stdlib) and the
wheel's bundled libs (libcudart); the venv's ``bin`` first on ``PATH`` so the stub imports
the venv's packages. The launcher also renders the runtime model repository (KIND_GPU or
KIND_CPU decided here), converts model weights if needed, checks ports, waits for
readiness, forwards the server's and the models' logs into ``logging`` and stops cleanly.

    with TritonServer(grpc_port=0, http_port=0, metrics_port=0) as server:
        client = EncoderClient(server.grpc_url)

CLI: ``python -m services.encoders.serving.launcher --help`` (also ``homesearch triton``).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from services.encoders.serving.config import TEXT_PRECISION_CHOICES, TritonSettings
from homesearch.ports import PortInUseError, free_port, port_free
from homesearch.stack.supervisor import become_subreaper, kill_group, kill_strays, set_death_signal
from services.encoders.serving.repository import RenderedRepository, render_repository, resolve_kind

log = logging.getLogger(__name__)
server_log = logging.getLogger("services.encoders.serving.tritonserver")


# -- errors -----------------------------------------------------------------------------------
class LauncherError(RuntimeError):
    """The server could not be started; the message says why and what to do."""


class TritonNotFoundError(LauncherError):
    pass


class UnsupportedPlatformError(LauncherError):
    pass


class TritonStartupError(LauncherError):
    pass


# -- locating the wheel's server ------------------------------------------------------------
@dataclass(frozen=True)
class TritonInstall:
    server_bin: Path
    python_backend: Path  # directory holding libtriton_python.so
    stub: Path  # triton_python_backend_stub for this Python
    libs: Path | None  # nvidia_pytriton.libs (bundled shared libraries)


def _pytriton_root() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "tritonserver"


def locate_triton(server_bin: Path | None = None) -> TritonInstall:
    """Finds the server, the python backend and the stub for the running interpreter."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise UnsupportedPlatformError(
            f"tritonserver from nvidia-pytriton runs on Linux x86_64 only (this is {sys.platform} "
            f"{platform.machine()}); use NVIDIA's tritonserver container with the rendered repository "
            "(homesearch triton --render-only DIR)"
        )
    root = _pytriton_root()
    if server_bin is None:
        if root is None:
            raise TritonNotFoundError("nvidia-pytriton is not installed: pip install nvidia-pytriton")
        server_bin = root / "bin" / "tritonserver"
    server_bin = Path(server_bin)
    if not server_bin.is_file() or not os.access(server_bin, os.X_OK):
        raise TritonNotFoundError(
            f"tritonserver binary not found or not executable at {server_bin}; install nvidia-pytriton "
            "or set HOMESEARCH_TRITON_SERVER_BIN / --server-bin"
        )
    if root is None:
        raise TritonNotFoundError("python backend not found: nvidia-pytriton is not installed")
    backend = root / "backends" / "python"
    if not (backend / "libtriton_python.so").is_file():
        raise TritonNotFoundError(f"python backend not found at {backend}")
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / ver / "triton_python_backend_stub"
    if not stub.is_file():
        have = sorted(p.name for p in (root / "python_backend_stubs").iterdir())
        raise UnsupportedPlatformError(f"no python-backend stub for Python {ver} (the wheel has {have})")
    libs = root.parent.parent / "nvidia_pytriton.libs"
    return TritonInstall(server_bin, backend, stub, libs if libs.is_dir() else None)


def server_environment(install: TritonInstall, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for tritonserver and its stubs (see the module docstring for why)."""
    env = dict(os.environ if base is None else base)
    ld = [sysconfig.get_config_var("LIBDIR") or ""]
    if install.libs:
        ld.append(str(install.libs))
    ld += [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in ld if p)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONUTF8", "1")  # the stub may start with an ASCII locale
    # glibc returns big freed blocks to the OS and page-faults them back on every batch;
    # raising the thresholds halved batch-32 CPU latency (docs/architecture.md)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(1 << 30))
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(1 << 30))
    return env


def prepare_backend_dir(install: TritonInstall, work_dir: Path) -> Path:
    """``<work>/backends/python``: the backend library, its utils and our Python's stub."""
    dst = work_dir / "backends" / "python"
    dst.mkdir(parents=True, exist_ok=True)
    for src in (install.python_backend / "libtriton_python.so", install.python_backend / "triton_python_backend_utils.py", install.stub):
        # Copy beside, then rename over: the rename gives the path a new inode, so a stub still
        # executing from the old one (a dying server's) never blocks it ("Text file busy").
        tmp = dst / f".{src.name}.{os.getpid()}.tmp"
        shutil.copy2(src, tmp)
        os.replace(tmp, dst / src.name)
    return work_dir / "backends"


# -- admin API restriction -------------------------------------------------------------------
RESTRICTED_APIS = "logging,model-repository,trace,shared-memory"  # read-only config/statistics stay open
ADMIN_HEADER = "homesearch-triton-admin"


def _admin_token() -> str:
    """The admin header's value: ``$HOMESEARCH_TRITON_ADMIN_TOKEN(_FILE)`` or a fresh random one."""
    import secrets as _secrets

    path = os.environ.get("HOMESEARCH_TRITON_ADMIN_TOKEN_FILE", "")
    if path and Path(path).is_file():
        value = Path(path).read_text().strip()
        if value:
            return value
    return os.environ.get("HOMESEARCH_TRITON_ADMIN_TOKEN", "") or _secrets.token_urlsafe(32)


# -- ports ------------------------------------------------------------------------------------
def check_port(host: str, port: int, what: str) -> None:
    """Raises PortInUseError when something listens on (host, port)."""
    if not port_free(port, host):
        raise PortInUseError(
            f"{what} port {port} on {host} is already in use; pick another with "
            f"--{what}-port or HOMESEARCH_TRITON_{what.upper()}_PORT (0 = any free port)"
        )


# -- log forwarding ---------------------------------------------------------------------------
_TRITON_LINE = re.compile(r"^([IWEV])\d{4} [\d:.]+ +\d+ ([^\]]+)\] (.*)$")
_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "V": logging.DEBUG}
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _forward_line(line: str) -> None:
    """One server/stub output line -> one log record (JSON lines from our models keep fields)."""
    line = line.rstrip()
    if not line:
        return
    if line.startswith("{"):
        try:
            rec = json.loads(line)
            level = logging.getLevelName(str(rec.pop("level", "info")).upper())
            msg = str(rec.pop("msg", ""))
            extra = {(f"src_{k}" if k in _RESERVED else k): v for k, v in rec.items() if k != "ts"}
            server_log.log(level if isinstance(level, int) else logging.INFO, msg, extra=extra)
            return
        except ValueError:
            pass
    if line[0] in "|+":  # rows of Triton's start-up tables: detail, not news
        server_log.debug(line, extra={"source": "tritonserver"})
        return
    m = _TRITON_LINE.match(line)
    if m:
        msg = m.group(3)
        if msg.startswith('"') and msg.endswith('"'):
            msg = msg[1:-1]
        server_log.log(_LEVELS[m.group(1)], msg, extra={"source": "tritonserver", "src_file": m.group(2)})
    else:
        server_log.info(line, extra={"source": "tritonserver"})


# -- the server -------------------------------------------------------------------------------
class TritonServer:
    """A tritonserver process serving ``text_encoder`` and ``image_encoder``.

    Construct with a ``TritonSettings`` and/or keyword overrides of its fields; ports given
    as 0 are replaced by free ports. ``start()`` blocks until the server is ready (or raises
    ``LauncherError``); ``stop()`` terminates it. Usable as a context manager.
    """

    def __init__(self, settings: TritonSettings | None = None, **overrides: Any) -> None:
        base = settings or TritonSettings()
        # validate overrides like flags (str paths -> Path, ranges), without re-reading the env
        self.settings = TritonSettings.model_validate({**base.model_dump(), **overrides}) if overrides else base
        self._proc: subprocess.Popen[str] | None = None
        self._owns_work_dir = False
        self._work_dir: Path | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=60)
        self._reader: threading.Thread | None = None
        self.rendered: RenderedRepository | None = None
        self.startup_s: float | None = None
        # Set by the CLI (the launcher process): the server gets PR_SET_PDEATHSIG. Off for
        # in-process use, where the starting thread may end before the server should.
        self.die_with_parent = False

    # addresses
    @property
    def _connect_host(self) -> str:
        return "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host

    @property
    def grpc_url(self) -> str:
        return f"{self._connect_host}:{self.settings.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self._connect_host}:{self.settings.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._connect_host}:{self.settings.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # lifecycle
    def start(self) -> TritonServer:
        if self.is_running():
            return self
        t0 = time.monotonic()
        s = self.settings
        if s.serving_backend != "python":
            raise UnsupportedPlatformError(
                "the embedded tritonserver (nvidia-pytriton wheel) ships only the python backend; "
                f"serving_backend={s.serving_backend!r} is for NVIDIA's tritonserver image "
                "(homesearch triton --render-only DIR --serving-backend onnxruntime)"
            )
        install = locate_triton(s.server_bin)
        try:
            kind = resolve_kind(s.device)
        except RuntimeError as e:
            raise UnsupportedPlatformError(str(e)) from None
        ports = {}
        for what in ("http", "grpc", "metrics"):
            port = getattr(s, f"{what}_port")
            if port == 0:
                port = free_port(s.host if s.host not in ("0.0.0.0", "") else "127.0.0.1")
            else:
                check_port(s.host, port, what)
            ports[f"{what}_port"] = port
        self.settings = s = s.model_copy(update=ports)
        if s.prepare:
            from services.encoders.operations.prepare import prepare_models

            prepare_models(s.model_spec(), engine=s.engine)
        if s.work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="homesearch-triton-"))
            self._owns_work_dir = True
        else:
            self._work_dir = Path(s.work_dir)
            self._work_dir.mkdir(parents=True, exist_ok=True)
        backends = prepare_backend_dir(install, self._work_dir)
        self.rendered = render_repository(s, self._work_dir / "model_repository", kind=kind)
        cmd = [
            str(install.server_bin),
            f"--model-repository={self.rendered.path}",
            f"--backend-directory={backends}",
            f"--http-address={s.host}",
            f"--http-port={s.http_port}",
            f"--grpc-address={s.host}",
            f"--grpc-port={s.grpc_port}",
            f"--metrics-address={s.host}",
            f"--metrics-port={s.metrics_port}",
            "--allow-metrics=true",
            "--exit-on-error=true",
            "--strict-readiness=true",
            f"--exit-timeout-secs={int(s.shutdown_timeout_s)}",
            f"--log-verbose={s.log_verbose}",
        ]
        # Only the ranking service talks to Triton (health, metadata, config, inference): every
        # API that changes the server (logging, model load/unload, traces, shared memory) needs
        # a header whose value no client is given, so e.g. log settings cannot be changed over
        # either port.
        admin = _admin_token()
        for flag in ("--http-restricted-api", "--grpc-restricted-protocol"):
            cmd.append(f"{flag}={RESTRICTED_APIS}:{ADMIN_HEADER}={admin}")
        if self.rendered.kind == "KIND_CPU":
            # no CUDA work: skip the pinned host pool and GPU metrics (and their warnings)
            cmd += ["--allow-gpu-metrics=false", "--pinned-memory-pool-byte-size=0"]
        log.info(
            "starting tritonserver",
            extra={"cmd": " ".join(cmd), "kind": self.rendered.kind, "grpc_url": self.grpc_url},
        )
        self._proc = subprocess.Popen(
            cmd,
            env=server_environment(install),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # own process group: the stubs die with the server
            # with the launcher's main thread gone (even by SIGKILL) the server goes too
            preexec_fn=set_death_signal(signal.SIGKILL) if self.die_with_parent else None,
        )
        self._reader = threading.Thread(target=self._pump, name="tritonserver-log", daemon=True)
        self._reader.start()
        try:
            self._wait_ready(s.startup_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        log.info(
            "tritonserver ready",
            extra={
                "pid": self.pid,
                "grpc_url": self.grpc_url,
                "http_url": self.http_url,
                "metrics_url": self.metrics_url,
                "kind": self.rendered.kind,
                "text_version": self.rendered.text_version,
                "image_version": self.rendered.image_version,
                "startup_s": round(self.startup_s, 1),
            },
        )
        return self

    def _pump(self) -> None:
        assert self._proc and self._proc.stdout
        for line in self._proc.stdout:
            self._tail.append(line.rstrip())
            try:
                _forward_line(line)
            except Exception:  # a logging hiccup must not stop draining the pipe
                pass

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                if self._reader:
                    self._reader.join(timeout=2)
                rc = self._proc.returncode if self._proc else None
                raise TritonStartupError(self._failure_message(f"tritonserver exited with code {rc}"))
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise TritonStartupError(self._failure_message(f"tritonserver not ready after {timeout_s:.0f}s"))

    def _failure_message(self, head: str) -> str:
        tail = "\n".join(self._tail)
        hint = ""
        if "Address already in use" in tail or "address already in use" in tail.lower():
            hint = " (a port is already in use)"
        return f"{head}{hint}; last server output:\n{tail}"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL of the whole process group after ``shutdown_timeout_s``."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                log.info("stopping tritonserver", extra={"pid": proc.pid})
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=self.settings.shutdown_timeout_s + 5)
                except subprocess.TimeoutExpired:
                    log.warning("tritonserver did not stop in time; killing it", extra={"pid": proc.pid})
            # Always, also when the server already died (e.g. SIGKILLed): its python stubs are
            # still in its process group and would otherwise live on, holding memory.
            kill_group(proc.pid)
            proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._owns_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
            self._owns_work_dir = False
        self._proc = None

    def wait(self, timeout: float | None = None) -> int | None:
        """Blocks until the server exits (or ``timeout``); returns its exit code or None."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- CLI ----------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="homesearch triton",
        description="Run tritonserver with the homesearch text and image encoders. Every flag "
        "overrides the HOMESEARCH_TRITON_<NAME> environment variable of the same name.",
    )
    a = p.add_argument
    a("--host", help="bind address (default 127.0.0.1)")
    a("--http-port", type=int, help="HTTP port (default 8000; 0 = free port)")
    a("--grpc-port", type=int, help="gRPC port (default 8001; 0 = free port)")
    a("--metrics-port", type=int, help="Prometheus metrics port (default 8002; 0 = free port)")
    a("--device", choices=["auto", "cpu", "gpu"], help="instance kind (default auto: GPU when CUDA is available)")
    a("--text-instances", type=int, help="text encoder instances (default 1)")
    a("--image-instances", type=int, help="image encoder instances (default 1)")
    a("--max-batch-size", type=int, help="largest dynamic batch (default 64)")
    a("--max-queue-delay-us", type=int, help="dynamic batching delay of both models in microseconds (overrides the next two)")
    a("--text-queue-delay-us", type=int, help="text batching delay (default 0: latency)")
    a("--image-queue-delay-us", type=int, help="image batching delay (default 2000: throughput)")
    a("--engine", choices=["onnx", "torch"], help="inference engine (default onnx; torch = PyTorch reference)")
    a("--text-precision", choices=TEXT_PRECISION_CHOICES,
      help="text graph weights (default auto: int8 for the default e5 tower on onnx, its own model version)")
    a("--text-threads", type=int, help="intra-op threads per text instance (default: onnx 1, torch cores/instances)")
    a("--image-threads", type=int, help="intra-op threads per image instance (default: cores / image instances)")
    a("--onnx-spinning", action=argparse.BooleanOptionalAction, default=None,
      help="ONNX Runtime threads busy-wait when idle (default off: cores are shared)")
    a("--serving-backend", choices=["python", "onnxruntime"],
      help="python (default; embedded server) or onnxruntime (NVIDIA's image, with --render-only)")
    a("--torch-threads", type=int, help="legacy: intra-op threads of every instance (overrides the defaults)")
    a("--half", action=argparse.BooleanOptionalAction, default=None, help="fp16 on GPU (default on)")
    a("--gpu-decode", action=argparse.BooleanOptionalAction, default=None, help="nvJPEG decode on GPU")
    a("--max-text-chars", type=int, help="reject longer texts (default 2048)")
    a("--max-image-bytes", type=int, help="reject larger encoded images (default 20 MiB)")
    a("--max-image-pixels", type=int, help="reject images with more pixels (default 40M)")
    a("--model-dir", type=Path, help="serve this Hugging Face CLIP / Chinese-CLIP checkpoint (HOMESEARCH_MODEL_DIR)")
    a("--model-cache", type=Path, help="converted-weights cache (HOMESEARCH_MODEL_CACHE)")
    a("--image-head", type=Path, help="trained image head directory (HOMESEARCH_IMAGE_HEAD)")
    a("--server-bin", type=Path, help="tritonserver binary (default: from the nvidia-pytriton wheel)")
    a("--work-dir", type=Path, help="where to put the runtime repository (default: a temp dir)")
    a("--startup-timeout-s", type=float, help="readiness timeout (default 300)")
    a("--log-verbose", type=int, help="tritonserver verbose log level")
    a("--prepare", action=argparse.BooleanOptionalAction, default=None, help="convert weights first (default on)")
    a("--render-only", type=Path, metavar="DIR", help="only write the runtime model repository to DIR and exit")
    return p


def settings_from_args(args: argparse.Namespace) -> TritonSettings:
    overrides = {k: v for k, v in vars(args).items() if v is not None and k != "render_only"}
    return TritonSettings(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from homesearch.observability.logging import configure_logging

        configure_logging(service="triton")
    except Exception:
        logging.basicConfig(level=logging.INFO)
    settings = settings_from_args(args)
    if args.render_only:
        if settings.prepare:
            from services.encoders.operations.prepare import prepare_models

            prepare_models(settings.model_spec(), engine=settings.engine)
        # rendering for another machine (e.g. a GPU container): no local CUDA needed, and
        # thread counts are left to the serving machine unless given explicitly
        kind = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}.get(settings.device) or resolve_kind("auto")
        if settings.serving_backend == "onnxruntime":
            from services.encoders.serving.native_repository import render_native_repository

            r = render_native_repository(settings, args.render_only, kind=kind, portable=True)
        else:
            r = render_repository(settings, args.render_only, kind=kind, portable=True)
        print(json.dumps({"path": str(r.path), "kind": r.kind, "text_version": r.text_version,
                          "image_version": r.image_version, "dim": r.dim}))
        return 0
    server = TritonServer(settings)
    server.die_with_parent = True
    # Stubs whose server dies are re-parented to us (not init), and swept below.
    become_subreaper()
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received, shutting down", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        server.start()
    except (LauncherError, PortInUseError) as e:
        log.error(str(e))
        return 1
    try:
        while not stopping.is_set():
            rc = server.wait(timeout=0.5)
            if rc is not None:
                log.error("tritonserver exited unexpectedly", extra={"returncode": rc})
                return rc or 1
    finally:
        server.stop()
        kill_strays()
    return 0


if __name__ == "__main__":
    sys.exit(main())
