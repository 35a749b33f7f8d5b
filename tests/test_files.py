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


def test_swap_refuses_a_directory_target_and_changes_nothing(tmp_path):
    (tmp_path / "map.pgf").mkdir()
    (tmp_path / "map.pgf" / "inside").write_bytes(b"keep")
    write(tmp_path / "t", b"new")
    with pytest.raises(IsADirectoryError) as info:
        _files.swap_into_place(str(tmp_path / "t"), str(tmp_path / "map.pgf"))
    assert info.value.filename == str(tmp_path / "map.pgf")
    assert (tmp_path / "map.pgf" / "inside").read_bytes() == b"keep"
    assert (tmp_path / "t").read_bytes() == b"new"      # the caller removes it


@pytest.mark.parametrize("code", [errno.EINVAL, None])
def test_swap_without_the_exchange_refuses_a_directory_target(tmp_path, monkeypatch, code):
    def refuse(*args):
        ctypes.set_errno(code)
        return -1

    monkeypatch.setattr(_files, "_renameat2", None if code is None else refuse)
    (tmp_path / "map.pgf").mkdir()
    write(tmp_path / "t", b"new")
    with pytest.raises(IsADirectoryError) as info:
        _files.swap_into_place(str(tmp_path / "t"), str(tmp_path / "map.pgf"))
    assert info.value.filename == str(tmp_path / "map.pgf")
    assert (tmp_path / "map.pgf").is_dir()


def test_swap_refuses_a_fifo_that_took_the_targets_place(tmp_path):
    if _files._renameat2 is None:
        pytest.skip("no renameat2 in this C library")
    os.mkfifo(tmp_path / "map.pgf")
    write(tmp_path / "t", b"new")
    with pytest.raises(OSError, match="FIFO"):
        _files.swap_into_place(str(tmp_path / "t"), str(tmp_path / "map.pgf"))
    assert os.path.exists(tmp_path / "t")
    assert not (tmp_path / "map.pgf").is_file()


# --- open_regular ------------------------------------------------------------------

def test_open_regular_opens_a_regular_file_blocking(tmp_path):
    write(tmp_path / "f", b"data")
    fd = _files.open_regular(str(tmp_path / "f"))
    try:
        assert os.get_blocking(fd)
        assert os.read(fd, 10) == b"data"
    finally:
        os.close(fd)


def test_open_regular_refuses_others_before_reading(tmp_path, monkeypatch):
    import socket

    os.mkfifo(tmp_path / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        for name, kind in (("fifo", "FIFO"), ("sock", "socket")):
            with pytest.raises(OSError, match=f"not a regular file but a {kind}") as info:
                _files.open_regular(str(tmp_path / name))
            assert info.value.errno == errno.EINVAL
            assert info.value.filename == str(tmp_path / name)
    with pytest.raises(IsADirectoryError):
        _files.open_regular(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        _files.open_regular(str(tmp_path / "absent"))


def test_open_regular_checks_what_it_opened_not_only_what_it_saw(tmp_path, monkeypatch):
    # A file replaced by a FIFO between the stat and the open is still refused,
    # and the open itself does not block (O_NONBLOCK).
    write(tmp_path / "x", b"data")
    real_open = os.open

    def swap_then_open(path, flags, *args):
        os.unlink(path)
        os.mkfifo(path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", swap_then_open)
    with pytest.raises(OSError, match="FIFO"):
        _files.open_regular(str(tmp_path / "x"))


# --- temporary file names ----------------------------------------------------------

def test_temp_names_parse_back_only_for_their_own_target():
    tag = _files.writer_tag()
    name = _files.temp_name("map.pgf", tag, 1234)
    assert name.startswith(".map.pgf.") and name.endswith(_files.TEMP_SUFFIX)
    assert _files.temp_writer(name, "map.pgf") == (tag, 1234)
    assert _files.temp_writer(name, "map") is None
    assert _files.temp_writer(name, "map.pgf.x") is None
    assert _files.temp_writer(_files.temp_name("map.pgf.1.2", tag, 5), "map.pgf") is None
    for bad in (".map.pgf.tmp", ".map.pgf.abcd.12.ffffffff" + _files.TEMP_SUFFIX,
                f".map.pgf.{tag}.0.ffffffff{_files.TEMP_SUFFIX}",
                f".map.pgf.{tag}.-1.ffffffff{_files.TEMP_SUFFIX}",
                f".map.pgf.{tag}.12.ffffffff.tmp"):
        assert _files.temp_writer(bad, "map.pgf") is None


def test_temp_names_of_long_targets_fit_a_file_name():
    long = "m" * 255
    name = _files.temp_name(long, _files.writer_tag(), 4_194_304)
    assert len(os.fsencode(name)) <= 255
    assert _files.temp_writer(name, long) == (_files.writer_tag(), 4_194_304)


def test_create_temp_makes_a_new_private_file(tmp_path):
    fd, path = _files.create_temp(str(tmp_path), "map.pgf")
    os.close(fd)
    assert os.path.dirname(path) == str(tmp_path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert _files.temp_writer(os.path.basename(path), "map.pgf") == (
        _files.writer_tag(), os.getpid())


def test_writers_are_alive_unless_the_os_says_they_are_gone(monkeypatch):
    assert _files.writer_alive(os.getpid())
    assert _files.writer_alive(1)                  # init: alive, maybe not ours to signal
    child = __import__("subprocess").Popen(["true"])
    child.wait()
    assert not _files.writer_alive(child.pid)
    assert _files.writer_alive(1 << 80)            # not a pid this OS has: keep its file


def test_remove_stale_temps_ignores_an_unreadable_folder(tmp_path):
    assert _files.remove_stale_temps(str(tmp_path / "absent"), "map.pgf") == []
