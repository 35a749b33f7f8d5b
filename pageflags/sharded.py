"""ShardedPageFlags: one page map cut into shards that live on Dask workers.

The address space is cut into contiguous shards of whole chunks (contiguous, not
hashed: hotplug and scans are spatially local, so an operation over a node or a
section touches one or two shards).  Each shard is a :class:`~pageflags.PageFlags`
of its own pages only (``Geometry.from_npages(shard_pages)``; pfns are offset by the
shard's first pfn) held on a worker as a Dask future.  A shard never written is
absent, ``None`` here, and reads as all zero without a task, exactly as a ``None``
entry does one level down.

Writes are idempotent: each one submits a task that takes the shard's previous
future and returns a new map (see :mod:`pageflags._shard_tasks`), and the new future
replaces the old one here.  Dask keeps the lineage, so a shard lost with its worker
is rebuilt by rerunning its writes; the price is that the scheduler keeps every
write's arguments (pfns are sent as 32-bit offsets to halve them).  A long series of
writes is cut short by ``save`` and ``load``, whose shards come from files.  Maps
made by :meth:`ShardedPageFlags.from_local` are scattered data with no lineage: a
worker lost while it holds such a shard loses it (save, then load, to be safe).
Reads send one task per present shard of the range and gather the results in one
round trip.

Dask is imported only when a sharded map is made: ``import pageflags`` works
without the ``distributed`` extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from . import _manifest, _shard_tasks
from ._args import (
    check_at_least,
    check_index,
    check_out_array,
    check_pfn_array,
    check_pfn_array_shaped,
    check_position,
    check_range,
    check_ranges,
    check_sections,
)
from ._files import StrPath
from ._system import ensure_fits
from .bitmap import PageFlags
from .errors import FormatError
from .geometry import DEFAULT_GEOMETRY, Geometry, as_geometry
from .interface import Geometric, PageFlagsStats, ShardedStats, ShardedTotals
from .ops import Op

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DEFAULT_SHARD_BYTES", "ShardedPageFlags"]

#: Chunk memory of a default shard when dense: 128 MiB of bits (2^30 pages of 4 KiB,
#: 4 TiB of memory), a full scan in the tens of milliseconds at memory bandwidth.
DEFAULT_SHARD_BYTES = 128 << 20

_INSTALL = ("ShardedPageFlags needs Dask's distributed scheduler: "
            'pip install "pageflags[distributed]"')
# The keys of a shard's stats that the total sums.
_Summed = Literal["none", "full", "allocated", "chunk_bytes", "table_bytes", "nbytes", "count"]


def distributed_module() -> Any:
    """The ``distributed`` module, or ImportError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise ImportError(_INSTALL) from None
    return distributed


def _client(client: Any) -> Any:
    distributed = distributed_module()
    if client is not None:
        return client
    try:
        return distributed.default_client()
    except ValueError:
        raise ValueError("no Dask client: pass client=, or make one first "
                         "(distributed.Client(...))") from None


class ShardedPageFlags(Geometric):
    """A page map of ``geometry`` split into shards of ``shard_pages`` held on Dask workers.

    Parameters
    ----------
    geometry : Geometry or int
        The whole space (an int is a page count, as for :class:`PageFlags`).
    shard_pages : int, optional
        Pages per shard, a positive multiple of ``geometry.pages_per_chunk``; the last
        shard may be shorter.  Default: :data:`DEFAULT_SHARD_BYTES` of bits.
    client : distributed.Client, optional
        Where shards live; default the current default client.

    Examples
    --------
    >>> from distributed import Client                       # doctest: +SKIP
    >>> from pageflags import Geometry, ShardedPageFlags
    >>> client = Client(n_workers=2, threads_per_worker=1)   # doctest: +SKIP
    >>> flags = ShardedPageFlags(Geometry(46), client=client)  # doctest: +SKIP
    >>> flags.nshards, flags.shard_pages == 1 << 30          # doctest: +SKIP
    (16, True)
    >>> flags.set_range(0, 3 << 30); flags.count()           # doctest: +SKIP
    3221225472
    """

    def __init__(self, geometry: Geometry | int = DEFAULT_GEOMETRY,
                 shard_pages: int | None = None, client: Any = None) -> None:
        self._client = _client(client)
        g = as_geometry(geometry)
        per_chunk = g.pages_per_chunk
        if shard_pages is None:
            shard_pages = max(per_chunk, DEFAULT_SHARD_BYTES * 8 // per_chunk * per_chunk)
        shard_pages = check_index("shard_pages", shard_pages)
        if shard_pages < per_chunk or shard_pages % per_chunk:
            raise ValueError(f"shard_pages must be a positive multiple of {per_chunk} "
                             f"(pages per chunk), got {shard_pages}")
        self._geometry = g
        self._shard_pages = min(shard_pages, -(-g.npages // per_chunk) * per_chunk)
        self._nshards = -(-g.npages // self._shard_pages)
        self._futures: list[Any] = [None] * self._nshards

    # --- shape ---------------------------------------------------------------------
    @property
    def shard_pages(self) -> int:
        """Pages per shard (the last one may hold fewer)."""
        return self._shard_pages

    @property
    def nshards(self) -> int:
        """Number of shards, present or absent."""
        return self._nshards

    @property
    def client(self) -> Any:
        """The Dask client the shards live on."""
        return self._client

    @property
    def futures(self) -> tuple[Any, ...]:
        """Each shard's future, or None for an absent (all zero) shard."""
        return tuple(self._futures)

    def shard_bounds(self, index: int) -> tuple[int, int]:
        """``[start, stop)`` pfns of shard ``index``."""
        index = check_index("index", index)
        if not 0 <= index < self._nshards:
            raise IndexError(f"shard {index} outside [0, {self._nshards})")
        start = index * self._shard_pages
        return start, min(start + self._shard_pages, self.npages)

    def shard_geometry(self, index: int) -> Geometry:
        """The geometry of shard ``index``'s own PageFlags."""
        start, stop = self.shard_bounds(index)
        g = self._geometry
        return Geometry.from_npages(stop - start, page_shift=g.page_shift,
                                    chunk_shift=g.chunk_shift)

    def _pieces(self, start: int, stop: int) -> Iterator[tuple[int, int, int]]:
        """``(shard, local start, local stop)`` for each shard meeting ``[start, stop)``."""
        if start >= stop:
            return
        size = self._shard_pages
        for index in range(start // size, (stop - 1) // size + 1):
            base = index * size
            yield index, max(start, base) - base, min(stop, base + size) - base

    def _submit(self, fn: Any, *args: Any) -> Any:
        return self._client.submit(fn, *args, pure=False)

    def _gather(self, futures: list[Any]) -> list[Any]:
        return self._client.gather(futures) if futures else []

    def _write(self, index: int, method: str, *args: Any) -> None:
        self._futures[index] = self._submit(
            _shard_tasks.write, self._futures[index], self.shard_geometry(index), method, *args)

    # --- ranges --------------------------------------------------------------------
    def set_range(self, start: int, stop: int) -> None:
        """Set pages ``[start, stop)``; creates the shards it touches."""
        start, stop = check_range(start, stop, self.npages)
        for index, lo, hi in self._pieces(start, stop):
            self._write(index, "set_range", lo, hi)

    def clear_range(self, start: int, stop: int) -> None:
        """Clear pages ``[start, stop)``; absent shards stay absent."""
        start, stop = check_range(start, stop, self.npages)
        for index, lo, hi in self._pieces(start, stop):
            if self._futures[index] is not None:
                self._write(index, "clear_range", lo, hi)

    def _per_shard(self, start: int, stop: int, method: str) -> list[tuple[int, Any]]:
        """Submit ``method(lo, hi)`` on each present shard of the range."""
        return [(index, self._submit(_shard_tasks.call, self._futures[index], method, lo, hi))
                for index, lo, hi in self._pieces(start, stop)
                if self._futures[index] is not None]

    def count(self, start: int = 0, stop: int | None = None) -> int:
        """Pages set in ``[start, stop)`` (the whole map by default): one task per
        present shard of the range, summed.

        Examples
        --------
        >>> flags = ShardedPageFlags(1 << 32, client=client)   # doctest: +SKIP
        >>> flags.set_range((1 << 30) - 5, (1 << 30) + 5)     # doctest: +SKIP
        >>> flags.count(), flags.count(1 << 30)                # doctest: +SKIP
        (10, 5)
        """
        start, stop = check_range(start, stop, self.npages)
        return int(sum(self._gather([f for _, f in self._per_shard(start, stop, "count")])))

    def any(self, start: int = 0, stop: int | None = None) -> bool:
        """Whether any page in ``[start, stop)`` is set (False for an empty range)."""
        start, stop = check_range(start, stop, self.npages)
        return any(self._gather([f for _, f in self._per_shard(start, stop, "any")]))

    def all(self, start: int = 0, stop: int | None = None) -> bool:
        """Whether every page in ``[start, stop)`` is set (True for an empty range)."""
        start, stop = check_range(start, stop, self.npages)
        if any(self._futures[index] is None for index, _, _ in self._pieces(start, stop)):
            return False
        return all(self._gather([f for _, f in self._per_shard(start, stop, "all")]))

    # --- arrays of pfns --------------------------------------------------------------
    def _split(self, pfns: ArrayLike
               ) -> tuple[np.ndarray, list[tuple[int, int, int]], np.ndarray]:
        """``(order, [(shard, lo, hi)], pfns)``: the checked pfns, and ``order[lo:hi]``,
        the positions in them of each shard's pfns (one stable sort by shard)."""
        pfns = check_pfn_array(pfns, self.npages)
        shard = pfns // self._shard_pages
        # Small integer keys: NumPy's stable sort is then a radix sort, O(n).
        keys = shard.astype(np.uint16 if self._nshards <= 1 << 16 else np.int64)
        order = np.argsort(keys, kind="stable")
        edges = np.searchsorted(keys[order], np.arange(self._nshards + 1))
        pieces = [(i, int(edges[i]), int(edges[i + 1])) for i in
                  np.flatnonzero(edges[1:] > edges[:-1]).tolist()]
        return order, pieces, pfns

    def _local(self, pfns: np.ndarray, order: np.ndarray, index: int, lo: int,
               hi: int) -> np.ndarray:
        """Shard ``index``'s pfns as local offsets, 32-bit when they fit (half the bytes
        to send)."""
        local: np.ndarray = pfns[order[lo:hi]] - index * self._shard_pages
        return local.astype(np.uint32) if self._shard_pages <= 1 << 32 else local

    def set_many(self, pfns: ArrayLike) -> None:
        """Set every page in ``pfns`` (any integer dtype, order, duplicates).

        The pfns are split by shard with one stable sort; each shard gets one write
        task with its pfns as local offsets.  One bad pfn rejects the whole call
        before any task is sent.

        Examples
        --------
        >>> flags = ShardedPageFlags(1 << 32, client=client)   # doctest: +SKIP
        >>> flags.set_many([3, 1 << 31, 3])                    # doctest: +SKIP
        >>> flags.test_many([1 << 31, 4, 3]).tolist()          # doctest: +SKIP
        [True, False, True]
        """
        order, pieces, pfns = self._split(pfns)
        for index, lo, hi in pieces:
            self._write(index, "set_many", self._local(pfns, order, index, lo, hi))

    def clear_many(self, pfns: ArrayLike) -> None:
        """Clear every page in ``pfns``; absent shards stay absent."""
        order, pieces, pfns = self._split(pfns)
        for index, lo, hi in pieces:
            if self._futures[index] is not None:
                self._write(index, "clear_many", self._local(pfns, order, index, lo, hi))

    def test_many(self, pfns: ArrayLike) -> np.ndarray:
        """Whether each page of ``pfns`` is set, as a bool array in the caller's order."""
        pfns, shape = check_pfn_array_shaped(pfns, self.npages)
        order, pieces, pfns = self._split(pfns)
        out = np.zeros(pfns.size, dtype=bool)
        asked = [(lo, hi, self._submit(_shard_tasks.call, self._futures[index], "test_many",
                                       self._local(pfns, order, index, lo, hi)))
                 for index, lo, hi in pieces if self._futures[index] is not None]
        for (lo, hi, _), result in zip(asked, self._gather([f for _, _, f in asked]), strict=True):
            out[order[lo:hi]] = result
        return out.reshape(shape)

    # --- searches and iteration ------------------------------------------------------
    def find_next_set(self, start: int = 0) -> int:
        """The lowest set pfn ``>= start``, or -1.

        Every present shard from ``start`` on searches at once (one round trip); the
        first hit in shard order wins.

        Examples
        --------
        >>> flags = ShardedPageFlags(1 << 32, client=client)   # doctest: +SKIP
        >>> flags.set_many([5, 3 << 30])                       # doctest: +SKIP
        >>> flags.find_next_set(6), flags.find_next_clear(5)   # doctest: +SKIP
        (3221225472, 6)
        """
        start = check_position("start", start, self.npages)
        asked = [(index, self._submit(_shard_tasks.call, self._futures[index],
                                      "find_next_set", lo))
                 for index, lo, _ in self._pieces(start, self.npages)
                 if self._futures[index] is not None]
        for (index, _), hit in zip(asked, self._gather([f for _, f in asked]), strict=True):
            if hit >= 0:
                return index * self._shard_pages + int(hit)
        return -1

    def find_next_clear(self, start: int = 0) -> int:
        """The lowest clear pfn ``>= start``, or -1."""
        start = check_position("start", start, self.npages)
        asked = []
        for index, lo, _ in self._pieces(start, self.npages):
            if self._futures[index] is None:  # an absent shard is clear from lo on
                asked.append((index, lo))
                break
            asked.append((index, self._submit(_shard_tasks.call, self._futures[index],
                                              "find_next_clear", lo)))
        futures = [f for _, f in asked if not isinstance(f, int)]
        found = iter(self._gather(futures))
        for index, f in asked:
            hit = f if isinstance(f, int) else next(found)
            if hit >= 0:
                return index * self._shard_pages + hit
        return -1

    def iter_arrays(self, start: int = 0, stop: int | None = None,
                    max_len: int = 1 << 20) -> Iterator[np.ndarray]:
        """Yield the set pfns of ``[start, stop)`` as sorted ``int64`` arrays of at most
        ``max_len`` pfns; a block never spans two shards.  Arguments are checked now.

        Examples
        --------
        >>> flags = ShardedPageFlags(1 << 32, client=client)   # doctest: +SKIP
        >>> flags.set_range(0, 5)                              # doctest: +SKIP
        >>> [a.tolist() for a in flags.iter_arrays(max_len=2)]  # doctest: +SKIP
        [[0, 1], [2, 3], [4]]
        """
        start, stop = check_range(start, stop, self.npages)
        return self._iter_arrays(start, stop, check_at_least("max_len", max_len, 1))

    def _iter_arrays(self, start: int, stop: int, max_len: int) -> Iterator[np.ndarray]:
        for index, lo, hi in self._pieces(start, stop):
            base = index * self._shard_pages
            while lo < hi and self._futures[index] is not None:
                block = self._client.submit(_shard_tasks.first_block, self._futures[index],
                                            lo, hi, max_len, pure=False).result()
                if not block.size:
                    break
                lo = int(block[-1]) + 1
                yield block + base

    def to_array(self, start: int = 0, stop: int | None = None, *,
                 out: np.ndarray | None = None) -> np.ndarray:
        """The set pfns of ``[start, stop)``, sorted, as ``int64`` (into ``out``, as
        :meth:`PageFlags.to_array`, once the shards' parts are gathered)."""
        start, stop = check_range(start, stop, self.npages)
        if out is not None:  # checked before the shards are asked anything
            check_out_array(out, 0)
        asked = [(index, self._submit(_shard_tasks.call, self._futures[index], "to_array",
                                      lo, hi))
                 for index, lo, hi in self._pieces(start, stop)
                 if self._futures[index] is not None]
        parts = [a + index * self._shard_pages
                 for (index, _), a in zip(asked, self._gather([f for _, f in asked]), strict=True)]
        if out is None:
            return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        into = check_out_array(out, sum(part.size for part in parts))
        if parts:
            np.concatenate(parts, out=into)
        return into

    def map_shards(self, fn: Any, *args: Any) -> dict[int, Any]:
        """``fn(shard_flags, *args)`` on each present shard, on the workers, as
        ``{shard: result}``; ``fn`` must be picklable and must not change the map."""
        asked = [(i, self._submit(fn, f, *args)) for i, f in enumerate(self._futures)
                 if f is not None]
        return dict(zip([i for i, _ in asked], self._gather([f for _, f in asked]), strict=True))

    # --- hotplug ---------------------------------------------------------------------
    def add_sections(self, nrs: ArrayLike) -> None:
        """Set every page of sections (chunks) ``nrs``: memory added to a present map.

        Examples
        --------
        >>> present = ShardedPageFlags(Geometry(46), client=client)  # doctest: +SKIP
        >>> present.add_sections([0, 1, 9000]); present.remove_sections([1])  # doctest: +SKIP
        >>> present.count() == 2 << 15                               # doctest: +SKIP
        True
        """
        self._sections(nrs, True)

    def remove_sections(self, nrs: ArrayLike) -> None:
        """Clear every page of sections ``nrs``: memory removed from a present map."""
        self._sections(nrs, False)

    def _sections(self, nrs: ArrayLike, add: bool) -> None:
        g = self._geometry
        starts = check_sections(nrs, g.nchunks) << g.chunk_shift
        self._write_ranges(starts, np.minimum(starts + g.pages_per_chunk, g.npages), add)

    def _write_ranges(self, starts: np.ndarray, stops: np.ndarray, add: bool) -> None:
        """Set (``add``) or clear checked ranges: one task per shard they meet."""
        size = self._shard_pages
        for index in range(self._nshards):
            if not add and self._futures[index] is None:
                continue
            base = index * size
            lo = np.clip(starts, base, base + size) - base
            hi = np.clip(stops, base, base + size) - base
            mine = hi > lo
            if mine.any():
                self._futures[index] = self._submit(
                    _shard_tasks.write_ranges, self._futures[index],
                    self.shard_geometry(index), lo[mine], hi[mine], add)

    @classmethod
    def from_ranges(cls, starts: ArrayLike, stops: ArrayLike, geometry: Geometry | int,
                    shard_pages: int | None = None, client: Any = None) -> Self:
        """A sharded map with the pages of every ``[starts[i], stops[i])`` set.

        Same contract as :meth:`PageFlags.from_ranges`; each shard is built by one
        task from the ranges that meet it.

        Examples
        --------
        >>> from pageflags import ShardedPageFlags
        >>> flags = ShardedPageFlags.from_ranges([0], [1 << 20], 1 << 30,
        ...                                      client=client)  # doctest: +SKIP
        >>> flags.count()                                        # doctest: +SKIP
        1048576
        """
        new = cls(geometry, shard_pages, client)
        new._write_ranges(*check_ranges(starts, stops, new.npages), True)
        return new

    def wait(self) -> Self:
        """Block until every shard's pending writes are done; raise the first one's error.

        Nothing is fetched: the shards stay on the workers.
        """
        futures = [f for f in self._futures if f is not None]
        distributed_module().wait(futures)
        for future in futures:
            if future.status == "error":
                future.result()  # raises the task's exception here
        return self

    # --- algebra ---------------------------------------------------------------------
    def _peer(self, other: object) -> ShardedPageFlags:
        if not isinstance(other, ShardedPageFlags):
            raise TypeError(f"cannot combine ShardedPageFlags with {type(other).__name__}")
        if other.geometry != self.geometry or other.shard_pages != self.shard_pages:
            raise ValueError("maps are not sharded alike: "
                             f"{self.geometry}/{self.shard_pages} vs "
                             f"{other.geometry}/{other.shard_pages}")
        return other

    def _combined(self, other: object, op: Op) -> ShardedPageFlags:
        """A new map ``self op other``."""
        result = ShardedPageFlags.__new__(ShardedPageFlags)
        result.__dict__.update(self.__dict__, _futures=self._combined_shards(other, op))
        return result

    def _combined_in_place(self, other: object, op: Op) -> Self:
        """``self op= other``."""
        self._futures = self._combined_shards(other, op)
        return self

    def _combined_shards(self, other: object, op: Op) -> list[Any]:
        """The shard futures of ``self op other``: absent operands need no task, and
        futures never change, so a result shard may share an operand's."""
        other = self._peer(other)
        out: list[Any] = []
        for a, b in zip(self._futures, other._futures, strict=True):
            if a is None or b is None:
                # and: absent; or, xor: the present one; andnot: a.
                out.append(None if op is Op.AND else a if b is None else
                           None if op is Op.ANDNOT else b)
            else:
                out.append(self._submit(_shard_tasks.combine, a, b, op))
        return out

    def __and__(self, other: ShardedPageFlags) -> ShardedPageFlags:
        """Pages set in both (maps sharded alike: same geometry and shard_pages)."""
        return self._combined(other, Op.AND)

    def __or__(self, other: ShardedPageFlags) -> ShardedPageFlags:
        """Pages set in either."""
        return self._combined(other, Op.OR)

    def __xor__(self, other: ShardedPageFlags) -> ShardedPageFlags:
        """Pages set in exactly one."""
        return self._combined(other, Op.XOR)

    def __sub__(self, other: ShardedPageFlags) -> ShardedPageFlags:
        """Pages set in ``self`` and not in ``other``."""
        return self._combined(other, Op.ANDNOT)

    def __iand__(self, other: ShardedPageFlags) -> Self:
        return self._combined_in_place(other, Op.AND)

    def __ior__(self, other: ShardedPageFlags) -> Self:
        return self._combined_in_place(other, Op.OR)

    def __ixor__(self, other: ShardedPageFlags) -> Self:
        return self._combined_in_place(other, Op.XOR)

    def __isub__(self, other: ShardedPageFlags) -> Self:
        return self._combined_in_place(other, Op.ANDNOT)

    def count_and(self, other: ShardedPageFlags) -> int:
        """``(self & other).count()`` without building it."""
        other = self._peer(other)
        asked = [self._submit(_shard_tasks.count_and, a, b)
                 for a, b in zip(self._futures, other._futures, strict=True)
                 if a is not None and b is not None]
        return int(sum(self._gather(asked)))

    def count_or(self, other: ShardedPageFlags) -> int:
        """``(self | other).count()`` without building it."""
        return self.count() + other.count() - self.count_and(other)

    def count_xor(self, other: ShardedPageFlags) -> int:
        """``(self ^ other).count()`` without building it."""
        return self.count() + other.count() - 2 * self.count_and(other)

    def count_andnot(self, other: ShardedPageFlags) -> int:
        """``(self - other).count()`` without building it."""
        return self.count() - self.count_and(other)

    # --- what it holds ---------------------------------------------------------------
    def stats(self) -> ShardedStats:
        """Per-shard :meth:`PageFlags.stats` and their total.

        Returns
        -------
        ShardedStats
            A dict (:class:`~pageflags.interface.ShardedStats`).  ``shards``: one
            dict per shard, None for an absent one; ``total``: the sums of ``none``
            (absent shards' chunks included), ``full``, ``allocated``,
            ``chunk_bytes``, ``table_bytes``, ``nbytes`` and ``count``, with
            ``npages``, ``nchunks``, ``flat_bytes`` of the whole space and
            ``nshards``/``present`` shard counts.

        Examples
        --------
        >>> flags = ShardedPageFlags(Geometry(46), client=client)  # doctest: +SKIP
        >>> flags.set_range(0, 1 << 31)                            # doctest: +SKIP
        >>> s = flags.stats(); s["total"]["full"], s["total"]["present"]  # doctest: +SKIP
        (65536, 2)
        """
        per: dict[int, PageFlagsStats] = self.map_shards(_shard_tasks.call, "stats")
        g = self._geometry

        def summed(key: _Summed) -> int:
            return sum(s[key] for s in per.values())

        absent = sum(self.shard_geometry(i).nchunks for i in range(self._nshards)
                     if i not in per)
        total: ShardedTotals = {
            "none": summed("none") + absent, "full": summed("full"),
            "allocated": summed("allocated"), "chunk_bytes": summed("chunk_bytes"),
            "table_bytes": summed("table_bytes"), "nbytes": summed("nbytes"),
            "count": summed("count"), "npages": g.npages, "nchunks": g.nchunks,
            "flat_bytes": g.flat_bytes, "nshards": self._nshards, "present": len(per)}
        return {"shards": [per.get(i) for i in range(self._nshards)], "total": total}

    def __repr__(self) -> str:
        present = sum(f is not None for f in self._futures)
        return (f"ShardedPageFlags({self._geometry}, shard_pages={self._shard_pages}, "
                f"{present}/{self._nshards} shards present)")

    # --- one machine <-> the cluster -------------------------------------------------
    def to_local(self) -> PageFlags:
        """The whole map as one local :class:`PageFlags`.

        Raises
        ------
        MemoryError
            Before fetching anything, when the map (its table, and its chunks three
            times over while they are gathered and assembled) exceeds the memory
            available here.

        Examples
        --------
        >>> flags = ShardedPageFlags(1 << 32, client=client)   # doctest: +SKIP
        >>> flags.set_many([1, 1 << 31])                       # doctest: +SKIP
        >>> flags.to_local().to_array().tolist()               # doctest: +SKIP
        [1, 2147483648]
        """
        g = self._geometry
        chunk_bytes = self.stats()["total"]["chunk_bytes"]
        table_bytes = g.nchunks * 21  # object pointer, address, count, occupied bit
        ensure_fits(table_bytes + 3 * chunk_bytes, "to_local() of this sharded map")
        per = self.map_shards(_shard_tasks.state)
        firsts = [(i * self._shard_pages) >> g.chunk_shift for i in per]
        return _shard_tasks.join(g, firsts, list(per.values()))

    @classmethod
    def from_local(cls, flags: PageFlags, client: Any = None,
                   shard_pages: int | None = None) -> Self:
        """A sharded copy of a local map; its shards are scattered to the workers.

        Examples
        --------
        >>> from pageflags import PageFlags, ShardedPageFlags
        >>> local = PageFlags(1 << 20); local.set_range(5, 70_000)
        >>> sharded = ShardedPageFlags.from_local(local, client)   # doctest: +SKIP
        >>> sharded.count(), sharded.to_local() == local           # doctest: +SKIP
        (69995, True)
        """
        if not isinstance(flags, PageFlags):
            raise TypeError(f"flags must be a PageFlags, got {type(flags).__name__}")
        new = cls(flags.geometry, shard_pages, client)
        shift = new.geometry.chunk_shift
        for index in range(new.nshards):
            start, stop = new.shard_bounds(index)
            part = _shard_tasks.split(flags, start >> shift, -(-stop >> shift),
                                      new.shard_geometry(index))
            if part is not None:
                new._futures[index] = new._client.scatter(part, hash=False)
        return new

    def save(self, folder: StrPath) -> None:
        """Write one file per present shard (written by the workers, so ``folder`` must be
        reachable from them at the same path) and ``manifest.json``, last.

        A new save writes new shard files next to the old ones, replaces the manifest
        atomically and only then removes the old files: a crash at any point leaves
        the folder loadable as the old save or the new one (:mod:`pageflags._manifest`).

        Examples
        --------
        >>> flags.save("maps/dirty")                                # doctest: +SKIP
        >>> ShardedPageFlags.load("maps/dirty", client).count() == flags.count()  # doctest: +SKIP
        True
        """
        folder = Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        gen = _manifest.generation(folder) + 1
        names: list[str | None] = [None] * self._nshards
        asked = []
        for index, future in enumerate(self._futures):
            if future is not None:
                names[index] = name = _manifest.shard_name(index, gen)
                asked.append(self._submit(_shard_tasks.save, future, str(folder / name)))
        self._gather(asked)
        g = self._geometry
        _manifest.write(folder, {
            "geometry": {"phys_addr_bits": g.phys_addr_bits, "page_shift": g.page_shift,
                         "chunk_shift": g.chunk_shift, "npages": g.npages},
            "shard_pages": self._shard_pages, "generation": gen, "shards": names,
            "count": self.count()})
        _manifest.remove_stale(folder, {n for n in names if n is not None})

    @classmethod
    def load(cls, folder: StrPath, client: Any = None) -> Self:
        """Read a folder written by :meth:`save`; the workers read the shard files.

        Raises
        ------
        pageflags.FormatError
            A bad manifest, a bad shard file, or shards whose count disagrees with it.
        """
        folder = Path(folder).resolve()
        manifest = _manifest.read(folder)
        new = cls(manifest["geometry"], manifest["shard_pages"], client)
        if len(manifest["shards"]) != new.nshards:
            raise FormatError(str(folder / _manifest.NAME), "shards",
                              f"{len(manifest['shards'])} shards, expected {new.nshards}")
        for index, name in enumerate(manifest["shards"]):
            if name is not None:
                new._futures[index] = new._submit(_shard_tasks.load, str(folder / name),
                                                  new.shard_geometry(index))
        count = new.count()  # reads every shard: a bad file raises here, not later
        if count != manifest["count"]:
            raise FormatError(str(folder / _manifest.NAME), "count",
                              f"shards hold {count} pages, manifest says {manifest['count']}")
        return new
