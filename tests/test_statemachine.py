"""Random sequences of writes on PageFlags and PreallocatedPageFlags, checked against
both reference models.

Scans, rank/select, in-place algebra and word windows come from ``ScanRules``.
After every step: ``validate()`` holds, the map equals a FlatPageFlags that saw the
same calls, and both equal a NumPy bool array.
"""

import operator

import numpy as np
import pytest
from _scan_rules import ScanRules
from conftest import GEOMETRIES, edge_pfns
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pageflags import FlatPageFlags, Geometry, PageFlags, PreallocatedPageFlags
from pageflags._chunks import held_bytes
from pageflags.bitmap import PRESCAN_MIN_PFNS

pytestmark = pytest.mark.statemachine


def check_against_models(machine) -> None:
    """The machine's map is valid and holds what its flat map and bool model hold."""
    machine.flags.validate()
    assert machine.flags == machine.flat
    assert machine.flags.count() == int(machine.model.sum())


class PageFlagsMachine(ScanRules, RuleBasedStateMachine):
    """The model-checking machine: the writes here, scans and algebra from ScanRules."""

    @initialize(geometry=st.sampled_from(GEOMETRIES))
    def start(self, geometry):
        self.geometry = geometry
        self.flags = PageFlags(geometry)
        self.flat = FlatPageFlags(geometry)
        self.model = np.zeros(geometry.npages, dtype=bool)
        self.edges = edge_pfns(geometry.npages)

    # Strategies that need npages draw through ``data``.
    def pfn(self, data):
        n = self.geometry.npages
        return data.draw(st.one_of(st.sampled_from(self.edges), st.integers(0, n - 1)))

    def bounds(self, data):
        n = self.geometry.npages
        points = st.one_of(st.sampled_from([*self.edges, n]), st.integers(0, n))
        a, b = data.draw(points), data.draw(points)
        return min(a, b), max(a, b)

    def pfn_array(self, data):
        pfns = data.draw(st.lists(st.builds(self.pfn, st.just(data)), max_size=40))
        dtype = data.draw(st.sampled_from([np.int64, np.uint64, np.int32]))
        return np.array(pfns, dtype=dtype)

    @rule(data=st.data())
    def set_one(self, data):
        pfn = self.pfn(data)
        self.flags.set(pfn)
        self.flat.set(pfn)
        self.model[pfn] = True

    @rule(data=st.data())
    def clear_one(self, data):
        pfn = self.pfn(data)
        self.flags.clear(pfn)
        self.flat.clear(pfn)
        self.model[pfn] = False

    @rule(data=st.data())
    def set_range(self, data):
        start, stop = self.bounds(data)
        self.flags.set_range(start, stop)
        self.flat.set_range(start, stop)
        self.model[start:stop] = True

    @rule(data=st.data())
    def clear_range(self, data):
        start, stop = self.bounds(data)
        self.flags.clear_range(start, stop)
        self.flat.clear_range(start, stop)
        self.model[start:stop] = False

    def small_range(self, data):
        """A range of at most two words, often starting at a word or chunk edge."""
        n = self.geometry.npages
        start = self.pfn(data)
        length = data.draw(st.one_of(st.sampled_from([0, 1, 2, 63, 64, 65, 127, 128]),
                                     st.integers(0, 130)))
        return start, min(start + length, n)

    def section(self, data):
        """One whole chunk (the last one may be partial)."""
        g = self.geometry
        c = data.draw(st.integers(0, g.nchunks - 1))
        return c * g.pages_per_chunk, min((c + 1) * g.pages_per_chunk, g.npages)

    @rule(data=st.data(), value=st.booleans(), whole=st.booleans())
    def write_small_range_or_section(self, data, value, whole):
        start, stop = self.section(data) if whole else self.small_range(data)
        for target in (self.flags, self.flat):
            (target.set_range if value else target.clear_range)(start, stop)
        self.model[start:stop] = value
        window = self.model[start:stop]
        assert self.flags.count(start, stop) == int(window.sum())

    def near_edge(self, data):
        """A pfn up to 130 pages either side of a word or chunk edge."""
        g = self.geometry
        edge = data.draw(st.one_of(
            st.integers(1, g.npages // 64).map(lambda w: 64 * w),
            st.integers(1, g.nchunks).map(lambda c: c * g.pages_per_chunk)))
        return min(max(edge + data.draw(st.integers(-130, 130)), 0), g.npages - 1)

    @rule(data=st.data(), value=st.booleans(), numpy=st.booleans())
    def write_page_near_an_edge(self, data, value, numpy):
        """One page beside a word or chunk edge, as a Python or a NumPy int."""
        pfn = self.near_edge(data)
        arg = np.int64(pfn) if numpy else pfn
        for target in (self.flags, self.flat):
            (target.set if value else target.clear)(arg)
        self.model[pfn] = value
        assert self.flags.test(pfn) == value == (arg in self.flat)

    @rule(data=st.data(), value=st.booleans())
    def write_short_range_near_an_edge(self, data, value):
        """A range of 1 to 200 pages (one word, a few, or two chunks) by an edge."""
        start = self.near_edge(data)
        stop = min(start + data.draw(st.integers(1, 200)), self.geometry.npages)
        for target in (self.flags, self.flat):
            (target.set_range if value else target.clear_range)(start, stop)
        self.model[start:stop] = value
        assert self.flags.count(start, stop) == (stop - start if value else 0)
        lo, hi = max(start - 64, 0), min(stop + 64, self.geometry.npages)
        assert self.flags.count(lo, hi) == int(self.model[lo:hi].sum()) == self.flat.count(lo, hi)

    @rule(data=st.data())
    def set_many(self, data):
        pfns = self.pfn_array(data)
        self.flags.set_many(pfns)
        self.flat.set_many(pfns)
        self.model[pfns.astype(np.int64)] = True

    @rule(data=st.data())
    def clear_many(self, data):
        pfns = self.pfn_array(data)
        self.flags.clear_many(pfns)
        self.flat.clear_many(pfns)
        self.model[pfns.astype(np.int64)] = False

    @rule()
    def optimize(self):
        before = self.flags.nbytes
        freed = self.flags.optimize()
        assert freed == before - self.flags.nbytes and freed >= 0

    @rule()
    def replace_by_copy(self):
        self.flags = self.flags.copy()

    @rule(data=st.data())
    def queries(self, data):
        start, stop = self.bounds(data)
        window = self.model[start:stop]
        assert self.flags.count(start, stop) == int(window.sum())
        assert self.flags.any(start, stop) == bool(window.any())
        assert self.flags.all(start, stop) == bool(window.all())
        pfn = self.pfn(data)
        assert self.flags.test(pfn) == self.model[pfn] == (pfn in self.flags)

    @invariant()
    def matches_models(self):
        if not hasattr(self, "flags"):
            return
        check_against_models(self)
        every = np.arange(self.geometry.npages)
        np.testing.assert_array_equal(self.flat.test_many(every), self.model)
        np.testing.assert_array_equal(self.flags.test_many(every), self.model)


PageFlagsMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestPageFlagsMachine = PageFlagsMachine.TestCase


class PreallocatedMachine(PageFlagsMachine):
    """The same rules over a PreallocatedPageFlags with a random set of pinned sections
    (pins and unpins come and go); its ``validate()`` also checks that every pinned
    section still owns a chunk, and the map must stay preallocated through every rule."""

    @initialize(geometry=st.sampled_from(GEOMETRIES), data=st.data())
    def start(self, geometry, data):
        nsections = geometry.nchunks
        pinned = data.draw(st.lists(st.integers(0, nsections - 1), max_size=6))
        self.geometry = geometry
        self.flags = PreallocatedPageFlags(geometry, sections=pinned)
        self.flat = FlatPageFlags(geometry)
        self.model = np.zeros(geometry.npages, dtype=bool)
        self.edges = edge_pfns(geometry.npages)

    @rule(data=st.data(), pin=st.booleans())
    def pin_or_unpin(self, data, pin):
        sections = data.draw(st.lists(st.integers(0, self.geometry.nchunks - 1),
                                      max_size=4))
        (self.flags.pin if pin else self.flags.unpin)(sections)
        assert self.flags.pinned[sections].all() == pin or not sections

    @rule()
    def replace_by_copy(self):
        # A copy is a plain PageFlags (its empty chunks may go); the machine keeps
        # the preallocated map and checks the copy holds the same pages.
        copy = self.flags.copy()
        assert type(copy) is PageFlags and copy == self.flags

    @rule()
    def invert(self):
        # ``~`` makes a new map, which is a plain PageFlags; XOR with all ones in
        # place inverts the preallocated map itself, which must give the same bits.
        inverted = ~self.flags
        assert type(inverted) is PageFlags
        ones = PageFlags(self.geometry)
        ones.set_range(0, self.geometry.npages)
        self.flags ^= ones
        assert self.flags == inverted
        self.flat = ~self.flat
        self.model = ~self.model

    @invariant()
    def stays_preallocated(self):
        if hasattr(self, "flags"):
            assert isinstance(self.flags, PreallocatedPageFlags), type(self.flags)


PreallocatedMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestPreallocatedMachine = PreallocatedMachine.TestCase


# --- bulk writes that make many chunks at once ------------------------------------------
# Tiny chunks (64 pages) give thousands of entries in a few hundred KiB: slabs (256
# new chunks in a group of 4096 entries), the prescan (65536 pfns) and group boundaries
# all come up.  The last chunk is partial.
BULK_GEOMETRIES = [Geometry.from_npages(5000 * 64 + 17, chunk_shift=6),
                   Geometry.from_npages(700 * 256 + 3, chunk_shift=8)]
#: Sizes of the pfn arrays the bulk rules write: around the thresholds, and more.
BULK_SIZES = [1, 255, 256, 257, PRESCAN_MIN_PFNS - 1, PRESCAN_MIN_PFNS,
              PRESCAN_MIN_PFNS + 1, 200_000]


class PageFlagsBulkMachine(RuleBasedStateMachine):
    """Bulk writes (set_many, clear_many into FULL, from_array, put_words, algebra,
    copy) into maps whose entries need many chunks, against both models; after every
    step ``validate()`` holds, chunks stay read-only and ``nbytes`` counts the memory
    the chunks hold, whole slabs included."""

    @initialize(geometry=st.sampled_from(BULK_GEOMETRIES), seed=st.integers(0, 2**32 - 1))
    def start(self, geometry, seed):
        self.geometry = geometry
        self.rng = np.random.default_rng(seed)
        self.flags = PageFlags(geometry)
        self.flat = FlatPageFlags(geometry)
        self.model = np.zeros(geometry.npages, dtype=bool)

    def pfns(self, size, layout):
        """``size`` pfns: uniform, a few entries, or clustered with lonely stragglers
        (entries the prescan's sample misses)."""
        g, rng = self.geometry, self.rng
        if layout == "uniform":
            return rng.integers(0, g.npages, size)
        entries = rng.choice(g.nchunks, size=min(g.nchunks, 8), replace=False)
        local = rng.integers(0, g.pages_per_chunk, size)
        pfns = np.minimum(entries[rng.integers(0, entries.size, size)] * g.pages_per_chunk
                          + local, g.npages - 1)
        if layout == "stragglers" and size > 8:
            lonely = rng.integers(0, g.npages, min(size // 8, 300))
            at = rng.choice(size, lonely.size, replace=False)
            pfns[at] = lonely
        return pfns

    @rule(size=st.sampled_from(BULK_SIZES),
          layout=st.sampled_from(["uniform", "few", "stragglers"]),
          value=st.booleans(), dtype=st.sampled_from([np.int64, np.uint64, np.int32]))
    def write_many(self, size, layout, value, dtype):
        pfns = self.pfns(size, layout).astype(dtype)
        for target in (self.flags, self.flat):
            (target.set_many if value else target.clear_many)(pfns)
        self.model[pfns.astype(np.int64)] = value

    @rule(fraction=st.sampled_from([0.1, 0.5, 1.0]))
    def fill_sections(self, fraction):
        """Whole sections set: FULL entries for clear_many to copy."""
        g = self.geometry
        nrs = np.flatnonzero(self.rng.random(g.nchunks) < fraction)
        starts = nrs * g.pages_per_chunk
        stops = np.minimum(starts + g.pages_per_chunk, g.npages)
        for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
            self.flat.set_range(start, stop)
            self.model[start:stop] = True
        self.flags |= PageFlags.from_ranges(starts, stops, g)

    @rule(size=st.sampled_from(BULK_SIZES), layout=st.sampled_from(["uniform", "few"]))
    def replace_from_array(self, size, layout):
        pfns = self.pfns(size, layout)
        self.flags = PageFlags.from_array(pfns, self.geometry)
        self.flat = FlatPageFlags.from_array(pfns, self.geometry)
        self.model[:] = False
        self.model[pfns] = True

    @rule(nwords=st.sampled_from([1, 64, 5000]), start_word=st.integers(0, 2**20))
    def put_words(self, nwords, start_word):
        g = self.geometry
        total = -(-g.npages // 64)
        start_word = start_word % total
        nwords = min(nwords, g.npages // 64 - start_word)
        if nwords <= 0:
            return
        words = self.rng.integers(0, 2**64, nwords, dtype=np.uint64)
        words[self.rng.random(nwords) < 0.3] = 0
        words[self.rng.random(nwords) < 0.3] = 2**64 - 1
        self.flags.put_words(64 * start_word, words)
        self.flat.put_words(64 * start_word, words)
        bits = np.unpackbits(words.astype("<u8").view(np.uint8), bitorder="little")
        self.model[64 * start_word:64 * (start_word + nwords)] = bits.astype(bool)

    @rule(op=st.sampled_from(["or_", "and_", "xor", "sub"]), in_place=st.booleans(),
          size=st.sampled_from([257, PRESCAN_MIN_PFNS, 200_000]))
    def combine(self, op, in_place, size):
        pfns = self.pfns(size, "uniform")
        other_model = np.zeros_like(self.model)
        other_model[pfns] = True
        method = getattr(operator, "i" + op.rstrip("_") if in_place else op)
        self.flags = method(self.flags, PageFlags.from_array(pfns, self.geometry))
        self.flat = method(self.flat, FlatPageFlags.from_array(pfns, self.geometry))
        self.model = {"or_": np.logical_or, "and_": np.logical_and, "xor": np.logical_xor,
                      "sub": lambda a, b: a & ~b}[op](self.model, other_model)

    @rule()
    def replace_by_copy(self):
        copy = self.flags.copy()
        assert copy == self.flags
        self.flags = copy

    @rule(fraction=st.sampled_from([0.3, 1.0]))
    def free_sections(self, fraction):
        """Whole sections cleared: slab rows freed, the slab kept while one lives."""
        g = self.geometry
        nrs = np.flatnonzero(self.rng.random(g.nchunks) < fraction)[:400]
        for nr in nrs.tolist():
            start, stop = nr * g.pages_per_chunk, min((nr + 1) * g.pages_per_chunk, g.npages)
            self.flags.clear_range(start, stop)
            self.flat.clear_range(start, stop)
            self.model[start:stop] = False

    @rule()
    def optimize(self):
        before = self.flags.nbytes
        assert self.flags.optimize() == before - self.flags.nbytes >= 0

    @invariant()
    def matches_models(self):
        if not hasattr(self, "flags"):
            return
        check_against_models(self)
        np.testing.assert_array_equal(self.flags.to_bool(), self.model)

    @invariant()
    def counts_held_memory(self):
        if not hasattr(self, "flags"):
            return
        chunks = self.flags.table[self.flags._allocated_mask()]
        stats = self.flags.stats()
        assert stats["chunk_bytes"] == held_bytes(chunks)
        assert stats["chunk_bytes"] >= stats["allocated"] * self.geometry.chunk_bytes
        assert self.flags.nbytes == stats["table_bytes"] + stats["chunk_bytes"]
        for chunk in chunks[:: max(1, chunks.size // 16)]:
            assert not chunk.flags.writeable


PageFlagsBulkMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestPageFlagsBulkMachine = PageFlagsBulkMachine.TestCase
