import numpy as np
import pytest

from pageflags._args import check_index, check_pfn, check_pfn_array, check_range


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
