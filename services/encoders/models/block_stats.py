"""Mean and standard deviation of intermediate EfficientNet-Lite blocks: extra head inputs.

Why: the last feature map's average pool is what ImageNet classes need (the *type* of a thing);
colour, material and texture are partly pooled away by then. The channel means and standard
deviations of two middle blocks (block 10: 112 channels at stride 16; block 14: 192 channels at
stride 32) carry them. Fed to the image head beside the pooled last map, they raised text -> photo
R@10 on held-out product lines by ~0.03 over three training seeds (docs/evaluation.md, "Middle-block
statistics for the image head").

One definition serves training (``training.features``), the PyTorch tower and the exported ONNX
graphs: plain tensor ops, the standard deviation as ``sqrt(E[x^2] - E[x]^2)`` (population, not
unbiased) so that a window of the shop-the-look pass gets it from two window means.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from services.encoders.models.pooling import window_means

BLOCK_STATS_METHOD = "mean-std-v1"


def forward_with_blocks(backbone: torch.nn.Module, pixels: torch.Tensor,
                        blocks: Sequence[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``backbone.extract_features(pixels)`` and the outputs of ``blocks`` from the same pass.

    Re-states the library's ``extract_features`` loop (stem, blocks, head conv) because it offers no
    hook-free way to read a block's output; eval mode, so drop-connect is a no-op either way."""
    bb = backbone
    x = bb._swish(bb._bn0(bb._conv_stem(pixels)))
    rate = bb._global_params.drop_connect_rate
    wanted = set(blocks)
    maps: list[torch.Tensor] = []
    for idx, block in enumerate(bb._blocks):
        x = block(x, drop_connect_rate=rate * float(idx) / len(bb._blocks) if rate else rate)
        if idx in wanted:
            maps.append(x.float())
    fmap = bb._swish(bb._bn1(bb._conv_head(x)))
    return fmap, maps


def block_channels(backbone: torch.nn.Module, blocks: Sequence[int]) -> list[int]:
    """Output channels of each named block."""
    return [int(backbone._blocks[i]._block_args.output_filters) for i in blocks]


def stats_dim(channels: Sequence[int]) -> int:
    """Head input dimensions the statistics of blocks with these channel counts take."""
    return 2 * sum(int(c) for c in channels)


def _mean_std(mean: torch.Tensor, mean_sq: torch.Tensor) -> torch.Tensor:
    return torch.cat([mean, (mean_sq - mean * mean).clamp(min=0.0).sqrt()], dim=-1)


def global_stats(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """(n, C_i, h_i, w_i) maps -> (n, sum 2 C_i): per block, channel means then standard deviations."""
    return torch.cat([_mean_std(m.mean(dim=(2, 3)), (m * m).mean(dim=(2, 3))) for m in maps], dim=1)


def pooled_with_stats(fmap: torch.Tensor, maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """The head's backbone input: the last map's average pool, then ``global_stats`` of the block
    maps when there are any. The one place that order is defined (training and serving read it)."""
    pooled = fmap.float().mean(dim=(2, 3))
    return torch.cat([pooled, global_stats(maps)], dim=1) if maps else pooled


def window_stats(maps: Sequence[torch.Tensor], last_cells: int, windows: tuple[int, ...],
                 stride: int) -> torch.Tensor:
    """(n, R, sum 2 C_i): ``global_stats`` of every window of the last map's grid (``last_cells``
    cells a side; ``pooling.window_means`` order), each block map cropped to the same box (a map
    k times finer than the last one takes windows and stride k times larger)."""
    parts = []
    for m in maps:
        k = m.shape[2] // last_cells
        if k * last_cells != m.shape[2]:
            raise ValueError(f"a {m.shape[2]}-cell block map is not a multiple of the {last_cells}-cell last map")
        sizes, step = tuple(s * k for s in windows), stride * k
        parts.append(_mean_std(window_means(m, sizes, step), window_means(m * m, sizes, step)))
    return torch.cat(parts, dim=2)


def block_stats_error(bs: dict) -> str | None:
    """Why a card's ``block_stats`` field (``block_stats_card``) cannot be served, or None."""
    blocks, channels = list(bs.get("blocks") or []), list(bs.get("channels") or [])
    if not blocks or len(blocks) != len(channels) or blocks != sorted(set(blocks)):
        return f"block_stats needs ascending distinct blocks and one channel count each, got {bs}"
    if bs.get("method") != BLOCK_STATS_METHOD:
        return f"block_stats method {bs.get('method')!r} is not implemented here ({BLOCK_STATS_METHOD!r})"
    return None


def card_blocks(bs: dict) -> tuple[int, ...]:
    """The blocks a card's ``block_stats`` field names (() without statistics)."""
    return tuple(int(b) for b in bs.get("blocks", ()))


def card_stats_dim(bs: dict) -> int:
    """Input dimensions a card's ``block_stats`` field adds (0 without statistics)."""
    return stats_dim(bs.get("channels", ()))


def check_backbone(backbone: torch.nn.Module, bs: dict, owner: str) -> None:
    """Refuses a card (``owner`` names it) whose block channels are not this backbone's."""
    if bs and block_channels(backbone, card_blocks(bs)) != list(bs["channels"]):
        raise ValueError(f"{owner}: block_stats {bs} do not match the backbone")


def block_stats_card(blocks: Sequence[int], channels: Sequence[int]) -> dict:
    """The ``block_stats`` field of a head or visual card (``image_head.HeadCard``, ``visual.VisualCard``)."""
    return {"blocks": [int(b) for b in blocks], "channels": [int(c) for c in channels], "method": BLOCK_STATS_METHOD}
