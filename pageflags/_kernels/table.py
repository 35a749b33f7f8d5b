"""Kernels over a PageFlags table: ranges and pfn arrays read and written, counts,
equality.

A map reaches its chunks through ``addrs``, a ``uint64`` array with one entry per
chunk: 0 (``NULL``) for a ``None`` (all-zero) entry, the data address of the shared
all-ones chunk for ``FULL``, and otherwise the data address of the chunk's own words.
``counts`` holds each entry's set pages; a kernel that changes bits keeps it.
Kernels never allocate: where a write needs an entry to have a chunk of its own
(``None`` to set bits in, ``FULL`` to clear bits from), the caller gives it one first,
or the kernel stops and says so.
"""

from __future__ import annotations

import numpy as np

from .intrinsics import (
    AHEAD,
    NULL,
    ONE,
    U3,
    U6,
    U63,
    chunk_words,
    jit,
    load_word,
    prefetch,
    store_word,
)
from .spans import any_bits, count_bits, popcount_all, write_bits

# --- ranges of pages ---------------------------------------------------------------
# A chunk's pfns are [c << chunk_shift, (c + 1) << chunk_shift); within a range
# [start, stop) each chunk sees the local bit span [lo, hi).

@jit(inline=True)
def local_span(c, start, stop, chunk_shift):
    """Local bits [lo, hi) of chunk ``c`` that pages [start, stop) cover."""
    base = c << chunk_shift
    lo = max(start, base) - base
    hi = min(stop, base + (1 << chunk_shift)) - base
    return lo, hi


#: What :func:`table_range` does over its pages.
RANGE_SET, RANGE_CLEAR, RANGE_COUNT, RANGE_ANY = 0, 1, 2, 3


@jit(inline=True)
def _range_pass(mode, addrs, counts, start, stop, chunk_shift, full_addr):
    """One loop over the entries of pages [start, stop) for every range operation."""
    if start >= stop:
        return 0
    wpc = 1 << (chunk_shift - 6)
    pages_per_chunk = 1 << chunk_shift
    full = np.uint64(full_addr)
    first = start >> chunk_shift
    last = (stop - 1) >> chunk_shift
    if mode == RANGE_SET or mode == RANGE_CLEAR:
        needs_chunk = NULL if mode == RANGE_SET else full
        for c in range(first, last + 1):
            if addrs[c] == needs_chunk:
                return -1
    total = 0
    for c in range(first, last + 1):
        a = addrs[c]
        if a == NULL:  # nothing to clear, count or find (a set saw none above)
            continue
        lo, hi = local_span(c, start, stop, chunk_shift)
        if a == full:  # nothing to set (a clear saw none above)
            if mode == RANGE_COUNT:
                total += hi - lo
            elif mode == RANGE_ANY:
                return 1
        elif mode == RANGE_SET or mode == RANGE_CLEAR:
            n = write_bits(chunk_words(a, wpc), lo, hi, mode == RANGE_SET)
            counts[c] += n if mode == RANGE_SET else -n
            total += n
        elif lo == 0 and hi == pages_per_chunk:  # a whole chunk: its cached count
            if mode == RANGE_COUNT:
                total += counts[c]
            elif counts[c] > 0:
                return 1
        elif mode == RANGE_COUNT:
            total += count_bits(chunk_words(a, wpc), lo, hi)
        elif any_bits(chunk_words(a, wpc), lo, hi):
            return 1
    return total


@jit()
def table_range(mode, addrs, counts, start, stop, chunk_shift, full_addr):
    """Set (``RANGE_SET``) or clear (``RANGE_CLEAR``) pages [start, stop), count the
    set ones (``RANGE_COUNT``) or say whether any is (``RANGE_ANY``: 1 or 0).

    Writes return the pages they changed, ``counts`` following, or -1 with nothing
    written when an entry in the range must first get a chunk of its own.  Counts
    read whole chunks from ``counts``, and ``None`` and ``FULL`` entries are never
    read.
    """
    return _range_pass(mode, addrs, counts, start, stop, chunk_shift, full_addr)


@jit()
def table_set_ranges(addrs, counts, starts, stops, chunk_shift, full_addr):
    """Set pages [starts[i], stops[i]) for every i: pages added, ``counts`` following.

    Every entry the ranges touch must be ``FULL`` or hold a chunk (else -1, with
    the ranges before it set).  One call builds a whole memory map, however many
    ranges it has.
    """
    added = 0
    for i in range(starts.size):
        n = _range_pass(RANGE_SET, addrs, counts, starts[i], stops[i], chunk_shift, full_addr)
        if n < 0:
            return -1
        added += n
    return added


@jit()
def table_range_cover(starts, stops, chunk_shift, whole_chunks, cover):
    """``cover[c]`` = 2 where one range covers whole chunk c, at least 1 where touched."""
    for i in range(starts.size):
        start = starts[i]
        stop = stops[i]
        if start >= stop:
            continue
        for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
            lo, hi = local_span(c, start, stop, chunk_shift)
            whole = lo == 0 and hi == (1 << chunk_shift) and c < whole_chunks
            cover[c] = max(cover[c], 2 if whole else 1)


# --- pfn arrays -------------------------------------------------------------------

@jit()
def table_entries_at(addrs, pfns, first, step, chunk_shift, sought, seen, out):
    """Chunk numbers, once each, of the entries of ``pfns[first::step]`` whose address
    is ``sought`` (NULL or FULL's): the entries a bulk write must first give a chunk.

    ``seen`` is a zeroed bool per entry; returns how many numbers went to ``out``.
    With ``step`` above 1 it is a prescan: a sample that finds, cheaply, the entries
    of pfns that come many to an entry, before one pass writes them all.
    """
    shift = np.uint64(chunk_shift)
    want = np.uint64(sought)
    n = np.uint64(pfns.size)
    stride = np.uint64(step)
    k = 0
    i = np.uint64(first)
    while i < n:
        c = np.uint64(pfns[i]) >> shift
        if addrs[c] == want and not seen[c]:
            seen[c] = True
            out[k] = c
            k += 1
        i += stride
    return k


@jit()
def table_mark_entries(pfns, first, chunk_shift, marks):
    """``marks[c] = True`` for the entry of every pfn of ``pfns[first:]``.

    Branch-free, for many pfns: twice as fast as :func:`table_entries_at`, but
    Python then reads ``marks`` over the whole table.
    """
    shift = np.uint64(chunk_shift)
    n = np.uint64(pfns.size)
    i = np.uint64(first)
    while i < n:
        marks[np.uint64(pfns[i]) >> shift] = True
        i += ONE


@jit(inline=True)
def _word_offset(p, local_mask):
    """Byte offset, in its chunk, of the word that holds page ``p`` (both uint64)."""
    return ((p & local_mask) >> U6) << U3


@jit(inline=True)
def _prefetch_pfn(addrs, pfns, i, last, shift, local_mask):
    """Prefetch the word of the pfn ``PREFETCH_DISTANCE`` places after ``i``
    (uint64, as ``last``, the last index).

    Branch-free: near the end it prefetches the last pfn again, and for a ``None``
    entry an address below one page, which a prefetch never faults on.
    """
    j = i + AHEAD
    q = np.uint64(pfns[j if j < last else last])
    prefetch(addrs[q >> shift] + _word_offset(q, local_mask))


@jit(inline=True)
def _pfn_bits(chunk_shift, pfns):
    """``(shift, local_mask, n, last)`` in uint64 for a loop over ``pfns``."""
    shift = np.uint64(chunk_shift)
    n = np.uint64(pfns.size)
    return shift, (ONE << shift) - ONE, n, n - ONE


# The pfn loops below count in uint64 (``while i < n``): over ``range(first, n)``
# with a ``first`` that LLVM cannot prove non-negative, every index keeps a
# wraparound check, and random set_many ran 25% slower.

@jit(inline=True)
def _write_pass(addrs, counts, pfns, first, chunk_shift, full, value, counted, emptied, e):
    """Set (``value``) or clear pfns ``pfns[first:]`` until one falls in an entry that
    must first get a chunk (None to set, FULL to clear): ``(changed, reached, e)``."""
    shift, local_mask, n, last = _pfn_bits(chunk_shift, pfns)
    stop, done = (NULL, full) if value else (full, NULL)
    changed = 0
    i = np.uint64(first)
    while i < n:
        _prefetch_pfn(addrs, pfns, i, last, shift, local_mask)
        p = np.uint64(pfns[i])
        c = p >> shift
        a = addrs[c]
        if a == stop:
            return changed, np.int64(i), e
        i += ONE
        if a == done:
            continue
        at = a + _word_offset(p, local_mask)
        old = load_word(at)
        bit = ONE << (p & U63)
        new = old | bit if value else old & ~bit
        if not counted:
            store_word(at, new)
        elif new != old:  # a store only for a change: a warm map stays clean
            store_word(at, new)
            changed += 1
            if value:
                counts[c] += 1
            else:
                counts[c] -= 1
                if counts[c] == 0:
                    emptied[e] = c
                    e += 1
    return changed, pfns.size, e


@jit()
def table_write_many(addrs, counts, pfns, first, chunk_shift, full_addr, value, counted,
                     emptied, e):
    """Set (``value``) or clear pfns ``pfns[first:]`` in order, stopping at the first
    in an entry that must first get a chunk (``None`` to set in, ``FULL`` to clear from).

    Returns ``(pages changed, index reached, e)``: ``pfns.size`` when done, else the
    pfn whose entry needs a chunk.  Python gives chunks beforehand to the entries a
    prescan finds, and, should the pass still stop, to the entries of the pfns left
    (:func:`table_entries_at`), then calls again from there.  Chunks a counted clear
    empties go to ``emptied[e:]`` for Python to free, ``e`` coming back past them.
    With ``counted`` false, ``counts`` and the pages changed are left for
    :func:`table_recount` (cheaper when the pfns outnumber the chunks' words).
    """
    full = np.uint64(full_addr)
    # Four loops, so each carries only its own work (the uncounted ones no counting).
    if value:
        if counted:
            return _write_pass(addrs, counts, pfns, first, chunk_shift, full, True, True,
                               emptied, e)
        return _write_pass(addrs, counts, pfns, first, chunk_shift, full, True, False,
                           emptied, e)
    if counted:
        return _write_pass(addrs, counts, pfns, first, chunk_shift, full, False, True,
                           emptied, e)
    return _write_pass(addrs, counts, pfns, first, chunk_shift, full, False, False, emptied, e)


@jit()
def table_test_many(addrs, pfns, chunk_shift, full_addr, out):
    """``out[i] = page pfns[i] is set``, branching on the entry kind.

    Best when most pfns fall in one kind of entry (sparse spaces: mostly ``None``):
    the predicted branch skips waiting for the entry at all.
    """
    shift, local_mask, n, last = _pfn_bits(chunk_shift, pfns)
    full = np.uint64(full_addr)
    i = np.uint64(0)
    while i < n:
        _prefetch_pfn(addrs, pfns, i, last, shift, local_mask)
        p = np.uint64(pfns[i])
        a = addrs[p >> shift]
        if a == NULL:
            out[i] = False
        elif a == full:
            out[i] = True
        else:
            word = load_word(a + _word_offset(p, local_mask))
            out[i] = ((word >> (p & U63)) & ONE) != NULL
        i += ONE


@jit()
def table_test_many_mixed(addrs, pfns, chunk_shift, zero_addr, out):
    """``out[i] = page pfns[i] is set``, without branching on the entry kind.

    A ``None`` entry reads the shared zero chunk at ``zero_addr`` and a ``FULL`` one
    the all-ones chunk, so pfns mixing ``None`` and ``FULL`` entries (hotplug layouts)
    cost no mispredicted branches: 3x faster there than :func:`table_test_many`,
    1.5x slower where nearly every pfn hits ``None``.
    """
    shift, local_mask, n, last = _pfn_bits(chunk_shift, pfns)
    zero = np.uint64(zero_addr)
    i = np.uint64(0)
    while i < n:
        j = i + AHEAD
        q = np.uint64(pfns[j if j < last else last])
        prefetch(_word_address(addrs, q, shift, local_mask, zero))
        p = np.uint64(pfns[i])
        word = load_word(_word_address(addrs, p, shift, local_mask, zero))
        out[i] = ((word >> (p & U63)) & ONE) != NULL
        i += ONE


@jit(inline=True)
def _word_address(addrs, p, shift, local_mask, zero):
    """Address of the word holding page ``p``, in the zero chunk for a NULL entry
    (every argument uint64)."""
    a = addrs[p >> shift]
    a = a if a != NULL else zero
    return a + _word_offset(p, local_mask)


# --- counts and equality ------------------------------------------------------------

@jit()
def table_popcounts(addrs, chunk_shift, out):
    """``out[c]`` = popcount of chunk c's data (0 for NULL), read from memory."""
    wpc = 1 << (chunk_shift - 6)
    for c in range(addrs.size):
        a = addrs[c]
        if a == NULL:
            out[c] = 0
            continue
        out[c] = popcount_all(chunk_words(a, wpc))


@jit()
def table_recount(addrs, counts, chunk_shift, full_addr):
    """Set every private chunk's count from its bits; return the map's total."""
    wpc = 1 << (chunk_shift - 6)
    total = 0
    for c in range(addrs.size):
        a = addrs[c]
        if a != NULL and a != full_addr:
            counts[c] = popcount_all(chunk_words(a, wpc))
        total += counts[c]
    return total


@jit()
def table_equal(addrs_a, counts_a, addrs_b, counts_b, chunk_shift):
    """Whether two tables of one geometry hold the same bits.

    Equal counts of 0 or of a whole chunk decide a chunk without reading it.
    """
    wpc = 1 << (chunk_shift - 6)
    pages_per_chunk = 1 << chunk_shift
    for c in range(addrs_a.size):
        n = counts_a[c]
        if n != counts_b[c]:
            return False
        if n == 0 or n == pages_per_chunk or addrs_a[c] == addrs_b[c]:
            continue
        a = chunk_words(addrs_a[c], wpc)
        b = chunk_words(addrs_b[c], wpc)
        for i in range(wpc):
            if a[i] != b[i]:
                return False
    return True


@jit()
def table_equal_flat(addrs, chunk_shift, words):
    """Whether a table holds the same bits as the flat bitmap ``words``."""
    wpc = 1 << (chunk_shift - 6)
    for c in range(addrs.size):
        base = c * wpc
        n = min(wpc, words.size - base)
        a = addrs[c]
        if a == NULL:
            for i in range(n):
                if words[base + i] != NULL:
                    return False
        else:
            chunk = chunk_words(a, wpc)
            for i in range(n):
                if words[base + i] != chunk[i]:
                    return False
    return True
