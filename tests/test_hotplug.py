"""Hotplug: section add/remove, pfn_valid, attached maps, traces and runs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pageflags import (
    FlatPageFlags,
    Geometry,
    Hotplug,
    MemoryMap,
    PageFlags,
    PreallocatedPageFlags,
)
from pageflags import hotplug as hotplug_module
from pageflags import memmap as memmap_module
from pageflags.hotplug import TRACE_DTYPE, default_probes, probe_count, probe_walk

G = Geometry(phys_addr_bits=30)  # 8 sections of 2**15 pages
PPC = G.pages_per_chunk


class Model:
    """The machine in flat bitmaps: present pages and one flat map per attached map."""

    def __init__(self, hp: Hotplug) -> None:
        g = hp.geometry
        self.g = g
        self.present = FlatPageFlags(g)
        for start, stop in _present_ranges(hp):
            self.present.set_range(start, stop)
        self.maps = {name: FlatPageFlags(g) for name in hp.maps}

    def section(self, nr: int) -> tuple[int, int]:
        ppc = self.g.pages_per_chunk
        return nr * ppc, min((nr + 1) * ppc, self.g.npages)

    def add(self, nrs) -> None:
        for nr in nrs:
            self.present.set_range(*self.section(nr))
            for flat in self.maps.values():
                flat.clear_range(*self.section(nr))

    def remove(self, nrs) -> None:
        for nr in nrs:
            self.present.clear_range(*self.section(nr))
            for flat in self.maps.values():
                flat.clear_range(*self.section(nr))

    def check(self, hp: Hotplug) -> None:
        hp.validate()
        assert hp.present == self.present
        for name, flags in hp.maps.items():
            assert flags == self.maps[name], name
        pfns = np.arange(0, self.g.npages, max(1, self.g.npages // 4096))
        assert np.array_equal(hp.pfn_valid(pfns), self.present.test_many(pfns))


def _present_ranges(hp: Hotplug) -> list[tuple[int, int]]:
    """Runs of present pages, read page by page: the model must not be built with
    the range logic under test."""
    ppc = hp.geometry.pages_per_chunk
    secs = hp.sections()
    pfns = (secs[:, None] * ppc + np.arange(ppc)).ravel()
    pfns = pfns[pfns < hp.geometry.npages]
    pages = pfns[hp.present.test_many(pfns)]
    if not pages.size:
        return []
    breaks = np.flatnonzero(np.diff(pages) != 1)
    starts = np.concatenate(([pages[0]], pages[breaks + 1]))
    stops = np.concatenate((pages[breaks] + 1, [pages[-1] + 1]))
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def machine(sections=(0, 1, 2, 3), g: Geometry = G) -> Hotplug:
    ppc = g.pages_per_chunk
    ranges = [[s * ppc, min((s + 1) * ppc, g.npages)] for s in sections]
    return Hotplug(MemoryMap(ranges, geometry=g))


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
    monkeypatch.setattr(memmap_module, "_available_bytes", lambda: G.chunk_bytes)
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


# --- traces and runs -------------------------------------------------------------------

def two_nodes() -> Hotplug:
    return Hotplug(MemoryMap.synthetic("64 GiB", nodes=2, phys_addr_bits=40, seed=4))


def test_events_are_seeded_bursty_and_valid():
    hp = two_nodes()
    trace = hp.events(2000, seed=7, burst=(4, 16))
    assert trace.dtype == TRACE_DTYPE and trace.size == 2000
    assert np.array_equal(trace, hp.events(2000, seed=7, burst=(4, 16)))
    assert not np.array_equal(trace, hp.events(2000, seed=8, burst=(4, 16)))
    assert set(trace["op"].tolist()) == {-1, 1}
    assert set(trace["node"].tolist()) == {0, 1}
    assert np.array_equal(trace["node"], hp.section_nodes()[trace["section"]])
    runs = np.diff(np.flatnonzero(np.diff(trace["op"].astype(int)) != 0))
    assert np.median(runs) >= 4  # bursts, not coin flips
    # Valid when replayed event by event from the state it was drawn in.
    present = hp.present._addrs != 0
    for op, nr in zip(trace["op"].tolist(), trace["section"].tolist(), strict=True):
        assert present[nr] == (op == -1)
        present[nr] = op == 1
    assert hp.events(0).size == 0


@pytest.mark.parametrize("kwargs", [{"burst": (0, 3)}, {"burst": (5, 2)},
                                    {"remove_fraction": 1.5}, {"n": -1}])
def test_events_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        two_nodes().events(**{"n": 10, **kwargs})


def test_run_records_each_batch_and_matches_a_model():
    hp = two_nodes()
    dirty = hp.new_map("dirty")
    dirty.set_many(hp.sections()[::3] * hp.geometry.pages_per_chunk + 11)
    model = Model(hp)
    model.maps["dirty"].set_many(hp.sections()[::3] * hp.geometry.pages_per_chunk + 11)
    trace = hp.events(1000, seed=3)
    calls = []
    rec = hp.run(trace, batch=300, probe={"mine": calls.append}, progress=False)
    for op, nr in zip(trace["op"].tolist(), trace["section"].tolist(), strict=True):
        (model.add if op == 1 else model.remove)([nr])
    model.check(hp)
    assert rec["events"].tolist() == [300, 600, 900, 1000]
    assert rec["batch"].tolist() == [0, 1, 2, 3]
    assert rec["added"][-1] == np.count_nonzero(trace["op"] == 1)
    assert rec["added"][-1] + rec["removed"][-1] == 1000
    assert rec["present_pages"][-1] == model.present.count()
    assert rec["present_sections"][-1] == hp.sections().size
    assert rec["nbytes"]["dirty"][-1] == dirty.nbytes
    assert rec["nbytes"]["present"][-1] == hp.present.nbytes
    assert (rec["flat_bytes"] == hp.geometry.flat_bytes).all()
    assert rec.dtype.names[-1] == "mine_s" and (rec["mine_s"]["dirty"] >= 0).all()
    assert len(calls) == 4 * 2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n": 1.5}, TypeError, "n must be an integer, got float 1.5"),
    ({"n": True}, TypeError, "n must be an integer"),
    ({"n": np.timedelta64(10)}, TypeError, "n must be an integer"),
    ({"n": 2**100}, MemoryError, "a trace of"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"burst": (1.5, 3)}, TypeError, "burst must be an integer"),
    ({"burst": 4}, TypeError, "burst must be a pair"),
    ({"remove_fraction": "0.5"}, TypeError, "remove_fraction must be a number"),
    ({"remove_fraction": float("nan")}, ValueError, "remove_fraction must be in"),
])
def test_events_names_the_bad_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        two_nodes().events(**{"n": 10, **kwargs})


def test_events_take_numpy_integers():
    hp = two_nodes()
    assert hp.events(np.int64(10), seed=np.uint8(2), burst=(np.int8(1), 3)).size == 10


def test_run_refuses_a_trace_or_batch_that_is_not_integers():
    hp = two_nodes()
    model = Model(hp)
    trace = hp.events(20, seed=3)
    floats = np.zeros(trace.size, dtype=[("op", np.float64), ("section", np.float64)])
    floats["op"], floats["section"] = trace["op"], trace["section"]
    floats["op"][0] = 1.5 * trace["op"][0]  # would truncate to a valid op
    for bad in (floats, np.ma.array(trace)):
        with pytest.raises(TypeError):
            hp.run(bad, progress=False)
    for batch in (1.5, True, np.timedelta64(4)):
        with pytest.raises(TypeError, match="batch must be an integer"):
            hp.run(trace, batch=batch, progress=False)
    model.check(hp)


def test_sections_mixing_bools_are_refused():
    hp = Hotplug(G)
    with pytest.raises(TypeError, match="not bools"):
        hp.add_sections([True, 3])
    assert hp.sections().size == 0


def test_run_checks_the_whole_trace_first():
    hp = two_nodes()
    hp.new_map("dirty")
    model = Model(hp)
    trace = hp.events(500, seed=1)
    bad = trace.copy()
    bad[-1]["op"] = -bad[-1]["op"]  # the last event now finds the wrong state
    with pytest.raises(ValueError, match="trace event 499"):
        hp.run(bad, progress=False)
    model.check(hp)
    repeat = np.zeros(2, dtype=TRACE_DTYPE)
    repeat["op"] = -1
    repeat["section"] = hp.sections()[0]
    with pytest.raises(ValueError, match="repeat a section"):
        hp.run(repeat, progress=False)
    odd = trace[:3].copy()
    odd["op"][1] = 0
    with pytest.raises(ValueError, match="trace event 1: op 0"):
        hp.run(odd, progress=False)
    with pytest.raises(TypeError, match="structured"):
        hp.run(np.arange(4), progress=False)
    with pytest.raises(ValueError, match="batch"):
        hp.run(trace, batch=0, progress=False)
    model.check(hp)


def test_run_default_probes_and_progress_bar(capsys):
    hp = two_nodes()
    trace = hp.events(64, seed=5)
    rec = hp.run(trace, batch=32, progress=True)
    assert "count_s" in rec.dtype.names
    assert ("walk_s" in rec.dtype.names) == hasattr(PageFlags, "find_next_set")
    assert "hotplug" in capsys.readouterr().err
    assert set(default_probes()) >= {"count"}


def test_probes_do_the_scans():
    hp = machine()
    assert probe_count(hp.present) == 4 * PPC
    # probe_walk needs find_next_set; fake one on a subclass to check the walk.

    class Walkable(PageFlags):
        __slots__ = ()

        def find_next_set(self, start):
            bits = self.test_many(np.arange(start, self.npages))
            hits = np.flatnonzero(bits)
            return int(start + hits[0]) if hits.size else -1

    flags = Walkable(Geometry(phys_addr_bits=24, chunk_shift=7))
    flags.set_many([5, 6, 300, 301, 4095])
    assert probe_walk(flags) == 3


def test_progress_bar_only_when_asked(monkeypatch, capsys):
    hp = two_nodes()
    monkeypatch.setattr(hotplug_module.sys.stderr, "isatty", lambda: False, raising=False)
    hp.run(hp.events(10, seed=1), probe={})
    assert capsys.readouterr().err == ""


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


def test_attached_maps_give_each_removed_section_its_memory_back():
    from pageflags import _chunks

    g = Geometry(phys_addr_bits=40)  # 2^13 sections
    nsections = _chunks.SLAB_MIN_CHUNKS + 40
    hp = Hotplug(g)
    hp.add_sections(np.arange(nsections))
    ppc = g.pages_per_chunk
    pfns = np.arange(nsections) * ppc + 7
    built = PageFlags(g)
    built.set_many(pfns)                       # many chunks at once: slab rows
    assert _chunks.slab_rows(built.table[built._allocated_mask()]).all()
    dirty = hp.attach(built, "dirty")          # copied out into chunks of their own
    later = hp.new_map("later")
    later.set_many(pfns)                       # attached first: chunks alone
    pinned = hp.new_map("pinned", alloc="present")  # a chunk per pinned section, alone
    for flags in (dirty, later, pinned):
        assert not _chunks.slab_rows(flags.table[flags._allocated_mask()]).any()
        flags.validate()
    sizes = [(dirty.nbytes, later.nbytes)]
    for nr in range(0, nsections, 37):
        hp.remove_sections([nr])
        sizes.append((dirty.nbytes, later.nbytes))
    assert (np.diff(np.array(sizes), axis=0) == -g.chunk_bytes).all()
    copy = dirty.copy()                        # a copy keeps making chunks alone
    copy.set_many(np.arange(nsections, 2 * nsections) * ppc)
    assert not _chunks.slab_rows(copy.table[copy._allocated_mask()]).any()
    hp.validate()
