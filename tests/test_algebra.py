"""&, |, ^, -, ~ and their in-place forms, and counts of combinations."""

from __future__ import annotations

import operator
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from _mapkit import BIG, SMALL, Triple, check_same, entry_kinds, triple_pairs
from hypothesis import given, settings
from hypothesis import strategies as st

from pageflags import FlatPageFlags, Geometry, PageFlags, bitmap

OPS = {
    "and": (operator.and_, operator.iand, np.logical_and),
    "or": (operator.or_, operator.ior, np.logical_or),
    "xor": (operator.xor, operator.ixor, np.logical_xor),
    "andnot": (operator.sub, operator.isub, lambda a, b: a & ~b),
}


def pair_by_kind(g: Geometry) -> tuple[Triple, Triple]:
    """a's and b's entries pair every kind with every kind: None, FULL, private.

    Chunk c of a has kind c // 3 and of b kind c % 3, over 9 complete chunks plus a
    partial last one that is private in a and None in b.
    """
    a, b = Triple(g), Triple(g)
    ppc = g.pages_per_chunk
    for c in range(9):
        for t, kind in ((a, c // 3), (b, c % 3)):
            lo = c * ppc
            if kind == 1:
                t.set_range(lo, lo + ppc)
            elif kind == 2:
                t.set_many([lo, lo + 63, lo + ppc - 1] if t is a else [lo + 63, lo + 64])
    a.set_many([g.npages - 1])
    return a, b


PAIRED = Geometry.from_npages(9 * 128 + 50, chunk_shift=7)
N, F, C = "none", "full", "chunk"
# Entry kinds of the results over the 9 pairs (a, b) = (N,N) (N,F) (N,C) (F,N) ...
WANT_KINDS = {
    "and": [N, N, N, N, F, C, N, C, C],
    "or": [N, F, C, F, F, F, C, F, C],
    "xor": [N, F, C, F, N, C, C, C, C],
    "andnot": [N, N, N, F, N, C, C, N, C],
}


@pytest.mark.parametrize("name", OPS)
def test_results_keep_none_and_full_entries(name):
    op, iop, model_op = OPS[name]
    a, b = pair_by_kind(PAIRED)
    assert list(entry_kinds(a.flags)[:9]) == [N, N, N, F, F, F, C, C, C]
    assert list(entry_kinds(b.flags)[:9]) == [N, F, C] * 3
    want = model_op(a.model, b.model)
    result = op(a.flags, b.flags)
    check_same(result, want)
    assert list(entry_kinds(result)[:9]) == WANT_KINDS[name]
    check_same(op(a.flat, b.flat), want)
    # FULL & x copies x's chunk: the result owns its chunks.
    if name == "and":
        assert result.table[5] is not b.flags.table[5]
    iop(a.flags, b.flags)
    check_same(a.flags, want)
    assert list(entry_kinds(a.flags)[:9]) == WANT_KINDS[name]
    iop(a.flat, b.flat)
    check_same(a.flat, want)
    check_same(b.flags, b.model)  # the right operand is untouched


def test_chunks_that_cancel_become_none():
    a = PageFlags(BIG)
    a.set_many([5, 40_000])
    b = a.copy()
    b.set(6)
    result = a & ~b  # nothing: chunks come out all zero
    check_same(result, np.zeros(BIG.npages, dtype=bool))
    assert all(e is None for e in result.table)
    a ^= a.copy()
    assert all(e is None for e in a.table) and a.count() == 0


@pytest.mark.parametrize("g", [BIG, SMALL, Geometry.from_npages(4 * 128, chunk_shift=7)])
def test_invert_stops_at_npages(g):
    for cls in (PageFlags, FlatPageFlags):
        empty = cls(g)
        inverted = ~empty
        check_same(inverted, np.ones(g.npages, dtype=bool))
        check_same(~inverted, np.zeros(g.npages, dtype=bool))
    kinds = entry_kinds(~PageFlags(g))
    whole = g.npages // g.pages_per_chunk
    assert (kinds[:whole] == F).all() and (kinds[whole:] == C).all()


@settings(max_examples=50, deadline=None)
@given(pair=triple_pairs(), name=st.sampled_from(sorted(OPS)))
def test_algebra_matches_model(pair, name):
    a, b = pair
    op, iop, model_op = OPS[name]
    want = model_op(a.model, b.model)
    check_same(op(a.flags, b.flags), want)
    check_same(op(a.flat, b.flat), want)
    check_same(~a.flags, ~a.model)
    check_same(~a.flat, ~a.model)
    iop(a.flags, b.flags)
    iop(a.flat, b.flat)
    check_same(a.flags, want)
    check_same(a.flat, want)
    check_same(b.flags, b.model)


@settings(max_examples=50, deadline=None)
@given(pair=triple_pairs())
def test_algebra_identities(pair):
    a, b = pair[0].flags, pair[1].flags
    assert a ^ b == (a | b) - (a & b)
    assert ~(a | b) == ~a & ~b
    assert a - b == a & ~b
    assert ~~a == a


@settings(max_examples=50, deadline=None)
@given(pair=triple_pairs())
def test_counts_without_building(pair):
    a, b = pair
    m, n = a.model, b.model
    for x, y in ((a.flags, b.flags), (a.flat, b.flat)):
        assert x.count_and(y) == (x & y).count() == int((m & n).sum())
        assert x.count_or(y) == (x | y).count() == int((m | n).sum())
        assert x.count_xor(y) == (x ^ y).count() == int((m ^ n).sum())
        assert x.count_andnot(y) == (x - y).count() == int((m & ~n).sum())
        assert x.intersects(y) == bool((m & n).any())
        assert x.issubset(y) == bool(not (m & ~n).any())
        assert x.issubset(x | y) and (x & y).issubset(y)


def test_in_place_on_itself():
    for name, (_, iop, model_op) in OPS.items():
        t = pair_by_kind(PAIRED)[0]
        result = iop(t.flags, t.flags)
        assert result is t.flags
        check_same(t.flags, model_op(t.model, t.model)), name


def test_in_place_reuses_own_chunks():
    a = PageFlags(BIG)
    a.set_many([1, 2])
    b = PageFlags(BIG)
    b.set_many([2, 3])
    chunk = a.table[0]
    a |= b
    assert a.table[0] is chunk and a.to_array().tolist() == [1, 2, 3]


@pytest.mark.parametrize("cls", [PageFlags, FlatPageFlags])
def test_bad_operands_change_nothing(cls):
    a = cls(BIG)
    a.set_many([1, 40_000])
    before = a.copy()
    other_type = FlatPageFlags(BIG) if cls is PageFlags else PageFlags(BIG)
    other_geometry = cls(Geometry.from_npages(BIG.npages + 1))
    for op in (operator.and_, operator.or_, operator.xor, operator.sub, operator.iand,
               operator.ior, operator.ixor, operator.isub):
        with pytest.raises(TypeError):
            op(a, other_type)
        with pytest.raises(ValueError):
            op(a, other_geometry)
        with pytest.raises(TypeError):
            op(a, 3)
        with pytest.raises(TypeError):
            op(a, np.ones(BIG.npages, dtype=bool))
    for count in (a.count_and, a.count_or, a.count_xor, a.count_andnot, a.intersects,
                  a.issubset):
        with pytest.raises(TypeError):
            count(other_type)
        with pytest.raises(ValueError):
            count(other_geometry)
        with pytest.raises(TypeError):
            count(None)
    assert a == before
    a.validate()


def test_sparse_algebra_over_a_huge_space():
    g = Geometry()  # 2**34 pages: a flat model would take 2 GiB
    a, b = PageFlags(g), PageFlags(g)
    a.set_many([5, 1 << 33, g.npages - 1])
    b.set_range(0, 1 << 20)
    b.set(g.npages - 1)
    assert (a & b).to_array().tolist() == [5, g.npages - 1]
    assert (a | b).count() == (1 << 20) + 2
    assert a.count_and(b) == 2 and a.count_xor(b) == 1 << 20
    assert (a - b).to_array().tolist() == [1 << 33]
    inverted = ~a
    inverted.validate()
    assert inverted.count() == g.npages - 3 and inverted.stats()["allocated"] == 3


@pytest.mark.parametrize("name", OPS)
def test_parallel_kernel_agrees_and_workers_run_serial(monkeypatch, name):
    op, iop, model_op = OPS[name]
    a, b = pair_by_kind(PAIRED)
    want = model_op(a.model, b.model)
    monkeypatch.setattr(bitmap, "PARALLEL_MIN_CHUNKS", 1)
    check_same(op(a.flags, b.flags), want)
    check_same(~a.flags, ~a.model)

    def in_worker(_: int) -> PageFlags:
        assert threading.current_thread() is not threading.main_thread()
        return op(a.flags, b.flags)

    with ThreadPoolExecutor(2) as pool:
        for result in pool.map(in_worker, range(4)):
            check_same(result, want)
    iop(a.flags, b.flags)
    check_same(a.flags, want)


@pytest.mark.parametrize("iop", [operator.isub, operator.ixor])
def test_in_place_result_that_cancels_a_full_entry(iop):
    a = PageFlags(BIG)
    a.set_range(0, 32768)  # FULL
    b = PageFlags(BIG)
    b.set_range(0, 32768)
    b.clear(0)
    b.set(0)  # a private chunk with every bit set
    assert a.table[0] is a.FULL and b.table[0] is not b.FULL
    iop(a, b)
    check_same(a, np.zeros(BIG.npages, dtype=bool))
    assert a.table[0] is None
