"""FlatPageFlags against a NumPy bool array (it is the reference model)."""

import numpy as np
import pytest
from conftest import assert_matches, edge_pfns

from pageflags import FlatPageFlags


def test_flat_is_one_word_array(geometry):
    flat = FlatPageFlags(geometry)
    assert flat.words.dtype == np.uint64 and flat.words.size == geometry.nwords
    assert flat.nbytes == geometry.flat_bytes == flat.stats()["flat_bytes"]
    assert flat.optimize() == 0


def test_flat_bit_layout_is_little_endian_words():
    flat = FlatPageFlags(1000)
    flat.set_many([0, 65, 999])
    assert flat.words[0] == 1 and flat.words[1] == 2 and flat.words[15] == 1 << (999 - 960)


def test_flat_random_ops_against_bool_array(geometry):
    rng = np.random.default_rng(11)
    flat = FlatPageFlags(geometry)
    model = np.zeros(geometry.npages, bool)
    for _ in range(30):
        a, b = sorted(rng.integers(0, geometry.npages + 1, 2))
        pfns = rng.integers(0, geometry.npages, 50)
        op = rng.integers(4)
        if op == 0:
            flat.set_range(a, b)
            model[a:b] = True
        elif op == 1:
            flat.clear_range(a, b)
            model[a:b] = False
        elif op == 2:
            flat.set_many(pfns)
            model[pfns] = True
        else:
            flat.clear_many(pfns)
            model[pfns] = False
        assert flat.count(a, b) == model[a:b].sum()
        assert flat.any(a, b) == model[a:b].any() and flat.all(a, b) == model[a:b].all()
    assert_matches(flat, model)


def test_flat_single_pages_at_edges(geometry):
    flat = FlatPageFlags(geometry)
    for pfn in edge_pfns(geometry.npages):
        flat.set(pfn)
        assert flat.test(pfn) and flat.count() == 1
        flat.clear(pfn)
        assert not flat.test(pfn) and flat.count() == 0


def test_flat_validate_detects_bits_past_npages():
    flat = FlatPageFlags(100)
    flat.words[-1] |= np.uint64(1) << np.uint64(40)
    with pytest.raises(AssertionError, match="past npages"):
        flat.validate()


def test_flat_copy_and_equality():
    flat = FlatPageFlags(1000)
    flat.set_range(3, 300)
    dup = flat.copy()
    assert dup == flat
    dup.clear(5)
    assert dup != flat and flat.test(5)


def test_flat_words_cannot_be_rebound_and_pickles_keep_writing():
    import pickle

    flat = FlatPageFlags(1000)
    flat.set_range(3, 70)
    with pytest.raises(AttributeError):
        flat.words = np.zeros_like(flat.words)
    flat.words[15] = 1  # in place, it is the map
    assert flat.test(960)
    again = pickle.loads(pickle.dumps(flat))
    again.set(999)
    again.clear_range(3, 5)
    assert again.count() == 67 and flat.count() == 68
    assert again.to_array().tolist() == [*range(5, 70), 960, 999]
