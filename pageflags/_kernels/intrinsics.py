"""The kernels' building blocks: the lazy ``jit`` factory, LLVM intrinsics, constants.

Every kernel of the package is made by :func:`jit`; the intrinsics give kernels what
Numba lacks: raw word loads and stores at table addresses, a chunk's words as an
array, popcount, bit scans and prefetch hints.
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
from numba.core.caching import FunctionCache
from numba.core.runtime.nrt import rtsys
from numba.extending import intrinsic as numba_intrinsic

_BUILD_LOCK = threading.Lock()

#: Every lazy kernel made, and the namespaces besides its own module that name it
#: (the package's re-exports): a kernel's dispatcher replaces it in all of them.
_KERNELS: list[_LazyDispatcher] = []
_NAMESPACES: list[dict[str, Any]] = []


class _CacheLoadedWithoutRefresh(FunctionCache):
    """Numba's on-disk kernel cache, loading without first refreshing the target.

    Numba's ``load_overload`` refreshes the CPU target before every load: the first
    refresh imports some 75 of Numba's modules and installs their lowering
    registries, 110-170 ms on the build machine, three quarters of what a fresh
    process's first dozen operations spent on top of importing numba.  Loading
    machine code uses none of it: a cached library links against the runtime's
    symbols (``NRT_*``, initialised here) and Numba's C helpers (installed when the
    target is made), and the ``reload_init`` hooks it was saved with are rerun by the
    load itself.  A compile, a cache miss, still refreshes first (Numba's compiler
    does on its own), and so does any load that fails this way.
    """

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        # Private parts of Numba (stable since 0.49): if a release renames them,
        # the AttributeError lands below and the load is Numba's own.
        try:
            rtsys.initialize(target_context)
            with self._guard_against_spurious_io_errors():
                return self._load_overload(sig, target_context)
        except Exception:  # anything unforeseen: Numba's own path, refresh included
            return super().load_overload(sig, target_context)


class _LazyDispatcher:
    """A ``numba.njit`` kernel whose dispatcher is made on first use.

    Making the 90 dispatchers of the package (each one sets up its cache locator and
    type-dispatch machinery) took 60-70 ms of ``import pageflags``; a script uses a
    dozen of them.  The first call, or the first attribute a dispatcher has and the
    proxy lacks, builds the dispatcher and puts it in the proxy's place in its own
    module and in every :func:`publish`-ed namespace, so ``_kernels.name(...)`` calls
    the dispatcher itself from then on.

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

    def __init__(self, py_func: Callable[..., Any], options: dict[str, Any]) -> None:
        functools.update_wrapper(self, py_func)
        self.py_func = py_func
        self._options = options
        self._dispatcher: Any = None
        _KERNELS.append(self)

    def dispatcher(self) -> Any:
        """The ``numba`` dispatcher, made (once, whichever thread asks first) if need be."""
        built = self._dispatcher
        if built is not None:
            return built
        # Made outside the lock: a thread compiling a caller holds Numba's compiler
        # lock and may come here for a callee.  A dispatcher that loses the race is
        # dropped before anything calls it.
        options = dict(self._options)
        cached = options.pop("cache", False)
        made = numba.njit(**options)(self.py_func)
        if cached:
            made._cache = _CacheLoadedWithoutRefresh(self.py_func)
        with _BUILD_LOCK:
            if self._dispatcher is None:
                self._dispatcher = made
                name = self.__name__
                for namespace in (self.py_func.__globals__, *_NAMESPACES):
                    if namespace.get(name) is self:
                        namespace[name] = made
            return self._dispatcher

    @property
    def built(self) -> bool:
        """Whether the dispatcher exists."""
        return self._dispatcher is not None

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


def jit(*, inline: bool = False, parallel: bool = False
        ) -> Callable[[Callable[..., Any]], _LazyDispatcher]:
    """The decorator of every kernel: ``numba.njit``, made lazily (:class:`_LazyDispatcher`).

    A kernel is cached and ``nogil``, so threads from a pool can call it at once on
    disjoint maps.  ``inline=True`` makes a helper that Numba inlines into its callers
    (never compiled or cached alone); ``parallel=True`` one that runs its ``prange``
    loops on Numba's thread pool, always beside a serial kernel for the same work.

    Examples
    --------
    ``spans.count_bits`` is a ``@jit()`` kernel, compiled (or loaded from the cache)
    on its first call:

    >>> from pageflags._kernels import spans
    >>> int(spans.count_bits(np.array([0b1011], dtype=np.uint64), 0, 64))
    3
    """
    options: dict[str, Any] = ({"inline": "always"} if inline else
                               {"cache": True, "nogil": True, "parallel": parallel})
    return functools.partial(_LazyDispatcher, options=options)


def publish(namespace: dict[str, Any]) -> None:
    """Have kernels named in ``namespace`` (a package re-exporting them) replaced there
    by their dispatcher once built, as in their own module."""
    _NAMESPACES.append(namespace)


def dispatchers_built() -> list[str]:
    """Names of the kernels whose Numba dispatcher exists (for tests and benchmarks).

    Examples
    --------
    >>> from pageflags import _kernels
    >>> int(_kernels.first_out_of_range(np.array([3, 9]), 5))  # the first call builds it
    1
    >>> "first_out_of_range" in dispatchers_built()
    True
    """
    return sorted(kernel.__name__ for kernel in _KERNELS if kernel.built)


def intrinsic(typer: Callable[..., tuple[Any, Any]]) -> Callable[..., Any]:
    """``numba.extending.intrinsic``, typed as kernels call it: on the values alone
    (Numba passes the typing context ``typer`` takes first)."""
    made: Callable[..., Any] = numba_intrinsic(typer)
    return made


ALL_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
ONE = np.uint64(1)
NULL = np.uint64(0)


# Bulk kernels do their pfn and address arithmetic in uint64 throughout: Numba turns
# a comparison or sum of a uint64 and an int64 into float64 arithmetic (a conversion
# per pfn, and inexact above 2**53), and an unsigned index needs no wraparound check.
U2, U3, U4, U6, U63, U64 = (np.uint64(v) for v in (2, 3, 4, 6, 63, 64))


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
AHEAD = np.uint64(PREFETCH_DISTANCE)


@intrinsic
def load_word(typingctx, address):
    """``*(uint64 *) address``."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        ptr_type = context.get_value_type(types.CPointer(types.uint64))
        return builder.load(builder.inttoptr(args[0], ptr_type))

    return sig, codegen


@intrinsic
def store_word(typingctx, address, value):
    """``*(uint64 *) address = value``."""
    sig = types.void(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        ptr_type = context.get_value_type(types.CPointer(types.uint64))
        builder.store(args[1], builder.inttoptr(args[0], ptr_type))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def chunk_words(typingctx, address, nwords):
    """The ``nwords`` words at ``address`` as a 1-D uint64 array (no copy, no owner).

    Numba's ``carray`` builds the same array, but it is an ``@overload`` in
    ``numba.np.arrayobj``: a kernel using it keeps an environment there, and loading
    the kernel from the cache imports that module and the 40 it pulls in (24 ms of a
    fresh process's first use).  An intrinsic is inlined code with no environment.
    """
    array_type = types.Array(types.uint64, 1, "C")
    sig = array_type(types.uint64, types.intp)

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import make_array, populate_array

        words = make_array(array_type)(context, builder)
        itemsize = context.get_constant(types.intp, 8)
        data = builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.uint64)))
        populate_array(words, data=data, shape=[args[1]], strides=[itemsize],
                       itemsize=itemsize, meminfo=None)
        return words._getvalue()

    return sig, codegen


@intrinsic
def as_unsigned(typingctx, array):
    """An int64 array as uint64 (``array.view(np.uint64)``, which is another
    ``numba.np.arrayobj`` overload: see :func:`chunk_words`)."""
    if not isinstance(array, types.Array) or array.dtype != types.int64:
        return None
    sig = array.copy(dtype=types.uint64)(array)

    def codegen(context, builder, signature, args):
        from numba.core.imputils import impl_ret_borrowed

        # Both array types lower to the same struct: only the Numba type changes.
        return impl_ret_borrowed(context, builder, signature.return_type, args[0])

    return sig, codegen


@jit(inline=True)
def word_place(g, chunk_shift):
    """``(chunk, offset)``: the entry holding the map's word ``g`` and its place there."""
    word_shift = chunk_shift - 6
    return g >> word_shift, g & ((1 << word_shift) - 1)


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
