"""Numba kernels over plain arrays: the bulk work of PageFlags and FlatPageFlags.

Kernels take NumPy arrays and ints only; they never allocate chunks and never see
the object-array table.  A PageFlags map reaches its chunks through ``addrs``, a
``uint64`` array with one entry per chunk: 0 for a ``None`` (all-zero) entry, the
data address of the shared all-ones chunk for ``FULL``, and otherwise the data
address of the chunk's own ``uint64`` words (see ``bitmap.py`` for why).  Word-level
helpers (``_set_bits`` and friends) are shared by the flat and the two-level kernels,
so both implement one rule for one operation.

Every kernel is ``nogil`` and serial, so threads from a pool can call them at once on
disjoint maps.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_JIT = {"cache": True, "nogil": True}

ALL_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
ONE = np.uint64(1)
NULL = np.uint64(0)


@intrinsic
def _address_to_pointer(typingctx, address):
    """``(uint64 *) address``: the seed's ``unsigned long *`` table entry."""
    sig = types.CPointer(types.uint64)(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.uint64)))

    return sig, codegen


@intrinsic
def popcount(typingctx, word):
    """Set bits in a uint64 word (``llvm.ctpop``, vectorised by LLVM in loops)."""
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(64)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.ctpop.i64")
        return builder.call(fn, args)

    return sig, codegen


@numba.njit(inline="always")
def chunk_words(address, words_per_chunk):
    """The words of the chunk at ``address`` as a 1-D uint64 array (no copy)."""
    return numba.carray(_address_to_pointer(address), (words_per_chunk,))


# --- word-level helpers over bit offsets [start, stop) of one word array ----------

@numba.njit(inline="always")
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


@numba.njit(**_JIT)
def _set_bits(words, start, stop):
    """Set bits [start, stop) of ``words``; return how many were newly set."""
    if start >= stop:
        return 0
    first, last, first_mask, last_mask = _edge_masks(start, stop)
    added = popcount(first_mask & ~words[first])
    words[first] |= first_mask
    if last != first:
        for i in range(first + 1, last):
            added += 64 - popcount(words[i])
            words[i] = ALL_ONES
        added += popcount(last_mask & ~words[last])
        words[last] |= last_mask
    return added


@numba.njit(**_JIT)
def _clear_bits(words, start, stop):
    """Clear bits [start, stop) of ``words``; return how many were set before."""
    if start >= stop:
        return 0
    first, last, first_mask, last_mask = _edge_masks(start, stop)
    removed = popcount(first_mask & words[first])
    words[first] &= ~first_mask
    if last != first:
        for i in range(first + 1, last):
            removed += popcount(words[i])
            words[i] = NULL
        removed += popcount(last_mask & words[last])
        words[last] &= ~last_mask
    return removed


@numba.njit(**_JIT)
def _count_bits(words, start, stop):
    """Set bits among bits [start, stop) of ``words``."""
    if start >= stop:
        return 0
    first, last, first_mask, last_mask = _edge_masks(start, stop)
    total = popcount(first_mask & words[first])
    if last != first:
        for i in range(first + 1, last):
            total += popcount(words[i])
        total += popcount(last_mask & words[last])
    return total


@numba.njit(**_JIT)
def _any_bits(words, start, stop):
    """Whether any of bits [start, stop) of ``words`` is set."""
    if start >= stop:
        return False
    first, last, first_mask, last_mask = _edge_masks(start, stop)
    if words[first] & first_mask:
        return True
    if last != first:
        for i in range(first + 1, last):
            if words[i]:
                return True
        if words[last] & last_mask:
            return True
    return False


# --- argument checks that must see every element -----------------------------------

@numba.njit(**_JIT)
def first_out_of_range(pfns, npages):
    """Index of the first pfn outside [0, npages), or -1."""
    for i in range(pfns.size):
        p = pfns[i]
        if p < 0 or p >= npages:
            return i
    return -1


# --- flat bitmap kernels ---------------------------------------------------------

@numba.njit(**_JIT)
def flat_set_range(words, start, stop):
    return _set_bits(words, start, stop)


@numba.njit(**_JIT)
def flat_clear_range(words, start, stop):
    return _clear_bits(words, start, stop)


@numba.njit(**_JIT)
def flat_count_range(words, start, stop):
    return _count_bits(words, start, stop)


@numba.njit(**_JIT)
def flat_any_range(words, start, stop):
    return _any_bits(words, start, stop)


@numba.njit(**_JIT)
def flat_set_many(words, pfns):
    """Set bit ``p`` for every p in ``pfns``."""
    for i in range(pfns.size):
        p = pfns[i]
        words[p >> 6] |= ONE << np.uint64(p & 63)


@numba.njit(**_JIT)
def flat_clear_many(words, pfns):
    """Clear bit ``p`` for every p in ``pfns``."""
    for i in range(pfns.size):
        p = pfns[i]
        words[p >> 6] &= ~(ONE << np.uint64(p & 63))


@numba.njit(**_JIT)
def flat_test_many(words, pfns, out):
    """``out[i] = bit pfns[i]``."""
    for i in range(pfns.size):
        p = pfns[i]
        out[i] = ((words[p >> 6] >> np.uint64(p & 63)) & ONE) != NULL


# --- two-level kernels -------------------------------------------------------------
# A chunk's pfns are [c << chunk_shift, (c + 1) << chunk_shift); within a range
# [start, stop) each chunk sees the local bit span [lo, hi).

@numba.njit(inline="always")
def _local_span(c, start, stop, chunk_shift):
    base = c << chunk_shift
    lo = max(start, base) - base
    hi = min(stop, base + (1 << chunk_shift)) - base
    return lo, hi


@numba.njit(**_JIT)
def table_set_range(addrs, counts, start, stop, chunk_shift, full_addr):
    """Set pages [start, stop); every entry in the range must be FULL or private.

    Returns the number of pages newly set; ``counts`` follows.
    """
    if start >= stop:
        return 0
    wpc = 1 << (chunk_shift - 6)
    added = 0
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        a = addrs[c]
        if a == full_addr:
            continue
        lo, hi = _local_span(c, start, stop, chunk_shift)
        n = _set_bits(chunk_words(a, wpc), lo, hi)
        counts[c] += n
        added += n
    return added


@numba.njit(**_JIT)
def table_clear_range(addrs, counts, start, stop, chunk_shift, full_addr):
    """Clear pages [start, stop); no entry in the range may be FULL.

    Returns the number of pages that were set; ``counts`` follows.
    """
    if start >= stop:
        return 0
    wpc = 1 << (chunk_shift - 6)
    removed = 0
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        a = addrs[c]
        if a == NULL:
            continue
        lo, hi = _local_span(c, start, stop, chunk_shift)
        n = _clear_bits(chunk_words(a, wpc), lo, hi)
        counts[c] -= n
        removed += n
    return removed


@numba.njit(**_JIT)
def table_count_range(addrs, counts, start, stop, chunk_shift, full_addr):
    """Pages set in [start, stop): cached counts for whole chunks, popcount at edges."""
    if start >= stop:
        return 0
    wpc = 1 << (chunk_shift - 6)
    pages_per_chunk = 1 << chunk_shift
    total = 0
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        a = addrs[c]
        if a == NULL:
            continue
        lo, hi = _local_span(c, start, stop, chunk_shift)
        if lo == 0 and hi == pages_per_chunk:
            total += counts[c]
        elif a == full_addr:
            total += hi - lo
        else:
            total += _count_bits(chunk_words(a, wpc), lo, hi)
    return total


@numba.njit(**_JIT)
def table_any_range(addrs, counts, start, stop, chunk_shift, full_addr):
    """Whether any page in [start, stop) is set."""
    if start >= stop:
        return False
    wpc = 1 << (chunk_shift - 6)
    pages_per_chunk = 1 << chunk_shift
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        a = addrs[c]
        if a == NULL:
            continue
        if a == full_addr:
            return True
        lo, hi = _local_span(c, start, stop, chunk_shift)
        if lo == 0 and hi == pages_per_chunk:
            if counts[c] > 0:
                return True
        elif _any_bits(chunk_words(a, wpc), lo, hi):
            return True
    return False


@numba.njit(**_JIT)
def table_chunks_at(addrs, pfns, chunk_shift, target, seen, out):
    """Distinct chunks holding some pfn whose entry equals ``target``.

    Writes them to ``out`` in first-seen order and returns how many; ``seen`` is a
    zeroed bool array of one flag per chunk.  This is the first phase of a bulk
    write: Python allocates (target 0) or un-shares (target FULL) these chunks.
    """
    k = 0
    for i in range(pfns.size):
        c = pfns[i] >> chunk_shift
        if addrs[c] == target and not seen[c]:
            seen[c] = True
            out[k] = c
            k += 1
    return k


@numba.njit(**_JIT)
def table_set_many(addrs, counts, pfns, chunk_shift, full_addr):
    """Set every pfn; their entries must be FULL or private.  Returns pages added."""
    wpc = 1 << (chunk_shift - 6)
    local_mask = (1 << chunk_shift) - 1
    added = 0
    for i in range(pfns.size):
        p = pfns[i]
        c = p >> chunk_shift
        a = addrs[c]
        if a == full_addr:
            continue
        words = chunk_words(a, wpc)
        local = p & local_mask
        bit = ONE << np.uint64(local & 63)
        w = words[local >> 6]
        if not (w & bit):
            words[local >> 6] = w | bit
            counts[c] += 1
            added += 1
    return added


@numba.njit(**_JIT)
def table_clear_many(addrs, counts, pfns, chunk_shift, emptied):
    """Clear every pfn; no entry may be FULL.

    Returns ``(pages removed, k)``: the first ``k`` entries of ``emptied`` are the
    chunks whose count dropped to zero, for Python to free.
    """
    wpc = 1 << (chunk_shift - 6)
    local_mask = (1 << chunk_shift) - 1
    removed = 0
    k = 0
    for i in range(pfns.size):
        p = pfns[i]
        c = p >> chunk_shift
        a = addrs[c]
        if a == NULL:
            continue
        words = chunk_words(a, wpc)
        local = p & local_mask
        bit = ONE << np.uint64(local & 63)
        w = words[local >> 6]
        if w & bit:
            words[local >> 6] = w & ~bit
            counts[c] -= 1
            removed += 1
            if counts[c] == 0:
                emptied[k] = c
                k += 1
    return removed, k


@numba.njit(**_JIT)
def table_test_many(addrs, pfns, chunk_shift, full_addr, out):
    """``out[i] = page pfns[i] is set``."""
    wpc = 1 << (chunk_shift - 6)
    local_mask = (1 << chunk_shift) - 1
    for i in range(pfns.size):
        p = pfns[i]
        a = addrs[p >> chunk_shift]
        if a == NULL:
            out[i] = False
        elif a == full_addr:
            out[i] = True
        else:
            local = p & local_mask
            out[i] = ((chunk_words(a, wpc)[local >> 6] >> np.uint64(local & 63)) & ONE) != NULL


@numba.njit(**_JIT)
def table_popcounts(addrs, chunk_shift, out):
    """``out[c]`` = popcount of chunk c's data (0 for NULL), read from memory."""
    wpc = 1 << (chunk_shift - 6)
    for c in range(addrs.size):
        a = addrs[c]
        if a == NULL:
            out[c] = 0
            continue
        words = chunk_words(a, wpc)
        # Four accumulators let LLVM keep several vector popcounts in flight.
        s0 = 0
        s1 = 0
        s2 = 0
        s3 = 0
        for i in range(0, wpc - 3, 4):
            s0 += popcount(words[i])
            s1 += popcount(words[i + 1])
            s2 += popcount(words[i + 2])
            s3 += popcount(words[i + 3])
        for i in range(wpc - wpc % 4, wpc):
            s0 += popcount(words[i])
        out[c] = s0 + s1 + s2 + s3


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


# --- persistence: XXH64 checksum over scattered word segments ----------------------
# Saved files carry an XXH64 (seed 0) of their bytes.  The input is a list of word
# segments (header, entry arrays, then every chunk where it lies in memory), so a
# save hashes the chunks in place instead of first gathering them into one buffer.
# Every segment is whole 64-bit words, so only XXH64's 8-byte tail rule is needed.

_XXH_P1 = np.uint64(0x9E3779B185EBCA87)
_XXH_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_XXH_P3 = np.uint64(0x165667B19E3779F9)
_XXH_P4 = np.uint64(0x85EBCA77C2B2AE63)
_XXH_P5 = np.uint64(0x27D4EB2F165667C5)


@numba.njit(inline="always")
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(inline="always")
def _xxh_round(acc, lane):
    return _rotl(acc + lane * _XXH_P2, 31) * _XXH_P1


@numba.njit(inline="always")
def _xxh_merge(acc, v):
    return (acc ^ _xxh_round(NULL, v)) * _XXH_P1 + _XXH_P4


@numba.njit(**_JIT)
def xxh64_segments(addrs, lengths, seed):
    """XXH64 of the concatenated little-endian words of segments ``(addrs[i], lengths[i])``.

    ``addrs`` are data addresses of ``uint64`` arrays (kept alive by the caller) and
    ``lengths`` their word counts.  Equal to ``XXH64(bytes, seed)`` of the
    concatenation on a little-endian host.
    """
    v1 = seed + _XXH_P1 + _XXH_P2
    v2 = seed + _XXH_P2
    v3 = seed
    v4 = seed - _XXH_P1
    pending = np.zeros(4, dtype=np.uint64)
    npending = 0
    total = 0
    for s in range(addrs.size):
        n = lengths[s]
        total += n
        if n == 0:
            continue
        words = numba.carray(_address_to_pointer(addrs[s]), (n,))
        i = 0
        # A stripe of four words may straddle segments.
        while npending > 0 and i < n:
            pending[npending] = words[i]
            npending += 1
            i += 1
            if npending == 4:
                v1 = _xxh_round(v1, pending[0])
                v2 = _xxh_round(v2, pending[1])
                v3 = _xxh_round(v3, pending[2])
                v4 = _xxh_round(v4, pending[3])
                npending = 0
        while i + 4 <= n:
            v1 = _xxh_round(v1, words[i])
            v2 = _xxh_round(v2, words[i + 1])
            v3 = _xxh_round(v3, words[i + 2])
            v4 = _xxh_round(v4, words[i + 3])
            i += 4
        while i < n:
            pending[npending] = words[i]
            npending += 1
            i += 1
    if total >= 4:
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _xxh_merge(h, v1)
        h = _xxh_merge(h, v2)
        h = _xxh_merge(h, v3)
        h = _xxh_merge(h, v4)
    else:
        h = seed + _XXH_P5
    h += np.uint64(total) * np.uint64(8)
    for j in range(npending):
        h ^= _xxh_round(NULL, pending[j])
        h = _rotl(h, 27) * _XXH_P1 + _XXH_P4
    h ^= h >> np.uint64(33)
    h *= _XXH_P2
    h ^= h >> np.uint64(29)
    h *= _XXH_P3
    h ^= h >> np.uint64(32)
    return h


@numba.njit(**_JIT)
def gather_chunks(addrs, out):
    """Copy the chunk at ``addrs[i]`` into row ``i`` of the 2-D ``out``.

    A save writes chunks through a staging buffer filled by this: the kernel copies
    far faster than the OS takes one small write segment per chunk.
    """
    wpc = out.shape[1]
    for i in range(addrs.size):
        words = chunk_words(addrs[i], wpc)
        for j in range(wpc):
            out[i, j] = words[j]
