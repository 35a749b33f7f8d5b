"""The experiment harness: hotplug traces, their replay in batches, and timing helpers.

A *trace* is an array of :data:`TRACE_DTYPE` events, each adding (``op`` = +1) or
removing (-1) one section.  :func:`events` draws a seeded trace that is valid from
a given state; :func:`check_trace` checks one against a state before anything
changes; :func:`replay` applies one in batches through a callback (the hotplug
model's step, for pageflags maps and flat ones alike), recording after each batch
what every map costs and how long each probe scan of it takes.

:func:`best_time` and :class:`Progress` are what the experiments
(:mod:`pageflags.experiments`, :mod:`pageflags.sharded_scan`) time and report with.
:class:`~pageflags.Hotplug` exposes the trace functions as ``Hotplug.events`` and
``Hotplug.run``.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from ._args import (
    check_at_least,
    check_fraction,
    check_pair,
    check_sections,
    int_array,
    plain_array,
)
from ._system import ensure_fits
from .base import PageMap
from .bitmap import PageFlags

__all__ = ["ADD", "REMOVE", "TRACE_DTYPE", "Progress", "best_time", "check_trace",
           "default_probes", "equal_runs", "events", "probe_count", "probe_walk", "replay"]

#: One hotplug event: ``op`` +1 adds ``section``, -1 removes it; ``node`` for plots.
TRACE_DTYPE = np.dtype([("op", np.int8), ("section", np.int64), ("node", np.int32)])
ADD, REMOVE = 1, -1

#: A probe: a scan of one map, timed after each batch.
Probe = Callable[[PageMap], Any]
_Map = TypeVar("_Map", bound=PageMap)


# --- probes ----------------------------------------------------------------------------
def probe_count(flags: PageMap) -> int:
    """Count the whole map through the table walk.

    ``count()`` over everything answers from a cached total, so this stops one page
    short of the end to time the walk over every entry that a range count does.

    Examples
    --------
    >>> flags = PageFlags(1 << 20); flags.set_range(0, 1 << 20); probe_count(flags)
    1048575
    """
    return flags.count(0, flags.npages - 1)


def probe_walk(flags: PageMap) -> int:
    """One ``find_next_set`` per non-empty section, from the start to the end.

    Returns the sections visited.  Needs ``flags.find_next_set(start)`` (a pfn, or
    -1 when none is left).

    Examples
    --------
    >>> flags = PageFlags(1 << 20); flags.set_many([5, 6, 40_000, 1 << 19])
    >>> probe_walk(flags)
    3
    """
    shift = flags.geometry.chunk_shift
    pos, visited = 0, 0
    while pos < flags.npages:
        hit = flags.find_next_set(pos)
        if hit < 0:
            break
        visited += 1
        pos = ((hit >> shift) + 1) << shift
    return visited


def default_probes() -> dict[str, Probe]:
    """``count`` always; ``walk`` when PageFlags has ``find_next_set``."""
    probes: dict[str, Probe] = {"count": probe_count}
    if hasattr(PageFlags, "find_next_set"):
        probes["walk"] = probe_walk
    return probes


# --- traces ----------------------------------------------------------------------------
def events(present: np.ndarray, node_of: np.ndarray, n: int, *, seed: int = 0,
           burst: tuple[int, int] = (1, 64), remove_fraction: float = 0.5) -> np.ndarray:
    """A seeded trace of ``n`` add/remove events, valid from the state ``present``.

    ``present`` says which sections are present now and ``node_of`` the node of
    every section; neither is changed.  :meth:`Hotplug.events
    <pageflags.Hotplug.events>` documents the draw, the arguments and their errors.

    Examples
    --------
    >>> present = np.array([True, True, False, False])
    >>> trace = events(present, np.zeros(4, np.int32), 3, seed=1)
    >>> trace.size, bool(np.all(np.isin(trace["section"], np.arange(4))))
    (3, True)
    """
    n = check_at_least("n", n, 0)
    seed = check_at_least("seed", seed, 0)
    lo, hi = check_pair("burst", burst, 1)
    remove_fraction = check_fraction("remove_fraction", remove_fraction)
    ensure_fits(n * TRACE_DTYPE.itemsize, f"a trace of {n} events")
    rng = np.random.default_rng(seed)
    present = np.array(present, dtype=bool)  # a copy: it follows the trace drawn
    node_ids = np.unique(node_of)
    order = np.argsort(node_of, kind="stable")
    bounds = np.searchsorted(node_of[order], node_ids)
    by_node = np.split(order, bounds[1:])  # each node's sections, ascending
    trace = np.empty(n, dtype=TRACE_DTYPE)
    made = 0
    while made < n:
        k = int(rng.integers(node_ids.size))
        mine = by_node[k]
        remove = bool(rng.random() < remove_fraction)
        here = present[mine]
        candidates = mine[here] if remove else mine[~here]
        if candidates.size == 0:
            remove = not remove
            candidates = mine[here] if remove else mine[~here]
        length = min(int(rng.integers(lo, hi + 1)), n - made, candidates.size)
        first = int(rng.integers(candidates.size - length + 1))
        taken = candidates[first:first + length]
        present[taken] = not remove
        block = trace[made:made + length]
        block["op"] = REMOVE if remove else ADD
        block["section"] = taken
        block["node"] = node_ids[k]
        made += length
    return trace


def check_trace(trace: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ops, sections)`` of a trace that applies cleanly from the state ``present``.

    ``present`` (not changed) says which of the sections are present now.  A trace
    that would add a present section or remove an absent one raises ``ValueError``
    naming the event; one that is not a structured array of integer ``op`` and
    ``section`` fields raises ``TypeError``.

    Examples
    --------
    >>> trace = np.zeros(2, dtype=TRACE_DTYPE); trace["op"] = [1, -1]; trace["section"] = 2
    >>> [a.tolist() for a in check_trace(trace, np.zeros(4, bool))]
    [[1, -1], [2, 2]]
    """
    if not isinstance(trace, np.ndarray) or not {"op", "section"} <= set(
            trace.dtype.names or ()):
        raise TypeError("trace must be a structured array with 'op' and 'section' "
                        "fields (see Hotplug.events)")
    trace = plain_array("trace", trace)
    ops = int_array("trace['op']", trace["op"]).ravel().astype(np.int64)
    bad = np.flatnonzero((ops != ADD) & (ops != REMOVE))
    if bad.size:
        raise ValueError(f"trace event {bad[0]}: op {ops[bad[0]]} is not +1 or -1")
    nrs = check_sections(trace["section"], present.size)
    present = np.array(present, dtype=bool)  # a copy: it follows the trace checked
    # One NumPy step per run of equal ops: within a run no section may repeat,
    # and every section must be in the state its op expects.
    for start, stop in equal_runs(ops):
        run = nrs[start:stop]
        add = ops[start] == ADD
        wrong = np.flatnonzero(present[run] == add)
        if wrong.size:
            i = start + int(wrong[0])
            state = "present" if add else "absent"
            raise ValueError(f"trace event {i}: section {nrs[i]} is {state} then; "
                             "nothing changed")
        if np.unique(run).size != run.size:
            raise ValueError(f"trace events {start}..{stop - 1} repeat a section")
        present[run] = add
    return ops, nrs


def equal_runs(ops: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of equal values in ``ops``.

    Examples
    --------
    >>> equal_runs(np.array([1, 1, -1, 1]))
    [(0, 2), (2, 3), (3, 4)]
    """
    if not ops.size:
        return []
    cuts = np.flatnonzero(np.diff(ops)) + 1
    edges = np.concatenate(([0], cuts, [ops.size])).tolist()
    return list(itertools.pairwise(edges))


def replay(ops: np.ndarray, nrs: np.ndarray, maps: Mapping[str, _Map],
           apply: Callable[[int, np.ndarray], None], *, batch: int = 256,
           probe: Mapping[str, Callable[[_Map], Any]] | None = None,
           progress: bool | None = None,
           columns: Mapping[str, Callable[[], int]] | None = None) -> np.ndarray:
    """Apply checked events in batches, recording what each map costs after each.

    Parameters
    ----------
    ops, nrs : numpy.ndarray
        The events' ops (+1 add, -1 remove) and sections, as :func:`check_trace`
        returns them.
    maps : mapping of str to PageMap
        The maps to measure, by name, in the order of the record's fields.
    apply : callable
        ``apply(op, sections)`` applies one run of equal events; each batch calls
        it once per run.
    batch : int, default 256
        Events per batch.
    probe : mapping of str to callable, optional
        Scans to time on every map after each batch; :func:`default_probes` when
        omitted, ``{}`` for none.
    progress : bool, optional
        Show a tqdm progress bar; by default only when stderr is a terminal.
    columns : mapping of str to callable, optional
        More integer fields, read after each batch (``Hotplug.run`` records the
        present memory this way).

    Returns
    -------
    numpy.ndarray
        One record per batch: ``batch``, ``events`` (applied so far), ``added``,
        ``removed``, the ``columns``, ``nbytes`` (a sub-array with a field per map)
        and one ``<probe>_s`` sub-array of seconds per probe.

    Examples
    --------
    >>> from pageflags import FlatPageFlags
    >>> flat = FlatPageFlags(1 << 16)
    >>> def apply(op, sections):        # a page per section, for the example
    ...     (flat.set_many if op == ADD else flat.clear_many)(sections)
    >>> rec = replay(np.array([1, 1, -1]), np.array([0, 1, 0]), {"flat": flat}, apply,
    ...              batch=2, probe={}, progress=False)
    >>> rec["events"].tolist(), rec["added"].tolist(), flat.to_array().tolist()
    ([2, 3], [2, 2], [1])
    """
    batch = check_at_least("batch", batch, 1)
    probes: dict[str, Callable[[_Map], Any]] = dict(default_probes() if probe is None
                                                    else probe)
    extra = dict(columns or {})
    names = list(maps)
    dtype = [("batch", np.int64), ("events", np.int64), ("added", np.int64),
             ("removed", np.int64), *((c, np.int64) for c in extra),
             ("nbytes", [(m, np.int64) for m in names])]
    dtype += [(f"{p}_s", [(m, np.float64) for m in names]) for p in probes]
    nbatches = -(-ops.size // batch)
    added = np.cumsum(ops == ADD)
    out = np.zeros(nbatches, dtype=dtype)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    bar = _progress_bar(ops.size, show)
    try:
        for b in range(nbatches):
            lo, hi = b * batch, min((b + 1) * batch, ops.size)
            for start, stop in equal_runs(ops[lo:hi]):
                apply(int(ops[lo + start]), nrs[lo + start:lo + stop])
            row = out[b]
            row["batch"], row["events"] = b, hi
            row["added"] = added[hi - 1]
            row["removed"] = hi - row["added"]
            for c, read in extra.items():
                row[c] = read()
            for m in names:
                row["nbytes"][m] = maps[m].nbytes
            for p, fn in probes.items():
                for m in names:
                    t0 = time.perf_counter()
                    fn(maps[m])
                    row[f"{p}_s"][m] = time.perf_counter() - t0
            bar.update(hi - lo)
    finally:
        bar.close()
    return out


# --- timing and progress -----------------------------------------------------------------
def best_time(fn: Callable[[], Any], repeat: int) -> float:
    """The least of ``repeat`` wall-clock timings of ``fn()``, in seconds.

    Examples
    --------
    >>> best_time(lambda: None, 3) >= 0
    True
    """
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class Progress:
    """One line on stderr per long step, with the time since the start; quiet off a TTY."""

    def __init__(self, show: bool | None) -> None:
        self.show = sys.stderr.isatty() if show is None else bool(show)
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.show:
            print(f"[{time.perf_counter() - self.start:6.1f} s] {message}",
                  file=sys.stderr, flush=True)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm  # imported only when a bar is wanted

    return tqdm(total=total, unit="event", desc="hotplug")
