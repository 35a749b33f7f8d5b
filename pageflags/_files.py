"""File plumbing for saved maps: whole reads and writes, overlapped batches, replacing.

Two things here are about speed, and both are about what the OS does behind a plain
loop:

* :func:`overlapped` runs the I/O of one batch of chunks on a helper thread while
  the calling thread checksums another.  Reads and writes release the GIL in the
  system call and the checksum kernels are ``nogil``, so on two cores a load or a
  save costs about the longer of the two instead of their sum.
* :func:`swap_into_place` puts a finished temporary file in place of the target with
  ``renameat2(RENAME_EXCHANGE)`` where Linux offers it, then unlinks the old file.
  A plain ``rename`` over an existing file makes ext4 (``auto_da_alloc``, on by
  default) start writing the new file's delayed blocks inside the call: 25 ms or more
  for 64 MiB here, when the caller asked for no fsync.  The exchange is as atomic
  (the target names the old file, then the new one) and skips that heuristic.
  Elsewhere, or when the file system refuses the exchange, it is ``os.replace``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

__all__ = ["fsync_folder", "overlapped", "preadv_exact", "read_exact", "swap_into_place",
           "write_all"]


def write_all(fd: int, buffer: Any) -> None:
    """Write every byte of ``buffer`` (anything with the buffer protocol) to ``fd``."""
    view = memoryview(buffer)
    if not view.nbytes:  # an empty array's view cannot be cast
        return
    view = view.cast("B")
    while view:
        view = view[os.write(fd, view):]


def read_exact(fd: int, nbytes: int, on_short: Callable[[], Exception]) -> bytes:
    """``nbytes`` bytes from ``fd``'s offset; ``on_short()`` is raised at end of file."""
    parts = []
    while nbytes:
        part = os.read(fd, nbytes)
        if not part:
            raise on_short()
        parts.append(part)
        nbytes -= len(part)
    return b"".join(parts)


def preadv_exact(fd: int, buffers: list, nbytes: int, offset: int,
                 on_short: Callable[[], Exception]) -> None:
    """Fill ``buffers`` (``nbytes`` in all) in order from the file at ``offset``.

    ``pread``-style: the file offset does not move, so a helper thread can read while
    the caller holds the same descriptor.
    """
    done = os.preadv(fd, buffers, offset)
    if done == nbytes:
        return
    # The OS may move fewer bytes than asked (signals, huge requests): finish by hand.
    for buffer in buffers:
        view = memoryview(buffer).cast("B")
        skip = min(done, view.nbytes)
        done -= skip
        offset += skip
        view = view[skip:]
        while view:
            got = os.preadv(fd, [view], offset)
            if got <= 0:
                raise on_short()
            view = view[got:]
            offset += got


def overlapped(nbatches: int, first: Callable[[int], None], second: Callable[[int], None],
               ahead: int) -> None:
    """Run ``first(i)`` then ``second(i)`` for each batch ``i``, overlapping batches.

    ``first`` runs on a helper thread, in batch order, at most ``ahead`` batches ahead
    of ``second``, which runs on the calling thread, in order, each call after its
    batch's ``first``.  An exception in either stops both and is raised here, after
    the helper has finished (it never outlives this call).  A single batch runs
    inline: a thread costs more than it saves.

    Examples
    --------
    >>> seen = []
    >>> overlapped(3, lambda i: seen.append(("read", i)), lambda i: seen.append(("sum", i)), 1)
    >>> [step for step in seen if step[0] == "sum"]
    [('sum', 0), ('sum', 1), ('sum', 2)]
    """
    if nbatches <= 1:
        for i in range(nbatches):
            first(i)
            second(i)
        return
    room = threading.Semaphore(ahead)
    finished: SimpleQueue = SimpleQueue()
    stop = threading.Event()

    def helper() -> None:
        try:
            for i in range(nbatches):
                room.acquire()
                if stop.is_set():
                    return
                first(i)
                finished.put(None)
        except BaseException as exc:  # handed to the caller, raised there
            finished.put(exc)

    thread = threading.Thread(target=helper, name="pageflags-io", daemon=True)
    thread.start()
    try:
        for i in range(nbatches):
            failure = finished.get()
            if failure is not None:
                raise failure
            second(i)
            room.release()
    finally:
        stop.set()
        room.release()
        _join(thread)


def _join(thread: threading.Thread) -> None:
    # A Ctrl-C during the join must not leave the helper using buffers or a file
    # descriptor that the caller is about to free.
    interrupted = None
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt as exc:
            interrupted = exc
    if interrupted is not None:
        raise interrupted


def fsync_folder(folder: str) -> None:
    """fsync a folder, so that a rename in it survives a power loss (where possible)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform that cannot open folders (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
# Errors meaning "no exchange here": no target yet, or a kernel, C library or file
# system without RENAME_EXCHANGE.
_NO_EXCHANGE = {errno.ENOENT, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM}


def _find_renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc before 2.28, or another C library
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _find_renameat2()


def swap_into_place(tmp: str, path: str) -> None:
    """Atomically make ``path`` name the file ``tmp``; the old file is removed.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     old, new = os.path.join(folder, "map"), os.path.join(folder, "map.tmp")
    ...     for name, text in ((old, b"old"), (new, b"new")):
    ...         with open(name, "wb") as out:
    ...             _ = out.write(text)
    ...     swap_into_place(new, old)
    ...     open(old, "rb").read(), os.listdir(folder)
    (b'new', ['map'])
    """
    if _renameat2 is not None:
        done = _renameat2(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path),
                          _RENAME_EXCHANGE)
        if done == 0:
            os.unlink(tmp)  # the old file, now under the temporary name
            return
        code = ctypes.get_errno()
        if code not in _NO_EXCHANGE:
            raise OSError(code, os.strerror(code), path)
    os.replace(tmp, path)
