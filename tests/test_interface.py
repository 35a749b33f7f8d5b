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
from pageflags.interface import (
    FlatStats,
    MapStats,
    PageFlagsStats,
    PreallocatedStats,
    ShardedStats,
    ShardedTotals,
)
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


@pytest.mark.parametrize(("make", "shape"), [
    (lambda: PageFlags(PARTIAL), PageFlagsStats),
    (lambda: FlatPageFlags(PARTIAL), FlatStats),
    (lambda: PreallocatedPageFlags(PARTIAL, sections=[1]), PreallocatedStats)],
    ids=["pageflags", "flat", "preallocated"])
def test_stats_have_exactly_the_keys_their_typed_dict_declares(make, shape):
    flags = make()
    flags.set_range(5, 40_000)
    stats = flags.stats()
    assert set(stats) == shape.__required_keys__
    assert MapStats.__required_keys__ <= set(stats)
    assert all(type(value) is int for key, value in stats.items() if key != "alloc")
    assert stats["count"] == flags.count() == 39_995 and stats["npages"] == PARTIAL.npages


def test_the_typed_dicts_share_the_common_keys():
    common = {"nbytes", "flat_bytes", "count", "npages"}
    assert MapStats.__required_keys__ == common
    for shape in (FlatStats, PageFlagsStats, PreallocatedStats, ShardedTotals):
        assert common <= shape.__required_keys__, shape
    assert PageFlagsStats.__required_keys__ <= ShardedTotals.__required_keys__
    assert ShardedStats.__required_keys__ == {"shards", "total"}
