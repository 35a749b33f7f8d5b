"""The contracts of DESIGN.md for every public method of every map type.

Each bad call must raise the documented exception and leave the map unchanged.
"""

import threading

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


# --- one writer at a time ------------------------------------------------------------
WRITES = [("set", (5,)), ("clear", (5,)), ("set_range", (0, 10)), ("clear_range", (0, 10)),
          ("set_many", ([1, 2],)), ("clear_many", ([1, 2],)),
          ("put_words", (0, np.array([7], dtype=np.uint64))), ("__ior__", None),
          ("__iand__", None), ("__ixor__", None), ("__isub__", None)]


def _held_by_another_thread(flags):
    """A thread that holds ``flags`` as its writer until the returned event is set."""
    from pageflags.base import writing

    held, release = threading.Event(), threading.Event()

    def hold():
        with writing(flags):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    return thread, release


@pytest.mark.parametrize(("method", "args"), WRITES, ids=[m for m, _ in WRITES])
def test_a_second_writer_thread_is_refused_and_changes_nothing(populated, method, args):
    before = populated.copy()
    if args is None:
        args = (populated.copy(),)
    thread, release = _held_by_another_thread(populated)
    try:
        with pytest.raises(RuntimeError, match="another thread is writing"):
            getattr(populated, method)(*args)
    finally:
        release.set()
        thread.join()
    unchanged(populated, before)
    getattr(populated, method)(*args)  # the writer has gone: allowed again


def test_the_writing_thread_may_nest_writes_and_others_may_read(populated):
    from pageflags.base import writing

    with writing(populated):
        populated.set(7)
        seen = []
        reader = threading.Thread(target=lambda: seen.append(populated.test(7)))
        reader.start()
        reader.join()
    assert seen == [True] and populated.test(7)


def test_racing_writers_never_lose_a_bit(map_type):
    # Disjoint pfns sharing chunks: before the guard, racing set_many lost bits.
    flags = map_type(PARTIAL)
    rng = np.random.default_rng(0)
    pfns = rng.permutation(N)[:60_000]
    halves = [pfns[0::2], pfns[1::2]]
    refused = []

    def write(mine):
        for part in np.array_split(mine, 60):
            while True:
                try:
                    flags.set_many(part)
                    break
                except RuntimeError:
                    refused.append(1)

    threads = [threading.Thread(target=write, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flags.validate()
    assert flags.count() == pfns.size
    assert flags.test_many(pfns).all()
