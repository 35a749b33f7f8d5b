"""PageFlags against FlatPageFlags and a NumPy bool array, at every boundary."""

import copy
import pickle
import sys

import numpy as np
import pytest
from conftest import PARTIAL, TINY, WHOLE, assert_matches, edge_pfns

from pageflags import FlatPageFlags, Geometry, PageFlags, _addresses
from pageflags._chunks import new_chunks

C = 32768


def ranges_for(npages: int) -> list[tuple[int, int]]:
    """Ranges inside, at and across chunk and word boundaries, empty, and everything."""
    cands = [(0, 0), (5, 5), (0, 1), (63, 65), (64, 128), (1, 63), (100, 200),
             (0, C), (C, 2 * C), (C - 1, C + 1), (10, C), (C, C + 10), (C - 5, 3 * C + 7),
             (C + 1, 2 * C - 1), (0, 2 * C), (2 * C, npages), (npages - 1, npages),
             (npages - 70, npages), (0, npages), (1, npages - 1)]
    return [(a, b) for a, b in cands if 0 <= a <= b <= npages]


def build(geometry, ops):
    flags, flat = PageFlags(geometry), FlatPageFlags(geometry)
    model = np.zeros(geometry.npages, dtype=bool)
    for op, args in ops:
        getattr(flags, op)(*args)
        getattr(flat, op)(*args)
        if op == "set_range":
            model[args[0]:args[1]] = True
        elif op == "clear_range":
            model[args[0]:args[1]] = False
        elif op in ("set_many", "set"):
            model[args[0]] = True
        else:
            model[args[0]] = False
    return flags, flat, model


def test_new_map_is_empty_and_allocates_nothing(geometry):
    flags = PageFlags(geometry)
    assert flags.count() == 0 and not flags.any() and flags.all(0, 0)
    assert flags.stats()["allocated"] == 0 and flags.stats()["none"] == geometry.nchunks
    assert all(entry is None for entry in flags.table)
    flags.validate()


def test_default_map_is_46_bit_and_small():
    flags = PageFlags()
    assert flags.npages == 1 << 34
    assert flags.nbytes < 16 << 20
    assert flags.stats()["flat_bytes"] == 2 << 30


def test_pageflags_accepts_a_page_count():
    assert PageFlags(1000).geometry == Geometry.from_npages(1000)


def test_single_page_ops_at_edges(geometry):
    for pfn in edge_pfns(geometry.npages):
        flags, flat, model = build(geometry, [("set", (pfn,))])
        assert flags.test(pfn) and pfn in flags and flat.test(pfn)
        assert not flags.test((pfn + 1) % geometry.npages)
        assert_matches(flags, model, flat)
        flags.clear(pfn)
        flat.clear(pfn)
        model[pfn] = False
        assert_matches(flags, model, flat)
        assert flags.stats()["allocated"] == 0  # the emptied chunk was freed


def test_test_accepts_numpy_integers():
    flags = PageFlags(PARTIAL)
    flags.set(np.int64(64))
    assert flags.test(np.uint16(64)) and np.int32(64) in flags


@pytest.mark.parametrize("op", ["set_range", "clear_range"])
def test_range_ops_against_models(geometry, op):
    for start, stop in ranges_for(geometry.npages):
        base = [("set_range", (3, 70)), ("set_many", ([geometry.npages - 1, C + 5][:1],))]
        if op == "clear_range":
            base.append(("set_range", (0, geometry.npages)))
        flags, flat, model = build(geometry, [*base, (op, (start, stop))])
        assert_matches(flags, model, flat)


def test_count_any_all_on_every_range(geometry):
    rng = np.random.default_rng(7)
    pfns = rng.integers(0, geometry.npages, 500)
    start = min(C - 3, geometry.npages // 2)
    flags, flat, model = build(geometry, [("set_range", (start, start + 200)),
                                          ("set_many", (pfns,))])
    cum = np.concatenate([[0], np.cumsum(model)])
    for start, stop in ranges_for(geometry.npages):
        expected = int(cum[stop] - cum[start])
        assert flags.count(start, stop) == expected == flat.count(start, stop)
        assert flags.any(start, stop) == (expected > 0) == flat.any(start, stop)
        assert flags.all(start, stop) == (expected == stop - start) == flat.all(start, stop)


def test_count_reads_cached_counts_of_full_chunks():
    flags = PageFlags(WHOLE)
    flags.set_range(0, 4 * C)
    assert flags.stats()["full"] == 4
    assert flags.count(0, 2 * C) == 2 * C and flags.count(5, 3 * C - 5) == 3 * C - 10
    assert flags.all() and flags.all(C - 1, C + 1)


def test_set_range_over_whole_chunks_puts_full_there():
    flags = PageFlags(WHOLE)
    flags.set_range(C - 1, 3 * C + 1)
    kinds = ["full" if e is flags.FULL else "none" if e is None else "chunk"
             for e in flags.table]
    assert kinds == ["chunk", "full", "full", "chunk"]
    assert flags.stats()["chunk_bytes"] == 2 * 4096
    flags.validate()


def test_partial_last_chunk_is_never_full():
    flags = PageFlags(PARTIAL)
    flags.set_range(0, PARTIAL.npages)
    assert flags.table[-1] is not flags.FULL and flags.table[-1] is not None
    assert flags.count() == PARTIAL.npages and flags.all()
    assert flags.optimize() == 0
    assert flags.table[-1] is not flags.FULL
    flags.validate()


def test_writing_a_zero_into_full_gives_it_its_own_chunk():
    flags = PageFlags(WHOLE)
    flags.set_range(0, 2 * C)
    full_before = flags.FULL.copy()
    flags.clear(C + 3)
    assert flags.table[0] is flags.FULL and flags.table[1] is not flags.FULL
    assert flags.count() == 2 * C - 1 and not flags.test(C + 3)
    np.testing.assert_array_equal(flags.FULL, full_before)
    flags.clear_many(np.array([5]))
    assert flags.table[0] is not flags.FULL
    np.testing.assert_array_equal(flags.FULL, full_before)
    flags.validate()


def test_set_on_full_and_clear_on_none_allocate_nothing():
    flags = PageFlags(WHOLE)
    flags.set_range(0, C)
    flags.set(5)
    flags.set_many([1, 2, 3])
    flags.clear(2 * C + 1)
    flags.clear_many([3 * C, 3 * C + 1])
    flags.clear_range(2 * C, 3 * C - 5)
    assert flags.stats()["allocated"] == 0 and flags.stats()["full"] == 1


def test_clearing_a_whole_chunk_frees_it():
    flags = PageFlags(WHOLE)
    flags.set_many(np.arange(0, 4 * C, 1000))
    assert flags.stats()["allocated"] == 4
    flags.clear_range(C, 3 * C)
    assert flags.table[1] is None and flags.table[2] is None
    assert flags.stats()["allocated"] == 2
    flags.clear_range(0, 10 * 1000 + 1)   # chunk 0 still has bits past 10000
    assert flags.stats()["allocated"] == 2
    flags.clear_range(0, C)
    assert flags.stats()["allocated"] == 1
    flags.validate()


def test_optimize_frees_zero_chunks_and_shares_full_ones():
    flags = PageFlags(WHOLE)
    flags.set_many(np.arange(C, 2 * C))          # chunk 1 all ones, but private
    flags.set_many(np.arange(2 * C, 2 * C + 5))
    flags._allocate(np.array([3]))               # an allocated chunk with no bit set
    assert flags.stats()["allocated"] == 3
    assert flags.optimize() == 2 * 4096
    assert flags.table[1] is flags.FULL and flags.table[3] is None
    assert flags.stats()["allocated"] == 1 and flags.count() == C + 5
    assert flags.optimize() == 0
    flags.validate()


def test_many_ops_accept_any_integer_dtype_order_and_duplicates(geometry):
    pfns = np.array(edge_pfns(geometry.npages))[::-1]
    for dtype in (np.int8, np.uint16, np.int32, np.uint32, np.int64, np.uint64):
        ok = pfns[pfns <= np.iinfo(dtype).max].astype(dtype)
        arr = np.concatenate([ok, ok])
        flags, flat, model = build(geometry, [("set_many", (arr,))])
        assert_matches(flags, model, flat)
        np.testing.assert_array_equal(flags.test_many(arr), np.ones(arr.size, bool))
        flags.clear_many(arr[::2])
        flat.clear_many(arr[::2])
        model[arr[::2].astype(np.int64)] = False
        assert_matches(flags, model, flat)


def test_many_ops_accept_lists_empty_and_nd_input():
    flags = PageFlags(PARTIAL)
    flags.set_many([])
    flags.set_many([[1, 2], [3, 4]])
    assert flags.count() == 4
    out = flags.test_many(np.array([[1, 5], [4, 0]]))
    np.testing.assert_array_equal(out, [[True, False], [True, False]])
    assert flags.test_many([]).shape == (0,)
    flags.clear_many(np.array([], dtype=np.uint8))
    assert flags.count() == 4


def test_random_many_ops_match_flat():
    g = Geometry.from_npages(40 * C + 123)
    rng = np.random.default_rng(1)
    flags, flat = PageFlags(g), FlatPageFlags(g)
    model = np.zeros(g.npages, bool)
    for _ in range(5):
        a = rng.integers(0, g.npages, 20_000)
        b = rng.integers(0, g.npages, 20_000)
        for m in (flags, flat):
            m.set_many(a)
            m.clear_many(b)
        model[a] = True
        model[b] = False
        probe = rng.integers(0, g.npages, 5000)
        np.testing.assert_array_equal(flags.test_many(probe), model[probe])
    assert_matches(flags, model, flat)


def test_table_and_its_chunks_are_read_only():
    flags = PageFlags(PARTIAL)
    flags.set(70)
    flags.set_range(C, 2 * C)
    with pytest.raises(ValueError):
        flags.table[0][1] = 0
    with pytest.raises(ValueError):
        flags.table[0] = None
    with pytest.raises(ValueError):
        flags.table[1][0] = 0   # FULL
    assert flags.table[0][1] == np.uint64(1) << np.uint64(6)


def test_nbytes_and_stats_follow_allocation():
    flags = PageFlags(WHOLE)
    empty = flags.nbytes
    flags.set(0)
    flags.set_range(C, 2 * C)
    s = flags.stats()
    assert (s["none"], s["full"], s["allocated"]) == (2, 1, 1)
    assert s["chunk_bytes"] == 4096 and s["nbytes"] == empty + 4096 == flags.nbytes
    assert s["table_bytes"] == empty and s["count"] == C + 1


def test_copy_is_independent_and_equal():
    flags, _, _ = build(PARTIAL, [("set_range", (10, 2 * C + 5)), ("set", (PARTIAL.npages - 1,))])
    for dup in (flags.copy(), copy.copy(flags), copy.deepcopy(flags),
                pickle.loads(pickle.dumps(flags))):
        dup.validate()
        assert dup == flags and dup.geometry == flags.geometry
        dup.clear(11)
        assert dup != flags and flags.test(11)
        assert dup.table[1] is dup.FULL


def test_equality_compares_bits_not_layout():
    a, b = PageFlags(WHOLE), PageFlags(WHOLE)
    a.set_range(0, C)                   # FULL
    b.set_many(np.arange(C))            # a private all-ones chunk
    flat = FlatPageFlags(WHOLE)
    flat.set_range(0, C)
    assert a == b == flat
    b.clear(C - 1)
    assert a != b and b != flat
    assert a != PageFlags(Geometry.from_npages(4 * C, chunk_shift=16))
    assert (a == "x") is False


def test_equality_reads_chunks_when_counts_agree():
    a, b = PageFlags(WHOLE), PageFlags(WHOLE)
    a.set(1)
    b.set(2)
    assert a.count() == b.count() and a != b


def test_repr_mentions_geometry_and_count():
    flags = PageFlags(PARTIAL)
    flags.set(3)
    assert "count=1" in repr(flags) and "PageFlags" in repr(flags)


def test_validate_detects_broken_invariants():
    flags = PageFlags(WHOLE)
    flags.set_range(5, C + 5)
    flags._counts[1] += 1
    with pytest.raises(AssertionError, match="counts"):
        flags.validate()
    flags._counts[1] -= 1
    flags._addrs[2] = flags._addrs[0]
    with pytest.raises(AssertionError, match="None entries"):
        flags.validate()
    flags._addrs[2] = 0
    flags._total += 1
    with pytest.raises(AssertionError, match="total"):
        flags.validate()
    flags._total -= 1
    flags._nallocated_cache = flags._nallocated + 1
    with pytest.raises(AssertionError, match="chunks recorded"):
        flags.validate()
    flags._nallocated_cache = None
    flags.validate()


class _Subclass(np.ndarray):
    pass


def _writable_chunk(words):
    return np.zeros(words, np.uint64)


@pytest.mark.parametrize("make", [
    _writable_chunk,
    lambda words: np.zeros(words, np.int64),
    lambda words: np.zeros(words + 1, np.uint64),
    lambda words: np.zeros((words, 1), np.uint64),
    lambda words: np.zeros(2 * words, np.uint64)[::2],
    lambda words: np.zeros(words, np.dtype(np.uint64).newbyteorder(">")),
    lambda words: [0] * words,
    lambda words: np.zeros(words, np.uint64).view(_Subclass),
], ids=["writable", "int64", "too-long", "2-d", "strided", "big-endian", "list",
        "subclass"])
@pytest.mark.parametrize("layout", ["read", "fallback"])
def test_validate_detects_chunks_of_the_wrong_kind(monkeypatch, make, layout):
    if layout == "fallback":
        monkeypatch.setattr(_addresses, "_LAYOUT", None)
    flags = PageFlags(WHOLE)
    flags.set_many([5, 3 * C + 1])
    flags.validate()
    wrong = make(WHOLE.words_per_chunk)
    if isinstance(wrong, np.ndarray) and make is not _writable_chunk:
        wrong.setflags(write=False)
    flags._refs[3] = wrong
    with pytest.raises(AssertionError, match="wrong kind"):
        flags.validate()


def test_validate_detects_two_entries_sharing_one_chunk():
    flags = PageFlags(WHOLE)
    flags.set_many([5, 3 * C + 1])
    flags._store(np.array([3]), flags._refs[[0]], flags._addrs[[0]], flags._counts[[0]])
    flags._total = int(flags._counts.sum())
    with pytest.raises(AssertionError, match="share one chunk"):
        flags.validate()


@pytest.mark.parametrize("layout", ["read", "fallback"])
def test_validate_accepts_chunks_with_an_equal_dtype_object(monkeypatch, layout):
    # Unpickled arrays carry a uint64 dtype equal to, but not, NumPy's own object.
    if layout == "fallback":
        monkeypatch.setattr(_addresses, "_LAYOUT", None)
    flags = PageFlags(WHOLE)
    flags.set_many([5, 3 * C + 1])
    rows = pickle.loads(pickle.dumps(np.stack(flags.table[[0, 3]])))
    assert rows.dtype is not np.dtype(np.uint64)
    chunks = np.empty(2, dtype=object)
    chunks[:] = [row.copy() for row in rows]
    for chunk in chunks:
        chunk.setflags(write=False)
    flags._store(np.array([0, 3]), chunks, _addresses.data_addresses(chunks),
                 flags._counts[[0, 3]])
    flags.validate()


def test_validate_detects_bits_past_npages():
    flags = PageFlags(PARTIAL)
    flags.set(PARTIAL.npages - 1)
    words = flags.table[-1].copy()  # break in on purpose: a chunk with one bit too many
    words[-1] = 1
    chunks, addrs = new_chunks(1, words.size, [words])
    flags._store(np.array([PARTIAL.nchunks - 1]), chunks, addrs, flags._counts[-1] + 1)
    flags._total += 1
    with pytest.raises(AssertionError, match="past npages"):
        flags.validate()


def test_tiny_chunks_of_one_word():
    flags, flat, model = build(TINY, [("set_range", (0, 64 * 3)), ("clear", (64,)),
                                      ("set_range", (64 * 19 + 3, TINY.npages))])
    assert_matches(flags, model, flat)
    assert flags.table[0] is flags.FULL and flags.table[1] is not flags.FULL


def test_five_level_space_can_be_created_and_used():
    flags = PageFlags(Geometry(52))
    top = flags.npages - 1
    flags.set(top)
    flags.set_range(1 << 39, (1 << 39) + (1 << 20))
    flags.set_many(np.array([0, 1 << 35, top - 1]))
    assert flags.count() == (1 << 20) + 4
    assert flags.test_many([top, 1 << 35, 7]).tolist() == [True, True, False]
    s = flags.stats()
    assert s["nchunks"] == 1 << 25 and s["full"] == 32 and s["allocated"] == 3
    assert s["table_bytes"] == (1 << 25) * (8 + 8 + 4)
    assert s["flat_bytes"] == 1 << 37


def test_test_many_kernels_agree_on_mixed_entry_kinds():
    """Both test_many kernels (branching, and branch-free for mixed kinds) match flat."""
    from pageflags import _kernels

    g = Geometry.from_npages(40 * C + 77)
    flags, flat = PageFlags(g), FlatPageFlags(g)
    rng = np.random.default_rng(5)
    for m in (flags, flat):
        for c in range(0, 40, 3):
            m.set_range(c * C, (c + 1) * C)         # FULL entries among None ones
        m.set_many(np.arange(C + 5, 40 * C, 997))    # and private chunks
        m.set(g.npages - 1)
    pfns = rng.integers(0, g.npages, 50_000)
    expected = flat.test_many(pfns)
    np.testing.assert_array_equal(flags.test_many(pfns), expected)
    for kernel, special in ((_kernels.table_test_many, flags._full_addr),
                            (_kernels.table_test_many_mixed, flags._zero_addr)):
        out = np.empty(pfns.size, dtype=bool)
        kernel(flags._addrs, pfns, g.chunk_shift, special, out)
        np.testing.assert_array_equal(out, expected)


# --- what a map owns -------------------------------------------------------------------
def _populated_map():
    flags = PageFlags(PARTIAL)
    flags.set_range(C, 2 * C)       # FULL
    flags.set_many([5, 2 * C + 7])  # two chunks of their own
    return flags


def test_chunks_and_full_cannot_be_made_writable():
    flags = _populated_map()
    for chunk in (flags.table[0], flags.table[2], flags.FULL, flags.copy().table[0]):
        with pytest.raises(ValueError, match="WRITEABLE"):
            chunk.setflags(write=True)
        with pytest.raises(ValueError, match="WRITEABLE"):
            chunk.view().setflags(write=True)
        # Nor any other array NumPy makes over the same memory.
        assert not np.frombuffer(chunk.base, dtype=np.uint64).flags.writeable
        assert not np.asarray(memoryview(chunk)).flags.writeable
    flags.validate()


@pytest.mark.parametrize("scribble", [None, "FULL", "chunk"])
def test_writing_the_table_mirror_changes_nothing_in_the_map(scribble):
    flags = _populated_map()
    model = flags.to_bool()
    table = flags.table
    other = {None: None, "FULL": flags.FULL, "chunk": table[2]}[scribble]
    table.setflags(write=True)  # the mirror owns its memory, so NumPy allows this
    table[0] = other
    with pytest.raises(AssertionError, match="mirror"):
        flags.validate()
    # Before the mirror, dropping table[0] freed a chunk its address still named.
    del table
    flags.set_many(np.arange(0, 32768, 3))
    flags.clear_many([5])
    model[np.arange(0, 32768, 3)] = True
    model[5] = False
    assert flags.table is not None and not flags.table.flags.writeable
    flags.validate()
    np.testing.assert_array_equal(flags.to_bool(), model)


def test_the_table_mirror_follows_every_write():
    flags = PageFlags(PARTIAL)
    table = flags.table
    flags.set(3)
    flags.set_range(C, 2 * C)
    assert table[0] is flags.table[0] and table[0][0] == 8
    assert table[1] is flags.FULL
    flags.clear(3)
    assert table[0] is None
    assert flags.nbytes > PageFlags(PARTIAL).nbytes  # the mirror is counted once made


def _trace_everything(frame, event, arg):
    return _trace_everything


def test_validate_under_a_tracer():
    # A tracer (a debugger, coverage) holds frame references: an in-place resize with
    # NumPy's reference check failed there on maps whose nchunks is not a multiple of 64.
    flags = PageFlags(Geometry(28, 12, 11, 65536))  # 32 chunks: packbits gives 4 bytes of 8
    sys.settrace(_trace_everything)
    try:
        flags.validate()
    finally:
        sys.settrace(None)


@pytest.mark.parametrize("geometry", [PARTIAL, TINY], ids=["partial", "tiny"])
def test_bulk_writes_that_recount_instead_of_counting(monkeypatch, geometry):
    # Large bulk writes leave counts to one recount; every other test writes too few
    # pfns for that, so force it here and check against the model after each step.
    from pageflags import bitmap

    monkeypatch.setattr(bitmap, "RECOUNT_MIN_PFNS", 1)
    rng = np.random.default_rng(5)
    flags, model = PageFlags(geometry), np.zeros(geometry.npages, dtype=bool)
    flags.set_range(0, geometry.pages_per_chunk)             # a FULL entry to copy
    model[:geometry.pages_per_chunk] = True
    for step in range(12):
        pfns = rng.integers(0, geometry.npages, rng.integers(1, 3000))
        pfns = np.concatenate([pfns, pfns[:50], [0, geometry.npages - 1]])  # repeats, edges
        if step % 3 == 2:
            flags.clear_many(pfns)
            model[pfns] = False
        else:
            flags.set_many(pfns)
            model[pfns] = True
        flags.validate()
        assert flags.count() == int(model.sum())
        np.testing.assert_array_equal(flags.to_bool(), model)
    flags.clear_many(np.flatnonzero(model))                  # every chunk empties
    flags.validate()
    assert flags.count() == 0 and flags.stats()["allocated"] == 0


# --- single calls inside one entry: through its private view, or one store ---------------
def _spans_near(edge, npages):
    """Short ranges ending, starting and straddling ``edge`` (a word or chunk edge)."""
    spans = [(edge - a, edge + b) for a in (0, 1, 10, 64, 130) for b in (0, 1, 10, 64, 130)]
    return [(lo, hi) for lo, hi in spans if 0 <= lo < hi <= npages]


@pytest.mark.parametrize("value", [True, False])
def test_short_ranges_at_word_and_chunk_edges_with_and_without_views(geometry, value):
    edges = sorted({e for e in (64, 128, C - 64, C, 2 * C, geometry.npages - 64,
                                geometry.npages) if 0 < e <= geometry.npages})
    for edge in edges:
        for lo, hi in _spans_near(edge, geometry.npages):
            start = [("set_range", (0, geometry.npages))] if not value else []
            # Single writes first give the entries on both sides their views.
            touch = [("set", (min(lo + 3, geometry.npages - 1),)),
                     ("set", (max(hi - 3, 0),))]
            for ops in (start, start + touch):
                op = "set_range" if value else "clear_range"
                flags, flat, model = build(geometry, [*ops, (op, (lo, hi))])
                assert flags.count(lo, hi) == int(model[lo:hi].sum()) == flat.count(lo, hi)
                assert_matches(flags, model, flat)


def test_whole_sections_become_full_or_none_and_drop_their_views():
    flags = PageFlags(PARTIAL)
    flags.set(5)
    assert 0 in flags._views
    flags.set_range(0, C)  # a private chunk becomes FULL: its view goes with it
    assert flags.table[0] is flags.FULL and 0 not in flags._views
    assert flags.stats()["allocated"] == 0 and flags.count() == C
    flags.clear(5)  # FULL unshared, with a view of the new chunk
    assert flags.table[0] is not flags.FULL and flags.count() == C - 1
    flags.clear_range(0, C)
    assert flags.table[0] is None and 0 not in flags._views and flags.count() == 0
    flags.set_range(C, 2 * C)
    flags.set_range(C, 2 * C)  # already FULL: nothing changes
    flags.clear_range(2 * C, 3 * C)  # already None
    assert flags.count() == C and flags.stats()["full"] == 1
    flags.set_range(3 * C, PARTIAL.npages)  # the partial last chunk is never FULL
    assert flags.table[3] is not flags.FULL and flags.count() == C + 1000
    flags.clear_range(3 * C, PARTIAL.npages)  # but clearing it whole frees it
    assert flags.table[3] is None and flags.count() == C
    flags.validate()


def test_views_are_made_again_after_a_bulk_store():
    flags, flat, model = build(PARTIAL, [("set", (70,)), ("set", (C + 70,))])
    assert len(flags._views) == 2
    flags.set_many(np.arange(2 * C, 2 * C + 10))
    flat.set_many(np.arange(2 * C, 2 * C + 10))
    model[2 * C:2 * C + 10] = True
    flags.optimize()  # stores through the array path, which drops every view
    assert flags._views == {}
    for target in (flags, flat):
        target.set(71)
        target.set_range(C + 60, C + 66)
        target.clear(70)
    model[71] = True
    model[C + 60:C + 66] = True
    model[70] = False
    assert_matches(flags, model, flat)


def test_a_chunk_emptied_by_a_short_clear_is_freed():
    flags = PageFlags(PARTIAL)
    flags.set_range(C + 60, C + 70)
    flags.set_range(C + 100, C + 300)
    flags.clear_range(C + 60, C + 70)  # within one word, through the view
    assert flags.table[1] is not None
    flags.clear_range(C + 90, C + 310)  # a few words
    assert flags.table[1] is None and flags.count() == 0
    flags.validate()


# --- the package-internal table API (what persist, roaring, hotplug, ... use) --------------

def _mixed(geometry):
    """A map with None, FULL and private entries, bits at both ends of the space."""
    flags, model = PageFlags(geometry), np.zeros(geometry.npages, dtype=bool)
    ppc = geometry.pages_per_chunk
    for start, stop in [(0, ppc), (ppc + 30, ppc + 34), (geometry.npages - 1, geometry.npages)]:
        flags.set_range(start, stop)
        model[start:stop] = True
    return flags, model


@pytest.mark.parametrize("geometry", [PARTIAL, TINY], ids=["partial", "tiny"])
def test_table_api_builds_and_reads_parts(geometry):
    flags, model = _mixed(geometry)
    entries = np.flatnonzero(flags._allocated_mask())
    assert flags._private_at(entries).all() and not flags._private_at(np.array([0])).any()
    chunks, addrs = new_chunks(entries.size, geometry.words_per_chunk,
                               flags._chunks_at(entries))
    counts = flags._shadows()[1][entries]
    rebuilt = PageFlags._from_parts(geometry, flags._full_mask(), entries, chunks, addrs,
                                    counts)
    rebuilt.validate()
    assert rebuilt == flags and rebuilt.count() == int(model.sum())
    assert np.array_equal(rebuilt._chunk_addresses(entries), addrs)
    assert np.array_equal(rebuilt._occupied_mask(), flags._full_mask()
                          | flags._allocated_mask())
    assert np.array_equal(rebuilt._occupied_mask(entries), np.ones(entries.size, bool))
    assert np.array_equal(rebuilt._nonempty_mask(), rebuilt._occupied_mask())
    empty = PageFlags._from_parts(geometry, None, entries[:0], chunks[:0], addrs[:0],
                                  counts[:0])
    empty.validate()
    assert empty.count() == 0


@pytest.mark.parametrize("geometry", [PARTIAL, TINY], ids=["partial", "tiny"])
def test_table_api_fills_frees_and_owns_entries_keeping_the_total(geometry):
    flags, model = _mixed(geometry)
    ppc, last = geometry.pages_per_chunk, geometry.nchunks - 1
    whole = np.array([1, 2])  # a private entry and a None one
    flags._fill_entries(whole)
    model[ppc:3 * ppc] = True
    flags.validate()
    assert_matches(flags, model)
    flags._free_entries(np.array([0, 2, last]))  # FULL, FULL and the (partial) last
    for c in (0, 2, last):
        model[c * ppc:(c + 1) * ppc] = False
    flags.validate()
    assert_matches(flags, model)
    flags.set(last * ppc)
    model[last * ppc] = True
    flags._own_entries(np.array([0, 1, last]))  # None, FULL, private: all private now
    assert flags._private_at(np.array([0, 1, last])).all()
    flags.validate()
    assert_matches(flags, model)
    total = flags.count()
    flags._rewrite_chunks(np.array([0]), np.uint64(2**64 - 1), ppc)
    flags._rewrite_chunks(np.array([1]), np.uint64(0), 0)
    # In place and, as _fill and _free, without the total: the caller keeps it.
    assert flags._private_at(np.array([0, 1])).all() and flags.count() == total
    assert flags.count(0, ppc) == ppc and flags.count(ppc, 2 * ppc) == 0


# --- bulk writes into entries that need chunks: prescan, slabs, honest memory ---------
SLABS = Geometry.from_npages(600 * C + 77)  # enough entries for a slab of 2 MiB and more


def _owners(flags):
    """Distinct objects owning the memory of the map's private chunks."""
    chunks = flags.table[flags._allocated_mask()]
    return {id(c if c.base is None else c.base) for c in chunks}


def _spread_pfns(rng, touched, npfns, geometry=SLABS):
    """``npfns`` random pfns over the first ``touched`` entries, each entry among the
    pfns a prescan samples (so it finds them all)."""
    from pageflags import bitmap

    ppc = geometry.pages_per_chunk
    pfns = rng.integers(0, touched * ppc, npfns)
    sampled = pfns[::bitmap.PRESCAN_STEP]
    assert sampled.size >= touched
    sampled[:touched] = rng.permutation(touched) * ppc + rng.integers(0, ppc, touched)
    return pfns


@pytest.mark.parametrize("touched", [255, 256, 257, 600])
@pytest.mark.parametrize("npfns_delta", [-1, 0, 1])
def test_first_bulk_writes_at_the_slab_and_prescan_thresholds(touched, npfns_delta):
    from pageflags import _chunks, bitmap

    assert _chunks.SLAB_MIN_CHUNKS == 256 and bitmap.PRESCAN_MIN_PFNS == 1 << 16
    rng = np.random.default_rng(touched + npfns_delta)
    pfns = _spread_pfns(rng, touched, bitmap.PRESCAN_MIN_PFNS + npfns_delta)
    model = np.zeros(SLABS.npages, dtype=bool)
    model[pfns] = True
    ppc = SLABS.pages_per_chunk
    slabbed = touched >= _chunks.SLAB_MIN_CHUNKS
    for flags in (PageFlags.from_array(pfns, SLABS), _set_many_new(pfns)):
        flat = FlatPageFlags.from_array(pfns, SLABS)
        assert_matches(flags, model, flat)
        assert flags.stats()["allocated"] == touched
        assert len(_owners(flags)) == (1 if slabbed else touched)
        assert flags.stats()["chunk_bytes"] == touched * SLABS.chunk_bytes

    # clear_many into FULL entries: each becomes a private copy of FULL, then clears.
    flags, flat = PageFlags(SLABS), FlatPageFlags(SLABS)
    for m in (flags, flat):
        m.set_range(0, touched * ppc)
        m.clear_many(pfns)
    assert_matches(flags, ~model & (np.arange(SLABS.npages) < touched * ppc), flat)
    assert flags.stats()["allocated"] == touched and flags.stats()["full"] == 0
    assert len(_owners(flags)) == (1 if slabbed else touched)


def _set_many_new(pfns):
    flags = PageFlags(SLABS)
    flags.set_many(pfns)
    return flags


@pytest.mark.parametrize("value", [True, False])
def test_entries_the_prescan_misses_are_given_chunks_by_the_pass(monkeypatch, value):
    from pageflags import bitmap

    rng = np.random.default_rng(3)
    # 70000 pfns in entries 0-9, and one pfn each in entries 100-139 placed where the
    # one-in-64 sample never looks (no index a multiple of PRESCAN_STEP).
    many = rng.integers(0, 10 * C, 70_000)
    lonely = np.arange(100, 140) * C + 17
    spots = np.arange(40) * bitmap.PRESCAN_STEP + 5
    pfns = np.insert(many, spots - np.arange(40), lonely)
    assert np.array_equal(pfns[spots], lonely)
    allocations = []
    for name in ("_allocate", "_unshare"):
        real = getattr(PageFlags, name)
        monkeypatch.setattr(PageFlags, name,
                            lambda self, nrs, real=real: allocations.append(np.sort(nrs))
                            or real(self, nrs))
    flags, flat = PageFlags(SLABS), FlatPageFlags(SLABS)
    model = np.zeros(SLABS.npages, dtype=bool)
    if not value:
        for m in (flags, flat):
            m.set_range(0, SLABS.npages)
        model[:] = True
    allocations.clear()
    for m in (flags, flat):
        (m.set_many if value else m.clear_many)(pfns)
    model[pfns] = value
    assert_matches(flags, model, flat)
    prescanned, *rest = allocations
    assert prescanned.tolist() == list(range(10))        # the sample found entries 0-9
    assert np.concatenate(rest).tolist() == list(range(100, 140))  # the pass the rest


def test_nbytes_counts_a_slab_until_its_last_row_goes():
    from pageflags import _chunks

    flags = PageFlags(SLABS)
    touched = _chunks.SLAB_MIN_CHUNKS + 44
    flags.set_many(_spread_pfns(np.random.default_rng(9), touched, 1 << 17))
    slab = touched * SLABS.chunk_bytes
    assert len(_owners(flags)) == 1
    empty = flags.stats()["table_bytes"]  # with the table mirror _owners made
    assert flags.nbytes == empty + slab
    for c in range(touched - 1):
        flags.clear_range(c * C, (c + 1) * C)  # frees the entry; the slab stays
        assert flags.nbytes == empty + slab == empty + flags.stats()["chunk_bytes"]
    assert flags.stats()["allocated"] == 1
    last = (touched - 1) * C
    flags.clear_range(last, last + C)
    assert flags.nbytes == empty and flags.stats()["chunk_bytes"] == 0
    flags.validate()


def test_optimize_reports_the_memory_it_gives_back():
    from pageflags import _chunks

    n = _chunks.SLAB_MIN_CHUNKS
    flags = PageFlags(SLABS)
    flags.set_range(0, n * C)
    flags.clear_many(np.arange(n) * C)         # n private copies of FULL: one slab
    flags.set_many(np.arange(n) * C)           # all ones again, still private
    assert flags.stats()["allocated"] == n and len(_owners(flags)) == 1
    before = flags.nbytes
    assert flags.optimize() == before - flags.nbytes == n * SLABS.chunk_bytes
    assert flags.stats()["full"] == n and flags.stats()["allocated"] == 0
    flags.validate()


def test_copy_and_algebra_results_of_many_chunks_match_flat():
    rng = np.random.default_rng(21)
    a_pfns = _spread_pfns(rng, 600, 300_000)
    b_pfns = rng.integers(200 * C, 500 * C, 200_000)
    a, b = PageFlags.from_array(a_pfns, SLABS), PageFlags.from_array(b_pfns, SLABS)
    b.set_range(550 * C, 560 * C)
    fa, fb = FlatPageFlags.from_array(a_pfns, SLABS), FlatPageFlags.from_array(b_pfns, SLABS)
    fb.set_range(550 * C, 560 * C)
    copied = a.copy()
    copied.clear_many(a_pfns[:1000])
    assert a == fa and copied != a
    assert_matches(copied, copied.to_bool(), None)
    for chunk in copied.table[copied._allocated_mask()][:3]:
        with pytest.raises(ValueError, match="WRITEABLE"):
            chunk.setflags(write=True)
    for result, expected in ((a | b, fa | fb), (a & b, fa & fb), (a ^ b, fa ^ fb),
                             (a - b, fa - fb), (~a, ~fa)):
        result.validate()
        assert result == expected
    a |= b
    fa |= fb
    a.validate()
    assert a == fa


def test_put_words_into_many_entries_matches_flat():
    rng = np.random.default_rng(4)
    words = rng.integers(0, 2**63, 300 * C // 64, dtype=np.uint64)
    words[: 2 * C // 64] = 2**64 - 1  # two whole entries become FULL
    words[5 * C // 64: 6 * C // 64] = 0
    for start in (0, 64 * 7, 100 * C):
        flags, flat = PageFlags(SLABS), FlatPageFlags(SLABS)
        flags.set_range(10 * C, 20 * C)
        flat.set_range(10 * C, 20 * C)
        flags.put_words(start, words)
        flat.put_words(start, words)
        flags.validate()
        assert flags == flat


def test_a_second_denser_prescan_finds_entries_with_few_pfns(monkeypatch):
    from pageflags import bitmap

    rng = np.random.default_rng(8)
    # 600 entries with about 110 pfns each: the one-in-64 sample sees each less than
    # twice, misses some, and a second sample finds them before the pass starts.
    pfns = rng.integers(0, 600 * C, bitmap.PRESCAN_MIN_PFNS)
    assert pfns.size // bitmap.PRESCAN_STEP < bitmap.PRESCAN_SEEN * 600
    from pageflags import _kernels

    calls, passes = [], []
    real = PageFlags._allocate
    monkeypatch.setattr(PageFlags, "_allocate",
                        lambda self, nrs: calls.append(np.sort(nrs)) or real(self, nrs))
    real_pass = _kernels.table_write_many
    monkeypatch.setattr(_kernels, "table_write_many",
                        lambda *args: passes.append(args[3]) or real_pass(*args))
    flags = PageFlags(SLABS)
    flags.set_many(pfns)
    first, second = calls       # both prescans,
    assert passes == [0]        # and one pass that never stopped for an entry
    assert np.union1d(first, second).tolist() == list(range(600))
    assert second.size > 0 and np.intersect1d(first, second).size == 0
    model = np.zeros(SLABS.npages, dtype=bool)
    model[pfns] = True
    assert_matches(flags, model, FlatPageFlags.from_array(pfns, SLABS))


@pytest.mark.parametrize("threads", [2, 3, 40])
def test_collection_on_the_thread_pool_matches_the_serial_one(monkeypatch, threads):
    """to_array cut into 4 parts a thread (more parts than set chunks at 40), with
    FULL and private chunks, ranges starting and ending inside chunks, and an
    iter_arrays buffer too small for them all (the kernel then runs serially)."""
    import numba

    from pageflags import bitmap

    g = Geometry(phys_addr_bits=30, page_shift=12, chunk_shift=9)  # 512-page chunks
    rng = np.random.default_rng(threads)
    flags = PageFlags(g)
    flags.set_many(rng.integers(0, g.npages, 3000))
    flags.set_range(5 * 512, 9 * 512)  # FULL entries
    flags.set_range(20 * 512 + 7, 21 * 512 - 3)
    model = flags.to_bool()
    monkeypatch.setattr(bitmap, "PARALLEL_MIN_PFNS", 1)
    monkeypatch.setattr(numba, "get_num_threads", lambda: threads)
    for start, stop in [(0, g.npages), (5 * 512 + 3, 9 * 512 - 1), (100, 101), (7, 7),
                        (20 * 512 + 10, g.npages - 5), (511, 4 * 512 + 1)]:
        want = np.flatnonzero(model[start:stop]) + start
        assert np.array_equal(flags.to_array(start, stop), want), (start, stop)
    parts = list(flags.iter_arrays(max_len=1000))
    assert np.array_equal(np.concatenate(parts), np.flatnonzero(model))
