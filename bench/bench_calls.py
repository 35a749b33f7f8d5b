"""What a call costs: per call, first build and first use, beside flat and pyroaring.

Run (the ratio table prints at the end, after pytest-benchmark's own)::

    python -m pytest bench/bench_calls.py --benchmark-only -q

or, from a saved run (``--benchmark-json=calls.json``): ``python bench/bench_calls.py
calls.json``.

1. Per call, as users write it: a Python loop over a list of Python ints calling one
   method per item, on ``PageFlags``, ``FlatPageFlags`` and ``pyroaring.BitMap64``
   holding the same pages.  Before every round of a write loop, the opposite loop
   (untimed) undoes it, so every timed write changes bits.  Both page maps use the
   46-bit default geometry of ``bench/conftest.py``: a flat map reserves 2 GiB, but
   ``np.zeros`` maps pages lazily, so only the few hundred MiB written here become
   resident.
2. First build: ``set_many``, ``clear_many`` (into FULL entries) and ``from_array``
   of 16 Mi random present pfns into a NEW map every round (built in pedantic's
   untimed setup), ``put_words`` of those pages' words into a new map, ``a | b`` and
   ``copy()`` (results that need every chunk anew), then ``test_many`` on a warm map
   and ``to_array`` against ``BitMap64.to_array()``.
3. First use: fresh interpreters with a warm Numba cache, ``import numba, numpy``
   against a script that makes a 46-bit map and runs a dozen operations once.

Every benchmark calls its target once untimed first, so the JIT is warm.
"""

from __future__ import annotations

import array
import gc
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    GEOMETRY,
    NODE_PAGES,
    NODE_STARTS,
    NODE_STOPS,
    SAMPLE,
    SUMMARIES,
    fill_nodes,
    record,
)
from first_use import FIRST_USE_SCRIPT, fresh_env

from pageflags import FlatPageFlags, MemoryMap, PageFlags

pyroaring = pytest.importorskip("pyroaring")

SUITE = "calls"
IMPLS = ("pageflags", "flat", "pyroaring")
SECTION = GEOMETRY.pages_per_chunk          # 32768 pages: one memory section
NCALLS = 4096
POPULATED = 1024                            # sections of node 0 with private chunks
SMALL_COUNT = 1000                          # pages in a "small" count(start, stop)
NREMOVE, NADD = 4096, 2048                  # the hotplug loop, as bench_hotplug.py
REPO = Path(__file__).resolve().parent.parent


# --- maps and loops ---------------------------------------------------------------

def new_map(impl: str):
    """An empty map of the benchmark geometry."""
    if impl == "pyroaring":
        return pyroaring.BitMap64()
    return (PageFlags if impl == "pageflags" else FlatPageFlags)(GEOMETRY)


def set_pfns(bitmap, impl: str, pfns: np.ndarray):
    """Set ``pfns`` in ``bitmap`` with each library's bulk call."""
    if impl == "pyroaring":
        # An array('Q') is pyroaring's fast input; a NumPy array is iterated (2x slower).
        bitmap.update(array.array("Q", pfns.astype(np.uint64).tobytes()))
    else:
        bitmap.set_many(pfns)
    return bitmap


def fill_all_nodes(bitmap, impl: str):
    """Set the 8 nodes of conftest's machine."""
    if impl != "pyroaring":
        return fill_nodes(bitmap)
    for start, stop in zip(NODE_STARTS.tolist(), NODE_STOPS.tolist(), strict=True):
        bitmap.add_range(start, stop)
    return bitmap


def methods(bitmap, impl: str) -> dict[str, Callable]:
    """The bound methods the loops call; pyroaring's nearest equivalents for its row."""
    if impl == "pyroaring":
        return {"set": bitmap.add, "clear": bitmap.discard, "test": bitmap.__contains__,
                "set_range": bitmap.add_range, "clear_range": bitmap.remove_range,
                "count": bitmap.range_cardinality, "find_next_set": bitmap.next_set_bit}
    return {"set": bitmap.set, "clear": bitmap.clear, "test": bitmap.test,
            "set_range": bitmap.set_range, "clear_range": bitmap.clear_range,
            "count": bitmap.count, "find_next_set": bitmap.find_next_set}


def each(method: Callable, items: list[int]) -> None:
    """``method(item)`` for every item: the loop users write."""
    for item in items:
        method(item)


def hits(method: Callable, items: list[int]) -> int:
    """How many ``method(item)`` are true (summed, so the result is used)."""
    total = 0
    for item in items:
        total += method(item)
    return total


def contained(bitmap, items: list[int]) -> int:
    """How many items are ``in bitmap``: the ``pfn in m`` spelling."""
    total = 0
    for item in items:
        total += item in bitmap
    return total


def each_range(method: Callable, starts: list[int], length: int) -> int:
    """``method(start, start + length)`` for every start (counts summed, else 0)."""
    total = 0
    for start in starts:
        total += method(start, start + length) or 0
    return total


# --- fixtures ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def call_rng():
    return np.random.default_rng(4096)


@pytest.fixture(scope="module")
def populated(call_rng):
    """Node 0's first 1024 sections hold 1 Mi random pages (private chunks), and the
    pfns and range starts the single-call loops use, all inside those sections."""
    span = POPULATED * SECTION
    pages = call_rng.integers(0, span, 1 << 20)
    maps = {impl: set_pfns(new_map(impl), impl, pages) for impl in IMPLS}
    pfns = call_rng.integers(0, span, NCALLS).tolist()
    starts = call_rng.integers(0, span - SMALL_COUNT, NCALLS).tolist()
    # Whole aligned sections of node 1, empty until the section benchmarks.
    first = int(NODE_STARTS[1]) // SECTION
    sections = ((first + call_rng.permutation(2048)[:256]) * SECTION).tolist()
    return maps, pfns, starts, sections


@pytest.fixture(scope="module")
def sparse(call_rng):
    """4096 random present pages over the 8 nodes, and search starts before the last."""
    node = call_rng.integers(0, len(NODE_STARTS), NCALLS)
    pages = NODE_STARTS[node] + call_rng.integers(0, NODE_PAGES, NCALLS)
    maps = {impl: set_pfns(new_map(impl), impl, pages) for impl in IMPLS}
    node = call_rng.integers(0, len(NODE_STARTS), NCALLS)
    starts = NODE_STARTS[node] + call_rng.integers(0, NODE_PAGES, NCALLS)
    # pyroaring raises past the last set page; every search here finds one.
    return maps, np.minimum(starts, pages.max()).tolist()


@pytest.fixture(scope="module")
def hotplug_sections(call_rng):
    """4096 distinct present sections to remove, then 2048 of them to add back."""
    per_node = NODE_PAGES // SECTION
    present = (NODE_STARTS[:, None] // SECTION + np.arange(per_node)).ravel()
    removed = call_rng.choice(present, NREMOVE, replace=False)
    added = removed[call_rng.permutation(NREMOVE)[:NADD]]
    return (removed * SECTION).tolist(), (added * SECTION).tolist()


# --- 1. per call ------------------------------------------------------------------

def time_loop(benchmark, impl: str, loop: Callable[[], object], calls: int,
              rounds: int = 10, setup: Callable[[], None] | None = None) -> None:
    """Warm once, time ``loop()`` ``rounds`` times; ``calls`` is calls per loop.

    ``setup`` (untimed, before every round and the warm-up) undoes what the loop
    does, so every timed write changes bits instead of finding them as it left them.
    """
    if setup is not None:
        setup()
    loop()
    record(benchmark, impl, suite=SUITE, calls=calls)
    benchmark.pedantic(loop, setup=setup, rounds=rounds, iterations=1)


#: Operation -> (which fixture list it loops over, loop(methods, bitmap, items)).
CALL_LOOPS: dict[str, Callable] = {
    "set(pfn)": lambda m, b, items: each(m["set"], items["pfns"]),
    "clear(pfn)": lambda m, b, items: each(m["clear"], items["pfns"]),
    "test(pfn)": lambda m, b, items: hits(m["test"], items["pfns"]),
    "pfn in m": lambda m, b, items: contained(b, items["pfns"]),
    "set_range 10 pages": lambda m, b, items: each_range(m["set_range"], items["starts"], 10),
    "clear_range 10 pages": lambda m, b, items: each_range(m["clear_range"], items["starts"],
                                                           10),
    f"count(start, start + {SMALL_COUNT})": lambda m, b, items: each_range(
        m["count"], items["starts"], SMALL_COUNT),
    "set_range one section": lambda m, b, items: each_range(m["set_range"],
                                                            items["sections"], SECTION),
    "clear_range one section": lambda m, b, items: each_range(m["clear_range"],
                                                              items["sections"], SECTION),
}


#: Write loops and the loop that undoes each before every round (untimed).
UNDO = {"set(pfn)": "clear(pfn)", "clear(pfn)": "set(pfn)",
        "set_range 10 pages": "clear_range 10 pages",
        "clear_range 10 pages": "set_range 10 pages",
        "set_range one section": "clear_range one section",
        "clear_range one section": "set_range one section"}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("operation", CALL_LOOPS)
def test_per_call(benchmark, populated, operation, impl):
    maps, pfns, starts, sections = populated
    items = {"pfns": pfns, "starts": starts, "sections": sections}
    bitmap = maps[impl]
    m = methods(bitmap, impl)
    loop = CALL_LOOPS[operation]
    undo = CALL_LOOPS[UNDO[operation]] if operation in UNDO else None
    calls = len(sections) if "section" in operation else NCALLS
    benchmark.group = f"per call: {operation}"
    time_loop(benchmark, impl, lambda: loop(m, bitmap, items), calls,
              setup=None if undo is None else lambda: undo(m, bitmap, items) and None)


@pytest.mark.parametrize("impl", IMPLS)
def test_per_call_find_next_set(benchmark, sparse, impl):
    maps, starts = sparse
    find = methods(maps[impl], impl)["find_next_set"]
    benchmark.group = "per call: find_next_set (4096 pages over 2 TiB)"
    time_loop(benchmark, impl, lambda: each(find, starts), len(starts), rounds=5)


@pytest.mark.parametrize("impl", IMPLS)
def test_per_call_hotplug(benchmark, hotplug_sections, impl):
    """4096 whole-section clear_range, then 2048 set_range, on the 8 nodes set."""
    removed, added = hotplug_sections

    def setup():
        gc.collect()  # the last round's map goes now, not inside the next timing
        return (fill_all_nodes(new_map(impl), impl),), {}

    def loop(bitmap):
        m = methods(bitmap, impl)
        each_range(m["clear_range"], removed, SECTION)
        each_range(m["set_range"], added, SECTION)

    loop(setup()[0][0])
    record(benchmark, impl, suite=SUITE, calls=NREMOVE + NADD)
    benchmark.group = "per call: hotplug loop (4096 clear_range, 2048 set_range)"
    benchmark.pedantic(loop, setup=setup, rounds=5, iterations=1)


# --- 2. first build ---------------------------------------------------------------

@pytest.fixture(scope="module")
def machine_pfns():
    """16 Mi random pfns, uniform over the present memory of a synthetic 2 TiB machine."""
    mm = MemoryMap.synthetic("2 TiB", nodes=8, seed=0, geometry=GEOMETRY)
    rng = np.random.default_rng(16)
    lo, hi = mm.ranges[:, 0], mm.ranges[:, 1]
    ends = np.cumsum(hi - lo)
    k = rng.integers(0, ends[-1], SAMPLE)
    which = np.searchsorted(ends, k, side="right")
    return mm, lo[which] + k - (ends[which] - (hi - lo)[which])


def fill_machine(bitmap, mm: MemoryMap):
    """Set every present range: whole sections, so PageFlags entries become FULL."""
    for start, stop in mm.ranges.tolist():
        bitmap.set_range(start, stop)
    return bitmap


def time_fresh(benchmark, impl: str, target: Callable, make: Callable, rounds: int = 7):
    """Time ``target(make())`` with a new map from ``make`` every round (untimed)."""
    def setup():
        gc.collect()
        return (make(),), {}

    target(make())  # warms the JIT; the timed rounds never see this map
    record(benchmark, impl, suite=SUITE, calls=1)
    benchmark.pedantic(target, setup=setup, rounds=rounds, iterations=1)


PAGE_IMPLS = {"pageflags": PageFlags, "flat": FlatPageFlags}


@pytest.mark.parametrize("impl", PAGE_IMPLS)
def test_first_set_many(benchmark, machine_pfns, impl):
    _, pfns = machine_pfns
    benchmark.group = "first build: set_many 16 Mi present pfns into a new map"
    time_fresh(benchmark, impl, lambda m: m.set_many(pfns), lambda: PAGE_IMPLS[impl](GEOMETRY))


@pytest.mark.parametrize("impl", PAGE_IMPLS)
def test_first_clear_many(benchmark, machine_pfns, impl):
    mm, pfns = machine_pfns
    benchmark.group = "first build: clear_many 16 Mi pfns from a new map of FULL entries"
    time_fresh(benchmark, impl, lambda m: m.clear_many(pfns),
               lambda: fill_machine(PAGE_IMPLS[impl](GEOMETRY), mm))


@pytest.mark.parametrize("impl", PAGE_IMPLS)
def test_first_from_array(benchmark, machine_pfns, impl):
    _, pfns = machine_pfns
    cls = PAGE_IMPLS[impl]
    benchmark.group = "first build: from_array 16 Mi present pfns"
    # As the other first builds: 7 rounds, the last round's map collected untimed.
    time_fresh(benchmark, impl, lambda kind: kind.from_array(pfns, GEOMETRY), lambda: cls)


@pytest.fixture(scope="module")
def node_words(machine_pfns):
    """The packed words of each node of the 16 Mi random present pfns: what put_words
    writes into a new map (a chunk's worth of words in every present section)."""
    _, pfns = machine_pfns
    flat = FlatPageFlags.from_array(pfns, GEOMETRY)
    windows = [(start, flat.to_words(start, stop))
               for start, stop in zip(NODE_STARTS.tolist(), NODE_STOPS.tolist(), strict=True)]
    del flat
    gc.collect()
    return windows


def put_all(bitmap, windows):
    for start, words in windows:
        bitmap.put_words(start, words)
    return bitmap


@pytest.mark.parametrize("impl", PAGE_IMPLS)
def test_first_put_words(benchmark, node_words, impl):
    benchmark.group = "first build: put_words of the 8 nodes' words into a new map"
    time_fresh(benchmark, impl, lambda m: put_all(m, node_words),
               lambda: PAGE_IMPLS[impl](GEOMETRY))


@pytest.fixture(scope="module")
def other_pfns():
    """Another 16 Mi random present pfns, for an operand of the algebra rows."""
    rng = np.random.default_rng(32)
    node = rng.integers(0, len(NODE_STARTS), SAMPLE)
    return NODE_STARTS[node] + rng.integers(0, NODE_PAGES, SAMPLE)


@pytest.mark.parametrize("impl", PAGE_IMPLS)
def test_first_algebra_result(benchmark, machine_pfns, other_pfns, impl):
    """``a | b`` of two random maps: a new map whose every present section needs a
    chunk (pageflags computes 16384 chunks; flat ORs its 2 GiB)."""
    _, pfns = machine_pfns
    cls = PAGE_IMPLS[impl]
    a, b = cls.from_array(pfns, GEOMETRY), cls.from_array(other_pfns, GEOMETRY)
    benchmark.group = "first build: a | b of two random maps (a new map)"
    time_loop(benchmark, impl, lambda: a | b, 1, rounds=5)


@pytest.mark.parametrize("impl", PAGE_IMPLS)
def test_first_copy(benchmark, machine_pfns, impl):
    _, pfns = machine_pfns
    bitmap = PAGE_IMPLS[impl].from_array(pfns, GEOMETRY)
    benchmark.group = "first build: copy() of a random map"
    time_loop(benchmark, impl, bitmap.copy, 1, rounds=5)


@pytest.fixture(scope="module")
def dirty_maps(machine_pfns):
    """The 16 Mi random present pfns set, in each implementation."""
    _, pfns = machine_pfns
    maps = {impl: set_pfns(new_map(impl), impl, pfns) for impl in IMPLS}
    yield maps
    maps.clear()
    gc.collect()


@pytest.mark.parametrize("impl", PAGE_IMPLS)
def test_warm_test_many(benchmark, machine_pfns, dirty_maps, impl):
    _, pfns = machine_pfns
    bitmap = dirty_maps[impl]
    benchmark.group = "warm: test_many 16 Mi present pfns"
    time_loop(benchmark, impl, lambda: bitmap.test_many(pfns), 1, rounds=3)


def roaring_to_array(bitmap) -> np.ndarray:
    """pyroaring's fastest way to a NumPy array: ``to_array()`` viewed without a copy
    (``np.array(bm)`` iterates, 13x slower; ``np.fromiter`` 4x)."""
    return np.frombuffer(bitmap.to_array(), dtype=np.uint64)


@pytest.mark.parametrize("impl", IMPLS)
def test_to_array(benchmark, dirty_maps, impl):
    bitmap = dirty_maps[impl]
    convert = (lambda: roaring_to_array(bitmap)) if impl == "pyroaring" else bitmap.to_array
    benchmark.group = "warm: to_array of the set pages (16.5 million)"
    time_loop(benchmark, impl, convert, 1, rounds=3)
    benchmark.extra_info["pages"] = len(bitmap) if impl == "pyroaring" else bitmap.count()


@pytest.mark.parametrize("impl", PAGE_IMPLS)
def test_to_array_into_a_buffer(benchmark, dirty_maps, impl):
    """``to_array(out=buffer)``, the buffer reused round after round: the same scan
    without the page faults of a new 132 MB result (pyroaring has no such call; its
    row above is the comparison)."""
    bitmap = dirty_maps[impl]
    buffer = np.empty(bitmap.count(), dtype=np.int64)
    benchmark.group = "warm: to_array of the set pages into a reused out= buffer"
    time_loop(benchmark, impl, lambda: bitmap.to_array(out=buffer), 1, rounds=5)


# --- 3. first use -----------------------------------------------------------------

BASELINE_SCRIPT = "import numba, numpy"
FIRST_USE_ROUNDS = 11


def run_fresh_python(code: str) -> None:
    """Run ``code`` in a new interpreter that imports this checkout's pageflags."""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=fresh_env())


def test_first_use(benchmark):
    """The dozen-operation script in fresh processes, each round right after a fresh
    ``import numba, numpy`` (untimed by pytest-benchmark, timed here): on a shared
    machine the two drift together, so their difference holds where neither does."""
    baseline: list[float] = []

    def run_baseline():
        start = time.perf_counter()
        run_fresh_python(BASELINE_SCRIPT)
        baseline.append(time.perf_counter() - start)
        return (), {}

    run_fresh_python(FIRST_USE_SCRIPT)  # fills the Numba cache
    record(benchmark, "pageflags", suite=SUITE, calls=1)
    benchmark.group = "first use: a fresh process, warm Numba cache"
    benchmark.pedantic(lambda: run_fresh_python(FIRST_USE_SCRIPT), setup=run_baseline,
                       rounds=FIRST_USE_ROUNDS, iterations=1)
    benchmark.extra_info["baseline_s"] = baseline


# --- the table --------------------------------------------------------------------

def per_call_times(run: dict) -> dict[str, dict[str, float]]:
    """Group -> implementation -> best (minimum) time per call, for this suite."""
    groups: dict[str, dict[str, float]] = {}
    for bench in run["benchmarks"]:
        info = bench.get("extra_info", {})
        if info.get("suite") != SUITE or "stats" not in bench:
            continue
        per_call = bench["stats"]["min"] / info.get("calls", 1)
        groups.setdefault(bench["group"], {})[info["impl"]] = per_call
    return groups


def calls_table(run: dict) -> str:
    """Markdown: best time per call of each implementation and pageflags' time ratios."""
    groups = per_call_times(run)
    lines = []
    for group, times in groups.items():
        if group.startswith("first use"):
            continue
        ours = times.get("pageflags")
        cells = [_human(times[impl]) if impl in times else "" for impl in IMPLS]
        ratios = [f"{ours / times[impl]:,.2f}" if ours and impl in times else ""
                  for impl in IMPLS[1:]]
        lines.append(f"| {group} | " + " | ".join(cells + ratios) + " |")
    if lines:
        lines[:0] = ["| operation | pageflags | flat | pyroaring | pageflags / flat "
                     "| pageflags / pyroaring |", "|---|---|---|---|---|---|"]
        lines.append("\nTimes are per call (best round / calls in it); a ratio above 1"
                     " means pageflags takes longer.")
    lines.extend(first_use_lines(run))
    return "\n".join(lines)


def first_use_lines(run: dict) -> list[str]:
    """The first-use rounds against the ``import numba, numpy`` run just before each."""
    for bench in run["benchmarks"]:
        baseline = bench.get("extra_info", {}).get("baseline_s")
        if baseline and "stats" in bench:
            rounds = bench["stats"]["data"]
            extra = sorted(r - b for r, b in zip(rounds, baseline[-len(rounds):], strict=True))
            return [f"First use: `import numba, numpy` {_human(min(baseline))} (best of"
                    f" {len(baseline)}), the dozen-operation script {_human(min(rounds))};"
                    f" best difference {min(rounds) - min(baseline):.3f} s, median"
                    f" difference of a round and the import before it"
                    f" {extra[len(extra) // 2]:.3f} s."]
    return []


def _human(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


SUMMARIES.append(calls_table)


def main(argv: list[str] | None = None) -> int:
    """Print the table of a saved run: ``python bench/bench_calls.py RUN.json``."""
    import json

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python bench/bench_calls.py RUN.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        print(calls_table(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
