"""Hotplug: section add/remove, pfn_valid and attached maps (pageflags/hotplug.py)."""

from __future__ import annotations

import types

import numpy as np
import pytest
from _hotplugkit import PPC, G, Model, machine
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pageflags import (
    FlatPageFlags,
    Geometry,
    Hotplug,
    PageFlags,
    PreallocatedPageFlags,
)
from pageflags import _system as system_module
from pageflags.harness import ADD, REMOVE
from pageflags.hotplug import apply_step

# --- add and remove --------------------------------------------------------------------

def test_add_and_remove_follow_a_flat_model():
    hp = machine()
    dirty = hp.new_map("dirty")
    model = Model(hp)
    dirty.set_range(PPC // 2, 3 * PPC + 10)
    model.maps["dirty"].set_range(PPC // 2, 3 * PPC + 10)
    model.check(hp)
    assert hp.remove_sections(np.array([1, 3], dtype=np.uint16)) == 0
    model.remove([1, 3])
    model.check(hp)
    assert dirty.count() == PPC // 2 + PPC
    assert hp.add_sections([3, 7, 5]) == 0
    model.add([3, 7, 5])
    model.check(hp)
    assert hp.sections().tolist() == [0, 2, 3, 5, 7]
    assert hp.present_pages == 5 * PPC
    assert hp.present.stats()["full"] == 5 and hp.present.stats()["allocated"] == 0


def test_removed_sections_free_chunks_at_once():
    hp = machine(range(8))
    dirty = hp.new_map("dirty")
    dirty.set_many(np.arange(8) * PPC + 3)
    sizes = [dirty.nbytes]
    for nr in range(8):
        hp.remove_sections([nr])
        sizes.append(dirty.nbytes)
        assert not dirty.any(nr * PPC, (nr + 1) * PPC)
    assert (np.diff(sizes) < 0).all()
    assert dirty.stats()["allocated"] == 0 and dirty.count() == 0
    hp.validate()


@pytest.mark.parametrize(("op", "nrs", "match"), [
    ("add_sections", [5, 2], "section 2 is already present"),
    ("add_sections", [5, 6, 5], "section 5 is given twice"),
    ("remove_sections", [1, 6], "section 6 is not present"),
    ("remove_sections", [1, 1], "section 1 is given twice"),
])
def test_strict_refuses_and_changes_nothing(op, nrs, match):
    hp = machine()
    dirty = hp.new_map("dirty")
    dirty.set_range(0, 4 * PPC)
    model = Model(hp)
    model.maps["dirty"].set_range(0, 4 * PPC)
    with pytest.raises(ValueError, match=match):
        getattr(hp, op)(nrs)
    model.check(hp)


def test_not_strict_skips_and_counts():
    hp = machine()
    model = Model(hp)
    assert hp.add_sections([5, 2, 5, 6], strict=False) == 2
    model.add([5, 6])
    model.check(hp)
    assert hp.remove_sections([7, 0, 0, 4], strict=False) == 3
    model.remove([0])
    model.check(hp)
    assert hp.remove_sections([], strict=True) == 0
    model.check(hp)


@pytest.mark.parametrize(("nrs", "error"), [
    ([8], IndexError), ([-1], IndexError), ([1.0], TypeError), (["1"], TypeError),
    (np.array([2**63], dtype=np.uint64), IndexError),
])
def test_bad_section_numbers_raise_before_any_change(nrs, error):
    hp = machine()
    model = Model(hp)
    for op in (hp.add_sections, hp.remove_sections):
        for strict in (True, False):
            with pytest.raises(error):
                op(nrs, strict=strict)
    model.check(hp)


def test_partial_last_section():
    g = Geometry.from_npages(5 * (1 << 15) + 100)
    hp = machine(range(6), g)
    assert hp.present_pages == g.npages
    dirty = hp.new_map("dirty")
    dirty.set(g.npages - 1)
    model = Model(hp)
    model.maps["dirty"].set(g.npages - 1)
    hp.remove_sections([5, 0])
    model.remove([5, 0])
    model.check(hp)
    hp.add_sections([5])
    model.add([5])
    model.check(hp)
    assert hp.present.table[5] is not hp.present.FULL


# --- one step of the model, for pageflags and flat maps alike ---------------------------

@pytest.mark.parametrize("g", [G, Geometry.from_npages(4000, chunk_shift=7)],
                         ids=["whole sections", "partial last section"])
def test_apply_step_changes_page_flags_and_flat_maps_alike(g):
    ppc, n = g.pages_per_chunk, g.nchunks
    start = np.arange(0, n, 2)  # every other section present
    kinds = {"pageflags": (PageFlags, PageFlags, lambda: PreallocatedPageFlags(g, start)),
             "flat": (FlatPageFlags, FlatPageFlags, lambda: FlatPageFlags(g))}
    worlds = {}
    for name, (present_kind, dirty_kind, pinned) in kinds.items():
        present, dirty, pinned_map = present_kind(g), dirty_kind(g), pinned()
        for nr in start.tolist():
            present.set_range(nr * ppc, min((nr + 1) * ppc, g.npages))
            dirty.set_many([nr * ppc, min((nr + 1) * ppc, g.npages) - 1])  # both edges
        worlds[name] = (present, [dirty, pinned_map])
    model_present = worlds["flat"][0].to_bool(0, g.npages)
    model_maps = [m.to_bool(0, g.npages) for m in worlds["flat"][1]]
    present_now = np.zeros(n, dtype=bool)
    present_now[start] = True
    rng = np.random.default_rng(3)
    for _ in range(12):
        op = int(rng.choice([ADD, REMOVE]))
        candidates = np.flatnonzero(present_now != (op == ADD))
        nrs = np.sort(rng.choice(candidates, min(3, candidates.size), replace=False))
        nrs = np.unique(np.append(nrs, n - 1)) if (present_now[n - 1] != (op == ADD)) else nrs
        for present, maps in worlds.values():
            apply_step(present, maps, op, nrs)
        present_now[nrs] = op == ADD
        for nr in nrs.tolist():
            pages = slice(nr * ppc, min((nr + 1) * ppc, g.npages))
            model_present[pages] = op == ADD
            for model in model_maps:
                model[pages] = False
        for present, maps in worlds.values():
            present.validate()
            assert np.array_equal(present.to_bool(0, g.npages), model_present)
            for flags, model in zip(maps, model_maps, strict=True):
                flags.validate()
                assert np.array_equal(flags.to_bool(0, g.npages), model)
        pinned = worlds["pageflags"][1][1]
        assert np.array_equal(pinned.pinned, present_now)


def test_apply_step_refuses_other_map_types():
    other = types.SimpleNamespace(geometry=G)  # has a geometry, but no table or words
    with pytest.raises(TypeError, match="PageFlags or a FlatPageFlags, got SimpleNamespace"):
        apply_step(other, [], ADD, np.array([0]))


def test_pfn_valid_keeps_shape_and_checks_range():
    hp = machine([1])
    pfns = np.array([[0, PPC], [2 * PPC - 1, 2 * PPC]])
    assert hp.pfn_valid(pfns).tolist() == [[False, True], [True, False]]
    with pytest.raises(IndexError):
        hp.pfn_valid([G.npages])
    with pytest.raises(TypeError):
        hp.pfn_valid([0.5])


def test_a_geometry_starts_empty():
    hp = Hotplug(G)
    assert hp.present_pages == 0 and hp.sections().size == 0
    hp.add_sections([4])
    assert hp.pfn_valid([4 * PPC]).tolist() == [True]
    with pytest.raises(TypeError):
        Hotplug("2 TiB")


# --- attached maps ---------------------------------------------------------------------

def test_attach_checks():
    hp = machine()
    outside = PageFlags(G)
    outside.set(6 * PPC)
    with pytest.raises(ValueError, match=r"absent sections \[6\]"):
        hp.attach(outside, "x")
    with pytest.raises(ValueError, match="geometry"):
        hp.attach(PageFlags(Geometry(phys_addr_bits=31)), "x")
    with pytest.raises(TypeError):
        hp.attach(FlatPageFlags(G), "x")
    mine = hp.attach(PageFlags(G), "x")
    with pytest.raises(ValueError, match="in use"):
        hp.attach(PageFlags(G), "x")
    with pytest.raises(ValueError, match="in use"):
        hp.attach(PageFlags(G), "present")
    with pytest.raises(ValueError, match="attached already"):
        hp.attach(mine, "y")
    with pytest.raises(ValueError, match="alloc"):
        hp.new_map("z", alloc="eager")
    assert hp.detach("x") is mine and hp.maps == {}
    with pytest.raises(KeyError):
        hp.detach("x")


def test_adding_what_pinned_maps_cannot_hold_changes_nothing(monkeypatch):
    hp = machine()
    hp.new_map("lazy")
    hp.new_map("pinned", alloc="present")
    model = Model(hp)
    monkeypatch.setattr(system_module, "available_bytes", lambda: G.chunk_bytes)
    with pytest.raises(MemoryError, match="pinning 2 added sections in 1 maps"):
        hp.add_sections([5, 6])
    model.check(hp)
    hp.add_sections([5])
    model.add([5])
    model.check(hp)


def test_validate_catches_pages_in_absent_sections():
    hp = machine()
    dirty = hp.new_map("dirty")
    dirty.set(7 * PPC)  # memory that does not exist
    with pytest.raises(AssertionError, match=r"absent sections \[7\]"):
        hp.validate()


def test_alloc_modes_follow_the_machine():
    hp = machine()
    lazy = hp.new_map("lazy")
    present = hp.new_map("present-mode", alloc="present")
    every = hp.new_map("all", alloc="all")
    assert isinstance(present, PreallocatedPageFlags) and present.alloc == "present"
    assert [m.stats()["allocated"] for m in (lazy, present, every)] == [0, 4, 8]
    model = Model(hp)
    for flags in (lazy, present, every):
        flags.set_range(PPC - 5, 2 * PPC + 5)
    for flat in model.maps.values():
        flat.set_range(PPC - 5, 2 * PPC + 5)
    hp.remove_sections([1, 3])
    model.remove([1, 3])
    model.check(hp)
    assert [m.stats()["allocated"] for m in (lazy, present, every)] == [2, 2, 8]
    assert present.pinned.tolist() == [True, False, True] + [False] * 5
    hp.add_sections([6, 1])
    model.add([6, 1])
    model.check(hp)
    assert [m.stats()["allocated"] for m in (lazy, present, every)] == [2, 4, 8]
    stats = hp.stats()
    assert set(stats["maps"]) == {"present", "lazy", "present-mode", "all"}
    assert stats["present_sections"] == 4




def test_sections_mixing_bools_are_refused():
    hp = Hotplug(G)
    with pytest.raises(TypeError, match="not bools"):
        hp.add_sections([True, 3])
    assert hp.sections().size == 0


# --- the state machine -----------------------------------------------------------------

SM_GEOMETRIES = [Geometry(phys_addr_bits=24, chunk_shift=7),       # 32 sections
                 Geometry.from_npages(4000, chunk_shift=7)]         # last one partial
sections_st = st.lists(st.integers(0, 31), max_size=8)


class HotplugMachine(RuleBasedStateMachine):
    """Add/remove/set/clear interleaved against flat models, validate() after each."""

    @initialize(g=st.sampled_from(SM_GEOMETRIES), start=st.sets(st.integers(0, 31)))
    def start(self, g, start):
        self.hp = machine(sorted(start), g)
        for name, alloc in (("lazy", "lazy"), ("pinned", "present"), ("all", "all")):
            self.hp.new_map(name, alloc=alloc)
        self.model = Model(self.hp)

    def _change(self, nrs, strict, adding):
        # What is present comes from the model, never from the map under test.
        present = [self.model.present.any(*self.model.section(n)) for n in nrs]
        wrong = [p == adding for p in present]
        if strict and (any(wrong) or len(set(nrs)) != len(nrs)):
            with pytest.raises(ValueError):
                (self.hp.add_sections if adding else self.hp.remove_sections)(nrs)
            return
        todo = sorted({n for n, w in zip(nrs, wrong, strict=True) if not w})
        skipped = (self.hp.add_sections if adding else self.hp.remove_sections)(
            nrs, strict=strict)
        assert skipped == len(nrs) - len(todo)
        (self.model.add if adding else self.model.remove)(todo)

    @rule(nrs=sections_st, strict=st.booleans())
    def add(self, nrs, strict):
        self._change(nrs, strict, adding=True)

    @rule(nrs=sections_st, strict=st.booleans())
    def remove(self, nrs, strict):
        self._change(nrs, strict, adding=False)

    def _present_pfns(self, data_draw, many):
        valid = np.flatnonzero(self.model.present.test_many(np.arange(self.hp.geometry.npages)))
        if not valid.size:
            return None
        idx = data_draw(st.lists(st.integers(0, valid.size - 1), min_size=1,
                                 max_size=many))
        return valid[idx]

    @rule(name=st.sampled_from(["lazy", "pinned", "all"]), set_=st.booleans(),
          data=st.data())
    def write_range(self, name, set_, data):
        pfns = self._present_pfns(data.draw, 2)
        if pfns is None:
            return
        start, stop = int(pfns.min()), int(pfns.max()) + 1
        # Keep the range inside present memory so the "no page in absent sections"
        # invariant holds: cut it at the first absent page.
        absent = np.flatnonzero(~self.model.present.test_many(np.arange(start, stop)))
        stop = start + int(absent[0]) if absent.size else stop
        fn = "set_range" if set_ else "clear_range"
        getattr(self.hp.maps[name], fn)(start, stop)
        getattr(self.model.maps[name], fn)(start, stop)

    @rule(name=st.sampled_from(["lazy", "pinned", "all"]), set_=st.booleans(),
          data=st.data())
    def write_many(self, name, set_, data):
        pfns = self._present_pfns(data.draw, 40)
        if pfns is None:
            return
        fn = "set_many" if set_ else "clear_many"
        getattr(self.hp.maps[name], fn)(pfns)
        getattr(self.model.maps[name], fn)(pfns)

    @rule(nrs=sections_st)
    def run_trace(self, nrs):
        trace = self.hp.events(len(nrs), seed=sum(nrs), burst=(1, 4))
        self.hp.run(trace, batch=3, probe={}, progress=False)
        for op, nr in zip(trace["op"].tolist(), trace["section"].tolist(), strict=True):
            (self.model.add if op == 1 else self.model.remove)([nr])

    @invariant()
    def agrees_with_the_model(self):
        self.model.check(self.hp)
        pinned = self.hp.maps["pinned"]
        assert np.array_equal(np.flatnonzero(pinned.pinned), self.hp.sections())
        assert self.hp.maps["all"].stats()["allocated"] == self.hp.geometry.nchunks


HotplugMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=20,
                                            deadline=None)
TestHotplugMachine = pytest.mark.statemachine(HotplugMachine.TestCase)
