"""The command's jobs as functions that return plain data: :func:`scan` and :func:`hotplug`.

Both simulate a machine with :meth:`MemoryMap.synthetic`, do the same work with
:class:`PageFlags` and (unless ``flat=False``) with :class:`FlatPageFlags` on the same
data, check that the two agree, and return a JSON-ready dict; ``pageflags scan`` and
``pageflags hotplug`` print it as a table or as JSON.  :func:`plot_hotplug` draws a
hotplug result (matplotlib, imported only there).

The dicts are the command's ``--json`` output, so their keys are stable (see
:data:`SCAN_KEYS`, :data:`HOTPLUG_KEYS` and the functions' docstrings): new keys may
be added, none is renamed or removed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import _system
from ._args import check_at_least, check_fraction
from ._sizes import format_size, human_size, parse_size
from .bitmap import PageFlags
from .flat import FlatPageFlags
from .geometry import Geometry
from .harness import ADD, Progress, best_time, default_probes, probe_walk, replay
from .hotplug import Hotplug, apply_step
from .memmap import MemoryMap

__all__ = ["HOTPLUG_KEYS", "SCAN_KEYS", "flat_fits", "hotplug", "plot_hotplug", "scan"]

#: Top-level keys of :func:`scan`'s result (the ``pageflags scan --json`` output).
SCAN_KEYS = ("command", "geometry", "memory", "nodes", "ranges", "present_pages",
             "dirty_pages", "density", "seed", "repeat", "times", "nbytes", "agree",
             "note", "sharded", "why")
#: Top-level keys of :func:`hotplug`'s result (the ``pageflags hotplug --json`` output).
HOTPLUG_KEYS = ("command", "geometry", "memory", "nodes", "seed", "density", "events",
                "batch", "added", "removed", "present_bytes", "nbytes", "scan_seconds",
                "batches", "agree", "note")
MAPS = ("present", "dirty")


# --- shared pieces -------------------------------------------------------------------
def flat_fits(geometry: Geometry, maps: int) -> bool:
    """Whether ``maps`` flat bitmaps of ``geometry`` fit in half the free memory.

    Half, because an operation such as ``dirty & present`` builds one more.
    """
    available = _system.available_bytes()
    if available is None:  # not every platform reports it
        return True
    return maps * geometry.flat_bytes < available // 2


def _flat_note(geometry: Geometry, wanted: bool, maps: int) -> tuple[bool, str | None]:
    """``(with_flat, note)``: skip flat bitmaps that cannot fit, and say so."""
    if not wanted:
        return False, None
    if flat_fits(geometry, maps):
        return True, None
    return False, (f"a flat bitmap of a {geometry.phys_addr_bits}-bit space takes "
                   f"{human_size(geometry.flat_bytes)} a map: too much for this "
                   "machine's free memory, so the flat columns are skipped")


def _machine(phys_addr_bits: int, memory: str | int, nodes: int, seed: int) -> MemoryMap:
    """The synthetic machine; ``ValueError`` when the memory does not fit."""
    nbytes = parse_size(memory)
    nodes = check_at_least("nodes", nodes, 1)
    geometry = Geometry(phys_addr_bits)
    if nbytes < nodes * geometry.page_size:
        raise ValueError(f"memory {format_size(nbytes)} is less than a page per node")
    return MemoryMap.synthetic(nbytes, nodes, seed=seed, geometry=geometry)


def _present_sample(mm: MemoryMap, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random present pfns (with repeats), uniform over present memory."""
    lo, hi = mm.ranges[:, 0], mm.ranges[:, 1]
    ends = np.cumsum(hi - lo)
    k = rng.integers(0, ends[-1], n) if ends.size else np.zeros(0, dtype=np.int64)
    which = np.searchsorted(ends, k, side="right")
    pfns: np.ndarray = lo[which] + k - (ends[which] - (hi - lo)[which])
    return pfns


def _node_extents(mm: MemoryMap) -> list[tuple[int, int]]:
    """``[first pfn, last pfn + 1)`` of each node's ranges, in node order."""
    out = []
    for node in np.unique(mm.nodes):
        mine = mm.ranges[mm.nodes == node]
        out.append((int(mine[0, 0]), int(mine[-1, 1])))
    return out


class _Setup(NamedTuple):
    say: Progress
    machine: MemoryMap
    with_flat: bool
    note: str | None
    rng: np.random.Generator
    dirty_pfns: np.ndarray


def _counts(**counts: object) -> list[int]:
    """Integer arguments that must be >= 1, by name: checked, as Python ints (the
    results are JSON), in the order given."""
    return [check_at_least(name, value, 1) for name, value in counts.items()]


def _setup(phys_addr_bits: int, memory: str | int, nodes: int, seed: int, density: float,
           flat: bool, flat_maps: int, progress: bool | None) -> _Setup:
    """What both jobs start with: the machine and the dirty pages.

    The jobs check their counts and ``seed`` first, with :func:`_counts`.
    """
    say = Progress(progress)
    say("simulating the machine")
    mm = _machine(phys_addr_bits, memory, nodes, seed)
    with_flat, note = _flat_note(mm.geometry, flat, flat_maps)
    rng = np.random.default_rng(seed)
    dirty_pfns = _present_sample(mm, int(mm.present_pages * density), rng)
    return _Setup(say, mm, with_flat, note, rng, dirty_pfns)


def _warm_up(kind: type[PageFlags] | type[FlatPageFlags]) -> None:
    """Compile (or load from the cache) the build kernels, so builds time no JIT."""
    tiny = kind.from_ranges([10], [1 << 15], 1 << 16)
    tiny.set_many(np.arange(3))


def _same(a: Any, b: Any) -> bool:
    """Equal results: maps compare as maps (pageflags on the left), the rest as arrays."""
    if isinstance(a, PageFlags):
        return bool(a == b)
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


# --- scan ----------------------------------------------------------------------------
def walk_first(flags: Any, npages: int) -> tuple[int, int]:
    """``find_next_set`` from pfn 0 for the first ``npages`` set pages.

    Returns ``(pages found, sum of their pfns)``, a checksum for comparing maps.

    Examples
    --------
    >>> flags = PageFlags(1 << 20); flags.set_many([3, 70_000, 900_000])
    >>> walk_first(flags, 2), walk_first(flags, 10)
    ((2, 70003), (3, 970003))
    """
    pos, found, total = 0, 0, 0
    while found < npages:
        hit = flags.find_next_set(pos)
        if hit < 0:
            break
        found += 1
        total += hit
        pos = hit + 1
        if pos == flags.npages:
            break
    return found, total


def scan(phys_addr_bits: int = 46, memory: str | int = "2 TiB", nodes: int = 8, *,
         density: float = 0.01, seed: int = 0, repeat: int = 3, flat: bool = True,
         walk: int = 100_000, progress: bool | None = None, workers: int | None = None,
         scheduler: str | None = None) -> dict[str, Any]:
    """Bulk scans of a simulated machine, timed with pageflags and with a flat bitmap.

    The machine is ``MemoryMap.synthetic(memory, nodes, seed=seed)`` in a
    ``phys_addr_bits`` space.  The *present* map holds its memory (built with
    ``from_ranges``); the *dirty* map holds ``density`` x present pages drawn at
    random from present memory (``set_many``, repeats allowed).  Each operation runs
    once untimed on both implementations, whose results must agree (``RuntimeError``
    otherwise), then ``repeat`` times; the best time is kept.  Builds run once.

    Operations (the ``operation`` names of ``times``): ``build present``,
    ``build dirty``, ``count`` and ``count present`` (whole maps), ``count by node``
    (a ``count(start, stop)`` per node), ``find walk, per section`` (one
    ``find_next_set`` per non-empty 128 MiB section from pfn 0 to the end, across the
    holes between nodes), ``find walk, first N pages`` (``find_next_set`` from pfn 0
    for the first ``walk`` dirty pages), ``to_array`` (every dirty pfn),
    ``dirty & present``, ``dirty | present``, ``count_and`` (dirty with present),
    ``test_many, N pfns across the space`` and ``test_many, N present pfns``.

    Parameters
    ----------
    phys_addr_bits, memory, nodes, seed
        The machine (by default 46 bits, 2 TiB, 8 nodes, as the ``pageflags`` command).
    density : float
        Fraction of present pages in the dirty map.
    repeat : int
        Best of this many timings.
    flat : bool
        Also time a flat bitmap.  Skipped, with a ``note``, when two of them would not
        fit in half the free memory (a 52-bit flat bitmap takes 128 GiB).
    walk : int
        Pages of the ``find walk, first N pages``.
    progress : bool, optional
        One line on stderr per step; by default only when stderr is a terminal.
    workers, scheduler : optional
        Also run the builds, counts, ``find walk, per section``, ``dirty & present``
        and ``count_and`` on a :class:`~pageflags.ShardedPageFlags`, on a new
        LocalCluster of ``workers`` single-threaded processes or on the Dask
        scheduler at ``scheduler`` (needs the ``distributed`` extra); see
        :mod:`pageflags.sharded_scan`.

    Returns
    -------
    dict
        Keys :data:`SCAN_KEYS`: ``geometry`` (``Geometry.describe()``), ``memory``
        (bytes present), ``nodes`` (``[start, stop)`` pfns of each node),
        ``ranges`` (present ranges), ``present_pages``, ``dirty_pages``,
        ``density``, ``seed``, ``repeat``, ``times`` (rows of ``operation``,
        ``pageflags`` seconds and, with flat, ``flat`` seconds and ``speedup`` =
        flat / pageflags), ``nbytes`` (``{impl: {"present": bytes, "dirty": bytes}}``),
        ``agree`` (True when checked against flat, None without flat) and ``note``
        (why flat was skipped, or None); ``sharded``: None, or ``workers``,
        ``shards``, ``shard_pages``, ``present_shards`` and ``agree``, the sharded
        rows of ``times`` then having ``sharded`` seconds; ``why``: a line, with its
        measurement, for each build or ``test_many`` row where flat is faster.

    Examples
    --------
    >>> r = scan(34, "1 GiB", 2, repeat=1, walk=100, progress=False)
    >>> r["agree"], r["present_pages"] == 1 << 18, r["times"][2]["operation"]
    (True, True, 'count')
    """
    # Every check before the machine is built, not minutes later.
    nodes, repeat, walk = _counts(nodes=nodes, repeat=repeat, walk=walk)
    seed = check_at_least("seed", seed, 0)
    density = check_fraction("density", density)
    if workers is not None:
        check_at_least("workers", workers, 1)
    say, mm, with_flat, note, rng, dirty_pfns = _setup(
        phys_addr_bits, memory, nodes, seed, density, flat, 2, progress)
    g = mm.geometry
    nprobes = min(1 << 22, max(dirty_pfns.size, 1 << 16))
    anywhere = rng.integers(0, g.npages, nprobes)
    present_probes = _present_sample(mm, nprobes, rng)
    extents = _node_extents(mm)
    starts, stops = mm.ranges[:, 0], mm.ranges[:, 1]

    kinds: dict[str, type[PageFlags] | type[FlatPageFlags]] = {"pageflags": PageFlags}
    if with_flat:
        kinds["flat"] = FlatPageFlags
    maps: dict[str, tuple[Any, Any]] = {}
    builds: dict[str, dict[str, float]] = {"build present": {}, "build dirty": {}}
    for name, kind in kinds.items():
        say(f"building the {name} maps")
        _warm_up(kind)
        t0 = time.perf_counter()
        present = kind.from_ranges(starts, stops, g)
        t1 = time.perf_counter()
        dirty = kind(g)
        dirty.set_many(dirty_pfns)
        t2 = time.perf_counter()
        builds["build present"][name], builds["build dirty"][name] = t1 - t0, t2 - t1
        maps[name] = (present, dirty)

    operations: dict[str, Callable[[Any, Any], Any]] = {
        "count": lambda p, d: d.count(),
        "count present": lambda p, d: p.count(),
        "count by node": lambda p, d: [d.count(lo, hi) for lo, hi in extents],
        "find walk, per section": lambda p, d: probe_walk(d),
        f"find walk, first {walk:,} pages": lambda p, d: walk_first(d, walk),
        "to_array": lambda p, d: d.to_array(),
        "dirty & present": lambda p, d: d & p,
        "dirty | present": lambda p, d: d | p,
        "count_and": lambda p, d: d.count_and(p),
        f"test_many, {nprobes:,} pfns across the space": lambda p, d: d.test_many(anywhere),
        f"test_many, {nprobes:,} present pfns": lambda p, d: d.test_many(present_probes),
    }
    rows: list[dict[str, Any]] = [{"operation": op, **times} for op, times in builds.items()]
    for i, (op, fn) in enumerate(operations.items(), 1):
        say(f"{op} ({i}/{len(operations)})")
        results = {name: fn(*pair) for name, pair in maps.items()}  # warms the JIT
        if with_flat and not _same(results["pageflags"], results["flat"]):
            raise RuntimeError(f"pageflags and flat disagree on {op}")
        del results  # a flat `dirty | present` holds a whole bitmap
        rows.append({"operation": op, **{
            name: best_time(functools.partial(fn, *pair), repeat)
            for name, pair in maps.items()}})
    why: list[str] = []
    if with_flat:
        for row in rows:
            row["speedup"] = row["flat"] / max(row["pageflags"], 1e-12)
        why = _why_slower(rows, g, dirty_pfns, repeat)
    sharded = None
    if workers is not None or scheduler is not None:
        from . import sharded_scan  # needs Dask: imported only here

        say("the sharded parts on Dask workers")
        with sharded_scan.connect(workers, scheduler) as client:
            seconds, sharded = sharded_scan.times(client, g, mm.ranges, dirty_pfns,
                                                  extents, maps["pageflags"], repeat)
        for row in rows:
            if row["operation"] in seconds:
                row["sharded"] = seconds[row["operation"]]
    say("done")
    return {
        "command": "scan", "geometry": g.describe(), "memory": mm.present_bytes,
        "nodes": [list(e) for e in extents], "ranges": int(mm.ranges.shape[0]),
        "present_pages": mm.present_pages, "dirty_pages": maps["pageflags"][1].count(),
        "density": float(density), "seed": seed, "repeat": repeat, "times": rows,
        "nbytes": {name: {"present": p.nbytes, "dirty": d.nbytes}
                   for name, (p, d) in maps.items()},
        "agree": True if with_flat else None, "note": note, "sharded": sharded,
        "why": why,
    }


def _why_slower(rows: list[dict[str, Any]], g: Geometry, dirty_pfns: np.ndarray,
                repeat: int) -> list[str]:
    """A line, with its measurement, for each build or test_many row flat wins."""
    lines = []
    for row in rows:
        op = row["operation"]
        if row["speedup"] >= 1.0 or not op.startswith(("build", "test_many")):
            continue
        if op == "build dirty":
            shift = g.chunk_shift
            firsts = np.unique(dirty_pfns >> shift) << shift  # a pfn per touched section
            def allocate(firsts: np.ndarray = firsts) -> None:
                PageFlags(g).set_many(firsts)

            alloc = best_time(allocate, repeat)
            rest = (row["pageflags"] - alloc) / row["flat"]
            size = format_size(g.chunk_bytes)
            lines.append(f"{op}: {alloc * 1e3:.3g} ms of pageflags' {row['pageflags'] * 1e3:.3g}"
                         f" ms give {firsts.size:,} sections a {size} chunk each and touch "
                         "them (slabs of fresh pages, zeroed by the kernel on first touch as "
                         "flat's are); the rest (a 1-in-64 sample of the pfns, the pass, a "
                         f"recount of the chunks) takes {rest:.2f}x flat's time, two dependent "
                         "loads a pfn where flat has one")
        elif op.startswith("test_many"):
            lines.append(f"{op}: each pfn costs two dependent loads (its entry, then its "
                         "word) where flat has one")
        else:
            lines.append(f"{op}: measured once, as a first build is; rerun to see the spread")
    return lines


# --- hotplug -------------------------------------------------------------------------
def _summary(series: np.ndarray, start: int) -> dict[str, int]:
    return {"start": int(start), "end": int(series[-1]) if series.size else int(start),
            "peak": int(max(start, series.max(initial=start)))}


def hotplug(phys_addr_bits: int = 46, memory: str | int = "2 TiB", nodes: int = 8, *,
            events: int = 4096, batch: int = 256, seed: int = 0, density: float = 0.01,
            flat: bool = True, progress: bool | None = None) -> dict[str, Any]:
    """A seeded hotplug experiment: memory and scan times over add/remove events.

    The machine is ``MemoryMap.synthetic(memory, nodes, seed=seed)``; a
    :class:`Hotplug` holds its ``present`` map and a ``dirty`` map with ``density``
    x present pages set.  ``Hotplug.events(events, seed=seed)`` makes the trace and
    ``Hotplug.run`` applies it in batches of ``batch`` events, timing the default
    probes (``count``: a range count of the whole map; ``walk``: one
    ``find_next_set`` per non-empty section) on each map after each batch.  With
    ``flat``, the same trace is replayed on two :class:`FlatPageFlags` (whole
    sections set or cleared in one NumPy step per run of equal events) and timed the
    same way; the final maps must be equal (``RuntimeError`` otherwise).

    Returns
    -------
    dict
        Keys :data:`HOTPLUG_KEYS`: ``geometry``, ``memory`` (bytes present at the
        start), ``nodes``, ``seed``, ``density``, ``events``, ``batch``, ``added`` and
        ``removed`` (sections), ``present_bytes`` (``{"start", "end", "peak"}``),
        ``nbytes`` (``{impl: {map: {"start", "end", "peak"}}}`` with maps
        ``present``, ``dirty`` and ``total``), ``scan_seconds``
        (``{probe: {impl: {"median", "max"}}}`` over batches and maps),
        ``batches`` (per batch: ``events``, ``present_pages``, and ``nbytes`` and
        ``seconds`` as ``{impl: {map: [...]}}`` and ``{probe: {impl: {map: [...]}}}``),
        ``agree`` (True, or None without flat) and ``note``.

    Examples
    --------
    >>> r = hotplug(36, "4 GiB", 2, events=300, batch=100, progress=False)
    >>> r["added"] + r["removed"], r["batches"]["events"], r["agree"]
    (300, [100, 200, 300], True)
    """
    nodes, events, batch = _counts(nodes=nodes, events=events, batch=batch)
    seed = check_at_least("seed", seed, 0)
    density = check_fraction("density", density)
    say, mm, with_flat, note, _, dirty_pfns = _setup(
        phys_addr_bits, memory, nodes, seed, density, flat, len(MAPS), progress)
    g = mm.geometry

    hp = Hotplug(mm)
    hp.new_map("dirty").set_many(dirty_pfns)
    trace = hp.events(events, seed=seed)
    start_nbytes = {"pageflags": {m: f.nbytes for m, f in
                                  (("present", hp.present), *hp.maps.items())}}
    probes = default_probes()
    for kind in (PageFlags, FlatPageFlags):  # compile the probes before timing them
        tiny = kind.from_ranges([10], [1 << 15], 1 << 16)
        for fn in probes.values():
            fn(tiny)
    say(f"pageflags: {events:,} events in batches of {batch}")
    rec = hp.run(trace, batch=batch, probe=probes, progress=progress)
    ops = trace["op"].astype(np.int64)
    nrs = trace["section"].astype(np.int64)

    series: dict[str, dict[str, np.ndarray]] = {
        "pageflags": {m: rec["nbytes"][m] for m in MAPS}}
    seconds = {p: {"pageflags": {m: rec[f"{p}_s"][m] for m in MAPS}} for p in probes}
    if with_flat:
        say("flat: the same trace")
        flats = {"present": FlatPageFlags.from_ranges(mm.ranges[:, 0], mm.ranges[:, 1], g),
                 "dirty": FlatPageFlags.from_array(dirty_pfns, g)}
        start_nbytes["flat"] = {m: f.nbytes for m, f in flats.items()}

        def step(op: int, sections: np.ndarray) -> None:
            apply_step(flats["present"], [flats["dirty"]], op, sections)

        flat_rec = replay(ops, nrs, flats, step, batch=batch, probe=probes, progress=False)
        series["flat"] = {m: flat_rec["nbytes"][m] for m in MAPS}
        for p in probes:
            seconds[p]["flat"] = {m: flat_rec[f"{p}_s"][m] for m in MAPS}
        final = {"present": hp.present, "dirty": hp.maps["dirty"]}
        if not all(final[m] == flats[m] for m in MAPS):
            raise RuntimeError("pageflags and flat disagree after the hotplug trace")
    say("done")

    nbytes = {}
    for impl, by_map in series.items():
        total: np.ndarray = np.add.reduce(list(by_map.values()))
        nbytes[impl] = {m: _summary(by_map[m], start_nbytes[impl][m]) for m in MAPS}
        nbytes[impl]["total"] = _summary(total, sum(start_nbytes[impl].values()))
    present_bytes = rec["present_pages"] * g.page_size
    return {
        "command": "hotplug", "geometry": g.describe(), "memory": mm.present_bytes,
        "nodes": nodes, "seed": seed, "density": float(density), "events": int(ops.size),
        "batch": batch, "added": int(np.count_nonzero(ops == ADD)),
        "removed": int(np.count_nonzero(ops != ADD)),
        "present_bytes": _summary(present_bytes, mm.present_bytes),
        "nbytes": nbytes,
        "scan_seconds": {p: {impl: {"median": float(np.median(np.concatenate(list(t.values())))),
                                    "max": float(max(v.max() for v in t.values()))}
                             for impl, t in by_impl.items()}
                         for p, by_impl in seconds.items()},
        "batches": {
            "events": rec["events"].tolist(),
            "present_pages": rec["present_pages"].tolist(),
            "nbytes": {impl: {m: v.tolist() for m, v in by_map.items()}
                       for impl, by_map in series.items()},
            "seconds": {p: {impl: {m: v.tolist() for m, v in t.items()}
                            for impl, t in by_impl.items()}
                        for p, by_impl in seconds.items()},
        },
        "agree": True if with_flat else None, "note": note,
    }


def plot_hotplug(result: dict[str, Any], fig: Any = None) -> Any:
    """Draw a :func:`hotplug` result: memory of each map and scan times against events.

    One panel for memory and one per probe, pageflags (solid) beside flat (dashed),
    log scale (flat is constant and orders of magnitude above).  ``fig`` is a
    matplotlib Figure to draw in; by default a new one, not registered with pyplot,
    so that ``plot_hotplug(r).savefig("hotplug.png")`` needs no display.

    Examples
    --------
    >>> r = hotplug(36, "4 GiB", 2, events=200, batch=100, progress=False)
    >>> fig = plot_hotplug(r); len(fig.axes)
    3
    """
    from matplotlib.figure import Figure  # matplotlib is optional: the `test` extra

    batches = result["batches"]
    probes = list(batches["seconds"])
    if fig is None:
        fig = Figure(figsize=(5 * (1 + len(probes)), 4), layout="constrained")
    axes = fig.subplots(1, 1 + len(probes), squeeze=False)[0]
    x = batches["events"]
    styles = {"pageflags": "-", "flat": "--"}
    colours = {"present": "tab:blue", "dirty": "tab:orange"}
    for impl, by_map in batches["nbytes"].items():
        for m, ys in by_map.items():
            axes[0].plot(x, np.asarray(ys) / 2**20, styles[impl], color=colours[m],
                         label=f"{impl} {m}")
    axes[0].set(title="memory of each map", ylabel="MiB", yscale="log")
    for ax, p in zip(axes[1:], probes, strict=True):
        for impl, by_map in batches["seconds"][p].items():
            for m, ys in by_map.items():
                ax.plot(x, np.asarray(ys) * 1e3, styles[impl], color=colours[m],
                        label=f"{impl} {m}")
        ax.set(title=f"scan time: {p}", ylabel="ms", yscale="log")
    g = result["geometry"]
    for ax in axes:
        ax.set(xlabel="hotplug events applied")
        ax.legend(fontsize="small")
    fig.suptitle(f"{g['phys_addr_bits']}-bit space, {format_size(result['memory'])} in "
                 f"{result['nodes']} nodes, {result['events']:,} events")
    return fig
