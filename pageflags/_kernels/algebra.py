"""Kernels of the binary operations (and, or, xor, andnot) between maps: whole-word
loops for flat maps and chunks, a plan of which result entries need a chunk, and
counts of pages two maps share."""

from __future__ import annotations

import numba
import numpy as np

from ..ops import Op
from .intrinsics import NULL, chunk_words, jit, popcount

# Operation codes of the algebra kernels: plain ints, the values of pageflags.ops.Op.
OP_AND = int(Op.AND)
OP_OR = int(Op.OR)
OP_XOR = int(Op.XOR)
OP_ANDNOT = int(Op.ANDNOT)



# Kinds of a table entry, and of an algebra result entry.
KIND_NONE = 0
KIND_FULL = 1
KIND_CHUNK = 2  # a private chunk; for a result: one that a kernel must compute



# RESULT_KINDS[op, 3 * kind_a + kind_b]: what entry ``a op b`` needs, so None and FULL
# results never cost a chunk (None & x = None, FULL | x = FULL, FULL ^ FULL = None).
RESULT_KINDS = np.array([
    # b:  N  F  C    N  F  C    N  F  C      a = N | F | C
    [0, 0, 0, 0, 1, 2, 0, 2, 2],  # and
    [0, 1, 2, 1, 1, 1, 2, 1, 2],  # or
    [0, 1, 2, 1, 0, 2, 2, 2, 2],  # xor
    [0, 0, 0, 1, 0, 2, 2, 0, 2],  # andnot
], dtype=np.int8)


@jit()
def combine_words(op, a, b, out):
    """``out = a op b`` word by word; returns the popcount of ``out``.

    One loop per operation keeps each loop free of branches, so LLVM vectorises it.
    """
    total = 0
    if op == OP_AND:
        for i in range(out.size):
            w = a[i] & b[i]
            out[i] = w
            total += popcount(w)
    elif op == OP_OR:
        for i in range(out.size):
            w = a[i] | b[i]
            out[i] = w
            total += popcount(w)
    elif op == OP_XOR:
        for i in range(out.size):
            w = a[i] ^ b[i]
            out[i] = w
            total += popcount(w)
    else:
        for i in range(out.size):
            w = a[i] & ~b[i]
            out[i] = w
            total += popcount(w)
    return total


@jit()
def count_and_words(a, b):
    total = 0
    for i in range(a.size):
        total += popcount(a[i] & b[i])
    return total


@jit()
def flat_count_and(a, b, first_only):
    """Pages set in both; with ``first_only``, stop at the first word that has some."""
    if not first_only:
        return count_and_words(a, b)
    for i in range(a.size):
        if a[i] & b[i]:
            return popcount(a[i] & b[i])
    return 0


@jit(inline=True)
def _entry_kind(address, full_addr):
    if address == NULL:
        return KIND_NONE
    if address == full_addr:
        return KIND_FULL
    return KIND_CHUNK


@jit()
def table_plan(op, addrs_a, addrs_b, full_addr, result_kinds, out):
    """``out[c]`` = the kind of entry c of ``a op b``; returns how many need a chunk."""
    rule = result_kinds[op]
    need = 0
    for c in range(addrs_a.size):
        kind = rule[3 * _entry_kind(addrs_a[c], full_addr) + _entry_kind(addrs_b[c], full_addr)]
        out[c] = kind
        if kind == KIND_CHUNK:
            need += 1
    return need


@jit(inline=True)
def _combine_chunk(op, addrs_a, addrs_b, c, out_addr, wpc, zero_addr):
    a = addrs_a[c]
    b = addrs_b[c]
    return combine_words(op, chunk_words(zero_addr if a == NULL else a, wpc),
                          chunk_words(zero_addr if b == NULL else b, wpc),
                          chunk_words(out_addr, wpc))


@jit()
def table_combine(op, addrs_a, addrs_b, chunk_nrs, out_addrs, out_counts, chunk_shift,
                  zero_addr):
    """Chunk ``out_addrs[j]`` = chunk ``chunk_nrs[j]`` of ``a op b``; counts follow.

    ``zero_addr`` (an all-zero chunk) stands in for None entries; ``out_addrs[j]`` may
    be the address of a's own chunk, for in-place operations.
    """
    wpc = 1 << (chunk_shift - 6)
    for j in range(chunk_nrs.size):
        out_counts[j] = _combine_chunk(op, addrs_a, addrs_b, chunk_nrs[j], out_addrs[j], wpc,
                                       zero_addr)


@jit(parallel=True)
def table_combine_parallel(op, addrs_a, addrs_b, chunk_nrs, out_addrs, out_counts,
                           chunk_shift, zero_addr):
    """:func:`table_combine` over Numba's thread pool (main thread only: the
    workqueue layer does not take launches from several threads at once)."""
    wpc = 1 << (chunk_shift - 6)
    for j in numba.prange(chunk_nrs.size):
        out_counts[j] = _combine_chunk(op, addrs_a, addrs_b, chunk_nrs[j], out_addrs[j], wpc,
                                       zero_addr)


@jit()
def table_count_and(addrs_a, counts_a, addrs_b, counts_b, chunk_shift, full_addr,
                    first_only):
    """Pages set in both tables, from cached counts wherever an entry is None or FULL.

    With ``first_only``, returns as soon as some page is found (for ``intersects``).
    """
    wpc = 1 << (chunk_shift - 6)
    total = 0
    for c in range(addrs_a.size):
        a = addrs_a[c]
        b = addrs_b[c]
        if a == NULL or b == NULL:
            continue
        if a == full_addr:
            total += counts_b[c]
        elif b == full_addr:
            total += counts_a[c]
        else:
            total += count_and_words(chunk_words(a, wpc), chunk_words(b, wpc))
        if first_only and total:
            return total
    return total
