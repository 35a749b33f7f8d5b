"""Argument checks shared by every map type (DESIGN.md, "Contracts").

Each check runs before any kernel, so a rejected call changes nothing.
"""

from __future__ import annotations

import numpy as np

from . import _kernels

_INT_TYPES = (int, np.integer)


def check_index(name: str, value: object) -> int:
    """``value`` as a Python int; ``TypeError`` for bools, floats, strings."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _INT_TYPES):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    return int(value)


def check_at_least(name: str, value: object, low: int) -> int:
    """An integer ``>= low`` (a length, a count) as a Python int; ``ValueError`` if less."""
    value = check_index(name, value)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_pfn(pfn: object, npages: int) -> int:
    """A pfn in [0, npages) as a Python int."""
    pfn = check_index("pfn", pfn)
    if not 0 <= pfn < npages:
        raise IndexError(f"pfn {pfn} outside [0, {npages})")
    return pfn


def check_range(start: object, stop: object, npages: int) -> tuple[int, int]:
    """A half-open page range; ``stop=None`` means ``npages``."""
    start = check_index("start", start)
    stop = npages if stop is None else check_index("stop", stop)
    for name, value in (("start", start), ("stop", stop)):
        if not 0 <= value <= npages:
            raise IndexError(f"{name} {value} outside [0, {npages}]")
    if start > stop:
        raise ValueError(f"start {start} > stop {stop}")
    return start, stop


def check_pfn_array(pfns: object, npages: int, what: str = "pfn") -> np.ndarray:
    """A flat int64 array of pfns in [0, npages) (no copy when already int64).

    Raises ``TypeError`` for a non-integer dtype and ``IndexError`` naming the first
    pfn out of range and its position; ``what`` names the items in both messages.
    """
    if isinstance(pfns, np.ndarray):
        arr = pfns
    else:
        arr = np.asarray(pfns)
        if arr.size == 0 and arr.dtype.kind == "f":
            arr = arr.astype(np.int64)  # np.asarray([]) is float64
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what}s must have an integer dtype, got {arr.dtype}")
    flat = arr.ravel()
    if flat.dtype == np.uint64:
        checked = flat.view(np.int64)  # values >= 2**63 turn negative: still rejected
    else:
        checked = flat.astype(np.int64, copy=False)
    bad = _kernels.first_out_of_range(checked, npages)
    if bad >= 0:
        raise IndexError(f"{what} {int(flat[bad])} at index {bad} outside [0, {npages})")
    return checked


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


def check_bound_array(name: str, values: object, npages: int) -> np.ndarray:
    """A flat int64 array of positions in [0, npages] (range starts or stops)."""
    arr = np.asarray(values)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {arr.dtype}")
    flat = arr.ravel()
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
