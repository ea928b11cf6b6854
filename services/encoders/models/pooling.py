"""Window pooling of a feature map, shared by the ``visual`` descriptor and the block statistics.

Why a module of its own: the regional GeM of ``visual`` and the per-window block statistics of
``block_stats`` both reduce every square window of a map to its mean, and each of them needs the
other's output (the visual rows read block statistics), so the one op lives below both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def window_means(fmap: torch.Tensor, windows: tuple[int, ...], stride: int) -> torch.Tensor:
    """(n, C, h, w) -> (n, R, C): the mean of every square window of each size, row-major per
    size (``scene_windows.window_cells`` order), in ops ONNX exports."""
    n, c = fmap.shape[:2]
    parts = []
    for s in windows:
        if s > min(fmap.shape[2], fmap.shape[3]):
            continue
        pooled = F.avg_pool2d(fmap, kernel_size=s, stride=stride)
        parts.append(pooled.reshape(n, c, -1).transpose(1, 2))
    return torch.cat(parts, dim=1)
