"""Roaring interchange (pageflags/roaring.py), checked against pyroaring's BitMap64."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pageflags import FormatError, Geometry, PageFlags

pyroaring = pytest.importorskip("pyroaring", reason="pyroaring checks the interchange")
BitMap64 = pyroaring.BitMap64

GEOMETRIES = [
    Geometry(36),                            # 2^24 pages, chunk = half a container
    Geometry(46),                            # 2^34 pages: four 2^32 buckets
    Geometry.from_npages(1_000_003),         # partial last chunk
    Geometry(30, 12, 8, 200_001),            # 256-page chunks, many per container
    Geometry(40, 12, 20, (1 << 28) - 5),     # 2^20-page chunks, 16 containers each
]
IDS = ["36-bit", "46-bit", "partial-last", "small-chunks", "big-chunks"]


def pfns_of(flags: PageFlags) -> np.ndarray:
    """Every set pfn, ascending, read from the table (chunk by chunk)."""
    g = flags.geometry
    out = []
    for c in np.flatnonzero(flags._addrs):
        bits = np.unpackbits(flags.table[c].view(np.uint8), bitorder="little")
        out.append(np.flatnonzero(bits).astype(np.uint64) + np.uint64(c << g.chunk_shift))
    return np.concatenate(out) if out else np.empty(0, dtype=np.uint64)


def random_map(geometry: Geometry, seed: int) -> PageFlags:
    """Sparse bits, dense runs (FULL and partial chunks) and a full last chunk."""
    rng = np.random.default_rng(seed)
    flags = PageFlags(geometry)
    n = geometry.npages
    flags.set_many(rng.integers(0, n, 3000))
    for _ in range(6):
        start = int(rng.integers(0, n))
        flags.set_range(start, min(n, start + int(rng.integers(1, 300_000))))
    flags.clear_many(rng.integers(0, n, 500))
    flags.set_range(n - 70_000 if n > 70_000 else 0, n)
    return flags


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_ours_load_in_pyroaring_equal(geometry, seed):
    flags = random_map(geometry, seed)
    theirs = BitMap64.deserialize(flags.to_roaring64_bytes())
    assert theirs == BitMap64(pfns_of(flags))
    assert len(theirs) == flags.count()


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("optimize", [False, True], ids=["plain", "run-optimized"])
def test_pyroaring_bytes_load_equal(geometry, optimize):
    flags = random_map(geometry, 7)
    theirs = BitMap64(pfns_of(flags))
    if optimize:
        theirs.run_optimize()
    loaded = PageFlags.from_roaring64_bytes(theirs.serialize(), geometry)
    loaded.validate()
    assert loaded == flags
    # Wholly set chunks come back FULL, whatever container kind carried them.
    assert loaded.stats()["full"] == int(np.count_nonzero(
        flags._counts[: geometry.npages >> geometry.chunk_shift] == geometry.pages_per_chunk))


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(0, (1 << 24) - 1), max_size=200),
       ranges=st.lists(st.tuples(st.integers(0, (1 << 24) - 1), st.integers(1, 140_000)),
                       max_size=3))
def test_random_sets_round_trip_both_ways(values, ranges):
    geometry = Geometry(36)
    flags = PageFlags(geometry)
    flags.set_many(np.array(values, dtype=np.int64))
    for start, length in ranges:
        flags.set_range(start, min(geometry.npages, start + length))
    expected = BitMap64(pfns_of(flags))
    assert BitMap64.deserialize(flags.to_roaring64_bytes()) == expected
    expected.run_optimize()
    assert PageFlags.from_roaring64_bytes(expected.serialize(), geometry) == flags


def test_empty_map_is_eight_zero_bytes():
    flags = PageFlags(Geometry(46))
    assert flags.to_roaring64_bytes() == BitMap64().serialize() == bytes(8)
    assert PageFlags.from_roaring64_bytes(bytes(8), Geometry(46)).count() == 0


def test_full_entries_become_single_runs():
    flags = PageFlags(Geometry(46))
    flags.set_range(0, 1 << 32)            # one bucket of 65536 full containers
    data = flags.to_roaring64_bytes()
    # 8 + bucket key 4 + cookie 4 + run bits 8192 + 8 per container + 6 per run
    assert len(data) == 8 + 4 + 4 + 8192 + 65536 * (8 + 6)
    assert len(BitMap64.deserialize(data)) == 1 << 32


def test_input_kinds_accepted():
    flags = random_map(Geometry(36), 3)
    data = flags.to_roaring64_bytes()
    for form in (bytearray(data), memoryview(data), np.frombuffer(data, dtype=np.uint8)):
        assert PageFlags.from_roaring64_bytes(form, flags.geometry) == flags


def test_strided_buffers_are_copied_and_other_dtypes_refused():
    flags = random_map(Geometry(36), 4)
    data = flags.to_roaring64_bytes()
    doubled = np.repeat(np.frombuffer(data, dtype=np.uint8), 2)
    assert PageFlags.from_roaring64_bytes(memoryview(doubled.tobytes())[::2],
                                          flags.geometry) == flags
    assert PageFlags.from_roaring64_bytes(doubled[::2], flags.geometry) == flags
    for bad in (np.frombuffer(data[:8], dtype=np.int64), np.ma.array(np.frombuffer(
            data, dtype=np.uint8)), "not bytes", 8):
        with pytest.raises(TypeError, match="data must be"):
            PageFlags.from_roaring64_bytes(bad, flags.geometry)


def test_values_past_npages_are_refused():
    data = BitMap64([5, 1 << 20]).serialize()
    with pytest.raises(FormatError) as info:
        PageFlags.from_roaring64_bytes(data, Geometry.from_npages(1 << 20))
    assert info.value.check == "values past npages"
    with pytest.raises(FormatError):
        PageFlags.from_roaring64_bytes(BitMap64([1 << 63]).serialize(), Geometry(64, 4))


def small_serialization() -> bytes:
    """Two buckets; array, run and bitset containers; an offset header."""
    bm = BitMap64([1, 2, 3, 70_000, 70_001, (1 << 32) + 9])
    bm.add_range(200_000, 210_000)
    bm.run_optimize()                                        # that range: a run
    bm.update(range(300_000, 305_000))                       # 5000 values: a bitset
    bm.update(np.arange(400_000, 460_000, 3, dtype=np.uint64))
    return bm.serialize()


@pytest.mark.parametrize(("mutate", "check"), [
    (lambda d: d[:-1], "truncated"),
    (lambda d: d + b"\0", "trailing bytes"),
    (lambda d: struct.pack("<Q", 1 << 32) + d[8:], "bucket count"),
    (lambda d: d[:12] + struct.pack("<I", 999) + d[16:], "cookie"),
])
def test_damaged_serializations_name_the_check(mutate, check):
    with pytest.raises(FormatError) as info:
        PageFlags.from_roaring64_bytes(mutate(small_serialization()), Geometry(46))
    assert info.value.check == check


def test_every_truncation_is_refused():
    data = small_serialization()
    assert PageFlags.from_roaring64_bytes(data, Geometry(46)).count() == len(
        BitMap64.deserialize(data))
    for size in range(len(data)):
        with pytest.raises(FormatError):
            PageFlags.from_roaring64_bytes(data[:size], Geometry(46))


def test_a_flipped_byte_is_refused_or_gives_a_valid_map():
    # Roaring has no checksum: a flipped value bit can still be a valid set.
    data = small_serialization()
    refused = 0
    for offset in range(len(data)):
        damaged = bytearray(data)
        damaged[offset] ^= 0x10
        try:
            flags = PageFlags.from_roaring64_bytes(bytes(damaged), Geometry(46))
        except FormatError:
            refused += 1
        else:
            flags.validate()
            assert BitMap64.deserialize(flags.to_roaring64_bytes()) == BitMap64(pfns_of(flags))
    assert refused > 0


@settings(max_examples=1000, deadline=None)
@given(data=st.binary(max_size=200),
       prefix=st.sampled_from([b"", struct.pack("<QI", 1, 0), struct.pack("<QII", 1, 0, 12346),
                               struct.pack("<QII", 1, 0, 12347)]))
def test_random_bytes_raise_format_error_only(data, prefix):
    try:
        flags = PageFlags.from_roaring64_bytes(prefix + data, Geometry(46))
    except FormatError:
        return
    flags.validate()  # a valid serialization by chance: it must give a valid map


def _one_run_bucket(runs: list[tuple[int, int]], card: int) -> bytes:
    """A serialization of one bucket (high 0) holding one run container (key 0)."""
    body = struct.pack("<H", len(runs)) + b"".join(struct.pack("<HH", s, n) for s, n in runs)
    return (struct.pack("<QI", 1, 0) + struct.pack("<I", 12347) + b"\x01"
            + struct.pack("<HH", 0, card - 1) + body)


def test_touching_runs_are_accepted_overlapping_refused():
    flags = PageFlags.from_roaring64_bytes(_one_run_bucket([(0, 0), (1, 1)], 3), 1 << 20)
    assert flags.count() == 3 and flags.all(0, 3)
    for runs, card, check in (([(0, 1), (1, 0)], 3, "run container"),
                              ([(5, 2)], 4, "run cardinality"),
                              ([(65535, 1)], 2, "run container")):
        with pytest.raises(FormatError) as info:
            PageFlags.from_roaring64_bytes(_one_run_bucket(runs, card), 1 << 20)
        assert info.value.check == check


class TaggedFlags(PageFlags):
    __slots__ = ()


def test_from_roaring64_bytes_builds_the_class_it_is_called_on():
    flags = PageFlags(1 << 20)
    flags.set_range(5, 70_000)
    data = flags.to_roaring64_bytes()
    built = TaggedFlags.from_roaring64_bytes(data, flags.geometry)
    assert type(built) is TaggedFlags and built == flags
    built.validate()
    assert type(PageFlags.from_roaring64_bytes(data, flags.geometry)) is PageFlags
