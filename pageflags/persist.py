"""Saving and loading PageFlags maps, safely; pickling them compactly.

Why a file format of our own and not ``.npz``
----------------------------------------------
A ``.npz`` is a zip of ``.npy`` members: its parser (zipfile plus the ``.npy``
header) raises a dozen different exception types on damaged input, trusts the shape
in a member header before checking the member's size (a flipped byte can ask for a
huge allocation), checks CRC-32 only after it has read a member, and CRC-32 alone runs
slower than reading the data (about 3.6 GB/s here against 5 GB/s for ``np.load``).
The layout below is a fixed header, three flat arrays and a checksum; every size in
it is checked against the file's real size before anything is allocated, the chunk
words are read with ``preadv`` straight into the chunks the map will own (no
gathering copy), and the checksum is XXH64 (about 10 GB/s in a Numba kernel, in the
same pass over the chunks that counts their bits).  Reads and writes run on a helper
thread, overlapping the checksum of the batch before.  Nothing in a file is ever
unpickled or evaluated.

Layout (version 1, all integers little-endian)
----------------------------------------------
======  =====  =================================================================
offset  bytes  field
======  =====  =================================================================
0       8      magic ``b"\\x89PGFLAG\\n"`` (the high byte and newline catch text-mode
               transfers, as PNG's magic does)
8       4      format version, ``uint32`` = 1
12      1      ``phys_addr_bits``
13      1      ``page_shift``
14      1      ``chunk_shift``
15      1      reserved, 0
16      8      ``npages``
24      8      R: number of runs of ``FULL`` entries
32      8      A: number of allocated chunks
40      8      total count of set pages
48      16     reserved, 0
64      16 R   ``FULL`` runs: R pairs ``(start, stop)`` of entry numbers, ``uint64``,
               ascending, non-empty, neither overlapping nor touching, and within the
               whole chunks (a partial last chunk is never ``FULL``)
..      8 A    allocated entry numbers, ``uint64``, strictly ascending, none in a run
..      A * chunk_bytes
               the allocated chunks' words, ``uint64``, in entry order
end-8   8      XXH64 (seed 0) of every byte before it
======  =====  =================================================================

Entries neither in a run nor allocated are ``None``.  A file's size follows its
allocated chunks (and its runs), never the address space: a 52-bit map with one
chunk is 4 KiB and change.  The checksum covers the whole file, so
``head -c -8 FILE | xxhsum`` (XXH64 is its default) recomputes it outside Python.

Loading opens only a regular file (a FIFO, socket or device raises ``OSError``
before anything reads from it, a folder ``IsADirectoryError``), then checks, in
order, before it builds anything: the size can hold a header, the magic, the
version, the reserved bytes, the geometry limits, that the file size equals what the
header implies, that the map fits in memory (below), the checksum, the entry runs
and numbers, that no bit lies past ``npages``, and the total count; then it builds
the map and runs :meth:`~pageflags.PageFlags.validate`.  Each failure raises
:class:`FormatError` naming the file and the check.

What loading allocates
----------------------
Every count in the header is justified by the file's size before anything is
allocated: the runs, entry numbers and chunks must fill the file exactly, so what
they take grows with the file.  The table does not: a map's table has an entry per
chunk of its geometry, present or not (:func:`load_cost`: about 32 bytes an entry
at the peak of a load, 20 once built), so a 72-byte file of an empty 52-bit map
honestly asks for 1 GiB.  What no file size can justify is checked against the
machine: a load whose table and chunks would take more than the memory available
now (``MemAvailable``) raises :class:`FormatError` (check ``"memory"``) naming the
geometry and the bytes, before allocating any of it; where the available memory
cannot be known, running out while building raises the same error.  Unpickling
(:func:`restore`) applies the same rule.

Paths, and what may stand at the target
---------------------------------------
Paths are ``str``, ``bytes`` or ``os.PathLike`` everywhere; messages and
:attr:`FormatError.path` give them as ``str`` (``os.fsdecode``).  A save follows
symlinks and writes the file a link names (creating it if the link dangles).  It
replaces only a regular file, or creates one where nothing is: a folder (or a link
to one, or a name ending in a separator) raises ``IsADirectoryError``, a FIFO,
socket or device raises ``OSError``, and in each case nothing is written and the
target is left as it was, also when it changes kind during the save (the swap puts
back what it finds, see ``_files.py``).

Crash safety: a save writes a temporary file in the target's folder, fsyncs it, puts
it in the target's place in one atomic step (an exchange of the two names, then the
old file is unlinked; ``os.replace`` where the exchange is missing: ``_files.py`` says
why) and fsyncs the folder, so the target is at every moment the old file or the new
one.  Any exception (``KeyboardInterrupt`` included) removes the temporary file and
leaves the target untouched.  Writing uses raw file descriptors, so there is no
user-space buffer to flush before the fsync.

A process killed during a save (``kill -9``, a power loss) cannot remove its
temporary file.  Those are named ``.{target}.{host}.{pid}.{random}.pgf-tmp``, and
each save first removes the ones of its own target left by writers of this host
whose pid no longer runs (``_files.remove_stale_temps``); other hosts' files in a
shared folder, live writers' files and anything else are left alone.

Pickling (``pickle``, ``copy.deepcopy`` through ``copy()``) uses the same parts: the
geometry, the ``FULL`` runs, the allocated entry numbers and one ``(A, words)``
array of their chunks, and rebuilds through the same checks (a malformed state
raises :class:`FormatError` rather than building a broken map).

Examples
--------
>>> import os, tempfile
>>> from pageflags import PageFlags
>>> flags = PageFlags(1 << 20); flags.set_range(0, 40_000)
>>> with tempfile.TemporaryDirectory() as folder:
...     path = os.path.join(folder, "map.pgf")
...     flags.save(path)
...     PageFlags.load(path) == flags, os.path.getsize(path)
(True, 4192)
"""

from __future__ import annotations

import os
import stat as _stat
import struct
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np

from . import _kernels, _system
from ._chunks import IOV_MAX, new_chunk_slabs, new_chunks, read_into
from ._files import (
    PathArg,
    create_temp,
    fsync_folder,
    not_a_regular_file,
    open_regular,
    overlapped,
    read_exact,
    remove_stale_temps,
    swap_into_place,
    write_all,
)
from ._sizes import format_size
from .errors import FormatError
from .geometry import Geometry

if TYPE_CHECKING:
    from .bitmap import PageFlags

_Flags = TypeVar("_Flags", bound="PageFlags")

__all__ = ["FormatError", "load", "load_cost", "save"]

MAGIC = b"\x89PGFLAG\n"
VERSION = 1
_HEADER = struct.Struct("<8sI4B4Q16s")
HEADER_BYTES = _HEADER.size  # 64
TRAILER_BYTES = 8
_SEED = np.uint64(0)
# Chunk data moves in batches of this many bytes (at most IOV_MAX chunks, Linux's cap
# on one readv): small enough that a batch is still in cache when the checksum reads
# it, large enough that the OS sees few calls.
_BATCH_BYTES = 2 << 20
# Staging buffers a save cycles through: gathering may run this many batches ahead
# of writing.
_SAVE_BUFFERS = 3
# What building a map costs (measured with tracemalloc, tests check it): a table
# entry is 8 + 8 + 4 bytes (object, address, count) and 1/8 of an occupied bit, and
# building it (FULL marks, structure check) takes ~10 more at the peak; a chunk is
# its words plus an ndarray object and ~200 bytes of bookkeeping while loading.
_ENTRY_BYTES = 32
_CHUNK_OVERHEAD = 320


def _require(ok: bool, path: str, check: str, detail: str) -> None:
    if not ok:
        raise FormatError(path, check, detail)


def _little_endian_host() -> None:
    # Chunks are read and written as raw native words.
    if sys.byteorder != "little":
        raise NotImplementedError("pageflags files need a little-endian host")


# --- the class the readers build ----------------------------------------------------
# PageFlags.save, load and pickling call this module, so it cannot import bitmap
# back; bitmap hands its class over instead, as soon as the class exists.
_MAP_CLASS: list[type[PageFlags]] = []


def builds(cls: type[PageFlags]) -> type[PageFlags]:
    """Class decorator: :func:`load`, :func:`restore` and the Roaring reader build ``cls``."""
    _MAP_CLASS[:] = [cls]
    return cls


def map_class() -> type[PageFlags]:
    return _MAP_CLASS[0]


# --- the parts of a map, shared by save and pickle ---------------------------------

def full_runs(flags: PageFlags) -> np.ndarray:
    """``(R, 2)`` ``uint64`` array of ``[start, stop)`` runs of ``FULL`` entries."""
    return runs_of(flags._full_mask())


def runs_of(mask: np.ndarray) -> np.ndarray:
    """``(R, 2)`` ``uint64`` array of ``[start, stop)`` runs of True in a bool mask."""
    edges = np.diff(mask.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return np.stack([starts, stops], axis=1).astype(np.uint64)


def allocated_entries(flags: PageFlags) -> np.ndarray:
    """Entry numbers of the allocated chunks, ascending, as ``uint64``."""
    return np.flatnonzero(flags._allocated_mask()).astype(np.uint64)


def check_entries(geometry: Geometry, runs: np.ndarray, allocated: np.ndarray,
                  path: str) -> tuple[np.ndarray, np.ndarray]:
    """Check the ``FULL`` runs and allocated entry numbers; return them as ``int64``.

    ``runs`` is ``(R, 2)`` and ``allocated`` ``(A,)``, both ``uint64``.
    """
    n = geometry.nchunks
    whole = geometry.npages >> geometry.chunk_shift
    if runs.size:
        # Compared as uint64 first: a huge stored value must not wrap into range.
        _require(bool(runs.max() <= np.uint64(whole)), path, "full runs",
                 f"a run ends past the {whole} whole chunks")
        starts, stops = runs[:, 0].astype(np.int64), runs[:, 1].astype(np.int64)
        _require(bool(np.all(starts < stops)), path, "full runs", "an empty run")
        _require(bool(np.all(starts[1:] > stops[:-1])), path, "full runs",
                 "runs out of order, overlapping or touching")
    else:
        starts = stops = np.empty(0, dtype=np.int64)
    if allocated.size:
        _require(bool(allocated.max() < np.uint64(n)), path, "allocated entries",
                 f"an entry number past {n} chunks")
        allocated = allocated.astype(np.int64)
        _require(bool(np.all(allocated[1:] > allocated[:-1])), path,
                 "allocated entries", "not strictly ascending")
        if starts.size:
            run = np.searchsorted(starts, allocated, side="right") - 1
            inside = (run >= 0) & (allocated < stops[np.maximum(run, 0)])
            if inside.any():
                raise FormatError(path, "entry kinds",
                                  f"entry {allocated[inside][0]} is both FULL and allocated")
    else:
        allocated = np.empty(0, dtype=np.int64)
    return np.stack([starts, stops], axis=1), allocated


def popcounts(addrs: np.ndarray, chunk_shift: int) -> np.ndarray:
    """Popcount of each chunk at ``addrs``, read from memory."""
    counts = np.zeros(addrs.size, dtype=np.int64)
    _kernels.table_popcounts(addrs, chunk_shift, counts)
    return counts


def check_tail(geometry: Geometry, allocated: np.ndarray, chunks: np.ndarray,
               path: str) -> None:
    """Check that no bit past ``npages`` is set in a partial last chunk."""
    whole = geometry.npages >> geometry.chunk_shift
    if allocated.size and allocated[-1] >= whole:
        tail = _kernels.count_bits(chunks[-1], geometry.last_chunk_pages,
                                   geometry.pages_per_chunk)
        _require(tail == 0, path, "bits past npages", f"{tail} bits set past npages")


def full_mask(geometry: Geometry, runs: np.ndarray) -> np.ndarray | None:
    """Bool per entry: inside one of the checked ``(R, 2)`` ``runs``; None for no run."""
    if not runs.size:
        return None
    marks = np.zeros(geometry.nchunks + 1, dtype=np.int8)
    marks[runs[:, 0]] = 1
    marks[runs[:, 1]] = -1
    return np.cumsum(marks[:-1], dtype=np.int8).view(bool)


def assemble(geometry: Geometry, full: np.ndarray | None, allocated: np.ndarray,
             chunks: np.ndarray, addrs: np.ndarray, counts: np.ndarray,
             path: str, cls: type[_Flags]) -> _Flags:
    """Build a map of class ``cls`` from checked parts (chunks read-only, owned by the
    map); check it.

    ``full`` is a bool mask of the ``FULL`` entries, or None for none.
    """
    flags = cls._from_parts(geometry, full, allocated, chunks, addrs, counts)
    try:
        # Counts came from reading these very chunks: only the structure is left.
        flags._check_structure()
    except AssertionError as exc:
        raise FormatError(path, "validate", str(exc)) from None
    return flags._built()


# --- pickle ------------------------------------------------------------------------

def reduce(flags: PageFlags) -> tuple[Callable[..., PageFlags],
                                      tuple[Geometry, np.ndarray, np.ndarray, np.ndarray]]:
    """``__reduce__`` of a map: only ``FULL`` runs, entry numbers and allocated chunks."""
    allocated = allocated_entries(flags)
    data = (np.stack(list(flags._chunks_at(allocated.astype(np.int64)))) if allocated.size else
            np.empty((0, flags.geometry.words_per_chunk), dtype=np.uint64))
    return (restore, (flags.geometry, full_runs(flags), allocated, data))


def restore(geometry: Geometry, runs: np.ndarray, allocated: np.ndarray,
            data: np.ndarray) -> PageFlags:
    """Inverse of :func:`reduce`; a malformed state raises :class:`FormatError`."""
    where = "<pickled PageFlags>"
    geometry = _checked_geometry(geometry, where)
    for name, array, ndim in (("runs", runs, 2), ("allocated", allocated, 1),
                              ("data", data, 2)):
        _require(isinstance(array, np.ndarray) and array.dtype == np.uint64
                 and array.ndim == ndim, where, "shapes and dtypes",
                 f"{name} is not a {ndim}-d uint64 array")
    _require(runs.shape[1] == 2 and data.shape == (allocated.size, geometry.words_per_chunk),
             where, "shapes and dtypes", "runs or data of the wrong shape")
    ensure_loadable(geometry, allocated.size, where)
    runs, allocated = check_entries(geometry, runs, allocated, where)
    with _out_of_memory(geometry, allocated.size, where):
        chunks, addrs = new_chunks(allocated.size, geometry.words_per_chunk, iter(data))
        check_tail(geometry, allocated, chunks, where)
        counts = popcounts(addrs, geometry.chunk_shift)
        return assemble(geometry, full_mask(geometry, runs), allocated, chunks, addrs, counts,
                        where, map_class())


def _checked_geometry(geometry: object, where: str) -> Geometry:
    """``geometry`` checked anew: unpickling a Geometry skips its own checks."""
    _require(isinstance(geometry, Geometry), where, "geometry",
             f"not a Geometry: {type(geometry).__name__}")
    fields = getattr(geometry, "__dict__", {})
    # Whatever the pickle held, unchecked: Geometry checks each value's type.
    values: list[Any] = [fields.get(name) for name in
                         ("phys_addr_bits", "page_shift", "chunk_shift", "npages")]
    try:
        return Geometry(*values)
    except (TypeError, ValueError) as exc:
        raise FormatError(where, "geometry", str(exc)) from None


# --- what a map costs ----------------------------------------------------------------

def load_cost(geometry: Geometry, nchunks: int) -> int:
    """Bytes loading (or unpickling) a map of ``geometry`` with ``nchunks`` chunks takes.

    The peak, table and chunks together; the table alone is about 32 bytes an entry.

    Examples
    --------
    >>> from pageflags import Geometry
    >>> load_cost(Geometry(52), 0) >> 20                # 2^25 entries
    1024
    """
    return _ENTRY_BYTES * geometry.nchunks + nchunks * (geometry.chunk_bytes
                                                        + _CHUNK_OVERHEAD)


def _too_big(geometry: Geometry, nchunks: int, where: str, detail: str) -> FormatError:
    return FormatError(where, "memory",
                       f"{geometry!r} ({geometry.nchunks} entries) with {nchunks} chunks "
                       f"takes {format_size(load_cost(geometry, nchunks))} to load, "
                       f"{detail}")


def ensure_loadable(geometry: Geometry, nchunks: int, where: str) -> None:
    """:class:`FormatError` (check ``"memory"``) unless the map fits the memory available."""
    free = _system.available_bytes()
    if free is not None and load_cost(geometry, nchunks) > free:
        raise _too_big(geometry, nchunks, where,
                       f"more than the {format_size(free)} available")


@contextmanager
def _out_of_memory(geometry: Geometry, nchunks: int, where: str) -> Iterator[None]:
    """Turns a ``MemoryError`` while building into :class:`FormatError` (check "memory")."""
    try:
        yield
    except MemoryError:
        raise _too_big(geometry, nchunks, where,
                       "more than this machine could allocate") from None


# --- files -------------------------------------------------------------------------

def _batch_chunks(chunk_bytes: int) -> int:
    """Chunks one I/O call moves."""
    return max(1, min(IOV_MAX, _BATCH_BYTES // chunk_bytes))


def _batches(count: int, chunk_bytes: int) -> list[slice]:
    """Consecutive slices of ``count`` chunks, one I/O call each."""
    step = _batch_chunks(chunk_bytes)
    return [slice(start, min(start + step, count)) for start in range(0, count, step)]


def _ended_early(path: str) -> FormatError:
    return FormatError(path, "size", "the file ended early (changed while read?)")


def _write_chunks(fd: int, addrs: np.ndarray, words_per_chunk: int,
                  state: np.ndarray) -> None:
    """Write the chunks at ``addrs`` in order, hashing them.

    A kernel gathers each batch of chunks into a staging buffer small enough to
    stay in cache and the checksum reads it there, on a helper thread, while this
    thread writes the buffer before: the scattered chunk memory is read once, the OS
    sees a few large writes, and gathering costs no time of its own.
    """
    batches = _batches(addrs.size, 8 * words_per_chunk)
    rows = batches[0].stop if batches else 0
    buffers = [np.empty((rows, words_per_chunk), dtype=np.uint64)
               for _ in range(min(_SAVE_BUFFERS, len(batches)))]
    where = [np.array([buffer.ctypes.data], dtype=np.uint64) for buffer in buffers]
    ones = np.empty(1, dtype=np.int64)

    def gather(i: int) -> None:
        part = addrs[batches[i]]
        buffer = buffers[i % len(buffers)]
        _kernels.gather_chunks(part, buffer[:part.size])
        _kernels.xxh64_update(state, where[i % len(buffers)],
                              np.array([part.size * words_per_chunk]), ones)

    def write(i: int) -> None:
        batch = batches[i]
        write_all(fd, buffers[i % len(buffers)][:batch.stop - batch.start])

    overlapped(len(batches), gather, write, ahead=len(buffers))


def _read_chunks(fd: int, offset: int, addrs: np.ndarray, chunk_bytes: int,
                 state: np.ndarray, path: str) -> np.ndarray:
    """Fill the chunks at ``addrs`` from the file at ``offset``, hashing them; return
    their popcounts.

    A helper thread reads batches straight into the chunks (no gathering copy) while
    this thread hashes and counts the batch before, still in cache.
    """
    batches = _batches(addrs.size, chunk_bytes)
    lengths = np.full(addrs.size, chunk_bytes // 8, dtype=np.int64)
    counts = np.empty(addrs.size, dtype=np.int64)
    ended_early = partial(_ended_early, path)

    def read(i: int) -> None:
        batch = batches[i]
        read_into(fd, addrs[batch], chunk_bytes, offset + batch.start * chunk_bytes,
                  ended_early)

    def digest(i: int) -> None:
        batch = batches[i]
        _kernels.xxh64_update(state, addrs[batch], lengths[batch], counts[batch])

    overlapped(len(batches), read, digest, ahead=len(batches))
    return counts


def xxh64_start(parts: tuple[np.ndarray, ...]) -> np.ndarray:
    """An XXH64 state fed the (small, contiguous ``uint64``) arrays ``parts``."""
    state: np.ndarray = _kernels.xxh64_start(_SEED)
    addrs = np.array([part.ctypes.data for part in parts], dtype=np.uint64)
    lengths = np.array([part.size for part in parts], dtype=np.int64)
    _kernels.xxh64_update(state, addrs, lengths, np.empty(len(parts), dtype=np.int64))
    return state


def xxh64_digest(state: np.ndarray) -> int:
    return int(_kernels.xxh64_digest(state, _SEED))


def _fspath(path: PathArg) -> str:
    """``path`` as a ``str`` (bytes through ``os.fsdecode``, which round-trips)."""
    return os.fsdecode(os.fspath(path))


def _target_mode(path: str, given: str) -> int:
    """The mode the new file gets: the replaced file's, or what open() would give.

    Anything but a regular file at ``path`` raises, naming ``given``.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        # Process-wide, but only for the instant of two calls.
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask
    if not _stat.S_ISREG(info.st_mode):
        raise not_a_regular_file(given, info.st_mode)
    return info.st_mode & 0o7777


def save(flags: PageFlags, path: PathArg, *, sync: bool = True) -> None:
    """Write ``flags`` to ``path`` atomically; see the module docstring for the layout.

    Parameters
    ----------
    flags : PageFlags
        The map; it must not change while it is being saved.
    path : str, bytes or os.PathLike
        The file: a regular file, replaced, or nothing, created.  A symlink is
        followed: its target is replaced.  Anything else raises (below).
    sync : bool, default True
        fsync the file before it replaces the target, and the folder after.
        ``False`` still never leaves a torn file after a crash of the process, but
        after a power loss the file may be the old one, the new one, or one that
        :func:`load` refuses with a :class:`FormatError`.

    Raises
    ------
    IsADirectoryError
        ``path`` is a folder, a symlink to one, or ends in a path separator.
    OSError
        ``path`` is a FIFO, socket or device (``EINVAL``), or writing failed.  In
        every case nothing at ``path`` has changed and no temporary file is left.

    Before it writes, a save removes this target's temporary files left by dead
    writers (see the module docstring).

    Examples
    --------
    >>> from pageflags import PageFlags, persist
    >>> persist.save(PageFlags(1 << 20), "map.pgf")            # doctest: +SKIP
    """
    _little_endian_host()
    given = _fspath(path)
    if given.endswith(tuple(sep for sep in (os.sep, os.altsep) if sep)):
        raise not_a_regular_file(given, _stat.S_IFDIR)
    # Through a symlink to the file it names, as np.save does, not over the link.
    path = os.path.realpath(given)
    mode = _target_mode(path, given)
    g = flags.geometry
    runs = np.ascontiguousarray(full_runs(flags), dtype="<u8")
    allocated = allocated_entries(flags)
    at = allocated.astype(np.int64)
    chunk_addrs = flags._chunk_addresses(at)
    header = np.frombuffer(_HEADER.pack(
        MAGIC, VERSION, g.phys_addr_bits, g.page_shift, g.chunk_shift, 0, g.npages,
        runs.shape[0], allocated.size, flags.count(), bytes(16)), dtype=np.uint64)
    state = xxh64_start((header, runs, allocated))

    folder, name = os.path.split(path)
    remove_stale_temps(folder, name)
    fd, tmp = create_temp(folder, name)
    try:
        for part in (header, runs, allocated):
            write_all(fd, part)
        _write_chunks(fd, chunk_addrs, g.words_per_chunk, state)
        write_all(fd, np.array([xxh64_digest(state)], dtype="<u8"))
        if hasattr(os, "fchmod"):  # made 0600; give what open() would
            os.fchmod(fd, mode)
        if sync:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            swap_into_place(tmp, path)
        except IsADirectoryError:
            raise not_a_regular_file(given, _stat.S_IFDIR) from None
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:  # gone already; never a folder swapped back to tmp (unlink)
            pass
        raise
    if sync:
        fsync_folder(folder)


@overload
def load(path: PathArg) -> PageFlags: ...
@overload
def load(path: PathArg, cls: type[_Flags]) -> _Flags: ...


def load(path: PathArg, cls: type[PageFlags] | None = None) -> PageFlags:
    """Read a map written by :func:`save`, checking everything before building it.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        A regular file.
    cls : type, optional
        The class of the map to build: :class:`~pageflags.PageFlags` (the default) or
        a subclass of it (what ``cls.load(path)`` passes).

    Raises
    ------
    FormatError
        Any check fails (see the module docstring), including a map too large for
        the memory available (check ``"memory"``); the message names the file and
        the check.
    OSError
        An unreadable file, as usual; also anything not a regular file (a folder:
        ``IsADirectoryError``; a FIFO, socket or device: ``EINVAL``), refused
        without reading from it.

    Examples
    --------
    >>> from pageflags import persist
    >>> persist.load("map.pgf").count()                        # doctest: +SKIP
    0
    """
    _little_endian_host()
    path = _fspath(path)
    fd = open_regular(path)
    try:
        return _load_fd(fd, os.fstat(fd).st_size, path, map_class() if cls is None else cls)
    finally:
        os.close(fd)


def _load_fd(fd: int, size: int, path: str, cls: type[_Flags]) -> _Flags:
    least = HEADER_BYTES + TRAILER_BYTES
    _require(size >= least, path, "size", f"{size} bytes, a file has at least {least}")
    ended_early = partial(_ended_early, path)
    raw = read_exact(fd, HEADER_BYTES, ended_early)
    magic, version, phys, page_shift, chunk_shift, pad, npages, nruns, nalloc, total, \
        reserved = _HEADER.unpack(raw)
    _require(magic == MAGIC, path, "magic", f"not a pageflags file (starts {magic!r})")
    _require(version == VERSION, path, "version",
             f"format version {version}, this reads version {VERSION}")
    _require(pad == 0 and reserved == bytes(16), path, "reserved", "reserved bytes not zero")
    try:
        geometry = Geometry(phys, page_shift, chunk_shift, npages)
    except (TypeError, ValueError) as exc:
        raise FormatError(path, "geometry", str(exc)) from None
    n = geometry.nchunks
    _require(nruns <= n and nalloc <= n, path, "size",
             f"{nruns} runs and {nalloc} chunks for {n} entries")
    expected = least + 16 * nruns + 8 * nalloc + nalloc * geometry.chunk_bytes
    _require(size == expected, path, "size",
             f"{size} bytes, the header implies {expected}")
    ensure_loadable(geometry, nalloc, path)
    with _out_of_memory(geometry, nalloc, path):
        return _load_parts(fd, size, path, raw, geometry, nruns, nalloc, total, cls)


def _load_parts(fd: int, size: int, path: str, raw: bytes, geometry: Geometry,
                nruns: int, nalloc: int, total: int, cls: type[_Flags]) -> _Flags:
    """The rest of a load, once the header's counts are justified and fit memory."""
    ended_early = partial(_ended_early, path)
    header = np.frombuffer(raw, dtype=np.uint64)
    runs = np.frombuffer(read_exact(fd, 16 * nruns, ended_early),
                         dtype="<u8").reshape(nruns, 2)
    allocated = np.frombuffer(read_exact(fd, 8 * nalloc, ended_early), dtype="<u8")
    data_start = HEADER_BYTES + 16 * nruns + 8 * nalloc
    # One slab per read batch: a slab of fresh pages needs no zeroing.
    chunks, addrs = new_chunk_slabs(nalloc, geometry.words_per_chunk,
                                    _batch_chunks(geometry.chunk_bytes))
    state = xxh64_start((header, runs, allocated))
    counts = _read_chunks(fd, data_start, addrs, geometry.chunk_bytes, state, path)
    os.lseek(fd, size - TRAILER_BYTES, os.SEEK_SET)
    stored = int(np.frombuffer(read_exact(fd, TRAILER_BYTES, ended_early), dtype="<u8")[0])
    actual = xxh64_digest(state)
    _require(actual == stored, path, "checksum",
             f"XXH64 {actual:#018x}, the file says {stored:#018x}")

    runs, at = check_entries(geometry, runs, allocated, path)
    check_tail(geometry, at, chunks, path)
    full_pages = int((runs[:, 1] - runs[:, 0]).sum()) * geometry.pages_per_chunk
    counted = full_pages + int(counts.sum())
    _require(counted == total, path, "count",
             f"{counted} pages set, the header says {total}")
    return assemble(geometry, full_mask(geometry, runs), at, chunks, addrs, counts, path, cls)
