"""Spans of a few ``uint64`` words written as Python ints, through a memoryview.

A Numba kernel's dispatch costs 300-400 ns, the work of a span inside a word or two
20 ns; through a native ``"Q"`` memoryview of the words each word costs a read and a
write as Python ints (70-90 ns), so spans of up to :data:`SPAN_WORDS` words are
written here and longer ones by a kernel.  PageFlags (a chunk's private view) and
FlatPageFlags (its word array) share this rule.
"""

from __future__ import annotations

__all__ = ["SPAN_WORDS", "write_words"]

#: Spans touching at most this many words are written in Python; longer by a kernel.
SPAN_WORDS = 4

_ONES = (1 << 64) - 1


def write_words(view: memoryview, lo: int, hi: int, value: bool) -> int:
    """Set (``value``) or clear bits ``[lo, hi)`` of the words in ``view``; how many
    bits changed.  Bit ``b`` of word ``i`` is bit ``64 i + b``; ``lo < hi``.

    Examples
    --------
    >>> words = memoryview(bytearray(16)).cast("Q")
    >>> write_words(words, 60, 70, True), words.tolist()
    (10, [17293822569102704640, 63])
    >>> write_words(words, 0, 128, False), words.tolist()
    (10, [0, 0])
    """
    changed = 0
    i, last = lo >> 6, (hi - 1) >> 6
    mask = _ONES ^ ((1 << (lo & 63)) - 1)  # bits lo & 63 .. 63 of the first word
    while True:
        if i == last:
            mask &= (1 << (hi - (i << 6))) - 1
        old = view[i]
        new = old | mask if value else old & ~mask
        if new != old:
            view[i] = new
            changed += (new ^ old).bit_count()
        if i == last:
            return changed
        i += 1
        mask = _ONES
