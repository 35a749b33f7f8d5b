"""PreallocatedPageFlags: pinned sections keep their chunks (pageflags/preallocated.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pageflags import FlatPageFlags, Geometry, MemoryMap, PageFlags, PreallocatedPageFlags
from pageflags import _system as system_module


def test_all_mode_counts_every_section():
    mm = MemoryMap([[0, 100]], geometry=Geometry(phys_addr_bits=32))
    flags = mm.new_flags("all")
    assert flags.stats()["allocated"] == flags.geometry.nchunks == 32
    assert flags.alloc == "all" and flags.pinned.all()


def test_pinned_sections_never_allocate_or_free():
    g = Geometry(phys_addr_bits=30)  # 8 sections
    ppc = g.pages_per_chunk
    mm = MemoryMap([[0, 3 * ppc]], geometry=g)
    flags = mm.new_flags("present")
    flat = FlatPageFlags(g)
    chunks = [flags.table[c] for c in range(3)]

    def same_chunks():
        flags.validate()
        assert flags == flat
        assert all(flags.table[c] is chunks[c] for c in range(3))

    for fn, args in [("set_range", (0, 3 * ppc)), ("clear_range", (0, 2 * ppc + 5)),
                     ("set_many", ([0, 1, ppc + 7],)), ("clear_many", ([0, 1, ppc + 7],)),
                     ("clear_range", (0, 3 * ppc)), ("set", (ppc,)), ("clear", (ppc,))]:
        getattr(flags, fn)(*args)
        getattr(flat, fn)(*args)
        same_chunks()
    assert flags.optimize() == 0
    same_chunks()
    # Outside the pinned sections the map is lazy: it allocates and frees.
    flags.set(5 * ppc + 1)
    flat.set(5 * ppc + 1)
    assert flags.stats()["allocated"] == 4
    flags.clear(5 * ppc + 1)
    flat.clear(5 * ppc + 1)
    assert flags.stats()["allocated"] == 3
    same_chunks()
    flags.unpin([0, 1, 2])
    assert flags.optimize() == 3 * g.chunk_bytes
    assert flags.stats()["allocated"] == 0
    flags.validate()


def test_pin_keeps_bits_and_unshares_full(tmp_path):
    g = Geometry(phys_addr_bits=30)
    flags = PreallocatedPageFlags(g, sections=[])
    flags.set_range(0, 2 * g.pages_per_chunk)  # two FULL entries
    flags.set(3 * g.pages_per_chunk + 9)
    flags.pin([0, 3, 4])
    assert flags.table[0] is not flags.FULL and flags.table[1] is flags.FULL
    assert flags.stats()["allocated"] == 3 and flags.count() == 2 * g.pages_per_chunk + 1
    flags.validate()


def test_pin_refuses_what_does_not_fit(monkeypatch):
    g = Geometry(phys_addr_bits=32)
    flags = PreallocatedPageFlags(g, sections=[0])
    monkeypatch.setattr(system_module, "available_bytes", lambda: g.chunk_bytes)
    with pytest.raises(MemoryError, match="pinning 4 sections takes 16 KiB, more than the 4 KiB"):
        flags.pin(np.arange(5))
    assert flags.stats()["allocated"] == 1 and flags.pinned.sum() == 1
    with pytest.raises(MemoryError):
        PreallocatedPageFlags(g)


def test_validate_catches_a_lost_pin():
    flags = PreallocatedPageFlags(Geometry(phys_addr_bits=30), sections=[1])
    PageFlags._free(flags, np.array([1]))  # behind the subclass's back
    with pytest.raises(AssertionError, match="pinned sections without a chunk"):
        flags.validate()


def test_copy_of_a_preallocated_map_is_an_unpinned_page_flags():
    flags = MemoryMap([[0, 100]], geometry=Geometry(phys_addr_bits=30)).to_flags("all")
    copy = flags.copy()
    assert type(copy) is PageFlags and copy == flags
    assert copy.stats()["allocated"] == 8
    assert copy.optimize() == 7 * copy.geometry.chunk_bytes  # its empty chunks can go


def test_preallocated_maps_combine_with_page_flags():
    g = Geometry(phys_addr_bits=30)
    pinned = PreallocatedPageFlags(g, sections=[0, 3])
    pinned.set_range(10, 40_000)
    lazy = PageFlags(g)
    lazy.set_range(30_000, 200_000)
    for result in (pinned & lazy, lazy & pinned, pinned | lazy, pinned - lazy):
        assert type(result) is PageFlags
    assert (pinned & lazy).count() == 10_000
    pinned &= lazy
    assert type(pinned) is PreallocatedPageFlags and pinned.count() == 10_000
    pinned.validate()
    with pytest.raises(TypeError):
        pinned | FlatPageFlags(g)


def _every_builder(g, model):
    base = PageFlags.from_bool(model)
    starts, stops = base.runs()
    return [("from_array", PreallocatedPageFlags.from_array(np.flatnonzero(model), g)),
            ("from_ranges", PreallocatedPageFlags.from_ranges(starts, stops, g)),
            ("from_bool", PreallocatedPageFlags.from_bool(model, 0, g)),
            ("from_words", PreallocatedPageFlags.from_words(base.to_words(), 0, g)),
            ("from_roaring64_bytes",
             PreallocatedPageFlags.from_roaring64_bytes(base.to_roaring64_bytes(), g))]


def test_builders_pin_the_sections_holding_a_set_page(tmp_path):
    g = Geometry(phys_addr_bits=32)  # 32 sections
    ppc = g.pages_per_chunk
    model = np.zeros(g.npages, dtype=bool)
    model[[0, 63, 64, 5 * ppc + 7, g.npages - 1]] = True
    model[2 * ppc:4 * ppc] = True  # two whole sections: FULL in a lazy map
    sections = [0, 2, 3, 5, 31]
    base = PageFlags.from_bool(model)
    base.save(tmp_path / "map.pgf")
    built = [*_every_builder(g, model),
             ("load", PreallocatedPageFlags.load(tmp_path / "map.pgf"))]
    for name, flags in built:
        assert type(flags) is PreallocatedPageFlags, name
        assert flags.alloc == "present", name
        assert np.flatnonzero(flags.pinned).tolist() == sections, name
        assert flags.stats()["allocated"] == len(sections), name  # FULL ones too
        assert flags == base, name
        flags.validate()
        # Pinned: emptying a section keeps its chunk; elsewhere the map is lazy.
        flags.clear_range(2 * ppc, 3 * ppc)
        flags.set(9 * ppc)
        assert flags.table[2] is not None and flags.table[9] is not None
        flags.clear(9 * ppc)
        assert flags.table[9] is None and flags.stats()["allocated"] == len(sections)
        flags.validate()


def test_builders_pin_nothing_for_an_empty_map():
    g = Geometry(phys_addr_bits=32)
    for name, flags in _every_builder(g, np.zeros(g.npages, dtype=bool)):
        assert type(flags) is PreallocatedPageFlags and not flags.pinned.any(), name
        assert flags.stats()["allocated"] == 0 and flags.count() == 0, name


def test_builders_refuse_pins_that_do_not_fit(monkeypatch):
    g = Geometry(phys_addr_bits=32)
    monkeypatch.setattr(system_module, "available_bytes", lambda: g.chunk_bytes)
    with pytest.raises(MemoryError, match="pinning 4 sections"):
        PreallocatedPageFlags.from_ranges([0], [4 * g.pages_per_chunk], g)
