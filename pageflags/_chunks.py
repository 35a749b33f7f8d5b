"""Chunk memory: read-only ``uint64`` arrays that only kernels write.

A chunk's words live in a ``bytes`` object, and the chunk is a NumPy array viewing
it.  NumPy refuses to make an array over a ``bytes`` buffer writable, and no NumPy
call hands out a writable array over that memory, so a chunk a user reaches
through ``PageFlags.table`` (or the shared ``FULL`` chunk) cannot be changed behind
the map's counts.  The map's kernels write the words through their addresses
(``_kernels``), and :func:`read_into` fills chunks from a file the same way, with one
``preadv`` per batch over the chunks' addresses.

Allocation maps C callables (``bytes``, ``np.frombuffer``) over the count, so making
thousands of chunks runs no Python-level loop per chunk.  ``bytes(n)`` zeroes the
memory (``calloc``); a copy is one ``tobytes``.

Slabs
-----
Bulk writes that need many chunks at once (:func:`new_chunk_runs`) make them as the
rows of a few large ``bytes`` *slabs*, one per aligned group of
:data:`SLAB_GROUP_ENTRIES` entries that needs at least :data:`SLAB_MIN_CHUNKS` new
chunks.  A large ``calloc`` comes as fresh pages that need no zeroing pass, and a
slab of 2 MiB or more starts on a 2 MiB boundary and is advised onto huge pages
before its first touch: one page fault per 2 MiB instead of one per 4 KiB chunk, and
random pfns over the chunks miss the TLB far less.  On the build machine, 16384
chunks took 5-7 ms to make as slabs and 9-11 ms one by one, and random set_many over
them ran about 10% faster; slabs a quarter of which lay outside whole huge pages
made random test_many 1.25x slower than slabs wholly inside them.

The price: a slab's memory goes back to the system only when the last of its rows
is freed, and a slab whose last part is half a huge page or more holds that huge
page whole (under 1 MiB more than its rows).  ``PageFlags.nbytes`` counts whole
slabs for as long as one row lives (:func:`held_bytes`), so it never claims memory
back that is still held.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import itertools
import mmap
import operator
import os
import sys
from collections.abc import Callable, Iterable
from itertools import repeat

import numpy as np

from . import _kernels
from ._addresses import data_addresses

__all__ = ["address_of", "full_chunk", "held_bytes", "new_chunk_runs", "new_chunk_slabs",
           "new_chunks", "read_into", "slab_rows", "zero_chunk"]

_UINT64 = np.dtype(np.uint64)
# Linux's UIO_MAXIOV: preadv takes at most this many buffers a call.
IOV_MAX = 1024


#: Entries whose new chunks may share one slab: an aligned group of 4096 entries is
#: 16 MiB of chunks (512 GiB of pages) at the default geometry, so memory still goes
#: back region by region when sections empty.
SLAB_GROUP_ENTRIES = 4096
#: A group that needs at least this many new chunks gets them as one slab; below,
#: each chunk is its own allocation and its memory goes back when it is freed.
SLAB_MIN_CHUNKS = 256
HUGE_PAGE_BYTES = 2 << 20
_MADV_DONTNEED = 4  # Linux
_MADV_HUGEPAGE = 14


def _libc_madvise() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_MADVISE = _libc_madvise()


def _bytes_maker() -> Callable[[int], bytes] | None:
    """``n -> bytes`` of ``n`` bytes left as the allocator gives them (no zeroing)."""
    try:
        function = ctypes.pythonapi.PyBytes_FromStringAndSize
    except AttributeError:
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
    function.restype = ctypes.py_object
    return functools.partial(function, None)


_UNINITIALISED = _bytes_maker()


def _view(memory: bytes) -> np.ndarray:
    return np.frombuffer(memory, dtype=_UINT64)


def _slab(nbytes: int, align: bool = True, zeroed: bool = True) -> np.ndarray:
    """``nbytes`` bytes as a read-only word array over a new ``bytes`` object, its
    whole huge pages advised before first touch: zeroed, or (``zeroed`` false) left
    as the allocator gives them, for a caller that writes every word.

    With ``align``, a slab of 2 MiB or more starts on a 2 MiB boundary of its
    ``bytes`` (made that much longer: the lead is never touched, so it is address
    space, not memory), so all of it can be huge pages; a last part of half a huge
    page or more is rounded up to a whole one, whose memory the slab then holds
    (the returned words view a longer array, which :func:`held_bytes` counts).
    Without ``align``, only the huge pages that happen to lie inside it are advised.
    Only a hint: where the system has no transparent huge pages, or the memory was
    reused and is already mapped, the slab is as good, merely faulted in 4 KiB pages.

    Not zeroing matters when the allocator hands back memory a freed slab used:
    ``calloc`` then clears it all before the caller writes it all again (12-16 ms for
    16384 chunks here).  The parts of the ``bytes`` that no word covers are zeroed
    still (their whole pages given back to the system), so no old memory shows.
    """
    raw = bytes if zeroed or _UNINITIALISED is None else _UNINITIALISED
    if _MADVISE is None or nbytes < HUGE_PAGE_BYTES:
        return _view(raw(nbytes))
    if not align:
        memory = raw(nbytes)
        start = address_of(_view(memory))
        lo = -(-start // HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES
        hi = (start + nbytes) // HUGE_PAGE_BYTES * HUGE_PAGE_BYTES
        if hi > lo:
            _MADVISE(lo, hi - lo, _MADV_HUGEPAGE)  # a refusal changes nothing
        return _view(memory)
    tail = nbytes % HUGE_PAGE_BYTES
    span = nbytes - tail + (HUGE_PAGE_BYTES if 2 * tail >= HUGE_PAGE_BYTES else 0)
    held = max(nbytes, span)
    memory = raw(held + HUGE_PAGE_BYTES)
    start = address_of(_view(memory))
    lead = -start % HUGE_PAGE_BYTES
    words = np.frombuffer(memory, dtype=_UINT64, count=held // 8, offset=lead)
    _MADVISE(start + lead, span, _MADV_HUGEPAGE)  # a refusal changes nothing
    if raw is not bytes:
        body = start + lead
        _zero(start, body, True)
        _zero(body + nbytes, body + held, False)  # inside a huge page: written
        _zero(body + held, start + len(memory), True)
    return words[:nbytes // 8]


def _zero(lo: int, hi: int, give_back: bool) -> None:
    """Zero the bytes [lo, hi); with ``give_back``, their whole pages by returning
    them to the system (``MADV_DONTNEED``: they read as zero, and hold no memory)."""
    if hi <= lo:
        return
    first = -(-lo // mmap.PAGESIZE) * mmap.PAGESIZE
    last = hi // mmap.PAGESIZE * mmap.PAGESIZE
    advise = _MADVISE
    if (give_back and advise is not None and last > first
            and advise(first, last - first, _MADV_DONTNEED) == 0):
        ctypes.memset(lo, 0, first - lo)
        ctypes.memset(last, 0, hi - last)
    else:
        ctypes.memset(lo, 0, hi - lo)


def new_chunk_runs(chunk_nrs: np.ndarray, words_per_chunk: int, ones: bool = False,
                   copies: np.ndarray | None = None, slabs: bool = True,
                   written: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read-only chunks for the sorted, distinct entries ``chunk_nrs``, and addresses.

    Zeroed, all ones with ``ones`` (a private copy of ``FULL`` each), or copies of
    the chunks of the object array ``copies`` (one per entry); with ``written``, the
    caller writes every word of every chunk at once, so slabs need not be zeroed.  Each
    aligned group of :data:`SLAB_GROUP_ENTRIES` entries with at least
    :data:`SLAB_MIN_CHUNKS` of ``chunk_nrs`` gets its chunks as the rows of one slab
    (see the module docstring); the others, and all of them without ``slabs``, get
    a chunk each.  Python loops once per group, never per chunk.

    Examples
    --------
    >>> nrs = np.array([3, 4, 5000]); chunks, addrs = new_chunk_runs(nrs, 2, ones=True)
    >>> chunks[0].tolist() == [2**64 - 1] * 2, chunks[0].flags.writeable
    (True, False)
    >>> many = np.arange(SLAB_MIN_CHUNKS); chunks, addrs = new_chunk_runs(many, 2)
    >>> chunks[0].base is chunks[-1].base, int(addrs[1] - addrs[0])
    (True, 16)
    """
    count = chunk_nrs.size
    chunk_bytes = 8 * words_per_chunk
    if count < SLAB_MIN_CHUNKS or not slabs:  # no slab: no kernel either
        sources = repeat(full_chunk(words_per_chunk), count) if ones else copies
        return new_chunks(count, words_per_chunk, sources)
    groups = chunk_nrs // SLAB_GROUP_ENTRIES
    firsts = np.flatnonzero(np.diff(groups, prepend=-1))
    sizes = np.diff(firsts, append=count).tolist()
    zeroed = not (ones or written or copies is not None)
    parts: list[Iterable[np.ndarray]] = []
    for size in sizes:  # one step per group of entries
        if size >= SLAB_MIN_CHUNKS:
            grid = _slab(size * chunk_bytes, zeroed=zeroed).reshape(size, words_per_chunk)
            parts.append(grid)  # iterating a 2-D array yields its rows, made in C
        else:
            parts.append(map(_view, map(bytes, repeat(chunk_bytes, size))))
    chunks = np.fromiter(itertools.chain.from_iterable(parts), dtype=object, count=count)
    addrs = data_addresses(chunks)
    if ones:
        _kernels.fill_chunks_at(addrs, words_per_chunk, _kernels.ALL_ONES)
    elif copies is not None:
        _kernels.copy_chunks_at(data_addresses(copies), addrs, words_per_chunk)
    return chunks, addrs


def slab_rows(chunks: np.ndarray) -> np.ndarray:
    """Which of the chunk arrays ``chunks`` are rows of a slab (a bool per chunk).

    Examples
    --------
    >>> rows, _ = new_chunk_runs(np.arange(SLAB_MIN_CHUNKS), 2)
    >>> slab_rows(np.concatenate((rows[:2], new_chunks(1, 2)[0]))).tolist()
    [True, True, False]
    """
    # A slab row views the slab's word array; a chunk made alone views its bytes.
    return np.fromiter(map(isinstance, map(_BASE, chunks), repeat(np.ndarray)), dtype=bool,
                       count=len(chunks))


def held_bytes(chunks: np.ndarray) -> int:
    """Bytes of memory that the chunk arrays ``chunks`` keep alive.

    A chunk made on its own holds its own bytes; rows of one slab hold the whole
    slab, counted once, however few of them are left (its untouched alignment lead,
    address space only, is not counted).  C-level maps over the chunks
    and one step per distinct owner: no Python code runs per slab row.

    Examples
    --------
    >>> chunks, _ = new_chunk_runs(np.arange(SLAB_MIN_CHUNKS), 2)
    >>> held_bytes(chunks[:1]) == held_bytes(chunks) == SLAB_MIN_CHUNKS * 16
    True
    >>> held_bytes(new_chunks(3, 2)[0])
    48
    """
    bases = list(map(_BASE, chunks))
    owners = dict(zip(map(id, bases), bases, strict=True))
    alone = owners.pop(id(None), False) is None  # arrays owning their memory
    held = sum(memoryview(owner).nbytes for owner in owners.values())
    if alone:
        held += sum(chunk.nbytes for chunk in chunks if chunk.base is None)
    return held


_BASE = operator.attrgetter("base")


def new_chunk_slabs(count: int, words_per_chunk: int,
                    per_slab: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` zeroed read-only chunks, ``per_slab`` of them sharing one ``bytes``.

    For chunks a file fills at once (``load``): a slab of a megabyte or more comes
    from fresh pages that need no zeroing, and one allocation serves hundreds of
    chunks.  The price: a slab's memory goes back only when its last chunk goes.

    Examples
    --------
    >>> chunks, addrs = new_chunk_slabs(3, 2, per_slab=2)
    >>> chunks[0].base is chunks[1].base, chunks[1].base is chunks[2].base
    (True, False)
    >>> int(addrs[1] - addrs[0])
    16
    """
    sizes = [min(per_slab, count - first) for first in range(0, count, per_slab)]
    # Not aligned: the memory a load may take is estimated without the lead.
    slabs = map(_slab, [n * 8 * words_per_chunk for n in sizes], repeat(False))
    # Rows of a read-only 2-D view per slab: NumPy makes the row views in C.
    grids = map(np.ndarray.reshape, slabs, zip(sizes, repeat(words_per_chunk)))
    chunks = np.fromiter(itertools.chain.from_iterable(grids), dtype=object, count=count)
    return chunks, data_addresses(chunks)


def new_chunks(count: int, words_per_chunk: int,
               sources: Iterable[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` read-only chunks, zeroed or copies of ``sources``, and their addresses.

    Parameters
    ----------
    count : int
        Chunks to make.
    words_per_chunk : int
        Words in each.
    sources : iterable of ndarray, optional
        ``count`` arrays of ``words_per_chunk`` ``uint64`` words to copy.

    Returns
    -------
    chunks : ndarray of object
        The chunks.
    addrs : ndarray of uint64
        Their data addresses, for kernels.

    Examples
    --------
    >>> chunks, addrs = new_chunks(2, 4)
    >>> chunks[0].tolist(), chunks[0].flags.writeable, addrs.size
    ([0, 0, 0, 0], False, 2)
    """
    if sources is None:
        memory = map(bytes, repeat(8 * words_per_chunk, count))
    else:
        memory = map(np.ndarray.tobytes, sources)
    chunks = np.fromiter(map(np.frombuffer, memory, repeat(_UINT64, count)), dtype=object,
                         count=count)
    return chunks, data_addresses(chunks)


def address_of(array: np.ndarray) -> int:
    """The data address of one array, without a kernel (a map's constructor runs none).

    Examples
    --------
    >>> chunk = zero_chunk(4); address_of(chunk) == chunk.ctypes.data
    True
    """
    return int(array.__array_interface__["data"][0])


@functools.cache
def zero_chunk(words_per_chunk: int) -> np.ndarray:
    """The shared all-zero chunk: what a ``None`` entry reads as in algebra.

    Examples
    --------
    >>> zero_chunk(2).tolist(), zero_chunk(2) is zero_chunk(2)
    ([0, 0], True)
    """
    return _view(bytes(8 * words_per_chunk))


@functools.cache
def full_chunk(words_per_chunk: int) -> np.ndarray:
    """The shared all-ones chunk of ``words_per_chunk`` words (``FULL``).

    Examples
    --------
    >>> chunk = full_chunk(2); chunk.tolist() == [2**64 - 1] * 2, chunk.flags.writeable
    (True, False)
    """
    return _view(b"\xff" * (8 * words_per_chunk))


def _libc_preadv() -> Callable[..., int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).preadv
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int64]
    function.restype = ctypes.c_ssize_t
    return function


_PREADV = _libc_preadv()


def _preadv(fd: int, iov: np.ndarray, offset: int) -> int:
    """One ``preadv`` into the ``(address, length)`` rows of ``iov`` (GIL released)."""
    if _PREADV is None:
        buffers = [(ctypes.c_char * int(n)).from_address(int(a)) for a, n in iov]
        return os.preadv(fd, buffers, offset)
    while True:
        got = _PREADV(fd, iov.ctypes.data, iov.shape[0], offset)
        if got >= 0:
            return int(got)
        code = ctypes.get_errno()
        if code != errno.EINTR:
            raise OSError(code, os.strerror(code))


def read_into(fd: int, addrs: np.ndarray, chunk_bytes: int, offset: int,
              on_short: Callable[[], Exception]) -> None:
    """Fill the chunks at ``addrs`` (``chunk_bytes`` each, in order) from ``offset``.

    ``pread``-style: the file offset does not move, so a helper thread can read while
    the caller holds the same descriptor.  ``on_short()`` is raised when the file ends
    first.  The chunks must be alive and not yet published.
    """
    iov = np.empty((addrs.size, 2), dtype=np.uint64)
    iov[:, 0] = addrs
    iov[:, 1] = chunk_bytes
    total = addrs.size * chunk_bytes
    done = 0
    while done < total:
        # The OS may move fewer bytes than asked: resume inside the chunk it stopped in.
        first, into = divmod(done, chunk_bytes)
        iov[first] = (int(addrs[first]) + into, chunk_bytes - into)
        got = _preadv(fd, iov[first:first + IOV_MAX], offset + done)
        if got == 0:
            raise on_short()
        done += got
