import warnings

import numpy as np
import pytest

from pageflags._args import (
    check_bound_array,
    check_fraction,
    check_index,
    check_pair,
    check_pfn,
    check_pfn_array,
    check_range,
    check_words,
    int_array,
    is_integer,
)


def matrix(rows):
    """``np.matrix(rows)`` without its PendingDeprecationWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.matrix(rows)


class Tagged(np.ndarray):
    """An ndarray subclass the checks know nothing about."""


def test_check_index():
    assert check_index("x", np.uint8(7)) == 7 and type(check_index("x", np.int64(7))) is int
    for bad in (1.0, True, "1", None, np.float32(1)):
        with pytest.raises(TypeError):
            check_index("x", bad)


def test_check_pfn_and_range():
    assert check_pfn(9, 10) == 9
    with pytest.raises(IndexError):
        check_pfn(10, 10)
    assert check_range(0, None, 10) == (0, 10)
    assert check_range(10, 10, 10) == (10, 10)
    with pytest.raises(IndexError):
        check_range(11, None, 10)
    with pytest.raises(ValueError):
        check_range(5, 4, 10)


def test_check_pfn_array_converts_without_copy_when_it_can():
    arr = np.arange(5)
    assert check_pfn_array(arr, 10) is not None
    assert np.shares_memory(check_pfn_array(arr, 10), arr)
    out = check_pfn_array(np.arange(5, dtype=np.uint64), 10)
    assert out.dtype == np.int64 and out.tolist() == [0, 1, 2, 3, 4]
    assert check_pfn_array([], 10).dtype == np.int64
    assert check_pfn_array([[1], [2]], 10).shape == (2,)


def test_check_pfn_array_names_first_bad_value():
    with pytest.raises(IndexError, match=r"pfn 12 at index 2 outside \[0, 10\)"):
        check_pfn_array([1, 2, 12, -1], 10)
    with pytest.raises(IndexError, match="18446744073709551615 at index 0"):
        check_pfn_array(np.array([2**64 - 1], dtype=np.uint64), 10)


@pytest.mark.parametrize("bad", [np.timedelta64(7), np.datetime64(7, "s"), np.array(5),
                                 np.bool_(True), 7.0])
def test_check_index_refuses_what_only_looks_like_an_integer(bad):
    assert not is_integer(bad)
    with pytest.raises(TypeError, match="x must be an integer"):
        check_index("x", bad)


def test_scalar_fast_paths_still_check_other_types():
    assert check_pfn(np.uint16(3), 10) == 3 and check_range(np.int8(1), np.int64(4), 10) == (1, 4)
    for call in (lambda: check_pfn(np.timedelta64(3), 10),
                 lambda: check_range(0, np.timedelta64(3), 10)):
        with pytest.raises(TypeError):
            call()


MASKED = np.ma.array([1, 2], mask=[False, True])


@pytest.mark.parametrize("values, match", [
    (MASKED, "MaskedArray; pass .compressed"),
    (pytest.param("matrix", "got matrix", id="matrix")),
    (np.arange(3).view(Tagged), "got Tagged"),
    ([True, 3], "not bools: got True"),
    ((3, np.True_), "not bools"),
    ([[1], [False]], "not bools"),
    ([np.array([True]), np.array([3])], "not bools: got a bool array"),
    ([MASKED], "MaskedArray"),
    (np.array([3], dtype="m8[s]"), "timedelta64"),
    (np.array(["2020-01-01"], dtype="M8[D]"), "datetime64"),
    ([np.timedelta64(1), 3], "timedelta64"),
    ([[1, 2], [3]], "must be an array of integers"),
    ([2**100, 1.5], "integer dtype"),
])
def test_int_array_refuses_what_is_not_plainly_integers(values, match):
    if isinstance(values, str):
        values = matrix([[1, 2]])
    with pytest.raises(TypeError, match=match):
        int_array("pfns", values)


def test_int_array_takes_memmap_as_a_plain_array_without_copying(tmp_path):
    mm = np.memmap(tmp_path / "pfns", dtype=np.int64, mode="w+", shape=3)
    mm[:] = [4, 5, 6]
    out = int_array("pfns", mm)
    assert type(out) is np.ndarray and np.shares_memory(out, mm)
    assert check_pfn_array(mm, 10).tolist() == [4, 5, 6]


def test_python_ints_past_64_bits_are_out_of_range_not_a_dtype_error():
    with pytest.raises(IndexError, match=r"pfn 1267650600228229401496703205376 at index 1"):
        check_pfn_array([1, 2**100], 10)
    with pytest.raises(IndexError, match=r"pfn -1 at index 0"):
        check_pfn_array([-1, 2**64 - 1], 10)  # no 64-bit dtype holds both
    with pytest.raises(IndexError, match=r"stops\[0\] = 1267650600228229401496703205376"):
        check_bound_array("stops", [2**100], 10)


def test_check_words_refuses_negative_and_oversized_words():
    words = np.array([1, 2], dtype=np.uint64)
    assert check_words("words", words) is words
    assert check_words("words", np.array([3], dtype=np.int8)).dtype == np.uint64
    for bad in (np.array([-1], dtype=np.int8), [-1], [5, -(2**63)]):
        with pytest.raises(ValueError, match="must be >= 0"):
            check_words("words", bad)
    with pytest.raises(ValueError, match="does not fit 64 bits"):
        check_words("words", [2**64])
    with pytest.raises(ValueError, match=r"must be >= 0: words\[1\] is -1"):
        check_words("words", [2**64 - 1, -1])
    assert check_words("words", [5, 2**64 - 1]).tolist() == [5, 2**64 - 1]
    with pytest.raises(TypeError, match="1-D"):
        check_words("words", [[1]])


def test_check_fraction_and_check_pair():
    assert check_fraction("f", 0) == 0.0 and check_fraction("f", np.float16(1)) == 1.0
    for bad, error in ((True, TypeError), ("0.5", TypeError), (0.5j, TypeError),
                       (np.timedelta64(1), TypeError), (float("nan"), ValueError),
                       (1.5, ValueError)):
        with pytest.raises(error, match="f must"):
            check_fraction("f", bad)
    assert check_pair("p", [np.int8(1), 2], 1) == (1, 2)
    for bad, error in (((1.5, 2), TypeError), (3, TypeError), ((1, 2, 3), TypeError),
                       ((True, 2), TypeError), ((0, 2), ValueError), ((3, 2), ValueError)):
        with pytest.raises(error, match="p must"):
            check_pair("p", bad, 1)
