"""ShardedPageFlags on a 2-worker LocalCluster (loopback only), against one local PageFlags.

Every sharded operation runs on both maps with the same data, over geometries with
small chunks so that many shard edges, absent shards and FULL shards fit in a small
model.  Workers are processes so that one can be restarted mid-batch and so that a
worker's ``memory_limit`` is its own.
"""

from __future__ import annotations

import json
import threading
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip(
    "distributed", reason='needs the distributed extra: pip install "pageflags[distributed]"')

import dask  # noqa: E402  (after the skip: only there when distributed is)
from _mapkit import exercise, other_ranges  # noqa: E402

from pageflags import (  # noqa: E402
    FormatError,
    Geometry,
    PageFlags,
    PageMapLike,
    ShardedPageFlags,
    _manifest,
    _shard_tasks,
    _system,
)
from pageflags.interface import PageFlagsStats, ShardedStats, ShardedTotals  # noqa: E402

# 40 chunks of 128 pages and a partial 41st (50 pages); shards of 3 chunks, the last
# one a partial chunk alone: 14 shards.
G = Geometry.from_npages(40 * 128 + 50, chunk_shift=7)
SHARD = 3 * 128
WORKER_MEMORY = 768 << 20


@pytest.fixture(scope="module")
def client():
    # No pausing or spilling (a paused worker would hang the test); a worker past 95%
    # of its memory_limit is still killed by its nanny, which the big-map test needs.
    with dask.config.set({"distributed.worker.memory.target": False,
                          "distributed.worker.memory.spill": False,
                          "distributed.worker.memory.pause": False}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address="127.0.0.1:0", host="127.0.0.1",
                                     memory_limit=WORKER_MEMORY) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def both(client, geometry=G, shard_pages=SHARD):
    return ShardedPageFlags(geometry, shard_pages, client), PageFlags(geometry)


def apply(maps, method, *args):
    for m in maps:
        getattr(m, method)(*args)


def random_writes(maps, rng, n=12):
    """Writes of every kind, ranges and pfns across shard edges; shards 5-7 stay absent."""
    npages = maps[1].npages
    avoid = (5 * SHARD, 8 * SHARD)
    for _ in range(n):
        kind = rng.integers(6)
        if kind < 2:
            start = int(rng.integers(0, npages))
            stop = min(npages, start + int(rng.integers(0, 3 * SHARD)))
            if start < avoid[1] and stop > avoid[0]:
                continue
            apply(maps, "set_range" if kind == 0 else "clear_range", start, stop)
        elif kind < 4:
            pfns = rng.integers(0, npages, 300)
            pfns = pfns[(pfns < avoid[0]) | (pfns >= avoid[1])]
            apply(maps, "set_many" if kind == 2 else "clear_many", pfns)
        else:
            nrs = rng.choice([0, 1, 2, 3, 4, 14, 15, 30, 40], 3)
            sections(maps, nrs, kind == 4)


def sections(maps, nrs, add):
    """Hotplug: sections added to (or removed from) both maps; PageFlags by its ranges."""
    sharded, local = maps
    (sharded.add_sections if add else sharded.remove_sections)(nrs)
    for nr in np.asarray(nrs).tolist():
        lo = nr * local.geometry.pages_per_chunk
        hi = min(lo + local.geometry.pages_per_chunk, local.npages)
        (local.set_range if add else local.clear_range)(lo, hi)


def check_reads(sharded, local):
    """Every read of the sharded map equals the local map's."""
    npages = local.npages
    cuts = sorted({0, 1, 127, 128, SHARD - 1, SHARD, SHARD + 1, 2 * SHARD, 5 * SHARD + 7,
                   8 * SHARD, npages - 51, npages - 1, npages})
    assert sharded.count() == local.count()
    for start, stop in zip(cuts[:-3], cuts[3:], strict=True):
        assert sharded.count(start, stop) == local.count(start, stop), (start, stop)
        assert sharded.any(start, stop) == local.any(start, stop), (start, stop)
        assert sharded.all(start, stop) == local.all(start, stop), (start, stop)
    assert sharded.count(7, 7) == 0 and not sharded.any(7, 7) and sharded.all(7, 7)
    for start in cuts:
        assert sharded.find_next_set(start) == local.find_next_set(start), start
        assert sharded.find_next_clear(start) == local.find_next_clear(start), start
    pfns = np.array([*cuts[:-1], *np.random.default_rng(1).integers(0, npages, 500)])
    np.testing.assert_array_equal(sharded.test_many(pfns), local.test_many(pfns))
    assert sharded.test_many(pfns.reshape(-1, 2)).shape == (pfns.size // 2, 2)
    blocks = list(sharded.iter_arrays(5, npages - 3, max_len=100))
    assert all(0 < b.size <= 100 for b in blocks)
    expected = local.to_array(5, npages - 3)
    np.testing.assert_array_equal(np.concatenate(blocks) if blocks else blocks, expected)
    np.testing.assert_array_equal(sharded.to_array(), local.to_array())
    buffer = np.full(expected.size + 3, -1, dtype=np.int64)
    into = sharded.to_array(5, npages - 3, out=buffer)
    assert into.base is buffer and np.array_equal(into, expected)
    assert buffer[expected.size:].tolist() == [-1] * 3
    if expected.size:
        with pytest.raises(ValueError, match="room"):
            sharded.to_array(5, npages - 3, out=buffer[:expected.size - 1])
    stats = sharded.stats()
    total = stats["total"]
    assert set(stats) == ShardedStats.__required_keys__
    assert set(total) == ShardedTotals.__required_keys__
    assert all(set(s) == PageFlagsStats.__required_keys__ for s in stats["shards"] if s)
    assert total["count"] == local.count() and total["nchunks"] == G.nchunks
    local_stats = local.stats()
    for key in ("none", "full", "allocated", "chunk_bytes", "npages", "flat_bytes"):
        assert total[key] == local_stats[key], key
    assert total["nshards"] == 14
    assert total["present"] == sum(f is not None for f in sharded.futures)
    assert sharded.to_local() == local


def test_random_writes_match_a_local_map(client):
    maps = both(client)
    random_writes(maps, np.random.default_rng(0))
    apply(maps, "set_range", SHARD - 3, 2 * SHARD + 3)      # straddles two edges
    apply(maps, "set_many", [SHARD - 1, SHARD, 4 * SHARD - 1, G.npages - 1])
    sharded, local = maps
    assert sharded.futures[5] is None and sharded.futures[6] is None  # absent shards
    assert sharded.stats()["shards"][5] is None
    check_reads(sharded, local)


def test_an_empty_map_has_no_shards_and_reads_as_zero(client):
    sharded, local = both(client)
    sharded.clear_range(0, G.npages)
    sharded.clear_many([1, 2, 3])
    sharded.remove_sections([0, 40])
    assert sharded.futures == (None,) * sharded.nshards == (None,) * 14
    check_reads(sharded, local)
    assert sharded.find_next_set() == -1 and sharded.find_next_clear(99) == 99


def test_all_full_shards(client):
    g = Geometry.from_npages(12 * 128, chunk_shift=7)
    sharded, local = both(client, g, 2 * 128)
    apply((sharded, local), "set_range", 0, g.npages)
    stats = sharded.stats()
    assert stats["total"]["full"] == 12 and stats["total"]["allocated"] == 0
    assert all(s["full"] == 2 for s in stats["shards"])
    assert sharded.all() and sharded.find_next_clear(0) == -1
    assert sharded.count(1, g.npages - 1) == g.npages - 2
    apply((sharded, local), "clear_many", [5, 2 * 128])
    assert sharded.find_next_clear(0) == 5 and sharded.find_next_clear(6) == 256
    assert sharded.to_local() == local


def test_algebra_between_maps_sharded_alike(client):
    rng = np.random.default_rng(2)
    a, la = both(client)
    b, lb = both(client)
    random_writes((a, la), rng)
    random_writes((b, lb), rng)
    apply((b, lb), "set_range", 5 * SHARD, 6 * SHARD)   # b has shard 5, a does not
    for name in ("__and__", "__or__", "__xor__", "__sub__"):
        assert getattr(a, name)(b).to_local() == getattr(la, name)(lb), name
        assert getattr(b, name)(a).to_local() == getattr(lb, name)(la), name
    for name in ("count_and", "count_or", "count_xor", "count_andnot"):
        assert getattr(a, name)(b) == getattr(la, name)(lb), name
    before = a.to_local()
    a |= b
    la |= lb
    assert a.to_local() == la and before != la
    a -= b
    la -= lb
    a &= b
    la &= lb
    a ^= b
    la ^= lb
    assert a.to_local() == la


def test_algebra_refuses_maps_sharded_differently(client):
    a, local = both(client)
    with pytest.raises(ValueError, match="not sharded alike"):
        a & ShardedPageFlags(G, 2 * SHARD, client)
    with pytest.raises(TypeError, match="PageFlags"):
        a | local


def test_bad_input_changes_nothing(client):
    sharded, _ = both(client)
    sharded.set_range(0, 10)
    before = sharded.futures
    with pytest.raises(IndexError, match="outside"):
        sharded.set_many([1, 2, G.npages])
    with pytest.raises(IndexError):
        sharded.clear_many([-1])
    with pytest.raises(TypeError):
        sharded.set_many([1.5])
    with pytest.raises(ValueError):
        sharded.set_range(10, 5)
    with pytest.raises(IndexError):
        sharded.count(0, G.npages + 1)
    with pytest.raises(IndexError):
        sharded.add_sections([41])
    with pytest.raises(ValueError, match="max_len"):
        sharded.iter_arrays(max_len=0)
    assert sharded.futures == before and sharded.count() == 10
    for bad in (0, 100, 128 + 1):
        with pytest.raises(ValueError, match="multiple of 128"):
            ShardedPageFlags(G, bad, client)


def test_arrays_that_only_look_like_integers_are_refused(client):
    sharded, _ = both(client)
    sharded.set_range(0, 10)
    before = sharded.futures
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        matrix = np.matrix([[1, 2]])
    for bad in (matrix, np.ma.array([1, 2], mask=[False, True]), [True, 3],
                np.array([3], dtype="m8[s]")):
        for method in ("set_many", "clear_many", "test_many"):
            with pytest.raises(TypeError):
                getattr(sharded, method)(bad)
    with pytest.raises(TypeError):
        sharded.set_range(np.timedelta64(0), 5)
    assert sharded.futures == before and sharded.count() == 10
    assert sharded.test_many([[0], [11]]).tolist() == [[True], [False]]


def test_default_shards_and_repr(client):
    flags = ShardedPageFlags(Geometry(46), client=client)
    assert flags.shard_pages == 1 << 30 and flags.nshards == 16
    assert ShardedPageFlags(G, 1 << 30, client).nshards == 1   # one shard, capped
    assert "0/16 shards present" in repr(flags)
    assert flags.shard_bounds(15) == (15 << 30, 16 << 30)


def test_a_write_task_run_twice_gives_the_same_map(client):
    sharded, _ = both(client)
    sharded.set_many([1, 200, 300])
    prev = sharded.futures[0]
    args = (_shard_tasks.write, prev, sharded.shard_geometry(0), "clear_many", [200])
    first, second = (client.submit(*args, pure=False) for _ in range(2))
    assert first.key != second.key
    assert first.result() == second.result()
    assert prev.result().count() == 3 and first.result().count() == 2   # input unchanged


def test_a_worker_restarted_mid_batch_still_ends_with_the_same_map(client):
    sharded, local = both(client)
    rng = np.random.default_rng(3)
    for i in range(16):
        pfns = rng.integers(0, G.npages, 2000)
        apply((sharded, local), "set_many" if i % 4 else "clear_many", pfns)
        if i == 8:  # writes still in flight: the lost shards are rebuilt from lineage
            client.restart_workers([next(iter(client.scheduler_info()["workers"]))])
    assert sharded.to_local() == local


def test_tasks_run_off_the_main_thread_so_algebra_stays_serial(client):
    # PageFlags algebra takes its parallel kernel only on the main thread.
    assert not client.submit(lambda: threading.current_thread() is threading.main_thread(),
                             pure=False).result()


def test_from_local_and_to_local_round_trip(client):
    local = PageFlags(G)
    local.set_range(100, 2 * SHARD + 5)
    local.set_many([9 * SHARD + 1, G.npages - 1])
    sharded = ShardedPageFlags.from_local(local, client, SHARD)
    assert sum(f is not None for f in sharded.futures) == 5
    check_reads(sharded, local)
    with pytest.raises(TypeError):
        ShardedPageFlags.from_local(sharded, client)


def test_to_local_refuses_what_would_not_fit(client, monkeypatch):
    sharded, _ = both(client)
    sharded.set_many([1, 2 * SHARD])
    monkeypatch.setattr(_system, "available_bytes", lambda: 100)
    with pytest.raises(MemoryError, match="to_local"):
        sharded.to_local()


def test_save_and_load(client, tmp_path):
    sharded, local = both(client)
    random_writes((sharded, local), np.random.default_rng(4))
    sharded.save(tmp_path)
    first = sorted(p.name for p in tmp_path.iterdir())
    assert "manifest.json" in first and all(".g1." in n for n in first if n.startswith("shard"))
    loaded = ShardedPageFlags.load(tmp_path, client)
    assert loaded.shard_pages == SHARD and loaded.to_local() == local
    apply((sharded, local), "clear_range", 0, 2 * SHARD)
    sharded.save(tmp_path)   # generation 2 replaces generation 1's files
    names = [p.name for p in tmp_path.glob("shard-*")]
    assert names and all(".g2." in n for n in names)
    assert ShardedPageFlags.load(tmp_path, client).to_local() == local


def test_a_crash_before_the_manifest_leaves_the_old_save(client, tmp_path, monkeypatch):
    sharded, local = both(client)
    sharded.set_range(0, 3 * SHARD)
    local.set_range(0, 3 * SHARD)
    sharded.save(tmp_path)
    sharded.clear_range(0, G.npages)

    def crash(*args):
        raise OSError("power cut")
    monkeypatch.setattr(_manifest, "write", crash)
    with pytest.raises(OSError, match="power cut"):
        sharded.save(tmp_path)
    monkeypatch.undo()
    assert ShardedPageFlags.load(tmp_path, client).to_local() == local


def test_load_rejects_a_bad_folder(client, tmp_path):
    with pytest.raises(FormatError, match="no manifest"):
        ShardedPageFlags.load(tmp_path, client)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(FormatError, match="not JSON"):
        ShardedPageFlags.load(tmp_path, client)
    sharded, _ = both(client)
    sharded.set_many([1, 5 * SHARD])
    sharded.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["count"] = 3
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError, match="count"):
        ShardedPageFlags.load(tmp_path, client)
    (tmp_path / manifest["shards"][0]).write_bytes(b"junk")
    with pytest.raises(FormatError):
        ShardedPageFlags.load(tmp_path, client)


def test_a_map_bigger_than_a_worker_is_built_counted_and_saved(client, tmp_path):
    # One allocated chunk in every other section: 820 MiB of chunks in 26 shards, each
    # worker limited to 768 MiB (and killed by its nanny past 95% of it).
    g = Geometry(46)
    sharded = ShardedPageFlags(g, 1 << 29, client)
    sections = np.arange(0, 420_000, 2)
    pfns = (sections << g.chunk_shift) + 5
    sharded.set_many(pfns)
    total = sharded.stats()["total"]
    assert total["chunk_bytes"] > WORKER_MEMORY and total["allocated"] == sections.size
    assert sharded.count() == sections.size
    assert sharded.count(0, 210_000 << g.chunk_shift) == sections.size // 2
    sharded.save(tmp_path)
    assert len(list(tmp_path.glob("shard-*.pgf"))) == 26
    assert json.loads((tmp_path / "manifest.json").read_text())["count"] == sections.size


@pytest.mark.parametrize("where", ["--scheduler", "--workers"])
def test_scan_runs_sharded_on_workers_or_a_scheduler(client, where, capsys):
    from pageflags.cli import main

    target = client.scheduler.address if where == "--scheduler" else "1"
    argv = ["scan", "--phys-bits", "34", "--memory", "1GiB", "--nodes", "2", "--repeat", "1",
            "--walk", "500", "--no-flat", "--json", where, target]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sharded"]["agree"] is True
    assert result["sharded"]["workers"] == (2 if where == "--scheduler" else 1)
    rows = {row["operation"]: row for row in result["times"]}
    for op in ("build present", "build dirty", "count", "count by node",
               "find walk, per section", "count_and"):
        assert rows[op]["sharded"] > 0
    assert "sharded" not in rows["to_array"]


def test_a_sharded_map_satisfies_the_declared_interface(client):
    sharded, local = both(client)
    assert isinstance(sharded, PageMapLike)
    ranges = other_ranges(G.npages)
    got = exercise(sharded, ShardedPageFlags.from_ranges(*ranges, G, SHARD, client))
    assert got == exercise(local, PageFlags.from_ranges(*ranges, G))
