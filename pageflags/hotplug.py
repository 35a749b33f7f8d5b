"""Hotplug: a machine whose memory changes, section by section.

The seed's second purpose: map space for pages that may not exist yet, and bitmaps
that follow memory as sections come and go.  A :class:`Hotplug` keeps

* ``present``: a :class:`~pageflags.PageFlags` of the pages that exist, in which a
  wholly present section is a ``FULL`` entry (no chunk memory).  ``pfn_valid`` is
  its ``test_many``, so it costs what a lookup in a flat bitmap costs and the
  answer for a whole section comes from the table entry alone;
* any number of attached flag maps (a "dirty" or a "free" map).

``add_sections`` / ``remove_sections`` take arrays of section numbers and apply them
in one vectorised step (:func:`apply_step`): whole table entries filled or freed in
one call per map, never a Python loop per section.  A removed section's chunks are
freed at once in every map and its bits read as zero; an added section is fresh
memory, so attached maps start with its bits clear.  :func:`apply_step` takes flat
bitmaps too, so an experiment can replay a trace on both kinds the same way.

``Hotplug.events`` makes seeded add/remove traces and ``Hotplug.run`` replays one in
batches, recording per batch what each map costs and how long a full scan of it
takes (:mod:`pageflags.harness`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard

import numpy as np
from numpy.typing import ArrayLike

from . import harness
from ._args import check_sections, read_only
from ._system import ensure_fits
from .base import PageMap, writing
from .bitmap import PageFlags
from .flat import FlatPageFlags
from .geometry import Geometry
from .harness import ADD, REMOVE
from .memmap import MemoryMap
from .preallocated import PreallocatedPageFlags

__all__ = ["Hotplug", "apply_step", "clear_sections", "fill_sections"]

PRESENT = "present"


# --- whole sections of one map, and one step of the model over every map ---------------
def fill_sections(flags: PageMap, nrs: np.ndarray) -> None:
    """Set every page of sections ``nrs`` (distinct, checked) of ``flags`` in one step.

    A PageFlags gets ``FULL`` entries (pinned chunks of a
    :class:`~pageflags.PreallocatedPageFlags` are filled in place); a
    :class:`~pageflags.FlatPageFlags` gets its words set, one NumPy step for all.
    A partial last section is set as a range: it can never be ``FULL``.

    Examples
    --------
    >>> flags = PageFlags(Geometry(phys_addr_bits=30)); fill_sections(flags, np.array([2]))
    >>> flags.count(), flags.table[2] is flags.FULL
    (32768, True)
    """
    g = flags.geometry
    whole = nrs[nrs < g.npages >> g.chunk_shift]
    if isinstance(flags, PageFlags):
        flags._fill_entries(whole)
    else:
        _flat_sections(flags, whole, True)
    if whole.size < nrs.size:
        flags.set_range((g.nchunks - 1) << g.chunk_shift, g.npages)


def clear_sections(flags: PageMap, nrs: np.ndarray) -> None:
    """Clear sections ``nrs`` (distinct, checked) of ``flags`` in one step.

    A PageFlags frees their chunks (pinned ones are cleared in place); a
    :class:`~pageflags.FlatPageFlags` gets its words cleared.

    Examples
    --------
    >>> flags = PageFlags(Geometry(phys_addr_bits=30)); flags.set_range(0, 1 << 17)
    >>> clear_sections(flags, np.array([0, 3])); flags.count(), flags.table[0] is None
    (65536, True)
    """
    if isinstance(flags, PageFlags):
        flags._free_entries(nrs)  # a partial last entry is freed whole too
        return
    g = flags.geometry
    whole = nrs[nrs < g.npages >> g.chunk_shift]
    _flat_sections(flags, whole, False)
    if whole.size < nrs.size:
        flags.clear_range((g.nchunks - 1) << g.chunk_shift, g.npages)


def _flat_sections(flat: PageMap, nrs: np.ndarray, value: bool) -> None:
    """Set (``value``) or clear whole sections ``nrs`` of a flat bitmap's words."""
    if not isinstance(flat, FlatPageFlags):
        raise TypeError(f"expected a PageFlags or a FlatPageFlags, got "
                        f"{type(flat).__name__}")
    g = flat.geometry
    wpc = g.words_per_chunk
    rows = flat.words[:(g.npages >> g.chunk_shift) * wpc].reshape(-1, wpc)
    rows[nrs] = ~np.uint64(0) if value else np.uint64(0)


def apply_step(present: PageMap, maps: Iterable[PageMap], op: int, nrs: np.ndarray) -> None:
    """Add (``op`` = +1) or remove (-1) sections ``nrs`` (distinct, checked) everywhere.

    Adding fills them in ``present`` and clears them in every other map (added
    memory is fresh); removing clears them in all.  A preallocated map of
    ``alloc="present"`` pins each added section and unpins each removed one; the
    chunks to pin are checked against the memory available before anything changes
    (``MemoryError``).  This is the model's one step: :class:`Hotplug` applies it to
    its maps and experiments to flat bitmaps.

    Examples
    --------
    >>> from pageflags import FlatPageFlags
    >>> g = Geometry(phys_addr_bits=30)
    >>> present, dirty = FlatPageFlags(g), FlatPageFlags(g); dirty.set(5)
    >>> apply_step(present, [dirty], ADD, np.array([0, 1]))
    >>> present.count(), dirty.count()
    (65536, 0)
    """
    maps = list(maps)
    pinning = [f for f in maps if _pins_present(f)]
    if op == ADD:
        if pinning:
            g = present.geometry
            ensure_fits(len(pinning) * nrs.size * g.chunk_bytes,
                        f"pinning {nrs.size} added sections in {len(pinning)} maps")
        fill_sections(present, nrs)
        for flags in maps:
            clear_sections(flags, nrs)
            if _pins_present(flags):
                flags.pin(nrs)
        return
    clear_sections(present, nrs)
    for flags in maps:
        if _pins_present(flags):
            flags.unpin(nrs)
        clear_sections(flags, nrs)


def _pins_present(flags: PageMap) -> TypeGuard[PreallocatedPageFlags]:
    return isinstance(flags, PreallocatedPageFlags) and flags.alloc == "present"


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
        return np.flatnonzero(self._present._occupied_mask())

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
        outside = np.flatnonzero(flags._nonempty_mask() & ~self._present._occupied_mask())
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
        todo: np.ndarray = np.unique(nrs)
        wrong = self._present._occupied_mask(todo) == (op == ADD)
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
                self._step(op, todo)
        return nrs.size - todo.size

    def _step(self, op: int, nrs: np.ndarray) -> None:
        apply_step(self._present, self._maps.values(), op, nrs)

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
            ``n`` events of :data:`~pageflags.harness.TRACE_DTYPE`, for :meth:`run`.

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
        return harness.events(self._present._occupied_mask(), self._node_of, n, seed=seed,
                              burst=burst, remove_fraction=remove_fraction)

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
            :func:`~pageflags.harness.default_probes` (``count``, and ``walk`` when
            the maps have ``find_next_set``).  ``{}`` times nothing.
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
        ops, nrs = harness.check_trace(trace, self._present._occupied_mask())
        present = self._present
        return harness.replay(
            ops, nrs, {PRESENT: present, **self._maps}, self._step, batch=batch,
            probe=probe, progress=progress,
            columns={"present_pages": present.count,
                     "present_sections": lambda: int(np.count_nonzero(present._occupied_mask())),
                     "flat_bytes": lambda: self._geometry.flat_bytes})

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
                "present_sections": int(np.count_nonzero(self._present._occupied_mask())),
                "flat_bytes": self._geometry.flat_bytes,
                "maps": {PRESENT: self._present.stats(),
                         **{m: f.stats() for m, f in self._maps.items()}}}

    def validate(self) -> None:
        """Validate every map, and that attached maps hold no page in absent sections.

        Pages set in an absent section (memory that does not exist) by writing to an
        attached map directly break the second check.
        """
        self._present.validate()
        absent = ~self._present._occupied_mask()
        for name, flags in self._maps.items():
            flags.validate()
            outside = np.flatnonzero(absent & flags._nonempty_mask())
            if outside.size:
                raise AssertionError(f"Hotplug invariant broken: map {name!r} has pages "
                                     f"in absent sections {outside[:8].tolist()}")

    def __repr__(self) -> str:
        return (f"Hotplug({self._geometry.phys_addr_bits}-bit, "
                f"{self.present_pages} pages present, maps={list(self._maps)})")
