"""The declared interface of every map type (pageflags/interface.py).

mypy checks the signatures (``_satisfied`` at the end of the module); these tests
check that each map type is an instance at run time and that code written against
the protocol alone (``_mapkit.exercise``) gives one answer on every one of them.
"""

from __future__ import annotations

import numpy as np
import pytest
from _mapkit import exercise, other_ranges
from conftest import PARTIAL

from pageflags import FlatPageFlags, PageFlags, PageMapLike, PreallocatedPageFlags
from pageflags.interface import PageMapLike as Declared


def test_every_local_map_type_satisfies_the_protocol():
    assert Declared is PageMapLike
    assert isinstance(PageFlags(PARTIAL), PageMapLike)
    assert isinstance(FlatPageFlags(PARTIAL), PageMapLike)
    assert isinstance(PreallocatedPageFlags(PARTIAL, sections=[1]), PageMapLike)


def test_what_lacks_a_member_is_not_one():
    class CountOnly:
        geometry = PARTIAL
        npages = PARTIAL.npages

        def count(self, start: int = 0, stop: int | None = None) -> int:
            return 0

    assert not isinstance(CountOnly(), PageMapLike)
    assert not isinstance(np.zeros(PARTIAL.npages, dtype=bool), PageMapLike)


@pytest.mark.parametrize("cls", [PageFlags, FlatPageFlags, PreallocatedPageFlags])
def test_code_written_against_the_protocol_agrees_on_every_map(cls):
    flags = (PreallocatedPageFlags(PARTIAL, sections=[0, 3]) if cls is PreallocatedPageFlags
             else cls(PARTIAL))
    reference = FlatPageFlags(PARTIAL)
    got = exercise(flags, cls.from_ranges(*other_ranges(PARTIAL.npages), PARTIAL))
    assert got == exercise(reference, FlatPageFlags.from_ranges(*other_ranges(PARTIAL.npages),
                                                                PARTIAL))
