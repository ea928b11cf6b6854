"""Checks of an uploaded query photo before it goes to the gateway.

The gateway checks photos too (INVALID_ARGUMENT), but the console answers a bad upload
itself with a message a shopper understands ("not an image", "too big") and without a
gateway round trip; the same limits apply (JPEG, PNG or WebP; 10 MiB by default).
"""

from __future__ import annotations

import io

from console.catalog import sniff_image_type

ACCEPTED = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP"}


class UploadError(ValueError):
    """A photo the console will not send; ``status`` is the HTTP status for the page."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def check_photo(data: bytes, filename: str, max_bytes: int) -> str:
    """Returns the photo's MIME type, or raises UploadError saying what is wrong with it."""
    name = filename or "the file"
    if not data:
        raise UploadError(f"{name} is empty")
    if len(data) > max_bytes:
        raise UploadError(f"{name} is {_mib(len(data))}; photos may be at most {_mib(max_bytes)}", status=413)
    ctype = sniff_image_type(data[:16])
    if ctype not in ACCEPTED:
        raise UploadError(f"{name} is not a photo: upload a JPEG, PNG or WebP image")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()  # header and structure, without decoding every pixel
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadError(f"{name} looks like {ACCEPTED[ctype]} but cannot be read ({exc})") from None
    return ctype
