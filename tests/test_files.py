"""File plumbing under saved maps: whole I/O, overlapped batches, replacing (_files.py)."""

from __future__ import annotations

import ctypes
import errno
import os
import threading

import numpy as np
import pytest

from pageflags import _files


class Short(Exception):
    pass


def test_read_exact_reads_across_short_reads_and_raises_at_the_end(tmp_path, monkeypatch):
    path = tmp_path / "data"
    path.write_bytes(bytes(range(100)))
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: real_read(fd, min(n, 7)))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _files.read_exact(fd, 60, Short) == bytes(range(60))
        with pytest.raises(Short):
            _files.read_exact(fd, 41, Short)
    finally:
        os.close(fd)


def test_write_all_finishes_short_writes(tmp_path, monkeypatch):
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, memoryview(data)[:5]))
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        _files.write_all(fd, np.arange(10, dtype=np.uint64))
        _files.write_all(fd, np.empty(0, dtype=np.uint64))
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == np.arange(10, dtype=np.uint64).tobytes()


@pytest.mark.parametrize("most", [None, 1, 3, 1000])
def test_preadv_exact_fills_every_buffer_from_the_offset(tmp_path, monkeypatch, most):
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)))
    if most is not None:  # the OS moves at most this many bytes a call
        real = os.preadv

        def short(fd, buffers, offset):
            return real(fd, [memoryview(buffers[0]).cast("B")[:most]], offset)

        monkeypatch.setattr(os, "preadv", short)
    buffers = [bytearray(10), bytearray(1), bytearray(30)]
    fd = os.open(path, os.O_RDONLY)
    try:
        _files.preadv_exact(fd, buffers, 41, 5, Short)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0       # the file offset did not move
        with pytest.raises(Short):
            _files.preadv_exact(fd, [bytearray(10), bytearray(10)], 20, 240, Short)
    finally:
        os.close(fd)
    assert b"".join(buffers) == bytes(range(5, 46))


# --- overlapped ------------------------------------------------------------------

def trace_run(nbatches: int, ahead: int, **fail):
    """Run overlapped with recording stages; ``fail={"first": i}`` raises there."""
    events, lock = [], threading.Lock()

    def stage(name):
        def run(i):
            with lock:
                events.append((name, i, threading.current_thread().name))
            if fail.get(name) == i:
                raise fail.get("error", RuntimeError)(f"{name} {i}")
        return run

    _files.overlapped(nbatches, stage("first"), stage("second"), ahead)
    return events


@pytest.mark.parametrize("ahead", [1, 2, 5])
def test_overlapped_runs_each_batch_in_order_and_at_most_ahead(ahead):
    events = trace_run(40, ahead)
    firsts = [i for name, i, _ in events if name == "first"]
    seconds = [i for name, i, _ in events if name == "second"]
    assert firsts == seconds == list(range(40))
    done = 0
    for name, i, _ in events:
        if name == "second":
            done = i + 1
        else:
            assert done <= i < done + ahead      # first(i) waits for second(i - ahead)
    assert all(thread == "pageflags-io" for name, _, thread in events if name == "first")
    assert all(thread == threading.current_thread().name
               for name, _, thread in events if name == "second")


@pytest.mark.parametrize("nbatches", [0, 1])
def test_overlapped_runs_a_single_batch_inline(nbatches):
    events = trace_run(nbatches, 3)
    assert [name for name, _, _ in events] == ["first", "second"][:2 * nbatches]
    assert {thread for _, _, thread in events} <= {threading.current_thread().name}


@pytest.mark.parametrize("stage", ["first", "second"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_overlapped_raises_a_failure_after_the_helper_stops(stage, error):
    with pytest.raises(error, match=f"{stage} 7"):
        trace_run(50, 3, **{stage: 7, "error": error})
    assert not [t for t in threading.enumerate() if t.name == "pageflags-io"]


def test_overlapped_stops_the_helper_when_the_caller_fails():
    events = []
    with pytest.raises(RuntimeError):
        _files.overlapped(100, events.append, lambda i: (_ for _ in ()).throw(RuntimeError()),
                          ahead=4)
    assert len(events) <= 5  # batch 0 and at most `ahead` more were read


# --- swap_into_place -------------------------------------------------------------

def write(path, data: bytes) -> None:
    path.write_bytes(data)


def test_swap_replaces_and_leaves_only_the_target(tmp_path):
    target, tmp = tmp_path / "map.pgf", tmp_path / ".map.pgf.tmp"
    write(target, b"old")
    write(tmp, b"new")
    _files.swap_into_place(str(tmp), str(target))
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["map.pgf"]


def test_swap_without_a_target_renames(tmp_path):
    write(tmp_path / "t", b"new")
    _files.swap_into_place(str(tmp_path / "t"), str(tmp_path / "map.pgf"))
    assert os.listdir(tmp_path) == ["map.pgf"]


def test_swap_uses_the_exchange_where_linux_has_it(tmp_path, monkeypatch):
    if _files._renameat2 is None:
        pytest.skip("no renameat2 in this C library")
    calls = []
    real = _files._renameat2
    monkeypatch.setattr(_files, "_renameat2", lambda *args: calls.append(args) or real(*args))
    monkeypatch.setattr(os, "replace", None)    # must not be needed
    write(tmp_path / "map.pgf", b"old")
    write(tmp_path / "t", b"new")
    _files.swap_into_place(str(tmp_path / "t"), str(tmp_path / "map.pgf"))
    assert calls and calls[0][-1] == _files._RENAME_EXCHANGE
    assert (tmp_path / "map.pgf").read_bytes() == b"new"


def test_swap_keeps_other_hard_links_on_the_old_file(tmp_path):
    write(tmp_path / "map.pgf", b"old")
    os.link(tmp_path / "map.pgf", tmp_path / "other")
    write(tmp_path / "t", b"new")
    _files.swap_into_place(str(tmp_path / "t"), str(tmp_path / "map.pgf"))
    assert (tmp_path / "other").read_bytes() == b"old"
    assert (tmp_path / "map.pgf").read_bytes() == b"new"


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOSYS, None])
def test_swap_falls_back_to_replace(tmp_path, monkeypatch, code):
    def refuse(*args):
        ctypes.set_errno(code)
        return -1

    monkeypatch.setattr(_files, "_renameat2", None if code is None else refuse)
    write(tmp_path / "map.pgf", b"old")
    write(tmp_path / "t", b"new")
    _files.swap_into_place(str(tmp_path / "t"), str(tmp_path / "map.pgf"))
    assert (tmp_path / "map.pgf").read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["map.pgf"]


def test_swap_raises_other_errors_and_changes_nothing(tmp_path, monkeypatch):
    def fail(*args):
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(_files, "_renameat2", fail)
    write(tmp_path / "map.pgf", b"old")
    write(tmp_path / "t", b"new")
    with pytest.raises(OSError) as info:
        _files.swap_into_place(str(tmp_path / "t"), str(tmp_path / "map.pgf"))
    assert info.value.errno == errno.EIO
    assert (tmp_path / "map.pgf").read_bytes() == b"old"


def test_fsync_folder_ignores_a_folder_it_cannot_open(tmp_path):
    _files.fsync_folder(str(tmp_path))
    _files.fsync_folder(str(tmp_path / "absent"))
