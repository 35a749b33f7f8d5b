"""File plumbing for saved maps: opening, whole I/O, overlapped batches, replacing.

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

The rest is about what may stand where a file is read or written:

* :func:`open_regular` opens only regular files: a FIFO (or a socket, a device) is
  refused before anything reads from it, so that a reader never blocks on one.
* A save replaces only a regular file (or creates one where nothing is):
  :func:`swap_into_place` refuses, and puts back, whatever else it found at the target.
* Temporary files are named ``.{target}.{host}.{pid}.{random}.pgf-tmp``: the target's
  name, a tag of the host and PID namespace (:func:`writer_tag`), the writing
  process's pid and eight random hex digits.  :func:`remove_stale_temps` removes, for
  one target, those whose tag is this host's and whose pid no longer runs here; it
  leaves everything else (other hosts' files on a shared folder, live writers, a
  dead writer's pid that a new process has taken, names of any other form).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import secrets
import socket
import stat
import sys
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeAlias

__all__ = ["PathArg", "StrPath", "create_temp", "fsync_folder", "not_a_regular_file",
           "open_regular", "overlapped", "read_exact", "remove_stale_temps",
           "replace_text", "swap_into_place", "write_all"]

#: A path as the file functions take it (``os.fspath`` accepts each).
PathArg: TypeAlias = "str | bytes | os.PathLike[str] | os.PathLike[bytes]"
#: A path that is text (the readers of ``/proc`` and sysfs, a sharded map's folder).
StrPath: TypeAlias = "str | os.PathLike[str]"


# --- what stands at a path -------------------------------------------------------

_KINDS = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISLNK, "symlink"))


def not_a_regular_file(path: str, mode: int) -> OSError:
    """The error for ``path`` holding what ``mode`` says, which is not a regular file.

    ``IsADirectoryError`` for a folder; otherwise ``OSError`` (``EINVAL``) naming the
    kind.

    Examples
    --------
    >>> import stat
    >>> str(not_a_regular_file("x", stat.S_IFIFO))
    "[Errno 22] not a regular file but a FIFO: 'x'"
    >>> type(not_a_regular_file("x", stat.S_IFDIR)).__name__
    'IsADirectoryError'
    """
    if stat.S_ISDIR(mode):
        return IsADirectoryError(errno.EISDIR, "is a folder, not a regular file", path)
    kind = next((name for test, name in _KINDS if test(mode)), "special file")
    return OSError(errno.EINVAL, f"not a regular file but a {kind}", path)


_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)


def open_regular(path: str) -> int:
    """A read-only descriptor of the regular file ``path`` (blocking, as usual).

    Anything else raises (:func:`not_a_regular_file`) before a byte is read: a FIFO
    would block a reader forever, a device never ends.  ``path`` is looked at first
    (so that a device is not even opened), then opened with ``O_NONBLOCK`` (opening a
    FIFO does not wait for a writer) and the opened file checked again, so that one
    swapped in between is refused too.  A missing file raises ``FileNotFoundError``.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise not_a_regular_file(path, mode)
    fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_NOCTTY)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise not_a_regular_file(path, mode)
        if _O_NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


# --- temporary files -------------------------------------------------------------

TEMP_SUFFIX = ".pgf-tmp"
# Room for ".{target}." plus "{tag}.{pid}.{random}" and the suffix in NAME_MAX (255).
_TARGET_BYTES = 255 - 2 - (8 + 1 + 10 + 1 + 8) - len(TEMP_SUFFIX)
_TEMP_TAIL = re.compile(r"([0-9a-f]{8})\.([1-9][0-9]{0,9})\.[0-9a-f]{8}"
                        + re.escape(TEMP_SUFFIX), re.ASCII)


@functools.cache
def writer_tag() -> str:
    """Eight hex digits naming this host and PID namespace, for temporary file names.

    Pids mean something only where they were given out: a temporary file whose tag
    differs came from another machine sharing the folder (or another container) and
    is never judged by its pid here.
    """
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except (OSError, AttributeError):
        namespace = ""
    return f"{zlib.crc32(f'{socket.gethostname()}/{namespace}'.encode()):08x}"


def _temp_prefix(target: str) -> str:
    # A very long target name is cut so the temporary name stays a valid name; two
    # targets alike in their first 200-odd bytes then share stale-file clean-up.
    encoded = os.fsencode(target)
    if len(encoded) > _TARGET_BYTES:
        target = os.fsdecode(encoded[:_TARGET_BYTES])
    return f".{target}."


def temp_name(target: str, tag: str, pid: int) -> str:
    """A temporary file name for the file named ``target`` (a base name).

    Examples
    --------
    >>> name = temp_name("map.pgf", "0123abcd", 42)
    >>> name.startswith(".map.pgf.0123abcd.42."), name.endswith(".pgf-tmp")
    (True, True)
    >>> temp_writer(name, "map.pgf")
    ('0123abcd', 42)
    """
    return f"{_temp_prefix(target)}{tag}.{pid}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def temp_writer(name: str, target: str) -> tuple[str, int] | None:
    """``(tag, pid)`` of the writer of ``name``, a temporary file of ``target``; or None.

    None for every name :func:`temp_name` cannot give for ``target``.
    """
    prefix = _temp_prefix(target)
    if not name.startswith(prefix):
        return None
    match = _TEMP_TAIL.fullmatch(name, len(prefix))
    return None if match is None else (match.group(1), int(match.group(2)))


def create_temp(folder: str, target: str) -> tuple[int, str]:
    """``(fd, path)`` of a new, empty, mode-0600 temporary file for ``target`` in ``folder``."""
    tag, pid = writer_tag(), os.getpid()
    while True:
        path = os.path.join(folder, temp_name(target, tag, pid))
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path
        except FileExistsError:  # 2^-32: draw again
            continue


def writer_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running here (True when unsure)."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate it on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # EPERM: alive, someone else's
        return True
    return True


def remove_stale_temps(folder: str, target: str) -> list[str]:
    """Remove the temporary files of ``target`` in ``folder`` left by dead writers.

    Only regular files named as :func:`temp_name` names them for ``target``, with
    this host's :func:`writer_tag` and the pid of a process that no longer exists,
    are removed.  A pid reused since then keeps its file until that process ends;
    errors (an unreadable folder, a file another user owns) leave files where they
    are.  Returns the paths removed.
    """
    tag, me = writer_tag(), os.getpid()
    removed: list[str] = []
    try:
        with os.scandir(folder) as entries:
            stale = [entry.path for entry in entries
                     if (writer := temp_writer(entry.name, target)) is not None
                     and writer[0] == tag and writer[1] != me
                     and entry.is_file(follow_symlinks=False)
                     and not writer_alive(writer[1])]
    except OSError:
        return removed
    for path in stale:
        try:
            os.unlink(path)
        except OSError:
            continue
        removed.append(path)
    return removed


# --- whole reads and writes ------------------------------------------------------


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
    finished: SimpleQueue[BaseException | None] = SimpleQueue()
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


def replace_text(folder: Path, name: str, text: str, *, sync: bool = True) -> None:
    """Make ``folder / name`` hold ``text``, all or nothing: written to a temporary
    file, synced (with ``sync``), renamed over ``name``, then the folder synced.

    A crash leaves the old file or the new one; a failure removes the temporary.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     replace_text(pathlib.Path(folder), "manifest.json", "{}")
    ...     pathlib.Path(folder, "manifest.json").read_text()
    '{}'
    """
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as out:
            out.write(text)
            out.flush()
            if sync:
                os.fsync(out.fileno())
        os.replace(tmp, folder / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        fsync_folder(str(folder))


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

    Only a regular file is replaced.  Whatever else is at ``path`` (a folder, a
    FIFO, a symlink put there since the caller looked) raises
    :func:`not_a_regular_file` and stays at ``path``; ``tmp`` is then left for the
    caller to remove.  After an exchange that is the check of what came back, and
    a second exchange puts it back; where ``os.replace`` stands in, it refuses a
    folder itself but would replace other kinds, which the caller checks first.

    Examples
    --------
    >>> import os, pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     old, new = pathlib.Path(folder, "map"), pathlib.Path(folder, "map.tmp")
    ...     _ = old.write_bytes(b"old"), new.write_bytes(b"new")
    ...     swap_into_place(str(new), str(old))
    ...     old.read_bytes(), os.listdir(folder)
    (b'new', ['map'])
    """
    if _renameat2 is not None:
        done = _renameat2(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path),
                          _RENAME_EXCHANGE)
        if done == 0:
            mode = os.lstat(tmp).st_mode  # what path named until now
            if not stat.S_ISREG(mode):
                _exchange_back(tmp, path)
                raise not_a_regular_file(path, mode)
            os.unlink(tmp)  # the old file, now under the temporary name
            return
        code = ctypes.get_errno()
        if code not in _NO_EXCHANGE:
            raise OSError(code, os.strerror(code), path)
    try:
        os.replace(tmp, path)
    except IsADirectoryError:
        raise not_a_regular_file(path, stat.S_IFDIR) from None


def _exchange_back(tmp: str, path: str) -> None:
    if _renameat2(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path),
                  _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{os.strerror(code)}: what stood at the target is now "
                      f"at {tmp!r}", path)
