"""The contracts of DESIGN.md for every public method of every map type.

Each bad call must raise the documented exception and leave the map unchanged.
"""

import numpy as np
import pytest
from conftest import PARTIAL

N = PARTIAL.npages

BAD_PFNS = [(-1, IndexError), (N, IndexError), (1 << 70, IndexError),
            (np.int64(-5), IndexError), (np.uint64(N), IndexError),
            (1.0, TypeError), (np.float64(3), TypeError), (True, TypeError),
            (np.bool_(False), TypeError), ("3", TypeError), (None, TypeError)]

BAD_RANGES = [((-1, 5), IndexError), ((0, N + 1), IndexError), ((N + 1, N + 2), IndexError),
              ((10, 5), ValueError), ((N, 0), ValueError), ((0.0, 5), TypeError),
              ((0, 5.5), TypeError), ((False, 5), TypeError), (("0", 5), TypeError)]

BAD_ARRAYS = [(np.array([1.0, 2.0]), TypeError), (np.array([True]), TypeError),
              (["a"], TypeError), ([1, 2.5], TypeError), (np.array([1, -1]), IndexError),
              (np.array([N]), IndexError), (np.array([2**64 - 1], dtype=np.uint64), IndexError),
              (np.array([0, 2**63], dtype=np.uint64), IndexError), ([[0, N]], IndexError)]


@pytest.fixture
def populated(map_type):
    flags = map_type(PARTIAL)
    flags.set_range(100, 40_000)
    flags.set_many([0, 63, 64, N - 1])
    return flags


def unchanged(flags, before):
    flags.validate()
    assert flags == before


@pytest.mark.parametrize("method", ["set", "clear", "test", "__contains__"])
@pytest.mark.parametrize("pfn, error", BAD_PFNS)
def test_bad_pfn(populated, method, pfn, error):
    before = populated.copy()
    with pytest.raises(error):
        getattr(populated, method)(pfn)
    unchanged(populated, before)


def test_bad_pfn_with_in(populated):
    with pytest.raises(IndexError):
        N in populated  # noqa: B015
    with pytest.raises(TypeError):
        2.0 in populated  # noqa: B015


@pytest.mark.parametrize("method", ["set_range", "clear_range", "count", "any", "all"])
@pytest.mark.parametrize("bounds, error", BAD_RANGES)
def test_bad_range(populated, method, bounds, error):
    before = populated.copy()
    with pytest.raises(error):
        getattr(populated, method)(*bounds)
    unchanged(populated, before)


@pytest.mark.parametrize("method", ["count", "any", "all"])
def test_bad_start_alone(populated, method):
    with pytest.raises(IndexError):
        getattr(populated, method)(N + 1)
    with pytest.raises(TypeError):
        getattr(populated, method)(1.5)


@pytest.mark.parametrize("method", ["set_many", "clear_many", "test_many"])
@pytest.mark.parametrize("pfns, error", BAD_ARRAYS)
def test_bad_pfn_array(populated, method, pfns, error):
    before = populated.copy()
    with pytest.raises(error):
        getattr(populated, method)(pfns)
    unchanged(populated, before)


@pytest.mark.parametrize("method", ["set_many", "clear_many"])
def test_one_bad_pfn_among_millions_changes_nothing(populated, method):
    pfns = np.random.default_rng(3).integers(0, N, 10_000_000)
    pfns[7_654_321] = N + 12
    before = populated.copy()
    with pytest.raises(IndexError, match=rf"pfn {N + 12} at index 7654321 outside \[0, {N}\)"):
        getattr(populated, method)(pfns)
    unchanged(populated, before)


def test_messages_name_value_and_valid_range(populated):
    with pytest.raises(IndexError, match=rf"pfn -3 outside \[0, {N}\)"):
        populated.set(-3)
    with pytest.raises(ValueError, match="start 9 > stop 2"):
        populated.set_range(9, 2)
    with pytest.raises(TypeError, match="float"):
        populated.test(1.0)
    with pytest.raises(TypeError, match="float64"):
        populated.set_many(np.zeros(3))


def test_maps_are_unhashable(populated):
    with pytest.raises(TypeError):
        hash(populated)


def test_maps_compare_unequal_to_other_things(populated):
    assert populated != 3 and populated != "x" and not (populated == None)  # noqa: E711
