"""FlatPageFlags: the same API over one flat ``uint64`` bitmap.

It is the reference model the tests compare PageFlags with, and the baseline the
benchmarks measure it against, so it is as fast as a flat bitmap can be: Numba
kernels over one contiguous word array, no cached counts, no sparsity.  Single calls
get what PageFlags' get (see ``base.py``): fused checks and guard, and pages and
spans of up to ``SPAN_WORDS`` words written as Python ints through a word view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from . import _kernels
from ._args import check_pfn, check_range
from ._words import SPAN_WORDS, write_words
from .base import PageMap, named
from .geometry import DEFAULT_GEOMETRY, Geometry, as_geometry
from .interface import FlatStats
from .ops import Op

__all__ = ["FlatPageFlags"]



def _page_write(value: bool, doc: str | None) -> Callable[[FlatPageFlags, int], None]:
    """FlatPageFlags' ``set`` (``value``) or ``clear``, fused (base.py)."""
    def write(self: FlatPageFlags, pfn: int) -> None:
        if type(pfn) is not int or not 0 <= pfn < self._npages:
            pfn = check_pfn(pfn, self._npages)
        view, i, bit = self._view, pfn >> 6, 1 << (pfn & 63)  # the view is never replaced
        try:
            self._token.pop()
        except IndexError:
            return self._as_writer(self._write_page, pfn, value)
        try:
            view[i] = view[i] | bit if value else view[i] & ~bit
        finally:
            self._token.append(True)
        return None

    return named(write, "FlatPageFlags", "set" if value else "clear", doc)


def _range_write(value: bool, doc: str | None) -> Callable[[FlatPageFlags, int, int], None]:
    """FlatPageFlags' ``set_range`` (``value``) or ``clear_range``, fused (base.py)."""
    def write(self: FlatPageFlags, start: int, stop: int) -> None:
        if type(start) is not int or type(stop) is not int or not 0 <= start < stop <= self._npages:
            start, stop = check_range(start, stop, self._npages)
            if start == stop:
                return None
        short = ((stop - 1) >> 6) - (start >> 6) < SPAN_WORDS  # of SPAN_WORDS words at most
        try:
            self._token.pop()
        except IndexError:
            return self._as_writer(self._write_range, start, stop, value)
        try:
            if short:
                write_words(self._view, start, stop, value)
            else:  # value as an int: Numba's dispatch types a bool ~50 ns slower
                _kernels.write_bits(self._words, start, stop, 1 if value else 0)
        finally:
            self._token.append(True)
        return None

    return named(write, "FlatPageFlags", "set_range" if value else "clear_range", doc)



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

    __slots__ = ("_view", "_words")

    _FUSED: ClassVar[dict[str, tuple[str, ...]]] = {
        "set": ("_set_one", "_write_page"), "clear": ("_clear_one", "_write_page"),
        "test": ("_test",), "__contains__": ("_test",), "count": ("_count",),
        "set_range": ("_set_range", "_write_range"),
        "clear_range": ("_clear_range", "_write_range")}
    _TRANSIENT = (*PageMap._TRANSIENT, "_view")

    def __init__(self, geometry_or_npages: Geometry | int = DEFAULT_GEOMETRY) -> None:
        geometry = as_geometry(geometry_or_npages)
        self._words = np.zeros(geometry.nwords, dtype=np.uint64)
        super().__init__(geometry)

    def _init_transient(self) -> None:
        super()._init_transient()
        # The words as native uint64 Python ints, for single calls.
        self._view = self._words.data.cast("B").cast("Q")

    @property
    def words(self) -> np.ndarray:
        """The bitmap: bit ``p % 64`` of ``words[p // 64]`` is page ``p``.

        Writable in place (the map is these words); the attribute itself cannot be
        rebound.
        """
        return self._words

    @property
    def nbytes(self) -> int:
        """Bytes of the bitmap."""
        return self._words.nbytes

    def stats(self) -> FlatStats:
        """``nbytes``, ``flat_bytes`` (the same), ``count``, ``npages``: a dict
        (:class:`~pageflags.interface.FlatStats`)."""
        return {"nbytes": self.nbytes, "flat_bytes": self.nbytes, "count": self.count(),
                "npages": self.npages}

    def optimize(self) -> int:
        """A flat bitmap has nothing to free; returns 0."""
        return 0

    def copy(self) -> FlatPageFlags:
        """An independent copy."""
        new = FlatPageFlags(self._geometry)
        new._words[:] = self._words
        return new

    def validate(self) -> None:
        """Check that the word array fits the geometry and no bit past ``npages`` is set."""
        g = self._geometry
        if self._words.shape != (g.nwords,) or self._words.dtype != np.uint64:
            raise AssertionError("FlatPageFlags invariant broken: words shape or dtype")
        tail = _kernels.count_bits(self._words, g.npages, g.nwords * 64)
        if tail:
            raise AssertionError(f"FlatPageFlags invariant broken: {tail} bits past npages")

    # Single pages and short spans read and write words as Python ints through the
    # word view: NumPy scalar arithmetic, or a kernel call, costs ten times the work.
    # The public forms are fused (base.py; made by _page_write and _range_write).
    def test(self, pfn: int) -> bool:
        if type(pfn) is not int or not 0 <= pfn < self._npages:
            pfn = check_pfn(pfn, self._npages)
        return self._view[pfn >> 6] >> (pfn & 63) & 1 == 1

    test.__doc__ = PageMap.test.__doc__
    __contains__ = test

    def _test(self, pfn: int) -> bool:
        return FlatPageFlags.test(self, pfn)

    set = _page_write(True, PageMap.set.__doc__)

    clear = _page_write(False, PageMap.clear.__doc__)

    def _set_one(self, pfn: int) -> None:
        self._write_page(pfn, True)

    def _clear_one(self, pfn: int) -> None:
        self._write_page(pfn, False)

    def _write_page(self, pfn: int, value: bool) -> None:
        write_words(self._view, pfn, pfn + 1, value)

    set_range = _range_write(True, PageMap.set_range.__doc__)

    clear_range = _range_write(False, PageMap.clear_range.__doc__)

    def _set_range(self, start: int, stop: int) -> None:
        self._write_range(start, stop, value=True)

    def _clear_range(self, start: int, stop: int) -> None:
        self._write_range(start, stop, value=False)

    def _write_range(self, start: int, stop: int, value: bool) -> None:
        if ((stop - 1) >> 6) - (start >> 6) < SPAN_WORDS:
            write_words(self._view, start, stop, value)
        else:
            _kernels.write_bits(self._words, start, stop, 1 if value else 0)

    def count(self, start: int = 0, stop: int | None = None) -> int:
        if type(start) is not int or type(stop) is not int or not 0 <= start < stop <= self._npages:
            start, stop = check_range(start, stop, self._npages)
            if start == stop:
                return 0
        return int(_kernels.count_bits(self._words, start, stop))

    count.__doc__ = PageMap.count.__doc__

    def _count(self, start: int, stop: int) -> int:
        return int(_kernels.count_bits(self._words, start, stop))

    def _any(self, start: int, stop: int) -> bool:
        return bool(_kernels.any_bits(self._words, start, stop))

    def _set_many(self, pfns: np.ndarray) -> None:
        _kernels.flat_write_many(self._words, pfns, True)

    def _clear_many(self, pfns: np.ndarray) -> None:
        _kernels.flat_write_many(self._words, pfns, False)

    def _test_many(self, pfns: np.ndarray, out: np.ndarray) -> None:
        _kernels.flat_test_many(self._words, pfns, out)

    def _equal(self, other: PageMap) -> bool:
        if isinstance(other, FlatPageFlags):
            return bool(np.array_equal(self._words, other._words))
        return other._equal(self)

    # --- scans, rank/select, algebra, conversions ------------------------------------
    def _find_next_set(self, start: int) -> int:
        return int(_kernels.next_bit(self._words, start, self.npages, _kernels.NULL))

    def _find_next_clear(self, start: int) -> int:
        return int(_kernels.next_bit(self._words, start, self.npages, _kernels.ALL_ONES))

    def _find_prev_set(self, stop: int) -> int:
        return int(_kernels.prev_set_bit(self._words, 0, stop))

    def _collect(self, start: int, stop: int, out: np.ndarray) -> tuple[int, int]:
        written, resume = _kernels.collect_set(self._words, start, stop, 0, out, 0)
        return int(written), int(resume)

    def _runs(self, start: int, stop: int, starts: np.ndarray, stops: np.ndarray,
              fill: bool) -> int:
        return int(_kernels.flat_runs(self._words, start, stop, starts, stops, fill))

    def _select(self, k: int) -> int:
        return int(_kernels.select_bit(self._words, k))

    # --- algebra ---------------------------------------------------------------------
    if TYPE_CHECKING:
        # What the operators PageMap defines return for this class: the base kind.
        def __and__(self, other: PageMap) -> FlatPageFlags: ...
        def __or__(self, other: PageMap) -> FlatPageFlags: ...
        def __xor__(self, other: PageMap) -> FlatPageFlags: ...
        def __sub__(self, other: PageMap) -> FlatPageFlags: ...
        def __invert__(self) -> FlatPageFlags: ...

    def _count_and(self, other: PageMap, first_only: bool) -> int:
        assert isinstance(other, FlatPageFlags)
        return int(_kernels.flat_count_and(self._words, other._words, first_only))

    def _combine(self, op: Op, other: PageMap) -> FlatPageFlags:
        assert isinstance(other, FlatPageFlags)
        new = FlatPageFlags(self._geometry)
        _kernels.combine_words(int(op), self._words, other._words, new._words)
        return new

    def _combine_in_place(self, op: Op, other: PageMap) -> None:
        assert isinstance(other, FlatPageFlags)
        _kernels.combine_words(int(op), self._words, other._words, self._words)

    def _invert(self) -> FlatPageFlags:
        new = FlatPageFlags(self._geometry)
        np.invert(self._words, out=new._words)
        _kernels.write_bits(new._words, self.npages, new._words.size * 64, False)
        return new

    def _set_ranges(self, starts: np.ndarray, stops: np.ndarray) -> None:
        _kernels.flat_set_ranges(self._words, starts, stops)

    def _get_words(self, start: int, stop: int) -> np.ndarray:
        words: np.ndarray = self._words[start >> 6:-(-stop // 64)].copy()
        return words

    def _put_words(self, start: int, words: np.ndarray) -> None:
        self._words[start >> 6:(start >> 6) + words.size] = words
