"""Image bytes -> normalised pixel tensors, identical on CPU and GPU.

Steps: validate (size limit, format JPEG/PNG/WebP, pixel-count limit read from the header
before any decode, so a decompression bomb costs nothing), decode, EXIF orientation, RGB
(transparency composited on white), resize the longest side to ``size`` (antialiased
bilinear), pad to a white square, normalise with the tower's mean/std.

Decoding is the only device-specific step: nvJPEG through ``torchvision.io.decode_jpeg`` on
CUDA when torchvision is importable and the image is a baseline RGB/grey JPEG, Pillow
otherwise. Resizing, padding and normalising are the same torch ops on either device, so CPU
and GPU vectors differ only by decoder rounding. White padding matches catalog photos (white
backgrounds) and is what the image head is trained with.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from services.encoders.models.base import PixelSpec
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000  # ~ 7300 x 5500; phone photos are 12-50 MP

_EXIF_ORIENTATION = 0x0112


class ImageInputError(ValueError):
    """The bytes are not an acceptable image; the message says why (shown to the caller)."""


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


@dataclass
class _Header:
    image: Image.Image
    orientation: int


def _open(data: bytes, limits: ImageLimits) -> _Header:
    """Validates size, format and pixel count from the header (no pixel decode yet)."""
    if not data:
        raise ImageInputError("empty image")
    if len(data) > limits.max_bytes:
        raise ImageInputError(f"image is {len(data)} bytes, limit is {limits.max_bytes}")
    try:
        with warnings.catch_warnings():  # our limit decides; Pillow's guard (~179 MP) is a backstop
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as e:
        raise ImageInputError(f"image has too many pixels ({e})") from None
    except UnidentifiedImageError:
        raise ImageInputError("not a JPEG, PNG or WebP image") from None
    except Exception as e:  # malformed header: Pillow raises OSError, ValueError, SyntaxError, ...
        raise ImageInputError(f"cannot read image header: {e}") from None
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageInputError(f"image has no pixels ({w}x{h})")
    if w * h > limits.max_pixels:
        raise ImageInputError(f"image is {w}x{h} = {w * h} pixels, limit is {limits.max_pixels}")
    try:
        orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # broken EXIF is not worth rejecting a photo for
        orientation = 1
    return _Header(img, orientation if 1 <= orientation <= 8 else 1)


_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, alpha composited on white. Every decode path uses it.

    Why not ``img.convert("RGB")`` alone: Pillow *clips* 16-bit grayscale ("I;16", and "I"
    for 16-bit PNGs) to 0..255, so nearly every pixel becomes 255 and the photo turns solid
    white. Wide modes are scaled (16-bit: /257, float: x255 when in 0..1) instead."""
    if img.mode in _WIDE_MODES:
        arr = np.asarray(img).astype(np.float64)
        if img.mode == "F":
            scale = 1 / 255 if arr.size and float(arr.max()) <= 1.0 else 1.0
        elif img.mode == "I":
            scale = 257.0 if arr.size and float(arr.max()) > 255 else 1.0
        else:
            scale = 257.0
        img = Image.fromarray(np.clip(np.rint(arr / scale), 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("RGB")


# JPEG draft decode (DCT-domain downscale by 1/2, 1/4 or 1/8) keeps at least ``oversample`` x the
# tower's input size on BOTH sides, so the antialiased resize still starts from 2x the pixels it
# outputs. Measured on the dev photos (bench/decode_draft.py, docs/performance.md): 2.0 leaves
# the 500 px catalogue and 512 px shopper photos untouched (cosine 1.0, same photo-query recall)
# and cuts decode time of large photos (phone uploads, room scenes); 1.0 was faster but lost
# photo-query recall (Hit@1 0.115 -> 0.105, vector cosine down to 0.87), so it is not the default.
DRAFT_OVERSAMPLE = 2.0


def draft_box(width: int, height: int, size: int, oversample: float = DRAFT_OVERSAMPLE) -> tuple[int, int] | None:
    """The size to ask Pillow's JPEG draft mode for, or None when no DCT reduction is possible."""
    need = math.ceil(size * oversample)
    if min(width, height) < 2 * need:  # 1/2 is the smallest DCT reduction
        return None
    return need, need


def _decode_pil(h: _Header, size: int, oversample: float = DRAFT_OVERSAMPLE) -> torch.Tensor:
    """Full decode with Pillow -> (3, H, W) uint8, orientation applied, alpha on white."""
    img = h.image
    try:
        box = draft_box(*img.size, size, oversample) if img.format == "JPEG" else None
        if box is not None:
            img.draft("RGB", box)  # DCT-domain downscale: the decoder does a fraction of the work
        img.load()
        if h.orientation != 1:
            img = ImageOps.exif_transpose(img)
        img = to_rgb(img)
    except ImageInputError:
        raise
    except Exception as e:  # truncated / corrupt data: Pillow raises OSError, ValueError, ...
        raise ImageInputError(f"cannot decode image: {e}") from None
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)


def _orient(x: torch.Tensor, orientation: int) -> torch.Tensor:
    """Applies an EXIF orientation (2..8) to a (C, H, W) tensor."""
    if orientation in (2, 4, 5, 7):  # mirrored variants
        x = x.flip(-1)
    rot = {3: 2, 4: 2, 5: 1, 6: 3, 7: 3, 8: 1}.get(orientation, 0)  # quarter turns, counter-clockwise
    return torch.rot90(x, rot, dims=(-2, -1)) if rot else x


def resize_pad(x: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, size, size) float in [0, 255]: longest side to size, white pad."""
    _, h, w = x.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    xf = x.unsqueeze(0)
    if (nh, nw) != (h, w):
        # uint8 antialiased bilinear has a fast CPU kernel; float on CUDA
        if xf.device.type == "cpu":
            xf = F.interpolate(xf, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        else:
            xf = F.interpolate(xf.float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    xf = xf.float()
    top, left = (size - nh) // 2, (size - nw) // 2
    out = torch.full((1, 3, size, size), 255.0, device=x.device)
    out[:, :, top : top + nh, left : left + nw] = xf.clamp_(0, 255)
    return out[0]


def _index_views(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """The index side's visual views of a decoded (3, H, W) photo: whole, tight foreground crop."""
    from services.encoders.models.visual import foreground_box

    t, l, b, r = foreground_box(x)
    return [resize_pad(x, size), resize_pad(x[:, t:b, l:r].contiguous(), size)]


class ImagePreprocessor:
    """Turns a batch of encoded images into model input; bad items are reported, not raised."""

    def __init__(
        self,
        spec: PixelSpec,
        device: torch.device,
        limits: ImageLimits = ImageLimits(),
        gpu_decode: bool | None = None,
        draft_oversample: float = DRAFT_OVERSAMPLE,
    ) -> None:
        self.spec = spec
        self.draft_oversample = draft_oversample
        self.device = device
        self.limits = limits
        self._decode_jpeg = _gpu_jpeg_decoder() if device.type == "cuda" and gpu_decode is not False else None
        mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1) * 255.0
        self._mean, self._std = mean, std
        log.info(
            "image preprocessing ready",
            extra={"device": str(device), "gpu_jpeg_decode": self._decode_jpeg is not None, "size": spec.size},
        )

    @property
    def gpu_decode(self) -> bool:
        return self._decode_jpeg is not None

    def decode(self, images: Sequence[bytes]) -> tuple[list[torch.Tensor | None], dict[int, str]]:
        """Decodes each image to (3, size, size) float [0,255] on ``device``; errors by index."""
        return self.decode_raw(images, self.spec.size, resize=True)

    def decode_views(self, images: Sequence[bytes], mode: str, index_size: int = 224,
                     query_size: int = 448) -> tuple[list[list[torch.Tensor] | None], dict[int, str]]:
        """The views of the ``visual`` descriptor (``services.encoders.models.visual``), each a
        (3, S, S) float [0, 255] tensor: ``index`` = [whole photo, tight foreground crop] at
        ``index_size``; ``query`` = [whole photo] at ``query_size``; ``photo`` = index's views
        then query's (a photo query in one call). Errors by index."""
        from services.encoders.models.scene_windows import SCENE_SIZE

        if mode not in ("index", "query", "scene", "photo"):
            raise ValueError(f"visual mode must be 'index', 'query', 'scene' or 'photo', got {mode!r}")
        if mode == "photo":
            return self._photo_views(images, index_size, query_size)
        size = index_size if mode == "index" else SCENE_SIZE if mode == "scene" else query_size
        raw, errors = self.decode_raw(images, size, resize=False)
        out: list[list[torch.Tensor] | None] = [None] * len(images)
        for i, x in enumerate(raw):
            if x is not None:
                out[i] = _index_views(x, size) if mode == "index" else [resize_pad(x, size)]
        return out, errors

    def _photo_views(self, images: Sequence[bytes], index_size: int,
                     query_size: int) -> tuple[list[list[torch.Tensor] | None], dict[int, str]]:
        """``index`` + ``query`` views from one decode wherever that decode is the one each mode
        would make (no JPEG draft reduction, or the same one at both sizes: every photo of the
        dev data); a JPEG large enough to be drafted differently at the two sizes is decoded
        again at the index size, so the views (and vectors) equal the two modes' exactly."""
        raw, errors = self.decode_raw(images, query_size, resize=False)
        again = [i for i, x in enumerate(raw) if x is not None and not self._same_decode(images[i], index_size, query_size)]
        small: dict[int, torch.Tensor | None] = {}
        if again:
            dec, errs = self.decode_raw([images[i] for i in again], index_size, resize=False)
            small = dict(zip(again, dec))
            errors.update({again[k]: reason for k, reason in errs.items()})
        out: list[list[torch.Tensor] | None] = [None] * len(images)
        for i, x in enumerate(raw):
            xi = small.get(i, x)
            if x is not None and xi is not None and i not in errors:
                out[i] = [*_index_views(xi, index_size), resize_pad(x, query_size)]
        return out, errors

    def _same_decode(self, data: bytes, size_a: int, size_b: int) -> bool:
        """True when decoding ``data`` for ``size_a`` and for ``size_b`` gives the same pixels:
        only Pillow's JPEG draft depends on the size (nvJPEG never reduces, but may fall back to
        Pillow, so the draft sizes decide either way)."""
        h = _open(data, self.limits)
        if h.image.format != "JPEG":
            return True
        w, hh = h.image.size
        return draft_box(w, hh, size_a, self.draft_oversample) == draft_box(w, hh, size_b, self.draft_oversample)

    def decode_raw(self, images: Sequence[bytes], size: int,
                   resize: bool = True) -> tuple[list[torch.Tensor | None], dict[int, str]]:
        """Decodes each image (JPEG draft mode sized for ``size``); with ``resize`` to the padded
        (3, size, size) float square, else the oriented (3, H, W) uint8 photo. Errors by index."""
        out: list[torch.Tensor | None] = [None] * len(images)
        errors: dict[int, str] = {}
        headers: dict[int, _Header] = {}
        for i, data in enumerate(images):
            try:
                headers[i] = _open(data, self.limits)
            except ImageInputError as e:
                errors[i] = str(e)
        gpu = [i for i, h in headers.items() if self._gpu_ok(h)]
        if gpu:
            try:
                raw = [torch.frombuffer(bytearray(images[i]), dtype=torch.uint8) for i in gpu]
                decoded = self._decode_jpeg(raw)
                for i, x in zip(gpu, decoded):
                    x = _orient(x, headers[i].orientation)
                    out[i] = resize_pad(x, size) if resize else x
            except Exception as e:  # nvJPEG rejects some valid files: Pillow decides
                log.debug("gpu jpeg decode failed, falling back to Pillow", extra={"error": str(e)})
                gpu = []
        done = set(gpu)
        for i, h in headers.items():
            if i in done:
                continue
            try:
                x = _decode_pil(h, size, self.draft_oversample).to(self.device, non_blocking=True)
                out[i] = resize_pad(x, size) if resize else x
            except ImageInputError as e:
                errors[i] = str(e)
        return out, errors

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """(n, 3, S, S) in [0, 255] -> model input."""
        return (batch - self._mean) / self._std

    def __call__(self, images: Sequence[bytes]) -> tuple[torch.Tensor | None, list[int], dict[int, str]]:
        """Returns (normalised batch of the good images, their indices, errors by index)."""
        decoded, errors = self.decode(images)
        ok = [i for i, x in enumerate(decoded) if x is not None]
        if not ok:
            return None, [], errors
        batch = torch.stack([decoded[i] for i in ok])  # type: ignore[misc]
        return self.normalize(batch), ok, errors

    def _gpu_ok(self, h: _Header) -> bool:
        return (
            self._decode_jpeg is not None
            and h.image.format == "JPEG"
            and h.image.mode in ("RGB", "L")
            and not h.image.info.get("progressive", False)
        )


def _gpu_jpeg_decoder():  # -> Callable[[list[Tensor]], list[Tensor]] | None
    """torchvision's batched nvJPEG decoder, or None when torchvision/CUDA is unavailable."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except Exception as e:  # torchvision missing or built against another torch
        log.info("torchvision not importable, decoding images with Pillow", extra={"reason": str(e)})
        return None

    def decode(raw: list[torch.Tensor]) -> list[torch.Tensor]:
        return decode_jpeg(raw, mode=ImageReadMode.RGB, device="cuda")

    return decode
