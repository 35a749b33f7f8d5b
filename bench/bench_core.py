"""Core-engine floors, PageFlags beside FlatPageFlags.

Run: ``python -m pytest bench/bench_core.py --benchmark-only``; turn a saved run into
ratios with ``python bench/ratios.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import GEOMETRY, NODE_STARTS, NODE_STOPS, fill_nodes, run

from pageflags import FlatPageFlags, Geometry, PageFlags, _kernels

IMPLS = {"pageflags": PageFlags, "flat": FlatPageFlags}


@pytest.mark.benchmark(group="set_range over 8 nodes")
@pytest.mark.parametrize("impl", IMPLS)
def test_set_range_nodes(benchmark, impl):
    flags = IMPLS[impl](GEOMETRY)
    run(benchmark, impl, fill_nodes, flags)
    benchmark.extra_info["nbytes"] = flags.nbytes
    if impl == "pageflags":
        assert flags.stats()["allocated"] == 0 and flags.nbytes < 16 << 20


@pytest.mark.benchmark(group="set_many 16Mi present pfns")
@pytest.mark.parametrize("impl", [0, 1], ids=list(IMPLS))
def test_set_many_present(benchmark, random_maps, present_pfns, impl):
    run(benchmark, list(IMPLS)[impl], random_maps[impl].set_many, present_pfns, rounds=7)


@pytest.mark.benchmark(group="test_many 16Mi present pfns")
@pytest.mark.parametrize("impl", [0, 1], ids=list(IMPLS))
def test_test_many_present(benchmark, random_maps, present_pfns, impl):
    run(benchmark, list(IMPLS)[impl], random_maps[impl].test_many, present_pfns, rounds=7)


@pytest.mark.benchmark(group="test_many 16Mi pfns over the whole space")
@pytest.mark.parametrize("impl", [0, 1], ids=list(IMPLS))
def test_test_many_spread(benchmark, random_maps, spread_pfns, impl):
    run(benchmark, list(IMPLS)[impl], random_maps[impl].test_many, spread_pfns, rounds=3)


@pytest.mark.benchmark(group="count() whole map")
@pytest.mark.parametrize("impl", [0, 1], ids=list(IMPLS))
def test_count_all(benchmark, random_maps, impl):
    run(benchmark, list(IMPLS)[impl], random_maps[impl].count)


@pytest.mark.benchmark(group="count(start, stop) one node")
@pytest.mark.parametrize("impl", [0, 1], ids=list(IMPLS))
def test_count_node(benchmark, random_maps, impl):
    # Start and stop off chunk boundaries, so the edges are popcounted.
    start, stop = int(NODE_STARTS[3]) + 12345, int(NODE_STOPS[3]) - 777
    run(benchmark, list(IMPLS)[impl], random_maps[impl].count, start, stop, rounds=20)


@pytest.mark.benchmark(group="popcount of every allocated chunk (GB/s)")
def test_chunk_popcount_bandwidth(benchmark, random_maps):
    flags = random_maps[0]
    out = np.zeros(flags.geometry.nchunks, dtype=np.int64)
    run(benchmark, "pageflags", _kernels.table_popcounts, flags._addrs,
        flags.geometry.chunk_shift, out, rounds=20)
    chunk_bytes = flags.stats()["chunk_bytes"]
    benchmark.extra_info["bytes_read"] = chunk_bytes
    benchmark.extra_info["GB_per_s"] = chunk_bytes / benchmark.stats.stats.min / 1e9


@pytest.mark.benchmark(group="popcount of every allocated chunk (GB/s)")
def test_flat_popcount_bandwidth(benchmark, random_maps):
    """The same bytes read as one contiguous array: the machine's popcount bandwidth."""
    flags = random_maps[0]
    data = np.stack(flags.table[flags._allocated_mask()])
    words = data.ravel()
    run(benchmark, "flat", _kernels.count_bits, words, 0, words.size * 64, rounds=20)
    benchmark.extra_info["GB_per_s"] = words.nbytes / benchmark.stats.stats.min / 1e9


@pytest.mark.benchmark(group="52-bit space: create and set 1 TiB")
def test_five_level_space(benchmark):
    def make():
        flags = PageFlags(Geometry(52))
        flags.set_range(1 << 39, (1 << 39) + (1 << 28))
        return flags
    flags = run(benchmark, "pageflags", make, rounds=3)
    benchmark.extra_info["stats"] = flags.stats()
