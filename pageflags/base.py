"""PageMap: the public API every page-flag map shares, with its argument checks.

:class:`PageMap` is an abstract base class.  Subclasses
(:class:`~pageflags.PageFlags`, :class:`~pageflags.FlatPageFlags`) store bits their
own way and implement its abstract methods: ``nbytes``, ``copy``, ``stats``,
``validate``, ``optimize`` and the underscored primitives, each of which may assume
the checked arguments its docstring names (an in-range Python int pfn, a range with
``0 <= start < stop <= npages``, a non-empty flat ``int64`` array of in-range pfns).
A class that leaves one out cannot be instantiated (``TypeError`` names it).

Single calls in loops
---------------------
``set``, ``clear``, ``test`` and the range writes run millions of times in Python
loops, where each Python frame, NumPy call or Numba dispatch costs more than the
work.  A subclass may therefore *fuse* one of them: define the public method itself,
with the int check inline (``type(pfn) is not int or not 0 <= pfn < self._npages``,
anything else going through the full check of :mod:`pageflags._args`, so both accept
and refuse exactly the same), the writer guard inline (take the token, and when it is
out hand the primitive to :meth:`PageMap._as_writer`) and the work, in one frame.  It
lists in ``_FUSED`` the methods each fused method does the work of instead of calling;
a subclass of it that overrides any of those gets this module's generic method back
(check, guard, then the primitive), so an override is never bypassed.
"""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from ._args import (
    check_at_least,
    check_index,
    check_out_array,
    check_pfn,
    check_pfn_array,
    check_pfn_array_shaped,
    check_position,
    check_range,
    check_ranges,
    check_words,
    plain_array,
)
from .geometry import Geometry, as_geometry
from .interface import Geometric, MapStats
from .ops import Op

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["PageMap"]

_Method = TypeVar("_Method", bound=Callable[..., Any])
_P = ParamSpec("_P")
_R = TypeVar("_R")
_get_ident = threading.get_ident


def concurrent_write_error(flags: PageMap) -> RuntimeError:
    return RuntimeError(
        f"another thread is writing this {type(flags).__name__}: two writers would lose "
        "bits, so the second is refused; serialise writers with a lock (readers alone "
        "may run at once)")


# The writer guard.  A map holds one token in a list while no thread writes it; a
# writer takes it with ``list.pop`` and gives it back with ``append``, each one call
# the GIL makes atomic (``lock.acquire(False)`` costs five times as much, most of it
# parsing its argument).  A writer that may reach code writing the same map (a bulk
# method, a ``writing`` block) also names itself in ``_owner``, so that code nests;
# the fused single calls call nothing that writes through the guard and skip that.
@contextmanager
def writing(flags: PageMap) -> Iterator[None]:
    """Hold ``flags`` as its only writer for a block (what :func:`writes` does).

    The thread already holding it may nest; any other thread gets ``RuntimeError``.
    """
    token = flags._token
    try:
        token.pop()
    except IndexError:
        flags._as_owner()
        yield
        return
    flags._owner = _get_ident()
    try:
        yield
    finally:
        flags._owner = None
        token.append(True)


def writes(method: _Method) -> _Method:
    """Run ``method`` as the map's only writer; ``RuntimeError`` if another thread is.

    The same thread may nest writes, and nothing waits: a second writer is refused
    at once, before it changes anything.
    """
    @functools.wraps(method)
    def exclusive(self: PageMap, *args: Any, **kwargs: Any) -> Any:
        return self._as_writer(method, self, *args, **kwargs)
    return exclusive  # type: ignore[return-value]


def named(function: _Method, owner: str, name: str, doc: str | None) -> _Method:
    """``function`` as method ``name`` of class ``owner``, documented by ``doc``."""
    function.__name__ = name
    function.__qualname__ = f"{owner}.{name}"
    function.__doc__ = doc
    return function


def _range_write(primitive: str, doc: str) -> Callable[[PageMap, int, int], None]:
    """A generic public range write: the range check, then the subclass's
    ``primitive`` as the map's writer, for a non-empty range."""
    def write(self: PageMap, start: int, stop: int) -> None:
        start, stop = check_range(start, stop, self._npages)
        if start < stop:
            self._as_writer(getattr(self, primitive), start, stop)

    return named(write, "PageMap", primitive[1:], doc)


def _single_page_write(primitive: str, doc: str) -> Callable[[PageMap, int], None]:
    """A generic public single-page write: the pfn check, then the subclass's
    ``primitive`` as the map's writer."""
    def write(self: PageMap, pfn: int) -> None:
        self._as_writer(getattr(self, primitive), check_pfn(pfn, self._npages))

    return named(write, "PageMap", primitive[1:-4], doc)


class PageMap(Geometric, ABC):
    """One bit per page over the pages of a :class:`~pageflags.Geometry`.

    One writer at a time: a write while another thread is writing the same map
    raises ``RuntimeError`` before it changes anything (serialise writer threads
    with a lock of your own).  Readers of a map that no thread writes may run at
    once; a read while another thread writes may see the write half done.
    """

    __slots__ = ("_geometry", "_npages", "_owner", "_token")
    __hash__ = None  # type: ignore[assignment]  # mutable

    #: Public method -> the methods its fused form in this class does the work of
    #: (see the module docstring); PageMap's own methods are all generic.
    _FUSED: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Slots that are not pickled, made again by :meth:`_init_transient`.
    _TRANSIENT: ClassVar[tuple[str, ...]] = ("_owner", "_token")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        for public, inlined in cls._FUSED.items():
            if public not in own and any(name in own for name in inlined):
                setattr(cls, public, getattr(PageMap, public))

    def __init__(self, geometry: Geometry) -> None:
        self._geometry = geometry
        self._npages = geometry.npages  # read on every single-page call
        self._init_transient()

    def _init_transient(self) -> None:
        self._token = [True]  # the writer guard's token (see writing)
        self._owner: int | None = None

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        # Slots by name, less the guard (and views of the map's own memory).
        names = {name for cls in type(self).__mro__ for name in getattr(cls, "__slots__", ())}
        names.difference_update(self._TRANSIENT)
        return None, {name: getattr(self, name) for name in names if hasattr(self, name)}

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        for name, value in state[1].items():
            object.__setattr__(self, name, value)
        self._init_transient()

    # --- the writer guard ------------------------------------------------------------
    def _as_owner(self) -> None:
        """Called when the token is out: allowed (a nested write) only to the thread
        that took it; ``RuntimeError`` for any other."""
        if self._owner != _get_ident():
            raise concurrent_write_error(self)

    def _as_writer(self, call: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """``call(*args, **kwargs)`` as the map's only writer (what :func:`writes`
        does; the fused single calls come here when the token is out)."""
        token = self._token
        try:
            token.pop()
        except IndexError:
            self._as_owner()
            return call(*args, **kwargs)
        self._owner = _get_ident()
        try:
            return call(*args, **kwargs)
        finally:
            self._owner = None
            token.append(True)

    # --- single pages --------------------------------------------------------------
    set = _single_page_write("_set_one", """Set page ``pfn``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20)
        >>> flags.set(4096); flags.test(4096), 4096 in flags
        (True, True)
        """)

    clear = _single_page_write("_clear_one", """Clear page ``pfn``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set(7); flags.clear(7); flags.test(7)
        False
        """)

    def test(self, pfn: int) -> bool:
        """Whether page ``pfn`` is set.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> PageFlags(1 << 20).test(0)
        False
        """
        if type(pfn) is not int or not 0 <= pfn < self._npages:
            pfn = check_pfn(pfn, self._npages)
        return self._test(pfn)

    __contains__ = test

    def _set_one(self, pfn: int) -> None:
        self._set_range(pfn, pfn + 1)

    def _clear_one(self, pfn: int) -> None:
        self._clear_range(pfn, pfn + 1)

    # --- ranges --------------------------------------------------------------------
    set_range = _range_write("_set_range", """Set pages ``[start, stop)``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(100, 200); flags.count()
        100
        """)

    clear_range = _range_write("_clear_range", """Clear pages ``[start, stop)``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(0, 1000)
        >>> flags.clear_range(10, 1000); flags.count()
        10
        """)

    def count(self, start: int = 0, stop: int | None = None) -> int:
        """Pages set in ``[start, stop)`` (the whole map by default).

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(0, 64)
        >>> flags.count(), flags.count(32, 100)
        (64, 32)
        """
        start, stop = check_range(start, stop, self._npages)
        return self._count(start, stop) if start < stop else 0

    def any(self, start: int = 0, stop: int | None = None) -> bool:
        """Whether any page in ``[start, stop)`` is set (False for an empty range).

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set(5); flags.any(), flags.any(6)
        (True, False)
        """
        start, stop = check_range(start, stop, self._npages)
        return self._any(start, stop) if start < stop else False

    def all(self, start: int = 0, stop: int | None = None) -> bool:
        """Whether every page in ``[start, stop)`` is set (True for an empty range).

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(0, 10); flags.all(0, 10)
        True
        """
        start, stop = check_range(start, stop, self._npages)
        return self._count(start, stop) == stop - start if start < stop else True

    # --- arrays of pfns ------------------------------------------------------------
    @writes
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
        pfns = check_pfn_array(pfns, self._npages)
        if pfns.size:
            self._set_many(pfns)

    @writes
    def clear_many(self, pfns: ArrayLike) -> None:
        """Clear every page in ``pfns``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(0, 4); flags.clear_many([0, 2])
        >>> flags.count()
        2
        """
        pfns = check_pfn_array(pfns, self._npages)
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
        flat, shape = check_pfn_array_shaped(pfns, self._npages)
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

    def __deepcopy__(self, memo: dict[int, object]) -> PageMap:
        return self.copy()

    # --- search --------------------------------------------------------------------
    def find_next_set(self, start: int = 0) -> int:
        """The lowest set pfn ``>= start``, or -1.

        ``start`` may be ``npages`` (nothing is found); None entries of a PageFlags
        map are skipped without reading chunk data.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_many([10, 500_000])
        >>> flags.find_next_set(0), flags.find_next_set(11), flags.find_next_set(500_001)
        (10, 500000, -1)
        """
        if type(start) is not int or not 0 <= start <= self._npages:
            start = check_position("start", start, self._npages)
        return self._find_next_set(start) if start < self._npages else -1

    def find_next_clear(self, start: int = 0) -> int:
        """The lowest clear pfn ``>= start``, or -1.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(0, 100_000)
        >>> flags.find_next_clear(0), flags.find_next_clear(100_001)
        (100000, 100001)
        """
        start = check_position("start", start, self._npages)
        return self._find_next_clear(start) if start < self._npages else -1

    def find_prev_set(self, start: int) -> int:
        """The highest set pfn ``<= start`` (start is inclusive), or -1.

        This is the kernel's ``find_last_bit(map, start + 1)``.  ``start`` may be
        ``npages``, which searches the whole map.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_many([10, 20])
        >>> flags.find_prev_set(20), flags.find_prev_set(19), flags.find_prev_set(9)
        (20, 10, -1)
        """
        start = check_position("start", start, self._npages)
        return self._find_prev_set(min(start + 1, self._npages))

    def min(self) -> int:
        """The lowest set pfn, or -1 when none is set.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.min()
        -1
        >>> flags.set_many([7, 99]); flags.min(), flags.max()
        (7, 99)
        """
        return self._find_next_set(0)

    def max(self) -> int:
        """The highest set pfn, or -1 when none is set.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set(flags.npages - 1); flags.max()
        1048575
        """
        return self._find_prev_set(self._npages)

    # --- iteration -----------------------------------------------------------------
    def to_array(self, start: int = 0, stop: int | None = None, *,
                 out: np.ndarray | None = None) -> np.ndarray:
        """The set pfns of ``[start, stop)``, sorted, as ``int64``.

        With ``out`` (a writable 1-D contiguous ``int64`` array with room for them
        all) the pfns go into it, and the result is its first ``count(start, stop)``
        items, a view.  A scan repeated into one buffer skips the page faults of a
        new result's memory (16.5 Mi pfns: 19.9 ms instead of 31.5 ms in a run of
        ``bench/bench_calls.py`` where the new result's memory came fresh).

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(5, 8); flags.set(70_000)
        >>> flags.to_array(), flags.to_array(6, 100)
        (array([    5,     6,     7, 70000]), array([6, 7]))
        >>> buffer = np.empty(10, dtype=np.int64); flags.to_array(out=buffer).base is buffer
        True
        """
        start, stop = check_range(start, stop, self._npages)
        size = self._count(start, stop) if start < stop else 0
        out = np.empty(size, dtype=np.int64) if out is None else check_out_array(out, size)
        if out.size:
            written, _ = self._collect(start, stop, out)
            assert written == out.size, "cached count and bits disagree"
        return out

    def iter_arrays(self, start: int = 0, stop: int | None = None,
                    max_len: int = 1 << 20) -> Iterator[np.ndarray]:
        """Yield the set pfns of ``[start, stop)`` as sorted ``int64`` arrays of at
        most ``max_len`` pfns, so any number of pages is walked in bounded memory.

        Each step resumes after the last pfn yielded, so it sees the map as it is
        then; arguments are checked when this is called, not on the first step.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(0, 5)
        >>> [a.tolist() for a in flags.iter_arrays(max_len=2)]
        [[0, 1], [2, 3], [4]]
        """
        start, stop = check_range(start, stop, self._npages)
        max_len = check_at_least("max_len", max_len, 1)
        return self._iter_arrays(start, stop, max_len)

    def _iter_arrays(self, start: int, stop: int, max_len: int) -> Iterator[np.ndarray]:
        while start < stop:
            out = np.empty(max_len, dtype=np.int64)
            written, start = self._collect(start, stop, out)
            if written == 0:
                return
            yield out[:written]

    def runs(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Maximal runs of set pages in ``[start, stop)`` as ``(starts, stops)``.

        Runs are half-open and cut at ``start`` and ``stop`` (the kernel's
        ``for_each_set_bitrange``); :meth:`from_ranges` rebuilds the map from them.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_range(3, 6); flags.set(9)
        >>> starts, stops = flags.runs(); starts.tolist(), stops.tolist()
        ([3, 9], [6, 10])
        """
        start, stop = check_range(start, stop, self._npages)
        none = np.empty(0, dtype=np.int64)
        n = self._runs(start, stop, none, none, False) if start < stop else 0
        starts = np.empty(n, dtype=np.int64)
        stops = np.empty(n, dtype=np.int64)
        if n:
            self._runs(start, stop, starts, stops, True)
        return starts, stops

    # --- rank and select -------------------------------------------------------------
    def rank(self, pfn: int) -> int:
        """Pages set in ``[0, pfn)``; ``pfn`` may be ``npages``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_many([1, 5, 9])
        >>> flags.rank(5), flags.rank(6), flags.select(flags.rank(9))
        (1, 2, 9)
        """
        pfn = check_position("pfn", pfn, self._npages)
        return self._count(0, pfn) if pfn else 0

    def select(self, k: int) -> int:
        """The pfn of the ``k``-th set page (0-based); ``IndexError`` unless
        ``0 <= k < count()``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_many([4, 8]); flags.select(1)
        8
        """
        k = check_index("k", k)
        total = self._count(0, self._npages)
        if not 0 <= k < total:
            raise IndexError(f"k {k} outside [0, {total})")
        return self._select(k)

    # --- algebra ---------------------------------------------------------------------
    # ``a op b`` builds a new map of the kind both share (a PreallocatedPageFlags
    # combines as the PageFlags it is); ``a op= b`` changes ``a`` and keeps its type.
    # Both maps must be of one kind (TypeError) and geometry (ValueError).
    @classmethod
    def _kind(cls) -> type:
        """The map type directly below PageMap that ``cls`` is or derives from."""
        return next(k for k in cls.__mro__ if PageMap in k.__bases__)

    def _peer(self, other: object) -> PageMap:
        if not isinstance(other, PageMap) or other._kind() is not self._kind():
            raise TypeError(f"cannot combine {type(self).__name__} with "
                            f"{type(other).__name__}; convert one first")
        if other.geometry != self.geometry:
            raise ValueError(f"geometries differ: {self.geometry} vs {other.geometry}")
        return other

    # ``NotImplemented`` is what the operators calling these return for a non-map;
    # mypy accepts it only in the operators themselves, hence the two ignores.
    def _binary(self, other: object, op: Op) -> PageMap:
        if not isinstance(other, PageMap):
            return NotImplemented  # type: ignore[no-any-return]
        return self._combine(op, self._peer(other))

    def _in_place(self, other: object, op: Op) -> Self:
        if not isinstance(other, PageMap):
            return NotImplemented  # type: ignore[no-any-return]
        self._combine_in_place_exclusive(op, self._peer(other))
        return self

    @writes
    def _combine_in_place_exclusive(self, op: Op, other: PageMap) -> None:
        self._combine_in_place(op, other)

    def __and__(self, other: PageMap) -> PageMap:
        """Pages set in both.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> a = PageFlags(1 << 20); a.set_range(0, 10)
        >>> b = PageFlags(1 << 20); b.set_range(5, 20)
        >>> (a & b).count(), (a | b).count(), (a ^ b).count(), (a - b).count()
        (5, 20, 15, 5)
        """
        return self._binary(other, Op.AND)

    def __or__(self, other: PageMap) -> PageMap:
        """Pages set in either."""
        return self._binary(other, Op.OR)

    def __xor__(self, other: PageMap) -> PageMap:
        """Pages set in exactly one."""
        return self._binary(other, Op.XOR)

    def __sub__(self, other: PageMap) -> PageMap:
        """Pages set in ``self`` and not in ``other`` (and-not)."""
        return self._binary(other, Op.ANDNOT)

    def __iand__(self, other: PageMap) -> Self:
        return self._in_place(other, Op.AND)

    def __ior__(self, other: PageMap) -> Self:
        return self._in_place(other, Op.OR)

    def __ixor__(self, other: PageMap) -> Self:
        return self._in_place(other, Op.XOR)

    def __isub__(self, other: PageMap) -> Self:
        return self._in_place(other, Op.ANDNOT)

    def __invert__(self) -> PageMap:
        """Every page of ``[0, npages)`` not set in ``self``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(100_000); flags.set(3); (~flags).count()
        99999
        """
        return self._invert()

    # --- counts of combinations, without building them ---------------------------------
    def count_and(self, other: PageMap) -> int:
        """``(self & other).count()`` without building the result.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> a = PageFlags(1 << 20); a.set_range(0, 10)
        >>> b = PageFlags(1 << 20); b.set_range(5, 20)
        >>> a.count_and(b), a.count_or(b), a.count_xor(b), a.count_andnot(b)
        (5, 20, 15, 5)
        """
        return self._count_and(self._peer(other), False)

    def count_or(self, other: PageMap) -> int:
        """``(self | other).count()`` without building the result."""
        both = self._count_and(self._peer(other), False)
        return self.count() + other.count() - both

    def count_xor(self, other: PageMap) -> int:
        """``(self ^ other).count()`` without building the result."""
        both = self._count_and(self._peer(other), False)
        return self.count() + other.count() - 2 * both

    def count_andnot(self, other: PageMap) -> int:
        """``(self - other).count()`` without building the result."""
        return self.count() - self._count_and(self._peer(other), False)

    def intersects(self, other: PageMap) -> bool:
        """Whether some page is set in both; stops at the first one found.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> a = PageFlags(1 << 20); a.set(1); b = PageFlags(1 << 20); b.set(2)
        >>> a.intersects(b), a.issubset(a | b)
        (False, True)
        """
        return self._count_and(self._peer(other), True) > 0

    def issubset(self, other: PageMap) -> bool:
        """Whether every page set in ``self`` is set in ``other``."""
        return self._count_and(self._peer(other), False) == self.count()

    # --- conversions -------------------------------------------------------------------
    # The builders (``from_*`` here, ``load`` and ``from_roaring64_bytes`` on PageFlags)
    # return an instance of the class they are called on: they make it empty with
    # ``_empty``, write the contents, and return what ``_built`` makes of it.  A
    # subclass whose constructor needs more than a geometry overrides ``_empty``.
    @classmethod
    def _empty(cls, geometry: Geometry | int) -> Self:
        """An empty map of ``geometry`` for a builder to write its contents into."""
        return cls(as_geometry(geometry))

    def _built(self) -> Self:
        """The map a builder returns once it has written the contents (``self``)."""
        return self

    @classmethod
    def from_array(cls, pfns: ArrayLike, geometry: Geometry | int) -> Self:
        """A map with exactly the pages ``pfns`` set (any order, duplicates allowed).

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> PageFlags.from_array([3, 1, 3], 1 << 20).to_array()
        array([1, 3])
        """
        flags = cls._empty(geometry)
        flags.set_many(pfns)
        return flags._built()

    @classmethod
    def from_ranges(cls, starts: ArrayLike, stops: ArrayLike,
                    geometry: Geometry | int) -> Self:
        """A map with the pages of every ``[starts[i], stops[i])`` set.

        Ranges may overlap, touch or be empty, in any order.  One bad range rejects
        the whole call: out of ``[0, npages]`` is ``IndexError``, a start past its
        stop ``ValueError``, a non-integer dtype ``TypeError``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags.from_ranges([0, 40_000], [10, 100_000], 1 << 20)
        >>> flags.count(), flags.table[2] is flags.FULL
        (60010, True)
        """
        flags = cls._empty(geometry)
        starts, stops = check_ranges(starts, stops, flags.npages)
        if starts.size:
            flags._set_ranges(starts, stops)
        return flags._built()

    @classmethod
    def from_bool(cls, mask: ArrayLike, start: int = 0,
                  geometry: Geometry | int | None = None) -> Self:
        """A map whose pages ``[start, start + len(mask))`` are the 1-D bool ``mask``.

        ``geometry`` defaults to exactly ``start + len(mask)`` pages.

        Examples
        --------
        >>> import numpy as np
        >>> from pageflags import PageFlags
        >>> flags = PageFlags.from_bool(np.array([True, False, True]), 100, 1 << 20)
        >>> flags.to_array(), flags.to_bool(99, 103)
        (array([100, 102]), array([False,  True, False,  True]))
        """
        mask = plain_array("mask", mask)
        if mask.dtype != np.bool_ or mask.ndim != 1:
            raise TypeError(f"mask must be a 1-D bool array, got {mask.dtype} {mask.shape}")
        start = check_index("start", start)
        flags = cls._empty(_default_geometry(geometry, start, mask.size))
        check_range(start, start + mask.size, flags.npages)
        lead = start & 63
        padded = np.zeros(-(-(lead + mask.size) // 64) * 64, dtype=np.uint8)
        padded[lead:lead + mask.size] = mask
        words = np.packbits(padded, bitorder="little").view("<u8").astype(np.uint64)
        if words.size:
            flags._put_words(start - lead, words)
        return flags._built()

    @classmethod
    def from_words(cls, words: ArrayLike, start: int = 0,
                   geometry: Geometry | int | None = None) -> Self:
        """A map whose pages from ``start`` (a multiple of 64) are the bits of ``words``.

        Bit ``i % 64`` of ``words[i // 64]`` is page ``start + i``, as in
        :meth:`to_words`.  ``geometry`` defaults to ``start + 64 * len(words)`` pages.

        Examples
        --------
        >>> import numpy as np
        >>> from pageflags import PageFlags
        >>> PageFlags.from_words(np.array([0b101], dtype=np.uint64), 64, 1 << 20).to_array()
        array([64, 66])
        """
        words = check_words("words", words)
        start = check_index("start", start)
        flags = cls._empty(_default_geometry(geometry, start, 64 * words.size))
        flags.put_words(start, words)
        return flags._built()

    def to_bool(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """A bool array of pages ``[start, stop)``.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set(2); flags.to_bool(0, 4)
        array([False, False,  True, False])
        """
        start, stop = check_range(start, stop, self._npages)
        lo = start & ~63
        hi = min(-(-stop // 64) * 64, self._npages)
        words = self._get_words(lo, hi) if lo < hi else np.empty(0, dtype=np.uint64)
        bits = np.unpackbits(words.astype("<u8").view(np.uint8), bitorder="little")
        return bits[start - lo:stop - lo].astype(bool)

    def to_words(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The packed ``uint64`` words of pages ``[start, stop)``.

        ``start`` must be a multiple of 64 and ``stop`` one too or ``npages``
        (``ValueError`` otherwise); bit ``i % 64`` of word ``i // 64`` is page
        ``start + i``.  Change them with NumPy and :meth:`put_words` them back.

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> flags = PageFlags(1 << 20); flags.set_many([64, 66])
        >>> words = flags.to_words(64, 192); words
        array([5, 0], dtype=uint64)
        >>> words[1] = 1; flags.put_words(64, words); flags.to_array()
        array([ 64,  66, 128])
        """
        start, stop = check_range(start, stop, self._npages)
        self._check_word_window(start, stop)
        return self._get_words(start, stop) if start < stop else np.empty(0, np.uint64)

    @writes
    def put_words(self, start: int, words: ArrayLike) -> None:
        """Overwrite pages ``[start, start + 64 * len(words))`` with the bits of ``words``.

        The inverse of :meth:`to_words`: ``start`` is a multiple of 64, the window
        ends at or before ``npages`` or in its last word, whose bits past ``npages``
        must be clear.  Words of a signed dtype must not be negative (``ValueError``:
        view them as ``uint64`` to mean their bits).  Rejected calls change nothing.
        """
        start = check_position("start", start, self._npages)
        words = check_words("words", words)
        stop = min(start + 64 * words.size, self._npages)
        if start + 64 * words.size - stop >= 64:
            raise IndexError(f"{words.size} words from {start} pass npages {self._npages}")
        self._check_word_window(start, stop)
        if stop - start < 64 * words.size and words[-1] >> np.uint64(stop & 63):
            raise ValueError(f"bits past npages {self._npages} set in the last word")
        if words.size:
            self._put_words(start, words)

    def _check_word_window(self, start: int, stop: int) -> None:
        if start % 64 or (stop % 64 and stop != self._npages):
            raise ValueError(f"window [{start}, {stop}) is not 64-aligned (a stop may "
                             f"also be npages {self._npages})")

    # --- the primitives each map type implements ---------------------------------------
    # The public methods above check their arguments and hold the writer guard, then
    # call these.  A primitive may assume what its docstring says and checks nothing.
    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Bytes of memory the map holds."""

    @abstractmethod
    def copy(self) -> PageMap:
        """An independent map with the same pages set."""

    @abstractmethod
    def stats(self) -> MapStats:
        """What the map holds and costs: at least the keys of :class:`MapStats
        <pageflags.interface.MapStats>`."""

    @abstractmethod
    def validate(self) -> None:
        """Check every invariant of the storage; ``AssertionError`` names the first broken."""

    @abstractmethod
    def optimize(self) -> int:
        """Give back memory the map does not need; returns the bytes freed."""

    @abstractmethod
    def _set_range(self, start: int, stop: int) -> None:
        """Set pages ``[start, stop)``, ``0 <= start < stop <= npages``."""

    @abstractmethod
    def _clear_range(self, start: int, stop: int) -> None:
        """Clear pages ``[start, stop)``, ``0 <= start < stop <= npages``."""

    @abstractmethod
    def _count(self, start: int, stop: int) -> int:
        """Pages set in ``[start, stop)``, ``0 <= start < stop <= npages``."""

    @abstractmethod
    def _any(self, start: int, stop: int) -> bool:
        """Whether a page of ``[start, stop)`` is set, ``0 <= start < stop <= npages``."""

    @abstractmethod
    def _test(self, pfn: int) -> bool:
        """Whether page ``pfn`` (a Python int in ``[0, npages)``) is set."""

    @abstractmethod
    def _set_many(self, pfns: np.ndarray) -> None:
        """Set ``pfns``: a non-empty flat ``int64`` array of in-range pfns, any order,
        duplicates allowed."""

    @abstractmethod
    def _clear_many(self, pfns: np.ndarray) -> None:
        """Clear ``pfns`` (as for :meth:`_set_many`)."""

    @abstractmethod
    def _test_many(self, pfns: np.ndarray, out: np.ndarray) -> None:
        """``out[i] = pfns[i] is set`` for a non-empty flat ``int64`` array of in-range
        pfns and a bool ``out`` of the same size."""

    @abstractmethod
    def _equal(self, other: PageMap) -> bool:
        """Whether ``other`` (same geometry, same count) has the same pages set."""

    @abstractmethod
    def _find_next_set(self, start: int) -> int:
        """The lowest set pfn ``>= start`` (``0 <= start < npages``), or -1."""

    @abstractmethod
    def _find_next_clear(self, start: int) -> int:
        """The lowest clear pfn ``>= start`` (``0 <= start < npages``), or -1."""

    @abstractmethod
    def _find_prev_set(self, stop: int) -> int:
        """The highest set pfn in ``[0, stop)``, or -1 (``stop`` may be 0)."""

    @abstractmethod
    def _collect(self, start: int, stop: int, out: np.ndarray) -> tuple[int, int]:
        """Write the set pfns of ``[start, stop)`` into the ``int64`` array ``out``, in
        order, while it has room: ``(pfns written, the pfn to resume from)``."""

    @abstractmethod
    def _runs(self, start: int, stop: int, starts: np.ndarray, stops: np.ndarray,
              fill: bool) -> int:
        """The number of maximal runs of set pages in ``[start, stop)``, cut at both
        ends; with ``fill``, their bounds go into ``starts`` and ``stops`` (``int64``,
        room for every run)."""

    @abstractmethod
    def _select(self, k: int) -> int:
        """The pfn of the ``k``-th set page, ``0 <= k < count()``."""

    @abstractmethod
    def _combine(self, op: Op, other: PageMap) -> PageMap:
        """A new map ``self op other``; ``other`` is of the same kind and geometry."""

    @abstractmethod
    def _combine_in_place(self, op: Op, other: PageMap) -> None:
        """``self = self op other`` (``other`` as for :meth:`_combine`, maybe ``self``)."""

    @abstractmethod
    def _invert(self) -> PageMap:
        """A new map of the pages of ``[0, npages)`` not set in ``self``."""

    @abstractmethod
    def _count_and(self, other: PageMap, first_only: bool) -> int:
        """Pages set in both (``other`` as for :meth:`_combine`); with ``first_only``,
        any positive number once one is found."""

    @abstractmethod
    def _set_ranges(self, starts: np.ndarray, stops: np.ndarray) -> None:
        """Set every ``[starts[i], stops[i])``: checked ``int64`` arrays of one size,
        ranges possibly empty, overlapping or touching, in any order."""

    @abstractmethod
    def _get_words(self, start: int, stop: int) -> np.ndarray:
        """A new ``uint64`` array of the words of pages ``[start, stop)``; ``start`` is
        64-aligned, ``stop`` aligned or ``npages``, ``start < stop``."""

    @abstractmethod
    def _put_words(self, start: int, words: np.ndarray) -> None:
        """Overwrite pages from 64-aligned ``start`` with the bits of the non-empty
        ``uint64`` array ``words``, which fit the map (bits past ``npages`` clear)."""


def _default_geometry(geometry: Geometry | int | None, start: int, length: int) -> Geometry:
    """The given geometry, or one of exactly ``start + length`` pages."""
    if start < 0:
        raise IndexError(f"start {start} is negative")
    if geometry is None:
        if start + length < 1:
            raise ValueError("give a geometry: no page would be in the map")
        return as_geometry(start + length)
    return as_geometry(geometry)
