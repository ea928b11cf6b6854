"""Loads catalog photos from paths or http(s) URLs with bounded size and time.

The ranking service never fetches URLs itself (it must not reach out to
arbitrary hosts); the CLI loads bytes and streams them. Loading is I/O bound,
so a thread pool with bounded concurrency overlaps it with embedding.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from urllib.parse import urlparse

USER_AGENT = "homesearch-index/0.1"


class ImageLoadError(Exception):
    pass


def load_image(ref: str, base_dir: Path, *, timeout_s: float = 10.0, max_bytes: int = 10 * 1024 * 1024) -> bytes:
    """Bytes of one image reference: a path relative to ``base_dir``, an absolute path or an http(s) URL."""
    scheme = urlparse(ref).scheme.lower()
    if scheme in ("http", "https"):
        req = urllib.request.Request(ref, headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - scheme checked above
                length = resp.headers.get("Content-Length")
                if length and int(length) > max_bytes:
                    raise ImageLoadError(f"{ref}: {length} bytes exceeds the {max_bytes}-byte limit")
                data = resp.read(max_bytes + 1)
        except ImageLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - URLError, timeouts, HTTP errors: all mean "not loaded"
            raise ImageLoadError(f"{ref}: {exc}") from None
    elif scheme in ("", "file") or len(scheme) == 1:  # len 1: Windows drive letter
        path = Path(urlparse(ref).path if scheme == "file" else ref)
        if not path.is_absolute():
            path = base_dir / path
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageLoadError(f"{ref}: {size} bytes exceeds the {max_bytes}-byte limit")
            data = path.read_bytes()
        except ImageLoadError:
            raise
        except OSError as exc:
            raise ImageLoadError(f"{ref}: {exc.strerror or exc}") from None
    else:
        raise ImageLoadError(f"{ref}: unsupported scheme {scheme!r}")
    if len(data) > max_bytes:
        raise ImageLoadError(f"{ref}: exceeds the {max_bytes}-byte limit")
    if not data:
        raise ImageLoadError(f"{ref}: empty file")
    return data
