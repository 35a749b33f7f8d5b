"""The contracts of docs/design.md for every public method of every map type.

Each bad call must raise the documented exception and leave the map unchanged.
"""

import threading
import warnings
from fractions import Fraction

import numpy as np
import pytest
from conftest import PARTIAL

from pageflags import FlatPageFlags, PageFlags, PreallocatedPageFlags
from pageflags.base import PageMap, writing

N = PARTIAL.npages
C = PARTIAL.pages_per_chunk


class Tagged(np.ndarray):
    """An ndarray subclass the checks know nothing about."""


def matrix(rows):
    """``np.matrix(rows)`` without its PendingDeprecationWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.matrix(rows)


BAD_PFNS = [(-1, IndexError), (N, IndexError), (1 << 70, IndexError),
            (np.int64(-5), IndexError), (np.uint64(N), IndexError),
            (1.0, TypeError), (np.float64(3), TypeError), (True, TypeError),
            (np.bool_(False), TypeError), ("3", TypeError), (None, TypeError),
            (np.timedelta64(7), TypeError), (np.datetime64(7, "s"), TypeError)]

BAD_RANGES = [((-1, 5), IndexError), ((0, N + 1), IndexError), ((N + 1, N + 2), IndexError),
              ((10, 5), ValueError), ((N, 0), ValueError), ((0.0, 5), TypeError),
              ((0, 5.5), TypeError), ((False, 5), TypeError), (("0", 5), TypeError),
              ((np.timedelta64(0), 5), TypeError), ((0, np.timedelta64(5)), TypeError)]

BAD_ARRAYS = [(np.array([1.0, 2.0]), TypeError), (np.array([True]), TypeError),
              (["a"], TypeError), ([1, 2.5], TypeError), (np.array([1, -1]), IndexError),
              (np.array([N]), IndexError), (np.array([2**64 - 1], dtype=np.uint64), IndexError),
              (np.array([0, 2**63], dtype=np.uint64), IndexError), ([[0, N]], IndexError),
              ([True, 3], TypeError), ([3, np.True_], TypeError), ([[1], [False]], TypeError),
              (np.array([3], dtype="m8[s]"), TypeError), ([[1, 2], [3]], TypeError),
              ([2**100], IndexError), ([-1, 2**64 - 1], IndexError),
              (np.ma.array([1, 2], mask=[False, True]), TypeError),
              (np.arange(3).view(Tagged), TypeError)]


@pytest.fixture
def populated(map_type):
    flags = map_type(PARTIAL)
    flags.set_range(100, 40_000)
    flags.set_many([0, 63, 64, N - 1])
    return flags


def unchanged(flags, before):
    flags.validate()
    assert flags == before


def test_to_array_into_a_buffer_fills_its_head_and_returns_a_view_of_it(populated):
    want = populated.to_array(50, N)
    buffer = np.full(want.size + 5, -7, dtype=np.int64)
    got = populated.to_array(50, N, out=buffer)
    assert got.base is buffer and np.array_equal(got, want)
    assert buffer[want.size:].tolist() == [-7] * 5
    exact = np.empty(populated.count(), dtype=np.int64)
    assert np.array_equal(populated.to_array(out=exact), populated.to_array())
    assert populated.to_array(7, 7, out=np.empty(0, dtype=np.int64)).size == 0


def _read_only(size):
    buffer = np.empty(size, dtype=np.int64)
    buffer.setflags(write=False)
    return buffer


BAD_OUTS = [([0] * 50_000, TypeError), (np.empty(50_000, np.uint64), TypeError),
            (np.empty((500, 100), np.int64), ValueError),
            (np.empty(100_000, np.int64)[::2], ValueError), (_read_only(50_000), ValueError),
            (np.empty(39_903, np.int64), ValueError),
            (np.ma.array(np.empty(50_000, np.int64)), TypeError)]


@pytest.mark.parametrize("out, error", BAD_OUTS)
def test_a_bad_out_buffer_is_refused_and_left_as_it_was(populated, out, error):
    before = np.array(out, copy=True)
    with pytest.raises(error, match="out"):
        populated.to_array(out=out)
    assert np.array_equal(np.asarray(out), before)


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
          ("set_range", (60, 70)), ("clear_range", (101, 103)), ("set_range", (C, 2 * C)),
          ("clear_range", (C, 2 * C)), ("clear_range", (3 * C, N)), ("set_range", (0, N)),
          ("set_many", ([1, 2],)), ("clear_many", ([1, 2],)),
          ("put_words", (0, np.array([7], dtype=np.uint64))), ("__ior__", None),
          ("__iand__", None), ("__ixor__", None), ("__isub__", None)]


def _held_by_another_thread(flags):
    """A thread that holds ``flags`` as its writer until the returned event is set."""
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
@pytest.mark.parametrize("method", ["set_many", "clear_many", "test_many"])
def test_masked_array_refused_even_after_a_memmap(populated, method, tmp_path):
    # A memmap is a plain array on a file; a masked one must never lose its mask.
    pfns = np.memmap(tmp_path / "pfns", dtype=np.int64, mode="w+", shape=2)
    pfns[:] = [5, 6]
    getattr(populated, method)(pfns)
    before = populated.copy()
    masked = np.ma.array([7, 8], mask=[False, True])
    for _ in range(2):
        with pytest.raises(TypeError, match=r"MaskedArray; pass \.compressed\(\)"):
            getattr(populated, method)(masked)
    unchanged(populated, before)


def test_memmap_pfns_work_like_an_array(populated, tmp_path):
    pfns = np.memmap(tmp_path / "pfns", dtype=np.uint32, mode="w+", shape=(2, 2))
    pfns[:] = [[1, 2], [3, 70_000]]
    populated.set_many(pfns)
    assert populated.test_many(pfns).tolist() == [[True, True], [True, True]]


@pytest.mark.parametrize("method", ["set_many", "clear_many", "test_many"])
def test_matrix_is_refused_with_a_type_error(populated, method):
    before = populated.copy()
    with pytest.raises(TypeError, match="plain NumPy array, got matrix"):
        getattr(populated, method)(matrix([[1, 2]]))
    unchanged(populated, before)


def test_a_bool_in_a_list_is_not_pfn_1(map_type):
    flags = map_type(PARTIAL)
    with pytest.raises(TypeError, match="not bools"):
        flags.set_many([True, 3])
    with pytest.raises(TypeError, match="not bools"):
        map_type.from_ranges([0, False], [5, 9], PARTIAL)
    with pytest.raises(TypeError, match="must be an integer"):
        flags.set(np.timedelta64(7))
    assert flags.count() == 0


@pytest.mark.parametrize("words, error", [
    (np.array([-1], dtype=np.int8), ValueError), ([-1], ValueError),
    (np.array([1, -(2**63)], dtype=np.int64), ValueError), ([2**64], ValueError),
    (np.ma.array([1], mask=[True]), TypeError), (matrix([[1]]), TypeError),
    ([True], TypeError), (np.array([1.0]), TypeError)])
def test_put_words_refuses_words_that_would_wrap(populated, words, error):
    before = populated.copy()
    with pytest.raises(error):
        populated.put_words(0, words)
    with pytest.raises(error):
        type(populated).from_words(words, 0, PARTIAL)
    unchanged(populated, before)


def test_put_words_takes_signed_words_that_are_not_negative(populated):
    populated.put_words(64, np.array([5], dtype=np.int8))
    assert populated.to_words(64, 128).tolist() == [5]


def test_from_bool_refuses_a_masked_mask(map_type):
    with pytest.raises(TypeError, match="MaskedArray"):
        map_type.from_bool(np.ma.array([True, True], mask=[False, True]), 0, PARTIAL)


@pytest.mark.parametrize(("method", "args"), [w for w in WRITES if w[1] is not None],
                         ids=[m for m, a in WRITES if a is not None])
def test_every_write_nests_in_the_writing_thread(populated, method, args):
    twin = populated.copy()
    with writing(populated):
        getattr(populated, method)(*args)  # refused, were the nesting not seen
        with writing(populated):
            getattr(populated, method)(*args)
    getattr(twin, method)(*args)
    unchanged(populated, twin)
    getattr(populated, method)(*args)  # the token came back


def test_a_failed_write_gives_the_guard_back(populated):
    with pytest.raises(IndexError):
        populated.set(N)
    with pytest.raises(TypeError):
        populated.set_range(0, 5.0)
    populated.set(6)
    thread, release = _held_by_another_thread(populated)
    release.set()
    thread.join()
    populated.clear(6)
    assert not populated.test(6)


# --- the fused single calls (base.py) accept and refuse exactly what the generic do -----
class MyInt(int):
    """An int subclass: an integer, turned into a plain int by the checks."""


# Plain ints in range and out (huge ones included), NumPy integers, and what is refused.
SCALARS = [0, 5, 63, 64, C - 1, C, N - 1, N, N + 1, -1, -(1 << 70), 1 << 70, 2**63, 2**64,
           np.int8(5), np.uint8(200), np.int64(C), np.uint64(N - 1), np.int64(-1),
           np.uint64(2**64 - 1), MyInt(7), True, False, np.bool_(True), 5.0, np.float32(64),
           Fraction(5), 5 + 0j, "5", None, np.timedelta64(5), np.datetime64(5, "s")]
ONE_ARG = ["set", "clear", "test", "__contains__", "find_next_set", "count"]
# Ranges in one word, over two words, a whole section, across a chunk edge and the
# partial last chunk, with each end in turn replaced by every scalar above.
RANGES = [(60, 62), (60, 70), (C, 2 * C), (C - 3, C + 3), (3 * C, N), (0, N), (7, 7)]
TWO_ARGS = ["set_range", "clear_range", "count"]


def _outcome(flags, call):
    """What ``call(flags)`` did: ('ok', result) or the error's type and message."""
    try:
        return "ok", call(flags)
    except Exception as error:
        return type(error), str(error)


def _with_views(map_type):
    """A map whose chunks 0 and 1 have private views (single writes made them)."""
    flags = map_type(PARTIAL)
    flags.set_range(100, 40_000)
    flags.set_many([0, 63, 64, N - 1])
    flags.set(65)
    flags.clear(C + 11)
    flags.set(3 * C + 5)
    return flags


def _same_as_generic(map_type, name, args):
    fused, generic = _with_views(map_type), _with_views(map_type)
    if name in type(fused)._FUSED:  # a fused method is the class's own
        assert getattr(type(fused), name) is not getattr(PageMap, name)
    got = _outcome(fused, lambda f: getattr(f, name)(*args))
    want = _outcome(generic, lambda f: getattr(PageMap, name)(f, *args))
    assert got == want, (name, args)
    fused.validate()
    assert fused == generic


@pytest.mark.parametrize("name", ONE_ARG)
@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_fused_single_calls_match_the_generic_ones(map_type, name, value):
    _same_as_generic(map_type, name, (value,))


@pytest.mark.parametrize("name", TWO_ARGS)
@pytest.mark.parametrize("bounds", RANGES, ids=str)
@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_fused_range_calls_match_the_generic_ones(map_type, name, bounds, value):
    _same_as_generic(map_type, name, bounds)
    _same_as_generic(map_type, name, (value, bounds[1]))
    _same_as_generic(map_type, name, (bounds[0], value))


def test_fused_calls_raise_the_documented_errors(map_type):
    flags = _with_views(map_type)
    before = flags.copy()
    for call, error in [(lambda: flags.set(True), TypeError),
                        (lambda: flags.clear(np.float64(65)), TypeError),
                        (lambda: flags.set_range(60, np.bool_(True)), TypeError),
                        (lambda: flags.clear_range(C, 2.0 * C), TypeError),
                        (lambda: flags.set_range(C, N + 1), IndexError),
                        (lambda: flags.clear_range(-C, 0), IndexError),
                        (lambda: flags.set_range(70, 60), ValueError),
                        (lambda: flags.count(1 << 70, 1 << 71), IndexError),
                        (lambda: flags.find_next_set(N + 1), IndexError),
                        (lambda: flags.test(-(1 << 70)), IndexError)]:
        with pytest.raises(error):
            call()
    unchanged(flags, before)


# --- which classes keep the fused methods ------------------------------------------------
def test_a_subclass_overriding_a_primitive_gets_the_generic_method(map_type):
    calls = []

    class Logged(map_type):
        __slots__ = ()

        def _set_one(self, pfn):
            calls.append(("set", pfn))
            super()._set_one(pfn)

        def _set_range(self, start, stop):
            calls.append(("set_range", start, stop))
            super()._set_range(start, stop)

        def _test(self, pfn):
            calls.append(("test", pfn))
            return super()._test(pfn)

    flags = Logged(PARTIAL)
    flags.set(5)
    flags.set(5)
    flags.set_range(60, 70)
    assert flags.test(5) and 61 in flags and not flags.test(59)
    assert calls == [("set", 5), ("set", 5), ("set_range", 60, 70), ("test", 5),
                     ("test", 61), ("test", 59)]
    for name in ("set", "set_range", "test", "__contains__"):
        assert getattr(Logged, name) is getattr(PageMap, name), name
    assert Logged.clear is map_type.clear and Logged.count is map_type.count
    flags.clear(5)
    assert flags.count() == 10


def test_preallocated_maps_write_whole_sections_through_their_own_fill():
    # It overrides _fill and _free, which the fused range writes of PageFlags bypass.
    assert PreallocatedPageFlags.set_range is PageMap.set_range
    assert PreallocatedPageFlags.clear_range is PageMap.clear_range
    assert PreallocatedPageFlags.set is PageFlags.set
    flags = PreallocatedPageFlags(PARTIAL, sections=[1])
    flags.set_range(C, 2 * C)
    flags.clear_range(C, 2 * C)
    assert flags.stats()["allocated"] == 1 and flags.count() == 0
    flags.validate()


# --- PageMap is an abstract base class -------------------------------------------------
def test_page_map_declares_every_primitive_abstract():
    assert {"nbytes", "copy", "stats", "validate", "optimize", "_set_range", "_clear_range",
            "_count", "_any", "_test", "_set_many", "_clear_many", "_test_many", "_equal",
            "_find_next_set", "_find_next_clear", "_find_prev_set", "_collect", "_runs",
            "_select", "_combine", "_combine_in_place", "_invert", "_count_and",
            "_set_ranges", "_get_words", "_put_words"} == PageMap.__abstractmethods__
    with pytest.raises(TypeError, match="abstract"):
        PageMap(PARTIAL)
    for cls in (PageFlags, PreallocatedPageFlags, FlatPageFlags):
        assert not cls.__abstractmethods__, cls


def test_a_subclass_missing_a_primitive_cannot_be_made():
    # FlatPageFlags' implementations of every primitive but one.
    namespace = {name: FlatPageFlags.__dict__[name] for name in PageMap.__abstractmethods__
                 if name != "_select"}
    Partial = type("Partial", (PageMap,), {"__slots__": ("_words",), **namespace})
    with pytest.raises(TypeError, match="_select"):
        Partial(PARTIAL)


def test_maps_keep_slots_under_the_abstract_base(map_type):
    flags = map_type(PARTIAL)
    assert not hasattr(flags, "__dict__")
    with pytest.raises(AttributeError):
        flags.label = "dirty"  # a typo of an attribute cannot pass silently

    class Slotted(map_type):
        __slots__ = ("label",)

    tagged = Slotted(PARTIAL)
    tagged.label = "dirty"
    tagged.set(5)
    assert not hasattr(tagged, "__dict__") and tagged.test(5)
    # Overriding nothing the fused methods stand for, it keeps them.
    assert Slotted.set is map_type.set and Slotted.test is map_type.test
