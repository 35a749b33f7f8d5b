"""Structure-aware fuzzing of every reader of untrusted input.

The readers: :meth:`PageFlags.load` (saved files), :func:`pageflags.persist.restore`
(pickled state, reached through ``pickle.loads``), :meth:`PageFlags.from_roaring64_bytes`,
:meth:`MemoryMap.from_iomem` and :meth:`MemoryMap.from_sysfs`.  Each fuzzer starts
from valid input (a saved random map, a pyroaring serialization, a grammar-built
``/proc/iomem``, a fake sysfs tree), damages it, and checks one property: the reader
returns a valid object that agrees with an oracle, or raises its documented error
(:class:`FormatError` for files, pickles and Roaring; ``ValueError`` for the memory-map
readers), and it neither hangs nor allocates much memory.

* Saved files end in an XXH64 of everything before it, so random damage would
  almost always stop at the checksum.  The mutators here recompute it (most of the
  time) and can also resize the file to what a mutated header implies, so damage
  reaches the size, entry, tail and count checks behind it.
* Allocation: :func:`bounded` runs each example under ``tracemalloc``, which NumPy
  reports its buffers to, and requires the peak to stay under ``ALLOCATION_LIMIT``.
  A ``RLIMIT_AS`` would break Numba (it reserves address space), and checking the
  result's ``nbytes`` would miss a large buffer that is freed before the reader
  raises.  Allocations inside Numba kernels are not traced; the readers' kernels
  only allocate fixed 8 KiB buffers.
* Hangs: :func:`bounded` also arms ``faulthandler.dump_traceback_later`` for each
  example, a watchdog thread that prints every thread's stack and ends the process
  if the example runs ``HANG_SECONDS``, even inside a system call or a Numba
  kernel, where no Python-level timeout could interrupt it.
* Geometries whose empty table alone passes the allocation bound are kept out of
  the load fuzzer (``assume``): loading them costs what ``persist.load_cost`` says,
  checked against available memory, which ``tests/test_persist.py`` tests.

Budget and longer runs
----------------------
The default run (CI) explores with fresh random seeds each time and spends about a
minute in all.  Hypothesis prints the seed and the shrunk input of any failure; add
the failing input as an ``@example`` (or a plain test of the bytes) when fixing it.
For a long local run, set how many examples every fuzzer tries::

    PAGEFLAGS_FUZZ_EXAMPLES=200000 python -m pytest tests/test_fuzz.py -m fuzz -p no:randomly \\
        --hypothesis-show-statistics

The fuzzers carry the ``fuzz`` marker (``-m "not fuzz"`` leaves only the
regression tests).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import pickle
import shutil
import struct
import tempfile
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, event, example, given, settings
from hypothesis import strategies as st

from pageflags import FormatError, Geometry, MemoryMap, PageFlags, persist

pyroaring = pytest.importorskip("pyroaring", reason="pyroaring is the Roaring oracle")
BitMap64 = pyroaring.BitMap64

ALLOCATION_LIMIT = 256 << 20
HANG_SECONDS = 60
# Maps the fuzzers start from stay this small, so any table or chunk allocation
# beyond a few MiB comes from a damaged size field, not from the input itself.
SEED_MAX_PAGES = 1 << 22
# A geometry whose empty map (table, shadows, shared FULL and zero chunks) takes
# more than this is the "72-byte file" defect class below.
BIG_GEOMETRY_BYTES = 64 << 20
LONG_RUN = int(os.environ.get("PAGEFLAGS_FUZZ_EXAMPLES", "0"))


def fuzz_settings(default_examples: int) -> settings:
    """Hypothesis settings of one fuzzer: its CI share, or the long-run count."""
    return settings(
        max_examples=LONG_RUN or default_examples,
        # Hangs are caught by the watchdog in bounded(), slowness is not a failure:
        # the machine running CI is shared.
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        # No explain phase: it reruns failures under sys.settrace, which changes
        # reference counts and makes validate() fail on its own (see
        # test_validate_under_a_tracer), hiding the real failure behind a flaky one.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    )


fuzz = pytest.mark.fuzz


@contextlib.contextmanager
def bounded(limit: int = ALLOCATION_LIMIT) -> Iterator[None]:
    """Fail if the body allocates more than ``limit`` bytes; end the run on a hang.

    The allocation is checked however the body ends: a reader that allocates a
    huge buffer and then raises its documented error still fails.  Tracing runs
    only around the reader: left on, it would slow Hypothesis' own generation
    several times over.
    """
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        grown = tracemalloc.get_traced_memory()[1] - before
        if started:
            tracemalloc.stop()
        if grown > limit:
            raise AssertionError(f"allocated {grown / 2**20:.1f} MiB at peak, "
                                 f"more than {limit / 2**20:.1f} MiB")


# --- shared strategies ------------------------------------------------------------------

EXTREMES_64 = [0, 1, 2, 7, 8, 63, 64, 65, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32,
               (1 << 60) - 1, 1 << 60, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]


def word_values(bits: int) -> st.SearchStrategy[int]:
    """Values of a ``bits``-bit field: mostly the edges that break size arithmetic."""
    top = (1 << bits) - 1
    edges = sorted({v & top for v in EXTREMES_64} | {top, top - 1})
    return st.one_of(st.sampled_from(edges), st.integers(0, top))


@st.composite
def small_geometries(draw) -> Geometry:
    npages = draw(st.integers(1 << 16, SEED_MAX_PAGES))
    chunk_shift = draw(st.integers(6, 18))
    return Geometry.from_npages(npages, chunk_shift=chunk_shift)


@st.composite
def random_maps(draw, geometry: Geometry) -> PageFlags:
    """A map with None, FULL and partial chunks, bits at chunk and map edges."""
    flags = PageFlags(geometry)
    n, ppc = geometry.npages, geometry.pages_per_chunk
    for _ in range(draw(st.integers(0, 4))):
        start = draw(st.integers(0, n - 1))
        length = draw(st.sampled_from([1, 63, 64, ppc, 3 * ppc + 5])
                      | st.integers(1, max(1, n // 4)))
        flags.set_range(start, min(n, start + length))
    edges = [p for p in (0, ppc - 1, ppc, n - 1) if p < n]
    pfns = draw(st.lists(st.integers(0, n - 1) | st.sampled_from(edges), max_size=40))
    flags.set_many(np.array(pfns, dtype=np.int64))
    if draw(st.booleans()):
        flags.clear_many(np.array(draw(st.lists(st.integers(0, n - 1), max_size=20)),
                                  dtype=np.int64))
    return flags


def put(data: bytearray, pos: int, value: int, nbytes: int) -> None:
    """Overwrite ``nbytes`` at ``pos`` (clipped at the end) with ``value``, little-endian."""
    raw = (value & ((1 << 8 * nbytes) - 1)).to_bytes(nbytes, "little")
    end = min(len(data), pos + nbytes)
    data[pos:end] = raw[:end - pos]


@st.composite
def byte_mutations(draw, size_hint: int) -> list[tuple]:
    """Generic damage: flips, bytes, words, truncation, extension, insertion, splices.

    Positions are drawn below ``size_hint`` and taken modulo the current length, so
    they stay meaningful as earlier mutations change the length.
    """
    pos = st.integers(0, max(0, size_hint - 1))
    one = st.one_of(
        st.tuples(st.just("flip"), pos, st.integers(0, 7)),
        st.tuples(st.just("byte"), pos, st.integers(0, 255)),
        st.tuples(st.just("word"), pos, st.sampled_from([2, 4, 8]), word_values(64)),
        st.tuples(st.just("truncate"), pos),
        st.tuples(st.just("extend"), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), pos, st.integers(1, 64)),
        st.tuples(st.just("splice"), pos, pos, st.integers(1, 256)),
    )
    return draw(st.lists(one, min_size=1, max_size=4))


def apply_bytes(data: bytes, mutations: list[tuple]) -> bytes:
    out = bytearray(data)
    for kind, *args in mutations:
        at = args[0] % len(out) if out and kind != "extend" else 0
        if kind == "flip" and out:
            out[at] ^= 1 << args[1]
        elif kind == "byte" and out:
            out[at] = args[1]
        elif kind == "word" and out:
            put(out, at, args[2], args[1])
        elif kind == "truncate":
            del out[at:]
        elif kind == "extend":
            out += args[0]
        elif kind == "insert":
            out[at:at] = args[1]
        elif kind == "delete":
            del out[at:at + args[1]]
        elif kind == "splice" and out:
            source = args[1] % len(out)
            out[at:at + args[2]] = out[source:source + args[2]]
    return bytes(out)


def table_kinds(flags: PageFlags) -> tuple[np.ndarray, np.ndarray]:
    """Entry numbers of the FULL entries and of the allocated ones."""
    full = flags._addrs == flags._full_addr
    return np.flatnonzero(full), np.flatnonzero((flags._addrs != 0) & ~full)


def assert_holds(flags: PageFlags, geometry: Geometry, runs: np.ndarray,
                 allocated: np.ndarray, words: np.ndarray) -> None:
    """``flags`` is valid and holds exactly these FULL runs and allocated chunks."""
    flags.validate()
    assert flags.geometry == geometry
    full, alloc = table_kinds(flags)
    expected_full = (np.concatenate([np.arange(a, b) for a, b in runs.tolist()])
                     if len(runs) else np.empty(0, dtype=np.int64))
    np.testing.assert_array_equal(full, expected_full)
    np.testing.assert_array_equal(alloc, allocated.astype(np.int64))
    for c, chunk in zip(alloc.tolist(), words, strict=True):
        np.testing.assert_array_equal(flags.table[c], chunk)
    assert flags.count() == len(expected_full) * geometry.pages_per_chunk + int(
        np.unpackbits(np.ascontiguousarray(words).view(np.uint8)).sum())


# --- saved files ------------------------------------------------------------------------

HEADER = struct.Struct("<8sI4B4Q16s")
HEADER_FIELDS = {  # name: (offset, bytes)
    "version": (8, 4), "phys_addr_bits": (12, 1), "page_shift": (13, 1),
    "chunk_shift": (14, 1), "pad": (15, 1), "npages": (16, 8), "nruns": (24, 8),
    "nalloc": (32, 8), "total": (40, 8), "reserved": (48, 8),
}


def saved_bytes(flags: PageFlags) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "map.pgf")
        flags.save(path, sync=False)
        return Path(path).read_bytes()


def with_checksum(body: bytes) -> bytes:
    """``body`` (a file less its trailer) followed by its XXH64.

    A body of a length that is no multiple of 8 fails the size check, which comes
    before the checksum: any trailer does, so it gets the hash of the body padded.
    """
    words = np.frombuffer(body + bytes(-len(body) % 8), dtype=np.uint64)
    return body + struct.pack("<Q", persist.xxh64_digest(persist.xxh64_start((words,))))


def header_geometry(data: bytes) -> Geometry | None:
    """The geometry a file's header names, or None when it names none."""
    if len(data) < HEADER.size:
        return None
    _, _, phys, page_shift, chunk_shift, _, npages, *_ = HEADER.unpack_from(data)
    try:
        return Geometry(phys, page_shift, chunk_shift, npages)
    except (TypeError, ValueError):
        return None


def implied_size(data: bytes) -> int | None:
    """The size the header of ``data`` asks for, when that is a sane number."""
    g = header_geometry(data)
    if g is None:
        return None
    nruns, nalloc = HEADER.unpack_from(data)[7:9]
    size = HEADER.size + 8 + 16 * nruns + 8 * nalloc + nalloc * g.chunk_bytes
    return size if size <= 8 << 20 else None


def empty_map_bytes(g: Geometry) -> int:
    """What an empty map of ``g`` allocates: table, shadows, FULL and zero chunks."""
    return g.nchunks * (8 + 8 + 4) + 2 * g.chunk_bytes


@st.composite
def file_mutations(draw, size_hint: int) -> list[tuple]:
    """Header fields set to edge values, body words changed, then generic damage."""
    steps: list[tuple] = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(sorted(HEADER_FIELDS)))
        offset, nbytes = HEADER_FIELDS[name]
        steps.append(("field", offset, nbytes, draw(word_values(8 * nbytes))))
    if draw(st.booleans()):
        # Entry numbers and run bounds: the uint64 words right after the header.
        index = draw(st.integers(0, 15))
        steps.append(("word", HEADER.size + 8 * index, 8, draw(word_values(64))))
    if draw(st.booleans()):
        steps += draw(byte_mutations(size_hint))
    if draw(st.booleans()):
        steps.append(("fit", draw(st.binary(max_size=8)) or b"\0"))
    return steps


def apply_file(data: bytes, steps: list[tuple], rechecksum: bool) -> bytes:
    """Damage a saved file; with ``rechecksum`` its trailer is then made right again."""
    body = data[:-8] if len(data) >= 8 else data
    for kind, *args in steps:
        if kind == "field":
            body = bytearray(body)
            put(body, args[0], args[2], args[1])
            body = bytes(body)
        elif kind == "fit":
            size = implied_size(body)
            if size is not None:  # cut, or pad with a repeated pattern, to that size
                want = size - 8
                body = (body + args[0] * (want // len(args[0]) + 1))[:want]
        elif kind == "word" and args[0] < len(body):
            body = bytearray(body)
            put(body, args[0], args[2], args[1])
            body = bytes(body)
        else:
            body = apply_bytes(body, [(kind, *args)])
    if rechecksum:
        return with_checksum(body)
    return body + data[len(data) - 8:] if len(data) >= 8 else body


def big_geometry(data: bytes) -> bool:
    """Whether the header names a geometry whose empty map alone passes the bound.

    Such a file is refused (``FormatError``, check "memory") only when the machine
    lacks the memory: an empty 52-bit map is a 72-byte file.
    """
    g = header_geometry(data)
    return g is not None and empty_map_bytes(g) > BIG_GEOMETRY_BYTES


def reference_decode(data: bytes) -> tuple[Geometry, np.ndarray, np.ndarray, np.ndarray]:
    """The parts a file describes, read field by field as persist.py documents them."""
    geometry = header_geometry(data)
    assert geometry is not None
    nruns, nalloc = HEADER.unpack_from(data)[7:9]
    at = HEADER.size
    runs = np.frombuffer(data, "<u8", 2 * nruns, at).reshape(nruns, 2)
    at += 16 * nruns
    allocated = np.frombuffer(data, "<u8", nalloc, at)
    at += 8 * nalloc
    words = np.frombuffer(data, "<u8", nalloc * geometry.words_per_chunk, at)
    return geometry, runs, allocated, words.reshape(nalloc, geometry.words_per_chunk)


def load_bytes(folder: str, data: bytes) -> PageFlags:
    path = os.path.join(folder, "fuzzed.pgf")
    with open(path, "wb") as out:
        out.write(data)
    return PageFlags.load(path)


@st.composite
def saved_files(draw) -> tuple[bytes, list[tuple], bool]:
    flags = draw(random_maps(draw(small_geometries())))
    data = saved_bytes(flags)
    steps = draw(file_mutations(len(data)))
    rechecksum = draw(st.sampled_from([True] * 9 + [False]))
    return data, steps, rechecksum


@fuzz
@fuzz_settings(default_examples=400)
@given(case=saved_files())
def test_load_refuses_damage_or_reads_what_the_file_says(case, tmp_path_factory):
    data, steps, rechecksum = case
    damaged = apply_file(data, steps, rechecksum)
    assume(not big_geometry(damaged))
    event(f"unchanged: {damaged == data}")
    folder = str(tmp_path_factory.getbasetemp())
    try:
        with bounded():
            flags = load_bytes(folder, damaged)
    except FormatError as error:
        event(f"load refused: {error.check}")
        return
    event("load accepted")
    assert_holds(flags, *reference_decode(damaged))


# --- pickled state ---------------------------------------------------------------------

ALTERNATE_GEOMETRIES = [Geometry.from_npages(1 << 16, chunk_shift=6),
                        Geometry.from_npages(100_000), Geometry(30, 12, 12)]


@st.composite
def state_mutations(draw) -> list[tuple]:
    one = st.one_of(
        st.tuples(st.just("value"), st.sampled_from(["runs", "allocated", "data"]),
                  st.integers(0, 1 << 20), word_values(64)),
        st.tuples(st.just("dtype"), st.sampled_from(["runs", "allocated", "data"]),
                  st.sampled_from(["<i8", "<u4", ">u8", "<f8", "O"])),
        st.tuples(st.just("rows"), st.sampled_from(["runs", "allocated", "data"]),
                  st.sampled_from(["drop", "double", "reverse", "transpose", "strided",
                                   "flatten", "column"])),
        st.tuples(st.just("geometry"), st.sampled_from([*ALTERNATE_GEOMETRIES, None, 1 << 20])),
    )
    return draw(st.lists(one, min_size=1, max_size=3))


def apply_state(state: tuple, steps: list[tuple]) -> tuple:
    geometry, *arrays = state
    parts = dict(zip(["runs", "allocated", "data"], (a.copy() for a in arrays), strict=True))
    for kind, *args in steps:
        if kind == "geometry":
            geometry = args[0]
            continue
        name = args[0]
        part = parts[name]
        if kind == "value" and part.size:
            flat = part.reshape(-1)  # a copy made above: writable and contiguous
            if flat.dtype == np.uint64:
                flat[args[1] % flat.size] = np.uint64(args[2])
        elif kind == "dtype":
            # Through object dtype the words are Python ints, which NumPy refuses to
            # narrow: that damage cannot be made, so the part stays as it was.
            with np.errstate(all="ignore"), contextlib.suppress(OverflowError):
                parts[name] = part.astype(args[1])
        elif kind == "rows":
            how = args[1]
            parts[name] = {
                "drop": lambda a: a[:-1], "double": lambda a: np.concatenate([a, a]),
                "reverse": lambda a: a[::-1], "transpose": lambda a: a.T,
                "strided": lambda a: a[::2], "flatten": lambda a: a.reshape(-1),
                "column": lambda a: a[:, None],
            }[how](part)
    return (geometry, parts["runs"], parts["allocated"], parts["data"])


class _Payload:
    """Pickles as a call of ``persist.restore`` on a given, possibly damaged, state."""

    def __init__(self, state: tuple) -> None:
        self.state = state

    def __reduce__(self) -> tuple:
        return (persist.restore, self.state)


@fuzz
@fuzz_settings(default_examples=300)
@given(geometry=small_geometries(), data=st.data())
def test_unpickling_refuses_damaged_state_or_rebuilds_it(geometry, data):
    flags = data.draw(random_maps(geometry))
    restore, state = flags.__reduce__()
    assert restore is persist.restore
    damaged = apply_state(state, data.draw(state_mutations()))
    payload = pickle.dumps(_Payload(damaged))
    try:
        with bounded():
            rebuilt = pickle.loads(payload)
    except FormatError as error:
        event(f"restore refused: {error.check}")
        return
    event("restore accepted")
    assert_holds(rebuilt, *damaged)


# --- Roaring ---------------------------------------------------------------------------

ROARING_GEOMETRIES = [
    Geometry(36, 12, 15, 1 << 22),           # 2^22 pages, chunk = half a container
    Geometry.from_npages(1_000_003),         # partial last chunk
    Geometry(30, 12, 8, 200_001),            # 256-page chunks, many per container
    Geometry(40, 12, 18, (1 << 26) - 5),     # 4 containers per chunk, partial last
    Geometry(48, 12, 20),                    # 2^36 pages: sixteen 2^32-value buckets
]


@st.composite
def roaring_sources(draw, geometry: Geometry) -> bytes:
    """A valid serialization: pyroaring's (array, run and bitset containers) or ours."""
    n = geometry.npages
    # Mostly values inside the map, sometimes a few past its end.
    value = st.integers(0, n - 1) | st.integers(0, min(n + (1 << 17), (1 << 64) - 1))
    if draw(st.booleans()):
        bm = BitMap64(draw(st.lists(value, max_size=60)))
        for _ in range(draw(st.integers(0, 3))):
            start = draw(value)
            length = draw(st.sampled_from([1, 2, 4097, 5000, 1 << 16, 70_000]))
            if draw(st.booleans()):
                bm.add_range(start, start + length)  # becomes a run after run_optimize
            else:
                bm.update(range(start, start + length, draw(st.sampled_from([2, 3, 7]))))
        if draw(st.booleans()):
            bm.run_optimize()
        return bm.serialize()
    return draw(random_maps(geometry)).to_roaring64_bytes()


def as_input_kind(data: bytes, kind: str) -> object:
    """``data`` as one of the bytes-like kinds the reader takes, strided ones too."""
    spread = bytes(2 * len(data))
    spread = bytearray(spread)
    spread[::2] = data
    return {
        "bytes": lambda: data, "bytearray": lambda: bytearray(data),
        "memoryview": lambda: memoryview(data),
        "strided memoryview": lambda: memoryview(bytes(spread))[::2],
        "uint8 array": lambda: np.frombuffer(data, dtype=np.uint8),
        "strided array": lambda: np.frombuffer(bytes(spread), dtype=np.uint8)[::2],
    }[kind]()


@st.composite
def roaring_cases(draw) -> tuple[Geometry, bytes, str]:
    geometry = draw(st.sampled_from(ROARING_GEOMETRIES))
    data = draw(roaring_sources(geometry))
    if draw(st.sampled_from([True] * 9 + [False])):
        data = apply_bytes(data, draw(byte_mutations(len(data))))
    kind = draw(st.sampled_from(["bytes"] * 5 + ["bytearray", "memoryview", "strided memoryview",
                                                 "uint8 array", "strided array"]))
    return geometry, data, kind


# Checks where pageflags refuses what pyroaring reads: CRoaring reads a valid prefix
# and ignores the bytes after it, takes a run container's cardinality from its runs,
# not from the header, and skips the offset header (Java's memory-mapped bitmaps
# seek by it, so a wrong one reads differently there).
STRICTER_THAN_PYROARING = {"trailing bytes", "run cardinality", "offset header"}


def pyroaring_reads(data: bytes) -> BitMap64 | None:
    """What pyroaring reads from ``data``, or None when it refuses it."""
    try:
        return BitMap64.deserialize(data)
    except Exception:  # pyroaring's own choice of types (IndexError for b"")
        return None


@fuzz
@fuzz_settings(default_examples=700)
@given(case=roaring_cases())
# Found by this fuzzer: a strided memoryview raised BufferError.
@example(case=(Geometry.from_npages(1 << 20), BitMap64([1, 99_999]).serialize(),
               "strided memoryview"))
def test_roaring_reader_refuses_damage_or_agrees_with_pyroaring(case):
    geometry, data, kind = case
    theirs = pyroaring_reads(data)
    try:
        with bounded():
            flags = PageFlags.from_roaring64_bytes(as_input_kind(data, kind), geometry)
    except FormatError as error:
        event(f"refused: {error.check}; pyroaring {'refuses' if theirs is None else 'reads'}")
        if theirs is not None and error.check != "values past npages":
            assert error.check in STRICTER_THAN_PYROARING, error
        return
    flags.validate()
    assert theirs is not None, "pyroaring refuses what pageflags accepts"
    # Compared as bitmaps (run containers stay runs): a map may hold 2^34 values.
    # The writer is checked against pyroaring in test_roaring.py.
    assert len(theirs) == flags.count()
    assert BitMap64.deserialize(flags.to_roaring64_bytes()) == theirs
    event("accepted, pyroaring agrees")


# --- /proc/iomem ------------------------------------------------------------------------

# (name, whether the kernel's convention makes it System RAM)
IOMEM_NAMES = [
    ("System RAM", True), ("System RAM (virtio_mem)", True), ("System RAM (kmem)", True),
    ("System RAM ()", True), ("Reserved", False), ("ACPI Tables", False),
    ("PCI Bus 0000:00", False), ("Kernel code", False), ("System RAMx", False),
    ("system ram", False), ("System RAM(kmem)", False), ("RAM buffer", False),
    ("Persistent Memory (legacy)", False), ("", False), ("System RAM : odd", False),
]
IOMEM_GEOMETRIES = [Geometry(), Geometry(36), Geometry(32, 12, 15), Geometry(52)]


@st.composite
def iomem_layouts(draw, geometry: Geometry) -> list[tuple[int, int, int, str, bool]]:
    """Lines ``(depth, start, end, name, is_ram)``: ascending top-level ranges, each
    with nested children inside it, some past the address space."""
    limit = geometry.memory_bytes
    lines = []
    at = draw(st.integers(0, 1 << 20))
    for _ in range(draw(st.integers(1, 8))):
        at += draw(st.sampled_from([0, 1, 0x1000, 0x1001]) | st.integers(0, limit >> 4))
        length = draw(st.sampled_from([1, 0xfff, 0x1000, 0x1001, 0x10000])
                      | st.integers(1, limit >> 3))
        name, ram = draw(st.sampled_from(IOMEM_NAMES))
        end = at + length - 1 if draw(st.integers(0, 19)) else at - 1  # sometimes end < start
        lines.append((0, at, end, name, ram))
        for depth in draw(st.lists(st.integers(1, 3), max_size=2)):
            child, _ = draw(st.sampled_from(IOMEM_NAMES))
            lines.append((depth, at, min(end, at + 0xfff), child, False))
        at = end + 1 if end >= at else at
    return lines


@st.composite
def iomem_texts(draw) -> tuple[Geometry, list, str]:
    geometry = draw(st.sampled_from(IOMEM_GEOMETRIES))
    layout = draw(iomem_layouts(geometry))
    width = draw(st.sampled_from([0, 8, 16]))
    upper = draw(st.booleans())
    indent = draw(st.sampled_from(["  ", "\t", " "]))
    text = ""
    for depth, start, end, name, _ in layout:
        lo, hi = f"{start:0{width}x}", f"{end:0{width}x}"
        if upper:
            lo, hi = lo.upper(), hi.upper()
        text += f"{indent * depth}{lo}-{hi} : {name}\n"
    return geometry, layout, text


def expected_iomem(geometry: Geometry, layout: list) -> np.ndarray | None:
    """The ranges a layout reads as, or None where the reader must refuse it."""
    page = geometry.page_size
    if any(end < start for _, start, end, _, _ in layout):
        return None
    if all(start == end == 0 for _, start, end, _, _ in layout):
        return None
    ram = [(start, end) for depth, start, end, _, is_ram in layout if depth == 0 and is_ram]
    if any(end >= geometry.memory_bytes for _, end in ram):
        return None
    pages = sorted((-(-start // page), (end + 1) // page) for start, end in ram)
    pages = [(a, b) for a, b in pages if a < b]
    if not pages:
        return None
    merged = [list(pages[0])]
    for a, b in pages[1:]:
        if a < merged[-1][1]:
            return None
        if a == merged[-1][1]:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return np.array(merged, dtype=np.int64)


TEXT_NOISE = st.sampled_from([*"0123456789abcdefABCDEF-: \t\n\r()xX",
    "\x00", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u00a0", "\uff10", "\u0663", "\ud800",
    "System RAM", " : ", "\n  "])


@st.composite
def text_mutations(draw, size_hint: int) -> list[tuple]:
    pos = st.integers(0, max(0, size_hint - 1))
    one = st.one_of(
        st.tuples(st.just("insert"), pos, TEXT_NOISE),
        st.tuples(st.just("replace"), pos, TEXT_NOISE),
        st.tuples(st.just("delete"), pos, st.integers(1, 8)),
        st.tuples(st.just("duplicate_line"), pos),
        st.tuples(st.just("digits"), pos, st.integers(1, 40)),
    )
    return draw(st.lists(one, min_size=1, max_size=5))


def apply_text(text: str, steps: list[tuple]) -> str:
    for kind, where, *args in steps:
        at = where % len(text) if text else 0
        if kind == "insert":
            text = text[:at] + args[0] + text[at:]
        elif kind == "replace":
            text = text[:at] + args[0] + text[at + 1:]
        elif kind == "delete":
            text = text[:at] + text[at + args[0]:]
        elif kind == "duplicate_line":
            lines = text.splitlines(keepends=True)
            if lines:
                i = where % len(lines)
                lines.insert(i, lines[i])
            text = "".join(lines)
        elif kind == "digits":  # a long hex number: a huge address
            text = text[:at] + "f" * args[0] + text[at:]
    return text


def assert_memory_map(mm: MemoryMap, geometry: Geometry) -> None:
    """Ranges sorted, non-empty, disjoint, not touching within one node, inside ``geometry``."""
    ranges, nodes = mm.ranges, mm.nodes
    assert ranges.dtype == np.int64 and ranges.ndim == 2 and ranges.shape[1] == 2
    assert nodes.shape == (ranges.shape[0],)
    assert mm.geometry == geometry
    assert ranges.size
    assert np.all(ranges[:, 0] >= 0) and np.all(ranges[:, 1] <= geometry.npages)
    assert np.all(ranges[:, 0] < ranges[:, 1])
    gaps = ranges[1:, 0] - ranges[:-1, 1]
    assert np.all(gaps >= 0)
    assert np.all((gaps > 0) | (nodes[1:] != nodes[:-1]))
    assert np.all(nodes >= -1)
    assert mm.present_pages == int((ranges[:, 1] - ranges[:, 0]).sum())


@fuzz
@fuzz_settings(default_examples=400)
@given(case=iomem_texts(), data=st.data())
def test_iomem_reader_refuses_or_reads_top_level_ram(case, data):
    geometry, layout, text = case
    mutate = data.draw(st.sampled_from([False, True, True]), label="mutate")
    if mutate:
        text = apply_text(text, data.draw(text_mutations(len(text)), label="mutations"))
    # A str with no newline and no " : " is a path; this fuzzer feeds text.
    text += "\n"
    try:
        with bounded():
            mm = MemoryMap.from_iomem(text, geometry=geometry)
    except ValueError:
        event(f"refused (mutated: {mutate})")
        assert mutate or expected_iomem(geometry, layout) is None
        return
    event(f"accepted (mutated: {mutate})")
    assert_memory_map(mm, geometry)
    if not mutate:
        np.testing.assert_array_equal(mm.ranges, expected_iomem(geometry, layout))


@fuzz
@fuzz_settings(default_examples=150)
@given(case=iomem_texts(), data=st.data())
def test_iomem_file_reader_refuses_damaged_bytes(case, data, tmp_path_factory):
    geometry, _, text = case
    raw = apply_bytes(text.encode(), data.draw(byte_mutations(len(text))))
    path = Path(tmp_path_factory.getbasetemp()) / "iomem"
    path.write_bytes(raw)
    try:
        with bounded():
            mm = MemoryMap.from_iomem(path, geometry=geometry)
    except ValueError:
        event("refused")
        return
    assert_memory_map(mm, geometry)


# --- sysfs memory blocks -------------------------------------------------------------------

SYSFS_GEOMETRY = Geometry()
STATES = {"online": True, "offline": False, "going-offline": False}


@st.composite
def sysfs_trees(draw) -> dict:
    """A fake tree: block size, blocks ``(name, phys_index, state, links, extra)``."""
    block_shift = draw(st.integers(12, 31))
    blocks = []
    numbers = sorted(draw(st.sets(st.integers(0, 64) | st.integers(0, 1 << 22),
                                  min_size=1, max_size=6)))
    for number in numbers:
        state = draw(st.sampled_from(sorted(STATES)))
        links = [f"node{draw(st.integers(0, 3))}"] if draw(st.booleans()) else []
        blocks.append({"name": f"memory{number}", "number": number,
                       "phys_index": f"{number:08x}\n", "state": state + "\n",
                       "links": links})
    return {"block_size_bytes": f"{1 << block_shift:x}\n", "block_shift": block_shift,
            "blocks": blocks, "extra": []}


NAME_NOISE = st.sampled_from(["memory", "memoryX", "memory1a", "memory-1", "memory\u0661",
                              "memory007", "Memory1", "memory99999999999999999999999"])
TEXT_FIELD_NOISE = st.sampled_from(
    ["", "\n", "zz\n", "0x10\n", "-1\n", "1_0\n", " 10 \n", "\u0661\n", "ffffffffffffffffff\n",
     "online", "Online\n", "offline\n\n", "going-offline\n", "\xff", "0" * 5000])


@st.composite
def sysfs_mutations(draw, tree: dict) -> list[tuple]:
    nblocks = len(tree["blocks"])
    block = st.integers(0, nblocks - 1)
    field = st.sampled_from(["phys_index", "state"])
    one = st.one_of(
        st.tuples(st.just("text"), block, field, TEXT_FIELD_NOISE),
        st.tuples(st.just("bytes"), block, field, st.binary(max_size=12)),
        st.tuples(st.just("missing"), block, field),
        st.tuples(st.just("as_dir"), block, field),
        st.tuples(st.just("rename"), block, NAME_NOISE),
        st.tuples(st.just("links"), block,
                  st.lists(st.sampled_from(["node0", "node1", "node", "nodeX", "node00",
                                            "node9223372036854775807"]), max_size=3)),
        st.tuples(st.just("block_size"), st.just(0), TEXT_FIELD_NOISE | st.sampled_from(
            ["1000\n", "8000000\n", "8000001\n", "0\n", "400\n", "800000000000000000\n"])),
        st.tuples(st.just("block_size_missing"), st.just(0)),
        st.tuples(st.just("stray_file"), st.just(0), NAME_NOISE),
    )
    return draw(st.lists(one, min_size=1, max_size=4))


def apply_sysfs(tree: dict, steps: list[tuple]) -> dict:
    blocks = [dict(b, links=list(b["links"])) for b in tree["blocks"]]
    tree = dict(tree, blocks=blocks, extra=list(tree["extra"]))
    for kind, i, *args in steps:
        if kind in ("text", "bytes"):
            blocks[i][args[0]] = args[1]
        elif kind in ("missing", "as_dir"):
            blocks[i][args[0]] = kind
        elif kind == "rename":
            blocks[i]["name"] = args[0]
        elif kind == "links":
            blocks[i]["links"] = args[0]
        elif kind == "block_size":
            tree["block_size_bytes"] = args[0]
        elif kind == "block_size_missing":
            tree["block_size_bytes"] = "missing"
        elif kind == "stray_file":
            tree["extra"].append(args[0])
    return tree


def write_entry(path: Path, content: str | bytes) -> None:
    if content == "missing":
        return
    if content == "as_dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def build_sysfs(root: Path, tree: dict) -> None:
    write_entry(root / "block_size_bytes", tree["block_size_bytes"])
    for b in tree["blocks"]:
        folder = root / b["name"]
        if folder.exists():  # two blocks renamed alike: the first one stays
            continue
        folder.mkdir()
        write_entry(folder / "phys_index", b["phys_index"])
        write_entry(folder / "state", b["state"])
        for link in b["links"]:
            with contextlib.suppress(FileExistsError):
                (folder / link).symlink_to(f"../../node/{link}")
    for name in tree["extra"]:
        with contextlib.suppress(OSError):  # a name a block folder already has
            (root / name).write_text("stray\n")


def expected_sysfs(tree: dict, geometry: Geometry, include_offline: bool) -> np.ndarray | None:
    """The ranges an undamaged tree reads as, or None where a block is past the map."""
    block_pages = (1 << tree["block_shift"]) // geometry.page_size
    if block_pages == 0:
        return None
    kept = []
    for b in tree["blocks"]:
        if (b["number"] + 1) * block_pages > geometry.npages:
            return None
        if STATES[b["state"].strip()] or include_offline:
            node = int(b["links"][0][4:]) if b["links"] else -1
            kept.append((b["number"] * block_pages, (b["number"] + 1) * block_pages, node))
    merged: list[list[int]] = []
    for start, stop, node in kept:
        if merged and merged[-1][1] == start and merged[-1][2] == node:
            merged[-1][1] = stop
        else:
            merged.append([start, stop, node])
    return np.array([m[:2] for m in merged], dtype=np.int64).reshape(-1, 2)


@fuzz
@fuzz_settings(default_examples=250)
@given(tree=sysfs_trees(), data=st.data(), include_offline=st.booleans())
def test_sysfs_reader_refuses_or_reads_online_blocks(tree, data, include_offline):
    mutate = data.draw(st.sampled_from([False, True, True]), label="mutate")
    if mutate:
        tree = apply_sysfs(tree, data.draw(sysfs_mutations(tree), label="mutations"))
    root = Path(tempfile.mkdtemp(prefix="pageflags-sysfs-"))
    try:
        build_sysfs(root, tree)
        with bounded():
            mm = MemoryMap.from_sysfs(root, geometry=SYSFS_GEOMETRY,
                                      include_offline=include_offline)
    except ValueError:
        event(f"refused (mutated: {mutate})")
        assert mutate or expected_sysfs(tree, SYSFS_GEOMETRY, include_offline) is None
        return
    finally:
        shutil.rmtree(root)
    event(f"accepted (mutated: {mutate})")
    if mm.ranges.size:
        assert_memory_map(mm, SYSFS_GEOMETRY)
    if not mutate:
        np.testing.assert_array_equal(mm.ranges,
                                      expected_sysfs(tree, SYSFS_GEOMETRY, include_offline))


# --- regression tests: what the fuzzers found ------------------------------------------

def test_recomputed_checksum_is_the_one_save_writes():
    # The file fuzzer's damage reaches the checks behind the checksum only if this holds.
    flags = PageFlags.from_array([3, 40_000, 99_999], Geometry.from_npages(100_000))
    data = saved_bytes(flags)
    assert with_checksum(data[:-8]) == data


def test_roaring_reader_takes_a_strided_memoryview():
    data = PageFlags.from_array([5, 70_000], 1 << 20).to_roaring64_bytes()
    spread = bytearray(2 * len(data))
    spread[::2] = data
    flags = PageFlags.from_roaring64_bytes(memoryview(bytes(spread))[::2], 1 << 20)
    assert flags.to_array().tolist() == [5, 70_000]


def _header(phys: int, page_shift: int, chunk_shift: int, npages: int) -> bytes:
    return HEADER.pack(persist.MAGIC, persist.VERSION, phys, page_shift, chunk_shift, 0,
                       npages, 0, 0, 0, bytes(16))


def test_load_of_a_tiny_file_allocates_what_its_geometry_costs(tmp_path):
    # A 72-byte file naming 2^24 entries: the empty table is all load builds.
    data = with_checksum(_header(46, 12, 10, 1 << 34))
    assert len(data) == 72
    geometry = header_geometry(data)
    try:
        with bounded(limit=persist.load_cost(geometry, 0)):
            flags = load_bytes(str(tmp_path), data)
    except FormatError as error:
        assert error.check == "memory"
        return
    assert flags.count() == 0


def _unblocks(fifo: Path, read, seconds: float = 1.0) -> BaseException | object:
    """Run ``read()`` on a thread; if it still waits on ``fifo`` after ``seconds``,
    open the FIFO's other end, so that the reader sees end of file, and fail."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(read())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    hung = thread.is_alive()
    if hung:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join()
    assert not hung, f"the reader waited on the FIFO {fifo} for a writer"
    return outcome[0]


def test_load_refuses_a_fifo_without_waiting(tmp_path):
    fifo = tmp_path / "map.pgf"
    os.mkfifo(fifo)
    outcome = _unblocks(fifo, lambda: PageFlags.load(fifo))
    assert isinstance(outcome, (FormatError, OSError)), outcome


def test_iomem_refuses_a_fifo_without_waiting(tmp_path):
    fifo = tmp_path / "iomem"
    os.mkfifo(fifo)
    outcome = _unblocks(fifo, lambda: MemoryMap.from_iomem(fifo))
    assert isinstance(outcome, ValueError), outcome


def _sysfs_tree(root: Path, blocks: dict[str, str],
                links: dict[str, list[str]] | None = None) -> Path:
    links = links or {}
    (root / "block_size_bytes").write_text("8000000\n")
    for name, index in blocks.items():
        (root / name).mkdir()
        (root / name / "phys_index").write_text(index)
        (root / name / "state").write_text("online\n")
        for link in links.get(name, []):
            (root / name / link).symlink_to(f"../../node/{link}")
    return root


def test_sysfs_refuses_a_fifo_without_waiting(tmp_path):
    root = _sysfs_tree(tmp_path, {"memory0": "0\n"})
    fifo = root / "memory0" / "phys_index"
    fifo.unlink()
    os.mkfifo(fifo)
    outcome = _unblocks(fifo, lambda: MemoryMap.from_sysfs(root))
    assert isinstance(outcome, ValueError), outcome


def test_sysfs_refuses_two_folders_of_one_block(tmp_path):
    root = _sysfs_tree(tmp_path, {"memory1": "1\n", "memory01": "1\n"})
    with pytest.raises(ValueError, match="both are block 1"):
        MemoryMap.from_sysfs(root)


def test_sysfs_ignores_folders_named_with_other_digits(tmp_path):
    root = _sysfs_tree(tmp_path, {"memory1": "1\n", "memory\u0661": "1\n"})  # an Arabic 1
    assert MemoryMap.from_sysfs(root).present_pages > 0


def test_sysfs_refuses_a_node_number_past_int64(tmp_path):
    root = _sysfs_tree(tmp_path, {"memory0": "0\n"}, {"memory0": [f"node{1 << 64}"]})
    with pytest.raises(ValueError):
        MemoryMap.from_sysfs(root)


def test_sysfs_reads_little_of_a_huge_attribute(tmp_path):
    root = _sysfs_tree(tmp_path, {"memory0": "0\n"})
    with open(root / "memory0" / "phys_index", "r+b") as f:
        f.truncate(32 << 20)  # sparse: costs no disk
    try:
        with bounded(limit=1 << 20):
            MemoryMap.from_sysfs(root)
    except ValueError:
        pass
