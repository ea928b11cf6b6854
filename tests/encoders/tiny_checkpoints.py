"""Tiny, randomly initialised CLIP / Chinese-CLIP checkpoints built offline for tests.

They exercise the pluggable-checkpoint loading path (config, weights, tokenizer and
preprocessor files in the Hugging Face layout) without any download; the vectors mean
nothing, but they are deterministic (fixed seed).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

PROJECTION_DIM = 16
IMAGE_SIZE = 32


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP byte-level alphabet (256 printable stand-ins for the bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def _vision_config() -> dict:
    return dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=8,
    )


def _preprocessor(directory: Path) -> None:
    (directory / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "CLIPImageProcessor",
                "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                "size": {"shortest_edge": IMAGE_SIZE},
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
            }
        ),
        encoding="utf-8",
    )


def make_tiny_clip(directory: Path, seed: int = 0) -> Path:
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    tok.save_pretrained(str(directory))
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=32, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos,
        ),
        vision_config=_vision_config(),
        projection_dim=PROJECTION_DIM,
    )
    torch.manual_seed(seed)
    CLIPModel(cfg).save_pretrained(str(directory))
    _preprocessor(directory)
    return directory


def make_tiny_chinese_clip(directory: Path, seed: int = 0) -> Path:
    from transformers import BertTokenizer, ChineseCLIPConfig, ChineseCLIPModel

    directory.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("的沙发椅子桌灯白色绿色现代风格橱柜金拉手门") + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    BertTokenizer(vocab=vocab).save_pretrained(str(directory))
    cfg = ChineseCLIPConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=64,
        ),
        vision_config=_vision_config(),
        projection_dim=PROJECTION_DIM,
    )
    torch.manual_seed(seed)
    ChineseCLIPModel(cfg).save_pretrained(str(directory))
    _preprocessor(directory)
    return directory
