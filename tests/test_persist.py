"""Saving, loading, pickling and copying PageFlags maps (pageflags/persist.py)."""

from __future__ import annotations

import copy
import itertools
import os
import pickle
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from conftest import finishes_within
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pageflags import FormatError, Geometry, PageFlags, _chunks, _files, _kernels, persist
from pageflags import _system as system_module

# 4 chunks of one 64-page word each: a whole file is about 130 bytes, so every
# offset of it can be truncated and flipped in well under a second.
TINY = Geometry(20, 12, 6, 250)


def kinds(flags: PageFlags) -> np.ndarray:
    """0 = None, 1 = FULL, 2 = allocated, per entry."""
    out = np.where(flags._addrs == 0, 0, 2)
    out[flags._addrs == flags._full_addr] = 1
    return out


def mixed(geometry: Geometry, seed: int = 0) -> PageFlags:
    """A map with None, FULL, partial, all-ones and all-zero allocated chunks."""
    rng = np.random.default_rng(seed)
    flags = PageFlags(geometry)
    ppc = geometry.pages_per_chunk
    flags.set_range(ppc, 3 * ppc)                          # two FULL entries
    flags.set_range(5 * ppc + 7, 6 * ppc)                  # a partial chunk
    flags.set_many(rng.integers(0, geometry.npages, 50))   # scattered bits
    flags.set_range(geometry.npages - 3, geometry.npages)  # the last pages
    flags.set_many(np.arange(8 * ppc, 9 * ppc))            # allocated yet all ones
    flags._allocate(np.flatnonzero(flags._addrs == 0)[-1:])  # allocated yet all zero
    flags.validate()
    return flags


def assert_same(a: PageFlags, b: PageFlags) -> None:
    b.validate()
    assert a.geometry == b.geometry
    assert a == b
    assert a.count() == b.count()
    np.testing.assert_array_equal(kinds(a), kinds(b))
    full = np.flatnonzero(kinds(b) == 1)
    assert all(b.table[c] is b.FULL for c in full)


@pytest.fixture(params=["batched", "chunk-by-chunk"])
def batching(request, monkeypatch):
    """Default batches (one, inline, for these small maps), or one chunk a batch, so
    that the helper thread moves every chunk and overlaps the checksum."""
    if request.param == "chunk-by-chunk":
        monkeypatch.setattr(persist, "_BATCH_BYTES", 1)
    return request.param


@pytest.fixture
def tiny_file(tmp_path):
    flags = PageFlags(TINY)
    flags.set_range(64, 128)   # FULL
    flags.set_many([3, 200])   # two allocated chunks; 200 lies in the partial last one
    path = tmp_path / "tiny.pgf"
    flags.save(path)
    return flags, path


# --- round trips -----------------------------------------------------------------

@pytest.mark.parametrize("geometry", [
    Geometry(phys_addr_bits=36),                      # 2^24 pages, 512 chunks
    Geometry.from_npages(1_000_003),                  # partial last chunk
    Geometry(30, 12, 8, 200_001),                     # small chunks, partial last one
    Geometry(40, 12, 20, (1 << 28) - 5),              # chunks larger than 2^16 pages
], ids=["36-bit", "partial-last", "small-chunks", "big-chunks"])
def test_round_trip_keeps_bits_and_entry_kinds(tmp_path, geometry, batching):
    flags = mixed(geometry)
    flags.save(tmp_path / "m.pgf")
    assert_same(flags, PageFlags.load(tmp_path / "m.pgf"))


def test_empty_map_round_trips(tmp_path):
    flags = PageFlags(Geometry(46))
    flags.save(tmp_path / "e.pgf")
    loaded = PageFlags.load(str(tmp_path / "e.pgf"))
    assert_same(flags, loaded)
    assert loaded.count() == 0
    assert os.path.getsize(tmp_path / "e.pgf") == persist.HEADER_BYTES + 8


def test_size_follows_allocated_chunks_not_address_space(tmp_path):
    flags = PageFlags(Geometry(46))            # 2^19 entries
    flags.set_many([5, 1 << 33])               # two chunks
    flags.set_range(1 << 30, (1 << 30) + (3 << 15))  # one run of three FULL entries
    flags.save(tmp_path / "s.pgf")
    assert os.path.getsize(tmp_path / "s.pgf") == 64 + 16 * 1 + 2 * (8 + 4096) + 8


def test_52_bit_map_round_trips(tmp_path):
    # 2^25 entries (~700 MB of table in memory): one map at a time.
    flags = PageFlags(Geometry(52))
    full_lo, full_hi = 1 << 39, (1 << 39) + (1 << 30)     # 2^15 FULL entries, one run
    flags.set_range(full_lo, full_hi)
    single = [0, 12345, flags.npages - 1]
    flags.set_many(single)
    flags.save(tmp_path / "big.pgf")
    del flags
    assert os.path.getsize(tmp_path / "big.pgf") == 64 + 16 + 2 * (8 + 4096) + 8
    loaded = PageFlags.load(tmp_path / "big.pgf")
    assert loaded.count() == (1 << 30) + 3
    assert loaded.stats()["full"] == 1 << 15 and loaded.stats()["allocated"] == 2
    assert loaded.all(full_lo, full_hi)
    assert loaded.test_many(single).all()
    assert loaded.count(1, full_lo) == 1


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "m.pgf"
    mixed(Geometry(32), seed=1).save(path)
    second = mixed(Geometry(32), seed=2)
    second.save(path, sync=False)
    assert_same(second, PageFlags.load(path))
    assert os.listdir(tmp_path) == ["m.pgf"]


def test_checksum_is_xxh64_of_the_bytes_before_it(tmp_path, tiny_file):
    # zstd frames end with the low 32 bits of XXH64 (seed 0) of their content.
    zstd = shutil.which("zstd")
    if zstd is None:
        pytest.skip("needs the zstd command to compute a reference XXH64")
    _, path = tiny_file
    content = path.read_bytes()
    frame = subprocess.run([zstd, "-q", "-c", "--check"], input=content[:-8],
                           capture_output=True, check=True).stdout
    stored = int.from_bytes(content[-8:], "little")
    assert stored & 0xFFFF_FFFF == int.from_bytes(frame[-4:], "little")


def test_xxh64_of_split_segments_equals_whole():
    rng = np.random.default_rng(3)
    words = rng.integers(0, 2**63, 103, dtype=np.uint64)
    cuts = [0, 1, 2, 7, 11, 60, 103]
    parts = [words[a:b] for a, b in itertools.pairwise(cuts)]

    def xxh(arrays):
        return persist.xxh64_digest(persist.xxh64_start(tuple(arrays)))

    assert xxh(parts) == xxh([words])
    state = persist.xxh64_start(tuple(parts[:3]))  # fed in two calls
    _kernels.xxh64_update(state, np.array([p.ctypes.data for p in parts[3:]], np.uint64),
                          np.array([p.size for p in parts[3:]]), np.empty(3, np.int64))
    assert persist.xxh64_digest(state) == xxh([words])
    assert xxh([]) == 0xEF46DB3751D8E999          # XXH64 of no bytes, seed 0


#: Known answers of the reference implementation (xxHash 0.8, whose repository holds the
#: specification): (message, seed, XXH64). The lengths cover no stripe, a word, a
#: partial 32-byte stripe, exactly one stripe, one and a word, and many stripes.
XXH64_KNOWN_ANSWERS = [
    (b"", 0, 0xEF46DB3751D8E999),
    (bytes(range(8)), 0, 0x884A173614B81B8D),
    (bytes(range(16)), 0, 0x44B6EF2FB84169F7),
    (bytes(range(32)), 0, 0xCBF59C5116FF32B4),
    (bytes(range(40)), 0, 0xF5DA40F1B11741E9),
    (bytes(range(256)) * 4, 0, 0x6F3914F18FE4DF57),
    (bytes(range(256)) * 4, 0x9E3779B185EBCA8D, 0x23481C869EFF426A),
]


@pytest.mark.parametrize(("message", "seed", "expected"), XXH64_KNOWN_ANSWERS,
                         ids=lambda v: str(len(v)) if isinstance(v, bytes) else hex(v))
def test_xxh64_matches_the_reference_known_answers(message, seed, expected):
    words = np.frombuffer(message, dtype="<u8").astype(np.uint64)
    seed = np.uint64(seed)
    state = _kernels.xxh64_start(seed)
    _kernels.xxh64_update(state, np.array([words.ctypes.data], np.uint64),
                          np.array([words.size], np.int64), np.empty(1, np.int64))
    assert int(_kernels.xxh64_digest(state, seed)) == expected


# --- refusing damaged files ------------------------------------------------------

def load_error(path) -> FormatError:
    with pytest.raises(FormatError) as info:
        PageFlags.load(path)
    return info.value


def test_every_truncation_is_refused(tmp_path, tiny_file, batching):
    _, path = tiny_file
    content = path.read_bytes()
    cut = tmp_path / "cut.pgf"
    for size in range(len(content)):
        cut.write_bytes(content[:size])
        error = load_error(cut)
        assert error.check == "size"
        assert str(cut) in str(error)


def test_every_flipped_byte_is_refused(tmp_path, tiny_file, batching):
    flags, path = tiny_file
    content = path.read_bytes()
    bad = tmp_path / "bad.pgf"
    for offset in range(len(content)):
        for flip in (0x01, 0x80):
            damaged = bytearray(content)
            damaged[offset] ^= flip
            bad.write_bytes(bytes(damaged))
            load_error(bad)
    bad.write_bytes(content)
    assert PageFlags.load(bad) == flags


def test_a_trailing_byte_is_refused(tmp_path, tiny_file):
    _, path = tiny_file
    path.write_bytes(path.read_bytes() + b"\0")
    assert load_error(path).check == "size"


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", persist.MAGIC,
                                                              persist.MAGIC + b"\1\0\0\0"]))
def test_random_bytes_are_refused(tmp_path, data, prefix):
    path = tmp_path / "random.pgf"
    path.write_bytes(prefix + data)
    load_error(path)


def forge(path, header_fields: dict, runs=(), allocated=(), chunks=()) -> None:
    """Write a file with the given fields and a correct checksum."""
    fields = {"magic": persist.MAGIC, "version": 1, "phys": TINY.phys_addr_bits,
              "page_shift": TINY.page_shift, "chunk_shift": TINY.chunk_shift, "pad": 0,
              "npages": TINY.npages, "nruns": len(runs), "nalloc": len(allocated),
              "total": 0, "reserved": bytes(16)}
    fields.update(header_fields)
    body = (struct.pack("<8sI4B4Q16s", *fields.values())
            + np.asarray(runs, dtype="<u8").tobytes()
            + np.asarray(allocated, dtype="<u8").tobytes()
            + np.asarray(chunks, dtype="<u8").tobytes())
    checksum = persist.xxh64_digest(persist.xxh64_start((np.frombuffer(body, np.uint64),)))
    path.write_bytes(body + struct.pack("<Q", checksum))


@pytest.mark.parametrize(("fields", "parts", "check"), [
    ({}, {}, None),
    ({"version": 2}, {}, "version"),
    ({"pad": 1}, {}, "reserved"),
    ({"chunk_shift": 3}, {}, "geometry"),
    ({"npages": 0}, {}, "geometry"),
    ({"nalloc": 1 << 60}, {}, "size"),
    ({"total": 1}, {}, "count"),
    ({}, {"runs": [[1, 1]]}, "full runs"),
    ({}, {"runs": [[0, 1], [1, 2]]}, "full runs"),
    ({}, {"runs": [[2, 3], [0, 1]]}, "full runs"),
    ({}, {"runs": [[3, 4]]}, "full runs"),             # the partial last chunk
    ({}, {"runs": [[0, 2**64 - 1]]}, "full runs"),
    ({}, {"allocated": [4], "chunks": [1]}, "allocated entries"),
    ({}, {"allocated": [1, 1], "chunks": [1, 1]}, "allocated entries"),
    ({}, {"allocated": [2, 1], "chunks": [1, 1]}, "allocated entries"),
    ({"total": 64}, {"runs": [[0, 2]], "allocated": [1], "chunks": [1]}, "entry kinds"),
    ({}, {"allocated": [3], "chunks": [1 << 60]}, "bits past npages"),
], ids=lambda v: str(v))
def test_forged_files_fail_the_named_check(tmp_path, fields, parts, check):
    path = tmp_path / "forged.pgf"
    total = {"total": sum(int(c).bit_count() for c in parts.get("chunks", ()))}
    forge(path, {**total, **fields}, **parts)
    if check is None:
        assert PageFlags.load(path).count() == 0
    else:
        assert load_error(path).check == check


def test_format_error_is_a_value_error_and_pickles(tiny_file):
    _, path = tiny_file
    path.write_bytes(b"not a map")
    error = load_error(path)
    assert isinstance(error, ValueError)
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.path, again.check) == (str(error), str(path), "size")


def test_save_through_a_symlink_writes_its_target(tmp_path):
    target = tmp_path / "real.pgf"
    link = tmp_path / "link.pgf"
    PageFlags(TINY).save(target)
    link.symlink_to(target)
    flags = PageFlags(TINY)
    flags.set(7)
    flags.save(link)
    assert link.is_symlink()
    assert PageFlags.load(target) == flags


def test_short_reads_and_writes_are_completed(tmp_path, monkeypatch, batching):
    # The OS may move fewer bytes than asked (signals, >2 GiB requests).
    real_write, real_preadv = os.write, _chunks._preadv
    shorts = []

    def short_write(fd, data):
        return real_write(fd, memoryview(data)[:1000])

    def short_preadv(fd, iov, offset):
        shorts.append(offset)
        first = iov[:1].copy()
        first[0, 1] = min(int(first[0, 1]), 1000)
        return real_preadv(fd, first, offset)

    flags = mixed(Geometry(32))
    monkeypatch.setattr(os, "write", short_write)
    flags.save(tmp_path / "m.pgf")
    monkeypatch.setattr(_chunks, "_preadv", short_preadv)
    assert_same(flags, PageFlags.load(tmp_path / "m.pgf"))
    assert len(shorts) >= 4 * flags.stats()["allocated"]   # 4096-byte chunks, 1000 a call


def test_a_file_cut_short_while_loading_raises(tmp_path, monkeypatch, batching):
    # The size is checked first; a file truncated after that check ends early.
    flags = mixed(Geometry(32))
    flags.save(tmp_path / "m.pgf")
    real_preadv = _chunks._preadv
    calls = []

    def end_of_file_after_one_chunk(fd, iov, offset):
        calls.append(offset)
        return real_preadv(fd, iov[:1].copy(), offset) if len(calls) == 1 else 0

    monkeypatch.setattr(_chunks, "_preadv", end_of_file_after_one_chunk)
    with pytest.raises(FormatError) as info:
        PageFlags.load(tmp_path / "m.pgf")
    assert info.value.check == "size" and "ended early" in info.value.detail


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        PageFlags.load(tmp_path / "absent.pgf")


# --- crash safety ----------------------------------------------------------------

@pytest.mark.parametrize("victim", [
    "gather", "chunk write", "fsync", "swap_into_place", "os.replace"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch, victim, error, batching):
    path = tmp_path / "m.pgf"
    old = mixed(Geometry(32), seed=1)
    old.save(path)
    before = path.read_bytes()
    calls = []

    def boom(*args, **kwargs):
        raise error("injected")

    def fail_on_third_write(fd, data):
        # Header, runs and entry numbers go first; the fourth write holds chunks.
        calls.append(fd)
        if len(calls) == 4:
            raise error("injected")
        return persist.write_all(fd, data)

    if victim == "gather":  # on the helper thread when batches are small
        monkeypatch.setattr(_kernels, "gather_chunks", boom)
    elif victim == "chunk write":
        monkeypatch.setattr(persist, "write_all", fail_on_third_write)
    elif victim == "swap_into_place":
        monkeypatch.setattr(persist, "swap_into_place", boom)
    elif victim == "os.replace":  # the path taken where renameat2 is missing
        monkeypatch.setattr(_files, "_renameat2", None)
        monkeypatch.setattr(os, "replace", boom)
    else:
        monkeypatch.setattr(os, victim, boom)
    with pytest.raises(error):
        mixed(Geometry(32), seed=2).save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.pgf"]
    assert path.read_bytes() == before
    assert_same(old, PageFlags.load(path))


def test_save_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "m.pgf"
    PageFlags(TINY).save(path)
    os.chmod(path, 0o640)
    PageFlags(TINY).save(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


# --- pickle and copies -----------------------------------------------------------

def test_pickle_round_trips_compactly():
    flags = mixed(Geometry(46))             # 2^19 entries, a handful of chunks
    data = pickle.dumps(flags)
    allocated = flags.stats()["allocated"]
    assert len(data) < allocated * 4096 + 2000
    assert_same(flags, pickle.loads(data))


def test_a_full_map_pickles_in_a_few_bytes():
    flags = PageFlags(Geometry(46))
    flags.set_range(0, flags.npages)
    data = pickle.dumps(flags)
    assert len(data) < 1000
    assert_same(flags, pickle.loads(data))


@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy, PageFlags.copy])
def test_copies_are_equal_and_independent(how):
    flags = mixed(Geometry.from_npages(1_000_003))
    twin = how(flags)
    assert_same(flags, twin)
    twin.set_range(0, twin.npages)
    twin.clear(12)
    assert flags.count() != twin.count()
    flags.validate()


def test_deepcopy_keeps_shared_references_shared():
    flags = mixed(Geometry(32))
    a, b = copy.deepcopy([flags, flags])
    assert a is b and a is not flags


@pytest.mark.parametrize(("change", "check"), [
    ({"geometry": "46"}, "geometry"),
    ({"runs": np.zeros((1, 3), np.uint64)}, "shapes and dtypes"),
    ({"allocated": np.array([1], np.int64)}, "shapes and dtypes"),
    ({"data": np.zeros((1, 2), np.uint64)}, "shapes and dtypes"),
    ({"runs": np.array([[1, 1]], np.uint64)}, "full runs"),
    ({"runs": np.array([[0, 2]], np.uint64)}, "entry kinds"),
    ({"allocated": np.array([4], np.uint64)}, "allocated entries"),
    ({"data": np.array([[1 << 63]], np.uint64), "allocated": np.array([3], np.uint64)},
     "bits past npages"),
])
def test_malformed_pickled_state_raises(change, check):
    state = {"geometry": TINY, "runs": np.zeros((0, 2), np.uint64),
             "allocated": np.array([1], np.uint64), "data": np.ones((1, 1), np.uint64)}
    persist.restore(*state.values())  # the unchanged state is fine
    state.update(change)
    with pytest.raises(FormatError) as info:
        persist.restore(*state.values())
    assert info.value.check == check


# --- what may stand at the target, and what load opens ---------------------------

def test_save_onto_a_directory_refuses_and_moves_nothing(tmp_path):
    folder = tmp_path / "maps"
    folder.mkdir()
    (folder / "inside").write_bytes(b"keep")
    with pytest.raises(IsADirectoryError) as info:
        PageFlags(TINY).save(folder)
    assert info.value.filename == str(folder)
    assert os.listdir(tmp_path) == ["maps"]
    assert folder.is_dir() and (folder / "inside").read_bytes() == b"keep"


def test_save_onto_a_symlink_to_a_directory_refuses(tmp_path):
    (tmp_path / "maps").mkdir()
    link = tmp_path / "link.pgf"
    link.symlink_to(tmp_path / "maps")
    with pytest.raises(IsADirectoryError) as info:
        PageFlags(TINY).save(link)
    assert info.value.filename == str(link)
    assert sorted(os.listdir(tmp_path)) == ["link.pgf", "maps"]
    assert link.is_symlink() and os.listdir(tmp_path / "maps") == []


def test_save_to_a_name_ending_in_a_separator_refuses(tmp_path):
    with pytest.raises(IsADirectoryError):
        PageFlags(TINY).save(str(tmp_path / "new") + os.sep)
    assert os.listdir(tmp_path) == []


def test_save_onto_a_fifo_refuses_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match=r"not a regular file.*FIFO") as info:
        finishes_within(10, lambda: PageFlags(TINY).save(fifo))
    assert info.value.filename == str(fifo)
    assert os.listdir(tmp_path) == ["fifo"]
    assert stat_kind(fifo) == "fifo"


def stat_kind(path) -> str:
    import stat
    mode = os.lstat(path).st_mode
    return "fifo" if stat.S_ISFIFO(mode) else "dir" if stat.S_ISDIR(mode) else "file"


def test_save_through_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.pgf"
    link.symlink_to(tmp_path / "later.pgf")
    flags = PageFlags(TINY)
    flags.set(3)
    flags.save(link)
    assert link.is_symlink()
    assert PageFlags.load(tmp_path / "later.pgf") == flags


def test_a_directory_made_while_saving_is_put_back(tmp_path, monkeypatch):
    # The target is checked before writing; one that becomes a folder before the
    # swap is swapped back and refused.
    path = tmp_path / "m.pgf"
    PageFlags(TINY).save(path)
    real_swap = persist.swap_into_place

    def swap_after_a_folder_appears(tmp, target):
        os.unlink(target)
        os.mkdir(target)
        (tmp_path / "m.pgf" / "inside").write_bytes(b"keep")
        real_swap(tmp, target)

    monkeypatch.setattr(persist, "swap_into_place", swap_after_a_folder_appears)
    with pytest.raises(IsADirectoryError):
        PageFlags(TINY).save(path)
    assert os.listdir(tmp_path) == ["m.pgf"]
    assert (path / "inside").read_bytes() == b"keep"


@pytest.mark.parametrize("kind", [bytes, str, "pathlib"])
def test_save_and_load_take_str_bytes_and_path_like(tmp_path, kind):
    where = tmp_path / "m.pgf"
    path = {bytes: os.fsencode(where), str: str(where), "pathlib": where}[kind]
    flags = PageFlags(TINY)
    flags.set_many([3, 200])
    flags.save(path)
    persist.save(flags, path, sync=False)
    assert PageFlags.load(path) == flags == persist.load(path)
    assert os.listdir(tmp_path) == ["m.pgf"]
    where.write_bytes(b"not a map")
    error = load_error(path)
    assert error.path == str(where)           # a str in messages, whatever was given
    assert str(error).startswith(str(where) + ": ")


def test_save_and_load_refuse_what_is_not_a_path(tmp_path):
    with pytest.raises(TypeError):
        PageFlags(TINY).save(3)
    with pytest.raises(TypeError):
        PageFlags.load(None)


def test_load_of_a_fifo_refuses_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match=r"not a regular file.*FIFO") as info:
        finishes_within(10, lambda: PageFlags.load(fifo), fifo=fifo)
    assert not isinstance(info.value, FormatError)
    assert info.value.filename == str(fifo)


def test_load_of_a_directory_or_a_device_refuses(tmp_path):
    with pytest.raises(IsADirectoryError):
        PageFlags.load(tmp_path)
    if os.path.exists("/dev/zero"):
        with pytest.raises(OSError, match=r"not a regular file.*character device"):
            finishes_within(10, lambda: PageFlags.load("/dev/zero"))


# --- what loading allocates ------------------------------------------------------

# 2^26 entries: a table of 1.3 GiB for a 72-byte file.
WIDE = Geometry(44, 12, 6)


def test_an_empty_file_of_a_huge_geometry_is_refused_before_allocating(tmp_path, monkeypatch):
    import tracemalloc

    path = tmp_path / "wide.pgf"
    forge(path, {"phys": WIDE.phys_addr_bits, "page_shift": WIDE.page_shift,
                 "chunk_shift": WIDE.chunk_shift, "npages": WIDE.npages})
    assert os.path.getsize(path) == 72
    monkeypatch.setattr(system_module, "available_bytes", lambda: 512 << 20)
    tracemalloc.start()
    try:
        error = load_error(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert error.check == "memory"
    assert "Geometry(phys_addr_bits=44" in error.detail and "GiB" in error.detail


@pytest.mark.parametrize("fields", [
    {"phys": 64, "page_shift": 4, "chunk_shift": 6, "npages": 1 << 60},   # 2^54 entries
    {"phys": 60, "page_shift": 0, "chunk_shift": 6, "npages": 1 << 60},
    {"phys": 52, "page_shift": 0, "chunk_shift": 6, "npages": 1 << 52},
])
def test_geometries_no_machine_holds_are_format_errors(tmp_path, fields):
    path = tmp_path / "huge.pgf"
    forge(path, fields)
    assert load_error(path).check == "memory"


def test_a_file_whose_chunks_do_not_fit_is_refused(tmp_path, monkeypatch):
    # Chunks are justified by the file's size, and must fit memory too (a sparse
    # file can be any size).
    flags = PageFlags(Geometry(32))
    flags.set_many(np.arange(0, flags.npages, 1 << 15))    # 32 chunks of 4 KiB
    flags.save(tmp_path / "m.pgf")
    monkeypatch.setattr(system_module, "available_bytes", lambda: 64 << 10)
    error = load_error(tmp_path / "m.pgf")
    assert error.check == "memory" and "32 chunks" in error.detail


def test_an_unknown_amount_of_memory_still_gives_a_format_error(tmp_path, monkeypatch):
    path = tmp_path / "huge.pgf"
    forge(path, {"phys": 64, "page_shift": 4, "chunk_shift": 6, "npages": 1 << 60})
    monkeypatch.setattr(system_module, "available_bytes", lambda: None)
    assert load_error(path).check == "memory"


@pytest.mark.parametrize(("geometry", "shape"), [
    (Geometry(40, 12, 8), "empty"),               # 2^20 entries
    (Geometry(40, 12, 8), "full"),
    (Geometry(40, 12, 8), "chunks"),
    (Geometry(40), "chunks"),                     # 4 KiB chunks
])
def test_the_memory_estimate_covers_what_a_load_takes(tmp_path, geometry, shape):
    import tracemalloc

    flags = PageFlags(geometry)
    if shape == "full":
        flags.set_range(0, geometry.npages)
    elif shape == "chunks":
        flags.set_many(np.arange(4000) * geometry.pages_per_chunk + 1)
    flags.save(tmp_path / "m.pgf")
    state = pickle.loads(pickle.dumps(persist.reduce(flags)[1]))
    nalloc = flags.stats()["allocated"]
    del flags
    for how in (lambda: PageFlags.load(tmp_path / "m.pgf"), lambda: persist.restore(*state)):
        tracemalloc.start()
        try:
            loaded = how()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak <= persist.load_cost(geometry, nalloc)
        del loaded


def test_restore_bounds_the_table_it_builds(monkeypatch):
    monkeypatch.setattr(system_module, "available_bytes", lambda: 512 << 20)
    with pytest.raises(FormatError) as info:
        persist.restore(WIDE, np.zeros((0, 2), np.uint64), np.zeros(0, np.uint64),
                        np.zeros((0, WIDE.words_per_chunk), np.uint64))
    assert info.value.check == "memory"


def test_restore_revalidates_an_unpickled_geometry():
    # Unpickling a frozen dataclass sets its fields without __post_init__.
    bogus = object.__new__(Geometry)
    bogus.__dict__.update(phys_addr_bits=200, page_shift=0, chunk_shift=6, npages=1 << 200)
    state = pickle.dumps((bogus, np.zeros((0, 2), np.uint64), np.zeros(0, np.uint64),
                          np.zeros((0, 1), np.uint64)))
    with pytest.raises(FormatError) as info:
        persist.restore(*pickle.loads(state))
    assert info.value.check == "geometry"


# --- temporary files ---------------------------------------------------------------

def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_temporary_files_have_a_recognisable_name(tmp_path, monkeypatch):
    seen = []
    real_swap = persist.swap_into_place
    monkeypatch.setattr(persist, "swap_into_place",
                        lambda tmp, path: seen.append(tmp) or real_swap(tmp, path))
    PageFlags(TINY).save(tmp_path / "m.pgf")
    name = os.path.basename(seen[0])
    assert name.startswith(".m.pgf.") and name.endswith(_files.TEMP_SUFFIX)
    assert _files.temp_writer(name, "m.pgf") == (_files.writer_tag(), os.getpid())


def test_save_removes_stale_temporary_files_of_dead_writers(tmp_path):
    tag, dead, alive = _files.writer_tag(), dead_pid(), os.getpid()
    stale = tmp_path / _files.temp_name("m.pgf", tag, dead)
    live = tmp_path / _files.temp_name("m.pgf", tag, alive)
    elsewhere = tmp_path / _files.temp_name("m.pgf", "0badc0de" if tag != "0badc0de"
                                            else "0badc0df", dead)
    other_target = tmp_path / _files.temp_name("other.pgf", tag, dead)
    old_style = tmp_path / ".m.pgf.k2j4x9a1.tmp"            # no writer in the name
    lookalike = tmp_path / (".m.pgf.x." + stale.name[len(".m.pgf."):])
    keep = [live, elsewhere, other_target, old_style, lookalike]
    for path in (stale, *keep):
        path.write_bytes(b"partial")
    PageFlags(TINY).save(tmp_path / "m.pgf", sync=False)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.pgf", *(p.name for p in keep)])


def test_a_folder_named_like_a_stale_temporary_file_stays(tmp_path):
    (tmp_path / _files.temp_name("m.pgf", _files.writer_tag(), dead_pid())).mkdir()
    PageFlags(TINY).save(tmp_path / "m.pgf")
    assert len(os.listdir(tmp_path)) == 2


def test_a_save_killed_midway_is_cleaned_up_by_the_next_save(tmp_path):
    script = (
        "import os, signal, sys\n"
        "from pageflags import PageFlags, persist\n"
        "def die(tmp, path):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "persist.swap_into_place = die\n"
        "PageFlags(1 << 20).save(sys.argv[1])\n")
    path = tmp_path / "m.pgf"
    for _ in range(3):  # each save removes what the one before left
        done = subprocess.run([sys.executable, "-c", script, str(path)],
                              cwd=os.path.dirname(os.path.dirname(persist.__file__)))
        assert done.returncode == -9
        assert len(os.listdir(tmp_path)) == 1
    PageFlags(TINY).save(path)
    assert os.listdir(tmp_path) == ["m.pgf"]


def test_loaded_chunks_stay_read_only_for_good(tmp_path):
    # Loaded chunks are rows of shared slabs; neither the rows nor what they view
    # can be made writable, and writes after the load still change only the map.
    flags = mixed(Geometry(32))
    flags.save(tmp_path / "m.pgf")
    loaded = PageFlags.load(tmp_path / "m.pgf")
    chunks = [c for c in loaded.table if c is not None and c is not loaded.FULL]
    assert len(chunks) > 1
    for chunk in chunks:
        for array in (chunk, chunk.base):
            with pytest.raises(ValueError, match="WRITEABLE"):
                array.setflags(write=True)
    first = int(np.flatnonzero([c is chunks[0] for c in loaded.table])[0])
    loaded.clear_range(first << 15, (first + 1) << 15)   # frees one row of a slab
    loaded.set(first << 15)
    loaded.validate()
    assert loaded.count() == flags.count() - flags.count(first << 15, (first + 1) << 15) + 1


class TaggedFlags(PageFlags):
    __slots__ = ()


def test_load_builds_the_class_it_is_called_on(tmp_path):
    flags = PageFlags(1 << 20)
    flags.set_range(5, 70_000)
    flags.save(tmp_path / "map.pgf")
    loaded = TaggedFlags.load(tmp_path / "map.pgf")
    assert type(loaded) is TaggedFlags and loaded == flags
    loaded.validate()
    assert type(PageFlags.load(tmp_path / "map.pgf")) is PageFlags
    assert type(persist.load(tmp_path / "map.pgf")) is PageFlags
