"""MemoryMap, its parsers and synthetic layouts, and the allocation modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import finishes_within
from hypothesis import given, settings
from hypothesis import strategies as st

from pageflags import FlatPageFlags, Geometry, MemoryMap, PageFlags, PreallocatedPageFlags
from pageflags import memmap as memmap_module
from pageflags._sizes import parse_size

GIB = 1 << 30
SMALL = Geometry(phys_addr_bits=40)  # 8192 sections: cheap tables

IOMEM = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-000fffff : Reserved
  000a0000-000bffff : PCI Bus 0000:00
  000f0000-000fffff : System ROM
00100000-bfffffff : System RAM
  01000000-0220bb07 : Kernel code
  02400000-02e09fff : Kernel rodata
c0001000-eebfffff : PCI Bus 0000:00
eec00000-febfffff : Reserved
  eec00000-eecfffff : PCI ECAM 0000 [bus 00-00]
    eec00000-eecfffff : PCI Bus 0000:00
100000000-63fffffff : System RAM
4000000000-7fffffffff : PCI Bus 0000:00
  4000000000-400007ffff : 0000:00:01.0
"""


# --- the constructor -----------------------------------------------------------------

def test_constructor_merges_touching_ranges_of_one_node_only():
    mm = MemoryMap([[0, 10], [10, 20], [20, 30], [40, 50]], nodes=[0, 0, 1, 1],
                   geometry=SMALL)
    assert mm.ranges.tolist() == [[0, 20], [20, 30], [40, 50]]
    assert mm.nodes.tolist() == [0, 1, 1]
    assert mm.present_pages == 40
    with pytest.raises(ValueError):
        mm.ranges[0, 0] = 5  # read-only


@pytest.mark.parametrize(("ranges", "error", "match"), [
    ([[0, 10], [5, 20]], ValueError, "range 1: overlaps"),
    ([[20, 30], [0, 10]], ValueError, "range 1: overlaps or precedes"),
    ([[5, 5]], ValueError, "range 0: empty"),
    ([[7, 3]], ValueError, "range 0: empty"),
    ([[0, SMALL.npages + 1]], IndexError, "outside"),
    ([[-1, 10]], IndexError, "outside"),
    ([[0.0, 10.0]], TypeError, "integer"),
    ([0, 10], ValueError, "shape"),
])
def test_constructor_rejects_bad_ranges(ranges, error, match):
    with pytest.raises(error, match=match):
        MemoryMap(ranges, geometry=SMALL)


def test_constructor_rejects_bad_nodes():
    with pytest.raises(ValueError, match="shape"):
        MemoryMap([[0, 10]], nodes=[0, 1], geometry=SMALL)
    with pytest.raises(ValueError, match="negative"):
        MemoryMap([[0, 10]], nodes=[-2], geometry=SMALL)
    with pytest.raises(TypeError):
        MemoryMap([[0, 10]], nodes=[0.5], geometry=SMALL)


def test_empty_map():
    mm = MemoryMap(np.empty((0, 2), dtype=np.int64), geometry=SMALL)
    assert mm.present_pages == 0 and mm.sections().size == 0
    assert mm.to_flags().count() == 0
    assert (mm.section_nodes() == -1).all()


# --- /proc/iomem ---------------------------------------------------------------------

def test_iomem_takes_top_level_system_ram_rounding_to_whole_pages():
    mm = MemoryMap.from_iomem(IOMEM)
    # 0x9fbff ends inside page 0x9f, which is therefore not present.
    assert mm.ranges.tolist() == [[0x1, 0x9f], [0x100, 0xc0000], [0x100000, 0x640000]]
    assert (mm.nodes == -1).all()
    assert mm.present_pages == (0x9f - 1) + (0xc0000 - 0x100) + (0x640000 - 0x100000)


def test_iomem_from_a_path_equals_from_text(tmp_path):
    path = tmp_path / "iomem"
    path.write_text(IOMEM)
    assert MemoryMap.from_iomem(path) == MemoryMap.from_iomem(IOMEM)
    assert MemoryMap.from_iomem(str(path)) == MemoryMap.from_iomem(IOMEM)


def test_iomem_partial_pages():
    text = ("00001001-00002ffe : System RAM\n"  # pages 2..2 wholly inside: [2, 2) empty
            "00003001-00005fff : System RAM\n"  # rounds up to page 4
            "00006000-000060ff : System RAM\n"  # inside one page: dropped
            "00007000-00008ffe : System RAM\n")  # rounds down: page 7 only
    assert MemoryMap.from_iomem(text).ranges.tolist() == [[4, 6], [7, 8]]


def test_iomem_ignores_nested_system_ram():
    text = ("00000000-3fffffff : Persistent Memory\n"
            "  00000000-0fffffff : System RAM\n"
            "40000000-7fffffff : System RAM\n")
    assert MemoryMap.from_iomem(text).ranges.tolist() == [[0x40000, 0x80000]]


def test_iomem_counts_driver_named_system_ram():
    text = ("00000000-0fffffff : System RAM\n"
            "100000000-13fffffff : System RAM (virtio_mem)\n"
            "140000000-17fffffff : System RAMBO\n"
            "180000000-1bfffffff : Soft Reserved\n")
    assert MemoryMap.from_iomem(text).ranges.tolist() == [[0, 0x10000], [0x100000, 0x140000]]


def test_iomem_near_the_top_of_a_46_bit_space():
    text = ("100000000-13fffffff : System RAM\n"
            "3fffc0000000-3fffffffffff : System RAM\n")
    g = Geometry(phys_addr_bits=46)
    mm = MemoryMap.from_iomem(text, geometry=g)
    assert mm.ranges[-1].tolist() == [g.npages - (1 << 18), g.npages]
    assert mm.sections()[-1] == g.nchunks - 1
    past = "400000000000-400000000fff : System RAM\n"
    with pytest.raises(ValueError, match=r"line 1 .*past the 46-bit"):
        MemoryMap.from_iomem(past, geometry=g)
    assert MemoryMap.from_iomem(past, geometry=Geometry(52)).present_pages == 1


def test_iomem_sorts_top_level_ranges():
    text = "100000000-1ffffffff : System RAM\n00000000-0fffffff : System RAM\n"
    assert MemoryMap.from_iomem(text).ranges.tolist() == [[0, 0x10000],
                                                          [0x100000, 0x200000]]


@pytest.mark.parametrize(("text", "match"), [
    ("", "no top-level 'System RAM'"),
    ("\n\n", "no top-level 'System RAM'"),
    ("00000000-00000fff : Reserved\n", "no top-level 'System RAM'"),
    ("00000000-00000fff : System RAM\nzz-100 : System RAM\n", "line 2 .*expected"),
    ("00001000 : System RAM\n", "line 1 "),
    ("00001000-00002fff System RAM\n", "line 1 "),
    ("00001000-00002fff : System RAM\n00003000-00001fff : Reserved\n",
     "line 2 .*end before start"),
    ("00000000-0fffffff : System RAM\n08000000-1fffffff : System RAM\n",
     "line 2 .*overlaps"),
    ("00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n"
     "  00000000-00000000 : Kernel code\n", "CAP_SYS_ADMIN"),
])
def test_iomem_rejects_bad_input_naming_the_line(text, match):
    with pytest.raises(ValueError, match=match):
        MemoryMap.from_iomem(text)


def test_iomem_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        MemoryMap.from_iomem(tmp_path / "nope")


# --- sysfs ---------------------------------------------------------------------------

def make_tree(root: Path, block_bytes: int,
              blocks: list[tuple[int, str, int | None]]) -> Path:
    """A memory-block tree: ``(block number, state, node or None)`` per block."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "block_size_bytes").write_text(f"{block_bytes:x}\n")
    (root / "auto_online_blocks").write_text("online\n")
    for number, state, node in blocks:
        d = root / f"memory{number}"
        d.mkdir()
        (d / "phys_index").write_text(f"{number:08x}\n")
        (d / "state").write_text(state + "\n")
        (d / "power").mkdir()
        if node is not None:
            target = root / "nodes" / f"node{node}"
            target.mkdir(parents=True, exist_ok=True)
            (d / f"node{node}").symlink_to(target)
    return root


SECTION = 1 << 27


def test_sysfs_online_blocks_with_nodes(tmp_path):
    root = make_tree(tmp_path / "memory", SECTION, [
        (0, "online", 0), (1, "online", 0), (2, "offline", 0), (3, "online", 0),
        (4, "online", 1), (9, "online", None)])
    mm = MemoryMap.from_sysfs(root, geometry=SMALL)
    ppc = SMALL.pages_per_chunk
    assert mm.ranges.tolist() == [[0, 2 * ppc], [3 * ppc, 4 * ppc], [4 * ppc, 5 * ppc],
                                  [9 * ppc, 10 * ppc]]
    assert mm.nodes.tolist() == [0, 0, 1, -1]
    assert mm.sections().tolist() == [0, 1, 3, 4, 9]
    with_offline = MemoryMap.from_sysfs(root, geometry=SMALL, include_offline=True)
    assert with_offline.ranges.tolist()[0] == [0, 5 * ppc - ppc]  # 0..3 merged, node 0
    assert with_offline.sections().tolist() == [0, 1, 2, 3, 4, 9]


def test_sysfs_large_blocks(tmp_path):
    root = make_tree(tmp_path / "memory", 2 * GIB, [(0, "online", 0), (2, "online", 0)])
    mm = MemoryMap.from_sysfs(root, geometry=SMALL)
    assert mm.ranges.tolist() == [[0, 1 << 19], [1 << 20, 3 << 19]]
    assert mm.sections().size == 32


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda r: (r / "memory1" / "phys_index").write_text("zz\n"),
     r"memory1/phys_index: expected a hex number"),
    (lambda r: (r / "memory1" / "phys_index").write_text("00000007\n"),
     r"memory1/phys_index: phys_index 0x7 is not block 1"),
    (lambda r: (r / "memory1" / "phys_index").unlink(), r"memory1/phys_index: cannot read"),
    (lambda r: (r / "memory1" / "state").write_text("confused\n"),
     r"memory1/state: unknown state"),
    (lambda r: (r / "block_size_bytes").write_text("6000000\n"), "not a power of two"),
    (lambda r: (r / "block_size_bytes").write_text("\n"), "block_size_bytes: expected"),
    (lambda r: (r / "block_size_bytes").unlink(), "block_size_bytes: cannot read"),
    (lambda r: (r / "memory1" / "node1").symlink_to(r / "nodes" / "node0"),
     "several nodes"),
])
def test_sysfs_rejects_bad_trees_naming_the_file(tmp_path, mutate, match):
    root = make_tree(tmp_path / "memory", SECTION, [(0, "online", 0), (1, "online", 0)])
    mutate(root)
    with pytest.raises(ValueError, match=match):
        MemoryMap.from_sysfs(root, geometry=SMALL)


def test_sysfs_rejects_empty_and_oversized_trees(tmp_path):
    with pytest.raises(ValueError, match="no memoryN"):
        MemoryMap.from_sysfs(make_tree(tmp_path / "a", SECTION, []), geometry=SMALL)
    far = make_tree(tmp_path / "b", SECTION, [(SMALL.nchunks, "online", None)])
    with pytest.raises(ValueError, match="past the 40-bit"):
        MemoryMap.from_sysfs(far, geometry=SMALL)
    with pytest.raises(ValueError, match="missing/block_size_bytes: cannot read"):
        MemoryMap.from_sysfs(tmp_path / "missing", geometry=SMALL)


def test_sysfs_and_iomem_of_one_machine_agree(tmp_path):
    root = make_tree(tmp_path / "memory", SECTION,
                     [(n, "online", 0) for n in (*range(24), *range(32, 200))])
    blocks = MemoryMap.from_sysfs(root).blocks(SECTION)
    assert np.array_equal(MemoryMap.from_iomem(IOMEM).blocks(SECTION), blocks)


def _this_machine() -> tuple[MemoryMap, MemoryMap, int]:
    sysfs = Path("/sys/devices/system/memory")
    try:
        text = Path("/proc/iomem").read_text()
        block = int((sysfs / "block_size_bytes").read_text(), 16)
    except OSError as err:
        pytest.skip(f"/proc/iomem or sysfs memory blocks not readable: {err}")
    try:
        iomem = MemoryMap.from_iomem(text)
    except ValueError as err:
        pytest.skip(f"/proc/iomem gives no addresses here: {err}")
    return iomem, MemoryMap.from_sysfs(sysfs, include_offline=True), block


def test_this_machines_sysfs_and_iomem_agree_per_block():
    iomem, sysfs, block = _this_machine()
    assert np.array_equal(iomem.blocks(block), sysfs.blocks(block))


# --- synthetic layouts ---------------------------------------------------------------

@pytest.mark.parametrize(("total", "nodes", "bits", "unaligned"), [
    ("2 TiB", 8, 46, False), ("2 TiB", 8, 46, True), ("64 GiB", 3, 40, True),
    ("1 PiB", 16, 52, False), ("5 GiB", 1, 46, False), ("100 MiB", 2, 40, True),
])
def test_synthetic_total_nodes_and_strides(total, nodes, bits, unaligned):
    mm = MemoryMap.synthetic(total, nodes, geometry=Geometry(bits), unaligned=unaligned,
                             seed=5)
    g = mm.geometry
    assert mm.present_bytes == parse_size(total)
    stride = (g.npages // nodes) // g.pages_per_chunk * g.pages_per_chunk
    assert set(mm.nodes.tolist()) <= set(range(nodes))
    k = mm.nodes
    assert (mm.ranges[:, 0] >= k * stride).all()
    assert (mm.ranges[:, 1] <= np.where(k == nodes - 1, g.npages, (k + 1) * stride)).all()
    hole = (3 * GIB // g.page_size, 4 * GIB // g.page_size)
    assert not ((mm.ranges[:, 0] < hole[1]) & (mm.ranges[:, 1] > hole[0])).any()
    assert (mm.ranges % g.pages_per_chunk).any() == unaligned


def test_synthetic_aligned_ends_are_section_aligned():
    mm = MemoryMap.synthetic("2 TiB", 8, seed=3)
    assert not (mm.ranges % mm.geometry.pages_per_chunk).any()
    assert mm.sections().size == (2 << 40) // (128 << 20)


def test_synthetic_is_seeded():
    a = MemoryMap.synthetic("2 TiB", 8, seed=1, unaligned=True)
    assert a == MemoryMap.synthetic("2 TiB", 8, seed=1, unaligned=True)
    assert a != MemoryMap.synthetic("2 TiB", 8, seed=2, unaligned=True)


def test_synthetic_hole_can_be_kept():
    mm = MemoryMap.synthetic("8 GiB", 1, hole_below_4g=False, pieces=(1, 1))
    assert mm.ranges.tolist() == [[0, 8 * GIB // 4096]]
    holed = MemoryMap.synthetic("8 GiB", 1, pieces=(1, 1))
    assert holed.ranges.tolist() == [[0, 3 * GIB // 4096], [4 * GIB // 4096, 9 * GIB // 4096]]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"total": "2 TB"}, "unknown unit"),
    ({"total": "1 PiB"}, "does not fit a 46-bit"),
    ({"total": 4097}, "whole number of 4096-byte pages"),
    ({"nodes": 0}, "nodes"),
    ({"pieces": (3, 2)}, "pieces"),
])
def test_synthetic_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MemoryMap.synthetic(**kwargs)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"total": 2**100}, ValueError, r"does not fit a 46-bit address space \(it holds 64 TiB\)"),
    ({"total": "99999999999999999999999PiB"}, ValueError, "does not fit a 46-bit"),
    ({"nodes": 2**100}, ValueError, r"nodes must be <= 524288"),
    ({"nodes": 1.5}, TypeError, "nodes must be an integer"),
    ({"nodes": True}, TypeError, "nodes must be an integer"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"seed": None}, TypeError, "seed must be an integer"),
    ({"pieces": (1.5, 3)}, TypeError, "pieces must be an integer"),
    ({"pieces": 2}, TypeError, "pieces must be a pair"),
    ({"pieces": (0, 3)}, ValueError, "pieces must satisfy"),
    ({"total": np.timedelta64(1 << 30)}, TypeError, "size must be a str or an integer"),
])
def test_synthetic_names_the_bad_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        MemoryMap.synthetic(**{"total": "64 GiB", **kwargs})


def test_synthetic_takes_numpy_integers_and_a_page_count_geometry():
    mm = MemoryMap.synthetic(np.int64(1 << 30), np.uint8(2), seed=np.int32(3),
                             geometry=1 << 24, pieces=(np.int8(1), 2))
    assert mm.present_bytes == 1 << 30 and mm.geometry.npages == 1 << 24


# --- sections, to_flags and the allocation modes --------------------------------------

def model_of(mm: MemoryMap) -> FlatPageFlags:
    flat = FlatPageFlags(mm.geometry)
    for start, stop in mm.ranges.tolist():
        flat.set_range(start, stop)
    return flat


def expected_chunks(mm: MemoryMap) -> tuple[int, int]:
    """``(wholly present, partly present)`` section counts, from the model."""
    g = mm.geometry
    flat = model_of(mm)
    counts = np.array([flat.count(c * g.pages_per_chunk,
                                  min((c + 1) * g.pages_per_chunk, g.npages))
                       for c in range(g.nchunks)])
    whole = np.zeros(g.nchunks, dtype=bool)
    whole[:g.npages // g.pages_per_chunk] = True
    full = int(np.count_nonzero((counts == g.pages_per_chunk) & whole))
    return full, int(np.count_nonzero(counts > 0)) - full


GEOMETRIES = [Geometry(phys_addr_bits=24, chunk_shift=7),         # 32 sections
              Geometry.from_npages(4000, chunk_shift=7)]           # a partial last one


@st.composite
def memory_maps(draw):
    g = draw(st.sampled_from(GEOMETRIES))
    cuts = sorted(draw(st.sets(st.integers(0, g.npages), max_size=12)))
    cuts = cuts[:len(cuts) // 2 * 2]
    ranges = np.array(cuts, dtype=np.int64).reshape(-1, 2)
    ranges = ranges[ranges[:, 0] < ranges[:, 1]]
    nodes = draw(st.lists(st.integers(-1, 2), min_size=len(ranges), max_size=len(ranges)))
    return MemoryMap(ranges, nodes=nodes, geometry=g)


@settings(max_examples=150, deadline=None)
@given(memory_maps())
def test_to_flags_and_sections_match_a_flat_model(mm):
    g = mm.geometry
    flat = model_of(mm)
    chunk_any = [flat.any(c * g.pages_per_chunk, min((c + 1) * g.pages_per_chunk, g.npages))
                 for c in range(g.nchunks)]
    assert mm.sections().tolist() == np.flatnonzero(chunk_any).tolist()
    assert mm.present_pages == flat.count()
    full, partial = expected_chunks(mm)
    for alloc, allocated in (("lazy", partial), ("present", full + partial),
                             ("all", g.nchunks)):
        flags = mm.to_flags(alloc)
        flags.validate()
        assert flags == flat
        stats = flags.stats()
        assert stats["allocated"] == allocated, alloc
        assert stats["full"] == (full if alloc == "lazy" else 0)
        empty = mm.new_flags(alloc)
        empty.validate()
        assert empty.count() == 0
        assert empty.stats()["allocated"] == (0 if alloc == "lazy" else allocated)


def test_alloc_modes_on_a_2_tib_machine():
    mm = MemoryMap.synthetic("2 TiB", 8, seed=0)
    g = mm.geometry
    lazy, present = mm.new_flags(), mm.new_flags("present")
    assert type(lazy) is PageFlags and isinstance(present, PreallocatedPageFlags)
    assert lazy.stats()["allocated"] == 0
    assert present.stats()["allocated"] == present.stats()["pinned"] == 16384
    assert present.stats()["chunk_bytes"] == 16384 * g.chunk_bytes  # 64 MiB
    assert mm.to_flags().stats()["full"] == 16384
    with pytest.raises(ValueError, match="alloc"):
        mm.new_flags("eager")


def test_section_nodes_follow_ranges():
    g = Geometry(phys_addr_bits=30)
    ppc = g.pages_per_chunk
    mm = MemoryMap([[2 * ppc + 1, 3 * ppc], [5 * ppc, 6 * ppc]], nodes=[4, 7], geometry=g)
    assert mm.section_nodes().tolist() == [4, 4, 4, 4, 4, 7, 7, 7]


def test_blocks_rejects_bad_sizes():
    mm = MemoryMap([[0, 100]], geometry=SMALL)
    for bad in (3 * 4096, 100, "1 TB"):
        with pytest.raises(ValueError):
            mm.blocks(bad)


def test_repr():
    mm = MemoryMap.synthetic("2 TiB", seed=1)
    assert repr(mm) == f"MemoryMap({len(mm.ranges)} ranges, 2 TiB in 8 nodes, 46-bit)"


# --- what the readers refuse -----------------------------------------------------

@pytest.mark.parametrize("name", ["block_size_bytes", "memory1/phys_index", "memory1/state"])
def test_sysfs_refuses_a_fifo_without_blocking(tmp_path, name):
    import os

    root = make_tree(tmp_path / "memory", SECTION, [(0, "online", 0), (1, "online", 0)])
    (root / name).unlink()
    os.mkfifo(root / name)
    with pytest.raises(ValueError, match=f"{name}: cannot read.*not a regular file.*FIFO"):
        finishes_within(10, lambda: MemoryMap.from_sysfs(root, geometry=SMALL),
                        fifo=root / name)


def test_iomem_refuses_a_fifo_path_without_blocking(tmp_path):
    import os

    os.mkfifo(tmp_path / "iomem")
    with pytest.raises(ValueError, match=r"cannot read.*not a regular file.*FIFO"):
        finishes_within(10, lambda: MemoryMap.from_iomem(tmp_path / "iomem"),
                        fifo=tmp_path / "iomem")
    with pytest.raises(ValueError, match="cannot read"):
        MemoryMap.from_iomem(tmp_path)


def test_iomem_refuses_a_file_too_large_to_be_iomem(tmp_path, monkeypatch):
    monkeypatch.setattr(memmap_module, "_IOMEM_MAX_BYTES", 100)
    path = tmp_path / "iomem"
    path.write_text(IOMEM)
    with pytest.raises(ValueError, match="more than 100 bytes"):
        MemoryMap.from_iomem(path)


def test_sysfs_refuses_an_attribute_larger_than_a_page(tmp_path):
    root = make_tree(tmp_path / "memory", SECTION, [(0, "online", 0)])
    (root / "memory0" / "state").write_text("online\n" + " " * (1 << 20))
    with pytest.raises(ValueError, match=r"memory0/state: .*more than"):
        MemoryMap.from_sysfs(root, geometry=SMALL)


def test_iomem_names_with_long_runs_of_spaces_parse_in_linear_time():
    import time

    text = "00000000-0fffffff : System RAM\n10000000-1fffffff : x" + " " * 200_000 + "y\n"
    start = time.perf_counter()
    assert MemoryMap.from_iomem(text).ranges.tolist() == [[0, 0x10000]]
    assert time.perf_counter() - start < 5
    spaced = "00000000-0fffffff : System RAM   \n"     # trailing blanks still stripped
    assert MemoryMap.from_iomem(spaced).present_pages == 0x10000


def test_sysfs_refuses_two_directories_of_one_block(tmp_path):
    root = make_tree(tmp_path / "memory", SECTION, [(0, "online", 0), (1, "online", 0)])
    (root / "memory00").mkdir()
    (root / "memory00" / "phys_index").write_text("00000000\n")
    (root / "memory00" / "state").write_text("online\n")
    with pytest.raises(ValueError, match=r"memory0 and .*memory00: both are block 0"):
        MemoryMap.from_sysfs(root, geometry=SMALL)


@pytest.mark.parametrize("node", [2**64 - 1, 2**31, 10**30])
def test_sysfs_refuses_a_node_number_that_does_not_fit(tmp_path, node):
    root = make_tree(tmp_path / "memory", SECTION, [(0, "online", None)])
    (root / "memory0" / f"node{node}").symlink_to(root)
    with pytest.raises(ValueError, match=rf"memory0/node{node}: node number .* too large"):
        MemoryMap.from_sysfs(root, geometry=SMALL)


def test_sysfs_takes_the_largest_node_number_that_fits(tmp_path):
    root = make_tree(tmp_path / "memory", SECTION, [(0, "online", None)])
    (root / "memory0" / f"node{2**31 - 1}").symlink_to(root)
    assert MemoryMap.from_sysfs(root, geometry=SMALL).nodes.tolist() == [2**31 - 1]


def test_sysfs_refuses_a_block_number_of_hundreds_of_digits(tmp_path):
    root = make_tree(tmp_path / "memory", SECTION, [(0, "online", 0)])
    (root / ("memory" + "9" * 240)).mkdir()
    with pytest.raises(ValueError, match=r"memory9999.*block number .* too large"):
        MemoryMap.from_sysfs(root, geometry=SMALL)


def test_sysfs_ignores_non_ascii_digits(tmp_path):
    root = make_tree(tmp_path / "memory", SECTION, [(0, "online", 0)])
    (root / "memory\u0663").mkdir()                         # ARABIC-INDIC DIGIT THREE
    assert MemoryMap.from_sysfs(root, geometry=SMALL).sections().tolist() == [0]


@pytest.mark.parametrize("size", [1 << 64, SMALL.memory_bytes * 2])
def test_sysfs_blames_a_huge_block_size_on_block_size_bytes(tmp_path, size):
    root = make_tree(tmp_path / "memory", size, [(0, "online", 0)])
    with pytest.raises(ValueError, match=r"block_size_bytes: block size .* larger than "
                                         r"the 40-bit address space"):
        MemoryMap.from_sysfs(root, geometry=SMALL)


def test_sysfs_takes_a_block_as_large_as_the_address_space(tmp_path):
    root = make_tree(tmp_path / "memory", SMALL.memory_bytes, [(0, "online", 0)])
    assert MemoryMap.from_sysfs(root, geometry=SMALL).present_pages == SMALL.npages


@pytest.mark.parametrize("reader", ["iomem", "sysfs"])
def test_readers_refuse_a_bad_geometry_clearly(tmp_path, reader):
    root = make_tree(tmp_path / "memory", SECTION, [(0, "online", 0)])

    def read(geometry):
        if reader == "iomem":
            return MemoryMap.from_iomem(IOMEM, geometry=geometry)
        return MemoryMap.from_sysfs(root, geometry=geometry)

    for bad in ("46", 4.5, None, True):
        with pytest.raises(TypeError, match="expected a Geometry or a page count"):
            read(bad)
    # A page count is a geometry, as everywhere else: 5 pages hold no RAM here.
    with pytest.raises(ValueError, match="address space"):
        read(5)
    assert read(1 << 30).geometry == Geometry.from_npages(1 << 30)


@pytest.mark.parametrize(("nodes", "error"), [
    (np.array([2**64 - 1], dtype=np.uint64), ValueError),   # not -1, "unknown"
    ([2**70], ValueError),
    (np.ma.masked_array([0], mask=[True]), TypeError),
    ([True], TypeError),
])
def test_constructor_refuses_nodes_that_would_change_meaning(nodes, error):
    with pytest.raises(error):
        MemoryMap([[0, 32768]], nodes=nodes, geometry=Geometry(40))


@pytest.mark.parametrize("ranges", [[[True, 5]], np.ma.masked_array([[0, 5]], mask=[[1, 0]])])
def test_constructor_refuses_ranges_that_would_change_meaning(ranges):
    with pytest.raises(TypeError):
        MemoryMap(ranges, geometry=Geometry(40))


