"""One Op enum for the algebra of every layer (pageflags/ops.py)."""

from __future__ import annotations

import operator

import numpy as np
import pytest
from conftest import PARTIAL

from pageflags import FlatPageFlags, PageFlags, _kernels, _shard_tasks
from pageflags.ops import Op

OPERATORS = {Op.AND: operator.and_, Op.OR: operator.or_, Op.XOR: operator.xor,
             Op.ANDNOT: operator.sub}
IN_PLACE = {Op.AND: operator.iand, Op.OR: operator.ior, Op.XOR: operator.ixor,
            Op.ANDNOT: operator.isub}
MODEL = {Op.AND: np.logical_and, Op.OR: np.logical_or, Op.XOR: np.logical_xor,
         Op.ANDNOT: lambda a, b: a & ~b}


def test_the_kernel_codes_are_the_enum_values_as_plain_ints():
    codes = {Op.AND: _kernels.OP_AND, Op.OR: _kernels.OP_OR, Op.XOR: _kernels.OP_XOR,
             Op.ANDNOT: _kernels.OP_ANDNOT}
    assert [int(op) for op in Op] == [0, 1, 2, 3]
    for op, code in codes.items():
        assert type(code) is int and code == op  # a kernel never sees an enum member
    assert _kernels.RESULT_KINDS.shape[0] == len(Op)


@pytest.fixture
def operands(map_type):
    a, b = map_type(PARTIAL), map_type(PARTIAL)
    a.set_range(60, 40_000)
    b.set_range(30_000, 2 * 32768 + 7)
    b.set_many([0, 63, PARTIAL.npages - 1])
    return a, b


@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.name)
def test_each_operator_hands_its_op_to_the_primitives(map_type, operands, op):
    seen = []

    class Recording(map_type):
        __slots__ = ()

        def _combine(self, op, other):
            seen.append(op)
            return super()._combine(op, other)

        def _combine_in_place(self, op, other):
            seen.append(op)
            super()._combine_in_place(op, other)

    a, b = operands
    left = Recording(PARTIAL)
    left |= a
    seen.clear()
    expected = MODEL[op](a.to_bool(), b.to_bool())
    result = OPERATORS[op](left, b)
    np.testing.assert_array_equal(result.to_bool(), expected)
    result = IN_PLACE[op](left, b)
    assert result is left
    np.testing.assert_array_equal(left.to_bool(), expected)
    assert seen == [op, op] and all(type(s) is Op for s in seen)


@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.name)
def test_a_shard_task_combines_by_op(op):
    a, b = PageFlags(PARTIAL), PageFlags(PARTIAL)
    a.set_range(5, 70_000)
    b.set_many([0, 6, 69_999, 70_000])
    result = _shard_tasks.combine(a, b, op)
    flat = OPERATORS[op](FlatPageFlags.from_words(a.to_words(), 0, PARTIAL),
                         FlatPageFlags.from_words(b.to_words(), 0, PARTIAL))
    assert result == flat and result.count() == flat.count()
    assert a.count() == 69_995  # the operands are left as they were
