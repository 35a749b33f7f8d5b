"""The sharded part of ``pageflags scan --workers N`` / ``--scheduler ADDRESS``.

The main job's builds, counts and section walk run again on a
:class:`~pageflags.ShardedPageFlags` of the same data, on a LocalCluster of ``N``
single-threaded worker processes or on a running scheduler, and must agree with the
local :class:`~pageflags.PageFlags` results.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .bitmap import PageFlags
from .geometry import Geometry
from .harness import best_time, probe_walk
from .sharded import ShardedPageFlags, distributed_module

__all__ = ["connect", "times", "warm_up"]


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: a new LocalCluster of ``workers`` single-threaded worker processes
    (loopback only; a dashboard, if bokeh is installed, on a random loopback port), or
    the scheduler at ``scheduler``."""
    distributed = distributed_module()
    if scheduler is not None:
        with distributed.Client(scheduler) as client:
            yield client
        return
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster) as client:
        yield client


def warm_up() -> None:
    """Compile (or load from the cache) the kernels the sharded scan runs; run on
    every worker, so no timing includes a JIT."""
    g = Geometry.from_npages(1 << 16)
    a = PageFlags.from_ranges([10], [1 << 15], g)
    b = a.copy()
    b.set_many(np.arange(3))
    probe_walk(a | b)
    (a & b).count_and(a - b)


def times(client: Any, geometry: Geometry, ranges: np.ndarray, dirty_pfns: np.ndarray,
          extents: list[tuple[int, int]], local: tuple[PageFlags, PageFlags],
          repeat: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Seconds of each sharded operation (by the scan's operation names) and a summary.

    ``local`` is the scan's ``(present, dirty)`` PageFlags; every sharded result must
    equal its result there (``RuntimeError`` otherwise).  Builds run once, after a
    tiny untimed build compiles the workers' kernels; the rest run once untimed,
    then best of ``repeat``.
    """
    client.run(warm_up)

    t0 = time.perf_counter()
    present = ShardedPageFlags.from_ranges(ranges[:, 0], ranges[:, 1], geometry,
                                           client=client).wait()
    t1 = time.perf_counter()
    dirty = ShardedPageFlags(geometry, client=client)
    dirty.set_many(dirty_pfns)
    dirty.wait()
    seconds = {"build present": t1 - t0, "build dirty": time.perf_counter() - t1}

    lp, ld = local
    checks: dict[str, tuple[Callable[[], Any], Any]] = {
        "count": (dirty.count, ld.count()),
        "count present": (present.count, lp.count()),
        "count by node": (lambda: [dirty.count(lo, hi) for lo, hi in extents],
                          [ld.count(lo, hi) for lo, hi in extents]),
        "find walk, per section": (lambda: sum(dirty.map_shards(probe_walk).values()),
                                   probe_walk(ld)),
        "dirty & present": (lambda: (dirty & present).wait(), None),
        "count_and": (lambda: dirty.count_and(present), ld.count_and(lp)),
    }
    for op, (fn, expected) in checks.items():
        got = fn()
        if expected is not None and got != expected:
            raise RuntimeError(f"sharded and local pageflags disagree on {op}: "
                               f"{got} vs {expected}")
        seconds[op] = best_time(fn, repeat)
    info = {"workers": len(client.scheduler_info()["workers"]),
            "shards": dirty.nshards, "shard_pages": dirty.shard_pages,
            "present_shards": sum(f is not None for f in dirty.futures), "agree": True}
    return seconds, info
