"""Chunk memory: read-only for good, and filled from files by address."""

import os

import numpy as np
import pytest

from pageflags import _chunks


class Short(Exception):
    pass


def test_new_chunks_are_zeroed_or_copies_and_read_only_for_good():
    sources = [np.arange(4, dtype=np.uint64), np.full(4, 7, dtype=np.uint64)]
    for chunks in (_chunks.new_chunks(2, 4)[0], _chunks.new_chunks(2, 4, sources)[0]):
        for chunk in chunks:
            assert chunk.dtype == np.uint64 and chunk.shape == (4,)
            with pytest.raises(ValueError, match="WRITEABLE"):
                chunk.setflags(write=True)
    copies, addrs = _chunks.new_chunks(2, 4, sources)
    assert [c.tolist() for c in copies] == [s.tolist() for s in sources]
    assert addrs.tolist() == [c.ctypes.data for c in copies]
    sources[0][0] = 99  # copies, not views
    assert copies[0][0] == 0


@pytest.mark.parametrize("most", [None, 1, 3, 1000])
def test_read_into_fills_every_chunk_from_the_offset(tmp_path, monkeypatch, most):
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 4)
    if most is not None:  # the OS moves at most this many bytes a call
        real = _chunks._preadv

        def short(fd, iov, offset):
            first = iov[:1].copy()
            first[0, 1] = min(int(first[0, 1]), most)
            return real(fd, first, offset)

        monkeypatch.setattr(_chunks, "_preadv", short)
    chunks, addrs = _chunks.new_chunks(3, 2)
    _held, past_addrs = _chunks.new_chunks(2, 2)  # held while read into
    fd = os.open(path, os.O_RDONLY)
    try:
        _chunks.read_into(fd, addrs, 16, 5, Short)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0       # the file offset did not move
        with pytest.raises(Short):
            _chunks.read_into(fd, past_addrs, 16, 1000, Short)
    finally:
        os.close(fd)
    assert b"".join(c.tobytes() for c in chunks) == (bytes(range(256)) * 4)[5:53]


def test_read_into_without_libc_preadv(tmp_path, monkeypatch):
    monkeypatch.setattr(_chunks, "_PREADV", None)
    path = tmp_path / "data"
    path.write_bytes(bytes(range(64)))
    chunks, addrs = _chunks.new_chunks(2, 1)
    fd = os.open(path, os.O_RDONLY)
    try:
        _chunks.read_into(fd, addrs, 8, 8, Short)
    finally:
        os.close(fd)
    assert b"".join(c.tobytes() for c in chunks) == bytes(range(8, 24))
