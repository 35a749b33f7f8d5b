"""Bulk data addresses of arrays (pageflags/_addresses.py)."""

from __future__ import annotations

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
