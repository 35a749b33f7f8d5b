"""Argument checks shared by every map type (``docs/design.md``, "Contracts").

Each check runs before any kernel, so a rejected call changes nothing.  The
read-only views that properties hand back (:func:`read_only`) live here too.

What counts as an integer is decided in two places only, :func:`is_integer` for
scalars and :func:`int_array` for arrays: Python ints and NumPy integer scalars,
and plain ndarrays (or ``np.memmap``) of a signed or unsigned integer dtype, or
lists and tuples of those.  Refused, with ``TypeError``: bools (which are ints to
Python and to ``np.asarray([True, 3])``), ``timedelta64`` (a NumPy integer subclass)
and ``datetime64``, masked arrays (whose mask ``np.asarray`` would drop), ``np.matrix``
(which stays 2-D whatever is done to it) and other ndarray subclasses whose
indexing or arithmetic differ.
"""

from __future__ import annotations

import reprlib
from numbers import Real
from typing import TypeGuard

import numpy as np

from . import _kernels

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 40

#: ndarray subclasses that are plain arrays with another backing store.
_PLAIN_SUBCLASSES = (np.memmap,)
_UINT64_END = 1 << 64


def _shown(value: object) -> str:
    """``type value`` for a message, cut short for big arrays and strings."""
    return f"{type(value).__name__} {_SHOWN.repr(value)}"


def is_integer(value: object) -> TypeGuard[int | np.integer]:
    """Whether ``value`` is a Python int or NumPy integer scalar, bools and timedelta64 not.

    Examples
    --------
    >>> is_integer(3), is_integer(np.uint8(3)), is_integer(True), is_integer(np.timedelta64(3))
    (True, True, False, False)
    """
    if isinstance(value, int):
        return not isinstance(value, bool)
    return isinstance(value, np.integer) and not isinstance(value, np.timedelta64)


def check_index(name: str, value: object) -> int:
    """``value`` as a Python int; ``TypeError`` naming ``name`` for anything else.

    Examples
    --------
    >>> check_index("k", np.int32(4))
    4
    >>> check_index("k", 4.0)
    Traceback (most recent call last):
    ...
    TypeError: k must be an integer, got float 4.0
    """
    if type(value) is int:
        return value
    if is_integer(value):
        return int(value)
    raise TypeError(f"{name} must be an integer, got {_shown(value)}")


def check_at_least(name: str, value: object, low: int) -> int:
    """An integer ``>= low`` (a length, a count) as a Python int; ``ValueError`` if less."""
    value = check_index(name, value)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_pair(name: str, value: object, low: int) -> tuple[int, int]:
    """``(least, most)``: two integers with ``low <= least <= most``.

    Examples
    --------
    >>> check_pair("burst", (1, 64), 1)
    (1, 64)
    """
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (least, most), got {_shown(value)}")
    least, most = (check_index(name, v) for v in value)
    if not low <= least <= most:
        raise ValueError(f"{name} must satisfy {low} <= least <= most, got {tuple(value)}")
    return least, most


def check_fraction(name: str, value: object) -> float:
    """A real number in ``[0, 1]`` as a float (bools and NaN refused).

    Examples
    --------
    >>> check_fraction("density", 1), check_fraction("density", np.float32(0.5))
    (1.0, 0.5)
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.number)) \
            or isinstance(value, (np.complexfloating, np.timedelta64)):
        raise TypeError(f"{name} must be a number in [0, 1], got {_shown(value)}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def check_pfn(pfn: object, npages: int) -> int:
    """A pfn in [0, npages) as a Python int."""
    if type(pfn) is not int:  # a plain int, the hot path, skips the type checks
        pfn = check_index("pfn", pfn)
    if not 0 <= pfn < npages:
        raise IndexError(f"pfn {pfn} outside [0, {npages})")
    return pfn


def check_range(start: object, stop: object, npages: int) -> tuple[int, int]:
    """A half-open page range; ``stop=None`` means ``npages``."""
    if type(start) is not int:
        start = check_index("start", start)
    if stop is None:
        stop = npages
    elif type(stop) is not int:
        stop = check_index("stop", stop)
    if 0 <= start <= stop <= npages:  # the common case, in one comparison chain
        return start, stop
    for name, value in (("start", start), ("stop", stop)):
        if not 0 <= value <= npages:
            raise IndexError(f"{name} {value} outside [0, {npages}]")
    raise ValueError(f"start {start} > stop {stop}")


def check_position(name: str, value: object, npages: int) -> int:
    """A position in [0, npages] (a start, a stop, a rank bound) as a Python int.

    The fast path keeps per-call overhead of searches low: they are called millions
    of times in loops.
    """
    if type(value) is not int:
        value = check_index(name, value)
    if not 0 <= value <= npages:
        raise IndexError(f"{name} {value} outside [0, {npages}]")
    return value


# --- arrays ----------------------------------------------------------------------------
def plain_array(name: str, values: object) -> np.ndarray:
    """``values`` as a plain ndarray: no copy for an ndarray or ``np.memmap``.

    ``TypeError`` for other ndarray subclasses (a masked array's mask would be
    dropped, a matrix stays 2-D) and for lists or tuples holding bools, bool
    arrays or such subclasses, which ``np.asarray`` would quietly turn into ints.
    """
    if isinstance(values, np.ndarray):
        _refuse_subclass(name, values)
        return values if type(values) is np.ndarray else values.view(np.ndarray)
    if isinstance(values, (list, tuple)):
        _refuse_odd_items(name, values)
    try:
        return np.asarray(values)
    except ValueError as err:  # ragged nested lists
        raise TypeError(f"{name} must be an array of integers: {err}") from None


def _refuse_subclass(name: str, arr: np.ndarray) -> None:
    if type(arr) is np.ndarray or isinstance(arr, _PLAIN_SUBCLASSES):
        return
    hint = ("; pass .compressed() for the unmasked values"
            if isinstance(arr, np.ma.MaskedArray) else "; pass np.asarray(...) if its "
            "values are what you mean")
    raise TypeError(f"{name} must be a plain NumPy array, got {type(arr).__name__}{hint}")


def _refuse_odd_items(name: str, items: list[object] | tuple[object, ...]) -> None:
    """Bools, bool arrays and ndarray subclasses anywhere in nested lists or tuples."""
    kinds = set(map(type, items))
    if kinds <= {int}:  # the common case: one C-level pass, no per-item Python
        return
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"{name} must be integers, not bools: got {item!r} among them")
        if isinstance(item, (list, tuple)):
            _refuse_odd_items(name, item)
        elif isinstance(item, np.ndarray):
            _refuse_subclass(name, item)
            if item.dtype.kind == "b":
                raise TypeError(f"{name} must be integers, not bools: got a bool array "
                                "among them")


def int_array(name: str, values: object) -> np.ndarray:
    """``values`` as a plain ndarray of a signed or unsigned integer dtype.

    No copy when ``values`` already is one.  An empty list becomes ``int64``.  A list
    of ints that no 64-bit dtype holds (past 2**64, or negative beside >= 2**63)
    comes back as an ``object`` array of them, for the caller to reject with its
    own range message.

    Raises
    ------
    TypeError
        Naming ``name``: another dtype (bool, float, timedelta64, datetime64,
        object), an ndarray subclass other than ``np.memmap``, or a list holding bools.

    Examples
    --------
    >>> int_array("pfns", [3, 1]).dtype.kind, int_array("pfns", []).dtype
    ('i', dtype('int64'))
    >>> int_array("pfns", [True, 3])
    Traceback (most recent call last):
    ...
    TypeError: pfns must be integers, not bools: got True among them
    """
    arr = plain_array(name, values)
    kind = arr.dtype.kind
    if kind in "iu":
        return arr
    if arr.size == 0 and kind == "f" and not isinstance(values, np.ndarray):
        return arr.astype(np.int64)  # np.asarray([]) is float64
    if kind in "fO" and isinstance(values, (list, tuple)):
        # Ints that no 64-bit dtype holds together come out as floats or objects.
        wide = np.array(values, dtype=object)
        if all(is_integer(v) for v in wide.flat):
            return wide
    raise TypeError(f"{name} must have an integer dtype, got {arr.dtype}")


def _first_outside(flat: np.ndarray, low: int, high: int) -> int:
    """Index of the first value of ``flat`` (a NumPy or object array) outside
    [low, high), or -1."""
    values = flat.tolist()
    return next((i for i, v in enumerate(values) if not low <= v < high), -1)


def check_pfn_array(pfns: object, npages: int, what: str = "pfn") -> np.ndarray:
    """A flat int64 array of pfns in [0, npages) (no copy when already int64).

    Raises ``TypeError`` for a non-integer dtype and ``IndexError`` naming the first
    pfn out of range and its position; ``what`` names the items in both messages.
    """
    return _checked_pfns(int_array(f"{what}s", pfns), npages, what)


def check_sections(nrs: object, nsections: int) -> np.ndarray:
    """A flat int64 array of section numbers in ``[0, nsections)``.

    Examples
    --------
    >>> check_sections([3, 0], 4).tolist()
    [3, 0]
    """
    return check_pfn_array(nrs, nsections, "section")


def check_pfn_array_shaped(pfns: object, npages: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """:func:`check_pfn_array`, and the shape ``pfns`` had (for results shaped alike)."""
    arr = int_array("pfns", pfns)
    return _checked_pfns(arr, npages, "pfn"), arr.shape


def _checked_pfns(arr: np.ndarray, npages: int, what: str) -> np.ndarray:
    flat = arr.ravel()
    if flat.dtype == object:  # Python ints past 64 bits: some are out of range
        bad = _first_outside(flat, 0, npages)
        raise IndexError(f"{what} {flat[bad]} at index {bad} outside [0, {npages})")
    if flat.dtype == np.uint64:
        checked = flat.view(np.int64)  # values >= 2**63 turn negative: still rejected
    else:
        checked = flat.astype(np.int64, copy=False)
    bad = _kernels.first_out_of_range(checked, npages)
    if bad >= 0:
        raise IndexError(f"{what} {int(flat[bad])} at index {bad} outside [0, {npages})")
    return checked


def check_bound_array(name: str, values: object, npages: int) -> np.ndarray:
    """A flat int64 array of positions in [0, npages] (range starts or stops)."""
    flat = int_array(name, values).ravel()
    if flat.dtype == object:
        bad = _first_outside(flat, 0, npages + 1)
        raise IndexError(f"{name}[{bad}] = {flat[bad]} outside [0, {npages}]")
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) > npages):
        bad = int(np.flatnonzero((flat < 0) | (flat > npages))[0])
        raise IndexError(f"{name}[{bad}] = {int(flat[bad])} outside [0, {npages}]")
    return flat.astype(np.int64, copy=False)


def check_ranges(starts: object, stops: object, npages: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-open ranges as two flat int64 arrays of one size, each start <= its stop.

    Bounds outside ``[0, npages]`` raise ``IndexError``, a start past its stop or sizes
    that differ ``ValueError``, a non-integer dtype ``TypeError``.
    """
    starts = check_bound_array("starts", starts, npages)
    stops = check_bound_array("stops", stops, npages)
    if starts.size != stops.size:
        raise ValueError(f"{starts.size} starts but {stops.size} stops")
    for i in np.flatnonzero(starts > stops)[:1].tolist():
        raise ValueError(f"starts[{i}] = {starts[i]} > stops[{i}] = {stops[i]}")
    return starts, stops


def check_words(name: str, words: object) -> np.ndarray:
    """A 1-D ``uint64`` array of 64-bit words (no copy when it already is one).

    Signed dtypes are accepted for values in ``[0, 2**63)``; a negative word raises
    ``ValueError`` rather than wrapping to 64 set bits (view signed words with
    ``.view(np.uint64)`` to mean their bit patterns).

    Examples
    --------
    >>> check_words("words", [5, 2**64 - 1]).tolist()
    [5, 18446744073709551615]
    >>> check_words("words", np.array([-1], dtype=np.int8))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: words must be >= 0: words[0] is -1 (view signed words as np.uint64 ...
    """
    arr = int_array(name, words)
    if arr.ndim != 1:
        raise TypeError(f"{name} must be a 1-D integer array, got shape {arr.shape}")
    if arr.dtype == object:  # ints past int64 beside small ones: fine if all fit uint64
        bad = _first_outside(arr, 0, _UINT64_END)
        if bad < 0:
            return np.array(arr.tolist(), dtype=np.uint64)
        if arr[bad] < 0:
            raise ValueError(f"{name} must be >= 0: {name}[{bad}] is {arr[bad]}")
        raise ValueError(f"{name}[{bad}] = {arr[bad]} does not fit 64 bits")
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        bad = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"{name} must be >= 0: {name}[{bad}] is {int(arr[bad])} "
                         "(view signed words as np.uint64 to mean their bits)")
    return arr.astype(np.uint64, copy=False)


def check_out_array(out: object, size: int) -> np.ndarray:
    """The first ``size`` items of ``out``, a caller's buffer for ``size`` pfns: a
    writable 1-D C-contiguous ``int64`` ndarray (``np.memmap`` too) with room for them.

    Examples
    --------
    >>> buffer = np.empty(4, dtype=np.int64); check_out_array(buffer, 3).base is buffer
    True
    >>> check_out_array(np.empty(2, dtype=np.int64), 3)
    Traceback (most recent call last):
    ...
    ValueError: out has room for 2 pfns, but 3 are set
    """
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be an int64 ndarray, got {type(out).__name__}")
    _refuse_subclass("out", out)
    if out.dtype != np.int64:
        raise TypeError(f"out must be an int64 ndarray, got dtype {out.dtype}")
    if out.ndim != 1 or not out.flags.c_contiguous:
        raise ValueError(f"out must be 1-D and contiguous, got shape {out.shape}"
                         f" and strides {out.strides}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if out.size < size:
        raise ValueError(f"out has room for {out.size} pfns, but {size} are set")
    return out[:size]


def read_only(arr: np.ndarray) -> np.ndarray:
    """A read-only view of ``arr``, for properties that expose internal state.

    Examples
    --------
    >>> view = read_only(np.zeros(2)); view.flags.writeable
    False
    """
    view: np.ndarray = arr.view()
    view.setflags(write=False)
    return view
