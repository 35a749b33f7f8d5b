"""Reading kpageflags into a PageFlagSet, against ``np.unique``.

Run (not part of the default test run)::

    NUMBA_CACHE_DIR=/tmp/nc python -m pytest bench/bench_kpageflags.py -o \\
        python_files='bench_*.py' --benchmark-columns=min,median,rounds -s

(without ``--benchmark-only``, which would skip ``test_ratios`` and the 2 TiB read;
``-m 'not slow_bench'`` leaves the 2 TiB read out).

* **build + summary**: a saved 6.5 Mi-entry kpageflags file (a copy of this
  machine's ``/proc/kpageflags`` where it is readable, else a synthetic one of the
  same size from :data:`MIX`) read into a set and summarised, against
  ``np.unique(words, return_counts=True)`` on the same words already in memory.
  The floor is a ratio of at most 0.5; ``test_ratios`` (run last) fails on a miss.
* **2 TiB**: a bench-only writer makes the file of a 2 TiB machine (2^29 present
  pages in 8 nodes with holes: 4.5 GiB of words) from :data:`MIX`, in bounded
  memory; a child process reads it into a set with tracemalloc on and reports the
  peak of traced memory against the set's maps plus the read buffer, and its
  ``ru_maxrss`` growth.  Needs 5 GiB of disk and about 2 GiB of memory
  (``slow_bench``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pageflags import Geometry, MemoryMap, PageFlagSet, procfs

ROUNDS = {"rounds": 7, "iterations": 1, "warmup_rounds": 1}
LIVE_ENTRIES = 6_553_600
NOPAGE = 1 << 20
#: The 48 commonest raw flag words of a 25 GiB VM's /proc/kpageflags (6,553,600
#: entries, 143 distinct words, 70,970 runs of equal words), with their pages.
MIX = [
    (0x0, 4671576), (0x400, 1635167), (0x402415828, 57743), (0x400005828, 27459),
    (0x40000086c, 19851), (0x400415828, 18396), (0x402000028, 18338),
    (0x100000000, 9795), (0x10080, 9621), (0x40000006c, 9137), (0x80241002c, 7871),
    (0x402000068, 7306), (0x400000028, 5760), (0x80, 5219), (0x802410028, 4265),
    (0x8080, 4259), (0x400000068, 4082), (0x40200006c, 2577), (0x800410038, 2253),
    (0x802000028, 2168), (0x80241086c, 1995), (0x10000, 1892), (0x20204483c, 1716),
    (0x402005828, 1633), (0x40200086c, 1488), (0x408, 1387), (0x802000064, 1318),
    (0x40200002c, 1208), (0x2005828, 984), (0x40241006c, 948), (0x40041006c, 918),
    (0x80041086c, 900), (0x11080, 889), (0x80200002c, 814), (0x202045828, 739),
    (0x602045828, 681), (0x1080, 665), (0x402410028, 597), (0x802408028, 595),
    (0x4000000, 594), (0x80241006c, 570), (0x1410000, 511), (0x80240802c, 455),
    (0x40000002c, 455), (0x80000006c, 446), (0x201080, 439), (0x80200006c, 412),
    (0x80000002c, 381),
]
MEAN_RUN = 92  # entries per run of equal words on that machine
TIMES: dict[str, dict[str, float]] = {}


def record(benchmark, group: str, impl: str) -> None:
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    TIMES.setdefault(group, {})[impl] = benchmark.stats.stats.min


def mixed_words(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` words drawn from :data:`MIX` by its weights, in runs of mean ``MEAN_RUN``."""
    words = np.array([w for w, _ in MIX], dtype=np.uint64)
    weights = np.array([p for _, p in MIX], dtype=float)
    nruns = n // MEAN_RUN * 2 + 16
    # Every word has the same mean run, so drawing runs by pages gives each its share.
    kinds = rng.choice(words.size, nruns, p=weights / weights.sum())
    lengths = rng.geometric(1 / MEAN_RUN, nruns)
    out = np.repeat(words[kinds], lengths)
    while out.size < n:  # pragma: no cover  (the draw above almost always suffices)
        out = np.concatenate([out, out])
    return out[:n]


def write_synthetic(path: str, memmap: MemoryMap, npages: int, seed: int = 0) -> None:
    """A kpageflags file of ``npages`` entries: present pages of ``memmap`` get
    :func:`mixed_words`, the rest ``nopage`` (as the kernel reports a missing
    pfn); written in windows of 8 chunks, so memory stays bounded."""
    rng = np.random.default_rng(seed)
    present = memmap.to_flags()
    window = procfs.BUFFER_CHUNKS * procfs.CHUNK_ENTRIES
    with open(path, "wb") as out:
        for lo in range(0, npages, window):
            hi = min(lo + window, npages)
            here = present.to_bool(lo, min(hi, present.npages)) if lo < present.npages \
                else np.zeros(0, dtype=bool)
            words = np.full(hi - lo, NOPAGE, dtype=np.uint64)
            words[:here.size][here] = mixed_words(int(here.sum()), rng)
            out.write(words.astype("<u8").tobytes())


@pytest.fixture(scope="module")
def kpf_file(tmp_path_factory) -> tuple[str, str]:
    """(path, what it is): a copy of the live file, or a synthetic one of its size."""
    path = str(tmp_path_factory.mktemp("kpf") / "kpageflags")
    try:
        with open(procfs.KPAGEFLAGS, "rb") as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 21)
        if os.path.getsize(path) >= 8 * 32768:
            return path, f"a copy of {procfs.KPAGEFLAGS}"
    except OSError:
        pass
    words = mixed_words(LIVE_ENTRIES, np.random.default_rng(14))
    words.astype("<u8").tofile(path)
    return path, "synthetic, from MIX"


@pytest.fixture(scope="module")
def kpf_words(kpf_file) -> np.ndarray:
    return np.fromfile(kpf_file[0], dtype="<u8")


def build_and_summarise(path: str) -> np.ndarray:
    return PageFlagSet.from_kpageflags(path).summary()


def test_build_and_summary(benchmark, kpf_file, kpf_words):
    rows = benchmark.pedantic(build_and_summarise, (kpf_file[0],), **ROUNDS)
    record(benchmark, "build + summary", "PageFlagSet")
    benchmark.extra_info["file"] = kpf_file[1]
    assert int(rows["pages"].sum()) == kpf_words.size
    assert rows.size <= np.unique(kpf_words).size


def test_np_unique(benchmark, kpf_words):
    benchmark.pedantic(np.unique, (kpf_words,), {"return_counts": True}, **ROUNDS)
    record(benchmark, "build + summary", "np.unique")


def test_np_fromfile_and_unique(benchmark, kpf_file):
    def read_and_unique():
        return np.unique(np.fromfile(kpf_file[0], dtype="<u8"), return_counts=True)

    benchmark.pedantic(read_and_unique, **ROUNDS)
    record(benchmark, "build + summary", "np.fromfile + np.unique")


@pytest.fixture(scope="module")
def kpf_set(kpf_file) -> PageFlagSet:
    return PageFlagSet.from_kpageflags(kpf_file[0])


@pytest.mark.parametrize("what", ["select thp", "select dirty,~lru raw", "summary raw",
                                  "summary by block", "format_summary"])
def test_queries(benchmark, kpf_set, what):
    calls = {
        "select thp": lambda: kpf_set.select("thp"),
        "select dirty,~lru raw": lambda: kpf_set.select("dirty,~lru", raw=True),
        "summary raw": lambda: kpf_set.summary(raw=True),
        "summary by block": lambda: kpf_set.summary_by_block(1 << 27),
        "format_summary": kpf_set.format_summary,
    }
    benchmark.pedantic(calls[what], **ROUNDS)
    record(benchmark, "queries on the set", what)


CHILD = textwrap.dedent("""\
    import json, os, resource, sys, time, tracemalloc
    import numpy as np
    from pageflags import PageFlagSet, procfs
    path, small = sys.argv[1], sys.argv[2]
    PageFlagSet.from_kpageflags(small).summary()       # compile/load kernels first
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    t = time.perf_counter()
    fs = PageFlagSet.from_kpageflags(path)
    rows = fs.summary()
    seconds = time.perf_counter() - t
    del rows  # what stays traced is the set: its maps, with their Python objects
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows = fs.summary()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    buffer = procfs.BUFFER_CHUNKS * procfs.CHUNK_ENTRIES * 8 * 2   # words + packed
    print(json.dumps({"entries": fs.nentries, "maps": len(fs.names), "nbytes": fs.nbytes,
                      "buffer": buffer, "traced_peak": peak, "traced_held": held,
                      "rss_growth": rss - base,
                      "seconds": seconds, "rows": int(rows.size),
                      "pages": int(rows["pages"].sum())}))
""")


@pytest.mark.slow_bench
def test_2tib_file_in_bounded_memory(tmp_path):
    memmap = MemoryMap.synthetic("2 TiB", nodes=8, seed=1,
                                 geometry=Geometry.from_npages(9 << 26))  # 2.25 TiB space
    npages = memmap.geometry.npages
    path = str(tmp_path / "kpageflags-2tib")
    if shutil.disk_usage(tmp_path).free < npages * 8 + (1 << 30):
        pytest.skip("needs 5 GiB of free disk")
    write_synthetic(path, memmap, npages)
    small = str(tmp_path / "small")
    mixed_words(100_000, np.random.default_rng(0)).astype("<u8").tofile(small)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))}
    done = subprocess.run([sys.executable, "-c", CHILD, path, small], capture_output=True,
                          text=True, env=env, timeout=1800, check=True)
    os.unlink(path)
    got = json.loads(done.stdout)
    # The maps' memory as traced: their chunk words (nbytes) and the Python objects
    # that hold each chunk (about 140 bytes a chunk, which nbytes leaves out).
    bound = got["traced_held"] + got["buffer"]
    mib = 1 << 20
    print(f"\n2 TiB file ({got['entries']:,} entries, {npages * 8 // mib:,} MiB): "
          f"{got['seconds']:.1f} s; {got['maps']} maps, nbytes {got['nbytes'] / mib:,.0f} "
          f"MiB, traced once built {got['traced_held'] / mib:,.0f} MiB; + buffers "
          f"{got['buffer'] / mib:.0f} MiB = {bound / mib:,.0f} MiB; traced peak "
          f"{got['traced_peak'] / mib:,.0f} MiB ({got['traced_peak'] / bound:.3f} of it); "
          f"ru_maxrss growth {got['rss_growth'] / mib:,.0f} MiB")
    assert got["pages"] == got["entries"] == npages
    assert got["traced_peak"] <= bound + (1 << 20)


def test_ratios():
    """Print the ratio with a floor and fail if it is missed (run last)."""
    g = TIMES.get("build + summary", {})
    if "PageFlagSet" not in g or "np.unique" not in g:
        pytest.skip("run the whole file with benchmarks enabled to compare")
    ratio = g["PageFlagSet"] / g["np.unique"]
    line = (f"build + summary / np.unique: {ratio:.2f} (floor <= 0.5) "
            f"{'ok' if ratio <= 0.5 else 'MISSED'}")
    print("\n" + line)
    if "np.fromfile + np.unique" in g:
        print(f"build + summary / (np.fromfile + np.unique): "
              f"{g['PageFlagSet'] / g['np.fromfile + np.unique']:.2f}")
    assert ratio <= 0.5, line
