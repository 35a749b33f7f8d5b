"""Numba kernels for live page flags: flag words to per-bit map words and back,
counting distinct words, and decoding pagemap entries.

Plain arrays and ints only, made by the package's lazy ``jit`` and cached.

Flag words become map words run by run (:func:`stream_words`): pages of one kind
come in runs (on a live 25 GiB machine, 71 thousand runs of 6.5 million entries),
and a run of equal words sets the same span in the map of each bit it has.  Back
from maps to words, a flag word per page and a map per bit are the two sides of a
64 x 64 bit matrix per group of 64 pages, which :func:`_transpose64` turns around
in six rounds of 32 swaps of masked halves.

Distinct words are counted in an open-addressing table (linear probing,
multiplicative hashing) of ``(word, label)`` keys, the label being a place (a node,
a block) or 0.  It grows before it is half full, so a probe ends quickly; equal
neighbours are counted as one run first, as pages of one kind come in runs.
"""

from __future__ import annotations

import numpy as np

from .intrinsics import jit, popcount

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LABEL_MIX = np.uint64(0xC2B2AE3D27D4EB4F)
_ZERO = np.uint64(0)
_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)

# Pagemap entries: pfn in bits 0-54, then soft-dirty (55), exclusive (56),
# file page or shared anon (61), swapped (62), present (63).
PM_PFN_MASK = np.uint64((1 << 55) - 1)
PM_PRESENT = np.uint64(1 << 63)


@jit(inline=True)
def _transpose64(a):
    """Transpose the 64 x 64 bit matrix ``a`` in place: bit j of a[i] <-> bit i of a[j]."""
    j = 32
    m = np.uint64(0x0000_0000_FFFF_FFFF)
    while j != 0:
        sj = np.uint64(j)
        k = 0
        while k < 64:
            t = ((a[k] >> sj) ^ a[k + j]) & m
            a[k] ^= t << sj
            a[k + j] ^= t
            k = (k + j + 1) & ~j
        j >>= 1
        m ^= m << np.uint64(j)


@jit()
def bits_to_words(packed, bits, ngroups, out):
    """The inverse of :func:`words_to_bits`: ``packed[k]`` is bit ``bits[k]``'s map
    words; entry ``g * 64 + i`` of ``out`` gets the word they make for that page."""
    a = np.empty(64, dtype=np.uint64)
    for g in range(ngroups):
        union = _ZERO
        for b in range(64):
            a[b] = _ZERO
        for k in range(bits.size):
            w = packed[k, g]
            a[bits[k]] = w
            union |= w
        base = g * 64
        if union == _ZERO:
            for i in range(64):
                out[base + i] = _ZERO
            continue
        _transpose64(a)
        for i in range(64):
            out[base + i] = a[i]


@jit(inline=True)
def _slot(word, label, shift):
    return np.int64(((word ^ (np.uint64(label) * _LABEL_MIX)) * _GOLDEN) >> np.uint64(shift))


@jit()
def new_table(capacity):
    """An empty table of ``capacity`` (a power of two) slots: words, labels, pages
    and an occupied flag per slot."""
    return (np.zeros(capacity, dtype=np.uint64), np.zeros(capacity, dtype=np.int64),
            np.zeros(capacity, dtype=np.int64), np.zeros(capacity, dtype=np.bool_))


@jit(inline=True)
def _shift_of(capacity):
    shift = 64
    c = capacity
    while c > 1:
        c >>= 1
        shift -= 1
    return shift


@jit(inline=True)
def _insert(keys, labels, counts, used, word, label, pages, shift):
    """Add ``pages`` to ``(word, label)``; returns 1 if the key is new, else 0."""
    mask = keys.size - 1
    s = _slot(word, label, shift)
    while used[s]:
        if keys[s] == word and labels[s] == label:
            counts[s] += pages
            return 0
        s = (s + 1) & mask
    used[s] = True
    keys[s] = word
    labels[s] = label
    counts[s] = pages
    return 1


@jit()
def _grown(keys, labels, counts, used):
    capacity = keys.size * 2
    nk, nl, nc, nu = new_table(capacity)
    shift = _shift_of(capacity)
    for s in range(keys.size):
        if used[s]:
            _insert(nk, nl, nc, nu, keys[s], labels[s], counts[s], shift)
    return nk, nl, nc, nu


@jit(inline=True)
def _count_run(words, i, stop, label, keys, labels, counts, used, nused):
    """Count the run of words equal to ``words[i]`` from ``i`` (before ``stop``):
    returns where it ends, then the table (grown when it would be half full) and its
    number of keys."""
    w = words[i]
    j = i + 1
    while j < stop and words[j] == w:
        j += 1
    if 2 * (nused + 1) > keys.size:
        keys, labels, counts, used = _grown(keys, labels, counts, used)
    nused += _insert(keys, labels, counts, used, w, label, j - i, _shift_of(keys.size))
    return j, keys, labels, counts, used, nused


@jit()
def count_words(words, lo, hi, label, keys, labels, counts, used, nused):
    """Count the entries ``words[lo:hi]`` by ``(word, label)`` into the table.

    Returns the table (a larger one when it grew) and its number of keys.
    """
    i = lo
    while i < hi:
        i, keys, labels, counts, used, nused = _count_run(words, i, hi, label, keys, labels,
                                                          counts, used, nused)
    return keys, labels, counts, used, nused


@jit(inline=True)
def _fill(row, i, j):
    """Set bits ``[i, j)`` of the packed words ``row`` (``i < j``)."""
    wi = i >> 6
    wj = (j - 1) >> 6
    lo = _ONES << np.uint64(i & 63)
    hi = _ONES >> np.uint64(63 - ((j - 1) & 63))
    if wi == wj:
        row[wi] |= lo & hi
        return
    row[wi] |= lo
    for k in range(wi + 1, wj):
        row[k] = _ONES
    row[wj] |= hi


@jit()
def stream_words(words, n, packed, keys, labels, counts, used, nused):
    """One buffer of a kpageflags read: the map words of every bit that occurs in
    ``words[:n]`` and the count of each distinct word (label 0), in one pass.

    Bit ``i`` of ``packed[b, g]`` becomes bit ``b`` of entry ``g * 64 + i``, for the
    rows of bits that occur (others are left as they were).  Work is per run of
    equal words, as pages of one kind come in runs: a table insert and, for each
    bit set, a span of whole words.  Returns the bits that occur, then the table
    and its number of keys."""
    ngroups = (n + 63) // 64
    touched = _ZERO
    i = 0
    while i < n:
        w = words[i]
        j, keys, labels, counts, used, nused = _count_run(words, i, n, 0, keys, labels,
                                                          counts, used, nused)
        rest = w
        while rest != _ZERO:
            low = rest & (~rest + np.uint64(1))
            b = popcount(low - np.uint64(1))
            rest ^= low
            if touched & low == _ZERO:
                touched |= low
                for g in range(ngroups):
                    packed[b, g] = _ZERO
            _fill(packed[b], i, j)
        i = j
    return touched, keys, labels, counts, used, nused


@jit()
def compare_to_bits(values, n, value, equal, greater):
    """Bit ``i`` of ``equal[g]`` / ``greater[g]``: whether entry ``g * 64 + i`` of
    ``values[:n]`` equals / exceeds ``value``.  Returns how many exceed it."""
    ngroups = (n + 63) // 64
    above = 0
    for g in range(ngroups):
        base = g * 64
        eq = _ZERO
        gt = _ZERO
        for i in range(min(64, n - base)):
            v = values[base + i]
            bit = np.uint64(1) << np.uint64(i)
            if v == value:
                eq |= bit
            elif v > value:
                gt |= bit
                above += 1
        equal[g] = eq
        greater[g] = gt
    return above


@jit()
def pagemap_present(entries, n, pfns, flags):
    """The pfns of the present entries of ``entries[:n]`` into ``pfns`` and their
    bits 55-63 into ``flags``.  Returns how many, and how many show pfn 0 (the
    kernel hides pfns from readers without CAP_SYS_ADMIN)."""
    k = 0
    zero = 0
    for i in range(n):
        e = entries[i]
        if e & PM_PRESENT:
            pfn = e & PM_PFN_MASK
            if pfn == _ZERO:
                zero += 1
            pfns[k] = np.int64(pfn)
            flags[k] = e >> np.uint64(55)
            k += 1
    return k, zero


@jit()
def count_segments(words, base, n, mask, use_mask, seg_lo, seg_hi, seg_label, keys, labels,
                   counts, used, nused):
    """Count ``words[:n]`` (the pages ``[base, base + n)``) by ``(word, label)``, one
    label per segment ``[seg_lo[s], seg_hi[s])`` of pfns (parts outside the window
    are skipped).  With ``use_mask``, only pages whose bit is set in ``mask`` (the
    window's map words) are counted.  Returns the table and its number of keys."""
    for s in range(seg_lo.size):
        lo = max(seg_lo[s] - base, 0)
        hi = min(seg_hi[s] - base, n)
        if lo >= hi:
            continue
        label = seg_label[s]
        if not use_mask:
            keys, labels, counts, used, nused = count_words(words, lo, hi, label, keys,
                                                            labels, counts, used, nused)
            continue
        i = lo
        while i < hi:
            w = mask[i >> 6] >> np.uint64(i & 63)
            if w == _ZERO:  # nothing more in this mask word
                i = (i | 63) + 1
                continue
            if w & np.uint64(1) == _ZERO:
                i += 1
                continue
            j = i + 1
            while j < hi and (mask[j >> 6] >> np.uint64(j & 63)) & np.uint64(1):
                j += 1
            keys, labels, counts, used, nused = count_words(words, i, j, label, keys,
                                                            labels, counts, used, nused)
            i = j
    return keys, labels, counts, used, nused
