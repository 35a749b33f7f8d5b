"""The benchmark machine: a 46-bit space with 8 NUMA nodes of 256 GiB at 8 TiB strides.

Fixtures are module-scoped and built once; every benchmark warms the JIT (and the
maps' memory) with one untimed call before pytest-benchmark times it.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from pageflags import FlatPageFlags, Geometry, PageFlags

GEOMETRY = Geometry(46)
NODES = 8
NODE_PAGES = (256 << 30) >> GEOMETRY.page_shift       # 2**26 pages
NODE_STRIDE = (8 << 40) >> GEOMETRY.page_shift        # 2**31 pages
NODE_STARTS = np.arange(NODES, dtype=np.int64) * NODE_STRIDE
NODE_STOPS = NODE_STARTS + NODE_PAGES
SAMPLE = 16 * 1024 * 1024

#: Tables to print after the run: functions of the run as pytest-benchmark saves it
#: (``{"benchmarks": [...]}``, see ``bench/ratios.py``) that return text, or "".
SUMMARIES: list = []


def pytest_configure(config):
    config.addinivalue_line("markers", "slow_bench: needs several GiB of memory")


def pytest_terminal_summary(terminalreporter, config):
    """Print the tables that benchmark modules appended to ``SUMMARIES``."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    run = {"benchmarks": [bench.as_dict(include_data=True) for bench in session.benchmarks
                          if not bench.has_error]}
    for table in SUMMARIES:
        text = table(run)
        if text:
            terminalreporter.write_sep("-", "ratios")
            terminalreporter.write_line(text)


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(2005)


@pytest.fixture(scope="session")
def present_pfns(rng):
    """16 Mi random pfns inside the 8 nodes."""
    node = rng.integers(0, NODES, SAMPLE)
    return NODE_STARTS[node] + rng.integers(0, NODE_PAGES, SAMPLE)


@pytest.fixture(scope="session")
def spread_pfns(rng):
    """16 Mi random pfns over the whole 46-bit space (mostly holes)."""
    return rng.integers(0, GEOMETRY.npages, SAMPLE)


def fill_nodes(flags):
    for start, stop in zip(NODE_STARTS.tolist(), NODE_STOPS.tolist(), strict=True):
        flags.set_range(start, stop)
    return flags


@pytest.fixture(scope="module")
def present_maps():
    """The 8 nodes set, as (PageFlags, FlatPageFlags)."""
    return fill_nodes(PageFlags(GEOMETRY)), fill_nodes(FlatPageFlags(GEOMETRY))


@pytest.fixture(scope="module")
def random_maps(present_pfns):
    """The 16 Mi random present pages set, as (PageFlags, FlatPageFlags)."""
    maps = PageFlags(GEOMETRY), FlatPageFlags(GEOMETRY)
    for m in maps:
        m.set_many(present_pfns)
    return maps


def record(benchmark, impl: str, **info):
    """Record the implementation, threads (kernels are serial) and ``info``."""
    benchmark.extra_info.update({"impl": impl, "threads": 1, "cpu_count": os.cpu_count(),
                                 "phys_addr_bits": GEOMETRY.phys_addr_bits, **info})


def run(benchmark, impl, fn, *args, rounds=5, **info):
    """Warm once, then time ``fn(*args)``; record what was measured."""
    fn(*args)
    record(benchmark, impl, **info)
    return benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1)
