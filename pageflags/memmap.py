"""MemoryMap: which pages of a machine exist, read from the machine or made up.

A :class:`MemoryMap` is a machine's present memory as sorted, non-overlapping,
half-open pfn ranges, each with an optional NUMA node, tied to a
:class:`~pageflags.Geometry`.  It comes from ``/proc/iomem``, from the sysfs
memory-block tree, or from a seeded synthetic layout.

Allocation modes (the seed's ``PRESENT_PAGES_ONLY`` / ``ALL_PAGES`` flag)
-----------------------------------------------------------------------------
``MemoryMap.new_flags(alloc=...)`` makes an empty map for the machine:

* ``"lazy"`` (default): a plain :class:`~pageflags.PageFlags`; a chunk is allocated
  on the first write that needs it and freed when it empties.
* ``"present"``: a :class:`~pageflags.PreallocatedPageFlags` with a chunk of its own
  for every section holding a present page, allocated up front.  Those chunks are
  *pinned*: writes there never allocate and a chunk that empties or fills is
  rewritten in place rather than freed or swapped for ``FULL``.
* ``"all"``: every possible section pinned, present or not, the seed's map space
  "for even non-present pages" (a ``pfn_valid()`` map for hotplug).

``stats()`` of each shows what the mode costs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ._args import check_at_least, check_pair, check_pfn_array, int_array, read_only
from ._files import StrPath, open_regular
from ._sizes import format_size, parse_size
from .bitmap import PageFlags
from .geometry import Geometry, as_geometry
from .preallocated import PreallocatedPageFlags

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["MemoryMap", "ALLOC_MODES"]

ALLOC_MODES = ("lazy", "present", "all")
NO_NODE = -1

# The name is taken whole and stripped after: ``(.*?)\s*`` here backtracks in time
# quadratic in a run of blanks inside a name.
_IOMEM_LINE = re.compile(r"(\s*)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)")
# Hot-plugged RAM is named after its driver: "System RAM (virtio_mem)", "(kmem)".
_SYSTEM_RAM = re.compile(r"System RAM(?: \(.*\))?")
# ASCII digits only: int() would take other scripts' digits too.
_MEMORY_DIR = re.compile(r"memory([0-9]+)", re.ASCII)
_NODE_LINK = re.compile(r"node([0-9]+)", re.ASCII)
#: The largest NUMA node number a map holds (section_nodes() keeps them as int32;
#: Linux's own limit, MAX_NUMNODES, is 1024).
MAX_NODE = int(np.iinfo(np.int32).max)
# Block numbers past 2^63 cannot be a block of any geometry; longer digit strings
# are refused before int() (which refuses more than 4300 digits with its own error).
_MAX_DIGITS = 20
# Reads of a path stop past these sizes: a sysfs attribute is at most one page
# (64 KiB on any architecture), /proc/iomem a few KiB even on large machines.
_SYSFS_MAX_BYTES = 64 << 10
_IOMEM_MAX_BYTES = 64 << 20
_SYSFS_MEMORY = "/sys/devices/system/memory"
DEFAULT_GEOMETRY = Geometry()  # frozen, so one shared default is safe
_SYSFS_STATES = {"online": True, "offline": False, "going-offline": False}


def spans(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The integers of every ``[lo[i], hi[i])``, concatenated (empty spans allowed).

    Examples
    --------
    >>> spans(np.array([0, 10, 5]), np.array([2, 10, 8]))
    array([0, 1, 5, 6, 7])
    """
    n = np.maximum(np.asarray(hi, dtype=np.int64) - lo, 0)
    ends = np.cumsum(n)
    # Each output position minus the start of its span, plus that span's lo.
    out: np.ndarray = np.arange(ends[-1] if n.size else 0, dtype=np.int64) + np.repeat(
        np.asarray(lo, dtype=np.int64) - (ends - n), n)
    return out


class MemoryMap:
    """A machine's present memory: sorted, disjoint pfn ranges with NUMA nodes.

    Parameters
    ----------
    ranges : array_like of int, shape (n, 2)
        Half-open ``[start, stop)`` pfn ranges, sorted, non-empty, not overlapping.
        Touching ranges of one node are merged.
    nodes : array_like of int, shape (n,), optional
        The NUMA node of each range; ``-1`` (the default) for unknown.
    geometry : Geometry, default Geometry()
        The address space the pfns live in.

    Raises
    ------
    TypeError, IndexError, ValueError
        For a non-integer array, a pfn outside the geometry, or ranges that are
        empty, unsorted or overlapping.

    Examples
    --------
    >>> from pageflags import Geometry, MemoryMap
    >>> mm = MemoryMap([[0, 1000], [1000, 2000], [40000, 70000]], nodes=[0, 0, 1],
    ...                geometry=Geometry(phys_addr_bits=40))
    >>> mm.ranges.tolist(), mm.nodes.tolist(), mm.present_pages
    ([[0, 2000], [40000, 70000]], [0, 1], 32000)
    >>> mm.sections().tolist()
    [0, 1, 2]
    """

    __slots__ = ("_geometry", "_nodes", "_ranges")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, ranges: ArrayLike, nodes: ArrayLike | None = None,
                 geometry: Geometry = DEFAULT_GEOMETRY) -> None:
        self._geometry = as_geometry(geometry)
        arr = int_array("ranges", ranges)
        if arr.size == 0:
            arr = np.empty((0, 2), dtype=np.int64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"ranges must have shape (n, 2), got {arr.shape}")
        flat = check_pfn_array(arr, self._geometry.npages + 1, "range bound")
        if nodes is None:
            node_arr = np.full(arr.shape[0], NO_NODE, dtype=np.int64)
        else:
            node_arr = int_array("nodes", nodes)
            if node_arr.dtype == object or (node_arr.dtype == np.uint64 and node_arr.size
                                            and int(node_arr.max()) >= 1 << 63):
                big = max(int(v) for v in node_arr.ravel())
                raise ValueError(f"node {big} does not fit: nodes are at most 2**31 - 1")
            if node_arr.shape != (arr.shape[0],):
                raise ValueError(f"nodes must have shape ({arr.shape[0]},), "
                                 f"got {node_arr.shape}")
            node_arr = node_arr.astype(np.int64)
        pairs = flat.reshape(-1, 2)
        self._ranges, self._nodes = _canonical(pairs[:, 0], pairs[:, 1], node_arr,
                                               [f"range {i}" for i in range(len(pairs))])

    @classmethod
    def _build(cls, starts: Sequence[int], stops: Sequence[int], nodes: Sequence[int],
               labels: list[str], geometry: Geometry) -> Self:
        """A map from parsed pieces; errors name the piece's ``labels`` entry."""
        self = cls.__new__(cls)
        self._geometry = geometry
        starts_a = np.asarray(starts, dtype=np.int64)
        stops_a = np.asarray(stops, dtype=np.int64)
        order = np.argsort(starts_a, kind="stable")
        self._ranges, self._nodes = _canonical(
            starts_a[order], stops_a[order], np.asarray(nodes, dtype=np.int64)[order],
            [labels[i] for i in order])
        return self

    # --- readers ---------------------------------------------------------------------
    @classmethod
    def from_iomem(cls, text_or_path: StrPath = "/proc/iomem", *,
                   geometry: Geometry = DEFAULT_GEOMETRY) -> Self:
        """Present memory from ``/proc/iomem``: its top-level ``System RAM`` ranges.

        Lines are ``start-end : name`` in hex with ``end`` inclusive; nested
        resources are indented and ignored, as are other top-level names
        (``Reserved``, ``PCI Bus ...``).  Hot-plugged RAM named after its driver,
        such as ``System RAM (virtio_mem)``, counts as System RAM.  A page only
        partly inside a range is not present: starts round up and ends round down,
        as the kernel does with memblock.

        Parameters
        ----------
        text_or_path : str or path-like, default "/proc/iomem"
            The file's text (a str holding a newline or ``" : "``) or its path,
            which must name a regular file of at most 64 MiB.
        geometry : Geometry or int, default Geometry()
            The address space (an int is a page count, as for ``MemoryMap``); a
            range past its end is an error, not clipped.

        Raises
        ------
        ValueError
            Naming the line, for a malformed line, ``end < start``, overlapping RAM
            ranges or RAM past the geometry; also for input with no ``System RAM``
            and for the all-zero addresses that non-root readers are shown.
            Naming the path, for a file that cannot be read, is not a regular file
            (a FIFO is refused without reading from it) or is too large.
        TypeError
            For a ``geometry`` that is neither a Geometry nor a page count.

        Examples
        --------
        >>> text = '''\\
        ... 00000000-00000fff : Reserved
        ... 00001000-0009fbff : System RAM
        ... 00100000-bfffffff : System RAM
        ...   01000000-0220bb07 : Kernel code
        ... c0000000-febfffff : PCI Bus 0000:00
        ... 100000000-43fffffff : System RAM
        ... '''
        >>> mm = MemoryMap.from_iomem(text)
        >>> mm.ranges.tolist()       # 0x9fbff rounds down to page 0x9f
        [[1, 159], [256, 786432], [1048576, 4456448]]
        """
        geometry = as_geometry(geometry)
        text, source = _read_text(text_or_path)
        page = geometry.page_size
        starts: list[int] = []
        stops: list[int] = []
        labels: list[str] = []
        zeros = lines = 0
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            label = f"{source} line {lineno} ({line.strip()!r})"
            match = _IOMEM_LINE.fullmatch(line)
            if match is None:
                raise ValueError(f"{label}: expected 'start-end : name' in hex")
            indent, lo, hi, name = match.groups()
            name = name.rstrip()
            start, end = int(lo, 16), int(hi, 16)
            lines += 1
            zeros += start == end == 0
            if end < start:
                raise ValueError(f"{label}: end before start")
            if indent or not _SYSTEM_RAM.fullmatch(name):
                continue
            if end >= geometry.memory_bytes:
                raise ValueError(f"{label}: past the {geometry.phys_addr_bits}-bit "
                                 "address space (try a wider Geometry)")
            first, stop = -(-start // page), (end + 1) // page
            if first < stop:  # a range inside one page holds no whole page
                starts.append(first)
                stops.append(stop)
                labels.append(label)
        if lines and zeros == lines:
            raise ValueError(f"{source}: every range reads 0-0; the kernel hides "
                             "/proc/iomem addresses from readers without CAP_SYS_ADMIN")
        if not labels:
            raise ValueError(f"{source}: no top-level 'System RAM' range of a whole page")
        return cls._build(starts, stops, [NO_NODE] * len(starts), labels, geometry)

    @classmethod
    def from_sysfs(cls, root: StrPath = _SYSFS_MEMORY, *,
                   geometry: Geometry = DEFAULT_GEOMETRY, include_offline: bool = False
                   ) -> Self:
        """Present memory from the sysfs memory-block tree.

        Reads ``block_size_bytes`` (hex), then each ``memoryN`` directory:
        ``phys_index`` (hex, the block number, which must equal ``N``), ``state``
        and the ``nodeK`` link when there is one.  Online blocks are present.

        Parameters
        ----------
        root : str or path-like, default "/sys/devices/system/memory"
            The tree's root.
        geometry : Geometry or int, default Geometry()
            The address space (an int is a page count); a block past its end is
            an error.
        include_offline : bool, default False
            Count offline blocks as present too (memory that is plugged in).

        Raises
        ------
        ValueError
            Naming the file, for an unreadable or malformed ``block_size_bytes``,
            ``phys_index`` or ``state`` (each must be a regular file of at most
            64 KiB, as sysfs attributes are: a FIFO is refused without reading from
            it), a block size larger than the geometry, a block past it, two
            directories of one block (``memory1`` and ``memory01``), a node number
            above :data:`MAX_NODE`, or a tree with no memory blocks.
        TypeError
            For a ``geometry`` that is neither a Geometry nor a page count.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (root / "block_size_bytes").write_text("8000000\\n")
        >>> for n, state in [(0, "online"), (1, "offline"), (2, "online")]:
        ...     (root / f"memory{n}").mkdir()
        ...     _ = (root / f"memory{n}" / "phys_index").write_text(f"{n:08x}\\n")
        ...     _ = (root / f"memory{n}" / "state").write_text(state + "\\n")
        >>> MemoryMap.from_sysfs(root).ranges.tolist()
        [[0, 32768], [65536, 98304]]
        """
        geometry = as_geometry(geometry)
        root = Path(root)
        size_file = root / "block_size_bytes"
        block_bytes = _read_hex(size_file)
        if block_bytes <= 0 or block_bytes & (block_bytes - 1) or (
                block_bytes % geometry.page_size):
            raise ValueError(f"{size_file}: block size {block_bytes:#x} is not a power of "
                             f"two of whole {geometry.page_size}-byte pages")
        if block_bytes > geometry.memory_bytes:
            raise ValueError(f"{size_file}: block size {block_bytes:#x} is larger than "
                             f"the {geometry.phys_addr_bits}-bit address space")
        block_pages = block_bytes // geometry.page_size
        dirs = sorted(((_number(m.group(1), entry.path, "block"), entry)
                       for entry in _listdir(root)
                       if (m := _MEMORY_DIR.fullmatch(entry.name)) and entry.is_dir()),
                      key=lambda pair: (pair[0], pair[1].name))
        if not dirs:
            raise ValueError(f"{root}: no memoryN block directories")
        for (number, first), (again, second) in pairwise(dirs):
            if number == again:
                raise ValueError(f"{first.path} and {second.path}: both are block {number}")
        starts: list[int] = []
        nodes: list[int] = []
        labels: list[str] = []
        for number, entry in dirs:
            index_file = Path(entry) / "phys_index"
            index = _read_hex(index_file)
            if index != number:
                raise ValueError(f"{index_file}: phys_index {index:#x} is not block {number}")
            if (index + 1) * block_pages > geometry.npages:
                raise ValueError(f"{index_file}: block {index} is past the "
                                 f"{geometry.phys_addr_bits}-bit address space")
            state_file = Path(entry) / "state"
            state = _read(state_file).strip()
            if state not in _SYSFS_STATES:
                raise ValueError(f"{state_file}: unknown state {state!r}")
            if _SYSFS_STATES[state] or include_offline:
                links = [_number(m.group(1), sub.path, "node", MAX_NODE)
                         for sub in _listdir(Path(entry))
                         if (m := _NODE_LINK.fullmatch(sub.name))]
                if len(links) > 1:
                    raise ValueError(f"{entry.path}: links to several nodes {links}")
                starts.append(index * block_pages)
                nodes.append(links[0] if links else NO_NODE)
                labels.append(str(entry.path))
        stops = [s + block_pages for s in starts]
        return cls._build(starts, stops, nodes, labels, geometry)

    @classmethod
    def synthetic(cls, total: str | int = "2 TiB", nodes: int = 8, *, seed: int = 0,
                  geometry: Geometry | None = None, phys_addr_bits: int = 46,
                  hole_below_4g: bool = True, unaligned: bool = False,
                  pieces: tuple[int, int] = (1, 4)) -> Self:
        """A seeded machine of the kind the kernel meets.

        Node ``k`` starts at ``k`` strides of ``npages // nodes`` pages and holds
        ``total / nodes`` of memory in a few pieces separated by small holes; node 0
        leaves out the PCI hole ``[3 GiB, 4 GiB)`` and moves what would be there
        above 4 GiB.  The total is exact.

        Parameters
        ----------
        total : str or int, default "2 TiB"
            Memory in bytes, or a size such as ``"2 TiB"`` (see ``parse_size``).
        nodes : int, default 8
            NUMA nodes.
        seed : int, default 0
            The layout is a function of the arguments and ``seed``.
        geometry : Geometry, optional
            The address space; ``Geometry(phys_addr_bits)`` when omitted.
        phys_addr_bits : int, default 46
            Used when ``geometry`` is omitted (46 or 52 on x86-64).
        hole_below_4g : bool, default True
            Leave ``[3 GiB, 4 GiB)`` out of node 0.
        unaligned : bool, default False
            Let range ends fall inside sections, at page granularity.
        pieces : (int, int), default (1, 4)
            Least and most ranges per node.

        Raises
        ------
        ValueError
            For a bad size or unit, a total not a whole number of pages, memory
            that does not fit the address space or its strides, fewer than one node
            or more nodes than sections, a negative seed, or bad ``pieces``.
        TypeError
            For a count, seed or piece that is not an integer (bools included).

        Examples
        --------
        >>> mm = MemoryMap.synthetic("2 TiB", nodes=8, seed=1)
        >>> mm.present_bytes == 2 << 40, sorted(set(mm.nodes.tolist()))
        (True, [0, 1, 2, 3, 4, 5, 6, 7])
        >>> mm.sections().size     # 2 TiB of 128 MiB sections
        16384
        """
        geometry = Geometry(phys_addr_bits) if geometry is None else as_geometry(geometry)
        nbytes = parse_size(total)
        nodes = check_at_least("nodes", nodes, 1)
        seed = check_at_least("seed", seed, 0)
        lo_pieces, hi_pieces = check_pair("pieces", pieces, 1)
        if nbytes % geometry.page_size:
            raise ValueError(f"total {total!r} is not a whole number of "
                             f"{geometry.page_size}-byte pages")
        if nbytes > geometry.memory_bytes:  # before any arithmetic that needs int64
            raise ValueError(f"total {format_size(nbytes)} does not fit a "
                             f"{geometry.phys_addr_bits}-bit address space (it holds "
                             f"{format_size(geometry.memory_bytes)})")
        if nodes > geometry.nchunks:
            raise ValueError(f"nodes must be <= {geometry.nchunks}, the sections of a "
                             f"{geometry.phys_addr_bits}-bit space, got {nodes}")
        pages = nbytes // geometry.page_size
        ppc = geometry.pages_per_chunk
        stride = (geometry.npages // nodes) // ppc * ppc
        hole = (3 << 30) // geometry.page_size, (1 << 30) // geometry.page_size
        rng = np.random.default_rng(seed)
        starts: list[int] = []
        stops: list[int] = []
        node_of: list[int] = []
        for k in range(nodes):
            share = pages // nodes + (pages % nodes if k == nodes - 1 else 0)
            if share == 0:
                continue
            grain = 1 if unaligned else ppc
            cuts = _cut(rng, share, int(rng.integers(lo_pieces, hi_pieces + 1)), grain)
            gaps = rng.integers(1, 9, size=cuts.size - 2) * ppc
            if unaligned:
                gaps += rng.integers(0, ppc, size=gaps.size)
            offset = int(rng.integers(0, ppc)) if unaligned and k else 0
            base = k * stride + offset + np.concatenate(([0], np.cumsum(gaps)))
            lo, hi = base + cuts[:-1], base + cuts[1:]
            if k == 0 and hole_below_4g:
                lo, hi = _punch(lo, hi, *hole)
            limit = (k + 1) * stride if k < nodes - 1 else geometry.npages
            if hi[-1] > limit:
                raise ValueError(
                    f"{format_size(nbytes)} in {nodes} nodes does not fit a "
                    f"{geometry.phys_addr_bits}-bit address space (node {k} needs "
                    f"{format_size(int(hi[-1] - k * stride) * geometry.page_size)} "
                    f"of a {format_size(stride * geometry.page_size)} stride)")
            starts.extend(lo.tolist())
            stops.extend(hi.tolist())
            node_of.extend([k] * lo.size)
        labels = [f"synthetic range {i}" for i in range(len(starts))]
        return cls._build(starts, stops, node_of, labels, geometry)

    # --- what the map holds ------------------------------------------------------------
    @property
    def geometry(self) -> Geometry:
        """The address space."""
        return self._geometry

    @property
    def ranges(self) -> np.ndarray:
        """Read-only ``(n, 2)`` int64 array of ``[start, stop)`` pfn ranges."""
        return read_only(self._ranges)

    @property
    def nodes(self) -> np.ndarray:
        """Read-only int64 array: each range's NUMA node, ``-1`` when unknown."""
        return read_only(self._nodes)

    @property
    def present_pages(self) -> int:
        """Pages present."""
        return int((self._ranges[:, 1] - self._ranges[:, 0]).sum())

    @property
    def present_bytes(self) -> int:
        """Bytes of memory present."""
        return self.present_pages * self._geometry.page_size

    def blocks(self, block_bytes: int) -> np.ndarray:
        """Numbers of the ``block_bytes`` blocks holding any present page, sorted.

        Examples
        --------
        >>> mm = MemoryMap.from_iomem("00001000-0009ffff : System RAM\\n")
        >>> mm.blocks(1 << 20).tolist(), mm.blocks(4096)[:2].tolist()
        ([0], [1, 2])
        """
        block_pages = parse_size(block_bytes) // self._geometry.page_size
        if block_pages < 1 or block_pages & (block_pages - 1):
            raise ValueError(f"block_bytes must be a power-of-two number of pages, "
                             f"got {block_bytes!r}")
        shift = block_pages.bit_length() - 1
        lo = self._ranges[:, 0] >> shift
        hi = ((self._ranges[:, 1] - 1) >> shift) + 1
        return np.unique(spans(lo, hi))

    def sections(self) -> np.ndarray:
        """Section (chunk) numbers holding any present page, sorted.

        Examples
        --------
        >>> MemoryMap([[100, 40000]], geometry=Geometry(phys_addr_bits=40)).sections()
        array([0, 1])
        """
        g = self._geometry
        return self.blocks(g.pages_per_chunk << g.page_shift)

    def section_nodes(self) -> np.ndarray:
        """Node of every section: that of the last range starting at or before it.

        Sections before the first range take its node; ``-1`` where nodes are
        unknown.  A hotplug trace adds a node's memory in its part of this array.

        Examples
        --------
        >>> g = Geometry(phys_addr_bits=30)                # 8 sections of 2**15 pages
        >>> MemoryMap([[0, 10], [3 << 15, 4 << 15]], nodes=[0, 1],
        ...           geometry=g).section_nodes().tolist()
        [0, 0, 0, 1, 1, 1, 1, 1]
        """
        n = self._geometry.nchunks
        if not self._nodes.size:
            return np.full(n, NO_NODE, dtype=np.int32)
        first = self._ranges[:, 0] >> self._geometry.chunk_shift
        bounds = np.concatenate(([0], first[1:], [n]))
        return np.repeat(self._nodes.astype(np.int32), np.diff(bounds))

    # --- maps for the machine ----------------------------------------------------------
    def new_flags(self, alloc: str = "lazy") -> PageFlags:
        """An empty map for this machine, allocated per ``alloc`` (see the module doc).

        Examples
        --------
        >>> mm = MemoryMap.synthetic("64 GiB", nodes=2)
        >>> [mm.new_flags(a).stats()["allocated"] for a in ("lazy", "present")]
        [0, 512]
        """
        if alloc not in ALLOC_MODES:
            raise ValueError(f"alloc must be one of {ALLOC_MODES}, got {alloc!r}")
        if alloc == "lazy":
            return PageFlags(self._geometry)
        return PreallocatedPageFlags(self._geometry,
                                     self.sections() if alloc == "present" else None)

    def to_flags(self, alloc: str = "lazy") -> PageFlags:
        """A map with every present page set.

        With ``alloc="lazy"`` a wholly present section is a ``FULL`` entry and costs
        no chunk memory.  The ranges are set as ``from_ranges`` sets them: whole
        sections in one vectorised step, then one kernel call for every range.

        Examples
        --------
        >>> mm = MemoryMap.synthetic("64 GiB", nodes=2, unaligned=True, seed=3)
        >>> flags = mm.to_flags()
        >>> flags.count() == mm.present_pages, flags.stats()["allocated"] <= 16
        (True, True)
        """
        flags = self.new_flags(alloc)
        if self._ranges.size:
            flags._set_ranges(np.ascontiguousarray(self._ranges[:, 0]),
                              np.ascontiguousarray(self._ranges[:, 1]))
        if alloc == "lazy":
            flags.optimize()  # a section two touching ranges complete becomes FULL
        return flags

    # --- comparison and display --------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemoryMap):
            return NotImplemented
        return (self._geometry == other._geometry
                and np.array_equal(self._ranges, other._ranges)
                and np.array_equal(self._nodes, other._nodes))

    def __repr__(self) -> str:
        nodes = np.unique(self._nodes[self._nodes >= 0]).size
        return (f"MemoryMap({self._ranges.shape[0]} ranges, "
                f"{format_size(self.present_bytes)} in {nodes} nodes, "
                f"{self._geometry.phys_addr_bits}-bit)")


def _canonical(starts: np.ndarray, stops: np.ndarray, nodes: np.ndarray,
               labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(ranges, nodes)`` arrays with touching same-node ranges merged."""
    if np.any(nodes < NO_NODE):
        bad = int(np.flatnonzero(nodes < NO_NODE)[0])
        raise ValueError(f"{labels[bad]}: node {nodes[bad]} is negative")
    if np.any(nodes > MAX_NODE):
        bad = int(np.flatnonzero(nodes > MAX_NODE)[0])
        raise ValueError(f"{labels[bad]}: node {nodes[bad]} is above {MAX_NODE}")
    empty = np.flatnonzero(stops <= starts)
    if empty.size:
        i = int(empty[0])
        raise ValueError(f"{labels[i]}: empty range [{starts[i]}, {stops[i]})")
    overlap = np.flatnonzero(starts[1:] < stops[:-1])
    if overlap.size:
        i = int(overlap[0])
        raise ValueError(f"{labels[i + 1]}: overlaps or precedes {labels[i]}")
    if not starts.size:
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.int64)
    keep = np.concatenate(([True], (starts[1:] != stops[:-1]) | (nodes[1:] != nodes[:-1])))
    ends = np.concatenate((np.flatnonzero(keep)[1:] - 1, [keep.size - 1]))
    ranges = np.stack((starts[keep], stops[ends]), axis=1).astype(np.int64)
    return ranges, nodes[keep].astype(np.int64)


def _cut(rng: np.random.Generator, share: int, npieces: int, grain: int) -> np.ndarray:
    """``0 = c0 < c1 < ... = share``: cut points on multiples of ``grain``."""
    slots = (share - 1) // grain  # cut points strictly inside (0, share)
    npieces = max(1, min(npieces, slots + 1))
    inner = np.sort(rng.choice(slots, size=npieces - 1, replace=False) + 1) * grain
    return np.concatenate(([0], inner, [share])).astype(np.int64)


def _punch(lo: np.ndarray, hi: np.ndarray, hole: int, length: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Move pages at or above ``hole`` up by ``length``, splitting a range across it."""
    shift_lo = np.where(lo >= hole, length, 0)
    shift_hi = np.where(hi > hole, length, 0)
    split = (lo < hole) & (hi > hole)
    new_lo = np.concatenate((lo + shift_lo, np.full(np.count_nonzero(split), hole + length)))
    new_hi = np.concatenate((np.where(split, hole, hi + shift_hi), hi[split] + length))
    order = np.argsort(new_lo, kind="stable")
    return new_lo[order], new_hi[order]


def _read_text(text_or_path: StrPath) -> tuple[str, str]:
    """``(text, name for messages)``: a str with a newline or ' : ' is the text."""
    if isinstance(text_or_path, str) and ("\n" in text_or_path or " : " in text_or_path
                                          or not text_or_path):
        return text_or_path, "iomem text"
    if not isinstance(text_or_path, (str, os.PathLike)):
        raise TypeError(f"expected text or a path, got {type(text_or_path).__name__}")
    return _read(Path(text_or_path), _IOMEM_MAX_BYTES), str(text_or_path)


def _read(path: Path, limit: int = _SYSFS_MAX_BYTES) -> str:
    """The text of the regular file ``path``, of at most ``limit`` bytes.

    Anything else (missing, unreadable, a FIFO or device, larger, not UTF-8) raises
    ValueError naming ``path``; a FIFO is refused before anything reads from it.
    """
    try:
        fd = open_regular(str(path))
        try:
            parts, size = [], 0
            while size <= limit:
                part = os.read(fd, min(1 << 16, limit + 1 - size))
                if not part:
                    break
                parts.append(part)
                size += len(part)
        finally:
            os.close(fd)
        if size > limit:
            raise ValueError(f"{path}: more than {limit} bytes, too large to be "
                             f"what it should be")
        return b"".join(parts).decode()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read ({err})") from err


def _read_hex(path: Path) -> int:
    text = _read(path).strip()
    try:
        return int(text, 16)
    except ValueError:
        raise ValueError(f"{path}: expected a hex number, got {text!r}") from None


def _number(digits: str, path: StrPath, what: str,
            limit: int | None = None) -> int:
    """The decimal ``digits`` of a sysfs name; ValueError naming ``path`` above ``limit``."""
    if len(digits) > _MAX_DIGITS or (limit is not None and int(digits) > limit):
        shown = digits if len(digits) <= 40 else f"{digits[:20]}...({len(digits)} digits)"
        bound = f" (at most {limit})" if limit is not None else ""
        raise ValueError(f"{path}: {what} number {shown} is too large{bound}")
    return int(digits)


def _listdir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError as err:
        raise ValueError(f"{path}: cannot list ({err})") from err
