"""Save/load speed against np.save/np.load of the same chunk data.

Run: ``pytest bench/bench_persist.py -o python_files='bench_*.py'
--benchmark-group-by=group`` (not part of the default test run).  The map is the
seed's 2 TiB machine: 16384 sections, every one allocated, 64 MiB of chunk data.  The
baseline writes and reads that data as one ``(16384, 512)`` uint64 array.

The floor is half NumPy's speed, so each ratio in a group should stay under
2.  ``save`` fsyncs the file and its folder, so it is compared with ``np.save`` plus an
fsync; ``save(sync=False)`` with a bare ``np.save``.  ``load`` checks the checksum,
every entry and the structure, and its reads overlap the checksum on a helper
thread: with another job on the second core it loses most of that overlap.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from pageflags import Geometry, PageFlags

ROUNDS = {"rounds": 7, "iterations": 1, "warmup_rounds": 1}


@pytest.fixture(scope="module")
def dense():
    flags = PageFlags(Geometry(41))        # 2^29 pages, 16384 chunks
    rng = np.random.default_rng(0)
    flags.set_many(rng.integers(0, flags.npages, 2_000_000))
    assert flags.stats()["allocated"] == 16384
    return flags, np.stack(flags.table)


@pytest.fixture(scope="module")
def sparse():
    """16384 allocated chunks scattered over a 46-bit map's 2^19 entries."""
    flags = PageFlags(Geometry(46))
    rng = np.random.default_rng(1)
    chunks = rng.choice(flags.geometry.nchunks, 16384, replace=False)
    flags.set_many((chunks << 15) + rng.integers(0, 1 << 15, chunks.size))
    return flags


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@pytest.mark.benchmark(group="save, fsync")
def test_save(benchmark, dense, tmp_path):
    flags, _ = dense
    benchmark.pedantic(flags.save, (tmp_path / "m.pgf",), **ROUNDS)


@pytest.mark.benchmark(group="save, fsync")
def test_np_save_fsync(benchmark, dense, tmp_path):
    _, data = dense
    path = tmp_path / "m.npy"

    def np_save_fsync():
        np.save(path, data)
        _fsync(path)

    benchmark.pedantic(np_save_fsync, **ROUNDS)


@pytest.mark.benchmark(group="save, no fsync")
def test_save_no_sync(benchmark, dense, tmp_path):
    flags, _ = dense
    benchmark.pedantic(flags.save, (tmp_path / "m.pgf",), {"sync": False}, **ROUNDS)


@pytest.mark.benchmark(group="save, no fsync")
def test_np_save(benchmark, dense, tmp_path):
    _, data = dense
    benchmark.pedantic(np.save, (tmp_path / "m.npy", data), **ROUNDS)


@pytest.mark.benchmark(group="load")
def test_load(benchmark, dense, tmp_path):
    flags, _ = dense
    flags.save(tmp_path / "m.pgf")
    loaded = benchmark.pedantic(PageFlags.load, (tmp_path / "m.pgf",), **ROUNDS)
    assert loaded == flags


@pytest.mark.benchmark(group="load")
def test_np_load(benchmark, dense, tmp_path):
    _, data = dense
    np.save(tmp_path / "m.npy", data)
    benchmark.pedantic(np.load, (tmp_path / "m.npy",), **ROUNDS)


@pytest.mark.benchmark(group="load")
def test_load_sparse_46_bit(benchmark, sparse, tmp_path):
    sparse.save(tmp_path / "s.pgf")
    benchmark.pedantic(PageFlags.load, (tmp_path / "s.pgf",), **ROUNDS)


@pytest.mark.benchmark(group="roaring")
def test_to_roaring64(benchmark, dense):
    flags, _ = dense
    benchmark.pedantic(flags.to_roaring64_bytes, **ROUNDS)


@pytest.mark.benchmark(group="roaring")
def test_from_roaring64(benchmark, dense):
    flags, _ = dense
    data = flags.to_roaring64_bytes()
    benchmark.pedantic(PageFlags.from_roaring64_bytes, (data, flags.geometry), **ROUNDS)


@pytest.mark.benchmark(group="roaring")
def test_pyroaring_deserialize(benchmark, dense):
    pyroaring = pytest.importorskip("pyroaring")
    flags, _ = dense
    data = flags.to_roaring64_bytes()
    benchmark.pedantic(pyroaring.BitMap64.deserialize, (data,), **ROUNDS)
