"""Maps built three ways at once (PageFlags, FlatPageFlags, NumPy bool model).

Shared by the scan, algebra and conversion tests: each map mixes None, FULL and
private chunks, with bits at word and chunk edges, over geometries whose last chunk is
partial.  Also :func:`exercise`, code written against ``PageMapLike`` alone, which the
interface and sharded tests run on every map type.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from pageflags import FlatPageFlags, Geometry, PageFlags, PageMapLike

# Four 32768-page chunks, the last one partial (1000 pages).
BIG = Geometry.from_npages(3 * 32768 + 1000)
# Eight 128-page chunks of two words each, the last one partial (104 pages): many
# chunk edges in a small model.
SMALL = Geometry.from_npages(1000, chunk_shift=7)
GEOMETRIES = [BIG, SMALL]


def edges(g: Geometry) -> list[int]:
    """Pfns where words, chunks and the map begin and end."""
    ppc = g.pages_per_chunk
    points = {0, 1, 63, 64, 65, ppc - 1, ppc, ppc + 1, 2 * ppc - 1, 2 * ppc,
              g.npages - 65, g.npages - 64, g.npages - 2, g.npages - 1}
    return sorted(p for p in points if 0 <= p < g.npages)


class Triple:
    """One map as PageFlags, FlatPageFlags and a bool array, changed together."""

    def __init__(self, g: Geometry) -> None:
        self.g = g
        self.flags = PageFlags(g)
        self.flat = FlatPageFlags(g)
        self.model = np.zeros(g.npages, dtype=bool)
        self.log: list[str] = []  # how it was built, for Hypothesis' reports

    def __repr__(self) -> str:
        return f"Triple({self.g.npages}, chunk_shift={self.g.chunk_shift}: {self.log})"

    def set_range(self, start: int, stop: int) -> None:
        self.log.append(f"set_range({start}, {stop})")
        self.flags.set_range(start, stop)
        self.flat.set_range(start, stop)
        self.model[start:stop] = True

    def set_many(self, pfns: list[int]) -> None:
        self.log.append(f"set_many({pfns})")
        self.flags.set_many(pfns)
        self.flat.set_many(pfns)
        self.model[pfns] = True

    def clear_many(self, pfns: list[int]) -> None:
        self.log.append(f"clear_many({pfns})")
        self.flags.clear_many(pfns)
        self.flat.clear_many(pfns)
        self.model[pfns] = False

    def check(self) -> None:
        check_same(self.flags, self.model)
        check_same(self.flat, self.model)


def check_same(flags: PageFlags | FlatPageFlags, model: np.ndarray) -> None:
    """``flags`` is valid, holds exactly ``model``, and keeps no empty chunk."""
    flags.validate()
    assert flags.count() == int(model.sum())
    assert np.array_equal(flags.to_array(), np.flatnonzero(model))
    if isinstance(flags, PageFlags):
        kinds = entry_kinds(flags)
        assert not (flags._counts[kinds == "chunk"] == 0).any(), "an all-zero chunk is kept"


def entry_kinds(flags: PageFlags) -> np.ndarray:
    """'none', 'full' or 'chunk' per table entry."""
    table = flags.table
    return np.array(["none" if e is None else "full" if e is flags.FULL else "chunk"
                     for e in table])


CHUNK_KINDS = ["none", "full", "bits", "holes"]


@st.composite
def triples(draw: st.DrawFn, g: Geometry | None = None) -> Triple:
    """A Triple whose every chunk is None, FULL, a few bits, or FULL with holes."""
    if g is None:
        g = draw(st.sampled_from(GEOMETRIES))
    t = Triple(g)
    ppc = g.pages_per_chunk
    for c in range(g.nchunks):
        lo, hi = c * ppc, min((c + 1) * ppc, g.npages)
        kind = draw(st.sampled_from(CHUNK_KINDS))
        some = st.lists(st.integers(lo, hi - 1), min_size=1, max_size=12)
        if kind in ("full", "holes"):
            t.set_range(lo, hi)
        if kind == "bits":
            t.set_many(draw(some))
        elif kind == "holes":
            t.clear_many(draw(some))
    t.set_many(draw(st.lists(st.sampled_from(edges(g)), max_size=4)))
    return t


@st.composite
def triple_pairs(draw: st.DrawFn) -> tuple[Triple, Triple]:
    """Two Triples of one geometry."""
    g = draw(st.sampled_from(GEOMETRIES))
    return draw(triples(g)), draw(triples(g))


def positions(g: Geometry) -> st.SearchStrategy[int]:
    """Starts worth searching from: the edges, npages, and anywhere."""
    return st.one_of(st.sampled_from([*edges(g), g.npages]), st.integers(0, g.npages))


def drawn_window(data: st.DataObject) -> tuple[Triple, int, int]:
    """A Triple and a page range ``[start, stop)`` of it."""
    t = data.draw(triples())
    start = data.draw(positions(t.g))
    return t, start, data.draw(st.integers(start, t.g.npages))


def other_ranges(npages: int) -> tuple[list[int], list[int]]:
    """The ranges :func:`exercise` combines with (built by ``from_ranges``)."""
    q = npages // 4
    return [1, 2 * q - 5], [9, 3 * q]


def exercise(flags: PageMapLike, other: PageMapLike) -> list[object]:
    """Every member of the protocol, through the protocol only, on an empty ``flags``
    and ``other`` built from :func:`other_ranges`."""
    n = flags.npages
    q = n // 4
    flags.set_range(3, 2 * q)
    flags.clear_range(q // 2, q // 2 + 7)
    flags.set_many([0, 63, 64, n - 1])
    flags.clear_many([64, 4])
    both, either, one, only = flags & other, flags | other, flags ^ other, flags - other
    out: list[object] = [
        flags.geometry == other.geometry, n, flags.count(), flags.count(q // 2 - 3, q),
        flags.any(q // 2, q // 2 + 7), flags.all(q, q + 9), flags.all(0, 5),
        flags.test_many([[0, 1], [63, n - 1]]).tolist(),
        flags.find_next_set(1), flags.find_next_clear(5), flags.to_array(0, 12).tolist(),
        [a.tolist() for a in flags.iter_arrays(0, 9, max_len=3)],
        flags.count_and(other), flags.count_or(other), flags.count_xor(other),
        flags.count_andnot(other),
        [m.count() for m in (both, either, one, only)],
        "count" in flags.stats() or "total" in flags.stats()]
    same = flags
    flags &= other
    flags |= only
    flags ^= one
    flags -= both
    out += [flags is same, flags.count(), flags.to_array(0, 12).tolist()]
    return out
