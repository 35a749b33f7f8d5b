"""The benchmark grid's data: simulated machines, page layouts, and peer adapters.

Shared by ``bench/bench_grid.py`` (pytest-benchmark) and the notebooks, which time the
same layouts at their own sizes (they put this folder on ``sys.path``).

- A :class:`Machine` is NUMA nodes of present memory at fixed strides in a 40-, 46- or
  52-bit space, as in ``bench/conftest.py``.
- A :class:`Layout` is which pages of a machine are set: ``sparse`` (random present
  pages), ``full`` (every section of every node) or ``hotplug`` (every section added,
  then a random half removed, leaving section-sized holes).
- :class:`Maps` holds one implementation's map of a layout (and a second operand), and
  :data:`OPERATIONS` turns it into the zero-argument calls that are timed.
- :class:`RoaringMap` and :class:`BitarrayMap` give pyroaring's ``BitMap64`` and
  ``bitarray`` the few :class:`~pageflags.PageMap` methods the grid calls, each with
  the library's own bulk idiom, so one benchmark body serves every implementation.
"""

from __future__ import annotations

import importlib.util
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from pageflags import FlatPageFlags, Geometry, PageFlags

GiB = 1 << 30
TiB = 1 << 40


@dataclass(frozen=True)
class Machine:
    """``nodes`` NUMA nodes of ``node_bytes`` each, one every ``stride_bytes``."""

    phys_addr_bits: int
    nodes: int
    node_bytes: int
    stride_bytes: int

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.phys_addr_bits)

    @property
    def node_starts(self) -> np.ndarray:
        stride = self.stride_bytes >> self.geometry.page_shift
        return np.arange(self.nodes, dtype=np.int64) * stride

    @property
    def node_stops(self) -> np.ndarray:
        return self.node_starts + (self.node_bytes >> self.geometry.page_shift)

    @property
    def present_pages(self) -> int:
        return self.nodes * (self.node_bytes >> self.geometry.page_shift)


#: The grid's spaces. 46 is the core benchmark machine (2 TiB in 8 nodes at 8 TiB);
#: 52 keeps its 2 TiB but spreads it over a 5-level-paging space; 40 is a 1 TiB space.
MACHINES = {
    40: Machine(40, nodes=4, node_bytes=64 * GiB, stride_bytes=256 * GiB),
    46: Machine(46, nodes=8, node_bytes=256 * GiB, stride_bytes=8 * TiB),
    52: Machine(52, nodes=8, node_bytes=256 * GiB, stride_bytes=512 * TiB),
}
LAYOUTS = ("sparse", "full", "hotplug")


@dataclass
class Layout:
    """The set pages of one layout on one machine, and the pfn arrays that probe it.

    Attributes
    ----------
    starts, stops : numpy.ndarray
        Half-open page ranges that are set (empty for ``sparse``).
    pages : numpy.ndarray
        Single set pages (``sparse`` only; empty otherwise).
    members : numpy.ndarray
        ``npfns`` random pages that are set: ``set_many`` of them changes no bit.
    probes : numpy.ndarray
        ``npfns`` random pages anywhere in the nodes, set or not: ``test_many`` input.
    """

    name: str
    machine: Machine
    starts: np.ndarray
    stops: np.ndarray
    pages: np.ndarray
    members: np.ndarray
    probes: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def geometry(self) -> Geometry:
        return self.machine.geometry

    def fill(self, flags: Any) -> Any:
        """Set this layout's pages in ``flags`` (any map with the PageMap methods)."""
        for start, stop in zip(self.starts.tolist(), self.stops.tolist(), strict=True):
            flags.set_range(start, stop)
        if self.pages.size:
            flags.set_many(self.pages)
        return flags

    def clear_nodes(self, flags: Any) -> None:
        """Clear every node of the machine in ``flags``, leaving it empty."""
        m = self.machine
        for start, stop in zip(m.node_starts.tolist(), m.node_stops.tolist(), strict=True):
            flags.clear_range(start, stop)


def make_layout(machine: Machine, name: str, npfns: int, seed: int = 2005) -> Layout:
    """Build layout ``name`` (one of :data:`LAYOUTS`) on ``machine``, seeded."""
    rng = np.random.default_rng(seed)
    g = machine.geometry
    node_starts = machine.node_starts
    node_pages = machine.node_bytes >> g.page_shift
    probes = _in_nodes(rng, node_starts, node_pages, npfns)
    empty = np.empty(0, dtype=np.int64)
    if name == "sparse":
        pages = _in_nodes(rng, node_starts, node_pages, npfns)
        return Layout(name, machine, empty, empty, pages, pages, probes)
    sections = _node_sections(machine)
    if name == "hotplug":
        keep = np.sort(rng.permutation(sections.size)[: sections.size // 2])
        sections = sections[keep]
    elif name != "full":
        raise ValueError(f"unknown layout {name!r}; expected one of {LAYOUTS}")
    starts, stops = _runs(sections)
    starts, stops = starts << g.chunk_shift, stops << g.chunk_shift
    # Members: a random section among those kept, then a random page in it.
    picked = sections[rng.integers(0, sections.size, npfns)] << g.chunk_shift
    members = picked + rng.integers(0, g.pages_per_chunk, npfns)
    return Layout(name, machine, starts, stops, empty, members, probes,
                  info={"sections": int(sections.size), "ranges": int(starts.size)})


def _in_nodes(rng: np.random.Generator, node_starts: np.ndarray, node_pages: int,
              n: int) -> np.ndarray:
    return node_starts[rng.integers(0, node_starts.size, n)] + rng.integers(0, node_pages, n)


def _node_sections(machine: Machine) -> np.ndarray:
    shift = machine.geometry.chunk_shift
    per_node = (machine.node_bytes >> machine.geometry.page_shift) >> shift
    first = machine.node_starts >> shift
    return (first[:, None] + np.arange(per_node)).ravel()


def _runs(sections: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted section numbers as maximal half-open runs ``[start, stop)``."""
    breaks = np.flatnonzero(np.diff(sections) != 1) + 1
    starts = sections[np.r_[0, breaks]]
    stops = sections[np.r_[breaks - 1, sections.size - 1]] + 1
    return starts, stops


# --- peers behind the PageMap methods the grid uses ----------------------------------------
class RoaringMap:
    """pyroaring's ``BitMap64`` with the grid's PageMap methods."""

    def __init__(self, geometry: Geometry, bitmap: Any = None) -> None:
        from pyroaring import BitMap64

        self.geometry = geometry
        self.npages = geometry.npages
        self.bitmap = BitMap64() if bitmap is None else bitmap

    @property
    def nbytes(self) -> int:
        """Bytes of the containers' payload (not the 64-bit key index above them)."""
        stats = self.bitmap.get_statistics()
        return sum(v for k, v in stats.items() if k.startswith("n_bytes_"))

    def set_range(self, start: int, stop: int) -> None:
        self.bitmap.add_range(start, stop)

    def clear_range(self, start: int, stop: int) -> None:
        self.bitmap.remove_range(start, stop)

    def set_many(self, pfns: np.ndarray) -> None:
        self.bitmap.update(pfns)

    def test_many(self, pfns: np.ndarray) -> np.ndarray:
        # BitMap64 has no vectorised membership test; a loop over ``in`` is its idiom.
        bitmap = self.bitmap
        return np.fromiter((p in bitmap for p in pfns.tolist()), dtype=bool, count=pfns.size)

    def count(self, start: int = 0, stop: int | None = None) -> int:
        if start == 0 and stop is None:
            return len(self.bitmap)
        return self.bitmap.range_cardinality(start, self.npages if stop is None else stop)

    def find_next_set(self, start: int = 0) -> int:
        try:
            return self.bitmap.next_set_bit(start)
        except ValueError:  # nothing at or after start
            return -1

    def any(self, start: int = 0, stop: int | None = None) -> bool:
        found = self.find_next_set(start)
        return 0 <= found < (self.npages if stop is None else stop)

    def to_array(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.npages if stop is None else stop
        first = self.bitmap.rank(start - 1) if start else 0
        last = self.bitmap.rank(stop - 1)
        values = self.bitmap[first:last].to_array()
        return np.frombuffer(values, dtype=np.uint64).astype(np.int64)

    def count_and(self, other: RoaringMap) -> int:
        return self.bitmap.intersection_cardinality(other.bitmap)

    def __and__(self, other: RoaringMap) -> RoaringMap:
        return RoaringMap(self.geometry, self.bitmap & other.bitmap)

    def __or__(self, other: RoaringMap) -> RoaringMap:
        return RoaringMap(self.geometry, self.bitmap | other.bitmap)


class BitarrayMap:
    """A little-endian ``bitarray`` of ``npages`` bits with the grid's PageMap methods."""

    def __init__(self, geometry: Geometry, bits: Any = None) -> None:
        from bitarray.util import zeros

        self.geometry = geometry
        self.npages = geometry.npages
        self.bits = zeros(geometry.npages, endian="little") if bits is None else bits

    @property
    def nbytes(self) -> int:
        return self.bits.nbytes

    def set_range(self, start: int, stop: int) -> None:
        self.bits[start:stop] = 1

    def clear_range(self, start: int, stop: int) -> None:
        self.bits[start:stop] = 0

    def set_many(self, pfns: np.ndarray) -> None:
        # Sequence indexing takes a list of ints, not a NumPy array.
        self.bits[pfns.tolist()] = 1

    def test_many(self, pfns: np.ndarray) -> np.ndarray:
        picked = self.bits[pfns.tolist()]
        return np.unpackbits(np.frombuffer(picked, dtype=np.uint8), count=pfns.size,
                             bitorder="little").astype(bool)

    def count(self, start: int = 0, stop: int | None = None) -> int:
        return self.bits.count(1, start, self.npages if stop is None else stop)

    def find_next_set(self, start: int = 0) -> int:
        return self.bits.find(1, start)

    def any(self, start: int = 0, stop: int | None = None) -> bool:
        return self.bits.find(1, start, self.npages if stop is None else stop) >= 0

    def to_array(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.npages if stop is None else stop
        window = self.bits[start:stop]
        mask = np.unpackbits(np.frombuffer(window, dtype=np.uint8), count=stop - start,
                             bitorder="little")
        return np.flatnonzero(mask) + start

    def count_and(self, other: BitarrayMap) -> int:
        from bitarray.util import count_and

        return count_and(self.bits, other.bits)

    def __and__(self, other: BitarrayMap) -> BitarrayMap:
        return BitarrayMap(self.geometry, self.bits & other.bits)

    def __or__(self, other: BitarrayMap) -> BitarrayMap:
        return BitarrayMap(self.geometry, self.bits | other.bits)


#: Implementation name -> (map class, module it needs or None, spaces it can hold).
IMPLEMENTATIONS: dict[str, tuple[type, str | None, tuple[int, ...]]] = {
    "pageflags": (PageFlags, None, (40, 46, 52)),
    "flat": (FlatPageFlags, None, (40, 46)),
    "pyroaring": (RoaringMap, "pyroaring", (40, 46, 52)),
    "bitarray": (BitarrayMap, "bitarray", (40, 46)),
}


def build_maps(machine: Machine, layout_name: str, impl: str, npfns: int) -> Maps:
    """``impl``'s map of layout ``layout_name`` on ``machine`` (see :data:`IMPLEMENTATIONS`)."""
    layout = make_layout(machine, layout_name, npfns)
    return Maps(layout, layout.fill(IMPLEMENTATIONS[impl][0](layout.geometry)))


@dataclass
class Maps:
    """One implementation's map of a layout, and the second operand of ``and``/``or``."""

    layout: Layout
    flags: Any
    _other: Any = None

    #: Seed of the second operand: another sparse layout, "dirty" pages.
    OTHER_SEED = 5002

    def other(self) -> Any:
        """A sparse map (as many pages as the layout's probes) of other present pages."""
        if self._other is None:
            dirty = make_layout(self.layout.machine, "sparse", self.layout.probes.size,
                                seed=self.OTHER_SEED)
            self._other = dirty.fill(type(self.flags)(self.layout.geometry))
        return self._other

    def info(self) -> dict[str, Any]:
        """Sizes worth recording beside a timing."""
        layout = self.layout
        return {"npages": layout.geometry.npages, "count": self.flags.count(),
                "nbytes": self.flags.nbytes, "npfns": layout.probes.size,
                "pfns_nbytes": layout.probes.nbytes,
                "other_nbytes": None if self._other is None else self._other.nbytes,
                **layout.info}


def defines(cls: type, name: str) -> bool:
    """Whether ``cls`` defines ``name`` (``hasattr`` would also see ``type.__or__``)."""
    return any(name in vars(klass) for klass in cls.__mro__)


def _discard(result: object) -> None:
    """Drop a result at once, so two 2 GiB results never overlap between rounds."""
    del result


def _node(layout: Layout, i: int) -> tuple[int, int]:
    m = layout.machine
    i = min(i, m.nodes - 1)
    return int(m.node_starts[i]), int(m.node_stops[i])


def _after_node0(layout: Layout) -> tuple[int, int]:
    """From the end of node 0 to the end of node 1: a hole, then present memory."""
    return _node(layout, 0)[1], _node(layout, 1)[1]


def _count_node(maps: Maps) -> Callable[[], Any]:
    # Start and stop off chunk boundaries, so the edges are popcounted.
    start, stop = _node(maps.layout, 3)
    return lambda: maps.flags.count(start + 12345, stop - 777)


#: Pages in the ``to_array`` window (16 GiB of 4 KiB pages; 32 MiB of int64 when full).
WINDOW = 1 << 22


def _to_array(maps: Maps) -> Callable[[], Any]:
    start = _node(maps.layout, 1)[0] + 4321
    return lambda: maps.flags.to_array(start, start + WINDOW)


#: Operation -> (the attribute it needs on PageFlags, maps -> zero-argument call).
#: ``set_range`` sets the layout's ranges (empty the nodes first, see
#: :meth:`Layout.clear_nodes`); ``set_many`` sets pages already set; ``count_range``
#: counts node 3 with edges off chunk boundaries; ``any_range`` and ``find_next_set``
#: start at the end of node 0, so they cross a hole first; ``to_array`` lists a window
#: of :data:`WINDOW` pages in node 1; ``and_`` (``a & b``), ``or_`` and ``count_and`` take
#: :meth:`Maps.other`.
OPERATIONS: dict[str, tuple[str | None, Callable[[Maps], Callable[[], Any]]]] = {
    "set_range": (None, lambda m: lambda: m.layout.fill(m.flags)),
    "set_many": (None, lambda m: lambda: m.flags.set_many(m.layout.members)),
    "test_many": (None, lambda m: lambda: m.flags.test_many(m.layout.probes)),
    "count": (None, lambda m: m.flags.count),
    "count_range": (None, _count_node),
    "any_range": (None, lambda m: lambda: m.flags.any(*_after_node0(m.layout))),
    "find_next_set": ("find_next_set",
                      lambda m: lambda: m.flags.find_next_set(_node(m.layout, 0)[1])),
    "to_array": ("to_array", _to_array),
    "and_": ("__and__", lambda m: lambda: _discard(m.flags & m.other())),
    "or_": ("__or__", lambda m: lambda: _discard(m.flags | m.other())),
    "count_and": ("count_and", lambda m: lambda: m.flags.count_and(m.other())),
}


def available(op: str) -> bool:
    """Whether ``PageFlags`` has what operation ``op`` needs (a map type may lack some)."""
    needs = OPERATIONS[op][0]
    return needs is None or defines(PageFlags, needs)


# --- timing outside pytest-benchmark (the notebooks) ---------------------------------------
def best_time(fn: Callable[[], Any], repeat: int = 3,
              setup: Callable[[], Any] | None = None) -> float:
    """Best wall time of ``fn()`` over ``repeat`` calls, after one untimed warm call.

    ``setup()``, if given, runs untimed before every call.
    """
    best = float("inf")
    for i in range(repeat + 1):
        if setup is not None:
            setup()
        began = time.perf_counter()
        fn()
        if i:  # the first call warms the JIT and the memory
            best = min(best, time.perf_counter() - began)
    return best


def installed(impl: str) -> bool:
    """Whether implementation ``impl``'s library can be imported here."""
    module = IMPLEMENTATIONS[impl][1]
    return module is None or importlib.util.find_spec(module) is not None


def time_grid(spaces: tuple[int, ...], npfns: int, repeat: int = 3,
              ops: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Time every available case of the grid; one row (a dict) per case.

    The cases of ``bench/bench_grid.py`` with the notebooks' own sizes: each row has
    ``space``, ``layout``, ``impl``, ``op``, ``seconds`` (best of ``repeat``) and
    ``nbytes`` (of the layout's map). One implementation's maps are alive at a time.
    """
    rows = []
    for bits in spaces:
        for layout_name in LAYOUTS:
            for impl, (_, _, impl_spaces) in IMPLEMENTATIONS.items():
                if bits not in impl_spaces or not installed(impl):
                    continue
                maps = build_maps(MACHINES[bits], layout_name, impl, npfns)
                for op in ops or OPERATIONS:
                    if not available(op) or (op == "set_range" and layout_name == "sparse"):
                        continue
                    setup = None
                    if op == "set_range":
                        setup = partial(maps.layout.clear_nodes, maps.flags)
                    seconds = best_time(OPERATIONS[op][1](maps), repeat, setup)
                    rows.append({"space": bits, "layout": layout_name, "impl": impl, "op": op,
                                 "seconds": seconds, "nbytes": maps.flags.nbytes})
                del maps
    return rows


def as_benchmark_run(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``rows`` of :func:`time_grid` shaped like a pytest-benchmark JSON run (for ratios)."""
    machine = {"cpu": {"brand_raw": cpu_name()}, "python_version": platform.python_version()}
    return {"machine_info": machine, "benchmarks": [
        {"name": f"{r['space']}-{r['layout']}-{r['op']}-{r['impl']}",
         "group": f"{r['op']} {r['space']}-bit {r['layout']}",
         "extra_info": {"impl": r["impl"]}, "stats": {"min": r["seconds"]}} for r in rows]}


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: Sweep operation -> (map, pfns set in it, probe pfns) -> zero-argument call.
SWEEP_OPERATIONS: dict[str, Callable[[Any, np.ndarray, np.ndarray], Callable[[], Any]]] = {
    # A map built from nothing: pageflags pays for its chunks, flat for its pages.
    "set_many": lambda flags, pfns, probes: lambda: type(flags)(flags.geometry).set_many(pfns),
    "test_many": lambda flags, pfns, probes: lambda: flags.test_many(probes),
    # count() is O(1) in pageflags; a range off the ends makes both count for real.
    "count_range": lambda flags, pfns, probes: lambda: flags.count(1, flags.npages - 1),
}


def density_sweep(geometry: Geometry, densities: Any, ops: tuple[str, ...],
                  nprobes: int, repeat: int = 3, impls: tuple[str, ...] = ("pageflags", "flat"),
                  machine: Machine | None = None, seed: int = 7) -> list[dict[str, Any]]:
    """Time :data:`SWEEP_OPERATIONS` ``ops`` on maps of random pages at each density.

    Without ``machine``, a density ``d`` sets about ``d * npages`` pages drawn uniformly
    over the whole space (the worst case for a sparse table: chunks fill everywhere at
    once), and probes are drawn likewise. With a ``machine`` (its geometry is used),
    pages and probes are drawn in its nodes and ``d`` is relative to its present pages.
    Rows have ``density``, ``impl``, ``op``, ``seconds``, ``nbytes``, ``count`` and
    ``allocated`` (chunks; None for other implementations).
    """
    rng = np.random.default_rng(seed)
    if machine is None:
        population = geometry.npages

        def draw(n: int) -> np.ndarray:
            return rng.integers(0, geometry.npages, n)
    else:
        geometry, population = machine.geometry, machine.present_pages
        node_pages = machine.node_bytes >> geometry.page_shift

        def draw(n: int) -> np.ndarray:
            return _in_nodes(rng, machine.node_starts, node_pages, n)
    probes = draw(nprobes)
    rows = []
    for density in densities:
        pfns = draw(max(1, round(density * population)))
        for impl in impls:
            flags = IMPLEMENTATIONS[impl][0](geometry)
            flags.set_many(pfns)
            allocated = flags.stats()["allocated"] if isinstance(flags, PageFlags) else None
            for op in ops:
                seconds = best_time(SWEEP_OPERATIONS[op](flags, pfns, probes), repeat)
                rows.append({"density": float(density), "impl": impl, "op": op,
                             "seconds": seconds, "nbytes": flags.nbytes,
                             "count": flags.count(), "allocated": allocated})
            del flags
    return rows
