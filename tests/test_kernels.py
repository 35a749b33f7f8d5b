"""The bulk kernels compile to integer code: no float conversion of an address or pfn.

Numba types a comparison or sum of a uint64 and an int64 as float64: a conversion per
pfn in a hot loop, and inexact above 2**53.  Each bulk kernel is compiled here afresh
(cached code cannot be inspected) for the argument types the maps pass, and its LLVM
IR must hold no int-to-float conversion or float comparison.
"""

import functools
import re

import numba
import numpy as np
import pytest
from numba import types

from pageflags import _kernels

U64 = types.Array(types.uint64, 1, "C")
I64 = types.Array(types.int64, 1, "C")
I32 = types.Array(types.int32, 1, "C")
BOOL = types.Array(types.boolean, 1, "C")
INT, FLAG = types.int64, types.boolean

#: Kernel -> argument types as PageFlags calls it (Python ints arrive as int64).
BULK_SIGNATURES = {
    "table_write_many": (U64, I32, I64, INT, INT, INT, FLAG, FLAG, I64, INT),
    "table_test_many": (U64, I64, INT, INT, BOOL),
    "table_test_many_mixed": (U64, I64, INT, INT, BOOL),
    "table_entries_at": (U64, I64, INT, INT, INT, INT, BOOL, I64),
    "table_mark_entries": (I64, INT, INT, BOOL),
    "fill_chunks_at": (U64, INT, types.uint64),
    "copy_chunks_at": (U64, U64, INT),
    "words_chunk_kinds": (U64, INT, INT, BOOL, BOOL),
    "table_put_words": (U64, I32, U64, INT, INT, INT),
    "flat_write_many": (U64, I64, FLAG),
    "flat_test_many": (U64, I64, BOOL),
    "table_collect": (U64, I32, INT, INT, INT, INT, I64),
    "collect_set": (U64, INT, INT, INT, I64, INT),
    "table_range": (INT, U64, I32, INT, INT, INT, INT),
}
FLOAT_OPS = re.compile(r"\b(uitofp|sitofp|fcmp|fptoui|fptosi)\b")


#: The external functions a kernel may call when it is loaded from the cache without
#: Numba's target refresh (intrinsics._CacheLoadedWithoutRefresh): LLVM intrinsics,
#: Python's C API, the runtime (initialised by the load) and Numba's C helpers
#: (installed with the target), and Python's exception objects.  Anything else, say
#: the hash secret a refresh-time module installs, would be unresolved at link time.
LOADABLE_EXTERNALS = re.compile(r"(llvm\.|Py|_Py|NRT_|numba_)")
DECLARED = re.compile(r'^(?:declare [^@]*@"?([^"( ]+)|@"?([^" ]+)"? = external )',
                      re.MULTILINE)


def llvm_of(py_func, signature) -> str:
    dispatcher = numba.njit(signature, nogil=True)(py_func)
    return dispatcher.inspect_llvm(dispatcher.signatures[0])


@functools.cache
def bulk_llvm(name: str) -> str:
    return llvm_of(getattr(_kernels, name).py_func, BULK_SIGNATURES[name])


@pytest.mark.parametrize("name", BULK_SIGNATURES)
def test_bulk_kernels_compute_in_integers(name):
    assert FLOAT_OPS.findall(bulk_llvm(name)) == []


@pytest.mark.parametrize("name", BULK_SIGNATURES)
def test_bulk_kernels_call_only_what_a_load_without_refresh_links(name):
    declared = [f or g for f, g in DECLARED.findall(bulk_llvm(name))]
    assert declared and [f for f in declared if not LOADABLE_EXTERNALS.match(f)] == []


def test_the_externals_check_sees_a_refresh_time_symbol():
    hashing = llvm_of(lambda s: hash(s), (types.unicode_type,))
    declared = [f or g for f, g in DECLARED.findall(hashing)]
    assert "_numba_hashsecret_siphash_k0" in declared
    assert not LOADABLE_EXTERNALS.match("_numba_hashsecret_siphash_k0")


def test_the_check_sees_a_mixed_comparison():
    def mixed(addrs, full_addr):
        return addrs[0] == full_addr  # uint64 == int64: compared as float64

    assert "uitofp" in FLOAT_OPS.findall(llvm_of(mixed, (U64, INT)))


def test_fill_and_copy_chunks_at_addresses():
    chunks = np.zeros((3, 4), dtype=np.uint64)
    addrs = np.array([chunks[i].ctypes.data for i in (0, 2)], dtype=np.uint64)
    _kernels.fill_chunks_at(addrs, 4, _kernels.ALL_ONES)
    assert chunks.tolist() == [[2**64 - 1] * 4, [0] * 4, [2**64 - 1] * 4]
    chunks[0] = [1, 2, 3, 4]
    _kernels.copy_chunks_at(addrs[:1], np.array([chunks[1].ctypes.data], np.uint64), 4)
    assert chunks[1].tolist() == [1, 2, 3, 4] and chunks[2].tolist() == [2**64 - 1] * 4


def test_a_built_kernel_replaces_its_proxy_in_the_package_and_its_module():
    from numba.core.dispatcher import Dispatcher

    from pageflags._kernels import spans

    words = np.zeros(2, dtype=np.uint64)
    assert _kernels.write_bits(words, 3, 70, True) == 67
    assert isinstance(_kernels.write_bits, Dispatcher)  # call sites skip the proxy
    assert _kernels.write_bits is spans.write_bits
    assert "write_bits" in _kernels.dispatchers_built()



def test_a_cache_load_that_fails_without_a_refresh_takes_numbas_own_path(monkeypatch):
    from numba.core.registry import cpu_target

    from pageflags._kernels import intrinsics

    tried = []

    def fails_once(self, sig, target_context):
        tried.append(sig)
        if len(tried) == 1:
            raise RuntimeError("a symbol the refresh would have installed")
        return "loaded"

    refreshed = []
    monkeypatch.setattr(intrinsics._CacheLoadedWithoutRefresh, "_load_overload", fails_once)
    monkeypatch.setattr(type(cpu_target.target_context), "refresh",
                        lambda self: refreshed.append(True))
    cache = intrinsics._CacheLoadedWithoutRefresh(_kernels.spans.count_bits.py_func)
    assert cache.load_overload("sig", cpu_target.target_context) == "loaded"
    assert tried == ["sig", "sig"] and refreshed == [True]


def test_chunk_words_and_as_unsigned_view_memory_without_copying():
    @numba.njit
    def views(address, n, out):
        words = _kernels.intrinsics.chunk_words(address, n)
        words[n - 1] += 1  # writes through to the memory at address
        unsigned = _kernels.intrinsics.as_unsigned(out)
        unsigned[0] = words[0]
        return words.size, unsigned.size

    memory = np.array([2**64 - 1, 5, 7], dtype=np.uint64)
    out = np.zeros(2, dtype=np.int64)
    assert views(memory.ctypes.data, 2, out) == (2, 2)
    assert memory.tolist() == [2**64 - 1, 6, 7] and out.tolist() == [-1, 0]


@pytest.mark.parametrize("first_word", [0, 5, 511])
def test_chunk_kinds_decide_only_on_what_settles_them(first_word):
    """Per chunk a window touches: any bit set, all bits set, against NumPy; each
    chunk is zero or ones but for one word, placed first, inside or last in it."""
    wpc, shift = 512, 15
    rng = np.random.default_rng(first_word)
    data = np.zeros(8 * wpc, dtype=np.uint64)
    # The window starts first_word % wpc words into its first chunk.
    chunk = (np.arange(data.size) + first_word) // wpc - first_word // wpc
    for j, (base, odd) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2),
                                     (0, None), (1, None)]):
        in_chunk = chunk == j
        data[in_chunk] = 2**64 - 1 if base else 0
        if odd is not None and in_chunk.any():
            where = np.flatnonzero(in_chunk)[[0, rng.integers(1, 16), -1][odd]]
            data[where] = 1 << 40 if not base else ~np.uint64(1 << 40)
    nchunks = chunk[-1] + 1
    any_set, all_set = np.empty(nchunks, bool), np.empty(nchunks, bool)
    _kernels.words_chunk_kinds(data, first_word, shift, any_set, all_set)
    for j in range(nchunks):
        words = data[chunk == j]
        assert any_set[j] == bool(words.any()) and all_set[j] == bool((words == 2**64 - 1).all())
