"""Numba kernels over plain arrays: the bulk work of PageFlags and FlatPageFlags.

Kernels take NumPy arrays and ints only; they never allocate chunks and never see
the object-array table.  A PageFlags map reaches its chunks through ``addrs``, a
``uint64`` array with one entry per chunk: 0 for a ``None`` (all-zero) entry, the
data address of the shared all-ones chunk for ``FULL``, and otherwise the data
address of the chunk's own ``uint64`` words (see ``bitmap.py`` for why).  Word-level
helpers (``_set_bits`` and friends) are shared by the flat and the two-level kernels,
so both implement one rule for one operation.

Every kernel is ``nogil`` and serial, so threads from a pool can call them at once on
disjoint maps.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .ops import Op

_JIT = {"cache": True, "nogil": True}

_BUILD_LOCK = threading.Lock()


class _LazyDispatcher:
    """A ``numba.njit`` kernel whose dispatcher is made on first use.

    Making the 90 dispatchers of this module (each one sets up its cache locator and
    type-dispatch machinery) took 60-70 ms of ``import pageflags``; a script uses a
    dozen of them.  The first call, or the first attribute a dispatcher has and the
    proxy lacks, builds the dispatcher and puts it in the module's namespace in the
    proxy's place, so ``_kernels.name(...)`` calls the dispatcher itself from then on.

    Kernels that call kernels still compile: Numba types a global through its
    ``_numba_type_`` (here the dispatcher's own type), and the inlining pass reads
    ``targetoptions`` and ``py_func`` (forwarded to the dispatcher).

    Parameters
    ----------
    py_func : callable
        The Python function to compile.
    options : dict
        Keyword arguments for ``numba.njit``.
    """

    def __init__(self, py_func: Callable, options: dict[str, Any]) -> None:
        functools.update_wrapper(self, py_func)
        self.py_func = py_func
        self._options = options
        self._dispatcher: Any = None

    def dispatcher(self) -> Any:
        """The ``numba`` dispatcher, made (once, whichever thread asks first) if need be."""
        built = self._dispatcher
        if built is not None:
            return built
        # Made outside the lock: a thread compiling a caller holds Numba's compiler
        # lock and may come here for a callee.  A dispatcher that loses the race is
        # dropped before anything calls it.
        made = numba.njit(**self._options)(self.py_func)
        with _BUILD_LOCK:
            if self._dispatcher is None:
                self._dispatcher = made
                namespace = self.py_func.__globals__
                if namespace.get(self.__name__) is self:
                    namespace[self.__name__] = made
            return self._dispatcher

    @property
    def _numba_type_(self) -> Any:
        return self.dispatcher()._numba_type_

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.dispatcher()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe for these
            raise AttributeError(name)
        return getattr(self.dispatcher(), name)

    def __repr__(self) -> str:
        return f"<lazy numba kernel {self.__name__}>"


def _njit(**options: Any) -> Callable[[Callable], _LazyDispatcher]:
    """``numba.njit(**options)``, made lazily: see :class:`_LazyDispatcher`."""
    return functools.partial(_LazyDispatcher, options=options)


def dispatchers_built() -> list[str]:
    """Names of this module's kernels whose Numba dispatcher exists (for tests, bench).

    Examples
    --------
    >>> int(first_out_of_range(np.array([3, 9]), 5))  # the first call builds it
    1
    >>> "first_out_of_range" in dispatchers_built()
    True
    """
    from numba.core.dispatcher import Dispatcher

    return sorted(name for name, value in globals().items()
                  if isinstance(value, Dispatcher)
                  or (isinstance(value, _LazyDispatcher) and value._dispatcher is not None))

ALL_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
ONE = np.uint64(1)
NULL = np.uint64(0)


@intrinsic
def _address_to_pointer(typingctx, address):
    """``(uint64 *) address``: the seed's ``unsigned long *`` table entry."""
    sig = types.CPointer(types.uint64)(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.uint64)))

    return sig, codegen


@intrinsic
def popcount(typingctx, word):
    """Set bits in a uint64 word (``llvm.ctpop``, vectorised by LLVM in loops)."""
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(64)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.ctpop.i64")
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def prefetch(typingctx, address):
    """Hint the CPU to fetch the cache line at ``address`` into L2 (``llvm.prefetch``
    with locality 2: ``prefetcht1`` on x86).

    The two-level lookups chain two loads (the shadow entry, then the word); without
    a hint the second waits for the first, so random pfns run at half flat speed.
    Into L2, not L1: a hint into L1 holds one of the core's few L1 miss buffers until
    the line comes, so no more than a few dozen can be in flight; on the build
    machine (AMD EPYC) random test_many ran 2.3x faster with ``prefetcht1`` 128 pfns
    ahead than with ``prefetcht0`` 32 ahead, and deeper L1 hints did not help.
    """
    sig = types.void(types.uint64)

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read (0), locality 2 (the L2 cache), data cache (1)
        builder.call(fn, [builder.inttoptr(args[0], i8p), ir.Constant(i32, 0),
                          ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


#: How many pfns ahead the bulk kernels prefetch: on 16 Mi random pfns over 2 TiB,
#: test_many took 115 ms without a hint (flat's loop then), 62 ms 64 ahead, 54 ms
#: 128 ahead, 55 ms 256 ahead and 57 ms 512 ahead.
PREFETCH_DISTANCE = 128

# Bulk kernels do their pfn and address arithmetic in uint64 throughout: Numba turns
# a comparison or sum of a uint64 and an int64 into float64 arithmetic (a conversion
# per pfn, and inexact above 2**53), and an unsigned index needs no wraparound check.
_U2, _U3, _U4, _U6, _U63, _U64 = (np.uint64(v) for v in (2, 3, 4, 6, 63, 64))


@_njit(inline="always")
def _word_offset(p, local_mask):
    """Byte offset, in its chunk, of the word that holds page ``p`` (both uint64)."""
    return ((p & local_mask) >> _U6) << _U3


_DISTANCE = np.uint64(PREFETCH_DISTANCE)


@_njit(inline="always")
def _prefetch_pfn(addrs, pfns, i, last, shift, local_mask):
    """Prefetch the word of the pfn ``PREFETCH_DISTANCE`` places after ``i``
    (uint64, as ``last``, the last index).

    Branch-free: near the end it prefetches the last pfn again, and for a ``None``
    entry an address below one page, which a prefetch never faults on.
    """
    j = i + _DISTANCE
    q = np.uint64(pfns[j if j < last else last])
    prefetch(addrs[q >> shift] + _word_offset(q, local_mask))


@intrinsic
def _load_word(typingctx, address):
    """``*(uint64 *) address``."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        ptr_type = context.get_value_type(types.CPointer(types.uint64))
        return builder.load(builder.inttoptr(args[0], ptr_type))

    return sig, codegen


@intrinsic
def _store_word(typingctx, address, value):
    """``*(uint64 *) address = value``."""
    sig = types.void(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        ptr_type = context.get_value_type(types.CPointer(types.uint64))
        builder.store(args[1], builder.inttoptr(args[0], ptr_type))
        return context.get_dummy_value()

    return sig, codegen


@_njit(inline="always")
def chunk_words(address, words_per_chunk):
    """The words of the chunk at ``address`` as a 1-D uint64 array (no copy)."""
    return numba.carray(_address_to_pointer(address), (words_per_chunk,))


# --- word-level helpers over bit offsets [start, stop) of one word array ----------

@_njit(inline="always")
def _edge_masks(start, stop):
    """First word, last word and their masks for bits [start, stop), stop > start."""
    first = start >> 6
    last = (stop - 1) >> 6
    first_mask = ALL_ONES << np.uint64(start & 63)
    last_mask = ALL_ONES >> np.uint64(63 - ((stop - 1) & 63))
    if first == last:
        first_mask &= last_mask
        last_mask = first_mask
    return first, last, first_mask, last_mask


# Inner loops run over a slice: indexing ``words[i]`` with a signed ``i`` that LLVM
# cannot prove non-negative keeps Numba's wraparound check and blocks vectorisation
# (4 GB/s instead of 25 GB/s for a popcount).

@_njit(inline="always")
def _popcount_all(words):
    total = 0
    for i in range(words.size):
        total += popcount(words[i])
    return total


@_njit(**_JIT)
def _set_bits(words, start, stop):
    """Set bits [start, stop) of ``words``; return how many were newly set."""
    if start >= stop:
        return 0
    first, last, first_mask, last_mask = _edge_masks(start, stop)
    added = popcount(first_mask & ~words[first])
    words[first] |= first_mask
    if last != first:
        inner = words[first + 1:last]
        added += 64 * inner.size - _popcount_all(inner)
        inner[:] = ALL_ONES
        added += popcount(last_mask & ~words[last])
        words[last] |= last_mask
    return added


@_njit(**_JIT)
def _clear_bits(words, start, stop):
    """Clear bits [start, stop) of ``words``; return how many were set before."""
    if start >= stop:
        return 0
    first, last, first_mask, last_mask = _edge_masks(start, stop)
    removed = popcount(first_mask & words[first])
    words[first] &= ~first_mask
    if last != first:
        inner = words[first + 1:last]
        removed += _popcount_all(inner)
        inner[:] = NULL
        removed += popcount(last_mask & words[last])
        words[last] &= ~last_mask
    return removed


@_njit(**_JIT)
def _count_bits(words, start, stop):
    """Set bits among bits [start, stop) of ``words``."""
    if start >= stop:
        return 0
    first, last, first_mask, last_mask = _edge_masks(start, stop)
    total = popcount(first_mask & words[first])
    if last != first:
        total += _popcount_all(words[first + 1:last])
        total += popcount(last_mask & words[last])
    return total


@_njit(**_JIT)
def _any_bits(words, start, stop):
    """Whether any of bits [start, stop) of ``words`` is set."""
    if start >= stop:
        return False
    first, last, first_mask, last_mask = _edge_masks(start, stop)
    if words[first] & first_mask:
        return True
    if last != first:
        inner = words[first + 1:last]
        for i in range(inner.size):
            if inner[i]:
                return True
        if words[last] & last_mask:
            return True
    return False


# --- argument checks that must see every element -----------------------------------

@_njit(**_JIT)
def first_out_of_range(pfns, npages):
    """Index of the first pfn outside [0, npages), or -1."""
    for i in range(pfns.size):
        p = pfns[i]
        if p < 0 or p >= npages:
            return i
    return -1


# --- flat bitmap kernels ---------------------------------------------------------

@_njit(**_JIT)
def flat_set_range(words, start, stop):
    return _set_bits(words, start, stop)


@_njit(**_JIT)
def flat_clear_range(words, start, stop):
    return _clear_bits(words, start, stop)


@_njit(**_JIT)
def flat_count_range(words, start, stop):
    return _count_bits(words, start, stop)


@_njit(**_JIT)
def flat_any_range(words, start, stop):
    return _any_bits(words, start, stop)


# The flat bulk kernels prefetch as the two-level ones do, so that comparisons with
# a flat bitmap measure the table and not a hint one side lacks.

@_njit(inline="always")
def _prefetch_flat(base, pfns, i, last):
    """Prefetch the word of the pfn ``PREFETCH_DISTANCE`` places after ``i``."""
    j = i + _DISTANCE
    q = np.uint64(pfns[j if j < last else last])
    prefetch(base + ((q >> _U6) << _U3))


_SET, _CLEAR, _TEST = 0, 1, 2


@_njit(inline="always")
def _flat_pass(words, pfns, mode, out):
    """One prefetching pass over ``pfns``: set, clear or test (into ``out``) each bit."""
    base = np.uint64(words.ctypes.data)
    n = np.uint64(pfns.size)
    i = np.uint64(0)
    while i < n:
        _prefetch_flat(base, pfns, i, n - ONE)
        p = np.uint64(pfns[i])
        bit = ONE << (p & _U63)
        if mode == _SET:
            words[p >> _U6] |= bit
        elif mode == _CLEAR:
            words[p >> _U6] &= ~bit
        else:
            out[i] = (words[p >> _U6] & bit) != NULL
        i += ONE


@_njit(**_JIT)
def flat_set_many(words, pfns):
    """Set bit ``p`` for every p in ``pfns``."""
    _flat_pass(words, pfns, _SET, words)


@_njit(**_JIT)
def flat_clear_many(words, pfns):
    """Clear bit ``p`` for every p in ``pfns``."""
    _flat_pass(words, pfns, _CLEAR, words)


@_njit(**_JIT)
def flat_test_many(words, pfns, out):
    """``out[i] = bit pfns[i]``."""
    _flat_pass(words, pfns, _TEST, out)


# --- two-level kernels -------------------------------------------------------------
# A chunk's pfns are [c << chunk_shift, (c + 1) << chunk_shift); within a range
# [start, stop) each chunk sees the local bit span [lo, hi).

@_njit(inline="always")
def _local_span(c, start, stop, chunk_shift):
    base = c << chunk_shift
    lo = max(start, base) - base
    hi = min(stop, base + (1 << chunk_shift)) - base
    return lo, hi


@_njit(**_JIT)
def table_set_range(addrs, counts, start, stop, chunk_shift, full_addr):
    """Set pages [start, stop); every entry in the range must be FULL or private.

    Returns the number of pages newly set; ``counts`` follows.
    """
    if start >= stop:
        return 0
    wpc = 1 << (chunk_shift - 6)
    added = 0
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        a = addrs[c]
        if a == full_addr:
            continue
        lo, hi = _local_span(c, start, stop, chunk_shift)
        n = _set_bits(chunk_words(a, wpc), lo, hi)
        counts[c] += n
        added += n
    return added


@_njit(**_JIT)
def table_clear_range(addrs, counts, start, stop, chunk_shift, full_addr):
    """Clear pages [start, stop); no entry in the range may be FULL.

    Returns the number of pages that were set; ``counts`` follows.
    """
    if start >= stop:
        return 0
    wpc = 1 << (chunk_shift - 6)
    removed = 0
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        a = addrs[c]
        if a == NULL:
            continue
        lo, hi = _local_span(c, start, stop, chunk_shift)
        n = _clear_bits(chunk_words(a, wpc), lo, hi)
        counts[c] -= n
        removed += n
    return removed


# A span inside one entry: one kernel call, however small.

@_njit(**_JIT)
def table_write_span(addrs, counts, c, lo, hi, chunk_shift, full_addr, value):
    """Set (``value``) or clear local bits [lo, hi) of entry ``c``: pages changed, or
    -1 (and nothing done) when the entry must first get a chunk of its own (``None``
    to set bits in, ``FULL`` to clear bits from)."""
    a = addrs[c]
    done, needs_chunk = (full_addr, NULL) if value else (NULL, full_addr)
    if a == done:
        return 0
    if a == needs_chunk:
        return -1
    words = chunk_words(a, 1 << (chunk_shift - 6))
    if value:
        n = _set_bits(words, lo, hi)
        counts[c] += n
    else:
        n = _clear_bits(words, lo, hi)
        counts[c] -= n
    return n


@_njit(**_JIT)
def table_count_range(addrs, counts, start, stop, chunk_shift, full_addr):
    """Pages set in [start, stop): cached counts for whole chunks, popcount at edges."""
    if start >= stop:
        return 0
    wpc = 1 << (chunk_shift - 6)
    pages_per_chunk = 1 << chunk_shift
    total = 0
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        a = addrs[c]
        if a == NULL:
            continue
        lo, hi = _local_span(c, start, stop, chunk_shift)
        if lo == 0 and hi == pages_per_chunk:
            total += counts[c]
        elif a == full_addr:
            total += hi - lo
        else:
            total += _count_bits(chunk_words(a, wpc), lo, hi)
    return total


@_njit(**_JIT)
def table_any_range(addrs, counts, start, stop, chunk_shift, full_addr):
    """Whether any page in [start, stop) is set."""
    if start >= stop:
        return False
    wpc = 1 << (chunk_shift - 6)
    pages_per_chunk = 1 << chunk_shift
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        a = addrs[c]
        if a == NULL:
            continue
        if a == full_addr:
            return True
        lo, hi = _local_span(c, start, stop, chunk_shift)
        if lo == 0 and hi == pages_per_chunk:
            if counts[c] > 0:
                return True
        elif _any_bits(chunk_words(a, wpc), lo, hi):
            return True
    return False


@_njit(**_JIT)
def table_entries_at(addrs, pfns, first, step, chunk_shift, sought, seen, out):
    """Chunk numbers, once each, of the entries of ``pfns[first::step]`` whose address
    is ``sought`` (NULL or FULL's): the entries a bulk write must first give a chunk.

    ``seen`` is a zeroed bool per entry; returns how many numbers went to ``out``.
    With ``step`` above 1 it is a prescan: a sample that finds, cheaply, the entries
    of pfns that come many to an entry, before one pass writes them all.
    """
    shift = np.uint64(chunk_shift)
    want = np.uint64(sought)
    n = np.uint64(pfns.size)
    stride = np.uint64(step)
    k = 0
    i = np.uint64(first)
    while i < n:
        c = np.uint64(pfns[i]) >> shift
        if addrs[c] == want and not seen[c]:
            seen[c] = True
            out[k] = c
            k += 1
        i += stride
    return k


@_njit(**_JIT)
def table_mark_entries(pfns, first, chunk_shift, marks):
    """``marks[c] = True`` for the entry of every pfn of ``pfns[first:]``.

    Branch-free, for many pfns: twice as fast as :func:`table_entries_at`, but
    Python then reads ``marks`` over the whole table.
    """
    shift = np.uint64(chunk_shift)
    n = np.uint64(pfns.size)
    i = np.uint64(first)
    while i < n:
        marks[np.uint64(pfns[i]) >> shift] = True
        i += ONE


@_njit(inline="always")
def _pfn_bits(chunk_shift, pfns):
    """``(shift, local_mask, n, last)`` in uint64 for a loop over ``pfns``."""
    shift = np.uint64(chunk_shift)
    n = np.uint64(pfns.size)
    return shift, (ONE << shift) - ONE, n, n - ONE


# The pfn loops below count in uint64 (``while i < n``): over ``range(first, n)``
# with a ``first`` that LLVM cannot prove non-negative, every index keeps a
# wraparound check, and random set_many ran 25% slower.

@_njit(inline="always")
def _write_pass(addrs, counts, pfns, first, chunk_shift, full, value, counted, emptied, e):
    """Set (``value``) or clear pfns ``pfns[first:]`` until one falls in an entry that
    must first get a chunk (None to set, FULL to clear): ``(changed, reached, e)``."""
    shift, local_mask, n, last = _pfn_bits(chunk_shift, pfns)
    stop, done = (NULL, full) if value else (full, NULL)
    changed = 0
    i = np.uint64(first)
    while i < n:
        _prefetch_pfn(addrs, pfns, i, last, shift, local_mask)
        p = np.uint64(pfns[i])
        c = p >> shift
        a = addrs[c]
        if a == stop:
            return changed, np.int64(i), e
        i += ONE
        if a == done:
            continue
        at = a + _word_offset(p, local_mask)
        old = _load_word(at)
        bit = ONE << (p & _U63)
        new = old | bit if value else old & ~bit
        if not counted:
            _store_word(at, new)
        elif new != old:  # a store only for a change: a warm map stays clean
            _store_word(at, new)
            changed += 1
            if value:
                counts[c] += 1
            else:
                counts[c] -= 1
                if counts[c] == 0:
                    emptied[e] = c
                    e += 1
    return changed, pfns.size, e


@_njit(**_JIT)
def table_set_many(addrs, counts, pfns, first, chunk_shift, full_addr, counted):
    """Set pfns ``pfns[first:]`` in order, stopping at the first in a ``None`` entry.

    Returns ``(pages added, index reached)``: ``pfns.size`` when done, else the pfn
    whose entry needs a chunk.  Python gives chunks beforehand to the entries a
    prescan finds, and, should the pass still stop, to the entries of the pfns left
    (:func:`table_entries_at`), then calls again from there.  With ``counted`` false,
    ``counts`` and the pages added are left for :func:`table_recount` (cheaper when
    the pfns outnumber the chunks' words).
    """
    full = np.uint64(full_addr)
    unused = np.empty(0, dtype=np.int64)
    # Two loops, so the uncounted one carries no counting at all.
    added, reached, _ = (
        _write_pass(addrs, counts, pfns, first, chunk_shift, full, True, True, unused, 0)
        if counted else
        _write_pass(addrs, counts, pfns, first, chunk_shift, full, True, False, unused, 0))
    return added, reached


@_njit(**_JIT)
def table_clear_many(addrs, counts, pfns, first, chunk_shift, full_addr, emptied, e,
                     counted):
    """Clear pfns ``pfns[first:]`` in order, stopping at the first in a FULL entry.

    As :func:`table_set_many`, for entries that must first get a private copy of
    ``FULL``.  Chunks whose count drops to zero go to ``emptied[e:]`` for Python to
    free (when ``counted``).  Returns ``(pages removed, index reached, new e)``.
    """
    full = np.uint64(full_addr)
    if counted:
        return _write_pass(addrs, counts, pfns, first, chunk_shift, full, False, True,
                           emptied, e)
    return _write_pass(addrs, counts, pfns, first, chunk_shift, full, False, False, emptied, e)


@_njit(**_JIT)
def table_test_many(addrs, pfns, chunk_shift, full_addr, out):
    """``out[i] = page pfns[i] is set``, branching on the entry kind.

    Best when most pfns fall in one kind of entry (sparse spaces: mostly ``None``):
    the predicted branch skips waiting for the entry at all.
    """
    shift, local_mask, n, last = _pfn_bits(chunk_shift, pfns)
    full = np.uint64(full_addr)
    i = np.uint64(0)
    while i < n:
        _prefetch_pfn(addrs, pfns, i, last, shift, local_mask)
        p = np.uint64(pfns[i])
        a = addrs[p >> shift]
        if a == NULL:
            out[i] = False
        elif a == full:
            out[i] = True
        else:
            word = _load_word(a + _word_offset(p, local_mask))
            out[i] = ((word >> (p & _U63)) & ONE) != NULL
        i += ONE


@_njit(**_JIT)
def table_test_many_mixed(addrs, pfns, chunk_shift, zero_addr, out):
    """``out[i] = page pfns[i] is set``, without branching on the entry kind.

    A ``None`` entry reads the shared zero chunk at ``zero_addr`` and a ``FULL`` one
    the all-ones chunk, so pfns mixing ``None`` and ``FULL`` entries (hotplug layouts)
    cost no mispredicted branches: 3x faster there than :func:`table_test_many`,
    1.5x slower where nearly every pfn hits ``None``.
    """
    shift, local_mask, n, last = _pfn_bits(chunk_shift, pfns)
    zero = np.uint64(zero_addr)
    i = np.uint64(0)
    while i < n:
        j = i + _DISTANCE
        q = np.uint64(pfns[j if j < last else last])
        prefetch(_word_address(addrs, q, shift, local_mask, zero))
        p = np.uint64(pfns[i])
        word = _load_word(_word_address(addrs, p, shift, local_mask, zero))
        out[i] = ((word >> (p & _U63)) & ONE) != NULL
        i += ONE


@_njit(inline="always")
def _word_address(addrs, p, shift, local_mask, zero):
    """Address of the word holding page ``p``, in the zero chunk for a NULL entry
    (every argument uint64)."""
    a = addrs[p >> shift]
    a = a if a != NULL else zero
    return a + _word_offset(p, local_mask)


@_njit(**_JIT)
def table_popcounts(addrs, chunk_shift, out):
    """``out[c]`` = popcount of chunk c's data (0 for NULL), read from memory."""
    wpc = 1 << (chunk_shift - 6)
    for c in range(addrs.size):
        a = addrs[c]
        if a == NULL:
            out[c] = 0
            continue
        out[c] = _popcount_all(chunk_words(a, wpc))


@_njit(**_JIT)
def table_recount(addrs, counts, chunk_shift, full_addr):
    """Set every private chunk's count from its bits; return the map's total."""
    wpc = 1 << (chunk_shift - 6)
    total = 0
    for c in range(addrs.size):
        a = addrs[c]
        if a != NULL and a != full_addr:
            counts[c] = _popcount_all(chunk_words(a, wpc))
        total += counts[c]
    return total


@_njit(**_JIT)
def table_equal(addrs_a, counts_a, addrs_b, counts_b, chunk_shift):
    """Whether two tables of one geometry hold the same bits.

    Equal counts of 0 or of a whole chunk decide a chunk without reading it.
    """
    wpc = 1 << (chunk_shift - 6)
    pages_per_chunk = 1 << chunk_shift
    for c in range(addrs_a.size):
        n = counts_a[c]
        if n != counts_b[c]:
            return False
        if n == 0 or n == pages_per_chunk or addrs_a[c] == addrs_b[c]:
            continue
        a = chunk_words(addrs_a[c], wpc)
        b = chunk_words(addrs_b[c], wpc)
        for i in range(wpc):
            if a[i] != b[i]:
                return False
    return True


@_njit(**_JIT)
def table_equal_flat(addrs, chunk_shift, words):
    """Whether a table holds the same bits as the flat bitmap ``words``."""
    wpc = 1 << (chunk_shift - 6)
    for c in range(addrs.size):
        base = c * wpc
        n = min(wpc, words.size - base)
        a = addrs[c]
        if a == NULL:
            for i in range(n):
                if words[base + i] != NULL:
                    return False
        else:
            chunk = chunk_words(a, wpc)
            for i in range(n):
                if words[base + i] != chunk[i]:
                    return False
    return True


# --- memory maps and hotplug (memmap.py, hotplug.py) --------------------------------

@_njit(**_JIT)
def table_set_ranges(addrs, counts, starts, stops, chunk_shift, full_addr):
    """Set pages [starts[i], stops[i]) for every i; as ``table_set_range`` for each.

    One call builds a whole memory map, however many ranges it has.
    """
    added = 0
    for i in range(starts.size):
        added += table_set_range(addrs, counts, starts[i], stops[i], chunk_shift, full_addr)
    return added


@_njit(**_JIT)
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


@_njit(**_JIT)
def fill_chunks_at(chunk_addrs, words_per_chunk, value):
    """Write ``value`` to every word of the chunks at ``chunk_addrs`` (new ones: the
    private copies of ``FULL`` a bulk write makes, at memory bandwidth)."""
    for j in range(chunk_addrs.size):
        words = chunk_words(chunk_addrs[j], words_per_chunk)
        for i in range(words_per_chunk):
            words[i] = value


@_njit(**_JIT)
def copy_chunks_at(source_addrs, target_addrs, words_per_chunk):
    """Copy the chunk at ``source_addrs[j]`` into the one at ``target_addrs[j]``."""
    for j in range(source_addrs.size):
        source = chunk_words(source_addrs[j], words_per_chunk)
        target = chunk_words(target_addrs[j], words_per_chunk)
        for i in range(words_per_chunk):
            target[i] = source[i]


# --- persistence: XXH64 checksum over scattered word segments ----------------------
# Saved files carry an XXH64 (seed 0) of their bytes.  The input is a list of word
# segments (header, entry arrays, then the chunks where they lie in memory), fed to
# a state in as many calls as the caller likes.  Every segment is whole 64-bit
# words, so only XXH64's 8-byte tail rule is needed.

_XXH_P1 = np.uint64(0x9E3779B185EBCA87)
_XXH_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_XXH_P3 = np.uint64(0x165667B19E3779F9)
_XXH_P4 = np.uint64(0x85EBCA77C2B2AE63)
_XXH_P5 = np.uint64(0x27D4EB2F165667C5)


@_njit(inline="always")
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@_njit(inline="always")
def _xxh_round(acc, lane):
    return _rotl(acc + lane * _XXH_P2, 31) * _XXH_P1


@_njit(inline="always")
def _xxh_merge(acc, v):
    return (acc ^ _xxh_round(NULL, v)) * _XXH_P1 + _XXH_P4


@_njit(**_JIT)
def xxh64_start(seed):
    """A fresh XXH64 state: lanes v1..v4, four pending words, their count, words seen."""
    state = np.zeros(10, dtype=np.uint64)
    state[0] = seed + _XXH_P1 + _XXH_P2
    state[1] = seed + _XXH_P2
    state[2] = seed
    state[3] = seed - _XXH_P1
    return state


@_njit(**_JIT)
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
        words = numba.carray(_address_to_pointer(addrs[s]), (n,))
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


@_njit(**_JIT)
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


@_njit(**_JIT)
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


# --- Roaring portable serialization (roaring.py) -----------------------------------
# A Roaring container holds the values [key << 16, (key + 1) << 16): 1024 words of
# the map, which lie in one chunk or span several, whatever the chunk size.  Writers
# and readers go byte by byte, so the output is little-endian on any host.

ROARING_ARRAY = 0
ROARING_BITSET = 1
ROARING_RUN = 2
_COOKIE_NO_RUN = 12346
_COOKIE_RUN = 12347
_ARRAY_MAX = 4096
_CONTAINER_WORDS = 1024


@_njit(inline="always")
def _put(out, pos, value, nbytes):
    v = np.uint64(value)
    for b in range(nbytes):
        out[pos + b] = np.uint8((v >> np.uint64(8 * b)) & np.uint64(0xFF))
    return pos + nbytes


@_njit(inline="always")
def _get(buf, pos, nbytes):
    v = NULL
    for b in range(nbytes):
        v |= np.uint64(buf[pos + b]) << np.uint64(8 * b)
    return v


@_njit(inline="always")
def _segment(chunk_shift):
    """(words per chunk, log2 of it, words of one chunk inside one container)."""
    wshift = chunk_shift - 6
    wpc = 1 << wshift
    return wpc, wshift, min(wpc, _CONTAINER_WORDS)


@_njit(**_JIT)
def _container_words(addrs, chunk_shift, key, buf):
    """Copy container ``key``'s 1024 words out of the table into ``buf``."""
    wpc, wshift, seg = _segment(chunk_shift)
    base = key << 10
    for s in range(0, _CONTAINER_WORDS, seg):
        gw = base + s
        c = gw >> wshift
        if c >= addrs.size or addrs[c] == NULL:
            for j in range(seg):
                buf[s + j] = NULL
        else:
            words = chunk_words(addrs[c], wpc)
            off = gw & (wpc - 1)
            for j in range(seg):
                buf[s + j] = words[off + j]


@_njit(**_JIT)
def _container_full(counts, chunk_shift, key):
    """Whether the cached counts say every chunk under container ``key`` is all ones."""
    _, wshift, seg = _segment(chunk_shift)
    ppc = 1 << chunk_shift
    base = key << 10
    for s in range(0, _CONTAINER_WORDS, seg):
        c = (base + s) >> wshift
        if c >= counts.size or counts[c] != ppc:
            return False
    return True


@_njit(**_JIT)
def roaring_measure(addrs, counts, chunk_shift, keys, cards, nruns):
    """Cardinality and number of runs of each container ``keys[i]`` of a table."""
    buf = np.empty(_CONTAINER_WORDS, dtype=np.uint64)
    for i in range(keys.size):
        if _container_full(counts, chunk_shift, keys[i]):
            cards[i] = 1 << 16
            nruns[i] = 1
            continue
        _container_words(addrs, chunk_shift, keys[i], buf)
        card = 0
        runs = 0
        carry = NULL
        for j in range(_CONTAINER_WORDS):
            w = buf[j]
            card += popcount(w)
            runs += popcount(w & ~((w << ONE) | carry))  # bits that start a run
            carry = w >> np.uint64(63)
        cards[i] = card
        nruns[i] = runs


@_njit(inline="always")
def _container_next_bit(buf, p, want_set):
    """First bit >= p of ``buf`` that is set (or clear); 65536 if none."""
    found = _next_bit(buf, p, 1 << 16, NULL if want_set else ALL_ONES)
    return found if found >= 0 else 1 << 16


@_njit(**_JIT)
def _write_body(out, pos, kind, card, buf):
    if kind == ROARING_BITSET:
        for j in range(_CONTAINER_WORDS):
            pos = _put(out, pos, buf[j], 8)
    elif kind == ROARING_ARRAY:
        for j in range(_CONTAINER_WORDS):
            w = buf[j]
            while w != NULL:
                pos = _put(out, pos, (j << 6) + cttz(w), 2)
                w &= w - ONE
    elif card == 1 << 16:
        pos = _put(out, pos, 1, 2)
        pos = _put(out, pos, 0, 2)
        pos = _put(out, pos, 0xFFFF, 2)
    else:
        count_at = pos
        pos += 2
        count = 0
        start = _container_next_bit(buf, 0, True)
        while start < 1 << 16:
            stop = _container_next_bit(buf, start, False)
            pos = _put(out, pos, start, 2)
            pos = _put(out, pos, stop - start - 1, 2)
            count += 1
            start = _container_next_bit(buf, stop, True)
        _put(out, count_at, count, 2)
    return pos


@_njit(inline="always")
def roaring_body_bytes(kind, card, nruns):
    if kind == ROARING_RUN:
        return 2 + 4 * nruns
    if kind == ROARING_ARRAY:
        return 2 * card
    return 8 * _CONTAINER_WORDS


@_njit(**_JIT)
def roaring_write(addrs, chunk_shift, keys, kinds, cards, nruns, out):
    """Write the 64-bit portable serialization of containers ``keys`` into zeroed ``out``.

    ``keys`` ascend; ``kinds``, ``cards`` and ``nruns`` come from ``roaring_measure``
    and the caller's choice of container kinds.  Returns the bytes written.
    """
    buf = np.empty(_CONTAINER_WORDS, dtype=np.uint64)
    n = keys.size
    buckets = 0
    for i in range(n):
        if i == 0 or (keys[i] >> 16) != (keys[i - 1] >> 16):
            buckets += 1
    pos = _put(out, 0, buckets, 8)
    i = 0
    while i < n:
        high = keys[i] >> 16
        j = i
        has_run = False
        while j < n and (keys[j] >> 16) == high:
            has_run |= kinds[j] == ROARING_RUN
            j += 1
        size = j - i
        pos = _put(out, pos, high, 4)
        start = pos
        if has_run:
            pos = _put(out, pos, _COOKIE_RUN | ((size - 1) << 16), 4)
            for t in range(size):
                if kinds[i + t] == ROARING_RUN:
                    out[pos + (t >> 3)] |= np.uint8(1 << (t & 7))
            pos += (size + 7) >> 3
        else:
            pos = _put(out, pos, _COOKIE_NO_RUN, 4)
            pos = _put(out, pos, size, 4)
        for t in range(i, j):
            pos = _put(out, pos, keys[t] & 0xFFFF, 2)
            pos = _put(out, pos, cards[t] - 1, 2)
        if not has_run or size >= 4:
            offset = pos - start + 4 * size
            for t in range(i, j):
                pos = _put(out, pos, offset, 4)
                offset += roaring_body_bytes(kinds[t], cards[t], nruns[t])
        for t in range(i, j):
            if cards[t] < 1 << 16:
                _container_words(addrs, chunk_shift, keys[t], buf)
            pos = _write_body(out, pos, kinds[t], cards[t], buf)
        i = j
    return pos


@_njit(**_JIT)
def roaring_parse(buf, store, keys, kinds, cards, offsets):
    """Check a 64-bit portable Roaring serialization and list its containers.

    Returns ``(error, position, containers, max_value)``; error 0 means valid.  With
    ``store`` it records each container's global key (``high32 << 16 | key16``),
    kind, cardinality and body offset.  Reads nothing past ``buf``.
    """
    size_total = buf.size
    if size_total < 8:
        return 1, 0, 0, 0
    nbuckets = _get(buf, 0, 8)
    if nbuckets > np.uint64(0xFFFFFFFF):
        return 2, 0, 0, 0
    pos = 8
    n = 0
    prev_high = -1
    max_value = 0
    for _ in range(np.int64(nbuckets)):
        if pos + 8 > size_total:
            return 1, pos, n, 0
        high = np.int64(_get(buf, pos, 4))
        if high <= prev_high:
            return 3, pos, n, 0
        prev_high = high
        pos += 4
        start = pos
        cookie = np.int64(_get(buf, pos, 4))
        pos += 4
        if cookie == _COOKIE_NO_RUN:
            if pos + 4 > size_total:
                return 1, pos, n, 0
            size = np.int64(_get(buf, pos, 4))
            pos += 4
            if size > 1 << 16:
                return 5, pos, n, 0
            run_bits = -1
        elif (cookie & 0xFFFF) == _COOKIE_RUN:
            size = (cookie >> 16) + 1
            run_bits = pos
            pos += (size + 7) >> 3
        else:
            return 4, start, n, 0
        described = pos
        pos += 4 * size
        has_offsets = run_bits < 0 or size >= 4
        offsets_at = pos
        if has_offsets:
            pos += 4 * size
        if pos > size_total:
            return 1, pos, n, 0
        prev_key = -1
        for t in range(size):
            key = np.int64(_get(buf, described + 4 * t, 2))
            card = np.int64(_get(buf, described + 4 * t + 2, 2)) + 1
            if key <= prev_key:
                return 6, described + 4 * t, n, 0
            prev_key = key
            if has_offsets and np.int64(_get(buf, offsets_at + 4 * t, 4)) != pos - start:
                return 7, offsets_at + 4 * t, n, 0
            body = pos
            is_run = run_bits >= 0 and (buf[run_bits + (t >> 3)] >> (t & 7)) & 1
            if is_run:
                if pos + 2 > size_total:
                    return 1, pos, n, 0
                runs = np.int64(_get(buf, pos, 2))
                pos += 2
                if pos + 4 * runs > size_total:
                    return 1, pos, n, 0
                total = 0
                next_free = 0
                last = 0
                for r in range(runs):
                    first = np.int64(_get(buf, pos + 4 * r, 2))
                    last = first + np.int64(_get(buf, pos + 4 * r + 2, 2))
                    if first < next_free or last > 0xFFFF:
                        return 10, pos + 4 * r, n, 0
                    next_free = last + 1  # touching runs are allowed (not canonical)
                    total += last - first + 1
                if runs == 0 or total != card:
                    return 11, body, n, 0
                pos += 4 * runs
                kind = ROARING_RUN
            elif card <= _ARRAY_MAX:
                if pos + 2 * card > size_total:
                    return 1, pos, n, 0
                prev = -1
                for v in range(card):
                    last = np.int64(_get(buf, pos + 2 * v, 2))
                    if last <= prev:
                        return 8, pos + 2 * v, n, 0
                    prev = last
                pos += 2 * card
                kind = ROARING_ARRAY
            else:
                if pos + 8 * _CONTAINER_WORDS > size_total:
                    return 1, pos, n, 0
                total = 0
                top_word = 0
                top = NULL
                for j in range(_CONTAINER_WORDS):
                    w = _get(buf, pos + 8 * j, 8)
                    if w != NULL:
                        total += popcount(w)
                        top_word = j
                        top = w
                bit = 63
                while bit > 0 and not (top >> np.uint64(bit)) & ONE:
                    bit -= 1
                last = (top_word << 6) + bit
                if total != card:
                    return 9, pos, n, 0
                pos += 8 * _CONTAINER_WORDS
                kind = ROARING_BITSET
            if store:
                keys[n] = (high << 16) | key
                kinds[n] = kind
                cards[n] = card
                offsets[n] = body
            # Values from 2^60 up lie past any geometry's npages: -1 says so.
            max_value = -1 if high >= 1 << 28 else (((high << 16) | key) << 16) | last
            n += 1
    if pos != size_total:
        return 12, pos, n, 0
    return 0, pos, n, max_value


@_njit(**_JIT)
def roaring_fill(buf, keys, kinds, cards, offsets, chunk_shift, row_chunks, row_addrs,
                 row_counts):
    """Decode checked containers into the chunks listed in ``row_chunks`` (ascending).

    With ``row_addrs`` empty, only add each chunk's set bits to ``row_counts[r]``,
    so the caller allocates just the chunks that end up neither empty nor full.
    Otherwise chunk ``row_chunks[r]`` is the zeroed chunk at ``row_addrs[r]`` and
    each container writes its own 1024-word slice of it.  Containers over chunks
    with no row are skipped.
    """
    write = row_addrs.size > 0
    words = np.empty(_CONTAINER_WORDS, dtype=np.uint64)
    wpc, wshift, seg = _segment(chunk_shift)
    nrows = row_chunks.size
    r = 0
    for i in range(keys.size):
        base = keys[i] << 10
        while r < nrows and row_chunks[r] < base >> wshift:
            r += 1
        if r == nrows or row_chunks[r] > (base + _CONTAINER_WORDS - 1) >> wshift:
            continue
        pos = offsets[i]
        if kinds[i] == ROARING_BITSET:
            for j in range(_CONTAINER_WORDS):
                words[j] = _get(buf, pos + 8 * j, 8)
        else:
            words[:] = NULL
            if kinds[i] == ROARING_ARRAY:
                for v in range(cards[i]):
                    value = np.int64(_get(buf, pos + 2 * v, 2))
                    words[value >> 6] |= ONE << np.uint64(value & 63)
            else:
                for t in range(np.int64(_get(buf, pos, 2))):
                    first = np.int64(_get(buf, pos + 2 + 4 * t, 2))
                    length = np.int64(_get(buf, pos + 4 + 4 * t, 2))
                    _set_bits(words, first, first + length + 1)
        for s in range(0, _CONTAINER_WORDS, seg):
            gw = base + s
            c = gw >> wshift
            while r < nrows and row_chunks[r] < c:
                r += 1
            if r < nrows and row_chunks[r] == c:
                if write:
                    chunk = chunk_words(row_addrs[r], wpc)
                    off = gw & (wpc - 1)
                    for j in range(seg):
                        chunk[off + j] = words[s + j]
                else:
                    for j in range(seg):
                        row_counts[r] += popcount(words[s + j])


@_njit(**_JIT)
def words_at(addresses, out):
    """``out[i]`` = the ``uint64`` stored at address ``addresses[i]``."""
    for i in range(addresses.size):
        out[i] = _load_word(addresses[i])


_LOW_32 = np.uint64(0xFFFF_FFFF)
_NPY_C_CONTIGUOUS = np.uint64(0x0001)
_NPY_WRITEABLE = np.uint64(0x0400)


@_njit(**_JIT)
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
        if _load_word(at + offsets[0]) != ndarray_type:
            addresses[i] = NULL
            descrs[i] = NULL
            ok[i] = False
            continue
        addresses[i] = _load_word(at + offsets[1])
        descrs[i] = _load_word(at + offsets[4])
        flags = _load_word(at + offsets[5]) & _LOW_32
        good = ((_load_word(at + offsets[2]) & _LOW_32) == ONE
                and (flags & _NPY_C_CONTIGUOUS) != NULL
                and (flags & _NPY_WRITEABLE) == NULL)
        if good:
            good = _load_word(_load_word(at + offsets[3])) == words
        ok[i] = good


# =================================================================================
# Scans, iteration, rank/select, algebra and word windows (issue 3)
# =================================================================================
# Word-span helpers work on local bit offsets [lo, hi) of one word array, so the flat
# kernels call them once over the whole bitmap and the two-level kernels once per
# chunk: both implement one rule for one operation.

def _bit_scan(llvm_name: str, doc: str):
    """An intrinsic ``int64 f(uint64)`` calling ``llvm_name(word, is_zero_poison=0)``."""

    @intrinsic
    def scan(typingctx, word):
        sig = types.int64(types.uint64)

        def codegen(context, builder, signature, args):
            i64 = ir.IntType(64)
            fnty = ir.FunctionType(i64, [i64, ir.IntType(1)])
            fn = cgutils.get_or_insert_function(builder.module, fnty, llvm_name)
            return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 0)])

        return sig, codegen

    scan.__doc__ = doc
    return scan


cttz = _bit_scan("llvm.cttz.i64", "Trailing zero bits of a uint64 word (64 for 0).")
ctlz = _bit_scan("llvm.ctlz.i64", "Leading zero bits of a uint64 word (64 for 0).")

# Operation codes of the algebra kernels: plain ints, the values of pageflags.ops.Op.
OP_AND = int(Op.AND)
OP_OR = int(Op.OR)
OP_XOR = int(Op.XOR)
OP_ANDNOT = int(Op.ANDNOT)

# Kinds of a table entry, and of an algebra result entry.
KIND_NONE = 0
KIND_FULL = 1
KIND_CHUNK = 2  # a private chunk; for a result: one that a kernel must compute

# RESULT_KINDS[op, 3 * kind_a + kind_b]: what entry ``a op b`` needs, so None and FULL
# results never cost a chunk (None & x = None, FULL | x = FULL, FULL ^ FULL = None).
RESULT_KINDS = np.array([
    # b:  N  F  C    N  F  C    N  F  C      a = N | F | C
    [0, 0, 0, 0, 1, 2, 0, 2, 2],  # and
    [0, 1, 2, 1, 1, 1, 2, 1, 2],  # or
    [0, 1, 2, 1, 0, 2, 2, 2, 2],  # xor
    [0, 0, 0, 1, 0, 2, 2, 0, 2],  # andnot
], dtype=np.int8)


@_njit(**_JIT)
def _next_bit(words, lo, hi, flip):
    """Lowest bit in [lo, hi) of ``words ^ flip`` that is set, or -1.

    ``flip`` is 0 to find a set bit and all ones to find a clear one.
    """
    if lo >= hi:
        return -1
    i = lo >> 6
    last = (hi - 1) >> 6
    w = (words[i] ^ flip) & (ALL_ONES << np.uint64(lo & 63))
    while True:
        if w:
            p = (i << 6) + cttz(w)
            return p if p < hi else -1
        i += 1
        if i > last:
            return -1
        w = words[i] ^ flip


@_njit(**_JIT)
def _prev_set_bit(words, lo, hi):
    """Highest set bit in [lo, hi) of ``words``, or -1."""
    if lo >= hi:
        return -1
    i = (hi - 1) >> 6
    first = lo >> 6
    w = words[i] & (ALL_ONES >> np.uint64(63 - ((hi - 1) & 63)))
    while True:
        if w:
            p = (i << 6) + 63 - ctlz(w)
            return p if p >= lo else -1
        i -= 1
        if i < first:
            return -1
        w = words[i]


@_njit(**_JIT)
def _collect_set(words, lo, hi, base, out, k):
    """Append ``base + bit`` for the set bits in [lo, hi) to ``out[k:]`` while room.

    Returns ``(k, resume)``: the new fill level and the local bit to resume from
    (``hi`` when every set bit fitted).
    """
    if lo >= hi:
        return k, hi
    i = lo >> 6
    last = (hi - 1) >> 6
    last_mask = ALL_ONES >> np.uint64(63 - ((hi - 1) & 63))
    w = words[i] & (ALL_ONES << np.uint64(lo & 63))
    room = out.size
    while True:
        if i == last:
            w &= last_mask
        if room - k >= 64:  # room for a whole word and the positions written past it
            k = np.int64(_collect_word(w, np.uint64(base + (i << 6)), out.view(np.uint64),
                                       np.uint64(k)))
            w = NULL
        while w:
            bit = (i << 6) + cttz(w)
            if k == room:
                return k, bit
            out[k] = base + bit
            k += 1
            w &= w - ONE
        i += 1
        if i > last:
            return k, hi
        w = words[i]


@_njit(inline="always")
def _collect_word(w, pfn, out, k):
    """Append ``pfn + bit`` for the set bits of word ``w`` to ``out[k:]``; return k.

    Positions go four at a time, past the word's last set bit too (cttz(0) is 64),
    so the loop exit rarely mispredicts on sparse words (CRoaring's
    bitset_extract_setbits does the same): ``out`` needs room for k + 4 past them.
    ``pfn``, ``k`` and ``out`` (a view of the int64 result) are uint64: with signed
    positions every store kept a wraparound check, and to_array ran 1.6x slower.
    """
    n = np.uint64(popcount(w))
    done = np.uint64(0)
    while True:
        out[k + done] = pfn + np.uint64(cttz(w))
        w &= w - ONE
        out[k + done + ONE] = pfn + np.uint64(cttz(w))
        w &= w - ONE
        out[k + done + _U2] = pfn + np.uint64(cttz(w))
        w &= w - ONE
        out[k + done + _U3] = pfn + np.uint64(cttz(w))
        w &= w - ONE
        done += _U4
        if done >= n:
            break
    return k + n


@_njit(inline="always")
def _collect_all(words, base, out, k):
    """Append ``base + bit`` for every set bit of ``words`` to ``out[k:]``; return k.

    The caller guarantees room for every set bit plus 4 (:func:`_collect_word`; a
    last word with no bit set still writes four), so no word pays a room check.
    """
    values = out.view(np.uint64)
    at = np.uint64(k)
    pfn = np.uint64(base)
    for i in range(words.size):
        at = _collect_word(words[i], pfn, values, at)
        pfn += _U64
    return np.int64(at)


@_njit(**_JIT)
def _select_bit(words, rank):
    """Local position of the set bit with ``rank`` set bits before it, or -1."""
    for i in range(words.size):
        n = popcount(words[i])
        if rank < n:
            w = words[i]
            for _ in range(rank):
                w &= w - ONE
            return (i << 6) + cttz(w)
        rank -= n
    return -1


@_njit(inline="always")
def _end_run(starts, stops, k, run_start, run_stop, fill):
    """Record run k (when ``fill``); returns the run count after it."""
    if fill:
        starts[k] = run_start
        stops[k] = run_stop
    return k + 1


@_njit(**_JIT)
def _runs_in_bits(words, lo, hi, base, in_run, run_start, starts, stops, k, fill):
    """Extend the run scan over bits [lo, hi) of ``words`` (pfn = base + bit).

    The state ``(in_run, run_start, k)`` carries across calls so a run may span
    chunks; a run that ends is recorded at ``starts[k], stops[k]`` when ``fill``.
    """
    pos = lo
    while pos < hi:
        word_end = min(((pos >> 6) + 1) << 6, hi)
        w = words[pos >> 6]
        if in_run:
            w = ~w
        w >>= np.uint64(pos & 63)
        if w == 0:
            pos = word_end
            continue
        pos += cttz(w)
        if pos >= word_end:
            pos = word_end
            continue
        if in_run:
            k = _end_run(starts, stops, k, run_start, base + pos, fill)
        else:
            run_start = base + pos
        in_run = not in_run
    return in_run, run_start, k


@_njit(**_JIT)
def _combine_words(op, a, b, out):
    """``out = a op b`` word by word; returns the popcount of ``out``.

    One loop per operation keeps each loop free of branches, so LLVM vectorises it.
    """
    total = 0
    if op == OP_AND:
        for i in range(out.size):
            w = a[i] & b[i]
            out[i] = w
            total += popcount(w)
    elif op == OP_OR:
        for i in range(out.size):
            w = a[i] | b[i]
            out[i] = w
            total += popcount(w)
    elif op == OP_XOR:
        for i in range(out.size):
            w = a[i] ^ b[i]
            out[i] = w
            total += popcount(w)
    else:
        for i in range(out.size):
            w = a[i] & ~b[i]
            out[i] = w
            total += popcount(w)
    return total


@_njit(**_JIT)
def _count_and_words(a, b):
    total = 0
    for i in range(a.size):
        total += popcount(a[i] & b[i])
    return total


# --- flat bitmap scans and algebra ---------------------------------------------------

@_njit(**_JIT)
def flat_find_next(words, start, stop, flip):
    return _next_bit(words, start, stop, flip)


@_njit(**_JIT)
def flat_find_prev_set(words, stop):
    return _prev_set_bit(words, 0, stop)


@_njit(**_JIT)
def flat_collect(words, start, stop, out):
    """Set pfns of [start, stop) into ``out`` while room: ``(written, resume pfn)``."""
    return _collect_set(words, start, stop, 0, out, 0)


@_njit(**_JIT)
def flat_select(words, rank):
    return _select_bit(words, rank)


@_njit(**_JIT)
def flat_runs(words, start, stop, starts, stops, fill):
    """Maximal runs of set pages in [start, stop); returns how many (filled if asked)."""
    in_run, run_start, k = _runs_in_bits(words, start, stop, 0, False, 0, starts, stops,
                                         0, fill)
    return _end_run(starts, stops, k, run_start, stop, fill) if in_run else k


@_njit(**_JIT)
def flat_combine(op, a, b, out):
    return _combine_words(op, a, b, out)


@_njit(**_JIT)
def flat_count_and(a, b, first_only):
    """Pages set in both; with ``first_only``, stop at the first word that has some."""
    if not first_only:
        return _count_and_words(a, b)
    for i in range(a.size):
        if a[i] & b[i]:
            return popcount(a[i] & b[i])
    return 0


@_njit(**_JIT)
def flat_set_ranges(words, starts, stops):
    for i in range(starts.size):
        _set_bits(words, starts[i], stops[i])


# --- two-level scans -------------------------------------------------------------------
# ``occupied`` is a bitmap over chunks (bit c set when entry c is not None), so scans
# cross the holes of a sparse space 64 entries per word.

@_njit(**_JIT)
def table_occupy(addrs, occupied, chunk_nrs):
    """Refresh bit c of ``occupied`` from ``addrs[c]`` for each c in ``chunk_nrs``."""
    for j in range(chunk_nrs.size):
        c = chunk_nrs[j]
        bit = ONE << np.uint64(c & 63)
        if addrs[c] == NULL:
            occupied[c >> 6] &= ~bit
        else:
            occupied[c >> 6] |= bit


@_njit(**_JIT)
def table_find_next(addrs, occupied, start, stop, chunk_shift, full_addr, flip):
    """Lowest pfn in [start, stop) whose bit is set (``flip`` 0) or clear (all ones),
    or -1.

    Entries that cannot hold the bit sought are skipped unread: None entries (64 at a
    time through ``occupied``) when seeking a set bit, FULL ones when seeking a clear
    bit; the other sentinel answers at once.
    """
    if start >= stop:
        return -1
    wpc = 1 << (chunk_shift - 6)
    find_set = flip == NULL
    skip = NULL if find_set else full_addr
    answer = full_addr if find_set else NULL
    c = start >> chunk_shift
    last = (stop - 1) >> chunk_shift
    while c <= last:
        a = addrs[c]
        if a == skip:
            c = _next_bit(occupied, c + 1, last + 1, NULL) if find_set else c + 1
            if c < 0:
                return -1
            continue
        lo, hi = _local_span(c, start, stop, chunk_shift)
        if a == answer:
            return (c << chunk_shift) + lo
        p = _next_bit(chunk_words(a, wpc), lo, hi, flip)
        if p >= 0:
            return (c << chunk_shift) + p
        c += 1
    return -1


@_njit(**_JIT)
def table_find_prev_set(addrs, occupied, stop, chunk_shift, full_addr):
    """Highest set pfn in [0, stop), or -1; None entries are skipped unread."""
    if stop <= 0:
        return -1
    wpc = 1 << (chunk_shift - 6)
    c = (stop - 1) >> chunk_shift
    while c >= 0:
        a = addrs[c]
        if a == NULL:
            c = _prev_set_bit(occupied, 0, c)
            continue
        lo, hi = _local_span(c, 0, stop, chunk_shift)
        if a == full_addr:
            return (c << chunk_shift) + hi - 1
        p = _prev_set_bit(chunk_words(a, wpc), lo, hi)
        if p >= 0:
            return (c << chunk_shift) + p
        c -= 1
    return -1


@_njit(**_JIT)
def table_collect(addrs, counts, start, stop, chunk_shift, full_addr, out):
    """Set pfns of [start, stop) into ``out`` while room: ``(written, resume pfn)``."""
    if start >= stop:
        return 0, stop
    wpc = 1 << (chunk_shift - 6)
    pages_per_chunk = 1 << chunk_shift
    full = np.uint64(full_addr)
    room = out.size
    k = 0
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        if counts[c] == 0:
            continue
        a = addrs[c]
        base = c << chunk_shift
        lo, hi = _local_span(c, start, stop, chunk_shift)
        if a == full:
            n = min(hi - lo, room - k)
            for j in range(n):
                out[k + j] = base + lo + j
            k += n
            if n < hi - lo:
                return k, base + lo + n
        elif lo == 0 and hi == pages_per_chunk and counts[c] + 4 <= room - k:
            k = _collect_all(chunk_words(a, wpc), base, out, k)
        else:
            k, resume = _collect_set(chunk_words(a, wpc), lo, hi, base, out, k)
            if resume < hi:
                return k, base + resume
    return k, stop


@_njit(**_JIT)
def table_select(addrs, counts, rank, chunk_shift, full_addr):
    """The pfn with ``rank`` set pages before it, or -1; reads one chunk at most."""
    wpc = 1 << (chunk_shift - 6)
    for c in range(addrs.size):
        n = counts[c]
        if rank < n:
            a = addrs[c]
            if a == full_addr:
                return (c << chunk_shift) + rank
            return (c << chunk_shift) + _select_bit(chunk_words(a, wpc), rank)
        rank -= n
    return -1


@_njit(**_JIT)
def table_runs(addrs, start, stop, chunk_shift, full_addr, starts, stops, fill):
    """Maximal runs of set pages in [start, stop); returns how many (filled if asked).

    None and FULL entries end or extend a run without being read.
    """
    if start >= stop:
        return 0
    wpc = 1 << (chunk_shift - 6)
    in_run = False
    run_start = 0
    k = 0
    for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
        a = addrs[c]
        base = c << chunk_shift
        lo, hi = _local_span(c, start, stop, chunk_shift)
        if a == NULL:
            if in_run:
                k = _end_run(starts, stops, k, run_start, base + lo, fill)
                in_run = False
        elif a == full_addr:
            if not in_run:
                run_start = base + lo
                in_run = True
        else:
            in_run, run_start, k = _runs_in_bits(chunk_words(a, wpc), lo, hi, base, in_run,
                                                 run_start, starts, stops, k, fill)
    return _end_run(starts, stops, k, run_start, stop, fill) if in_run else k


# --- two-level algebra -------------------------------------------------------------------

@_njit(inline="always")
def _entry_kind(address, full_addr):
    if address == NULL:
        return KIND_NONE
    if address == full_addr:
        return KIND_FULL
    return KIND_CHUNK


@_njit(**_JIT)
def table_plan(op, addrs_a, addrs_b, full_addr, result_kinds, out):
    """``out[c]`` = the kind of entry c of ``a op b``; returns how many need a chunk."""
    rule = result_kinds[op]
    need = 0
    for c in range(addrs_a.size):
        kind = rule[3 * _entry_kind(addrs_a[c], full_addr) + _entry_kind(addrs_b[c], full_addr)]
        out[c] = kind
        if kind == KIND_CHUNK:
            need += 1
    return need


@_njit(inline="always")
def _combine_chunk(op, addrs_a, addrs_b, c, out_addr, wpc, zero_addr):
    a = addrs_a[c]
    b = addrs_b[c]
    return _combine_words(op, chunk_words(zero_addr if a == NULL else a, wpc),
                          chunk_words(zero_addr if b == NULL else b, wpc),
                          chunk_words(out_addr, wpc))


@_njit(**_JIT)
def table_combine(op, addrs_a, addrs_b, chunk_nrs, out_addrs, out_counts, chunk_shift,
                  zero_addr):
    """Chunk ``out_addrs[j]`` = chunk ``chunk_nrs[j]`` of ``a op b``; counts follow.

    ``zero_addr`` (an all-zero chunk) stands in for None entries; ``out_addrs[j]`` may
    be the address of a's own chunk, for in-place operations.
    """
    wpc = 1 << (chunk_shift - 6)
    for j in range(chunk_nrs.size):
        out_counts[j] = _combine_chunk(op, addrs_a, addrs_b, chunk_nrs[j], out_addrs[j], wpc,
                                       zero_addr)


@_njit(cache=True, nogil=True, parallel=True)
def table_combine_parallel(op, addrs_a, addrs_b, chunk_nrs, out_addrs, out_counts,
                           chunk_shift, zero_addr):
    """:func:`table_combine` over Numba's thread pool (main thread only: the
    workqueue layer does not take launches from several threads at once)."""
    wpc = 1 << (chunk_shift - 6)
    for j in numba.prange(chunk_nrs.size):
        out_counts[j] = _combine_chunk(op, addrs_a, addrs_b, chunk_nrs[j], out_addrs[j], wpc,
                                       zero_addr)


@_njit(**_JIT)
def table_count_and(addrs_a, counts_a, addrs_b, counts_b, chunk_shift, full_addr,
                    first_only):
    """Pages set in both tables, from cached counts wherever an entry is None or FULL.

    With ``first_only``, returns as soon as some page is found (for ``intersects``).
    """
    wpc = 1 << (chunk_shift - 6)
    total = 0
    for c in range(addrs_a.size):
        a = addrs_a[c]
        b = addrs_b[c]
        if a == NULL or b == NULL:
            continue
        if a == full_addr:
            total += counts_b[c]
        elif b == full_addr:
            total += counts_a[c]
        else:
            total += _count_and_words(chunk_words(a, wpc), chunk_words(b, wpc))
        if first_only and total:
            return total
    return total


@_njit(**_JIT)
def table_range_cover(starts, stops, chunk_shift, whole_chunks, cover):
    """``cover[c]`` = 2 where one range covers whole chunk c, at least 1 where touched."""
    for i in range(starts.size):
        start = starts[i]
        stop = stops[i]
        if start >= stop:
            continue
        for c in range(start >> chunk_shift, ((stop - 1) >> chunk_shift) + 1):
            lo, hi = _local_span(c, start, stop, chunk_shift)
            whole = lo == 0 and hi == (1 << chunk_shift) and c < whole_chunks
            cover[c] = max(cover[c], 2 if whole else 1)


# --- windows of packed words -----------------------------------------------------------

@_njit(**_JIT)
def table_get_words(addrs, first_word, out, chunk_shift, full_addr):
    """``out`` = the words ``first_word + [0, out.size)`` of the map."""
    word_shift = chunk_shift - 6
    wpc = 1 << word_shift
    for j in range(out.size):
        g = first_word + j
        a = addrs[g >> word_shift]
        if a == NULL:
            out[j] = NULL
        elif a == full_addr:
            out[j] = ALL_ONES
        else:
            out[j] = chunk_words(a, wpc)[g & (wpc - 1)]


@_njit(**_JIT)
def words_chunk_kinds(data, first_word, chunk_shift, any_set, all_set):
    """Per chunk touched by the window: whether its words in ``data`` have a bit set,
    and whether they are all ones.  Entry j is chunk ``(first_word >> word_shift) + j``.

    One OR and one AND reduction per chunk's span of words (vectorised, at memory
    bandwidth), not a branch per word.
    """
    wpc = 1 << (chunk_shift - 6)
    i = 0
    for j in range(any_set.size):
        n = min(wpc - ((first_word + i) & (wpc - 1)), data.size - i)
        span = data[i:i + n]
        some = NULL
        every = ALL_ONES
        for k in range(span.size):
            some |= span[k]
            every &= span[k]
        any_set[j] = some != NULL
        all_set[j] = every == ALL_ONES
        i += n


@_njit(**_JIT)
def table_put_words(addrs, counts, data, first_word, chunk_shift, full_addr):
    """Copy ``data`` into the words ``first_word + [0, data.size)``; recount touched chunks.

    Python has made private every touched entry whose bits change: None entries left
    receive only zeros and FULL entries left only ones, so both are skipped.  A
    chunk's count is the popcount of the words copied in (in the same pass) plus,
    for a chunk the window covers in part, that of its words outside the window.
    """
    wpc = 1 << (chunk_shift - 6)
    full = np.uint64(full_addr)
    i = 0
    while i < data.size:
        g = first_word + i
        off = g & (wpc - 1)
        n = min(wpc - off, data.size - i)
        c = g >> (chunk_shift - 6)
        a = addrs[c]
        if a != NULL and a != full:
            words = chunk_words(a, wpc)
            source = data[i:i + n]
            target = words[off:off + n]
            total = 0
            for j in range(source.size):
                w = source[j]
                target[j] = w
                total += popcount(w)
            if n < wpc:
                total += _popcount_all(words[:off]) + _popcount_all(words[off + n:])
            counts[c] = total
        i += n
