"""A kernel's compiled code called without Numba's dispatch, for calls in loops.

On every call, Numba's dispatcher types each argument and looks up the compiled
specialisation for those types: about 200 ns of a sparse ``find_next_set``'s 900 ns
on the machine the benchmarks run on, and pyroaring's whole ``next_set_bit`` takes
600-1000 ns.  The specialisation's own entry point
(``dispatcher.overloads[signature].entry_point``) only unboxes the arguments.  It
trusts them, though: an array's item size is checked, not its dtype, layout or
writeability.  So :func:`bind` binds only arrays whose types never change (a map's
private shadows, made by the map and never replaced), and the caller passes the
rest as the same kinds of value, always: checked Python ints and the same NumPy
scalar constants as in the first call.

Nothing here compiles or loads a kernel: the first call of the kernel, through its
dispatcher as anywhere else, does.  When no entry point matches (Numba's JIT
disabled, another Numba version's internals), the bound call goes on through the
dispatcher: slower, never wrong.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["bind"]


def _entry_point(kernel: Any, args: tuple[Any, ...]) -> Callable[..., Any] | None:
    """The compiled entry point ``kernel`` chose for ``args``' types, or None."""
    try:
        import numba

        signature = tuple(numba.typeof(arg) for arg in args)  # type: ignore[no-untyped-call]
        entry: Callable[..., Any] = kernel.overloads[signature].entry_point
        return entry
    except Exception:
        return None


def bind(kernel: Any, args: tuple[Any, ...], nbound: int) -> Callable[..., Any]:
    """``kernel`` with ``args[:nbound]`` bound, called without dispatch if possible.

    Call it after ``kernel(*args)`` has run once (so its specialisation exists);
    the result ``f(*rest)`` runs ``kernel(*args[:nbound], *rest)``, where ``rest``
    must have the types of ``args[nbound:]``.

    Examples
    --------
    >>> import numpy as np
    >>> from pageflags import _kernels
    >>> words = np.zeros(4, dtype=np.uint64); _ = _kernels.write_bits(words, 3, 70, True)
    >>> args = (words, 0, 256); _kernels.count_bits(*args)
    67
    >>> count = bind(_kernels.count_bits, args, 1); count(64, 128)
    6
    """
    entry = _entry_point(kernel, args)
    return functools.partial(kernel if entry is None else entry, *args[:nbound])
