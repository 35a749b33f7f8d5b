"""_direct.bind: a kernel's entry point without dispatch, and its fallbacks."""

import numba
import numpy as np
import pytest

from pageflags import PageFlags, _direct, _kernels

JIT = not numba.config.DISABLE_JIT


def test_bind_calls_the_entry_point_the_first_call_chose():
    words = np.zeros(8, dtype=np.uint64)
    _kernels.write_bits(words, 5, 300, True)
    args = (words, 0, 512)
    assert _kernels.count_bits(*args) == 295
    count = _direct.bind(_kernels.count_bits, args, 1)
    assert count(0, 512) == 295 and count(64, 128) == 64 and count(300, 512) == 0
    if JIT:
        assert type(count.func).__name__ == "builtin_function_or_method"


def test_bind_falls_back_to_the_kernel_when_no_entry_point_matches():
    words = np.zeros(8, dtype=np.uint64)
    _kernels.write_bits(words, 5, 300, True)
    # Never called with a float stop: no specialisation for those types exists.
    kernel = _kernels.count_bits  # the dispatcher itself, once made
    count = _direct.bind(kernel, (words, 0, 512.0), 1)
    assert count.func is kernel
    assert count(0, 512) == 295
    plain = _direct.bind(lambda a, b: a + b, (1, 2), 1)  # not a Numba kernel at all
    assert plain(5) == 6


@pytest.mark.parametrize("start", [0, 5, 32767, 32768, 100_000, (1 << 20) - 1, 1 << 20])
def test_find_next_set_bound_agrees_with_the_kernel(start):
    flags = PageFlags(1 << 20)
    flags.set_many([7, 40_000, 1_000_000])
    flags.set_range(200_000, 300_000)
    first = flags.find_next_set(0)
    assert first == 7 and flags._find_next is not None
    args = (flags._addrs, flags._occupied, start, flags.npages, flags._shift,
            flags._full_addr, _kernels.NULL)
    want = _kernels.table_find_next(*args) if start < flags.npages else -1
    assert flags.find_next_set(start) == want
    flags.clear(7)  # the bound call sees later writes: the same shadow arrays
    assert flags.find_next_set(0) == 40_000
    if JIT:
        assert flags._find_next.func is not _kernels.table_find_next
