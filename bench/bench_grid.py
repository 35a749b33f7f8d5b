"""The comparison grid: operation x implementation x space x layout.

Implementations: pageflags, a flat bitmap (``FlatPageFlags``), and pyroaring's
``BitMap64`` and ``bitarray`` when installed (skipped otherwise). Spaces: 40- and
46-bit for all; 52-bit for pageflags and pyroaring only (a flat 52-bit bitmap is
128 TiB). Layouts (``bench/grid.py``): ``sparse`` random present pages, ``full``
sections, ``hotplug``-fragmented sections. Each group is one operation on one space and
layout, so pytest-benchmark prints the implementations side by side.

Run the grid alone (bench files are not collected by the default test run)::

    python -m pytest bench/bench_grid.py --benchmark-only -o python_files='bench_*.py' \\
        --benchmark-json=grid.json --benchmark-columns=min,median,rounds
    python bench/ratios.py --wide grid.json

``-k 'pageflags or flat'`` keeps two implementations; ``-k '46-'`` one space. On a
shared 2-core machine the grid takes about 5 minutes, and peaks near 6.5 GiB (the 46-bit bitarray
case: its map, a second map and their ``&``, 2 GiB each), because only one (space,
layout, implementation) set of maps is alive at a time.

An operation a map type lacks skips with "needs ...".

Every case warms the JIT and the maps with an untimed call (two when the first is fast:
the second, free of compilation, sizes the rounds), then runs as many rounds as fit in
about :data:`ROUND_BUDGET_S` (between :data:`MIN_ROUNDS` and :data:`MAX_ROUNDS`).
``set_range`` rebuilds the layout's ranges into emptied nodes (emptied before each
round, untimed); the other operations leave the map as it was (``set_many`` sets pages
that are already set). Flat maps are ``np.zeros``, as ``FlatPageFlags`` makes them:
pages never written are the kernel's shared zero page, so a 46-bit flat map of 2 GiB
holds little private memory until something writes all of it (``&``, ``|``).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import numba
import pytest
from conftest import record
from grid import IMPLEMENTATIONS, LAYOUTS, MACHINES, OPERATIONS, Maps, available, build_maps

NPFNS = 1 << 18          # pfns per set_many / test_many call, and pages of a sparse layout
ROUND_BUDGET_S = 0.3
MIN_ROUNDS, MAX_ROUNDS = 2, 50  # 2: a 46-bit bitarray `&` takes seconds


class OneSlot:
    """Keeps the maps of one (space, layout, implementation) alive, and no more.

    Flat 46-bit maps are 2 GiB each; holding only the current maps keeps the grid's
    peak memory to one implementation's maps (the cases are ordered so that each is
    built once).
    """

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.maps: Maps | None = None

    def get(self, bits: int, layout_name: str, impl: str) -> Maps:
        if self.maps is None or self.key != (bits, layout_name, impl):
            self.maps = None
            gc.collect()
            self.maps = build_maps(MACHINES[bits], layout_name, impl, NPFNS)
            self.key = (bits, layout_name, impl)
        return self.maps


@pytest.fixture(scope="module")
def slots():
    holder = OneSlot()
    yield holder
    holder.maps = None
    gc.collect()


def _cases() -> list:
    """Every valid case, ordered so each (space, layout, implementation) is built once."""
    cases = []
    for bits in MACHINES:
        for layout in LAYOUTS:
            for impl, (_, _, spaces) in IMPLEMENTATIONS.items():
                if bits not in spaces:
                    continue
                for op in OPERATIONS:
                    if op == "set_range" and layout == "sparse":
                        continue  # a sparse layout has no ranges to set
                    group = f"{op} {bits}-bit {layout}"
                    cases.append(pytest.param(
                        bits, layout, impl, op, id=f"{bits}-{layout}-{op}-{impl}",
                        marks=pytest.mark.benchmark(group=group)))
    return cases


def _rounds(call: Callable[[], object], setup: Callable[[], object] | None) -> int:
    """Warm ``call`` (JIT, first touch of memory); how many rounds fit the budget.

    A fast warm call may have been slowed by compilation, so a second one is timed;
    a slow one already says that the minimum number of rounds will do.
    """
    spent = 0.0
    for _ in range(2):
        if setup:
            setup()
        began = time.perf_counter()
        call()
        spent = time.perf_counter() - began
        if spent >= ROUND_BUDGET_S:
            break
    return int(min(MAX_ROUNDS, max(MIN_ROUNDS, ROUND_BUDGET_S / max(spent, 1e-9))))


@pytest.mark.parametrize(("bits", "layout_name", "impl", "op"), _cases())
def test_grid(benchmark, slots, bits, layout_name, impl, op):
    if not available(op):
        pytest.skip(f"needs PageFlags.{OPERATIONS[op][0]} ")
    module = IMPLEMENTATIONS[impl][1]
    if module:
        pytest.importorskip(module)
    maps = slots.get(bits, layout_name, impl)
    call = OPERATIONS[op][1](maps)
    setup = (lambda: maps.layout.clear_nodes(maps.flags)) if op == "set_range" else None

    rounds = _rounds(call, setup)

    record(benchmark, impl, phys_addr_bits=bits, layout=layout_name, op=op,
           numba_threads=numba.get_num_threads(), **maps.info())
    benchmark.pedantic(call, setup=setup, rounds=rounds, iterations=1)
