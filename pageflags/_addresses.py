"""Data addresses of many NumPy arrays at once.

``arr.ctypes.data`` builds a ctypes helper object per call (about 1 µs): for the
16384 chunks of a loaded map that is more time than reading their 64 MiB.  Every
compiled NumPy extension reads an array's data pointer from a fixed field of the
array object (``PyArray_DATA``: ``PyArrayObject_fields.data``, right after the
object header), so that field's offset is part of NumPy's C ABI.  This module finds
the offset once at import by comparing with ``ctypes.data`` on probe arrays, then
reads the field of every array in one kernel call.  Should the probe ever fail, it
falls back to ``ctypes.data``.

:func:`chunk_objects` goes further for ``validate()``: checking that 16384 chunks are
read-only 1-D ``uint64`` arrays of the right length through their Python attributes
costs 3-5 ms, more than the rest of the check together.  NumPy's
``PyArrayObject_fields`` (ndarraytypes.h) lays out, after the object header: ``data``,
``nd``, ``dimensions``, ``strides``, ``base``, ``descr``, ``flags``.  The layout is
confirmed at import on probe arrays against their type, ``ndim``, ``dtype`` and
``flags.num`` (values compared, nothing dereferenced), then the dimensions pointer is
followed on the probes too.  Arrays the fast reading does not vouch for (or every
array, should the layout not be confirmed) are checked through their attributes.
"""

from __future__ import annotations

import ctypes
from operator import attrgetter

import numpy as np

from . import _kernels

__all__ = ["chunk_objects", "data_address", "data_addresses", "object_pointers"]

_ctypes_data = attrgetter("ctypes.data")


def _find_data_offset() -> int | None:
    probes = [np.empty(n, dtype=np.uint64) for n in (1, 3, 512)]
    for offset in range(8, 64, 8):  # inside the header of any ndarray object
        if all(ctypes.c_uint64.from_address(id(p) + offset).value == _ctypes_data(p)
               for p in probes):
            return offset
    return None


_DATA_OFFSET = _find_data_offset()
#: Up to this many arrays are read one ``ctypes`` word at a time, with no kernel: 2 µs
#: for one against 3-6 µs through the kernel and its argument arrays, 3 µs for four.
FEW_ARRAYS = 4
_UINT64 = np.dtype(np.uint64)


def _word(address: int) -> int:
    return ctypes.c_uint64.from_address(address).value


def _find_layout() -> np.ndarray | None:
    """Offsets of type, data, nd, dimensions, descr and flags in an ndarray object."""
    if _DATA_OFFSET is None:
        return None
    data = _DATA_OFFSET
    offsets = np.array([data - 8, data, data + 8, data + 16, data + 40, data + 48],
                       dtype=np.uint64)
    kind, _, nd, dims, descr, flags = (int(o) for o in offsets)
    probes: list[np.ndarray] = [np.zeros(3, np.uint64), np.zeros((5, 2), np.int8),
              np.zeros((2, 3, 4), np.float32, order="F"), np.zeros(7, np.uint64)[::2]]
    probes[0].setflags(write=False)
    for probe in probes:
        at = id(probe)
        if (_word(at + kind) != id(np.ndarray) or _word(at + nd) & 0xFFFFFFFF != probe.ndim
                or _word(at + descr) != id(probe.dtype)
                or _word(at + flags) & 0xFFFFFFFF != probe.flags.num):
            return None
    # Only now is the dimensions field known to be a pointer.
    for probe in probes:
        shape = _word(id(probe) + dims)
        if [_word(shape + 8 * k) for k in range(probe.ndim)] != list(probe.shape):
            return None
    return offsets


_LAYOUT = _find_layout()


def _is_chunk(array: object, words: int) -> bool:
    return (type(array) is np.ndarray and array.dtype == _UINT64
            and array.shape == (words,) and array.flags.c_contiguous
            and not array.flags.writeable)


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
    if count <= FEW_ARRAYS:  # no kernel: a fresh process's single-page work loads none
        return np.array([_word(id(array) + _DATA_OFFSET) for array in arrays],
                        dtype=np.uint64)
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


def chunk_objects(arrays: np.ndarray, words: int) -> tuple[np.ndarray, np.ndarray]:
    """Data addresses of the objects in ``arrays`` and whether each is a valid chunk.

    A valid chunk is exactly an ``np.ndarray``, 1-D with ``words`` elements of dtype
    ``uint64``, C-contiguous and read-only.  Every element must be a live object
    (the caller holds them); the address of one that is not an ndarray is 0.

    Examples
    --------
    >>> import numpy as np
    >>> chunk = np.zeros(8, np.uint64); chunk.setflags(write=False)
    >>> objects = np.empty(3, dtype=object); objects[:] = [chunk, np.zeros(8), "no"]
    >>> addresses, ok = chunk_objects(objects, 8)
    >>> ok.tolist(), int(addresses[0]) == chunk.ctypes.data
    ([True, False, False], True)
    """
    count = arrays.size
    ok = np.zeros(count, dtype=bool)
    if _LAYOUT is None:
        ok[:] = [_is_chunk(array, words) for array in arrays]
        is_array = np.array([type(array) is np.ndarray for array in arrays], dtype=bool)
        addresses = np.zeros(count, dtype=np.uint64)
        addresses[is_array] = data_addresses(arrays[is_array])
        return addresses, ok
    ids = np.fromiter(map(id, arrays), dtype=np.uint64, count=count)
    addresses = np.empty(count, dtype=np.uint64)
    descrs = np.empty(count, dtype=np.uint64)
    _kernels.read_chunk_objects(ids, _LAYOUT, np.uint64(id(np.ndarray)), np.uint64(words),
                                addresses, descrs, ok)
    # Arrays sharing a dtype object share its verdict: judge each object once.  Most
    # chunks hold NumPy's own uint64 dtype; unpickled ones hold an equal copy.
    other = ok & (descrs != np.uint64(id(_UINT64)))
    for descr in np.unique(descrs[other]):
        same = other & (descrs == descr)
        if arrays[np.argmax(same)].dtype != _UINT64:
            ok[same] = False
    return addresses, ok


def data_address(array: np.ndarray) -> int:
    """The data address of one live array, read from its object like
    :func:`data_addresses` (about 0.15 us; ``__array_interface__`` takes 1 us).

    Examples
    --------
    >>> import numpy as np
    >>> array = np.zeros(3); data_address(array) == array.ctypes.data
    True
    """
    if _DATA_OFFSET is None:
        return int(_ctypes_data(array))
    return _word(id(array) + _DATA_OFFSET)
