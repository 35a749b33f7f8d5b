"""The binary operations of page-map algebra, one enum for every layer.

``a & b``, ``a | b``, ``a ^ b`` and ``a - b`` on every map type, the primitives
behind them (``PageMap._combine``), the tasks of a sharded map and the kernels all
name an operation by one :class:`Op`.  It is an ``IntEnum`` whose values are the
kernels' op codes: kernels take ``int(op)`` (a Numba kernel given an enum member
would compile a second specialisation), everything above them takes ``Op``.
"""

from __future__ import annotations

import enum

__all__ = ["Op"]


class Op(enum.IntEnum):
    """A binary operation on two page maps.

    Examples
    --------
    >>> from pageflags.ops import Op
    >>> Op.ANDNOT, int(Op.ANDNOT), Op(1).name
    (<Op.ANDNOT: 3>, 3, 'OR')
    """

    AND = 0
    """Pages set in both (``a & b``)."""
    OR = 1
    """Pages set in either (``a | b``)."""
    XOR = 2
    """Pages set in exactly one (``a ^ b``)."""
    ANDNOT = 3
    """Pages set in the left operand and not in the right (``a - b``)."""
