"""The catalog the console was told about, and the product photos it may serve.

Photos are served by product id and image index only: the request never names a path or a
URL. A local image reference (relative to the catalog file, or absolute) is served only when
its real path (symlinks resolved) lies inside the catalog's directory and the file starts
like a JPEG, PNG, WebP or GIF; anything else is "not found", so a crafted catalog line
cannot turn the console into a file server for the rest of the disk. An http(s) reference
is answered with a redirect to that catalog URL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

MAX_PHOTO_BYTES = 20 * 1024 * 1024

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
)


def sniff_image_type(head: bytes) -> str | None:
    """The image MIME type from the file's first bytes (never from its name), or None."""
    for magic, offset, ctype in _MAGIC:
        if head[offset : offset + len(magic)] == magic and (ctype != "image/webp" or head[:4] == b"RIFF"):
            return ctype
    return None


@dataclass(frozen=True)
class Product:
    """The catalog facts the console shows beside a hit (the hit itself carries the indexed ones)."""

    id: str
    title: str
    category: str = ""
    price: float | None = None
    currency: str = ""
    in_stock: bool | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    images: tuple[str, ...] = ()

    def summary(self) -> dict:
        return {
            "id": self.id, "title": self.title, "category": self.category, "price": self.price,
            "currency": self.currency, "in_stock": self.in_stock, "attributes": dict(self.attributes),
            "photos": len(self.images),
        }


@dataclass(frozen=True)
class Photo:
    """A servable photo: either local bytes with their type and ETag, or a catalog URL to redirect to."""

    content_type: str = ""
    body: bytes = b""
    etag: str = ""
    url: str = ""


def resolve_inside(root: Path, ref: str) -> Path | None:
    """The real path of a local file reference (relative to ``root``, or absolute) when it lies
    inside ``root`` once every symlink is resolved, and is a regular file; else None."""
    if "://" in ref:
        return None
    candidate = Path(ref) if Path(ref).is_absolute() else root / ref
    try:
        real = candidate.resolve(strict=True)  # follows every symlink on the way
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(root.resolve()) or not real.is_file():
        return None
    return real


def _images_of(line: dict) -> tuple[str, ...]:
    refs: list[str] = []
    for ref in [line.get("image"), *(line.get("images") or [])]:
        if isinstance(ref, str) and ref.strip() and ref not in refs:
            refs.append(ref.strip())
    return tuple(refs)


class Catalog:
    """Products of one catalog JSONL file (formats.md), loaded once at start."""

    def __init__(self, path: Path | None) -> None:
        self.path = path.resolve() if path else None
        self.root = self.path.parent if self.path else None
        self.products: dict[str, Product] = {}
        self._etags: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()
        if self.path:
            self._load(self.path)

    def _load(self, path: Path) -> None:
        bad = 0
        with path.open(encoding="utf-8") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                    pid = str(line["id"])
                except (ValueError, KeyError, TypeError):
                    bad += 1
                    continue
                price = line.get("price")
                self.products[pid] = Product(
                    id=pid,
                    title=str(line.get("title", "")),
                    category=str(line.get("category", "") or ""),
                    price=float(price) if isinstance(price, (int, float)) else None,
                    currency=str(line.get("currency", "") or ""),
                    in_stock=line.get("in_stock") if isinstance(line.get("in_stock"), bool) else None,
                    attributes={str(k): str(v) for k, v in (line.get("attributes") or {}).items()},
                    images=_images_of(line),
                )
        log.info("catalog loaded", extra={"catalog": str(path), "products": len(self.products), "bad_lines": bad})

    def __len__(self) -> int:
        return len(self.products)

    def get(self, pid: str) -> Product | None:
        return self.products.get(pid)

    def photo_url(self, pid: str, index: int = 0) -> str | None:
        """The console URL of a product's photo, or None when the catalog has none for it."""
        product = self.products.get(pid)
        if product is None or not 0 <= index < len(product.images):
            return None
        ref = product.images[index]
        if not ref.startswith(("http://", "https://")) and self.local_path(ref) is None:
            return None  # outside the catalog folder or missing: the page shows "no photo", not a broken image
        return f"/photos/{index}/{quote(pid, safe='')}"

    def overview(self) -> dict:
        """Categories and attribute keys with catalog counts, for the filter sidebar."""
        cats = Counter(p.category for p in self.products.values() if p.category)
        keys = Counter(k for p in self.products.values() for k in p.attributes)
        prices = [p.price for p in self.products.values() if p.price is not None]
        return {
            "catalog": str(self.path) if self.path else None,
            "products": len(self.products),
            "categories": [{"value": c, "count": n} for c, n in sorted(cats.items(), key=lambda x: (-x[1], x[0]))],
            "attribute_keys": [k for k, _ in keys.most_common()],
            "price_range": [min(prices), max(prices)] if prices else None,
        }

    # -- photos
    def local_path(self, ref: str) -> Path | None:
        """The real path of a local image reference when it lies inside the catalog directory."""
        return resolve_inside(self.root, ref) if self.root is not None else None

    def photo(self, pid: str, index: int) -> Photo | None:
        """The photo ``index`` of product ``pid``, or None (not in the catalog, outside it, not an image)."""
        product = self.products.get(pid)
        if product is None or not 0 <= index < len(product.images):
            return None
        ref = product.images[index]
        if ref.startswith(("http://", "https://")):
            return Photo(url=ref)
        path = self.local_path(ref)
        if path is None:
            return None
        try:
            st = path.stat()
            if st.st_size > MAX_PHOTO_BYTES:
                return None
            body = path.read_bytes()
        except OSError:
            return None
        ctype = sniff_image_type(body[:16])
        if ctype is None:
            return None
        key = (str(path), st.st_mtime_ns, st.st_size)
        with self._lock:
            etag = self._etags.get(key)
            if etag is None:
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                self._etags[key] = etag
        return Photo(content_type=ctype, body=body, etag=etag)

    def photo_bytes(self, pid: str, index: int = 0) -> bytes | None:
        """A product's own local photo bytes (for "similar products" by photo), or None."""
        photo = self.photo(pid, index)
        return photo.body if photo and photo.body else None
