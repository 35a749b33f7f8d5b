"""PageMap: the public API every page-flag map shares, with its argument checks.

Subclasses (:class:`~pageflags.PageFlags`, :class:`~pageflags.FlatPageFlags`) store
bits their own way and implement the underscored methods, which may assume checked
arguments: an in-range Python int pfn, a range with ``0 <= start < stop <= npages``,
or a non-empty flat ``int64`` array of in-range pfns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._args import check_pfn, check_pfn_array, check_range
from .geometry import Geometry

__all__ = ["PageMap"]


class PageMap:
    """One bit per page over the pages of a :class:`~pageflags.Geometry`.

    Not thread-safe for writers: guard a map shared between threads with a lock.
    Readers of a map that no thread writes may run at once.
    """

    __slots__ = ("_geometry",)
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, geometry: Geometry) -> None:
        self._geometry = geometry

    @property
    def geometry(self) -> Geometry:
        """The map's :class:`~pageflags.Geometry`."""
        return self._geometry

    @property
    def npages(self) -> int:
        """Pages in the map (valid pfns are ``[0, npages)``)."""
        return self._geometry.npages

    # --- single pages --------------------------------------------------------------
    def set(self, pfn: int) -> None:
        """Set page ``pfn``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20)
        >>> flags.set(4096); flags.test(4096), 4096 in flags
        (True, True)
        """
        self._set_one(check_pfn(pfn, self.npages))

    def clear(self, pfn: int) -> None:
        """Clear page ``pfn``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set(7); flags.clear(7); flags.test(7)
        False
        """
        self._clear_one(check_pfn(pfn, self.npages))

    def test(self, pfn: int) -> bool:
        """Whether page ``pfn`` is set.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> PageFlags(1 << 20).test(0)
        False
        """
        return self._test(check_pfn(pfn, self.npages))

    def __contains__(self, pfn: object) -> bool:
        return self.test(pfn)  # type: ignore[arg-type]

    def _set_one(self, pfn: int) -> None:
        self._set_range(pfn, pfn + 1)

    def _clear_one(self, pfn: int) -> None:
        self._clear_range(pfn, pfn + 1)

    # --- ranges --------------------------------------------------------------------
    def set_range(self, start: int, stop: int) -> None:
        """Set pages ``[start, stop)``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(100, 200); flags.count()
        100
        """
        start, stop = check_range(start, stop, self.npages)
        if start < stop:
            self._set_range(start, stop)

    def clear_range(self, start: int, stop: int) -> None:
        """Clear pages ``[start, stop)``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(0, 1000)
        >>> flags.clear_range(10, 1000); flags.count()
        10
        """
        start, stop = check_range(start, stop, self.npages)
        if start < stop:
            self._clear_range(start, stop)

    def count(self, start: int = 0, stop: int | None = None) -> int:
        """Pages set in ``[start, stop)`` (the whole map by default).

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(0, 64)
        >>> flags.count(), flags.count(32, 100)
        (64, 32)
        """
        start, stop = check_range(start, stop, self.npages)
        return self._count(start, stop) if start < stop else 0

    def any(self, start: int = 0, stop: int | None = None) -> bool:
        """Whether any page in ``[start, stop)`` is set (False for an empty range).

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set(5); flags.any(), flags.any(6)
        (True, False)
        """
        start, stop = check_range(start, stop, self.npages)
        return self._any(start, stop) if start < stop else False

    def all(self, start: int = 0, stop: int | None = None) -> bool:
        """Whether every page in ``[start, stop)`` is set (True for an empty range).

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(0, 10); flags.all(0, 10)
        True
        """
        start, stop = check_range(start, stop, self.npages)
        return self._count(start, stop) == stop - start if start < stop else True

    # --- arrays of pfns ------------------------------------------------------------
    def set_many(self, pfns: ArrayLike) -> None:
        """Set every page in ``pfns`` (any integer dtype, any order, duplicates allowed).

        One pfn out of range rejects the whole call before any bit changes.

        Examples
        --------
        >>> import numpy as np
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_many(np.array([3, 1, 3])); flags.count()
        2
        """
        pfns = check_pfn_array(pfns, self.npages)
        if pfns.size:
            self._set_many(pfns)

    def clear_many(self, pfns: ArrayLike) -> None:
        """Clear every page in ``pfns``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(0, 4); flags.clear_many([0, 2])
        >>> flags.count()
        2
        """
        pfns = check_pfn_array(pfns, self.npages)
        if pfns.size:
            self._clear_many(pfns)

    def test_many(self, pfns: ArrayLike) -> np.ndarray:
        """A bool array, shaped like ``pfns``: whether each page is set.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set(2); flags.test_many([1, 2])
        array([False,  True])
        """
        shape = np.shape(pfns)
        flat = check_pfn_array(pfns, self.npages)
        out = np.empty(flat.size, dtype=bool)
        if flat.size:
            self._test_many(flat, out)
        return out.reshape(shape)

    # --- whole map -----------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PageMap):
            return NotImplemented
        if other.geometry != self.geometry:
            return False
        if self.count() != other.count():
            return False
        return self._equal(other)

    def __repr__(self) -> str:
        g = self._geometry
        return (f"{type(self).__name__}({g.phys_addr_bits}-bit, npages={g.npages}, "
                f"count={self.count()}, nbytes={self.nbytes})")

    def __copy__(self) -> PageMap:
        return self.copy()

    def __deepcopy__(self, memo: dict) -> PageMap:
        return self.copy()

    # --- to implement ------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        raise NotImplementedError

    def copy(self) -> PageMap:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def validate(self) -> None:
        raise NotImplementedError

    def optimize(self) -> int:
        raise NotImplementedError

    def _set_range(self, start: int, stop: int) -> None:
        raise NotImplementedError

    def _clear_range(self, start: int, stop: int) -> None:
        raise NotImplementedError

    def _count(self, start: int, stop: int) -> int:
        raise NotImplementedError

    def _any(self, start: int, stop: int) -> bool:
        raise NotImplementedError

    def _test(self, pfn: int) -> bool:
        raise NotImplementedError

    def _set_many(self, pfns: np.ndarray) -> None:
        raise NotImplementedError

    def _clear_many(self, pfns: np.ndarray) -> None:
        raise NotImplementedError

    def _test_many(self, pfns: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def _equal(self, other: PageMap) -> bool:
        raise NotImplementedError

