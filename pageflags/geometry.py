"""Geometry of a page-flag map: how many pages, how they split into chunks.

The numbers follow the kernel: a physical address space of ``phys_addr_bits``
(x86-64 ``MAX_PHYSMEM_BITS``: 46 with 4-level paging, 52 with 5-level), pages of
``1 << page_shift`` bytes, and chunks of ``1 << chunk_shift`` pages.  The default
chunk of 2^15 pages is 4 KiB of bits and covers one 128 MiB sparsemem section, the
leaf size used by the kernel's ``memory_bm``, TuxOnIce and x86-64 sparsemem alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._args import check_at_least, check_index, is_integer

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DEFAULT_GEOMETRY", "Geometry", "as_geometry", "capacity"]

WORD_BITS = 64
WORD_SHIFT = 6
MIN_CHUNK_SHIFT = WORD_SHIFT  # a chunk holds at least one whole word
MAX_CHUNK_SHIFT = 30  # per-chunk counts are int32
MAX_PAGE_SHIFT = 40
MAX_PHYS_ADDR_BITS = 64
MAX_PFN_BITS = 60  # pfns and page ranges stay exact in int64


def capacity(top_entries: int, chunk_bytes: int, page_size: int) -> int:
    """Bytes of memory a two-level page bitmap can describe.

    The seed's sum: each top-level entry points at a chunk of ``chunk_bytes`` bytes
    of bits, each bit stands for one page of ``page_size`` bytes.

    Examples
    --------
    >>> capacity(512, 128 * 1024, 4096) == 2 * 1024**4  # 512 x 128 KiB x 8 x 4 KiB
    True
    """
    return (check_at_least("top_entries", top_entries, 0)
            * check_at_least("chunk_bytes", chunk_bytes, 0) * 8
            * check_at_least("page_size", page_size, 0))


@dataclass(frozen=True)
class Geometry:
    """Sizes of a page-flag map over a physical address space.

    Parameters
    ----------
    phys_addr_bits : int
        Width of a physical address (46 for x86-64 4-level paging, 52 for 5-level).
    page_shift : int
        log2 of the page size (12 for 4 KiB pages).
    chunk_shift : int
        log2 of the pages per chunk (15: a chunk is one 128 MiB section).
    npages : int, optional
        Pages in the map; defaults to every page the address space can hold.  A
        smaller count leaves the last chunk partial (see :meth:`from_npages`).

    Examples
    --------
    >>> g = Geometry()
    >>> g.npages == 1 << 34, g.nchunks == 1 << 19, g.chunk_bytes
    (True, True, 4096)
    >>> g.pfn_to_chunk(g.addr_to_pfn(0x1_0000_0000))
    32
    """

    phys_addr_bits: int = 46
    page_shift: int = 12
    chunk_shift: int = 15
    npages: int = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        phys = check_index("phys_addr_bits", self.phys_addr_bits)
        page_shift = check_index("page_shift", self.page_shift)
        chunk_shift = check_index("chunk_shift", self.chunk_shift)
        if not 0 <= page_shift <= MAX_PAGE_SHIFT:
            raise ValueError(f"page_shift must be in [0, {MAX_PAGE_SHIFT}], got {page_shift}")
        if chunk_shift < MIN_CHUNK_SHIFT:
            raise ValueError(
                f"chunk_shift must be >= {MIN_CHUNK_SHIFT}: a chunk smaller than a "
                f"{WORD_BITS}-bit word, got {chunk_shift}")
        if chunk_shift > MAX_CHUNK_SHIFT:
            raise ValueError(f"chunk_shift must be <= {MAX_CHUNK_SHIFT}, got {chunk_shift}")
        if not page_shift < phys <= MAX_PHYS_ADDR_BITS:
            raise ValueError(
                f"phys_addr_bits must be in [{page_shift + 1}, {MAX_PHYS_ADDR_BITS}] "
                f"for page_shift {page_shift}, got {phys}")
        pfn_bits = phys - page_shift
        if pfn_bits > MAX_PFN_BITS:
            raise ValueError(
                f"phys_addr_bits - page_shift must be <= {MAX_PFN_BITS}, got {pfn_bits}")
        limit = 1 << pfn_bits
        npages = limit if self.npages is None else check_index("npages", self.npages)
        if not 1 <= npages <= limit:
            raise ValueError(
                f"npages must be in [1, {limit}] for a {phys}-bit space, got {npages}")
        for name, value in (("phys_addr_bits", phys), ("page_shift", page_shift),
                            ("chunk_shift", chunk_shift), ("npages", npages)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_npages(cls, npages: int, *, page_shift: int = 12,
                    chunk_shift: int = 15) -> Self:
        """Geometry for exactly ``npages`` pages; the last chunk may be partial.

        Examples
        --------
        >>> g = Geometry.from_npages(100_000)
        >>> g.nchunks, g.npages, g.phys_addr_bits
        (4, 100000, 29)
        """
        npages = check_at_least("npages", npages, 1)
        page_shift = check_index("page_shift", page_shift)
        chunk_shift = check_index("chunk_shift", chunk_shift)
        if not 0 <= page_shift <= MAX_PAGE_SHIFT:
            raise ValueError(f"page_shift must be in [0, {MAX_PAGE_SHIFT}], got {page_shift}")
        limit_bits = min(MAX_PFN_BITS, MAX_PHYS_ADDR_BITS - page_shift)
        if npages > 1 << limit_bits:
            raise ValueError(
                f"npages must be <= 2**{limit_bits} with page_shift {page_shift} "
                f"(pfns stay exact in int64 and addresses in {MAX_PHYS_ADDR_BITS} bits), "
                f"got {npages}")
        phys = page_shift + max(1, (npages - 1).bit_length())
        return cls(phys, page_shift, chunk_shift, npages)

    # Derived sizes.
    @property
    def pages_per_chunk(self) -> int:
        return 1 << self.chunk_shift

    @property
    def words_per_chunk(self) -> int:
        return 1 << (self.chunk_shift - WORD_SHIFT)

    @property
    def chunk_bytes(self) -> int:
        return self.words_per_chunk * 8

    @property
    def nchunks(self) -> int:
        return -(-self.npages // self.pages_per_chunk)

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def nwords(self) -> int:
        """64-bit words a flat bitmap of ``npages`` bits needs."""
        return -(-self.npages // WORD_BITS)

    @property
    def flat_bytes(self) -> int:
        """Bytes a flat bitmap of every page takes."""
        return self.nwords * 8

    @property
    def memory_bytes(self) -> int:
        """Bytes of physical memory the map describes (``npages * page_size``)."""
        return self.npages << self.page_shift

    @property
    def last_chunk_pages(self) -> int:
        """Pages in the last chunk (``pages_per_chunk`` unless it is partial)."""
        return self.npages - (self.nchunks - 1) * self.pages_per_chunk

    # Conversions.
    def addr_to_pfn(self, addr: int) -> int:
        """Page frame number holding byte address ``addr`` (``addr >> page_shift``)."""
        addr = check_index("addr", addr)
        if not 0 <= addr < self.memory_bytes:
            raise IndexError(f"address {addr:#x} outside [0, {self.memory_bytes:#x})")
        return addr >> self.page_shift

    def pfn_to_addr(self, pfn: int) -> int:
        """First byte address of page ``pfn``."""
        return self._checked_pfn(pfn) << self.page_shift

    def pfn_to_chunk(self, pfn: int) -> int:
        """Chunk (section) number holding page ``pfn``."""
        return self._checked_pfn(pfn) >> self.chunk_shift

    def chunk_to_pfn(self, chunk_nr: int) -> int:
        """First pfn of chunk ``chunk_nr``."""
        chunk_nr = check_index("chunk_nr", chunk_nr)
        if not 0 <= chunk_nr < self.nchunks:
            raise IndexError(f"chunk_nr {chunk_nr} outside [0, {self.nchunks})")
        return chunk_nr << self.chunk_shift

    def _checked_pfn(self, pfn: int) -> int:
        pfn = check_index("pfn", pfn)
        if not 0 <= pfn < self.npages:
            raise IndexError(f"pfn {pfn} outside [0, {self.npages})")
        return pfn

    def describe(self) -> dict[str, int]:
        """The geometry and its derived sizes as a plain dict."""
        return {
            "phys_addr_bits": self.phys_addr_bits, "page_shift": self.page_shift,
            "chunk_shift": self.chunk_shift, "npages": self.npages,
            "nchunks": self.nchunks, "pages_per_chunk": self.pages_per_chunk,
            "words_per_chunk": self.words_per_chunk, "chunk_bytes": self.chunk_bytes,
            "page_size": self.page_size, "memory_bytes": self.memory_bytes,
            "flat_bytes": self.flat_bytes,
        }


def as_geometry(geometry_or_npages: Geometry | int) -> Geometry:
    """A Geometry as given, or one built with :meth:`Geometry.from_npages`."""
    if isinstance(geometry_or_npages, Geometry):
        return geometry_or_npages
    if not is_integer(geometry_or_npages):
        raise TypeError("expected a Geometry or a page count, got "
                        f"{type(geometry_or_npages).__name__}")
    return Geometry.from_npages(int(geometry_or_npages))


#: x86-64 with 4-level paging: 46-bit physical addresses, 4 KiB pages, 128 MiB chunks.
DEFAULT_GEOMETRY = Geometry()
