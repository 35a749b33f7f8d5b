"""Bulk data addresses of arrays (pageflags/_addresses.py)."""

from __future__ import annotations

import pickle
from operator import attrgetter

import numpy as np
import pytest

from pageflags import _addresses


def arrays() -> np.ndarray:
    out = np.empty(5, dtype=object)
    out[:] = [np.zeros(1, np.uint64), np.ones(512, np.uint64), np.arange(7)[2:],
              np.empty(0, np.uint64), np.zeros((3, 4))[1]]
    return out


@pytest.mark.parametrize("offset", ["found", None], ids=["fast", "fallback"])
def test_addresses_equal_ctypes_data(monkeypatch, offset):
    if offset is None:
        monkeypatch.setattr(_addresses, "_DATA_OFFSET", None)
    else:
        assert _addresses._DATA_OFFSET is not None  # the probe works on this NumPy
    chunks = arrays()
    expected = np.array(list(map(attrgetter("ctypes.data"), chunks)), dtype=np.uint64)
    np.testing.assert_array_equal(_addresses.data_addresses(chunks), expected)
    assert _addresses.data_addresses(chunks[:0]).shape == (0,)


class _Subclass(np.ndarray):
    pass


def _read_only(array):
    array.setflags(write=False)
    return array


def candidates(words: int) -> np.ndarray:
    """Objects a table entry might hold: valid chunks and every way to be wrong."""
    equal_dtype = pickle.loads(pickle.dumps(np.zeros(words, np.uint64)))
    out = np.empty(13, dtype=object)
    out[:] = [
        _read_only(np.zeros(words, np.uint64)),                          # valid
        _read_only(equal_dtype),                                         # valid
        np.zeros(words, np.uint64),                                      # writable
        _read_only(np.zeros(words, np.int64)),
        _read_only(np.zeros(words + 1, np.uint64)),
        _read_only(np.zeros((words, 1), np.uint64)),
        _read_only(np.zeros(2 * words, np.uint64)[::2]),
        _read_only(np.zeros(words, np.dtype(np.uint64).newbyteorder(">"))),
        _read_only(np.zeros(words, np.uint64).view(_Subclass)),
        _read_only(np.zeros((), np.uint64)),
        None, "chunk", [0] * words,
    ]
    return out


@pytest.mark.parametrize("layout", ["read", "fallback"])
@pytest.mark.parametrize("words", [1, 4, 512])
def test_chunk_objects_judges_like_the_attributes(monkeypatch, layout, words):
    if layout == "fallback":
        monkeypatch.setattr(_addresses, "_LAYOUT", None)
    else:
        assert _addresses._LAYOUT is not None  # the layout is confirmed on this NumPy
    objects = candidates(words)
    addresses, ok = _addresses.chunk_objects(objects, words)
    one_word_strided_is_contiguous = words == 1
    assert ok.tolist() == [True, True] + [False] * 4 + [one_word_strided_is_contiguous] + [
        False] * 6
    expected = [o.ctypes.data if type(o) is np.ndarray else 0 for o in objects]
    np.testing.assert_array_equal(addresses, np.array(expected, np.uint64))
    empty = _addresses.chunk_objects(objects[:0], words)
    assert empty[0].shape == empty[1].shape == (0,)


@pytest.mark.parametrize("offset", [None, 8, 24, 32])
def test_layout_is_unconfirmed_without_the_right_data_offset(monkeypatch, offset):
    assert _addresses._find_layout() is not None
    monkeypatch.setattr(_addresses, "_DATA_OFFSET", offset)
    assert _addresses._find_layout() is None


def test_data_address_of_one_array_is_its_data_pointer():
    from pageflags._addresses import data_address

    for array in (np.zeros(3), np.frombuffer(bytes(64), dtype=np.uint64),
                  np.arange(10)[3:], np.empty((2, 2), order="F")):
        assert data_address(array) == array.ctypes.data
