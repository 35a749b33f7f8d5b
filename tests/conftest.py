"""Shared fixtures and helpers: small geometries and the reference-model check."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from pageflags import FlatPageFlags, Geometry, PageFlags

# Three chunks and a partial fourth: every boundary of the core issue fits.
PARTIAL = Geometry.from_npages(3 * 32768 + 1000)
# Whole chunks only, and a geometry of tiny 64-page chunks (many chunks, word == chunk).
WHOLE = Geometry.from_npages(4 * 32768)
TINY = Geometry.from_npages(64 * 20 + 17, chunk_shift=6)
GEOMETRIES = [PARTIAL, WHOLE, TINY]


def edge_pfns(npages: int) -> list[int]:
    """Pfns at word and chunk boundaries, 0 and npages - 1, within [0, npages)."""
    points = {0, 1, 63, 64, 65, 127, 128, 32767, 32768, 32769, 65535, 65536, npages - 1,
              npages - 2, npages // 2}
    return sorted(p for p in points if 0 <= p < npages)


def assert_matches(flags, model: np.ndarray, flat: FlatPageFlags | None = None) -> None:
    """``flags`` holds exactly ``model``'s bits (and ``flat``'s), and is valid."""
    flags.validate()
    every = np.arange(flags.npages)
    np.testing.assert_array_equal(flags.test_many(every), model)
    assert flags.count() == int(model.sum())
    if flat is not None:
        flat.validate()
        assert flags == flat
        assert flat == flags


@pytest.fixture(params=GEOMETRIES, ids=["partial", "whole", "tiny"])
def geometry(request) -> Geometry:
    return request.param


@pytest.fixture(params=[PageFlags, FlatPageFlags], ids=["pageflags", "flat"])
def map_type(request):
    return request.param


def finishes_within(seconds: float, call, fifo=None):
    """Run ``call()`` on a thread; return its result or raise what it raised.

    Fails the test when it is still running after ``seconds``; a reader blocked on
    the FIFO ``fifo`` is then released by opening and closing its writing end.
    """
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed back below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(seconds)
        pytest.fail(f"still blocked after {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
