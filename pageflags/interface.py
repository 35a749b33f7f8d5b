"""The interface every page map shares, declared: :class:`PageMapLike`, and the
shapes of what each map type's ``stats()`` returns.

:class:`~pageflags.PageFlags`, :class:`~pageflags.FlatPageFlags` and
:class:`~pageflags.PreallocatedPageFlags` (through their base
:class:`~pageflags.PageMap`) and :class:`~pageflags.ShardedPageFlags` all have these
methods, with these signatures and these meanings; code written against
``PageMapLike`` runs on any of them.  What only a local map has (single pages,
``runs``, ``rank``/``select``, words, files) is :class:`~pageflags.PageMap`'s.

The protocol is ``runtime_checkable``: ``isinstance(m, PageMapLike)`` checks that the
members exist (not their signatures; mypy checks those, see the end of this module).

Examples
--------
>>> from pageflags import PageFlags, PageMapLike
>>> def dirty_pages(flags: PageMapLike, start: int, stop: int) -> int:
...     return flags.count(start, stop)
>>> flags = PageFlags(1 << 20); flags.set_range(10, 20)
>>> isinstance(flags, PageMapLike), dirty_pages(flags, 0, 15)
(True, 5)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from .geometry import Geometry

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["FlatStats", "MapStats", "PageFlagsStats", "PageMapLike", "PreallocatedStats",
           "ShardedStats", "ShardedTotals"]


# --- stats() -----------------------------------------------------------------------
class MapStats(TypedDict):
    """The keys of every local map's ``stats()``."""

    nbytes: int
    """Bytes the map holds."""
    flat_bytes: int
    """Bytes a flat bitmap of the same space takes."""
    count: int
    """Pages set."""
    npages: int
    """Pages in the map."""


class FlatStats(MapStats):
    """:meth:`FlatPageFlags.stats <pageflags.FlatPageFlags.stats>`: the common keys
    (``nbytes`` is ``flat_bytes``)."""


class PageFlagsStats(MapStats):
    """:meth:`PageFlags.stats <pageflags.PageFlags.stats>`: the common keys and the
    table's entry kinds and memory."""

    none: int
    """Entries of kind ``None`` (all clear)."""
    full: int
    """Entries of kind ``FULL`` (all set)."""
    allocated: int
    """Entries holding a private chunk."""
    chunk_bytes: int
    """Memory of the private chunks."""
    table_bytes: int
    """Memory of the object array and its shadows."""
    nchunks: int
    """Entries in the table."""


class PreallocatedStats(PageFlagsStats):
    """:meth:`PreallocatedPageFlags.stats <pageflags.PreallocatedPageFlags.stats>`:
    PageFlags' keys and the pinning."""

    alloc: Literal["present", "all"]
    """The mode the map was made with."""
    pinned: int
    """Sections that keep their chunk."""


class ShardedTotals(PageFlagsStats):
    """The ``total`` of :meth:`ShardedPageFlags.stats
    <pageflags.ShardedPageFlags.stats>`: PageFlags' keys summed over the shards (an
    absent shard's entries count as ``none``; ``npages``, ``nchunks`` and
    ``flat_bytes`` are the whole space's) and the shard counts."""

    nshards: int
    """Shards, present or absent."""
    present: int
    """Shards present (written at least once)."""


class ShardedStats(TypedDict):
    """:meth:`ShardedPageFlags.stats <pageflags.ShardedPageFlags.stats>`."""

    shards: list[PageFlagsStats | None]
    """Each shard's stats, None for an absent shard."""
    total: ShardedTotals
    """Their sums."""


# --- the protocol ------------------------------------------------------------------
class Geometric:
    """``geometry`` and ``npages`` of a map that keeps its geometry in ``_geometry``
    (a base of :class:`~pageflags.PageMap` and :class:`~pageflags.ShardedPageFlags`)."""

    __slots__ = ()
    _geometry: Geometry

    @property
    def geometry(self) -> Geometry:
        """The map's :class:`~pageflags.Geometry` (of the whole space, if sharded)."""
        return self._geometry

    @property
    def npages(self) -> int:
        """Pages in the map (valid pfns are ``[0, npages)``)."""
        return self._geometry.npages




@runtime_checkable
class PageMapLike(Protocol):
    """One bit per page of a :class:`~pageflags.Geometry`: what every map type offers.

    Ranges are half-open ``[start, stop)`` of pfns; ``stop=None`` means ``npages``.
    Binary algebra and the ``count_*`` methods take a map of the same type and
    geometry (a sharded map: sharded alike).
    """

    @property
    def geometry(self) -> Geometry:
        """The map's geometry."""
        ...

    @property
    def npages(self) -> int:
        """Pages in the map (valid pfns are ``[0, npages)``)."""
        ...

    def set_range(self, start: int, stop: int) -> None:
        """Set pages ``[start, stop)``."""
        ...

    def clear_range(self, start: int, stop: int) -> None:
        """Clear pages ``[start, stop)``."""
        ...

    def count(self, start: int = 0, stop: int | None = None) -> int:
        """Pages set in ``[start, stop)``."""
        ...

    def any(self, start: int = 0, stop: int | None = None) -> bool:
        """Whether a page in ``[start, stop)`` is set."""
        ...

    def all(self, start: int = 0, stop: int | None = None) -> bool:
        """Whether every page in ``[start, stop)`` is set."""
        ...

    def set_many(self, pfns: ArrayLike) -> None:
        """Set every page in ``pfns``."""
        ...

    def clear_many(self, pfns: ArrayLike) -> None:
        """Clear every page in ``pfns``."""
        ...

    def test_many(self, pfns: ArrayLike) -> np.ndarray:
        """A bool array shaped like ``pfns``: whether each page is set."""
        ...

    def find_next_set(self, start: int = 0) -> int:
        """The lowest set pfn ``>= start``, or -1."""
        ...

    def find_next_clear(self, start: int = 0) -> int:
        """The lowest clear pfn ``>= start``, or -1."""
        ...

    def to_array(self, start: int = 0, stop: int | None = None, *,
                 out: np.ndarray | None = None) -> np.ndarray:
        """The set pfns of ``[start, stop)``, sorted, as ``int64`` (into ``out``)."""
        ...

    def iter_arrays(self, start: int = 0, stop: int | None = None,
                    max_len: int = 1 << 20) -> Iterator[np.ndarray]:
        """The set pfns of ``[start, stop)`` in sorted arrays of at most ``max_len``."""
        ...

    @classmethod
    def from_ranges(cls, starts: ArrayLike, stops: ArrayLike,
                    geometry: Geometry | int) -> Self:
        """A map with the pages of every ``[starts[i], stops[i])`` set."""
        ...

    def count_and(self, other: Self) -> int:
        """``(self & other).count()`` without building it."""
        ...

    def count_or(self, other: Self) -> int:
        """``(self | other).count()`` without building it."""
        ...

    def count_xor(self, other: Self) -> int:
        """``(self ^ other).count()`` without building it."""
        ...

    def count_andnot(self, other: Self) -> int:
        """``(self - other).count()`` without building it."""
        ...

    def __and__(self, other: Self) -> PageMapLike:
        """Pages set in both."""
        ...

    def __or__(self, other: Self) -> PageMapLike:
        """Pages set in either."""
        ...

    def __xor__(self, other: Self) -> PageMapLike:
        """Pages set in exactly one."""
        ...

    def __sub__(self, other: Self) -> PageMapLike:
        """Pages set in ``self`` and not in ``other``."""
        ...

    def __iand__(self, other: Self) -> Self:
        """``self &= other``."""
        ...

    def __ior__(self, other: Self) -> Self:
        """``self |= other``."""
        ...

    def __ixor__(self, other: Self) -> Self:
        """``self ^= other``."""
        ...

    def __isub__(self, other: Self) -> Self:
        """``self -= other``."""
        ...

    def stats(self) -> Mapping[str, object]:
        """What the map holds and costs (the keys differ by map type)."""
        ...


if TYPE_CHECKING:
    # Not run: mypy (CI runs it on the package) checks here that each map type
    # satisfies the protocol, signatures included.
    from .bitmap import PageFlags
    from .flat import FlatPageFlags
    from .preallocated import PreallocatedPageFlags
    from .sharded import ShardedPageFlags

    def _satisfied(lazy: PageFlags, flat: FlatPageFlags, pinned: PreallocatedPageFlags,
                   sharded: ShardedPageFlags) -> list[PageMapLike]:
        combined: PageMapLike = lazy & lazy
        return [lazy, flat, pinned, sharded, combined, flat ^ flat, sharded - sharded]
