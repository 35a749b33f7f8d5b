"""ShardedPageFlags on a LocalCluster: 2 single-threaded workers against 1.

Run: ``python -m pytest bench/bench_sharded.py --benchmark-only --benchmark-group-by=group
-o python_files='bench_*.py'`` (not part of the default test run; needs the
``distributed`` extra).

* ``dense build and count``: 2^33 pages (2^18 sections, 1 GiB of chunk memory) built
  with one range per section that leaves its first and last page clear, so every
  section gets a private chunk, then counted; 8 default shards of 2^30 pages.  The
  floor: 2 workers at least 1.5x faster than 1.
* ``sparse count``: ``count()`` of a sparse 46-bit map (16 shards, 4 present, 10^5
  random pages in each) against one local ``count()``; the floor: the sharded one
  under 50 ms.
"""

from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="needs pageflags[distributed]")

from pageflags import Geometry, PageFlags, ShardedPageFlags  # noqa: E402

ROUNDS = {"rounds": 3, "iterations": 1, "warmup_rounds": 1}
DENSE = Geometry.from_npages(1 << 33)


@pytest.fixture(scope="module", params=[1, 2], ids=["1 worker", "2 workers"])
def client(request):
    with distributed.LocalCluster(n_workers=request.param, threads_per_worker=1,
                                  processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster) as client:
        yield client


@pytest.mark.benchmark(group="dense build and count, 2^33 pages")
def test_dense_build_and_count(benchmark, client):
    g = DENSE
    starts = (np.arange(g.nchunks, dtype=np.int64) << g.chunk_shift) + 1
    stops = starts + g.pages_per_chunk - 2

    def build_and_count():
        flags = ShardedPageFlags.from_ranges(starts, stops, g, client=client)
        return flags.count()

    benchmark.extra_info["impl"] = f"{len(client.scheduler_info()['workers'])} workers"
    assert benchmark.pedantic(build_and_count, **ROUNDS) == int((stops - starts).sum())


@pytest.mark.benchmark(group="sparse 46-bit count")
def test_sparse_count(benchmark, client):
    g = Geometry(46)
    rng = np.random.default_rng(7)
    pfns = np.concatenate([(k << 32) + rng.integers(0, 1 << 30, 100_000)
                           for k in range(4)])
    flags = ShardedPageFlags(g, client=client)
    flags.set_many(pfns)
    benchmark.extra_info["impl"] = f"{len(client.scheduler_info()['workers'])} workers"
    assert benchmark(flags.count) == np.unique(pfns).size


@pytest.mark.benchmark(group="sparse 46-bit count")
def test_sparse_count_local(benchmark):
    flags = PageFlags(Geometry(46))
    rng = np.random.default_rng(7)
    flags.set_many(np.concatenate([(k << 32) + rng.integers(0, 1 << 30, 100_000)
                                   for k in range(4)]))
    benchmark.extra_info["impl"] = "local PageFlags"
    benchmark(flags.count)
