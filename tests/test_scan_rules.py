"""ScanRules run in a minimal state machine, so they are known to work before they
join the main one (tests/test_statemachine.py)."""

from __future__ import annotations

import numpy as np
import pytest
from _scan_rules import ScanRules
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pageflags import FlatPageFlags, Geometry, PageFlags

GEOMETRY = Geometry.from_npages(3 * 32768 + 1000)


class ScanMachine(ScanRules, RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.flags = PageFlags(GEOMETRY)
        self.flat = FlatPageFlags(GEOMETRY)
        self.model = np.zeros(GEOMETRY.npages, dtype=bool)

    @rule(start=st.one_of(st.sampled_from([0, 32768, 65536]), st.integers(0, GEOMETRY.npages)),
          length=st.one_of(st.just(32768), st.integers(0, 70_000)))
    def set_range(self, start: int, length: int) -> None:
        stop = min(start + length, GEOMETRY.npages)
        self.flags.set_range(start, stop)
        self.flat.set_range(start, stop)
        self.model[start:stop] = True

    @rule(pfns=st.lists(st.integers(0, GEOMETRY.npages - 1), max_size=10))
    def clear_many(self, pfns: list[int]) -> None:
        self.flags.clear_many(pfns)
        self.flat.clear_many(pfns)
        self.model[pfns] = False

    @invariant()
    def same_bits(self) -> None:
        self.flags.validate()
        self.flat.validate()
        assert self.flags.count() == self.flat.count() == int(self.model.sum())
        assert self.flags == self.flat
        assert np.array_equal(self.flags.to_bool(), self.model)


TestScanMachine = pytest.mark.statemachine(ScanMachine.TestCase)
TestScanMachine.settings = settings(max_examples=150, stateful_step_count=25, deadline=None)
