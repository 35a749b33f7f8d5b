"""What a :class:`~pageflags.ShardedPageFlags` sends to Dask workers, and the slicing
of one local map into shards and back.

Every task is a plain module-level function (picklable by reference) that takes a
shard's :class:`~pageflags.PageFlags` and returns a value or a *new* map: no task
changes its input.  Dask may run a task twice (a worker lost mid-batch, a task
stolen), so a write is ``copy, then change the copy``: rerunning it on the same
input gives the same output, and the scheduler can rebuild any lost shard from its
lineage.  Tasks run in worker threads, never the main thread, so
``PageFlags`` algebra keeps to its serial ``nogil`` kernels there
(``pageflags.bitmap.PARALLEL_MIN_CHUNKS`` is gated on the main thread).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from . import persist
from .bitmap import PageFlags
from .errors import FormatError
from .geometry import Geometry
from .ops import Op

# Tasks carry an Op, not a function.
OPERATORS: dict[Op, Callable[[PageFlags, PageFlags], PageFlags]] = {
    Op.AND: operator.and_, Op.OR: operator.or_, Op.XOR: operator.xor, Op.ANDNOT: operator.sub}


def write(prev: PageFlags | None, geometry: Geometry, method: str, *args: Any) -> PageFlags:
    """A new map: ``prev`` (or an empty map of ``geometry``) with ``method(*args)`` applied.

    Examples
    --------
    >>> from pageflags import Geometry
    >>> a = write(None, Geometry.from_npages(1 << 16), "set_range", 0, 10)
    >>> b = write(a, a.geometry, "clear_many", [3]); a.count(), b.count()
    (10, 9)
    """
    flags = PageFlags(geometry) if prev is None else prev.copy()
    getattr(flags, method)(*args)
    return flags


def write_ranges(prev: PageFlags | None, geometry: Geometry, starts: np.ndarray,
                 stops: np.ndarray, add: bool) -> PageFlags:
    """A new map: ``prev`` with the ranges set (``add``) or cleared, by algebra."""
    ranges = PageFlags.from_ranges(starts, stops, geometry)
    if prev is None:
        return ranges if add else PageFlags(geometry)
    return prev | ranges if add else prev - ranges


def call(flags: PageFlags, method: str, *args: Any) -> Any:
    """``flags.method(*args)``: a read."""
    return getattr(flags, method)(*args)


def combine(a: PageFlags, b: PageFlags, op: Op) -> PageFlags:
    """A new map ``a op b``."""
    return OPERATORS[op](a, b)


def count_and(a: PageFlags, b: PageFlags) -> int:
    """``a.count_and(b)``."""
    return a.count_and(b)


def first_block(flags: PageFlags, start: int, stop: int, max_len: int) -> np.ndarray:
    """The first ``iter_arrays`` block of ``[start, stop)`` (empty when none is set)."""
    return next(flags.iter_arrays(start, stop, max_len), np.empty(0, dtype=np.int64))


def save(flags: PageFlags, path: str) -> str:
    """``flags.save(path)``; returns ``path``."""
    flags.save(path)
    return path


def load(path: str, geometry: Geometry) -> PageFlags:
    """``PageFlags.load(path)``, which must have ``geometry`` (``FormatError`` if not)."""
    flags = PageFlags.load(path)
    if flags.geometry != geometry:
        raise FormatError(path, "geometry",
                                  f"shard has {flags.geometry}, the manifest says {geometry}")
    return flags


def state(flags: PageFlags) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(full runs, allocated entries, their chunks)``: a shard's part of :func:`join`."""
    return persist.reduce(flags)[1][1:]


# --- one local map <-> shards -----------------------------------------------------------
def split(flags: PageFlags, first: int, stop: int, geometry: Geometry) -> PageFlags | None:
    """A new map of ``geometry`` holding entries ``[first, stop)`` of ``flags``; None when
    they are all ``None``.  Chunks are copied, so the shard owns its memory."""
    runs = persist.full_runs(flags).astype(np.int64)
    runs = np.clip(runs, first, stop) - first
    runs = runs[runs[:, 1] > runs[:, 0]]
    mask = flags._allocated_mask()[first:stop]
    allocated = np.flatnonzero(mask)
    if not runs.size and not allocated.size:
        return None
    data = (np.stack(list(flags._chunks_at(first + allocated))) if allocated.size else
            np.empty((0, geometry.words_per_chunk), dtype=np.uint64))
    return persist.restore(geometry, runs.astype(np.uint64), allocated.astype(np.uint64),
                           data)


def join(geometry: Geometry, firsts: list[int],
         states: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> PageFlags:
    """One map of ``geometry`` from shard :func:`state` parts, each at entry ``firsts[i]``.

    FULL runs of neighbouring shards may touch, so they are merged through a mask.
    """
    marks = np.zeros(geometry.nchunks + 1, dtype=np.int64)
    allocated, data = [], []
    for first, (runs, entries, chunks) in zip(firsts, states, strict=True):
        runs = runs.astype(np.int64) + first
        np.add.at(marks, runs[:, 0], 1)
        np.add.at(marks, runs[:, 1], -1)
        allocated.append(entries.astype(np.int64) + first)
        data.append(chunks)
    full = np.cumsum(marks[:-1]) > 0
    allocated_all = np.concatenate(allocated or [np.empty(0, dtype=np.int64)])
    data_all = (np.concatenate(data) if data else
                np.empty((0, geometry.words_per_chunk), dtype=np.uint64))
    return persist.restore(geometry, persist.runs_of(full), allocated_all.astype(np.uint64),
                           data_all)
