"""Kernels over one span of words: bit offsets [start, stop) of a ``uint64`` array.

A flat bitmap is one span, so its kernels are these; the two-level kernels call the
same ones once per chunk (``table.py``, ``scans.py``), so both maps implement one rule
for one operation.  Also here: the flat bitmap's pfn-array kernels, and the check that
every pfn of an array lies in the map.
"""

from __future__ import annotations

import numpy as np

from .intrinsics import (
    AHEAD,
    ALL_ONES,
    NULL,
    ONE,
    U2,
    U3,
    U4,
    U6,
    U63,
    U64,
    as_unsigned,
    ctlz,
    cttz,
    jit,
    popcount,
    prefetch,
)


@jit(inline=True)
def _edge_masks(start, stop):
    """First word, last word and their masks for bits [start, stop), stop > start."""
    first = start >> 6
    last = (stop - 1) >> 6
    first_mask = ALL_ONES << np.uint64(start & 63)
    last_mask = ALL_ONES >> np.uint64(63 - ((stop - 1) & 63))
    if first == last:
        first_mask &= last_mask
        last_mask = first_mask
    return first, last, first_mask, last_mask


# Inner loops run over a slice: indexing ``words[i]`` with a signed ``i`` that LLVM
# cannot prove non-negative keeps Numba's wraparound check and blocks vectorisation
# (4 GB/s instead of 25 GB/s for a popcount).

@jit(inline=True)
def popcount_all(words):
    """Set bits in ``words``."""
    total = 0
    for i in range(words.size):
        total += popcount(words[i])
    return total


@jit()
def write_bits(words, start, stop, value):
    """Set (``value`` true or 1) or clear bits [start, stop) of ``words``; return how many
    changed."""
    if start >= stop:
        return 0
    first, last, first_mask, last_mask = _edge_masks(start, stop)
    fill = ALL_ONES if value else NULL
    # ``mask & (w ^ fill)``: the bits under the mask that the write changes.
    flips = first_mask & (words[first] ^ fill)
    changed = popcount(flips)
    words[first] ^= flips
    if last != first:
        inner = words[first + 1:last]
        ones = popcount_all(inner)
        # Constant fills, one per branch: LLVM writes them as a memset.
        if value:
            changed += 64 * inner.size - ones
            inner[:] = ALL_ONES
        else:
            changed += ones
            inner[:] = NULL
        flips = last_mask & (words[last] ^ fill)
        changed += popcount(flips)
        words[last] ^= flips
    return changed


@jit()
def count_bits(words, start, stop):
    """Set bits among bits [start, stop) of ``words``."""
    if start >= stop:
        return 0
    first, last, first_mask, last_mask = _edge_masks(start, stop)
    total = popcount(first_mask & words[first])
    if last != first:
        total += popcount_all(words[first + 1:last])
        total += popcount(last_mask & words[last])
    return total


@jit()
def any_bits(words, start, stop):
    """Whether any of bits [start, stop) of ``words`` is set."""
    if start >= stop:
        return False
    first, last, first_mask, last_mask = _edge_masks(start, stop)
    if words[first] & first_mask:
        return True
    if last != first:
        inner = words[first + 1:last]
        for i in range(inner.size):
            if inner[i]:
                return True
        if words[last] & last_mask:
            return True
    return False


@jit()
def next_bit(words, lo, hi, flip):
    """Lowest bit in [lo, hi) of ``words ^ flip`` that is set, or -1.

    ``flip`` is 0 to find a set bit and all ones to find a clear one.
    """
    if lo >= hi:
        return -1
    i = lo >> 6
    last = (hi - 1) >> 6
    w = (words[i] ^ flip) & (ALL_ONES << np.uint64(lo & 63))
    while True:
        if w:
            p = (i << 6) + cttz(w)
            return p if p < hi else -1
        i += 1
        if i > last:
            return -1
        w = words[i] ^ flip


@jit()
def prev_set_bit(words, lo, hi):
    """Highest set bit in [lo, hi) of ``words``, or -1."""
    if lo >= hi:
        return -1
    i = (hi - 1) >> 6
    first = lo >> 6
    w = words[i] & (ALL_ONES >> np.uint64(63 - ((hi - 1) & 63)))
    while True:
        if w:
            p = (i << 6) + 63 - ctlz(w)
            return p if p >= lo else -1
        i -= 1
        if i < first:
            return -1
        w = words[i]


@jit()
def collect_set(words, lo, hi, base, out, k):
    """Append ``base + bit`` for the set bits in [lo, hi) to ``out[k:]`` while room.

    Returns ``(k, resume)``: the new fill level and the local bit to resume from
    (``hi`` when every set bit fitted).
    """
    if lo >= hi:
        return k, hi
    i = lo >> 6
    last = (hi - 1) >> 6
    last_mask = ALL_ONES >> np.uint64(63 - ((hi - 1) & 63))
    w = words[i] & (ALL_ONES << np.uint64(lo & 63))
    room = out.size
    while True:
        if i == last:
            w &= last_mask
        if room - k >= 64:  # room for a whole word and the positions written past it
            k = np.int64(_collect_word(w, np.uint64(base + (i << 6)), as_unsigned(out),
                                       np.uint64(k)))
            w = NULL
        while w:
            bit = (i << 6) + cttz(w)
            if k == room:
                return k, bit
            out[k] = base + bit
            k += 1
            w &= w - ONE
        i += 1
        if i > last:
            return k, hi
        w = words[i]


@jit(inline=True)
def _collect_word(w, pfn, out, k):
    """Append ``pfn + bit`` for the set bits of word ``w`` to ``out[k:]``; return k.

    Positions go four at a time, past the word's last set bit too (cttz(0) is 64),
    so the loop exit rarely mispredicts on sparse words (CRoaring's
    bitset_extract_setbits does the same): ``out`` needs room for k + 4 past them.
    ``pfn``, ``k`` and ``out`` (a view of the int64 result) are uint64: with signed
    positions every store kept a wraparound check, and to_array ran 1.6x slower.
    """
    n = np.uint64(popcount(w))
    done = np.uint64(0)
    while True:
        out[k + done] = pfn + np.uint64(cttz(w))
        w &= w - ONE
        out[k + done + ONE] = pfn + np.uint64(cttz(w))
        w &= w - ONE
        out[k + done + U2] = pfn + np.uint64(cttz(w))
        w &= w - ONE
        out[k + done + U3] = pfn + np.uint64(cttz(w))
        w &= w - ONE
        done += U4
        if done >= n:
            break
    return k + n


@jit(inline=True)
def collect_all(words, base, out, k):
    """Append ``base + bit`` for every set bit of ``words`` to ``out[k:]``; return k.

    The caller guarantees room for every set bit plus 4 (:func:`_collect_word`; a
    last word with no bit set still writes four), so no word pays a room check.
    """
    values = as_unsigned(out)
    at = np.uint64(k)
    pfn = np.uint64(base)
    for i in range(words.size):
        at = _collect_word(words[i], pfn, values, at)
        pfn += U64
    return np.int64(at)


@jit()
def select_bit(words, rank):
    """Local position of the set bit with ``rank`` set bits before it, or -1."""
    for i in range(words.size):
        n = popcount(words[i])
        if rank < n:
            w = words[i]
            for _ in range(rank):
                w &= w - ONE
            return (i << 6) + cttz(w)
        rank -= n
    return -1


@jit(inline=True)
def end_run(starts, stops, k, run_start, run_stop, fill):
    """Record run k (when ``fill``); returns the run count after it."""
    if fill:
        starts[k] = run_start
        stops[k] = run_stop
    return k + 1


@jit()
def runs_in_bits(words, lo, hi, base, in_run, run_start, starts, stops, k, fill):
    """Extend the run scan over bits [lo, hi) of ``words`` (pfn = base + bit).

    The state ``(in_run, run_start, k)`` carries across calls so a run may span
    chunks; a run that ends is recorded at ``starts[k], stops[k]`` when ``fill``.
    """
    pos = lo
    while pos < hi:
        word_end = min(((pos >> 6) + 1) << 6, hi)
        w = words[pos >> 6]
        if in_run:
            w = ~w
        w >>= np.uint64(pos & 63)
        if w == 0:
            pos = word_end
            continue
        pos += cttz(w)
        if pos >= word_end:
            pos = word_end
            continue
        if in_run:
            k = end_run(starts, stops, k, run_start, base + pos, fill)
        else:
            run_start = base + pos
        in_run = not in_run
    return in_run, run_start, k


# --- the flat bitmap: ranges and pfn arrays ---------------------------------------

@jit()
def flat_runs(words, start, stop, starts, stops, fill):
    """Maximal runs of set pages in [start, stop); returns how many (filled if asked)."""
    in_run, run_start, k = runs_in_bits(words, start, stop, 0, False, 0, starts, stops,
                                         0, fill)
    return end_run(starts, stops, k, run_start, stop, fill) if in_run else k


@jit()
def flat_set_ranges(words, starts, stops):
    """Set bits [starts[i], stops[i]) of ``words`` for every i."""
    for i in range(starts.size):
        write_bits(words, starts[i], stops[i], True)


# The flat bulk kernels prefetch as the two-level ones do, so that comparisons with
# a flat bitmap measure the table and not a hint one side lacks.

SET, CLEAR, TEST = 0, 1, 2


@jit(inline=True)
def _prefetch_flat(base, pfns, i, last):
    """Prefetch the word of the pfn ``PREFETCH_DISTANCE`` places after ``i``."""
    j = i + AHEAD
    q = np.uint64(pfns[j if j < last else last])
    prefetch(base + ((q >> U6) << U3))


@jit(inline=True)
def _flat_pass(words, pfns, mode, out):
    """One prefetching pass over ``pfns``: set, clear or test (into ``out``) each bit."""
    base = np.uint64(words.ctypes.data)
    n = np.uint64(pfns.size)
    i = np.uint64(0)
    while i < n:
        _prefetch_flat(base, pfns, i, n - ONE)
        p = np.uint64(pfns[i])
        bit = ONE << (p & U63)
        if mode == SET:
            words[p >> U6] |= bit
        elif mode == CLEAR:
            words[p >> U6] &= ~bit
        else:
            out[i] = (words[p >> U6] & bit) != NULL
        i += ONE


@jit()
def flat_write_many(words, pfns, value):
    """Set (``value``) or clear bit ``p`` for every p in ``pfns``."""
    if value:
        _flat_pass(words, pfns, SET, words)
    else:
        _flat_pass(words, pfns, CLEAR, words)


@jit()
def flat_test_many(words, pfns, out):
    """``out[i] = bit pfns[i]``."""
    _flat_pass(words, pfns, TEST, out)


# --- argument checks that must see every element -----------------------------------

@jit()
def first_out_of_range(pfns, npages):
    """Index of the first pfn outside [0, npages), or -1."""
    for i in range(pfns.size):
        p = pfns[i]
        if p < 0 or p >= npages:
            return i
    return -1
