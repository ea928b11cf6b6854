"""Middle-block statistics (services.encoders.models.block_stats): the pass, the pooling, the card."""

import json

import pytest
import torch

pytest.importorskip("efficientnet_lite_pytorch")

from services.encoders.models.block_stats import (  # noqa: E402
    BLOCK_STATS_METHOD,
    block_channels,
    block_stats_card,
    forward_with_blocks,
    global_stats,
    stats_dim,
    window_stats,
)
from services.encoders.models.effnet_image import load_backbone  # noqa: E402
from services.encoders.models.scene_windows import SCENE_STRIDE, SCENE_WINDOWS, window_cells  # noqa: E402


@pytest.fixture(scope="module")
def backbone():
    return load_backbone()


def test_one_pass_gives_the_last_map_and_the_blocks_a_hook_sees(backbone):
    x = torch.rand(2, 3, 224, 224) * 2 - 1
    seen = {}
    hooks = [backbone._blocks[b].register_forward_hook(lambda m, i, o, b=b: seen.__setitem__(b, o)) for b in (10, 14)]
    try:
        with torch.inference_mode():
            want = backbone.extract_features(x)
            fmap, maps = forward_with_blocks(backbone, x, (10, 14))
    finally:
        for h in hooks:
            h.remove()
    assert torch.equal(fmap, want)
    assert [tuple(m.shape) for m in maps] == [(2, 112, 14, 14), (2, 192, 7, 7)]
    assert torch.equal(maps[0], seen[10]) and torch.equal(maps[1], seen[14])
    assert block_channels(backbone, (10, 14)) == [112, 192] and stats_dim([112, 192]) == 608


def test_global_stats_are_channel_means_then_population_stds():
    maps = [torch.rand(3, 4, 6, 6), torch.rand(3, 5, 3, 3) * 3]
    got = global_stats(maps)
    want = torch.cat([torch.cat([m.mean(dim=(2, 3)), m.std(dim=(2, 3), unbiased=False)], 1) for m in maps], 1)
    assert got.shape == (3, 18)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_window_stats_are_the_stats_of_each_cropped_window():
    """Row r of a 20-cell grid's windows = global_stats of the crop of every map to window r's box,
    the finer (40-cell) map cropped to the same box."""
    fine, coarse = torch.rand(1, 3, 40, 40), torch.rand(1, 2, 20, 20)
    got = window_stats([fine, coarse], 20, SCENE_WINDOWS, SCENE_STRIDE)
    cells = window_cells(20, SCENE_WINDOWS, SCENE_STRIDE)
    assert got.shape == (1, len(cells), 10)
    for r in (0, 7, 64, len(cells) - 1):
        x0, y0, x1, y1 = cells[r]
        crops = [fine[:, :, 2 * y0:2 * y1, 2 * x0:2 * x1], coarse[:, :, y0:y1, x0:x1]]
        torch.testing.assert_close(got[0, r], global_stats(crops)[0], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="not a multiple"):
        window_stats([torch.rand(1, 2, 30, 30)], 20, SCENE_WINDOWS, SCENE_STRIDE)


def _card(tmp_path, block_stats):
    d = tmp_path / "head"
    d.mkdir(exist_ok=True)
    dim = 1280 + stats_dim(block_stats.get("channels", ()))
    (d / "head.json").write_text(json.dumps({
        "format": "homesearch-image-head/1", "version": "t", "block_stats": block_stats,
        "architecture": {"type": "linear", "input_dim": dim, "output_dim": 384}}))
    return d


def test_the_card_declares_blocks_channels_and_method(tmp_path):
    from services.encoders.models.image_head import HeadCard, HeadFormatError

    card = HeadCard.read(_card(tmp_path, block_stats_card((10, 14), (112, 192))))
    assert card.stat_blocks == (10, 14) and card.extra_dim == 608
    for bad in ({"blocks": [14, 10], "channels": [192, 112], "method": BLOCK_STATS_METHOD},
                {"blocks": [10], "channels": [112, 192], "method": BLOCK_STATS_METHOD},
                {"blocks": [10], "channels": [112], "method": "mean-std-v0"}):
        with pytest.raises(HeadFormatError, match="block_stats"):
            HeadCard.read(_card(tmp_path, bad))
