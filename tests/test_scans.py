"""Searches, iteration, runs, rank and select against FlatPageFlags and NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from _mapkit import BIG, GEOMETRIES, SMALL, Triple, drawn_window, edges, positions, triples
from hypothesis import given, settings
from hypothesis import strategies as st

from pageflags import FlatPageFlags, Geometry, PageFlags

MAPS = (PageFlags, FlatPageFlags)


def model_next(model: np.ndarray, start: int, value: bool) -> int:
    hits = np.flatnonzero(model[start:] == value)
    return int(hits[0]) + start if hits.size else -1


def model_prev_set(model: np.ndarray, start: int) -> int:
    hits = np.flatnonzero(model[:start + 1])
    return int(hits[-1]) if hits.size else -1


def model_runs(model: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    padded = np.concatenate(([False], model[start:stop], [False])).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return change[0::2] + start, change[1::2] + start


def mixed(g: Geometry) -> Triple:
    """Chunk 0 private with edge bits, chunk 1 FULL, chunk 2 None, last one partial."""
    t = Triple(g)
    ppc = g.pages_per_chunk
    t.set_many([0, 63, 64, ppc - 1])
    t.set_range(ppc, 2 * ppc)
    t.set_many([g.npages - 1, 3 * ppc])
    return t


@pytest.fixture(params=GEOMETRIES, ids=["big", "small"])
def t(request) -> Triple:
    return mixed(request.param)


# --- search ------------------------------------------------------------------------

def test_mixed_map_has_every_entry_kind(t):
    kinds = {e is None or e is t.flags.FULL or "chunk" for e in t.flags.table}
    assert kinds == {True, "chunk"}  # None or FULL, and private chunks
    assert t.flags.table[1] is t.flags.FULL and t.flags.table[2] is None


def test_find_at_edges(t):
    g = t.g
    for start in [*edges(g), g.npages]:
        for flags in (t.flags, t.flat):
            assert flags.find_next_set(start) == model_next(t.model, start, True), start
            assert flags.find_next_clear(start) == model_next(t.model, start, False), start
            assert flags.find_prev_set(start) == model_prev_set(t.model, start), start


def test_known_answers_on_big():
    t = mixed(BIG)
    ppc = BIG.pages_per_chunk
    assert t.flags.find_next_set(ppc - 1) == ppc - 1
    assert t.flags.find_next_set(2 * ppc) == 3 * ppc  # across the None entry
    assert t.flags.find_next_clear(ppc) == 2 * ppc  # across the FULL entry
    assert t.flags.find_prev_set(3 * ppc - 1) == 2 * ppc - 1
    assert t.flags.find_prev_set(BIG.npages) == BIG.npages - 1
    assert (t.flags.min(), t.flags.max()) == (0, BIG.npages - 1)


@pytest.mark.parametrize("cls", MAPS)
def test_empty_and_full_maps(cls):
    g = BIG
    flags = cls(g)
    assert (flags.min(), flags.max()) == (-1, -1)
    assert flags.find_next_set(0) == -1 and flags.find_prev_set(g.npages) == -1
    assert flags.find_next_clear(g.npages - 1) == g.npages - 1
    flags.set_range(0, g.npages)
    assert flags.find_next_clear(0) == -1  # no clear bit past npages is reported
    assert (flags.min(), flags.max()) == (0, g.npages - 1)
    assert flags.find_next_set(g.npages) == -1 and flags.find_next_clear(g.npages) == -1


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_find_matches_model(data):
    t = data.draw(triples())
    start = data.draw(positions(t.g))
    for flags in (t.flags, t.flat):
        assert flags.find_next_set(start) == model_next(t.model, start, True)
        assert flags.find_next_clear(start) == model_next(t.model, start, False)
        assert flags.find_prev_set(start) == model_prev_set(t.model, start)
    assert t.flags.min() == model_next(t.model, 0, True)
    assert t.flags.max() == model_prev_set(t.model, t.g.npages)


def test_search_skips_none_entries_in_a_huge_space():
    flags = PageFlags()  # 2**34 pages, 2**19 entries
    last = flags.npages - 1
    flags.set(last)
    assert flags.find_next_set(0) == last and flags.min() == last
    assert flags.find_prev_set(last - 1) == -1 and flags.max() == last
    assert flags.select(0) == last and flags.rank(flags.npages) == 1


# --- iteration -----------------------------------------------------------------------

def test_to_array_windows(t):
    g = t.g
    cuts = [*edges(g), g.npages]
    for start in cuts:
        for stop in cuts:
            if start <= stop:
                want = np.flatnonzero(t.model[start:stop]) + start
                for flags in (t.flags, t.flat):
                    got = flags.to_array(start, stop)
                    assert got.dtype == np.int64 and np.array_equal(got, want), (start, stop)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_iter_arrays_concatenate_to_to_array(data):
    t, start, stop = drawn_window(data)
    max_len = data.draw(st.sampled_from([1, 2, 63, 64, 1000, 1 << 20]))
    want = np.flatnonzero(t.model[start:stop]) + start
    for flags in (t.flags, t.flat):
        parts = list(flags.iter_arrays(start, stop, max_len=max_len))
        assert all(0 < p.size <= max_len and p.dtype == np.int64 for p in parts)
        got = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        assert np.array_equal(got, want)
        assert np.array_equal(got, flags.to_array(start, stop))


def test_iter_arrays_splits_a_full_chunk():
    flags = PageFlags(BIG)
    flags.set_range(0, 3 * 32768)  # three FULL entries
    parts = list(flags.iter_arrays(100, 70_000, max_len=30_000))
    assert [p.size for p in parts] == [30_000, 30_000, 9_900]
    assert np.array_equal(np.concatenate(parts), np.arange(100, 70_000))


def test_iter_arrays_checks_arguments_eagerly():
    flags = PageFlags(BIG)
    with pytest.raises(ValueError):
        flags.iter_arrays(max_len=0)
    with pytest.raises(TypeError):
        flags.iter_arrays(max_len=2.0)
    with pytest.raises(IndexError):
        flags.iter_arrays(-1)


def test_runs_at_edges(t):
    cuts = [0, 63, 64, t.g.pages_per_chunk, t.g.npages - 1, t.g.npages]
    for start in cuts:
        for stop in cuts:
            if start <= stop:
                want = model_runs(t.model, start, stop)
                for flags in (t.flags, t.flat):
                    got = flags.runs(start, stop)
                    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_runs_span_full_and_private_chunks():
    flags = PageFlags(SMALL)
    flags.set_range(100, 600)  # private, FULL, FULL, FULL, private
    starts, stops = flags.runs()
    assert starts.tolist() == [100] and stops.tolist() == [600]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_runs_rebuild_the_map(data):
    t, start, stop = drawn_window(data)
    want = model_runs(t.model, start, stop)
    for flags in (t.flags, t.flat):
        starts, stops = flags.runs(start, stop)
        assert np.array_equal(starts, want[0]) and np.array_equal(stops, want[1])
        assert (starts < stops).all() and (starts[1:] > stops[:-1]).all()  # maximal
        rebuilt = type(flags).from_ranges(starts, stops, t.g)
        rebuilt.validate()
        window = flags.copy()
        window.clear_range(0, start)
        window.clear_range(stop, t.g.npages)
        assert rebuilt == window


# --- rank and select -----------------------------------------------------------------

def test_rank_and_select_at_edges(t):
    set_pfns = np.flatnonzero(t.model)
    for flags in (t.flags, t.flat):
        for p in [*edges(t.g), t.g.npages]:
            assert flags.rank(p) == int(t.model[:p].sum())
        for k in [0, 1, 2, 3, set_pfns.size // 2, set_pfns.size - 1]:
            assert flags.select(k) == set_pfns[k]
        for k in (-1, set_pfns.size):
            with pytest.raises(IndexError):
                flags.select(k)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_select_inverts_rank(data):
    t = data.draw(triples())
    set_pfns = np.flatnonzero(t.model)
    if set_pfns.size == 0:
        for flags in (t.flags, t.flat):
            with pytest.raises(IndexError):
                flags.select(0)
        return
    p = int(data.draw(st.sampled_from(set_pfns)))
    k = data.draw(st.integers(0, set_pfns.size - 1))
    for flags in (t.flags, t.flat):
        assert flags.select(flags.rank(p)) == p
        assert flags.rank(flags.select(k)) == k
        assert flags.select(k) == set_pfns[k]


def test_select_in_a_full_entry_reads_no_chunk():
    flags = PageFlags(BIG)
    flags.set_range(32768, 65536)
    assert flags.select(5) == 32768 + 5 and flags.rank(32768 + 5) == 5


# --- bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("cls", MAPS)
@pytest.mark.parametrize("bad, error", [
    (-1, IndexError), (BIG.npages + 1, IndexError), (1.0, TypeError), (True, TypeError),
    ("3", TypeError), (np.float64(2), TypeError), (None, TypeError)])
def test_searches_reject_bad_starts(cls, bad, error):
    flags = mixed(BIG).flags if cls is PageFlags else mixed(BIG).flat
    before = flags.copy()
    for call in (flags.find_next_set, flags.find_next_clear, flags.find_prev_set,
                 flags.rank, flags.select):
        with pytest.raises(error):
            call(bad)
    for call in (flags.to_array, flags.runs, flags.iter_arrays):
        with pytest.raises(error):
            call(bad)
    assert flags == before
    flags.validate()


@pytest.mark.parametrize("cls", MAPS)
def test_numpy_integers_and_backwards_ranges(cls):
    flags = cls(BIG)
    flags.set(70)
    assert flags.find_next_set(np.int32(5)) == 70 and flags.find_prev_set(np.uint64(80)) == 70
    assert flags.select(np.int64(0)) == 70 and flags.rank(np.uint16(71)) == 1
    for call in (flags.to_array, flags.runs, flags.iter_arrays):
        with pytest.raises(ValueError):
            call(10, 5)


def test_copies_and_pickles_search_like_the_original():
    import copy
    import pickle

    t = mixed(BIG)
    for twin in (t.flags.copy(), copy.deepcopy(t.flags), pickle.loads(pickle.dumps(t.flags))):
        twin.validate()  # checks the occupied bitmap too
        for start in (0, 2 * 32768, BIG.npages - 1):
            assert twin.find_next_set(start) == t.flags.find_next_set(start)
            assert twin.find_prev_set(start) == t.flags.find_prev_set(start)
