"""Kernels over windows of packed words: a map's words read out, or written in with
the touched chunks' counts kept (``get_words``, ``put_words``)."""

from __future__ import annotations

import numpy as np

from .intrinsics import ALL_ONES, NULL, chunk_words, jit, popcount, word_place
from .spans import popcount_all

#: Words a chunk's kind scan reads between checks (two cache lines).
KIND_BLOCK = 16


@jit()
def table_get_words(addrs, first_word, out, chunk_shift, full_addr):
    """``out`` = the words ``first_word + [0, out.size)`` of the map."""
    wpc = 1 << (chunk_shift - 6)
    full = np.uint64(full_addr)
    for j in range(out.size):
        c, off = word_place(first_word + j, chunk_shift)
        a = addrs[c]
        if a == NULL:
            out[j] = NULL
        elif a == full:
            out[j] = ALL_ONES
        else:
            out[j] = chunk_words(a, wpc)[off]


@jit()
def words_chunk_kinds(data, first_word, chunk_shift, any_set, all_set):
    """Per chunk touched by the window: whether its words in ``data`` have a bit set,
    and whether they are all ones.  Entry j is chunk ``(first_word >> word_shift) + j``.

    An OR and an AND reduction over each block of :data:`KIND_BLOCK` words
    (vectorised), not a branch per word, and a chunk's scan stops at the first block
    that shows it mixed: a set bit and a clear one decide both answers.  Sparse or
    random pages are decided in the first block or two; all-zero and all-ones chunks
    are read whole.
    """
    wpc = 1 << (chunk_shift - 6)
    i = 0
    for j in range(any_set.size):
        _, off = word_place(first_word + i, chunk_shift)
        n = min(wpc - off, data.size - i)
        span = data[i:i + n]
        some = NULL
        every = ALL_ONES
        for block in range(0, span.size, KIND_BLOCK):
            for k in range(block, min(block + KIND_BLOCK, span.size)):
                some |= span[k]
                every &= span[k]
            if some != NULL and every != ALL_ONES:
                break
        any_set[j] = some != NULL
        all_set[j] = every == ALL_ONES
        i += n


@jit()
def table_put_words(addrs, counts, data, first_word, chunk_shift, full_addr):
    """Copy ``data`` into the words ``first_word + [0, data.size)``; recount touched chunks.

    Python has made private every touched entry whose bits change: None entries left
    receive only zeros and FULL entries left only ones, so both are skipped.  A
    chunk's count is the popcount of the words copied in (in the same pass) plus,
    for a chunk the window covers in part, that of its words outside the window.
    """
    wpc = 1 << (chunk_shift - 6)
    full = np.uint64(full_addr)
    i = 0
    while i < data.size:
        c, off = word_place(first_word + i, chunk_shift)
        n = min(wpc - off, data.size - i)
        a = addrs[c]
        if a != NULL and a != full:
            words = chunk_words(a, wpc)
            source = data[i:i + n]
            target = words[off:off + n]
            total = 0
            for j in range(source.size):
                w = source[j]
                target[j] = w
                total += popcount(w)
            if n < wpc:
                total += popcount_all(words[:off]) + popcount_all(words[off + n:])
            counts[c] = total
        i += n
