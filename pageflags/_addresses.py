"""Data addresses of many NumPy arrays at once.

``arr.ctypes.data`` builds a ctypes helper object per call (about 1 µs): for the
16384 chunks of a loaded map that is more time than reading their 64 MiB.  Every
compiled NumPy extension reads an array's data pointer from a fixed field of the
array object (``PyArray_DATA``: ``PyArrayObject_fields.data``, right after the
object header), so that field's offset is part of NumPy's C ABI.  This module finds
the offset once at import by comparing with ``ctypes.data`` on probe arrays, then
reads the field of every array in one kernel call.  Should the probe ever fail, it
falls back to ``ctypes.data``.
"""

from __future__ import annotations

import ctypes
from operator import attrgetter

import numpy as np

from . import _kernels

__all__ = ["data_addresses", "object_pointers"]

_ctypes_data = attrgetter("ctypes.data")


def _find_data_offset() -> int | None:
    probes = [np.empty(n, dtype=np.uint64) for n in (1, 3, 512)]
    for offset in range(8, 64, 8):  # inside the header of any ndarray object
        if all(ctypes.c_uint64.from_address(id(p) + offset).value == _ctypes_data(p)
               for p in probes):
            return offset
    return None


_DATA_OFFSET = _find_data_offset()


def data_addresses(arrays: np.ndarray) -> np.ndarray:
    """``uint64`` data addresses of the NumPy arrays in the object array ``arrays``.

    Every element must be a live ``np.ndarray`` (the caller holds them).

    Examples
    --------
    >>> import numpy as np
    >>> chunks = np.empty(2, dtype=object); chunks[0] = np.zeros(4); chunks[1] = np.ones(2)
    >>> [int(a) for a in data_addresses(chunks)] == [c.ctypes.data for c in chunks]
    True
    """
    count = arrays.size
    if _DATA_OFFSET is None:
        return np.fromiter(map(_ctypes_data, arrays), dtype=np.uint64, count=count)
    where = np.fromiter(map(id, arrays), dtype=np.uint64, count=count)
    where += np.uint64(_DATA_OFFSET)
    out = np.empty(count, dtype=np.uint64)
    _kernels.words_at(where, out)
    return out


def object_pointers(objects: np.ndarray) -> np.ndarray:
    """The ``PyObject *`` values of an object array, as uint64 (a view: no copy, no loop).

    CPython's ``id()`` is the object's address, so ``pointers == id(x)`` finds the
    entries that are ``x`` in one vectorised comparison: validate() checks the 2**25
    entries of a 52-bit table in milliseconds instead of seconds.

    Examples
    --------
    >>> import numpy as np
    >>> table = np.empty(3, dtype=object); table[1] = "x"
    >>> (object_pointers(table) == id(None)).tolist()
    [True, False, True]
    """
    buffer = (ctypes.c_uint64 * objects.size).from_address(objects.ctypes.data)
    return np.ctypeslib.as_array(buffer)
