"""Random sequences of writes on PageFlags and PreallocatedPageFlags, checked against
both reference models.

Scans, rank/select, in-place algebra and word windows come from ``ScanRules``.
After every step: ``validate()`` holds, the map equals a FlatPageFlags that saw the
same calls, and both equal a NumPy bool array.
"""

import numpy as np
import pytest
from _scan_rules import ScanRules
from conftest import GEOMETRIES, edge_pfns
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pageflags import FlatPageFlags, PageFlags, PreallocatedPageFlags

pytestmark = pytest.mark.statemachine


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
        self.flags.validate()
        assert self.flags == self.flat
        assert self.flags.count() == int(self.model.sum())
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
