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
"""

from __future__ import annotations

import ctypes
import errno
import functools
import itertools
import os
from collections.abc import Callable, Iterable
from itertools import repeat

import numpy as np

from ._addresses import data_addresses

__all__ = ["address_of", "full_chunk", "new_chunk_slabs", "new_chunks", "read_into",
           "zero_chunk"]

_UINT64 = np.dtype(np.uint64)
# Linux's UIO_MAXIOV: preadv takes at most this many buffers a call.
IOV_MAX = 1024


def _view(memory: bytes) -> np.ndarray:
    return np.frombuffer(memory, dtype=_UINT64)


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
    slabs = map(bytes, [n * 8 * words_per_chunk for n in sizes])
    # Rows of a read-only 2-D view per slab: NumPy makes the row views in C.
    grids = map(np.ndarray.reshape, map(np.frombuffer, slabs, repeat(_UINT64)),
                zip(sizes, repeat(words_per_chunk)))
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
