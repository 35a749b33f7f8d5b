"""from_array, from_ranges, from_bool, from_words, to_bool, to_words and put_words."""

from __future__ import annotations

import numpy as np
import pytest
from _mapkit import BIG, SMALL, check_same, drawn_window, entry_kinds, triples
from hypothesis import given, settings
from hypothesis import strategies as st

from pageflags import FlatPageFlags, Geometry, PageFlags

MAPS = (PageFlags, FlatPageFlags)


@pytest.mark.parametrize("cls", MAPS)
def test_from_array(cls):
    pfns = np.array([BIG.npages - 1, 0, 64, 64, 32768], dtype=np.uint32)
    flags = cls.from_array(pfns, BIG)
    assert type(flags) is cls
    model = np.zeros(BIG.npages, dtype=bool)
    model[pfns] = True
    check_same(flags, model)
    with pytest.raises(IndexError):
        cls.from_array([BIG.npages], BIG)
    with pytest.raises(TypeError):
        cls.from_array([1.5], BIG)


@pytest.mark.parametrize("cls", MAPS)
def test_from_ranges_overlapping_unordered_and_empty(cls):
    g = BIG
    starts = [40_000, 0, 100, 5, 32768, g.npages - 3, 7]
    stops = [70_000, 10, 200, 8, 65536, g.npages, 7]
    flags = cls.from_ranges(np.array(starts), np.array(stops), g)
    model = np.zeros(g.npages, dtype=bool)
    for a, b in zip(starts, stops, strict=True):
        model[a:b] = True
    check_same(flags, model)
    if cls is PageFlags:
        assert flags.table[1] is flags.FULL
        assert cls.from_ranges([], [], g).count() == 0


@pytest.mark.parametrize("cls", MAPS)
def test_from_ranges_rejects_bad_ranges(cls):
    g = SMALL
    with pytest.raises(ValueError):
        cls.from_ranges([5, 9], [6, 8], g)
    with pytest.raises(ValueError):
        cls.from_ranges([5, 9], [6], g)
    with pytest.raises(IndexError):
        cls.from_ranges([-1], [3], g)
    with pytest.raises(IndexError):
        cls.from_ranges([0], [g.npages + 1], g)
    with pytest.raises(TypeError):
        cls.from_ranges([0.0], [3.0], g)


@settings(max_examples=50, deadline=None)
@given(t=triples())
def test_words_bool_and_ranges_round_trip(t):
    g = t.g
    for flags in (t.flags, t.flat):
        cls = type(flags)
        assert cls.from_bool(t.model, geometry=g) == flags
        assert np.array_equal(flags.to_bool(), t.model)
        words = flags.to_words()
        assert words.size == g.nwords
        assert np.array_equal(np.unpackbits(words.view(np.uint8), bitorder="little")
                              [:g.npages].astype(bool), t.model)
        rebuilt = cls.from_words(words, geometry=g)
        rebuilt.validate()
        assert rebuilt == flags
        assert cls.from_ranges(*flags.runs(), g) == flags


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_bool_windows(data):
    t, start, stop = drawn_window(data)
    g = t.g
    for flags in (t.flags, t.flat):
        got = flags.to_bool(start, stop)
        assert got.dtype == bool and np.array_equal(got, t.model[start:stop])
    window = t.model[start:stop]
    rebuilt = PageFlags.from_bool(window, start, g)
    want = np.zeros(g.npages, dtype=bool)
    want[start:stop] = window
    check_same(rebuilt, want)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_put_words_overwrites_a_window(data):
    t = data.draw(triples())
    g = t.g
    first = data.draw(st.integers(0, g.nwords - 1))
    size = data.draw(st.integers(1, g.nwords - first))
    fill = data.draw(st.sampled_from(["zeros", "ones", "random"]))
    stop = min((first + size) * 64, g.npages)
    bits = {"zeros": np.zeros, "ones": np.ones}.get(fill)
    if bits is None:
        seed = data.draw(st.integers(0, 2**32 - 1))
        window = np.random.default_rng(seed).random(stop - first * 64) < 0.5
    else:
        window = bits(stop - first * 64, dtype=bool)
    padded = np.zeros(size * 64, dtype=np.uint8)
    padded[:window.size] = window
    words = np.packbits(padded, bitorder="little").view(np.uint64)
    want = t.model.copy()
    want[first * 64:stop] = window
    for flags in (t.flags, t.flat):
        flags.put_words(first * 64, words)
        check_same(flags, want)
        assert np.array_equal(flags.to_words(first * 64, stop), words)


def test_put_words_makes_full_and_none_entries():
    flags = PageFlags(BIG)
    flags.set_many([5, 40_000])
    ones = np.full(512, np.iinfo(np.uint64).max, dtype=np.uint64)
    flags.put_words(0, ones)
    flags.put_words(32768, np.zeros(512, dtype=np.uint64))
    flags.validate()
    assert list(entry_kinds(flags)) == ["full", "none", "none", "none"]
    flags.put_words(64, np.zeros(1, dtype=np.uint64))  # unshares the FULL entry
    flags.validate()
    assert flags.count() == 32768 - 64 and entry_kinds(flags)[0] == "chunk"


@pytest.mark.parametrize("cls", MAPS)
def test_word_windows_reject_bad_input(cls):
    g = SMALL  # 1000 pages: the last word holds pages 960..999
    flags = cls(g)
    flags.set_many([1, 999])
    before = flags.copy()
    one = np.ones(1, dtype=np.uint64)
    for start, stop in ((1, 64), (0, 65), (64, 999)):
        with pytest.raises(ValueError):
            flags.to_words(start, stop)
    assert flags.to_words(960, 1000).tolist() == [1 << 39]
    with pytest.raises(ValueError):
        flags.put_words(3, one)  # not aligned
    with pytest.raises(ValueError):
        flags.put_words(960, np.array([1 << 40], dtype=np.uint64))  # past npages
    with pytest.raises(IndexError):
        flags.put_words(960, np.zeros(2, dtype=np.uint64))
    with pytest.raises(IndexError):
        flags.put_words(1024, one)
    with pytest.raises(TypeError):
        flags.put_words(0, np.ones(1))
    with pytest.raises(TypeError):
        flags.put_words(0.0, one)
    with pytest.raises(TypeError):
        cls.from_bool(np.ones(3, dtype=np.int8), geometry=g)
    with pytest.raises(IndexError):
        cls.from_bool(np.ones(3, dtype=bool), 999, g)
    with pytest.raises(ValueError):
        cls.from_bool(np.ones(0, dtype=bool))
    for make in (cls.from_bool, cls.from_words):
        with pytest.raises(IndexError):
            make(np.ones(1, dtype=bool if make == cls.from_bool else np.uint64), -64)
    assert flags == before
    flags.validate()


def test_default_geometries():
    flags = PageFlags.from_bool(np.ones(70, dtype=bool), 30)
    assert flags.npages == 100 and flags.count() == 70
    words = FlatPageFlags.from_words(np.array([3, 0], dtype=np.uint64), 64)
    assert words.npages == 192 and words.to_array().tolist() == [64, 65]


def test_to_words_of_a_huge_sparse_map():
    g = Geometry()
    flags = PageFlags(g)
    flags.set_range(1 << 33, (1 << 33) + 64)
    assert flags.to_words(1 << 33, (1 << 33) + 128).tolist() == [2**64 - 1, 0]
    assert PageFlags.from_words(flags.to_words(0, 1 << 20), 0, g).count() == 0


# --- builders build the class they are called on ---------------------------------------
class TaggedFlags(PageFlags):
    __slots__ = ()


class TaggedFlat(FlatPageFlags):
    __slots__ = ()


def _built_by_every_builder(cls, g):
    """``(name, map)`` for each builder of ``cls``, all holding the same pages."""
    model = np.zeros(g.npages, dtype=bool)
    model[[0, 63, 64, 40_000, g.npages - 1]] = True
    model[32768:65536] = True
    base = PageFlags.from_bool(model)
    starts, stops = base.runs()
    built = [("from_array", cls.from_array(np.flatnonzero(model), g)),
             ("from_ranges", cls.from_ranges(starts, stops, g)),
             ("from_bool", cls.from_bool(model, 0, g)),
             ("from_words", cls.from_words(base.to_words(), 0, g))]
    return built, model


@pytest.mark.parametrize("cls", [TaggedFlags, TaggedFlat, PageFlags, FlatPageFlags])
def test_every_builder_returns_the_class_it_is_called_on(cls):
    built, model = _built_by_every_builder(cls, BIG)
    for name, flags in built:
        assert type(flags) is cls, name
        check_same(flags, model)
