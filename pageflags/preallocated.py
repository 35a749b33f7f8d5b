"""PreallocatedPageFlags: a PageFlags whose pinned sections always own a chunk.

The seed's flag between map space for present pages only and map space for every
possible page: :meth:`MemoryMap.new_flags <pageflags.MemoryMap.new_flags>` with
``alloc="present"`` pins the sections holding present memory, ``alloc="all"`` every
section (a ``pfn_valid()`` map for hotplug).  A pinned section's chunk is allocated
up front; writes there never allocate, and a chunk that empties or fills is
rewritten in place rather than freed or swapped for ``FULL``.  Other sections behave
as in a plain :class:`~pageflags.PageFlags`.

``copy()`` gives a plain :class:`~pageflags.PageFlags` with the same chunks, none
pinned, and pickling gives a lazy PageFlags with the same bits: pinning is a
property of a live map, not of its contents.  The builders called on this class
(``from_array``, ``from_ranges``, ``from_bool``, ``from_words``, ``load``,
``from_roaring64_bytes``) build a PreallocatedPageFlags of ``alloc="present"`` that
pins the sections holding a set page, as :meth:`MemoryMap.to_flags
<pageflags.MemoryMap.to_flags>` pins the sections of the present ranges it sets;
:meth:`~PreallocatedPageFlags.pin` and :meth:`~PreallocatedPageFlags.unpin` change
that afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from . import _kernels
from ._args import check_sections, read_only
from ._system import ensure_fits
from .base import writes
from .bitmap import PageFlags, _entry_numbers
from .geometry import DEFAULT_GEOMETRY, Geometry
from .interface import PreallocatedStats

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["PreallocatedPageFlags"]


class PreallocatedPageFlags(PageFlags):
    """A :class:`~pageflags.PageFlags` whose pinned sections always own a chunk.

    Made by :meth:`~pageflags.MemoryMap.new_flags` with ``alloc="present"`` or ``"all"``.  A
    pinned section's chunk is allocated up front; writes there never allocate, and a
    chunk that empties or becomes all ones is rewritten in place instead of being
    freed or replaced by ``FULL``.  Other sections behave lazily.

    The builders inherited from PageFlags (``from_array``, ``from_ranges``,
    ``from_bool``, ``from_words``, ``load``, ``from_roaring64_bytes``) return a
    PreallocatedPageFlags of ``alloc="present"`` pinning the sections that hold a set
    page; ``copy()`` and the results of ``&``, ``|``, ``^``, ``-`` and ``~`` are plain
    PageFlags.

    Parameters
    ----------
    geometry_or_npages : Geometry or int
        The map's geometry.
    sections : array_like of int, optional
        The sections to pin (``alloc="present"``); every section when omitted
        (``alloc="all"``).

    Raises
    ------
    MemoryError
        Before allocating anything, when the chunks would not fit the memory this
        machine has free.

    Examples
    --------
    >>> from pageflags import Geometry
    >>> flags = PreallocatedPageFlags(Geometry(phys_addr_bits=40), sections=[0, 5])
    >>> flags.alloc, flags.stats()["allocated"]
    ('present', 2)
    >>> flags.set_range(0, 1 << 15); flags.clear_range(0, 1 << 15)  # fill, then empty
    >>> flags.stats()["allocated"], flags.count()                  # still pinned
    (2, 0)
    >>> built = PreallocatedPageFlags.from_array([5, 3 << 15], Geometry(phys_addr_bits=40))
    >>> built.alloc, built.pinned.nonzero()[0].tolist()
    ('present', [0, 3])
    """

    __slots__ = ("_alloc", "_pinned")

    def __init__(self, geometry_or_npages: Geometry | int = DEFAULT_GEOMETRY,
                 sections: ArrayLike | None = None) -> None:
        super().__init__(geometry_or_npages)
        self._chunk_per_entry()  # so each section unpinned and freed frees its memory
        n = self._geometry.nchunks
        self._pinned = np.zeros(n, dtype=bool)
        self._alloc: Literal["present", "all"] = "all" if sections is None else "present"
        self.pin(np.arange(n, dtype=np.int64) if sections is None else sections)

    @property
    def alloc(self) -> Literal["present", "all"]:
        """``"present"`` or ``"all"``: the mode the map was made with."""
        return self._alloc

    @property
    def pinned(self) -> np.ndarray:
        """Read-only bool array: which sections keep their chunk."""
        return read_only(self._pinned)

    @writes
    def pin(self, sections: ArrayLike) -> None:
        """Give ``sections`` chunks of their own now and keep them from then on.

        Bits already set there stay set.  Raises ``MemoryError`` (changing nothing)
        when the new chunks would not fit this machine's free memory.
        """
        nrs = np.unique(check_sections(sections, self._geometry.nchunks))
        lacking = nrs[~self._private_at(nrs)]
        ensure_fits(lacking.size * self._geometry.chunk_bytes,
                    f"pinning {lacking.size} sections")
        self._own_entries(lacking)
        self._pinned[nrs] = True

    @writes
    def unpin(self, sections: ArrayLike) -> None:
        """Let ``sections`` behave lazily again (their chunks go when they empty)."""
        self._pinned[check_sections(sections, self._geometry.nchunks)] = False

    def _kept(self, where: Any) -> tuple[np.ndarray, np.ndarray]:
        """Split entries ``where`` (an index as :meth:`PageFlags._store` takes: an int,
        a slice, a bool mask or entry numbers) into pinned private chunks and the rest."""
        nrs = _entry_numbers(where, self._geometry.nchunks)
        # Only a private chunk can be rewritten in place; checking the entry too
        # means a broken pin can never make a kernel write through NULL or FULL.
        keep = self._pinned[nrs] & self._private_at(nrs)
        return nrs[keep], nrs[~keep]

    def _free(self, where: Any) -> None:
        self._rewrite(where, 0, _kernels.NULL, super()._free)

    def _fill(self, where: Any) -> None:
        self._rewrite(where, self._geometry.pages_per_chunk, _kernels.ALL_ONES,
                      super()._fill)

    def _rewrite(self, where: Any, count: int, word: np.uint64, lazily: Any) -> None:
        """Set pinned chunks among ``where`` to ``word`` in place; the rest ``lazily``."""
        kept, rest = self._kept(where)
        # Chunks already holding ``word`` are skipped, which keeps optimize() on an
        # "all" map from rewriting every chunk.
        self._rewrite_chunks(kept, word, count)
        lazily(rest)

    # The builders: contents first, into a map that pins nothing, then a pin of every
    # section they set a page in (one ensure_fits for all of them).
    @classmethod
    def _empty(cls, geometry: Geometry | int) -> Self:
        return cls(geometry, sections=())

    def _built(self) -> Self:
        self.pin(np.flatnonzero(self._nonempty_mask()))
        return self

    @writes
    def optimize(self) -> int:
        """As :meth:`PageFlags.optimize`, leaving pinned chunks where they are (the
        memory given back is measured, so rewritten pinned chunks count nothing)."""
        return super().optimize()

    def stats(self) -> PreallocatedStats:
        """:meth:`PageFlags.stats` plus ``alloc`` (the mode) and ``pinned`` (sections):
        a dict (:class:`~pageflags.interface.PreallocatedStats`)."""
        return {**super().stats(), "alloc": self._alloc,
                "pinned": int(np.count_nonzero(self._pinned))}

    def validate(self) -> None:
        """:meth:`PageFlags.validate`, and every pinned section owns a chunk."""
        super().validate()
        lost = np.flatnonzero(self._pinned & ~self._allocated_mask())
        if lost.size:
            raise AssertionError("PreallocatedPageFlags invariant broken: pinned "
                                 f"sections without a chunk: {lost[:8]}")
