"""Roaring interchange: PageFlags to and from the portable 64-bit Roaring serialization.

The RoaringFormatSpec's 64-bit extension, which CRoaring's ``roaring64`` and
pyroaring's ``BitMap64`` read and write: a map's set pfns are the values.

======================  ==========================================================
bytes                   field (all little-endian)
======================  ==========================================================
8                       number of buckets (distinct high 32 bits of the values)
per bucket, ascending:
4                       the bucket's high 32 bits
\\                       a 32-bit portable Roaring bitmap of the low 32 bits:
4 (+4)                  cookie 12346 then the container count, or, when some
                        container is a run container, cookie 12347 with count - 1
                        in its high 16 bits, then a bit per container (run or not)
4 per container         16-bit key and cardinality - 1
4 per container         byte offset of each container from the cookie (absent
                        when there are run containers and fewer than 4 containers)
containers              array (cardinality <= 4096): sorted 16-bit values;
                        bitset: 1024 64-bit words; run: 16-bit run count, then
                        (start, length - 1) pairs of 16-bit values
======================  ==========================================================

A container covers 2^16 pfns, 1024 words of the map: half a default chunk, or many
small chunks, or a slice of one large chunk.  Writing picks per container the
smallest of run, array and bitset (as CRoaring's ``run_optimize`` does); a wholly
set container becomes one run, decided from the cached chunk counts without reading
the chunk, so ``FULL`` entries cost six bytes per container.  Numba kernels measure,
write and parse all containers; Python only does whole-array arithmetic.

Reading checks the whole input before it builds anything (bucket and container
keys ascending, cookies, offsets, array values ascending, runs ordered and disjoint,
every cardinality, no trailing bytes, no value at or past ``npages``); a failure
raises :class:`~pageflags.FormatError`.  Chunks wholly set become ``FULL``.

Examples
--------
>>> from pageflags import PageFlags
>>> flags = PageFlags(1 << 20); flags.set_range(0, 1 << 16); flags.set(99_999)
>>> data = to_roaring64_bytes(flags)
>>> len(data)     # 8 + 4 + (4 + 1 + 2*4) + 6 + 2: one run container, one array
33
>>> from_roaring64_bytes(data, flags.geometry) == flags
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, overload

import numpy as np

from . import _kernels, persist
from ._chunks import new_chunks
from .errors import FormatError
from .geometry import Geometry, as_geometry

if TYPE_CHECKING:
    from .bitmap import PageFlags

_Flags = TypeVar("_Flags", bound="PageFlags")

__all__ = ["from_roaring64_bytes", "to_roaring64_bytes"]

WHERE = "<roaring64 bytes>"
_CHECKS = {
    1: "truncated", 2: "bucket count", 3: "bucket keys not ascending", 4: "cookie",
    5: "container count", 6: "container keys not ascending", 7: "offset header",
    8: "array container", 9: "bitset cardinality", 10: "run container",
    11: "run cardinality", 12: "trailing bytes",
}


def _container_keys(flags: PageFlags) -> np.ndarray:
    """Keys (``pfn >> 16``) of the containers that may hold set pfns, ascending."""
    g = flags.geometry
    shift = g.chunk_shift - 16
    nonzero = np.flatnonzero(flags._nonempty_mask()).astype(np.int64)
    if shift <= 0:
        keys = np.unique(nonzero >> -shift)
    else:
        keys = ((nonzero[:, None] << shift) + np.arange(1 << shift)).ravel()
    return keys[(keys << 16) < g.npages]


def to_roaring64_bytes(flags: PageFlags) -> bytes:
    """The set pfns of ``flags`` in the portable 64-bit Roaring serialization.

    Each container is written as the smallest of run, array and bitset.

    Examples
    --------
    >>> from pageflags import PageFlags
    >>> to_roaring64_bytes(PageFlags(1 << 20)) == bytes(8)      # no buckets
    True
    """
    g = flags.geometry
    keys = _container_keys(flags)
    cards = np.empty(keys.size, dtype=np.int64)
    nruns = np.empty(keys.size, dtype=np.int64)
    addrs, counts = flags._shadows()
    _kernels.roaring_measure(addrs, counts, g.chunk_shift, keys, cards, nruns)
    present = cards > 0
    keys, cards, nruns = keys[present], cards[present], nruns[present]

    plain = np.where(cards <= 4096, 2 * cards, 8192)
    run_bytes = 2 + 4 * nruns
    kinds = np.where(cards <= 4096, _kernels.ROARING_ARRAY, _kernels.ROARING_BITSET)
    kinds[run_bytes < plain] = _kernels.ROARING_RUN
    body = np.where(kinds == _kernels.ROARING_RUN, run_bytes, plain)

    # Bucket headers: 4 bytes of high key, then the 32-bit bitmap's headers.
    high = keys >> 16
    firsts = np.flatnonzero(np.diff(high, prepend=-1)) if keys.size else np.empty(0, int)
    size = np.diff(np.append(firsts, keys.size))
    has_run = np.logical_or.reduceat(kinds == _kernels.ROARING_RUN, firsts) \
        if keys.size else np.empty(0, bool)
    headers = np.where(has_run,
                       4 + (size + 7) // 8 + 4 * size + np.where(size >= 4, 4 * size, 0),
                       8 + 8 * size)
    total = 8 + int((4 + headers).sum()) + int(body.sum())
    out = np.zeros(total, dtype=np.uint8)
    end = _kernels.roaring_write(addrs, g.chunk_shift, keys, kinds, cards, nruns, out)
    if end != total:  # the size arithmetic above and the writer disagree: a bug
        raise AssertionError(f"Roaring writer wrote {end} bytes of {total}")
    return out.tobytes()


def _byte_buffer(data: object) -> np.ndarray:
    """``data`` as a contiguous 1-D ``uint8`` array; a strided buffer is copied."""
    if isinstance(data, np.ndarray):
        if type(data) is not np.ndarray and not isinstance(data, np.memmap):
            raise TypeError("data must be bytes-like or a plain uint8 array, got "
                            f"{type(data).__name__}")
        if data.dtype != np.uint8:  # other dtypes would be read as their raw bytes
            raise TypeError(f"data must be a uint8 array, got {data.dtype} (pass "
                            "arr.view(np.uint8) to mean its bytes)")
        return np.ascontiguousarray(data).ravel()
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"data must be bytes-like or a uint8 array, got "
                        f"{type(data).__name__}") from None
    if not view.c_contiguous:  # a slice with a step: NumPy cannot view it in place
        view = memoryview(view.tobytes())
    return np.frombuffer(view, dtype=np.uint8)


@overload
def from_roaring64_bytes(data: bytes | bytearray | memoryview | np.ndarray,
                         geometry: Geometry | int) -> PageFlags: ...
@overload
def from_roaring64_bytes(data: bytes | bytearray | memoryview | np.ndarray,
                         geometry: Geometry | int, cls: type[_Flags]) -> _Flags: ...


def from_roaring64_bytes(data: bytes | bytearray | memoryview | np.ndarray,
                         geometry: Geometry | int,
                         cls: type[PageFlags] | None = None) -> PageFlags:
    """A map of ``geometry`` holding the values of a Roaring64 serialization.

    Parameters
    ----------
    data : bytes-like or uint8 array
        The serialization (pyroaring ``BitMap64.serialize()``, CRoaring
        ``roaring64_bitmap_portable_serialize``).
    geometry : Geometry or int
        The map's geometry, or its page count.
    cls : type, optional
        The class of the map to build: :class:`~pageflags.PageFlags` (the default) or
        a subclass of it (what ``cls.from_roaring64_bytes`` passes).

    Raises
    ------
    FormatError
        ``data`` is malformed or holds a value ``>= npages``; nothing is built.

    Examples
    --------
    >>> from_roaring64_bytes(bytes(8), 1 << 20).count()
    0
    """

    g = as_geometry(geometry)
    buf = _byte_buffer(data)
    empty = np.empty(0, dtype=np.int64)
    error, pos, n, _ = _kernels.roaring_parse(buf, False, empty, empty, empty, empty)
    if error:
        raise FormatError(WHERE, _CHECKS[error], f"at byte {pos}")
    keys, kinds, cards, offsets = (np.empty(n, dtype=np.int64) for _ in range(4))
    _, _, _, max_value = _kernels.roaring_parse(buf, True, keys, kinds, cards, offsets)
    if n and not 0 <= max_value < g.npages:
        raise FormatError(WHERE, "values past npages",
                          f"a value {'>= 2**60' if max_value < 0 else max_value} "
                          f"does not fit {g.npages} pages")

    shift = g.chunk_shift - 16
    whole = g.npages >> g.chunk_shift
    full = cards == 1 << 16
    if shift <= 0:
        per = np.arange(1 << -shift)
        full_chunks = ((keys[full, None] << -shift) + per).ravel()
        rows = ((keys[~full, None] << -shift) + per).ravel()
        rows = rows[rows < g.nchunks]
    else:
        chunk_of = keys >> shift
        touched, fulls = np.unique(chunk_of[full], return_counts=True)
        full_chunks = touched[(fulls == 1 << shift) & (touched < whole)]
        rows = np.setdiff1d(chunk_of, full_chunks)
    # Count first, then allocate only the chunks that are neither empty nor full
    # and decode straight into them (kernels write through addresses; the
    # read-only flag guards Python-level writes only).
    counts = np.zeros(rows.size, dtype=np.int64)
    none = np.empty(0, dtype=np.uint64)
    _kernels.roaring_fill(buf, keys, kinds, cards, offsets, g.chunk_shift, rows, none, counts)
    now_full = (counts == g.pages_per_chunk) & (rows < whole)
    keep = (counts > 0) & ~now_full
    allocated, counts = rows[keep], counts[keep]
    chunks, addrs = new_chunks(allocated.size, g.words_per_chunk)
    _kernels.roaring_fill(buf, keys, kinds, cards, offsets, g.chunk_shift, allocated, addrs,
                          counts)

    mask = None
    if full_chunks.size or now_full.any():
        mask = np.zeros(g.nchunks, dtype=bool)
        mask[full_chunks] = True
        mask[rows[now_full]] = True
    return persist.assemble(g, mask, allocated, chunks, addrs, counts, WHERE,
                            persist.map_class() if cls is None else cls)
