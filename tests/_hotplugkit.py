"""A hotplug machine in flat bitmaps, shared by the hotplug and harness tests."""

from __future__ import annotations

import numpy as np

from pageflags import FlatPageFlags, Geometry, Hotplug, MemoryMap

G = Geometry(phys_addr_bits=30)  # 8 sections of 2**15 pages
PPC = G.pages_per_chunk


class Model:
    """The machine in flat bitmaps: present pages and one flat map per attached map."""

    def __init__(self, hp: Hotplug) -> None:
        g = hp.geometry
        self.g = g
        self.present = FlatPageFlags(g)
        for start, stop in present_ranges(hp):
            self.present.set_range(start, stop)
        self.maps = {name: FlatPageFlags(g) for name in hp.maps}

    def section(self, nr: int) -> tuple[int, int]:
        ppc = self.g.pages_per_chunk
        return nr * ppc, min((nr + 1) * ppc, self.g.npages)

    def add(self, nrs) -> None:
        for nr in nrs:
            self.present.set_range(*self.section(nr))
            for flat in self.maps.values():
                flat.clear_range(*self.section(nr))

    def remove(self, nrs) -> None:
        for nr in nrs:
            self.present.clear_range(*self.section(nr))
            for flat in self.maps.values():
                flat.clear_range(*self.section(nr))

    def check(self, hp: Hotplug) -> None:
        hp.validate()
        assert hp.present == self.present
        for name, flags in hp.maps.items():
            assert flags == self.maps[name], name
        pfns = np.arange(0, self.g.npages, max(1, self.g.npages // 4096))
        assert np.array_equal(hp.pfn_valid(pfns), self.present.test_many(pfns))


def present_ranges(hp: Hotplug) -> list[tuple[int, int]]:
    """Runs of present pages, read page by page: the model must not be built with
    the range logic under test."""
    ppc = hp.geometry.pages_per_chunk
    secs = hp.sections()
    pfns = (secs[:, None] * ppc + np.arange(ppc)).ravel()
    pfns = pfns[pfns < hp.geometry.npages]
    pages = pfns[hp.present.test_many(pfns)]
    if not pages.size:
        return []
    breaks = np.flatnonzero(np.diff(pages) != 1)
    starts = np.concatenate(([pages[0]], pages[breaks + 1]))
    stops = np.concatenate((pages[breaks] + 1, [pages[-1] + 1]))
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def machine(sections=(0, 1, 2, 3), g: Geometry = G) -> Hotplug:
    ppc = g.pages_per_chunk
    ranges = [[s * ppc, min((s + 1) * ppc, g.npages)] for s in sections]
    return Hotplug(MemoryMap(ranges, geometry=g))


def two_nodes() -> Hotplug:
    return Hotplug(MemoryMap.synthetic("64 GiB", nodes=2, phys_addr_bits=40, seed=4))
