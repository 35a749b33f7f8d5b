"""State-machine rules for scans, rank/select, algebra and conversions.

``ScanRules`` is a mixin for a Hypothesis ``RuleBasedStateMachine`` that keeps
``self.flags`` (PageFlags), ``self.flat`` (FlatPageFlags) and ``self.model`` (a NumPy
bool array) in step.  Read-only rules check the new operations against the model;
changing rules (in-place algebra, ``~``, ``put_words``) apply to all three, so the
machine's invariants check the results after each step.
"""

from __future__ import annotations

import operator

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import rule

from pageflags import FlatPageFlags, PageFlags, bitmap

IN_PLACE = {
    "and": (operator.iand, np.logical_and),
    "or": (operator.ior, np.logical_or),
    "xor": (operator.ixor, np.logical_xor),
    "andnot": (operator.isub, lambda a, b: a & ~b),
}


def _position(data: st.DataObject, npages: int) -> int:
    """0, npages, a word or chunk edge, or anywhere."""
    edges = st.sampled_from([0, 63, 64, 32767, 32768, npages - 1, npages])
    return data.draw(st.one_of(edges.filter(lambda p: 0 <= p <= npages),
                               st.integers(0, npages)))


class ScanRules:
    flags: PageFlags
    flat: FlatPageFlags
    model: np.ndarray

    @rule(data=st.data())
    def search(self, data: st.DataObject) -> None:
        start = _position(data, self.model.size)
        after = self.model[start:]
        next_set = np.flatnonzero(after)
        next_clear = np.flatnonzero(~after)
        before = np.flatnonzero(self.model[:start + 1])
        want = (int(next_set[0]) + start if next_set.size else -1,
                int(next_clear[0]) + start if next_clear.size else -1,
                int(before[-1]) if before.size else -1)
        for flags in (self.flags, self.flat):
            got = (flags.find_next_set(start), flags.find_next_clear(start),
                   flags.find_prev_set(start))
            assert got == want, (type(flags).__name__, start, got, want)
        set_pfns = np.flatnonzero(self.model)
        extremes = (int(set_pfns[0]), int(set_pfns[-1])) if set_pfns.size else (-1, -1)
        assert (self.flags.min(), self.flags.max()) == extremes

    @rule(data=st.data())
    def iterate(self, data: st.DataObject) -> None:
        start = _position(data, self.model.size)
        stop = data.draw(st.integers(start, self.model.size))
        max_len = data.draw(st.integers(1, 5000))
        want = np.flatnonzero(self.model[start:stop]) + start
        spare = data.draw(st.integers(0, 70))  # room past the pfns, left untouched
        for flags in (self.flags, self.flat):
            assert np.array_equal(flags.to_array(start, stop), want)
            buffer = np.full(want.size + spare, -1, dtype=np.int64)
            assert np.array_equal(flags.to_array(start, stop, out=buffer), want)
            assert (buffer[want.size:] == -1).all()
        threshold = bitmap.PARALLEL_MIN_PFNS  # the thread-pool collection, at any size
        try:
            bitmap.PARALLEL_MIN_PFNS = 0
            assert np.array_equal(self.flags.to_array(start, stop), want)
        finally:
            bitmap.PARALLEL_MIN_PFNS = threshold
            parts = list(flags.iter_arrays(start, stop, max_len=max_len))
            assert all(0 < p.size <= max_len for p in parts)
            joined = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
            assert np.array_equal(joined, want)
            assert np.array_equal(flags.to_bool(start, stop), self.model[start:stop])

    @rule()
    def runs_rebuild(self) -> None:
        for flags in (self.flags, self.flat):
            rebuilt = type(flags).from_ranges(*flags.runs(), flags.geometry)
            rebuilt.validate()
            assert rebuilt == flags

    @rule(data=st.data())
    def rank_select(self, data: st.DataObject) -> None:
        pfn = _position(data, self.model.size)
        want = int(self.model[:pfn].sum())
        set_pfns = np.flatnonzero(self.model)
        for flags in (self.flags, self.flat):
            assert flags.rank(pfn) == want
            if want < set_pfns.size:
                assert flags.select(want) == set_pfns[want]
                assert flags.rank(flags.select(want)) == want

    @rule(data=st.data(), name=st.sampled_from(sorted(IN_PLACE)))
    def combine_in_place(self, data: st.DataObject, name: str) -> None:
        npages = self.model.size
        chunk = 1 << self.flags.geometry.chunk_shift
        whole = st.integers(0, (npages - 1) // chunk).map(lambda c: c * chunk)
        starts = data.draw(st.lists(st.one_of(whole, st.integers(0, npages)), max_size=4))
        stops = [min(npages, s + data.draw(st.one_of(st.just(chunk), st.integers(0, 70_000))))
                 for s in starts]
        pfns = data.draw(st.lists(st.integers(0, npages - 1), max_size=8))
        # A copy of the map itself makes results cancel whole entries.
        like_self = data.draw(st.booleans())
        if like_self:
            other_model = self.model.copy()
            starts, stops = (list(r) for r in self.flat.runs())
        else:
            other_model = np.zeros(npages, dtype=bool)
            for a, b in zip(starts, stops, strict=True):
                other_model[a:b] = True
        other_model[pfns] = True
        # Built page by page, whole chunks of the other map are private all-ones
        # chunks, not FULL: results that cancel a FULL entry need such chunks.
        by_page = data.draw(st.booleans())
        iop, model_op = IN_PLACE[name]
        others = []
        for flags in (self.flags, self.flat):
            if by_page:
                other = type(flags).from_array(np.flatnonzero(other_model), flags.geometry)
            else:
                other = type(flags).from_ranges(starts, stops, flags.geometry)
                other.set_many(pfns)
            others.append(other)
            assert flags.count_and(other) == int((self.model & other_model).sum())
            assert flags.intersects(other) == bool((self.model & other_model).any())
            assert flags.issubset(other) == bool(not (self.model & ~other_model).any())
        self.flags = iop(self.flags, others[0])
        self.flat = iop(self.flat, others[1])
        self.model = model_op(self.model, other_model)

    @rule()
    def invert(self) -> None:
        self.flags = ~self.flags
        self.flat = ~self.flat
        self.model = ~self.model

    @rule(data=st.data())
    def put_words(self, data: st.DataObject) -> None:
        nwords = -(-self.model.size // 64)
        first = data.draw(st.integers(0, nwords - 1))
        size = data.draw(st.integers(1, min(600, nwords - first)))
        stop = min((first + size) * 64, self.model.size)
        kind = data.draw(st.sampled_from(["zeros", "ones", "copy"]))
        if kind == "copy":  # the window of another place of the map, shifted
            source = data.draw(st.integers(0, self.model.size - (stop - first * 64)))
            window = self.model[source:source + stop - first * 64].copy()
        else:
            window = np.full(stop - first * 64, kind == "ones")
        padded = np.zeros(size * 64, dtype=np.uint8)
        padded[:window.size] = window
        words = np.packbits(padded, bitorder="little").view(np.uint64)
        self.flags.put_words(first * 64, words)
        self.flat.put_words(first * 64, words)
        self.model[first * 64:stop] = window
