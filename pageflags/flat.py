"""FlatPageFlags: the same API over one flat ``uint64`` bitmap.

It is the reference model the tests compare PageFlags with, and the baseline the
benchmarks measure it against, so it is as fast as a flat bitmap can be: Numba
kernels over one contiguous word array, no cached counts, no sparsity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels
from .base import PageMap
from .geometry import DEFAULT_GEOMETRY, Geometry, as_geometry

__all__ = ["FlatPageFlags"]


_ALL_ONES = (1 << 64) - 1


class FlatPageFlags(PageMap):
    """One bit per page in one flat array of ``uint64`` words.

    Parameters
    ----------
    geometry_or_npages : Geometry or int, default Geometry()
        The geometry or a page count; the bitmap takes ``geometry.flat_bytes``.

    Examples
    --------
    >>> from pageflags import FlatPageFlags
    >>> flat = FlatPageFlags(1 << 20); flat.set_range(0, 100); flat.count()
    100
    >>> flat.words.nbytes
    131072
    """

    __slots__ = ("words",)

    def __init__(self, geometry_or_npages: Geometry | int = DEFAULT_GEOMETRY) -> None:
        geometry = as_geometry(geometry_or_npages)
        super().__init__(geometry)
        #: The bitmap: bit ``p % 64`` of ``words[p // 64]`` is page ``p``.
        self.words = np.zeros(geometry.nwords, dtype=np.uint64)

    @property
    def nbytes(self) -> int:
        """Bytes of the bitmap."""
        return self.words.nbytes

    def stats(self) -> dict[str, Any]:
        """``nbytes``, ``flat_bytes`` (the same), ``count``, ``npages``."""
        return {"nbytes": self.nbytes, "flat_bytes": self.nbytes, "count": self.count(),
                "npages": self.npages}

    def optimize(self) -> int:
        """A flat bitmap has nothing to free; returns 0."""
        return 0

    def copy(self) -> FlatPageFlags:
        """An independent copy."""
        new = FlatPageFlags(self._geometry)
        new.words[:] = self.words
        return new

    def validate(self) -> None:
        """Check that the word array fits the geometry and no bit past ``npages`` is set."""
        g = self._geometry
        if self.words.shape != (g.nwords,) or self.words.dtype != np.uint64:
            raise AssertionError("FlatPageFlags invariant broken: words shape or dtype")
        tail = _kernels.flat_count_range(self.words, g.npages, g.nwords * 64)
        if tail:
            raise AssertionError(f"FlatPageFlags invariant broken: {tail} bits past npages")

    # Single pages read and write one word as a Python int (``item``): NumPy scalar
    # arithmetic, or a kernel call, costs ten times the work.
    def _test(self, pfn: int) -> bool:
        return bool(self.words.item(pfn >> 6) >> (pfn & 63) & 1)

    def _set_one(self, pfn: int) -> None:
        words, i = self.words, pfn >> 6
        words[i] = words.item(i) | 1 << (pfn & 63)

    def _clear_one(self, pfn: int) -> None:
        words, i = self.words, pfn >> 6
        words[i] = words.item(i) & ~(1 << (pfn & 63)) & _ALL_ONES

    def _set_range(self, start: int, stop: int) -> None:
        _kernels.flat_set_range(self.words, start, stop)

    def _clear_range(self, start: int, stop: int) -> None:
        _kernels.flat_clear_range(self.words, start, stop)

    def _count(self, start: int, stop: int) -> int:
        return int(_kernels.flat_count_range(self.words, start, stop))

    def _any(self, start: int, stop: int) -> bool:
        return bool(_kernels.flat_any_range(self.words, start, stop))

    def _set_many(self, pfns: np.ndarray) -> None:
        _kernels.flat_set_many(self.words, pfns)

    def _clear_many(self, pfns: np.ndarray) -> None:
        _kernels.flat_clear_many(self.words, pfns)

    def _test_many(self, pfns: np.ndarray, out: np.ndarray) -> None:
        _kernels.flat_test_many(self.words, pfns, out)

    def _equal(self, other: PageMap) -> bool:
        if isinstance(other, FlatPageFlags):
            return bool(np.array_equal(self.words, other.words))
        return other._equal(self)

    # --- scans, rank/select, algebra, conversions (issue 3) ------------------------
    def _find_next_set(self, start: int) -> int:
        return int(_kernels.flat_find_next(self.words, start, self.npages, _kernels.NULL))

    def _find_next_clear(self, start: int) -> int:
        return int(_kernels.flat_find_next(self.words, start, self.npages, _kernels.ALL_ONES))

    def _find_prev_set(self, stop: int) -> int:
        return int(_kernels.flat_find_prev_set(self.words, stop))

    def _collect(self, start: int, stop: int, out: np.ndarray) -> tuple[int, int]:
        written, resume = _kernels.flat_collect(self.words, start, stop, out)
        return int(written), int(resume)

    def _runs(self, start: int, stop: int, starts: np.ndarray, stops: np.ndarray,
              fill: bool) -> int:
        return int(_kernels.flat_runs(self.words, start, stop, starts, stops, fill))

    def _select(self, k: int) -> int:
        return int(_kernels.flat_select(self.words, k))

    def _count_and(self, other: PageMap, first_only: bool) -> int:
        assert isinstance(other, FlatPageFlags)
        return int(_kernels.flat_count_and(self.words, other.words, first_only))

    def _combine(self, op: int, other: PageMap) -> FlatPageFlags:
        assert isinstance(other, FlatPageFlags)
        new = FlatPageFlags(self._geometry)
        _kernels.flat_combine(op, self.words, other.words, new.words)
        return new

    def _combine_in_place(self, op: int, other: PageMap) -> None:
        assert isinstance(other, FlatPageFlags)
        _kernels.flat_combine(op, self.words, other.words, self.words)

    def _invert(self) -> FlatPageFlags:
        new = FlatPageFlags(self._geometry)
        np.invert(self.words, out=new.words)
        _kernels.flat_clear_range(new.words, self.npages, new.words.size * 64)
        return new

    def _set_ranges(self, starts: np.ndarray, stops: np.ndarray) -> None:
        _kernels.flat_set_ranges(self.words, starts, stops)

    def _get_words(self, start: int, stop: int) -> np.ndarray:
        return self.words[start >> 6:-(-stop // 64)].copy()

    def _put_words(self, start: int, words: np.ndarray) -> None:
        self.words[start >> 6:(start >> 6) + words.size] = words
