"""Kernels over chunk memory at raw addresses: filled, copied, gathered for a save,
read word by word, and ndarray objects read to find their chunks' data."""

from __future__ import annotations

import numpy as np

from .intrinsics import NULL, ONE, chunk_words, jit, load_word


@jit()
def table_fill_chunks(addrs, chunk_nrs, chunk_shift, value):
    """Write ``value`` to every word of the private chunks ``chunk_nrs``, in place.

    Preallocated maps keep their chunks when a write empties or fills them, so
    clearing or filling rewrites the words instead of swapping the table entry.
    """
    wpc = 1 << (chunk_shift - 6)
    for i in range(chunk_nrs.size):
        words = chunk_words(addrs[chunk_nrs[i]], wpc)
        for j in range(wpc):
            words[j] = value


@jit()
def fill_chunks_at(chunk_addrs, words_per_chunk, value):
    """Write ``value`` to every word of the chunks at ``chunk_addrs`` (new ones: the
    private copies of ``FULL`` a bulk write makes, at memory bandwidth)."""
    for j in range(chunk_addrs.size):
        words = chunk_words(chunk_addrs[j], words_per_chunk)
        for i in range(words_per_chunk):
            words[i] = value


@jit()
def copy_chunks_at(source_addrs, target_addrs, words_per_chunk):
    """Copy the chunk at ``source_addrs[j]`` into the one at ``target_addrs[j]``."""
    for j in range(source_addrs.size):
        source = chunk_words(source_addrs[j], words_per_chunk)
        target = chunk_words(target_addrs[j], words_per_chunk)
        for i in range(words_per_chunk):
            target[i] = source[i]


@jit()
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


@jit()
def words_at(addresses, out):
    """``out[i]`` = the ``uint64`` stored at address ``addresses[i]``."""
    for i in range(addresses.size):
        out[i] = load_word(addresses[i])


_LOW_32 = np.uint64(0xFFFF_FFFF)


_NPY_C_CONTIGUOUS = np.uint64(0x0001)


_NPY_WRITEABLE = np.uint64(0x0400)


@jit()
def read_chunk_objects(ids, offsets, ndarray_type, words, addresses, descrs, ok):
    """Data address and dtype object of each ndarray at ``ids``; is it shaped a chunk?

    ``offsets`` locate, inside an ndarray object, its type, data pointer, ``nd``,
    dimensions pointer, descr and flags (see ``_addresses.py``).  ``ok[i]`` says the
    object is exactly an ndarray, 1-D, ``words`` long, C-contiguous and read-only;
    ``descrs[i]`` is the address of its dtype object, for the caller to judge.
    Fields beyond the type are read only from objects of type ``ndarray``, and the
    dimensions only of 1-D ones.  Objects of another type get zeros.
    """
    for i in range(ids.size):
        at = ids[i]
        if load_word(at + offsets[0]) != ndarray_type:
            addresses[i] = NULL
            descrs[i] = NULL
            ok[i] = False
            continue
        addresses[i] = load_word(at + offsets[1])
        descrs[i] = load_word(at + offsets[4])
        flags = load_word(at + offsets[5]) & _LOW_32
        good = ((load_word(at + offsets[2]) & _LOW_32) == ONE
                and (flags & _NPY_C_CONTIGUOUS) != NULL
                and (flags & _NPY_WRITEABLE) == NULL)
        if good:
            good = load_word(load_word(at + offsets[3])) == words
        ok[i] = good
