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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from homesearch.encoders.encoders import PixelSpec
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


def _decode_pil(h: _Header, size: int) -> torch.Tensor:
    """Full decode with Pillow -> (3, H, W) uint8, orientation applied, alpha on white."""
    img = h.image
    try:
        if img.format == "JPEG" and max(img.size) >= 4 * size:
            # DCT-domain downscale; keeps >= 2x oversampling for the antialiased resize
            img.draft("RGB", (2 * size, 2 * size))
        img.load()
        if h.orientation != 1:
            img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, rgba)
        img = img.convert("RGB")
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


# -- views for the ``visual`` vector (encoders/visual.py) -------------------------------------
Box = tuple[int, int, int, int]  # top, left, bottom, right (pixels, bottom/right exclusive)
VISUAL_MODES = ("index", "query")
FOREGROUND_WHITE_MIN = 235  # as colour.WHITE_MIN: a pixel whose darkest channel is >= this is background
FOREGROUND_MARGIN = 0.04


def foreground_box(x: torch.Tensor, white_min: int = FOREGROUND_WHITE_MIN, margin: float = FOREGROUND_MARGIN) -> Box:
    """Bounding box of the non-white pixels of a (3, H, W) uint8 photo, grown by ``margin`` of its
    size; the whole photo when (almost) nothing is darker than ``white_min`` (no studio background)."""
    _, h, w = x.shape
    fg = x.min(dim=0).values < white_min
    rows, cols = torch.nonzero(fg.any(dim=1)).flatten(), torch.nonzero(fg.any(dim=0)).flatten()
    if len(rows) < 2 or len(cols) < 2:
        return (0, 0, h, w)
    t, b, l, r = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    mh, mw = int((b - t) * margin), int((r - l) * margin)
    return (max(0, t - mh), max(0, l - mw), min(h, b + mh), min(w, r + mw))


def grid_boxes(h: int, w: int) -> list[Box]:
    """Whole photo, 2x2 overlapping crops (60 % of each side), 3x3 (45 %), centre (60 %): 15 boxes
    that put a product shown anywhere in a room photo near the middle of at least one of them."""
    out: list[Box] = [(0, 0, h, w)]
    for g, frac in ((2, 0.6), (3, 0.45)):
        ch, cw = int(h * frac), int(w * frac)
        for i in range(g):
            for j in range(g):
                t, l = int(i * (h - ch) / (g - 1)), int(j * (w - cw) / (g - 1))
                out.append((t, l, t + ch, l + cw))
    ch, cw = int(h * 0.6), int(w * 0.6)
    t, l = (h - ch) // 2, (w - cw) // 2
    out.append((t, l, t + ch, l + cw))
    return out


def visual_boxes(x: torch.Tensor, mode: str) -> list[Box]:
    """The crops of one decoded photo the ``visual`` vector describes: ``index`` = whole photo +
    tight foreground crop (catalogue photos on white); ``query`` = the 15 grid boxes."""
    if mode not in VISUAL_MODES:
        raise ValueError(f"visual mode must be one of {VISUAL_MODES}, got {mode!r}")
    _, h, w = x.shape
    if mode == "index":
        return [(0, 0, h, w), foreground_box(x)]
    return grid_boxes(h, w)


class ImagePreprocessor:
    """Turns a batch of encoded images into model input; bad items are reported, not raised."""

    def __init__(
        self,
        spec: PixelSpec,
        device: torch.device,
        limits: ImageLimits = ImageLimits(),
        gpu_decode: bool | None = None,
    ) -> None:
        self.spec = spec
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
                    out[i] = resize_pad(_orient(x, headers[i].orientation), self.spec.size)
            except Exception as e:  # nvJPEG rejects some valid files: Pillow decides
                log.debug("gpu jpeg decode failed, falling back to Pillow", extra={"error": str(e)})
                gpu = []
        done = set(gpu)
        for i, h in headers.items():
            if i in done:
                continue
            try:
                x = _decode_pil(h, self.spec.size).to(self.device, non_blocking=True)
                out[i] = resize_pad(x, self.spec.size)
            except ImageInputError as e:
                errors[i] = str(e)
        return out, errors

    def decode_views(self, images: Sequence[bytes], mode: str) -> tuple[list[list[torch.Tensor] | None], dict[int, str]]:
        """Per image the (3, size, size) float [0, 255] crops of ``visual_boxes(mode)``, each
        resized and white-padded like the main view; errors by index. Decoded with Pillow at up to
        4x ``size`` so small crops keep their detail."""
        out: list[list[torch.Tensor] | None] = [None] * len(images)
        errors: dict[int, str] = {}
        for i, data in enumerate(images):
            try:
                x = _decode_pil(_open(data, self.limits), 2 * self.spec.size)
            except ImageInputError as e:
                errors[i] = str(e)
                continue
            x = x.to(self.device)
            out[i] = [resize_pad(x[:, t:b, l:r].contiguous(), self.spec.size) for t, l, b, r in visual_boxes(x, mode)]
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
