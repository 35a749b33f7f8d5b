"""Hotplug: a machine whose memory changes, section by section.

The seed's second purpose: map space for pages that may not exist yet, and bitmaps
that follow memory as sections come and go.  A :class:`Hotplug` keeps

* ``present``: a :class:`~pageflags.PageFlags` of the pages that exist, in which a
  wholly present section is a ``FULL`` entry (no chunk memory).  ``pfn_valid`` is
  its ``test_many``, so it costs what a lookup in a flat bitmap costs and the
  answer for a whole section comes from the table entry alone;
* any number of attached flag maps (a "dirty" or a "free" map).

``add_sections`` / ``remove_sections`` take arrays of section numbers and apply them
in one vectorised step: NumPy over the table shadows and one ``_fill`` / ``_free``
of the whole array per map, never a Python loop per section.  A removed section's
chunks are freed at once in every map and its bits read as zero; an added section
is fresh memory, so attached maps start with its bits clear.

``events`` makes seeded add/remove traces and ``run`` replays one in batches,
recording per batch what each map costs and how long a full scan of it takes.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._args import check_at_least, check_fraction, check_pair, int_array, plain_array
from .base import writing
from .bitmap import PageFlags
from .geometry import Geometry
from .memmap import (
    MemoryMap,
    PreallocatedPageFlags,
    check_sections,
    ensure_fits,
    read_only,
)

__all__ = ["Hotplug", "TRACE_DTYPE", "probe_count", "probe_walk", "default_probes"]

#: One hotplug event: ``op`` +1 adds ``section``, -1 removes it; ``node`` for plots.
TRACE_DTYPE = np.dtype([("op", np.int8), ("section", np.int64), ("node", np.int32)])
ADD, REMOVE = 1, -1
PRESENT = "present"


def probe_count(flags: PageFlags) -> int:
    """Count the whole map through the table walk.

    ``count()`` over everything answers from a cached total, so this stops one page
    short of the end to time the walk over every entry that a range count does.
    """
    return flags.count(0, flags.npages - 1)


def probe_walk(flags: PageFlags) -> int:
    """One ``find_next_set`` per non-empty section, from the start to the end.

    Returns the sections visited.  Needs ``flags.find_next_set(start)`` (a pfn, or
    -1 when none is left).
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


def default_probes() -> dict[str, Callable[[PageFlags], Any]]:
    """``count`` always; ``walk`` when PageFlags has ``find_next_set``."""
    probes: dict[str, Callable[[PageFlags], Any]] = {"count": probe_count}
    if hasattr(PageFlags, "find_next_set"):
        probes["walk"] = probe_walk
    return probes


def _clear_sections(flags: PageFlags, nrs: np.ndarray) -> None:
    """Clear and free sections ``nrs`` of ``flags`` in one step."""
    flags._total -= int(flags._counts[nrs].sum(dtype=np.int64))
    flags._free(nrs)


class Hotplug:
    """A simulated machine: present memory, ``pfn_valid``, and maps that follow it.

    Parameters
    ----------
    memory : MemoryMap or Geometry
        The machine at the start; a Geometry starts with no memory.

    Examples
    --------
    >>> from pageflags import Geometry, Hotplug, MemoryMap
    >>> hp = Hotplug(MemoryMap([[0, 64 << 15]], geometry=Geometry(phys_addr_bits=40)))
    >>> dirty = hp.new_map("dirty"); dirty.set_range(0, 10 << 15)
    >>> hp.remove_sections([0, 1, 2])                   # returns sections skipped
    0
    >>> hp.pfn_valid([0, 3 << 15]).tolist(), dirty.count() == 7 << 15
    ([False, True], True)
    >>> hp.add_sections([1, 1, 40], strict=False)       # 1 twice; 40 is present
    2
    >>> hp.validate()
    """

    __slots__ = ("_geometry", "_maps", "_node_of", "_present")

    def __init__(self, memory: MemoryMap | Geometry) -> None:
        if isinstance(memory, Geometry):
            memory = MemoryMap(np.empty((0, 2), dtype=np.int64), geometry=memory)
        if not isinstance(memory, MemoryMap):
            raise TypeError(f"expected a MemoryMap or a Geometry, got {type(memory).__name__}")
        self._geometry = memory.geometry
        self._present = memory.to_flags()
        self._present._chunk_per_entry()  # as attached maps: memory falls per section
        self._maps: dict[str, PageFlags] = {}
        self._node_of = memory.section_nodes()

    # --- state -------------------------------------------------------------------------
    @property
    def geometry(self) -> Geometry:
        """The address space; a section is one chunk."""
        return self._geometry

    @property
    def present(self) -> PageFlags:
        """The map of present pages.  Change it through add/remove, not directly."""
        return self._present

    @property
    def maps(self) -> dict[str, PageFlags]:
        """The attached maps by name (a copy of the dict; the maps themselves)."""
        return dict(self._maps)

    @property
    def present_pages(self) -> int:
        """Pages present."""
        return self._present.count()

    def sections(self) -> np.ndarray:
        """Numbers of the sections holding any present page, sorted."""
        return np.flatnonzero(self._present._addrs != 0)

    def section_nodes(self) -> np.ndarray:
        """Node of every section (see :meth:`MemoryMap.section_nodes`), read-only."""
        return read_only(self._node_of)

    def pfn_valid(self, pfns: ArrayLike) -> np.ndarray:
        """Whether each pfn is present memory: a bool array shaped like ``pfns``.

        Raises ``IndexError`` for a pfn outside the address space, as every map does.

        Examples
        --------
        >>> from pageflags import Geometry
        >>> hp = Hotplug(Geometry(phys_addr_bits=40)); _ = hp.add_sections([2])
        >>> hp.pfn_valid([0, 2 << 15, (3 << 15) - 1]).tolist()
        [False, True, True]
        """
        return self._present.test_many(pfns)

    # --- attached maps -----------------------------------------------------------------
    def attach(self, flags: PageFlags, name: str) -> PageFlags:
        """Attach ``flags`` as ``name``; its sections now follow add and remove.

        From then on each of its chunks is its own allocation (chunks that a bulk
        write made as rows of a shared slab are copied out first), so its memory
        falls with every section removed.

        Raises
        ------
        TypeError
            When ``flags`` is not a PageFlags.
        ValueError
            For another geometry, a name in use (``"present"`` included), or a map
            with pages set in absent sections (memory that does not exist).

        Examples
        --------
        >>> from pageflags import Geometry, PageFlags
        >>> hp = Hotplug(Geometry(phys_addr_bits=40)); _ = hp.add_sections([0])
        >>> dirty = hp.attach(PageFlags(hp.geometry), "dirty"); dirty.set(5)
        >>> _ = hp.remove_sections([0]); dirty.test(5)
        False
        """
        if not isinstance(flags, PageFlags):
            raise TypeError(f"can attach a PageFlags, got {type(flags).__name__}")
        if not isinstance(name, str) or name == PRESENT or name in self._maps:
            raise ValueError(f"map name {name!r} is not a str or is in use")
        if flags.geometry != self._geometry:
            raise ValueError(f"map geometry {flags.geometry} is not {self._geometry}")
        if any(flags is m for m in self._maps.values()):
            raise ValueError("that map is attached already")
        outside = np.flatnonzero((flags._counts != 0) & (self._present._addrs == 0))
        if outside.size:
            raise ValueError(f"map {name!r} has pages set in absent sections "
                             f"{outside[:8].tolist()}")
        flags._chunk_per_entry()
        self._maps[name] = flags
        return flags

    def new_map(self, name: str, alloc: str = "lazy") -> PageFlags:
        """A new empty map attached as ``name``.

        ``alloc`` is as for :meth:`MemoryMap.new_flags`: ``"present"`` pins the
        present sections (and pins each added one, unpinning each removed one);
        ``"all"`` pins every section for good.

        Examples
        --------
        >>> from pageflags import Geometry
        >>> hp = Hotplug(Geometry(phys_addr_bits=40)); _ = hp.add_sections([0, 1])
        >>> hp.new_map("dirty", alloc="present").stats()["allocated"]
        2
        """
        if alloc == "lazy":
            flags = PageFlags(self._geometry)
        elif alloc == "present":
            flags = PreallocatedPageFlags(self._geometry, self.sections())
        elif alloc == "all":
            flags = PreallocatedPageFlags(self._geometry)
        else:
            raise ValueError(f"alloc must be 'lazy', 'present' or 'all', got {alloc!r}")
        return self.attach(flags, name)

    def detach(self, name: str) -> PageFlags:
        """Detach the map ``name`` and return it."""
        if name not in self._maps:
            raise KeyError(f"no map named {name!r}")
        return self._maps.pop(name)

    # --- add and remove ----------------------------------------------------------------
    def add_sections(self, nrs: ArrayLike, *, strict: bool = True) -> int:
        """Make sections ``nrs`` wholly present, in one step.

        Parameters
        ----------
        nrs : array_like of int
            Section numbers, in any order.
        strict : bool, default True
            Raise ``ValueError``, changing nothing, for a section already present or
            given twice.  With ``strict=False`` those are skipped.

        Returns
        -------
        int
            How many entries of ``nrs`` were skipped (0 when strict).

        Examples
        --------
        >>> from pageflags import Geometry
        >>> hp = Hotplug(Geometry(phys_addr_bits=40))
        >>> hp.add_sections([3, 4]), hp.sections().tolist(), hp.present_pages
        (0, [3, 4], 65536)
        >>> hp.add_sections([4])
        Traceback (most recent call last):
        ...
        ValueError: section 4 is already present (1 of 1); nothing changed (strict=False skips)
        """
        return self._apply(nrs, ADD, strict)

    def remove_sections(self, nrs: ArrayLike, *, strict: bool = True) -> int:
        """Remove sections ``nrs``: absent afterwards, zero and freed in every map.

        ``strict`` (for a section not present) and the count of skipped entries it
        returns are as for :meth:`add_sections`.

        Examples
        --------
        >>> from pageflags import Geometry
        >>> hp = Hotplug(Geometry(phys_addr_bits=40)); _ = hp.add_sections([3, 4])
        >>> free = hp.new_map("free"); free.set_range(3 << 15, 5 << 15)
        >>> hp.remove_sections([4, 9], strict=False), free.count(), free.any(4 << 15)
        (1, 32768, False)
        """
        return self._apply(nrs, REMOVE, strict)

    def _apply(self, nrs: ArrayLike, op: int, strict: bool) -> int:
        nrs = check_sections(nrs, self._geometry.nchunks)
        todo = np.unique(nrs)
        wrong = (self._present._addrs[todo] != 0) == (op == ADD)
        if strict:
            if wrong.any():
                state = "already present" if op == ADD else "not present"
                raise ValueError(f"section {todo[wrong][0]} is {state} "
                                 f"({np.count_nonzero(wrong)} of {nrs.size}); nothing "
                                 "changed (strict=False skips)")
            if todo.size != nrs.size:
                counts = np.bincount(np.searchsorted(todo, nrs))
                raise ValueError(f"section {todo[np.argmax(counts)]} is given twice; "
                                 "nothing changed (strict=False skips repeats)")
        todo = todo[~wrong]
        if todo.size:
            with contextlib.ExitStack() as held:  # every map, as its only writer
                for flags in (self._present, *self._maps.values()):
                    held.enter_context(writing(flags))
                (self._add if op == ADD else self._remove)(todo)
        return nrs.size - todo.size

    def _add(self, nrs: np.ndarray) -> None:
        g = self._geometry
        pinning = [f for f in self._maps.values()
                   if isinstance(f, PreallocatedPageFlags) and f.alloc == "present"]
        ensure_fits(len(pinning) * nrs.size * g.chunk_bytes,
                    f"pinning {nrs.size} added sections in {len(pinning)} maps")
        whole = nrs[nrs < g.npages >> g.chunk_shift]
        self._present._total += whole.size * g.pages_per_chunk
        self._present._fill(whole)
        if whole.size < nrs.size:  # the partial last section can never be FULL
            self._present.set_range((g.nchunks - 1) << g.chunk_shift, g.npages)
        for flags in self._maps.values():
            _clear_sections(flags, nrs)
            if isinstance(flags, PreallocatedPageFlags) and flags.alloc == "present":
                flags.pin(nrs)

    def _remove(self, nrs: np.ndarray) -> None:
        _clear_sections(self._present, nrs)
        for flags in self._maps.values():
            if isinstance(flags, PreallocatedPageFlags) and flags.alloc == "present":
                flags.unpin(nrs)
            _clear_sections(flags, nrs)

    # --- experiments -------------------------------------------------------------------
    def events(self, n: int, *, seed: int = 0, burst: tuple[int, int] = (1, 64),
               remove_fraction: float = 0.5) -> np.ndarray:
        """A seeded trace of ``n`` add/remove events, valid from the current state.

        Events come in bursts of consecutive sections of one node (a DIMM or a
        memory device going), the node drawn afresh for each burst so nodes
        interleave.  A burst removes present sections with probability
        ``remove_fraction`` and otherwise adds absent sections of the node's part
        of the address space (see :meth:`section_nodes`); it switches when the node
        has none of the kind it wants.

        Returns
        -------
        numpy.ndarray
            ``n`` events of :data:`TRACE_DTYPE`, for :meth:`run`.

        Raises
        ------
        TypeError
            For an ``n``, ``seed`` or ``burst`` bound that is not an integer, or a
            ``remove_fraction`` that is not a number.
        ValueError
            For a negative ``n`` or ``seed``, a ``burst`` not ``1 <= least <= most``
            or a ``remove_fraction`` outside ``[0, 1]``.
        MemoryError
            When a trace of ``n`` events would not fit the memory available.

        Examples
        --------
        >>> hp = Hotplug(MemoryMap.synthetic("64 GiB", nodes=2, phys_addr_bits=40))
        >>> trace = hp.events(100, seed=1)
        >>> trace.size, set(trace["op"].tolist()) <= {-1, 1}
        (100, True)
        """
        n = check_at_least("n", n, 0)
        seed = check_at_least("seed", seed, 0)
        lo, hi = check_pair("burst", burst, 1)
        remove_fraction = check_fraction("remove_fraction", remove_fraction)
        ensure_fits(n * TRACE_DTYPE.itemsize, f"a trace of {n} events")
        rng = np.random.default_rng(seed)
        present = self._present._addrs != 0
        node_ids = np.unique(self._node_of)
        order = np.argsort(self._node_of, kind="stable")
        bounds = np.searchsorted(self._node_of[order], node_ids)
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

    def run(self, trace: np.ndarray, *, batch: int = 256,
            probe: Mapping[str, Callable[[PageFlags], Any]] | None = None,
            progress: bool | None = None) -> np.ndarray:
        """Apply ``trace`` in batches, recording what each map costs after each.

        The whole trace is checked first, so a trace that would add a present
        section or remove an absent one raises ``ValueError`` and changes nothing.

        Parameters
        ----------
        trace : numpy.ndarray
            Events with fields ``op`` (+1 add, -1 remove) and ``section``, such as
            :meth:`events` makes.
        batch : int, default 256
            Events per batch; each batch is applied as one add or remove call per
            run of equal ops.
        probe : mapping of str to callable, optional
            Scans to time on every map after each batch, by name; the default is
            :func:`default_probes` (``count``, and ``walk`` when the maps have
            ``find_next_set``).  ``{}`` times nothing.
        progress : bool, optional
            Show a tqdm progress bar; by default only when stderr is a terminal.

        Returns
        -------
        numpy.ndarray
            One record per batch: ``batch``, ``events`` (applied so far), ``added``,
            ``removed``, ``present_pages``, ``present_sections``, ``flat_bytes``
            (what one flat bitmap of the space takes), ``nbytes`` (a sub-array with
            a field per map, ``present`` first) and one ``<probe>_s`` sub-array of
            seconds per probe.

        Examples
        --------
        >>> hp = Hotplug(MemoryMap.synthetic("64 GiB", nodes=2, phys_addr_bits=40))
        >>> _ = hp.new_map("dirty")
        >>> rec = hp.run(hp.events(600, seed=2), batch=200, probe={}, progress=False)
        >>> rec["events"].tolist(), rec.dtype["nbytes"].names
        ([200, 400, 600], ('present', 'dirty'))
        """
        ops, nrs = self._check_trace(trace)
        batch = check_at_least("batch", batch, 1)
        probes = default_probes() if probe is None else dict(probe)
        maps = {PRESENT: self._present, **self._maps}
        names = list(maps)
        dtype = [("batch", np.int64), ("events", np.int64), ("added", np.int64),
                 ("removed", np.int64), ("present_pages", np.int64),
                 ("present_sections", np.int64), ("flat_bytes", np.int64),
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
                for start, stop in _runs(ops[lo:hi]):
                    nr = nrs[lo + start:lo + stop]
                    (self._add if ops[lo + start] == ADD else self._remove)(nr)
                row = out[b]
                row["batch"], row["events"] = b, hi
                row["added"] = added[hi - 1]
                row["removed"] = hi - row["added"]
                row["present_pages"] = self._present.count()
                row["present_sections"] = np.count_nonzero(self._present._addrs)
                row["flat_bytes"] = self._geometry.flat_bytes
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

    def _check_trace(self, trace: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ops, sections)`` of a trace that applies cleanly from the current state."""
        if not isinstance(trace, np.ndarray) or not {"op", "section"} <= set(
                trace.dtype.names or ()):
            raise TypeError("trace must be a structured array with 'op' and 'section' "
                            "fields (see Hotplug.events)")
        trace = plain_array("trace", trace)
        ops = int_array("trace['op']", trace["op"]).ravel().astype(np.int64)
        bad = np.flatnonzero((ops != ADD) & (ops != REMOVE))
        if bad.size:
            raise ValueError(f"trace event {bad[0]}: op {ops[bad[0]]} is not +1 or -1")
        nrs = check_sections(trace["section"], self._geometry.nchunks)
        present = self._present._addrs != 0
        # One NumPy step per run of equal ops: within a run no section may repeat,
        # and every section must be in the state its op expects.
        for start, stop in _runs(ops):
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

    # --- accounting --------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Present pages and sections, and ``stats()`` of every map by name.

        Examples
        --------
        >>> from pageflags import Geometry
        >>> hp = Hotplug(Geometry(phys_addr_bits=40)); _ = hp.add_sections([0, 1])
        >>> s = hp.stats(); s["present_sections"], s["maps"]["present"]["full"]
        (2, 2)
        """
        return {"present_pages": self.present_pages,
                "present_sections": int(np.count_nonzero(self._present._addrs)),
                "flat_bytes": self._geometry.flat_bytes,
                "maps": {PRESENT: self._present.stats(),
                         **{m: f.stats() for m, f in self._maps.items()}}}

    def validate(self) -> None:
        """Validate every map, and that attached maps hold no page in absent sections.

        Pages set in an absent section (memory that does not exist) by writing to an
        attached map directly break the second check.
        """
        self._present.validate()
        absent = self._present._addrs == 0
        for name, flags in self._maps.items():
            flags.validate()
            outside = np.flatnonzero(absent & (flags._counts != 0))
            if outside.size:
                raise AssertionError(f"Hotplug invariant broken: map {name!r} has pages "
                                     f"in absent sections {outside[:8].tolist()}")

    def __repr__(self) -> str:
        return (f"Hotplug({self._geometry.phys_addr_bits}-bit, "
                f"{self.present_pages} pages present, maps={list(self._maps)})")


def _runs(ops: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of equal values in ``ops``."""
    if not ops.size:
        return []
    cuts = np.flatnonzero(np.diff(ops)) + 1
    edges = np.concatenate(([0], cuts, [ops.size])).tolist()
    return list(itertools.pairwise(edges))


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
