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


def slab_of(chunk):
    """The object a chunk's memory belongs to."""
    return chunk if chunk.base is None else chunk.base


@pytest.mark.parametrize("per_group", [_chunks.SLAB_MIN_CHUNKS - 1, _chunks.SLAB_MIN_CHUNKS,
                                       _chunks.SLAB_MIN_CHUNKS + 1])
def test_new_chunk_runs_make_a_slab_per_group_from_the_threshold(per_group):
    group = _chunks.SLAB_GROUP_ENTRIES
    # Two groups: ``per_group`` entries at the end of the first and ``per_group`` at
    # the start of the second, so a slab never crosses a group boundary.
    nrs = np.concatenate((np.arange(group - per_group, group), group + np.arange(per_group)))
    chunks, addrs = _chunks.new_chunk_runs(nrs, 4)
    assert chunks.size == addrs.size == nrs.size
    assert addrs.tolist() == [c.ctypes.data for c in chunks]
    owners = {id(slab_of(c)) for c in chunks}
    slabbed = per_group >= _chunks.SLAB_MIN_CHUNKS
    assert len(owners) == (2 if slabbed else nrs.size)
    if slabbed:
        assert slab_of(chunks[0]) is slab_of(chunks[per_group - 1])
        assert slab_of(chunks[per_group - 1]) is not slab_of(chunks[per_group])
    for chunk in chunks[[0, per_group - 1, per_group, -1]]:
        assert chunk.shape == (4,) and chunk.dtype == np.uint64 and not chunk.any()
        with pytest.raises(ValueError, match="WRITEABLE"):
            chunk.setflags(write=True)
    assert _chunks.held_bytes(chunks) == nrs.size * 32
    assert len(set(addrs.tolist())) == nrs.size


@pytest.mark.parametrize("count", [3, _chunks.SLAB_MIN_CHUNKS, 2 * _chunks.SLAB_MIN_CHUNKS + 7])
def test_new_chunk_runs_fill_ones_or_copy(count):
    nrs = np.arange(count) * 3  # one group until 4096 / 3 entries, then the next
    ones, _ = _chunks.new_chunk_runs(nrs, 8, ones=True)
    assert all(c.tolist() == [2**64 - 1] * 8 for c in ones)
    sources, _ = _chunks.new_chunks(count, 8, (np.full(8, i, dtype=np.uint64)
                                               for i in range(count)))
    copies, addrs = _chunks.new_chunk_runs(nrs, 8, copies=sources)
    assert [c[0] for c in copies] == list(range(count))
    assert all(c.tolist() == s.tolist() for c, s in zip(copies, sources, strict=True))
    assert not set(addrs.tolist()) & {s.ctypes.data for s in sources}  # copies, not views


@pytest.mark.parametrize(("nbytes", "advised"), [
    (5 << 20, 6 << 20),         # two and a half huge pages: the third rounded up
    ((5 << 20) + 8, 6 << 20),
    ((5 << 20) - 8, 4 << 20),   # under half a huge page left over: 4 KiB pages there
    (4 << 20, 4 << 20),
])
def test_huge_slabs_start_on_a_huge_page_and_are_advised(monkeypatch, nbytes, advised):
    huge = _chunks.HUGE_PAGE_BYTES
    calls = []
    monkeypatch.setattr(_chunks, "_MADVISE", lambda *args: calls.append(args) or 0)
    slab = _chunks._slab(nbytes)
    (start, length, advice), = calls
    assert start == _chunks.address_of(slab) and start % huge == 0
    assert length == advised and advice == _chunks._MADV_HUGEPAGE
    assert slab.nbytes == nbytes and slab.dtype == np.uint64 and not slab.any()
    assert not slab.flags.writeable
    with pytest.raises(ValueError, match="WRITEABLE"):
        slab.setflags(write=True)
    rows = np.empty(2, dtype=object)
    rows[:] = list(slab[: 2 * (nbytes // 16)].reshape(2, -1))
    assert _chunks.held_bytes(rows) == max(nbytes, advised)  # the rounded-up page too


def test_small_slabs_and_no_madvise_give_plain_bytes(monkeypatch):
    huge = _chunks.HUGE_PAGE_BYTES
    calls = []
    monkeypatch.setattr(_chunks, "_MADVISE", lambda *args: calls.append(args) or 0)
    small = _chunks._slab(huge - 8)
    assert calls == [] and small.nbytes == len(small.base) == huge - 8
    monkeypatch.setattr(_chunks, "_MADVISE", None)
    plain = _chunks._slab(3 * huge)
    assert plain.nbytes == len(plain.base) == 3 * huge and not plain.any()


def test_held_bytes_counts_each_slab_once_while_a_row_lives():
    rows, _ = _chunks.new_chunk_runs(np.arange(_chunks.SLAB_MIN_CHUNKS), 4)
    alone, _ = _chunks.new_chunks(3, 4)
    slab = _chunks.SLAB_MIN_CHUNKS * 32
    assert _chunks.held_bytes(rows[:1]) == _chunks.held_bytes(rows) == slab
    assert _chunks.held_bytes(np.concatenate((rows[5:9], alone))) == slab + 3 * 32
    assert _chunks.held_bytes(rows[:0]) == 0
    owning = np.empty(2, dtype=object)
    owning[:] = [np.zeros(4, np.uint64), np.zeros(4, np.uint64)]  # own their memory
    assert _chunks.held_bytes(np.concatenate((owning, alone))) == 2 * 32 + 3 * 32


def test_unaligned_slabs_advise_the_huge_pages_inside_them(monkeypatch):
    huge = _chunks.HUGE_PAGE_BYTES
    calls = []
    monkeypatch.setattr(_chunks, "_MADVISE", lambda *args: calls.append(args) or 0)
    slab = _chunks._slab(3 * huge + 8, align=False)
    assert len(slab.base) == slab.nbytes == 3 * huge + 8  # no lead
    (start, length, _), = calls
    data = _chunks.address_of(slab)
    assert start % huge == 0 and length % huge == 0 and length >= 2 * huge
    assert data <= start and start + length <= data + slab.nbytes


@pytest.mark.parametrize("nbytes", [(5 << 20) + 8, (5 << 20) - 8, 4 << 20, 1 << 20])
def test_unzeroed_slabs_show_no_old_memory_outside_their_words(nbytes):
    dirty = b"\xab" * (12 << 20)  # freed below: a likely source of the next slab
    del dirty
    slab = _chunks._slab(nbytes, zeroed=False)
    memory = slab.base if isinstance(slab.base, bytes) else slab.base.base
    assert isinstance(memory, bytes) and slab.nbytes == nbytes
    start = _chunks.address_of(slab) - _chunks.address_of(np.frombuffer(memory, np.uint8))
    outside = np.frombuffer(memory, np.uint8).copy()
    outside[start:start + nbytes] = 0  # the words: the caller writes every one
    assert not outside.any()
    assert not slab.flags.writeable
