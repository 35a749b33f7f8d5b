"""XXH64 over scattered word segments: the checksum of saved files.

Saved files carry an XXH64 (seed 0) of their bytes.  The input is a list of word
segments (header, entry arrays, then the chunks where they lie in memory), fed to a
state in as many calls as the caller likes.  Every segment is whole 64-bit words, so
only XXH64's 8-byte tail rule is needed.
"""

from __future__ import annotations

import numpy as np

from .intrinsics import NULL, chunk_words, jit, popcount

_XXH_P1 = np.uint64(0x9E3779B185EBCA87)
_XXH_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_XXH_P3 = np.uint64(0x165667B19E3779F9)
_XXH_P4 = np.uint64(0x85EBCA77C2B2AE63)
_XXH_P5 = np.uint64(0x27D4EB2F165667C5)


@jit(inline=True)
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@jit(inline=True)
def _xxh_round(acc, lane):
    return _rotl(acc + lane * _XXH_P2, 31) * _XXH_P1


@jit(inline=True)
def _xxh_merge(acc, v):
    return (acc ^ _xxh_round(NULL, v)) * _XXH_P1 + _XXH_P4


@jit()
def xxh64_start(seed):
    """A fresh XXH64 state: lanes v1..v4, four pending words, their count, words seen."""
    state = np.zeros(10, dtype=np.uint64)
    state[0] = seed + _XXH_P1 + _XXH_P2
    state[1] = seed + _XXH_P2
    state[2] = seed
    state[3] = seed - _XXH_P1
    return state


@jit()
def xxh64_update(state, addrs, lengths, counts):
    """Feed the words of segments ``(addrs[i], lengths[i])`` to an XXH64 ``state``.

    ``addrs`` are data addresses of ``uint64`` arrays (kept alive by the caller) and
    ``lengths`` their word counts.  ``counts[i]`` receives the popcount of segment i:
    a load checks the chunks' counts in the same pass over memory as the checksum.
    """
    v1 = state[0]
    v2 = state[1]
    v3 = state[2]
    v4 = state[3]
    pending = state[4:8]
    npending = np.int64(state[8])
    total = np.int64(state[9])
    for s in range(addrs.size):
        n = lengths[s]
        total += n
        if n == 0:
            counts[s] = 0
            continue
        words = chunk_words(addrs[s], n)
        i = 0
        ones = 0
        # A stripe of four words may straddle segments.
        while npending > 0 and i < n:
            pending[npending] = words[i]
            ones += popcount(words[i])
            npending += 1
            i += 1
            if npending == 4:
                v1 = _xxh_round(v1, pending[0])
                v2 = _xxh_round(v2, pending[1])
                v3 = _xxh_round(v3, pending[2])
                v4 = _xxh_round(v4, pending[3])
                npending = 0
        while i + 4 <= n:
            w0 = words[i]
            w1 = words[i + 1]
            w2 = words[i + 2]
            w3 = words[i + 3]
            v1 = _xxh_round(v1, w0)
            v2 = _xxh_round(v2, w1)
            v3 = _xxh_round(v3, w2)
            v4 = _xxh_round(v4, w3)
            ones += popcount(w0) + popcount(w1) + popcount(w2) + popcount(w3)
            i += 4
        while i < n:
            pending[npending] = words[i]
            ones += popcount(words[i])
            npending += 1
            i += 1
        counts[s] = ones
    state[0] = v1
    state[1] = v2
    state[2] = v3
    state[3] = v4
    state[8] = np.uint64(npending)
    state[9] = np.uint64(total)


@jit()
def xxh64_digest(state, seed):
    """The XXH64 of everything fed to ``state`` (equal to ``XXH64(bytes, seed)`` of the
    concatenated words on a little-endian host)."""
    total = state[9]
    if total >= np.uint64(4):
        v1 = state[0]
        v2 = state[1]
        v3 = state[2]
        v4 = state[3]
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _xxh_merge(h, v1)
        h = _xxh_merge(h, v2)
        h = _xxh_merge(h, v3)
        h = _xxh_merge(h, v4)
    else:
        h = seed + _XXH_P5
    h += total * np.uint64(8)
    for j in range(np.int64(state[8])):
        h ^= _xxh_round(NULL, state[4 + j])
        h = _rotl(h, 27) * _XXH_P1 + _XXH_P4
    h ^= h >> np.uint64(33)
    h *= _XXH_P2
    h ^= h >> np.uint64(29)
    h *= _XXH_P3
    h ^= h >> np.uint64(32)
    return h
