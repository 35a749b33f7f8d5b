"""Roaring's 64-bit portable serialization of a PageFlags table, written and read.

A Roaring container holds the values [key << 16, (key + 1) << 16): 1024 words of the
map, which lie in one chunk or span several, whatever the chunk size.  Writers and
readers go byte by byte, so the output is little-endian on any host.
"""

from __future__ import annotations

import numpy as np

from .intrinsics import ALL_ONES, NULL, ONE, chunk_words, cttz, jit, popcount, word_place
from .spans import next_bit, write_bits

ROARING_ARRAY = 0
ROARING_BITSET = 1
ROARING_RUN = 2
_COOKIE_NO_RUN = 12346
_COOKIE_RUN = 12347
_ARRAY_MAX = 4096
_CONTAINER_WORDS = 1024


@jit(inline=True)
def _put(out, pos, value, nbytes):
    v = np.uint64(value)
    for b in range(nbytes):
        out[pos + b] = np.uint8((v >> np.uint64(8 * b)) & np.uint64(0xFF))
    return pos + nbytes


@jit(inline=True)
def _get(buf, pos, nbytes):
    v = NULL
    for b in range(nbytes):
        v |= np.uint64(buf[pos + b]) << np.uint64(8 * b)
    return v


@jit(inline=True)
def _segment(chunk_shift):
    """(words per chunk, words of one chunk inside one container)."""
    wpc = 1 << (chunk_shift - 6)
    return wpc, min(wpc, _CONTAINER_WORDS)


@jit()
def _container_words(addrs, chunk_shift, key, buf):
    """Copy container ``key``'s 1024 words out of the table into ``buf``."""
    wpc, seg = _segment(chunk_shift)
    base = key << 10
    for s in range(0, _CONTAINER_WORDS, seg):
        c, off = word_place(base + s, chunk_shift)
        if c >= addrs.size or addrs[c] == NULL:
            for j in range(seg):
                buf[s + j] = NULL
        else:
            words = chunk_words(addrs[c], wpc)
            for j in range(seg):
                buf[s + j] = words[off + j]


@jit()
def _container_full(counts, chunk_shift, key):
    """Whether the cached counts say every chunk under container ``key`` is all ones."""
    _, seg = _segment(chunk_shift)
    ppc = 1 << chunk_shift
    base = key << 10
    for s in range(0, _CONTAINER_WORDS, seg):
        c, _ = word_place(base + s, chunk_shift)
        if c >= counts.size or counts[c] != ppc:
            return False
    return True


@jit()
def roaring_measure(addrs, counts, chunk_shift, keys, cards, nruns):
    """Cardinality and number of runs of each container ``keys[i]`` of a table."""
    buf = np.empty(_CONTAINER_WORDS, dtype=np.uint64)
    for i in range(keys.size):
        if _container_full(counts, chunk_shift, keys[i]):
            cards[i] = 1 << 16
            nruns[i] = 1
            continue
        _container_words(addrs, chunk_shift, keys[i], buf)
        card = 0
        runs = 0
        carry = NULL
        for j in range(_CONTAINER_WORDS):
            w = buf[j]
            card += popcount(w)
            runs += popcount(w & ~((w << ONE) | carry))  # bits that start a run
            carry = w >> np.uint64(63)
        cards[i] = card
        nruns[i] = runs


@jit(inline=True)
def _container_next_bit(buf, p, want_set):
    """First bit >= p of ``buf`` that is set (or clear); 65536 if none."""
    found = next_bit(buf, p, 1 << 16, NULL if want_set else ALL_ONES)
    return found if found >= 0 else 1 << 16


@jit()
def _write_body(out, pos, kind, card, buf):
    if kind == ROARING_BITSET:
        for j in range(_CONTAINER_WORDS):
            pos = _put(out, pos, buf[j], 8)
    elif kind == ROARING_ARRAY:
        for j in range(_CONTAINER_WORDS):
            w = buf[j]
            while w != NULL:
                pos = _put(out, pos, (j << 6) + cttz(w), 2)
                w &= w - ONE
    elif card == 1 << 16:
        pos = _put(out, pos, 1, 2)
        pos = _put(out, pos, 0, 2)
        pos = _put(out, pos, 0xFFFF, 2)
    else:
        count_at = pos
        pos += 2
        count = 0
        start = _container_next_bit(buf, 0, True)
        while start < 1 << 16:
            stop = _container_next_bit(buf, start, False)
            pos = _put(out, pos, start, 2)
            pos = _put(out, pos, stop - start - 1, 2)
            count += 1
            start = _container_next_bit(buf, stop, True)
        _put(out, count_at, count, 2)
    return pos


@jit(inline=True)
def roaring_body_bytes(kind, card, nruns):
    if kind == ROARING_RUN:
        return 2 + 4 * nruns
    if kind == ROARING_ARRAY:
        return 2 * card
    return 8 * _CONTAINER_WORDS


@jit()
def roaring_write(addrs, chunk_shift, keys, kinds, cards, nruns, out):
    """Write the 64-bit portable serialization of containers ``keys`` into zeroed ``out``.

    ``keys`` ascend; ``kinds``, ``cards`` and ``nruns`` come from ``roaring_measure``
    and the caller's choice of container kinds.  Returns the bytes written.
    """
    buf = np.empty(_CONTAINER_WORDS, dtype=np.uint64)
    n = keys.size
    buckets = 0
    for i in range(n):
        if i == 0 or (keys[i] >> 16) != (keys[i - 1] >> 16):
            buckets += 1
    pos = _put(out, 0, buckets, 8)
    i = 0
    while i < n:
        high = keys[i] >> 16
        j = i
        has_run = False
        while j < n and (keys[j] >> 16) == high:
            has_run |= kinds[j] == ROARING_RUN
            j += 1
        size = j - i
        pos = _put(out, pos, high, 4)
        start = pos
        if has_run:
            pos = _put(out, pos, _COOKIE_RUN | ((size - 1) << 16), 4)
            for t in range(size):
                if kinds[i + t] == ROARING_RUN:
                    out[pos + (t >> 3)] |= np.uint8(1 << (t & 7))
            pos += (size + 7) >> 3
        else:
            pos = _put(out, pos, _COOKIE_NO_RUN, 4)
            pos = _put(out, pos, size, 4)
        for t in range(i, j):
            pos = _put(out, pos, keys[t] & 0xFFFF, 2)
            pos = _put(out, pos, cards[t] - 1, 2)
        if not has_run or size >= 4:
            offset = pos - start + 4 * size
            for t in range(i, j):
                pos = _put(out, pos, offset, 4)
                offset += roaring_body_bytes(kinds[t], cards[t], nruns[t])
        for t in range(i, j):
            if cards[t] < 1 << 16:
                _container_words(addrs, chunk_shift, keys[t], buf)
            pos = _write_body(out, pos, kinds[t], cards[t], buf)
        i = j
    return pos


@jit()
def roaring_parse(buf, store, keys, kinds, cards, offsets):
    """Check a 64-bit portable Roaring serialization and list its containers.

    Returns ``(error, position, containers, max_value)``; error 0 means valid.  With
    ``store`` it records each container's global key (``high32 << 16 | key16``),
    kind, cardinality and body offset.  Reads nothing past ``buf``.
    """
    size_total = buf.size
    if size_total < 8:
        return 1, 0, 0, 0
    nbuckets = _get(buf, 0, 8)
    if nbuckets > np.uint64(0xFFFFFFFF):
        return 2, 0, 0, 0
    pos = 8
    n = 0
    prev_high = -1
    max_value = 0
    for _ in range(np.int64(nbuckets)):
        if pos + 8 > size_total:
            return 1, pos, n, 0
        high = np.int64(_get(buf, pos, 4))
        if high <= prev_high:
            return 3, pos, n, 0
        prev_high = high
        pos += 4
        start = pos
        cookie = np.int64(_get(buf, pos, 4))
        pos += 4
        if cookie == _COOKIE_NO_RUN:
            if pos + 4 > size_total:
                return 1, pos, n, 0
            size = np.int64(_get(buf, pos, 4))
            pos += 4
            if size > 1 << 16:
                return 5, pos, n, 0
            run_bits = -1
        elif (cookie & 0xFFFF) == _COOKIE_RUN:
            size = (cookie >> 16) + 1
            run_bits = pos
            pos += (size + 7) >> 3
        else:
            return 4, start, n, 0
        described = pos
        pos += 4 * size
        has_offsets = run_bits < 0 or size >= 4
        offsets_at = pos
        if has_offsets:
            pos += 4 * size
        if pos > size_total:
            return 1, pos, n, 0
        prev_key = -1
        for t in range(size):
            key = np.int64(_get(buf, described + 4 * t, 2))
            card = np.int64(_get(buf, described + 4 * t + 2, 2)) + 1
            if key <= prev_key:
                return 6, described + 4 * t, n, 0
            prev_key = key
            if has_offsets and np.int64(_get(buf, offsets_at + 4 * t, 4)) != pos - start:
                return 7, offsets_at + 4 * t, n, 0
            body = pos
            is_run = run_bits >= 0 and (buf[run_bits + (t >> 3)] >> (t & 7)) & 1
            if is_run:
                if pos + 2 > size_total:
                    return 1, pos, n, 0
                runs = np.int64(_get(buf, pos, 2))
                pos += 2
                if pos + 4 * runs > size_total:
                    return 1, pos, n, 0
                total = 0
                next_free = 0
                last = 0
                for r in range(runs):
                    first = np.int64(_get(buf, pos + 4 * r, 2))
                    last = first + np.int64(_get(buf, pos + 4 * r + 2, 2))
                    if first < next_free or last > 0xFFFF:
                        return 10, pos + 4 * r, n, 0
                    next_free = last + 1  # touching runs are allowed (not canonical)
                    total += last - first + 1
                if runs == 0 or total != card:
                    return 11, body, n, 0
                pos += 4 * runs
                kind = ROARING_RUN
            elif card <= _ARRAY_MAX:
                if pos + 2 * card > size_total:
                    return 1, pos, n, 0
                prev = -1
                for v in range(card):
                    last = np.int64(_get(buf, pos + 2 * v, 2))
                    if last <= prev:
                        return 8, pos + 2 * v, n, 0
                    prev = last
                pos += 2 * card
                kind = ROARING_ARRAY
            else:
                if pos + 8 * _CONTAINER_WORDS > size_total:
                    return 1, pos, n, 0
                total = 0
                top_word = 0
                top = NULL
                for j in range(_CONTAINER_WORDS):
                    w = _get(buf, pos + 8 * j, 8)
                    if w != NULL:
                        total += popcount(w)
                        top_word = j
                        top = w
                bit = 63
                while bit > 0 and not (top >> np.uint64(bit)) & ONE:
                    bit -= 1
                last = (top_word << 6) + bit
                if total != card:
                    return 9, pos, n, 0
                pos += 8 * _CONTAINER_WORDS
                kind = ROARING_BITSET
            if store:
                keys[n] = (high << 16) | key
                kinds[n] = kind
                cards[n] = card
                offsets[n] = body
            # Values from 2^60 up lie past any geometry's npages: -1 says so.
            max_value = -1 if high >= 1 << 28 else (((high << 16) | key) << 16) | last
            n += 1
    if pos != size_total:
        return 12, pos, n, 0
    return 0, pos, n, max_value


@jit()
def roaring_fill(buf, keys, kinds, cards, offsets, chunk_shift, row_chunks, row_addrs,
                 row_counts):
    """Decode checked containers into the chunks listed in ``row_chunks`` (ascending).

    With ``row_addrs`` empty, only add each chunk's set bits to ``row_counts[r]``,
    so the caller allocates just the chunks that end up neither empty nor full.
    Otherwise chunk ``row_chunks[r]`` is the zeroed chunk at ``row_addrs[r]`` and
    each container writes its own 1024-word slice of it.  Containers over chunks
    with no row are skipped.
    """
    write = row_addrs.size > 0
    words = np.empty(_CONTAINER_WORDS, dtype=np.uint64)
    wpc, seg = _segment(chunk_shift)
    nrows = row_chunks.size
    r = 0
    for i in range(keys.size):
        base = keys[i] << 10
        while r < nrows and row_chunks[r] < word_place(base, chunk_shift)[0]:
            r += 1
        if r == nrows or row_chunks[r] > word_place(base + _CONTAINER_WORDS - 1, chunk_shift)[0]:
            continue
        pos = offsets[i]
        if kinds[i] == ROARING_BITSET:
            for j in range(_CONTAINER_WORDS):
                words[j] = _get(buf, pos + 8 * j, 8)
        else:
            words[:] = NULL
            if kinds[i] == ROARING_ARRAY:
                for v in range(cards[i]):
                    value = np.int64(_get(buf, pos + 2 * v, 2))
                    words[value >> 6] |= ONE << np.uint64(value & 63)
            else:
                for t in range(np.int64(_get(buf, pos, 2))):
                    first = np.int64(_get(buf, pos + 2 + 4 * t, 2))
                    length = np.int64(_get(buf, pos + 4 + 4 * t, 2))
                    write_bits(words, first, first + length + 1, True)
        for s in range(0, _CONTAINER_WORDS, seg):
            c, off = word_place(base + s, chunk_shift)
            while r < nrows and row_chunks[r] < c:
                r += 1
            if r < nrows and row_chunks[r] == c:
                if write:
                    chunk = chunk_words(row_addrs[r], wpc)
                    for j in range(seg):
                        chunk[off + j] = words[s + j]
                else:
                    for j in range(seg):
                        row_counts[r] += popcount(words[s + j])
