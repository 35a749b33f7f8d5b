"""PageFlags: the two-level page bitmap.

The table
---------
``table`` is a NumPy object array with one entry per chunk: ``None`` (all zero), the
shared read-only all-ones chunk ``FULL``, or the chunk's own ``uint64`` array of
``words_per_chunk`` words.  Numba cannot read object arrays, so kernels see two
plain shadows of the table instead:

* ``_addrs`` (``uint64``): the data address of each entry's words, 0 for ``None``
  and ``FULL``'s address for ``FULL``.  This is the seed's ``unsigned long *`` table;
  kernels turn an address into an array through a small intrinsic.
* ``_counts`` (``int32``): the population count of each entry, kept by every write,
  so ``count()`` is O(1) and ranges popcount only their edge chunks.
* ``_occupied`` (``uint64`` bits, one per entry): set where the entry is not
  ``None``, so searches cross the holes of a sparse space 64 entries per word (a
  46-bit space's 2^19 entries are 8192 words).

What a map owns, and what users can reach
-----------------------------------------
Kernels write through raw addresses, so nothing a user can reach may change which
memory an address points at, keep it alive, or write it behind the counts:

* The map keeps its entries in a private object array, ``_refs``; every address in
  ``_addrs`` belongs to an object held there.  ``table`` is a read-only *mirror* of
  it, built on first use and kept in step by :meth:`PageFlags._store`.  Making the
  mirror writable (it owns its memory, so NumPy allows it) and changing it changes
  nothing in the map; the next ``table`` read hands out a fresh mirror, and
  :meth:`PageFlags.validate` reports a mirror that disagrees.
* A chunk's words live in a ``bytes`` object that the chunk array views: NumPy
  cannot make such an array writable, nor any other array over that memory, so
  chunks handed out (and the shared ``FULL`` chunk) stay read-only to every
  NumPy-level call.  Only kernels, through addresses, write them, and single pages
  and short spans, through a private ctypes word view that :meth:`PageFlags._store`
  drops whenever the entry changes.
* Writes are refused with ``RuntimeError`` while another thread is writing the
  same map (:class:`~pageflags.PageMap`); readers may run at once with each other.

Why addresses and not a 2-D pool with slot numbers: a chunk here is its own array,
so freeing an entry gives its memory back without compaction (hotplug removal must
shrink the map), allocation never moves live chunks (a growing pool must re-point
every view), and the object array holding each chunk keeps it alive exactly as long
as the shadow points at it.  The shadow and the object array change together in
exactly one place, :meth:`PageFlags._store`.  A chunk made alone goes back the
moment its entry is freed; chunks a bulk write made many at once are rows of a slab
(``pageflags._chunks``), whose memory goes back with its last row, one region of
4096 entries at a time; :attr:`PageFlags.nbytes` counts it until then.

Writes are two-phase: Python finds (with a kernel over the pfns, or by arithmetic for
ranges) which entries must first become private chunks, allocates them or copies
``FULL`` into them, and then one kernel does the bits.  Kernels never allocate.  A
bulk write of many pfns samples one in ``PRESCAN_STEP`` first, so the entries that
need chunks get them together, as slabs, before a single pass writes every bit.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numba
import numpy as np

from . import _direct, _kernels, persist, roaring
from ._addresses import chunk_objects, data_address, object_pointers
from ._args import check_pfn, check_position, check_range
from ._chunks import (
    address_of,
    full_chunk,
    held_bytes,
    new_chunk_runs,
    new_chunks,
    slab_rows,
    zero_chunk,
)
from ._words import SPAN_WORDS, write_words
from .base import PageMap, named, writes
from .geometry import DEFAULT_GEOMETRY, Geometry, as_geometry
from .interface import PageFlagsStats
from .ops import Op

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._files import PathArg

    #: A chunk: ``words_per_chunk`` words.
    Chunk = np.ndarray[tuple[int], np.dtype[np.uint64]]

__all__ = ["PageFlags", "full_chunk"]

_NULL = _kernels.NULL
_NO_ENTRIES = np.empty(0, dtype=np.int64)  # no chunks emptied: a set empties none

# Spans this short touch at most SPAN_WORDS words (so Python writes them).
_SPAN_PAGES = 64 * (SPAN_WORDS - 1) + 1

# Bit c of the ``_occupied`` words is in byte (c >> 3) ^ _BYTE_FLIP of their memory.
_BYTE_FLIP = 0 if sys.byteorder == "little" else 7


#: Algebra over at least this many computed chunks runs on Numba's thread pool when
#: called from the main thread (``None``: never).  The serial kernel serves the rest,
#: so worker threads never launch parallel work.
PARALLEL_MIN_CHUNKS: int | None = 2048
#: ``to_array`` (and other collections) with room for at least this many pfns run on
#: Numba's thread pool the same way: each thread writes its own slice of the result.
PARALLEL_MIN_PFNS: int | None = 1 << 22


#: Bulk writes of at least this many pfns may skip counting bits per pfn and recount
#: the chunks instead (see ``PageFlags._counted``).
RECOUNT_MIN_PFNS = 1 << 20


#: Bulk writes of at least this many pfns first read one pfn in ``PRESCAN_STEP`` to
#: find the entries that need a chunk, and allocate them all before the pass that
#: writes the bits.  Entries the sample misses (a few pfns each) stop that pass,
#: which then gives chunks to the entries of the pfns left and resumes.
PRESCAN_MIN_PFNS = 1 << 16
PRESCAN_STEP = 64
#: When the sample saw the entries it found fewer than this many times each on
#: average, entries with few pfns likely went unseen (one in 150 at 5 a piece), and
#: each would stop the pass: a second, denser sample then looks for them.
PRESCAN_SEEN = 16


#: test_many samples this many pfns; when the share of them in ``None`` entries is
#: within these bounds, the kinds are too mixed to predict and the branch-free
#: kernel runs (measured: 3x faster on a hotplug layout, 1.5x slower on a sparse one).
TEST_MANY_SAMPLE = 1024
MIXED_KINDS_BOUNDS = (0.05, 0.95)


#: New chunks for at most this many entries are stored one entry at a time (see
#: ``PageFlags._store_new``).
FEW_ENTRIES = 4


def _boxed(obj: object) -> np.ndarray:
    """A 0-d object array holding ``obj``, so assignment broadcasts the object itself."""
    box = np.empty((), dtype=object)
    box[()] = obj
    return box


def _page_write(value: bool, doc: str | None) -> Callable[[PageFlags, int], None]:
    """PageFlags' ``set`` (``value``) or ``clear``, fused (base.py): the int check, the
    writer guard and the bit of an entry with a view in one frame."""
    step = 1 if value else -1

    def write(self: PageFlags, pfn: int) -> None:
        if type(pfn) is not int or not 0 <= pfn < self._npages:
            pfn = check_pfn(pfn, self._npages)
        try:
            self._token.pop()
        except IndexError:
            return self._as_writer(self._write_page, pfn, value)
        try:
            c = pfn >> self._shift
            view = self._views.get(c)
            if view is None:
                return self._write_page(pfn, value)
            i, bit = (pfn >> 6) & self._word_mask, 1 << (pfn & 63)
            old = view[i]
            if old & bit != (bit if value else 0):
                view[i] = old ^ bit
                left = self._counts_view[c] + step
                self._counts_view[c] = left
                self._total += step
                if not left:
                    self._free(c)
        finally:
            self._token.append(True)

    return named(write, "PageFlags", "set" if value else "clear", doc)


def _range_write(value: bool, doc: str | None) -> Callable[[PageFlags, int, int], None]:
    """PageFlags' ``set_range`` (``value``) or ``clear_range``, fused (base.py): the
    range check, the writer guard, and in one frame a span of one word or a few of an
    entry with a view, or a whole entry."""
    def write(self: PageFlags, start: int, stop: int) -> None:
        if type(start) is not int or type(stop) is not int or not 0 <= start < stop <= self._npages:
            start, stop = check_range(start, stop, self._npages)
            if start == stop:
                return None
        try:
            self._token.pop()
        except IndexError:
            return self._as_writer(self._write_range, start, stop, value)
        try:
            # Where the ends differ tells the case, in two operations on the ints.
            ends = start ^ (stop - 1)
            if ends < 64:  # one word (so one entry)
                c = start >> self._shift
                view = self._views.get(c)
                if view is None:
                    return self._write_range(start, stop, value)
                i = (start >> 6) & self._word_mask
                old = view[i]
                mask = ((1 << (stop - start)) - 1) << (start & 63)
                new = old | mask if value else old & ~mask
                if new == old:
                    return None
                view[i] = new
                changed = (new ^ old).bit_count()
            elif ends == self._local_mask and stop - start == self._chunk_pages:
                c = start >> self._shift  # the whole entry
                old = self._addrs_view[c]
                ppc = self._chunk_pages
                if not value:
                    if old:
                        self._total -= ppc if old == self._full_addr else self._counts_view[c]
                        self._free_one(c, old)
                elif old != self._full_addr:
                    self._total += ppc - (self._counts_view[c] if old else 0)
                    self._fill_one(c, old)
                return None
            elif stop - start <= _SPAN_PAGES and ends <= self._local_mask and (
                    view := self._views.get(c := start >> self._shift)) is not None:
                lo = start & self._local_mask
                changed = write_words(view, lo, lo + stop - start, value)
                if not changed:
                    return None
            else:  # other spans, several entries, and the partial last entry
                return self._write_range(start, stop, value)
            left = self._counts_view[c] + (changed if value else -changed)
            self._counts_view[c] = left
            self._total += changed if value else -changed
            if not left:
                self._free(c)
        finally:
            self._token.append(True)
        return None

    return named(write, "PageFlags", "set_range" if value else "clear_range", doc)


@persist.builds  # the class persist and roaring build, without importing this module
class PageFlags(PageMap):
    """One bit per page in a two-level table of lazily allocated chunks.

    Parameters
    ----------
    geometry_or_npages : Geometry or int, default Geometry()
        The geometry (a 46-bit space of 4 KiB pages by default) or a page count.

    Examples
    --------
    >>> from pageflags import Geometry, PageFlags
    >>> flags = PageFlags(Geometry(phys_addr_bits=46))     # 2**34 pages, no chunk yet
    >>> flags.set_range(0, 1 << 26)                        # 256 GiB: 2048 FULL entries
    >>> flags.set(flags.npages - 1)
    >>> flags.count(), flags.stats()["allocated"], flags.table[0] is flags.FULL
    (67108865, 1, True)
    """

    __slots__ = (
        "FULL",
        "_addrs",
        "_addrs_view",
        "_chunk_pages",
        "_counts",
        "_counts_view",
        "_find_next",
        "_full_addr",
        "_full_box",
        "_held_cache",
        "_local_mask",
        "_mirror",
        "_mirror_writes",
        "_nallocated_cache",
        "_occupied",
        "_occupied_bytes",
        "_refs",
        "_shift",
        "_slabs",
        "_total",
        "_views",
        "_whole_chunks",
        "_word_mask",
        "_zero_addr",
    )

    # The public methods below that are fused (base.py) and the methods each does
    # the work of: a subclass overriding one of those gets the generic method.
    _FUSED: ClassVar[dict[str, tuple[str, ...]]] = {
        "set": ("_set_one", "_write_page"), "clear": ("_clear_one", "_write_page"),
        "test": ("_test",), "__contains__": ("_test",),
        "set_range": ("_set_range", "_write_range", "_fill", "_store", "_fill_one"),
        "clear_range": ("_clear_range", "_write_range", "_free", "_store", "_free_one"),
        "find_next_set": ("_find_next_set",),
    }

    def __init__(self, geometry_or_npages: Geometry | int = DEFAULT_GEOMETRY) -> None:
        geometry = as_geometry(geometry_or_npages)
        super().__init__(geometry)
        n = geometry.nchunks
        self._refs = np.empty(n, dtype=object)  # filled with None
        self._addrs = np.zeros(n, dtype=np.uint64)
        self._counts = np.zeros(n, dtype=np.int32)
        # Bit c is set when entry c is not None: searches cross holes 64 entries a word.
        self._occupied = np.zeros(-(-n // 64), dtype=np.uint64)
        # Writable word views of private chunks, made by single-entry writes and
        # dropped by _store whenever their entry changes (so never left dangling).
        self._views: dict[int, memoryview] = {}
        # The same memory as Python-int views, for writes to one entry.
        self._addrs_view = self._addrs.data
        self._counts_view = self._counts.data
        self._occupied_bytes = self._occupied.data.cast("B")
        self._total = 0
        self._nallocated_cache: int | None = 0  # reset by _store, counted on demand
        self._held_cache: int | None = 0  # chunk memory, reset when _nallocated recounts
        self._slabs = True  # bulk allocations may share slabs (see _chunks)
        self._mirror: np.ndarray | None = None  # ``table``, made on first use
        self._mirror_writes: np.ndarray | None = None
        #: The shared all-ones chunk; ``flags.table[c] is flags.FULL`` tests for it.
        self.FULL = full_chunk(geometry.words_per_chunk)
        self._full_addr = address_of(self.FULL)
        self._full_box = _boxed(self.FULL)
        # What kernels read for a None entry when they would rather not branch.
        self._zero_addr = address_of(zero_chunk(geometry.words_per_chunk))
        # Chunks [0, _whole_chunks) are complete; a partial last one is never FULL.
        self._whole_chunks = geometry.npages >> geometry.chunk_shift
        # Single-page calls read these as plain ints, not through the geometry.
        self._shift = geometry.chunk_shift
        self._local_mask = geometry.pages_per_chunk - 1
        self._chunk_pages = geometry.pages_per_chunk
        self._word_mask = geometry.words_per_chunk - 1
        # find_next_set's kernel, bound on first use to this map's shadow arrays.
        self._find_next: Callable[[int, int, int, int, int], int] | None = None

    # --- the one place where the table and its shadows change ----------------------
    # (_store; _store_one and its two special cases for a single entry)
    def _store(self, where: Any, chunks: Any, addrs: Any, counts: Any) -> None:
        """Point entries ``where`` (distinct) at ``chunks`` (object array or box).

        ``where`` may be a Python int, with one chunk (or None) and scalars.
        """
        if type(where) is int:
            self._store_one(where, chunks, addrs, counts, self._addrs_view[where])
            return
        # Addresses first: the references they replace go last, so no address is
        # ever left pointing at a chunk the map no longer holds.
        if self._views:
            self._views.clear()
        self._addrs[where] = addrs
        self._counts[where] = counts
        self._nallocated_cache = None
        _kernels.table_occupy(self._addrs, self._occupied, _entry_numbers(where, self._addrs.size))
        self._refs[where] = chunks
        if self._mirror_writes is not None:
            self._mirror_writes[where] = chunks

    def _store_one(self, c: int, chunk: Any, addr: int, count: int, old: int) -> None:
        """:meth:`_store` of one entry ``c``, whose address now is ``old``.

        Memoryviews of the shadows: no NumPy scalar, no kernel to dispatch (the
        whole-section writes of a hotplug loop are this and a check).
        """
        self._addrs_view[c] = addr  # as above: the address first, the reference last
        self._counts_view[c] = count
        if (not old) is not (not addr):  # None became something, or the reverse
            self._occupied_bytes[(c >> 3) ^ _BYTE_FLIP] ^= 1 << (c & 7)
        full = self._full_addr
        if old and old != full:  # a private chunk goes, and its view with it
            self._views.pop(c, None)
            self._nallocated_cache = None
        elif addr and addr != full:
            self._nallocated_cache = None
        self._refs[c] = chunk
        if self._mirror_writes is not None:
            self._mirror_writes[c] = chunk

    # The whole-section writes of a hotplug loop, specialised: an entry (whose address
    # is ``old``) becomes FULL or None with two arguments and no case to test.
    def _fill_one(self, c: int, old: int) -> None:
        """``_store_one(c, FULL, ...)`` of an entry that is not FULL."""
        self._addrs_view[c] = self._full_addr
        self._counts_view[c] = self._chunk_pages
        if old:  # a private chunk goes, and its view with it
            self._views.pop(c, None)
            self._nallocated_cache = None
        else:
            self._occupied_bytes[(c >> 3) ^ _BYTE_FLIP] |= 1 << (c & 7)
        self._refs[c] = full = self.FULL
        if self._mirror_writes is not None:
            self._mirror_writes[c] = full

    def _free_one(self, c: int, old: int) -> None:
        """``_store_one(c, None, ...)`` of an entry that is not None."""
        self._addrs_view[c] = 0
        self._counts_view[c] = 0
        self._occupied_bytes[(c >> 3) ^ _BYTE_FLIP] &= ~(1 << (c & 7))
        if old != self._full_addr:
            self._views.pop(c, None)
            self._nallocated_cache = None
        self._refs[c] = None
        if self._mirror_writes is not None:
            self._mirror_writes[c] = None

    def _free(self, where: Any) -> None:
        self._store(where, None, 0, 0)

    def _fill(self, where: Any) -> None:
        full = self.FULL if type(where) is int else self._full_box
        self._store(where, full, self._full_addr, self._geometry.pages_per_chunk)

    def _allocate(self, chunk_nrs: np.ndarray, written: bool = False) -> None:
        """Give ``None`` entries ``chunk_nrs`` zeroed chunks of their own (with
        ``written``, unzeroed: the caller writes every word of them next)."""
        # Allocated in chunk order, neighbouring chunks tend to be neighbours in memory,
        # and a scan over them streams at 20 GB/s instead of 8 GB/s; many at once share
        # slabs of fresh pages (see ``_chunks``).
        chunk_nrs = np.sort(chunk_nrs)
        chunks, addrs = new_chunk_runs(chunk_nrs, self._geometry.words_per_chunk,
                                       slabs=self._slabs, written=written)
        self._store_new(chunk_nrs, chunks, addrs, 0)

    def _unshare(self, chunk_nrs: np.ndarray) -> None:
        """Give ``FULL`` entries ``chunk_nrs`` all-ones chunks of their own."""
        chunk_nrs = np.sort(chunk_nrs)
        chunks, addrs = new_chunk_runs(chunk_nrs, self._geometry.words_per_chunk, ones=True,
                                       slabs=self._slabs)
        self._store_new(chunk_nrs, chunks, addrs, self._geometry.pages_per_chunk)

    def _store_new(self, chunk_nrs: np.ndarray, chunks: np.ndarray, addrs: np.ndarray,
                   count: int) -> None:
        """:meth:`_store` of new chunks, each holding ``count`` pages set.

        A few entries (a page's, a range's two ends) go one at a time through the
        memoryviews and no kernel, so single-page work in a fresh process loads none
        (the first kernel loaded sets up Numba's runtime, 20-30 ms).
        Allocating and freeing one entry takes 7.7 µs so against 9.3 µs through the
        array path; at four entries both take 18 µs.
        """
        if chunk_nrs.size > FEW_ENTRIES:
            self._store(chunk_nrs, chunks, addrs, count)
            return
        for c, chunk, address in zip(chunk_nrs.tolist(), chunks, addrs.tolist(), strict=True):
            self._store(c, chunk, address, count)

    def _entries_at(self, pfns: np.ndarray, first: int, sought: int,
                    step: int = 1) -> np.ndarray:
        """Entries (each once) of ``pfns[first::step]`` whose address is ``sought``."""
        n = self._geometry.nchunks
        sampled = -(-(pfns.size - first) // step)
        # np.zeros and np.empty map pages lazily: only what the kernel touches costs.
        if step == 1 and sampled > n // 8:  # many pfns: mark them all, read the marks
            marks = np.zeros(n, dtype=bool)
            _kernels.table_mark_entries(pfns, first, self._shift, marks)
            return np.flatnonzero(marks & (self._addrs == np.uint64(sought)))
        seen = np.zeros(n, dtype=bool)
        out = np.empty(min(sampled, n), dtype=np.int64)
        k = _kernels.table_entries_at(self._addrs, pfns, first, step,
                                      self._geometry.chunk_shift, sought, seen, out)
        return out[:k]

    def _prescan(self, pfns: np.ndarray, sought: int) -> None:
        """Before a bulk write, give chunks to the entries a sample of ``pfns`` finds
        at ``sought`` (0 to set bits, FULL's address to clear them)."""
        if pfns.size < PRESCAN_MIN_PFNS:
            return
        give = self._allocate if sought == 0 else self._unshare
        found = self._entries_at(pfns, 0, sought, PRESCAN_STEP)
        if found.size:
            give(found)
        sampled = -(-pfns.size // PRESCAN_STEP)
        if 0 < sampled < PRESCAN_SEEN * found.size:
            step = max(1, pfns.size // (PRESCAN_SEEN * found.size))
            more = self._entries_at(pfns, step // 2, sought, step)  # finds only new ones
            if more.size:
                give(more)

    # --- public state --------------------------------------------------------------
    @property
    def table(self) -> np.ndarray:
        """The top-level table: a read-only object array of ``None``/``FULL``/chunks.

        A live mirror of the map's own entries: it follows every write.  Chunks in
        it are read-only for good; change bits through the methods.  Writing the
        mirror itself (after ``setflags(write=True)``) changes nothing in the map,
        and the next read of this property hands out a fresh mirror.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); table = flags.table; flags.set(5)
        >>> table[0].flags.writeable, table[1] is None
        (False, True)
        """
        mirror = self._mirror
        if mirror is None or mirror.flags.writeable:
            mirror = self._refs.copy()
            self._mirror_writes = mirror.view()  # stays writable for _store
            mirror.setflags(write=False)
            self._mirror = mirror
        return mirror

    @property
    def nbytes(self) -> int:
        """Bytes held: the table, its shadows and the memory of the allocated chunks.

        Chunks that a bulk write made as rows of one slab hold the whole slab until
        the last of them is freed (see ``pageflags._chunks``), and count so.
        """
        return self._table_bytes() + self._chunk_memory()

    def _chunk_memory(self) -> int:
        """Bytes the allocated chunks keep alive, counted once after each change."""
        allocated = self._nallocated  # a recount after a change drops _held_cache
        if self._held_cache is None:
            mask = self._allocated_mask()
            self._held_cache = held_bytes(self._refs[mask]) if allocated else 0
        return self._held_cache

    def _table_bytes(self) -> int:
        mirror = 0 if self._mirror is None else self._mirror.nbytes
        return self._refs.nbytes + mirror + self._addrs.nbytes + self._counts.nbytes

    @property
    def _nallocated(self) -> int:
        """Entries holding a private chunk (counted once after each change)."""
        if self._nallocated_cache is None:
            self._nallocated_cache = int(np.count_nonzero(self._allocated_mask()))
            self._held_cache = None
        return self._nallocated_cache

    def _allocated_mask(self) -> np.ndarray:
        mask: np.ndarray = (self._addrs != 0) & (self._addrs != self._full_addr)
        return mask


    def stats(self) -> PageFlagsStats:
        """What the map holds and costs.

        Returns
        -------
        PageFlagsStats
            A dict (:class:`~pageflags.interface.PageFlagsStats`): ``none``, ``full``
            and ``allocated`` entry counts, ``chunk_bytes`` (memory the allocated
            chunks hold, whole slabs included: see :attr:`nbytes`), ``table_bytes``
            (object array and shadows), ``nbytes`` (both), ``flat_bytes`` (what a flat
            bitmap of the same space takes), ``count``, ``npages`` and ``nchunks``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set(5)
        >>> s = flags.stats(); s["allocated"], s["none"], s["flat_bytes"]
        (1, 31, 131072)
        """
        g = self._geometry
        allocated = self._nallocated
        full = int(np.count_nonzero(self._addrs == self._full_addr))
        return {
            "none": g.nchunks - allocated - full, "full": full, "allocated": allocated,
            "chunk_bytes": self._chunk_memory(), "table_bytes": self._table_bytes(),
            "nbytes": self.nbytes, "flat_bytes": g.flat_bytes, "count": self._total,
            "npages": g.npages, "nchunks": g.nchunks,
        }

    # --- reads ---------------------------------------------------------------------
    # test, count and find_next_set are fused (base.py): check and work in one frame.
    def test(self, pfn: int) -> bool:
        if type(pfn) is not int or not 0 <= pfn < self._npages:
            pfn = check_pfn(pfn, self._npages)
        chunk: Chunk | None = self._refs[pfn >> self._shift]
        if chunk is None:
            return False
        if chunk is self.FULL:
            return True
        return chunk.item((pfn >> 6) & self._word_mask) >> (pfn & 63) & 1 == 1  # a Python int word

    test.__doc__ = PageMap.test.__doc__
    __contains__ = test

    def _test(self, pfn: int) -> bool:
        return PageFlags.test(self, pfn)

    def count(self, start: int = 0, stop: int | None = None) -> int:
        if type(start) is not int or type(stop) is not int or not 0 <= start < stop <= self._npages:
            start, stop = check_range(start, stop, self._npages)
            if start == stop:
                return 0
        return self._count(start, stop)

    count.__doc__ = PageMap.count.__doc__

    def _count(self, start: int, stop: int) -> int:
        shift = self._shift
        c = start >> shift
        if (stop - 1) >> shift == c:  # within one chunk: one entry, at most one kernel
            chunk = self._refs[c]
            if chunk is None:
                return 0
            if chunk is self.FULL:
                return stop - start
            base = c << shift
            # Kernels are untyped (pyproject.toml); its int goes back as it is, no step more.
            return _kernels.count_bits(chunk, start - base, stop - base)  # type: ignore[no-any-return]
        if start == 0 and stop == self._npages:
            return self._total
        return int(_kernels.table_range(_kernels.RANGE_COUNT, self._addrs, self._counts, start,
                                        stop, shift, self._full_addr))

    def _any(self, start: int, stop: int) -> bool:
        if start == 0 and stop == self._geometry.npages:
            return self._total > 0
        return bool(_kernels.table_range(_kernels.RANGE_ANY, self._addrs, self._counts, start,
                                         stop, self._geometry.chunk_shift, self._full_addr))

    def _test_many(self, pfns: np.ndarray, out: np.ndarray) -> None:
        shift = self._geometry.chunk_shift
        # Which kernel wins depends on how predictable the entry kind is: sample it.
        sample = self._addrs[pfns[:TEST_MANY_SAMPLE] >> shift]
        empty = np.count_nonzero(sample == 0) / sample.size
        if MIXED_KINDS_BOUNDS[0] < empty < MIXED_KINDS_BOUNDS[1]:
            _kernels.table_test_many_mixed(self._addrs, pfns, shift, self._zero_addr, out)
        else:
            _kernels.table_test_many(self._addrs, pfns, shift, self._full_addr, out)

    def _equal(self, other: PageMap) -> bool:
        shift = self._geometry.chunk_shift
        if isinstance(other, PageFlags):
            return bool(_kernels.table_equal(self._addrs, self._counts, other._addrs,
                                             other._counts, shift))
        words = getattr(other, "words", None)
        if words is None:  # __eq__ passes it on, so the other map's __eq__ is tried
            return NotImplemented  # type: ignore[no-any-return]
        return bool(_kernels.table_equal_flat(self._addrs, shift, words))

    # --- writes --------------------------------------------------------------------
    # A write inside one entry (a page, a short span, a whole section) costs no NumPy
    # call and no kernel: single calls in Python loops are what users write.  Pages
    # and spans of up to SPAN_WORDS words read and write Python-int words through the
    # entry's private view (``_view``); a whole entry is one ``_fill_one``/``_free_one``.
    # The public writes are fused (base.py, made by _page_write and _range_write
    # below the class): check, writer guard and the common case in one frame.
    set = _page_write(True, PageMap.set.__doc__)

    clear = _page_write(False, PageMap.clear.__doc__)

    set_range = _range_write(True, PageMap.set_range.__doc__)

    clear_range = _range_write(False, PageMap.clear_range.__doc__)

    def _set_one(self, pfn: int) -> None:
        self._write_page(pfn, True)

    def _clear_one(self, pfn: int) -> None:
        self._write_page(pfn, False)

    def _write_page(self, pfn: int, value: bool) -> None:
        local = pfn & self._local_mask
        self._write_span(pfn >> self._shift, local, local + 1, value)

    def _set_range(self, start: int, stop: int) -> None:
        self._write_range(start, stop, value=True)

    def _clear_range(self, start: int, stop: int) -> None:
        self._write_range(start, stop, value=False)

    def _view(self, c: int, sought: int) -> memoryview | None:
        """The writable words of entry ``c``'s private chunk, giving it one first when
        the entry is ``sought`` (``None`` to set bits, ``FULL`` to clear them); None
        when the entry already reads as wanted (``FULL`` to set, ``None`` to clear)."""
        view = self._views.get(c)
        if view is not None:
            return view
        address = self._addrs_view[c]
        if address != sought and address in (0, self._full_addr):
            return None
        if address == sought:  # a chunk of its own first: zeroed, or a copy of FULL
            words = self.FULL.tobytes() if address else bytes(self._chunk_pages >> 3)
            chunk = np.frombuffer(words, dtype=np.uint64)
            address = data_address(chunk)
            self._store_one(c, chunk, address, self._chunk_pages if sought else 0, sought)
        # A view over the bytes object's memory, held privately: NumPy and users only
        # ever see the read-only chunk array.  Native uint64 words, so bit b of word i
        # is local page 64 i + b whatever the byte order.
        memory = (ctypes.c_ubyte * (self._chunk_pages >> 3)).from_address(address)
        view = self._views[c] = memoryview(memory).cast("B").cast("Q")
        return view

    def _changed(self, c: int, pages: int) -> None:
        """Entry ``c`` gained ``pages`` set pages (lost, if negative): its count and
        ``_total`` follow, and an entry left empty goes back to ``None``."""
        left = self._counts_view[c] + pages
        self._counts_view[c] = left
        self._total += pages
        if not left:
            self._free(c)

    def _write_span(self, c: int, lo: int, hi: int, value: bool) -> None:
        """Set (``value``) or clear local pages [lo, hi) of entry ``c``, not the whole
        of it, keeping its count and ``_total`` (see :meth:`_changed`)."""
        if ((hi - 1) >> 6) - (lo >> 6) < SPAN_WORDS:
            view = self._views.get(c) or self._view(c, 0 if value else self._full_addr)
            if view is None:  # the entry already reads as wanted
                return
            changed = write_words(view, lo, hi, value)
            if changed:
                self._changed(c, changed if value else -changed)
            return
        base = c << self._shift
        args = (_kernels.RANGE_SET if value else _kernels.RANGE_CLEAR, self._addrs,
                self._counts, base + lo, base + hi, self._shift, self._full_addr)
        changed = _kernels.table_range(*args)
        if changed < 0:  # give the entry a chunk of its own first
            (self._allocate if value else self._unshare)(np.array([c]))
            changed = _kernels.table_range(*args)
        self._total += changed if value else -changed  # the kernel kept the count
        if not value and changed and not self._counts_view[c]:
            self._free(c)

    def _write_range(self, start: int, stop: int, value: bool) -> None:
        """Set or clear [start, stop): whole chunks change entry kind (vectorised over
        a slice), the at most two end chunks are spans of one entry each."""
        shift, ppc = self._shift, self._chunk_pages
        c, last = start >> shift, (stop - 1) >> shift
        # Whole chunks [lo, hi); the partial last chunk is whole to a clear that
        # reaches npages (never to a set: FULL stands only for complete chunks).
        lo = -(-start // ppc)
        hi = self._geometry.nchunks if not value and stop == self._npages else stop // ppc
        if 0 < hi - lo <= FEW_ENTRIES:  # one at a time, through the memoryviews
            store = self._fill if value else self._free
            for entry in range(lo, hi):
                before = self._counts_view[entry]
                self._total += ppc - before if value else -before
                store(entry)
        elif lo < hi:
            covered = slice(lo, hi)
            before = int(self._counts[covered].sum(dtype=np.int64))
            self._total += (hi - lo) * ppc - before if value else -before
            (self._fill if value else self._free)(covered)
        if c < lo:  # a partial first chunk
            self._write_span(c, start - (c << shift), min(stop - (c << shift), ppc), value)
        if last >= max(hi, lo):  # a partial last chunk (from its start: see above)
            self._write_span(last, 0, stop - (last << shift), value)

    def _counted(self, npfns: int) -> bool:
        """Whether a bulk write of ``npfns`` pfns should count bits as it goes, or
        leave the counts to one :func:`table_recount` (when the pfns outnumber the
        words of the chunks it would read)."""
        if npfns < RECOUNT_MIN_PFNS:
            return True
        g = self._geometry
        return npfns * 8 < self._nallocated * g.words_per_chunk + g.nchunks

    def _set_many(self, pfns: np.ndarray) -> None:
        shift, full = self._shift, self._full_addr
        self._prescan(pfns, 0)
        counted = self._counted(pfns.size)
        added, reached, _ = _kernels.table_write_many(
            self._addrs, self._counts, pfns, 0, shift, full, True, counted, _NO_ENTRIES, 0)
        self._total += int(added)
        if reached < pfns.size:  # pfns in None entries from here: give them chunks
            self._allocate(self._entries_at(pfns, reached, 0))
            again = self._counted(pfns.size - reached)
            added, reached, _ = _kernels.table_write_many(
                self._addrs, self._counts, pfns, reached, shift, full, True, again,
                _NO_ENTRIES, 0)
            self._total += int(added)
            counted = counted and again
        if not counted:
            self._total = int(_kernels.table_recount(self._addrs, self._counts, shift, full))

    def _clear_many(self, pfns: np.ndarray) -> None:
        shift, full = self._shift, self._full_addr
        self._prescan(pfns, full)
        counted = self._counted(pfns.size)
        emptied = np.empty(min(pfns.size, self._geometry.nchunks), dtype=np.int64)
        removed, reached, e = _kernels.table_write_many(
            self._addrs, self._counts, pfns, 0, shift, full, False, counted, emptied, 0)
        self._total -= int(removed)
        if reached < pfns.size:  # pfns in FULL entries from here: copy FULL into them
            self._unshare(self._entries_at(pfns, reached, full))
            again = self._counted(pfns.size - reached)
            removed, reached, e = _kernels.table_write_many(
                self._addrs, self._counts, pfns, reached, shift, full, False, again, emptied, e)
            self._total -= int(removed)
            counted = counted and again
        if counted:
            self._free_emptied(emptied[:e])
        else:
            self._total = int(_kernels.table_recount(self._addrs, self._counts, shift, full))
            self._free_emptied(np.flatnonzero(self._allocated_mask() & (self._counts == 0)))

    def _free_emptied(self, chunk_nrs: np.ndarray) -> None:
        """Free the entries among ``chunk_nrs`` that hold a chunk with no bit set."""
        emptied = chunk_nrs[(self._counts[chunk_nrs] == 0) & (self._addrs[chunk_nrs] != 0)]
        if emptied.size:
            self._free(emptied)

    # --- scans, rank/select ---------------------------------------------------------
    def find_next_set(self, start: int = 0) -> int:
        if type(start) is not int or not 0 <= start < self._npages:
            start = check_position("start", start, self._npages)
            if start == self._npages:
                return -1
        find = self._find_next
        if find is not None:
            return find(start, self._npages, self._shift, self._full_addr, _NULL)
        args = (self._addrs, self._occupied, start, self._npages, self._shift,
                self._full_addr, _NULL)
        found: int = _kernels.table_find_next(*args)
        # From now on without Numba's dispatch: the shadows are this map's for good.
        self._find_next = _direct.bind(_kernels.table_find_next, args, 2)
        return found

    find_next_set.__doc__ = PageMap.find_next_set.__doc__

    def _find_next_set(self, start: int) -> int:
        found: int = _kernels.table_find_next(self._addrs, self._occupied, start,
                                              self._npages, self._shift, self._full_addr,
                                              _kernels.NULL)
        return found

    def _find_next_clear(self, start: int) -> int:
        g = self._geometry
        return int(_kernels.table_find_next(self._addrs, self._occupied, start, g.npages,
                                            g.chunk_shift, self._full_addr, _kernels.ALL_ONES))

    def _find_prev_set(self, stop: int) -> int:
        return int(_kernels.table_find_prev_set(self._addrs, self._occupied, stop,
                                                self._geometry.chunk_shift, self._full_addr))

    def _collect(self, start: int, stop: int, out: np.ndarray) -> tuple[int, int]:
        args = (self._addrs, self._counts, start, stop, self._geometry.chunk_shift,
                self._full_addr, out)
        if (PARALLEL_MIN_PFNS is not None and out.size >= PARALLEL_MIN_PFNS
                and threading.current_thread() is threading.main_thread()
                and (threads := numba.get_num_threads()) > 1):
            cuts = np.empty(4 * threads + 1, dtype=np.int64)  # parts for the pool to balance
            written, resume = _kernels.table_collect_parallel(*args, cuts, np.empty_like(cuts))
        else:
            written, resume = _kernels.table_collect(*args)
        return int(written), int(resume)

    def _runs(self, start: int, stop: int, starts: np.ndarray, stops: np.ndarray,
              fill: bool) -> int:
        return int(_kernels.table_runs(self._addrs, start, stop, self._geometry.chunk_shift,
                                       self._full_addr, starts, stops, fill))

    def _select(self, k: int) -> int:
        return int(_kernels.table_select(self._addrs, self._counts, k,
                                         self._geometry.chunk_shift, self._full_addr))

    # --- algebra ---------------------------------------------------------------------
    if TYPE_CHECKING:
        # What the operators PageMap defines return for this class: the base kind.
        def __and__(self, other: PageMap) -> PageFlags: ...
        def __or__(self, other: PageMap) -> PageFlags: ...
        def __xor__(self, other: PageMap) -> PageFlags: ...
        def __sub__(self, other: PageMap) -> PageFlags: ...
        def __invert__(self) -> PageFlags: ...

    def _count_and(self, other: PageMap, first_only: bool) -> int:
        assert isinstance(other, PageFlags)
        return int(_kernels.table_count_and(self._addrs, self._counts, other._addrs,
                                            other._counts, self._geometry.chunk_shift,
                                            self._full_addr, first_only))

    def _combine(self, op: Op, other: PageMap) -> PageFlags:
        assert isinstance(other, PageFlags)
        return self._combine_into(int(op), other._addrs, PageFlags(self._geometry))

    def _combine_in_place(self, op: Op, other: PageMap) -> None:
        assert isinstance(other, PageFlags)
        self._combine_into(int(op), other._addrs, self)

    def _invert(self) -> PageFlags:
        g = self._geometry
        # ~a is a ^ ones, where ones is FULL everywhere but in a partial last chunk.
        ones = np.full(g.nchunks, self._full_addr, dtype=np.uint64)
        tail = np.zeros(g.words_per_chunk, dtype=np.uint64)
        if self._whole_chunks < g.nchunks:
            _kernels.write_bits(tail, 0, g.last_chunk_pages, True)
            ones[-1] = address_of(tail)
        return self._combine_into(int(Op.XOR), ones, PageFlags(g))

    def _combine_into(self, op: int, addrs_b: np.ndarray, result: PageFlags) -> PageFlags:
        """``result = self op b`` for b given by its address shadow.

        ``result`` is a new map, or ``self`` for in-place forms, whose private chunks
        then take their own results.  Entry kinds come first, vectorised over the
        shadows, so None and FULL results cost no chunk; one kernel then computes every
        other chunk before any entry changes (``b`` may be ``self``).
        """
        g = self._geometry
        full = self._full_addr
        kinds = np.empty(g.nchunks, dtype=np.int8)
        _kernels.table_plan(op, self._addrs, addrs_b, full, _kernels.RESULT_KINDS, kinds)
        computed = np.flatnonzero(kinds == _kernels.KIND_CHUNK)
        if result is self:
            mine = self._addrs[computed]
            reused = (mine != 0) & (mine != full)
        else:
            reused = np.zeros(computed.size, dtype=bool)
        fresh = computed[~reused]
        # The kernel below writes every word of every computed chunk.
        chunks, fresh_addrs = new_chunk_runs(fresh, g.words_per_chunk, slabs=result._slabs,
                                             written=True)
        out_addrs = np.empty(computed.size, dtype=np.uint64)
        out_addrs[reused] = self._addrs[computed[reused]]
        out_addrs[~reused] = fresh_addrs
        counts = np.empty(computed.size, dtype=np.int32)
        kernel = _kernels.table_combine
        if (PARALLEL_MIN_CHUNKS is not None and computed.size >= PARALLEL_MIN_CHUNKS
                and threading.current_thread() is threading.main_thread()):
            kernel = _kernels.table_combine_parallel
        kernel(op, self._addrs, addrs_b, computed, out_addrs, counts, g.chunk_shift,
               self._zero_addr)

        filled = np.flatnonzero(kinds == _kernels.KIND_FULL)
        result._fill(filled[result._addrs[filled] != full])
        if result is self:
            emptied = np.flatnonzero(kinds == _kernels.KIND_NONE)
            self._free(emptied[self._addrs[emptied] != 0])
            self._counts[computed[reused]] = counts[reused]
        kept = counts[~reused] > 0  # all-zero results become None
        result._store(fresh[kept], chunks[kept], fresh_addrs[kept], counts[~reused][kept])
        dropped = fresh[~kept]
        result._free(dropped[result._addrs[dropped] != 0])  # in place: was FULL
        result._free_emptied(computed[reused])
        result._total = int(result._counts.sum(dtype=np.int64))
        return result

    # --- conversions -------------------------------------------------------------------
    def _set_ranges(self, starts: np.ndarray, stops: np.ndarray) -> None:
        g = self._geometry
        cover = np.zeros(g.nchunks, dtype=np.int8)
        _kernels.table_range_cover(starts, stops, g.chunk_shift, self._whole_chunks, cover)
        self._fill(np.flatnonzero(cover == 2))
        touched = np.flatnonzero(cover == 1)
        self._allocate(touched[self._addrs[touched] == 0])
        _kernels.table_set_ranges(self._addrs, self._counts, starts, stops, g.chunk_shift,
                                  self._full_addr)
        self._total = int(self._counts.sum(dtype=np.int64))

    def _get_words(self, start: int, stop: int) -> np.ndarray:
        out = np.empty(-(-(stop - start) // 64), dtype=np.uint64)
        _kernels.table_get_words(self._addrs, start >> 6, out, self._geometry.chunk_shift,
                                 self._full_addr)
        return out

    def _put_words(self, start: int, words: np.ndarray) -> None:
        g = self._geometry
        word_shift = g.chunk_shift - 6
        first_word = start >> 6
        end_word = first_word + words.size
        chunk_nrs = np.arange(first_word >> word_shift, ((end_word - 1) >> word_shift) + 1)
        any_set = np.empty(chunk_nrs.size, dtype=bool)
        all_set = np.empty(chunk_nrs.size, dtype=bool)
        _kernels.words_chunk_kinds(words, first_word, g.chunk_shift, any_set, all_set)
        first = chunk_nrs << word_shift
        whole = (first >= first_word) & (first + g.words_per_chunk <= end_word)
        to_fill = whole & all_set & (chunk_nrs < self._whole_chunks)
        to_free = whole & ~any_set
        partly = ~(to_fill | to_free)
        addrs = self._addrs[chunk_nrs]
        to_allocate = partly & (addrs == 0) & any_set
        to_unshare = partly & (addrs == self._full_addr) & ~all_set
        before = int(self._counts[chunk_nrs].sum(dtype=np.int64))
        self._fill(chunk_nrs[to_fill])
        self._free(chunk_nrs[to_free])
        # Chunks the window covers get every word copied in: no need to zero them.
        self._allocate(chunk_nrs[to_allocate & whole], written=True)
        self._allocate(chunk_nrs[to_allocate & ~whole])
        self._unshare(chunk_nrs[to_unshare])
        _kernels.table_put_words(self._addrs, self._counts, words, first_word, g.chunk_shift,
                                 self._full_addr)
        self._free_emptied(chunk_nrs)
        self._total += int(self._counts[chunk_nrs].sum(dtype=np.int64)) - before

    # --- whole map -----------------------------------------------------------------
    @writes
    def optimize(self) -> int:
        """Free all-zero chunks and replace all-ones chunks by ``FULL``.

        Uses the cached counts, so it reads no chunk data.

        Returns
        -------
        int
            Bytes of chunk memory given back (rows of a slab go back only with the
            whole slab: see :attr:`nbytes`).

        Examples
        --------
        >>> import numpy as np
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_many(np.arange(32768))
        >>> flags.optimize(), flags.table[0] is flags.FULL
        (4096, True)
        """
        before = self._chunk_memory()
        allocated = self._allocated_mask()
        empty = np.flatnonzero(allocated & (self._counts == 0))
        full = allocated & (self._counts == self._geometry.pages_per_chunk)
        full[self._whole_chunks:] = False
        full = np.flatnonzero(full)
        self._free(empty)
        self._fill(full)
        return before - self._chunk_memory()

    def copy(self) -> PageFlags:
        """An independent copy; ``FULL`` entries stay shared, chunks are copied.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> a = PageFlags(1 << 20); a.set(1); b = a.copy(); b.set(2)
        >>> a.count(), b.count()
        (1, 2)
        """
        new = PageFlags(self._geometry)
        new._slabs = self._slabs
        full = self._addrs == self._full_addr
        new._fill(full)
        new._total = self._total
        allocated = np.flatnonzero(self._allocated_mask())
        chunks, addrs = new_chunk_runs(allocated, self._geometry.words_per_chunk,
                                       copies=self._refs[allocated], slabs=self._slabs)
        new._store(allocated, chunks, addrs, self._counts[allocated])
        return new

    def __reduce__(self) -> tuple[Any, ...]:
        # Compact: FULL runs, entry numbers and allocated chunks only (persist.py).
        return persist.reduce(self)

    # --- files and interchange (persist.py, roaring.py) -----------------------------
    def save(self, path: PathArg, *, sync: bool = True) -> None:
        """Write the map to ``path`` atomically (temporary file, fsync, replace).

        The file holds the geometry, the ``FULL`` runs and only the allocated
        chunks, with an XXH64 checksum; :mod:`pageflags.persist` documents the layout.

        Parameters
        ----------
        path : str, bytes or os.PathLike
            The file to write; its folder must exist.  An existing regular file (or
            the file a symlink names) is replaced only once the new one is complete;
            a directory raises ``IsADirectoryError`` and a FIFO, socket or device
            ``OSError``, before anything is written.
        sync : bool, default True
            fsync the file and its folder.  ``False`` still never leaves a torn file
            after a process crash, but after a power loss the file may be the old
            one, the new one, or one that :meth:`load` refuses with a
            :class:`~pageflags.FormatError`.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(0, 100)
        >>> flags.save("map.pgf")                              # doctest: +SKIP
        >>> PageFlags.load("map.pgf") == flags                 # doctest: +SKIP
        True
        """
        persist.save(self, path, sync=sync)

    @classmethod
    def load(cls, path: PathArg) -> Self:
        """Read a map written by :meth:`save`, checking everything before building it.

        The map is a ``cls``: ``MyFlags.load(path)`` builds a ``MyFlags``.

        Raises
        ------
        pageflags.FormatError
            The file is truncated, corrupt or not a pageflags file, or the map it
            holds would not fit the memory available (check ``"memory"``); the
            message names the file and the failed check.
        OSError
            The file cannot be opened or is not a regular file (a FIFO is refused,
            not waited on).

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> PageFlags.load("map.pgf").count()                  # doctest: +SKIP
        100
        """
        return persist.load(path, cls)

    def to_roaring64_bytes(self) -> bytes:
        """The set pfns in Roaring's portable 64-bit serialization (CRoaring, pyroaring).

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_many([1, 2, 3])
        >>> data = flags.to_roaring64_bytes(); len(data)
        34
        >>> PageFlags.from_roaring64_bytes(data, flags.geometry) == flags
        True
        """
        return roaring.to_roaring64_bytes(self)

    @classmethod
    def from_roaring64_bytes(cls, data: bytes | bytearray | memoryview | np.ndarray,
                             geometry: Geometry | int) -> Self:
        """A ``cls`` map of ``geometry`` holding the values of a portable Roaring64
        serialization.

        Chunks that come out wholly set become ``FULL``.

        Raises
        ------
        pageflags.FormatError
            ``data`` is not a valid serialization, or holds a value ``>= npages``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> empty = bytes(8)                       # no buckets
        >>> PageFlags.from_roaring64_bytes(empty, 1 << 20).count()
        0
        """
        return roaring.from_roaring64_bytes(data, geometry, cls)

    def validate(self) -> None:
        """Check every invariant of the structure; ``AssertionError`` names the first broken.

        Checks that the shadows agree with the object array, that cached counts equal
        real popcounts, that ``FULL`` is still all ones and stands only for complete
        chunks, and that no bit past ``npages`` is set.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(5, 50_000); flags.validate()
        """
        self._check_structure()
        self._check_counts()

    def _check_structure(self) -> None:
        """Every invariant but the popcounts: reads no chunk data but the last."""
        g = self._geometry
        table, addrs, counts = self._refs, self._addrs, self._counts
        n = g.nchunks
        _require(table.shape == (n,) and table.dtype == object, "table shape or dtype")
        _require(addrs.shape == (n,) and addrs.dtype == np.uint64, "address shadow shape")
        _require(counts.shape == (n,) and counts.dtype == np.int32, "count shadow shape")
        pointers = object_pointers(table)
        is_none = pointers == id(None)
        is_full = pointers == id(self.FULL)
        _require(np.array_equal(is_none, addrs == 0), "None entries and zero addresses differ")
        _require(np.array_equal(is_full, addrs == self._full_addr),
                 "FULL entries and FULL addresses differ")
        _require(not is_full[self._whole_chunks:].any(), "FULL stands for a partial chunk")
        _require(not self.FULL.flags.writeable
                 and bool(np.all(self.FULL == np.iinfo(np.uint64).max)),
                 "the FULL chunk was written")
        allocated = np.flatnonzero(~is_none & ~is_full)
        real, is_chunk = chunk_objects(table[allocated], g.words_per_chunk)
        if not is_chunk.all():
            wrong = table[allocated[np.argmin(is_chunk)]]
            _require(False, f"allocated entries of the wrong kind: {_describe(wrong)}, "
                     f"a chunk is a read-only C-contiguous uint64 ndarray of shape "
                     f"({g.words_per_chunk},)")
        _require(np.array_equal(real, addrs[allocated]),
                 "address shadow disagrees with the chunks in the table")
        ordered = np.sort(real)
        _require(bool(np.all(ordered[1:] != ordered[:-1])), "two entries share one chunk")
        occupied = np.zeros(self._occupied.nbytes, dtype=np.uint8)
        packed = np.packbits(addrs != 0, bitorder="little")
        occupied[:packed.size] = packed
        _require(np.array_equal(occupied.view(np.uint64), self._occupied),
                 "occupied bitmap disagrees with the table")
        _require(self._total == int(counts.sum(dtype=np.int64)),
                 f"total {self._total} != sum of chunk counts")
        _require(self._nallocated == allocated.size,
                 f"{self._nallocated} chunks recorded, {allocated.size} in the table")
        mirror = self._mirror
        _require(mirror is None or np.array_equal(object_pointers(mirror), pointers),
                 "the table mirror disagrees with the map's entries")
        if self._whole_chunks < n and addrs[-1] != 0:
            tail = _kernels.count_bits(table[-1], g.last_chunk_pages, g.pages_per_chunk)
            _require(tail == 0, f"{tail} bits set past npages")

    def _check_counts(self) -> None:
        """The cached counts equal the popcounts of the chunks (reads every chunk)."""
        popcounts = np.zeros(self._geometry.nchunks, dtype=np.int64)
        _kernels.table_popcounts(self._addrs, self._geometry.chunk_shift, popcounts)
        bad = np.flatnonzero(popcounts != self._counts)
        _require(bad.size == 0, f"cached counts differ from popcounts at chunks {bad[:8]}")

    # === package-internal table API ===================================================
    # The package's other modules (persist, roaring, memmap, preallocated, hotplug, the
    # shard tasks) build, read and change a map's table through these methods and
    # never through the table's attributes: only this module assigns ``_addrs``,
    # ``_counts`` and ``_total`` (tests/test_imports.py checks).  ``entries`` are
    # int64 arrays of distinct entry numbers the caller has checked.  Setting many
    # ranges is ``_set_ranges`` above, the PageMap primitive ``from_ranges`` calls.
    # Not public API: names and arguments may change with the package.

    @classmethod
    def _from_parts(cls, geometry: Geometry, full: np.ndarray | None, entries: np.ndarray,
                    chunks: np.ndarray, addrs: np.ndarray, counts: np.ndarray) -> Self:
        """A ``cls`` map of ``geometry`` built from its parts; every other entry is ``None``.

        ``full`` (a bool mask over the entries, or None) marks the ``FULL`` entries;
        ``entries`` hold ``chunks`` (read-only chunks made for this map, whose data
        lie at ``addrs``) with ``counts`` pages set in each.  Nothing is checked
        here: a reader of outside data runs :meth:`_check_structure` next, then
        :meth:`_built`.
        """
        flags = cls._empty(geometry)
        if full is not None:
            flags._fill(full)
        flags._store(entries, chunks, addrs, counts)
        flags._total = int(flags._counts.sum(dtype=np.int64))
        return flags

    def _full_mask(self) -> np.ndarray:
        """Bool per entry: ``FULL``."""
        mask: np.ndarray = self._addrs == self._full_addr
        return mask

    def _occupied_mask(self, entries: np.ndarray | None = None) -> np.ndarray:
        """Bool per entry (of ``entries``, or of the table): not ``None`` (``FULL`` or a
        private chunk)."""
        mask: np.ndarray = (self._addrs if entries is None else self._addrs[entries]) != 0
        return mask

    def _nonempty_mask(self) -> np.ndarray:
        """Bool per entry: some page of it is set."""
        mask: np.ndarray = self._counts != 0
        return mask

    def _private_at(self, entries: np.ndarray) -> np.ndarray:
        """Bool per entry of ``entries``: it holds a private chunk (not None, not FULL)."""
        addrs = self._addrs[entries]
        mask: np.ndarray = (addrs != 0) & (addrs != self._full_addr)
        return mask

    def _chunks_at(self, entries: np.ndarray) -> np.ndarray:
        """The chunk arrays of private entries ``entries`` (an object array)."""
        chunks: np.ndarray = self._refs[entries]
        return chunks

    def _chunk_addresses(self, entries: np.ndarray) -> np.ndarray:
        """The data addresses (``uint64``) of private entries ``entries``."""
        addrs: np.ndarray = self._addrs[entries]
        return addrs

    def _shadows(self) -> tuple[np.ndarray, np.ndarray]:
        """``(addresses, counts)``: the table's shadows themselves, for kernels that
        read a whole table.  Read them only: a write would leave the map broken."""
        return self._addrs, self._counts

    def _fill_entries(self, entries: np.ndarray) -> None:
        """Set every page of whole-chunk ``entries``, keeping the total."""
        ppc = self._geometry.pages_per_chunk
        self._total += entries.size * ppc - int(self._counts[entries].sum(dtype=np.int64))
        self._fill(entries)

    def _free_entries(self, entries: np.ndarray) -> None:
        """Clear every page of ``entries`` and let their chunks go, keeping the total."""
        self._total -= int(self._counts[entries].sum(dtype=np.int64))
        self._free(entries)

    def _own_entries(self, entries: np.ndarray) -> None:
        """Give each of ``entries`` a private chunk holding its bits (a zeroed one for
        ``None``, a copy of ``FULL`` for ``FULL``); private entries stay as they are."""
        addrs = self._addrs[entries]
        self._allocate(entries[addrs == 0])
        self._unshare(entries[addrs == self._full_addr])

    def _rewrite_chunks(self, entries: np.ndarray, word: np.uint64, count: int) -> None:
        """Write ``word`` over the private chunks of ``entries`` in place, each then
        holding ``count`` pages set (0 for ``word`` 0, a chunk's pages for all ones).

        The in-place form of :meth:`_free` and :meth:`_fill`, for maps that keep
        their chunks; like them it leaves the total to the caller.  Counts are exact,
        so a chunk already at ``count`` already holds ``word`` and is not rewritten.
        """
        entries = entries[self._counts[entries] != count]
        _kernels.table_fill_chunks(self._addrs, entries, self._geometry.chunk_shift, word)
        self._counts[entries] = count
    def _chunk_per_entry(self) -> None:
        """Make every chunk alone from now on, and copy the chunks that share a slab
        into chunks of their own: each freed entry then gives its memory back at once
        (what hotplug experiments and preallocated maps measure, section by section)."""
        self._slabs = False
        allocated = np.flatnonzero(self._allocated_mask())
        rows = allocated[slab_rows(self._refs[allocated])]
        if rows.size:
            chunks, addrs = new_chunks(rows.size, self._geometry.words_per_chunk,
                                       self._refs[rows])
            self._store(rows, chunks, addrs, self._counts[rows])
    # === end of the package-internal table API ========================================


def _entry_numbers(where: Any, n: int) -> np.ndarray:
    """Entry numbers (int64, 1-d) of an index ``where``: a slice, bool mask, int or array."""
    if isinstance(where, slice):
        return np.arange(*where.indices(n), dtype=np.int64)
    where = np.asarray(where)
    if where.dtype == bool:
        return np.flatnonzero(where)
    numbers: np.ndarray = where.astype(np.int64, copy=False).reshape(-1)
    return numbers


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise AssertionError(f"PageFlags invariant broken: {reason}")


def _describe(entry: object) -> str:
    if not isinstance(entry, np.ndarray):
        return f"a {type(entry).__name__}"
    return (f"a {type(entry).__name__} of dtype {entry.dtype}, shape {entry.shape}, "
            f"writeable={entry.flags.writeable}, C-contiguous={entry.flags.c_contiguous}")
