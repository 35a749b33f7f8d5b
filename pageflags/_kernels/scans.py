"""Kernels that scan a PageFlags table: next and previous bit, collection into
arrays, select, runs.

``occupied`` is a bitmap over chunks (bit c set when entry c is not ``None``), so
scans cross the holes of a sparse space 64 entries per word.  ``None`` and ``FULL``
entries answer without being read.
"""

from __future__ import annotations

import numba
import numpy as np

from .intrinsics import NULL, ONE, chunk_words, jit
from .spans import (
    collect_all,
    collect_set,
    count_bits,
    end_run,
    next_bit,
    prev_set_bit,
    runs_in_bits,
    select_bit,
)
from .table import local_span


@jit()
def table_occupy(addrs, occupied, chunk_nrs):
    """Refresh bit c of ``occupied`` from ``addrs[c]`` for each c in ``chunk_nrs``."""
    for j in range(chunk_nrs.size):
        c = chunk_nrs[j]
        bit = ONE << np.uint64(c & 63)
        if addrs[c] == NULL:
            occupied[c >> 6] &= ~bit
        else:
            occupied[c >> 6] |= bit


@jit()
def table_find_next(addrs, occupied, start, stop, chunk_shift, full_addr, flip):
    """Lowest pfn in [start, stop) whose bit is set (``flip`` 0) or clear (all ones),
    or -1.

    Entries that cannot hold the bit sought are skipped unread: None entries (64 at a
    time through ``occupied``) when seeking a set bit, FULL ones when seeking a clear
    bit; the other sentinel answers at once.
    """
    if start >= stop:
        return -1
    wpc = 1 << (chunk_shift - 6)
    find_set = flip == NULL
    skip = NULL if find_set else full_addr
    answer = full_addr if find_set else NULL
    c = start >> chunk_shift
    last = (stop - 1) >> chunk_shift
    while c <= last:
        a = addrs[c]
        if a == skip:
            c = next_bit(occupied, c + 1, last + 1, NULL) if find_set else c + 1
            if c < 0:
                return -1
            continue
        lo, hi = local_span(c, start, stop, chunk_shift)
        if a == answer:
            return (c << chunk_shift) + lo
        p = next_bit(chunk_words(a, wpc), lo, hi, flip)
        if p >= 0:
            return (c << chunk_shift) + p
        c += 1
    return -1


@jit()
def table_find_prev_set(addrs, occupied, stop, chunk_shift, full_addr):
    """Highest set pfn in [0, stop), or -1; None entries are skipped unread."""
    if stop <= 0:
        return -1
    wpc = 1 << (chunk_shift - 6)
    c = (stop - 1) >> chunk_shift
    while c >= 0:
        a = addrs[c]
        if a == NULL:
            c = prev_set_bit(occupied, 0, c)
            continue
        lo, hi = local_span(c, 0, stop, chunk_shift)
        if a == full_addr:
            return (c << chunk_shift) + hi - 1
        p = prev_set_bit(chunk_words(a, wpc), lo, hi)
        if p >= 0:
            return (c << chunk_shift) + p
        c -= 1
    return -1


@jit()
def table_collect(addrs, counts, start, stop, chunk_shift, full_addr, out):
    """Set pfns of [start, stop) into ``out`` while room: ``(written, resume pfn)``."""
    if start >= stop:
        return 0, stop
    wpc = 1 << (chunk_shift - 6)
    pages_per_chunk = 1 << chunk_shift
    full = np.uint64(full_addr)
    room = out.size
    k = 0
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        if counts[c] == 0:
            continue
        a = addrs[c]
        base = c << chunk_shift
        lo, hi = local_span(c, start, stop, chunk_shift)
        if a == full:
            n = min(hi - lo, room - k)
            for j in range(n):
                out[k + j] = base + lo + j
            k += n
            if n < hi - lo:
                return k, base + lo + n
        elif lo == 0 and hi == pages_per_chunk and counts[c] + 4 <= room - k:
            k = collect_all(chunk_words(a, wpc), base, out, k)
        else:
            k, resume = collect_set(chunk_words(a, wpc), lo, hi, base, out, k)
            if resume < hi:
                return k, base + resume
    return k, stop


@jit(parallel=True)
def table_collect_parallel(addrs, counts, start, stop, chunk_shift, full_addr, out,
                           bounds, offsets):
    """:func:`table_collect` on Numba's thread pool (main thread only, as
    ``table_combine_parallel``): ``[start, stop)`` cut at chunk edges into
    ``bounds.size - 1`` parts of about equal set pages, each collected by the serial
    kernel into its own slice of ``out``.

    One serial pass over the cached counts (exact counts for the two partial end
    chunks) places the cuts in ``bounds`` at shares of ``out.size`` (the range's
    count, as ``to_array`` sizes it) and where each part's pfns start in ``offsets``.
    Where ``out`` lacks room for them all, the serial kernel runs alone.
    """
    if start >= stop:
        return 0, stop
    wpc = 1 << (chunk_shift - 6)
    full = np.uint64(full_addr)
    nparts, room = bounds.size - 1, out.size
    bounds[0], offsets[0] = start, 0
    p = 1
    total = 0
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        total += _pages_in(addrs, counts, c, start, stop, chunk_shift, full, wpc)
        while p < nparts and total * nparts >= p * room:
            bounds[p], offsets[p] = min((c + 1) << chunk_shift, stop), total
            p += 1
    if total == 0:
        return 0, stop
    if total > room:
        return table_collect(addrs, counts, start, stop, chunk_shift, full_addr, out)
    while p <= nparts:
        bounds[p], offsets[p] = stop, total
        p += 1
    for q in numba.prange(nparts):
        table_collect(addrs, counts, bounds[q], bounds[q + 1], chunk_shift, full_addr,
                      out[offsets[q]:offsets[q + 1]])
    return total, stop


@jit(inline=True)
def _pages_in(addrs, counts, c, start, stop, chunk_shift, full, wpc):
    """Set pages of entry ``c`` inside ``[start, stop)``: its cached count, or for a
    chunk the range covers in part, its bits there."""
    lo, hi = local_span(c, start, stop, chunk_shift)
    if hi - lo == 1 << chunk_shift or counts[c] == 0:
        return np.int64(counts[c])
    a = addrs[c]
    if a == full:
        return np.int64(hi - lo)
    return np.int64(count_bits(chunk_words(a, wpc), lo, hi))


@jit()
def table_select(addrs, counts, rank, chunk_shift, full_addr):
    """The pfn with ``rank`` set pages before it, or -1; reads one chunk at most."""
    wpc = 1 << (chunk_shift - 6)
    for c in range(addrs.size):
        n = counts[c]
        if rank < n:
            a = addrs[c]
            if a == full_addr:
                return (c << chunk_shift) + rank
            return (c << chunk_shift) + select_bit(chunk_words(a, wpc), rank)
        rank -= n
    return -1


@jit()
def table_runs(addrs, start, stop, chunk_shift, full_addr, starts, stops, fill):
    """Maximal runs of set pages in [start, stop); returns how many (filled if asked).

    None and FULL entries end or extend a run without being read.
    """
    if start >= stop:
        return 0
    wpc = 1 << (chunk_shift - 6)
    in_run = False
    run_start = 0
    k = 0
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        a = addrs[c]
        base = c << chunk_shift
        lo, hi = local_span(c, start, stop, chunk_shift)
        if a == NULL:
            if in_run:
                k = end_run(starts, stops, k, run_start, base + lo, fill)
                in_run = False
        elif a == full_addr:
            if not in_run:
                run_start = base + lo
                in_run = True
        else:
            in_run, run_start, k = runs_in_bits(chunk_words(a, wpc), lo, hi, base, in_run,
                                                 run_start, starts, stops, k, fill)
    return end_run(starts, stops, k, run_start, stop, fill) if in_run else k
