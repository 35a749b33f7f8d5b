"""PageFlagSet: a machine's page flags as one PageFlags map per flag.

A set holds, over one :class:`~pageflags.Geometry`, a map for every bit of the
kernel's page-flag words that some page has (``fs["dirty"]``, ``fs["thp"]``, unknown
bits as ``bit27``), and maps of other kinds added to it (``mapped_many`` from
kpagecount, a cgroup's pages, a process's ``present`` pages).  It is built from
``/proc/kpageflags`` or a saved copy of it (page-types ``-F`` reads the same), and
answers what page-types answers: the summary of distinct flag words in its default
and raw modes, and ``-b`` bit filters, as maps that combine with any other map.

Building from a file
--------------------
The file is read in one fixed buffer of whole chunks (:mod:`pageflags.procfs`); one
kernel per buffer turns its flag words into, for every bit that occurs, the packed
map words of that bit (a 64 x 64 bit transpose per 64 pages), and counts the
distinct words in a small hash table in the same pass.  Each bit's words then go
into its map with :meth:`~pageflags.PageFlags.put_words`, which leaves wholly set
chunks ``FULL`` and wholly clear ones ``None``.  Memory is the maps, the buffer and
its packed words (2 x 2 MiB), and the table; never the file.

Summaries of a part of the set (a node, a memory block, the pages of a process)
rebuild the flag words of that part from the maps, window by window, with the same
transpose, and count them in the same table.

Saving
------
:meth:`PageFlagSet.save` writes a folder: one :meth:`PageFlags.save` file per map
(each atomic, with its own checksum) named with the save's generation number, and
``flagset.json`` last, atomically (temporary file, fsync, rename, fsync of the
folder), holding the geometry, the names, files and page counts of the maps and a
SHA-256 of itself.  A new save never overwrites a file the current manifest names
and removes the old generation's files only after the new manifest is in place, so
a crash at any point leaves the old save or the new one.  :meth:`PageFlagSet.load`
checks everything (the manifest's checksum and fields, every map file's own
checks, that geometry and counts agree) and raises
:class:`~pageflags.FormatError` naming the file and the check.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _kernels, kpf, procfs
from ._args import is_integer
from ._files import StrPath, open_regular, replace_text
from .base import PageMap
from .bitmap import PageFlags
from .errors import FormatError
from .geometry import Geometry, as_geometry
from .kpf import KPF, BitFilter, bit_name, bit_of, parse_bits

__all__ = ["MANIFEST", "SUMMARY_DTYPE", "PageFlagSet", "format_rows"]

#: One summary row: a flag word and the pages that have it.
SUMMARY_DTYPE = np.dtype([("flags", "<u8"), ("pages", "<i8")])
MANIFEST = "flagset.json"
FORMAT = "pageflags-flagset"
VERSION = 1
_MANIFEST_MAX_BYTES = 16 << 20
_MAP_FILE = re.compile(r"map-([0-9]{3,})\.g([0-9]+)\.pgf")
_EXTRA_NAME = re.compile(r"[a-z][a-z0-9_.:-]{0,99}")
_WINDOW = procfs.BUFFER_CHUNKS * procfs.CHUNK_ENTRIES

Key = int | str  # a flag bit, or the name of another map


def _bits_of(word: int) -> list[int]:
    return [b for b in range(64) if word >> b & 1]


def _table_arrays(table: tuple[np.ndarray, ...], nused: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys, labels, counts, used = table
    words, places, pages = keys[used], labels[used], counts[used]
    assert words.size == nused
    order = np.lexsort((words, places))
    return words[order], places[order], pages[order]


class PageFlagSet:
    """Named :class:`~pageflags.PageFlags` maps over one geometry: a map per page flag
    that occurs, and maps of other kinds added to them.

    Build one with :meth:`from_kpageflags` (a live machine or a saved copy),
    :meth:`from_words` (an array of flag words), :meth:`from_pagemap` (a process)
    or :meth:`load`; ``PageFlagSet(geometry)`` is an empty set to :meth:`add` maps to.

    Names are lower case: a flag bit's :class:`~pageflags.KPF` name (``"dirty"``,
    ``"thp"``; ``"bitN"`` for bits the kernel does not name), in bit order, then the
    other maps in the order they were added.  ``fs[name]`` (or ``fs[KPF.DIRTY]``) is
    the set's own map: treat it as read-only, or copy it first, since summaries
    read from the file are not recomputed.  Iterating yields the names.

    Parameters
    ----------
    geometry : Geometry or int
        The pfn space of every map.
    nentries : int, optional
        Pfns ``[0, nentries)`` have a flag word (the entries read from a file); None
        for a set without flag words, whose :meth:`summary` is refused.

    Examples
    --------
    >>> import numpy as np
    >>> from pageflags import KPF, PageFlagSet
    >>> words = np.zeros(100_000, dtype=np.uint64)
    >>> words[:10] = 1 << KPF.DIRTY | 1 << KPF.LRU
    >>> words[10:15] = 1 << KPF.DIRTY
    >>> fs = PageFlagSet.from_words(words)
    >>> fs.names, fs.count("dirty"), fs.select("dirty,~lru").to_array().tolist()
    (['dirty', 'lru'], 15, [10, 11, 12, 13, 14])
    >>> fs.summary().tolist()
    [(0, 99985), (48, 10), (16, 5)]
    """

    __slots__ = ("_geometry", "_histogram", "_maps", "_nentries", "info")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, geometry: Geometry | int, nentries: int | None = None) -> None:
        self._geometry = as_geometry(geometry)
        if nentries is not None:
            if not is_integer(nentries):
                raise TypeError(f"nentries must be an int, got {type(nentries).__name__}")
            nentries = int(nentries)
            if not 0 <= nentries <= self._geometry.npages:
                raise ValueError(f"nentries {nentries} outside [0, "
                                 f"{self._geometry.npages}]")
        self._nentries = nentries
        self._maps: dict[Key, PageFlags] = {}
        self._histogram: tuple[np.ndarray, np.ndarray] | None = None
        #: Where the set came from (``source``, ``pid``, ...): saved with it, as JSON.
        self.info: dict[str, Any] = {}

    # --- builders ----------------------------------------------------------------------
    @classmethod
    def from_kpageflags(cls, path: StrPath = procfs.KPAGEFLAGS,
                        geometry: Geometry | int | None = None, *,
                        progress: bool | None = None) -> PageFlagSet:
        """Read ``/proc/kpageflags`` (or a saved copy in its format) into a set.

        Parameters
        ----------
        path : str or path-like, default "/proc/kpageflags"
            The live file (root only) or any regular file of 64-bit flag words, one
            per pfn from 0.
        geometry : Geometry or int, optional
            The maps' geometry; by default the smallest of 4 KiB pages that holds
            every entry (``Geometry.from_npages(entries)``).
        progress : bool, optional
            A tqdm bar over the bytes read; by default only when stderr is a terminal.

        Raises
        ------
        PermissionError
            The file cannot be read; the message says that root is needed.
        FormatError
            A length that is not a multiple of 8 bytes, an empty file, or a file that
            ends while being read.
        ValueError
            More entries than ``geometry`` holds.

        Nothing is returned half-built: an error discards what was read.

        Examples
        --------
        >>> fs = PageFlagSet.from_kpageflags()               # doctest: +SKIP
        >>> print(fs.format_summary())                       # doctest: +SKIP
        """
        path = os.fsdecode(os.fspath(path))
        fd = procfs.open_entries(path)
        try:
            n = procfs.entry_count(fd, path)
            if n == 0:
                raise FormatError(path, "size", "no entries")
            if geometry is None:
                geometry = Geometry.from_npages(n)
            geometry = as_geometry(geometry)
            if n > geometry.npages:
                raise ValueError(f"{path}: {n} entries, more than the {geometry.npages} "
                                 "pages of the geometry")
            new = cls(geometry, n)
            packed = np.empty((64, _WINDOW // 64), dtype=np.uint64)
            table = _kernels.new_table(256)
            nused = 0
            for at, words in procfs.read_entries(fd, path, 0, n, progress=progress):
                m = words.size
                seen, *table, nused = _kernels.stream_words(words, m, packed, *table,
                                                            nused)
                g = -(-m // 64)
                for bit in _bits_of(int(seen)):
                    flags = new._maps.get(bit)
                    if flags is None:
                        flags = new._maps[bit] = PageFlags(geometry)
                    flags.put_words(at, packed[bit, :g])
        finally:
            os.close(fd)
        words, _, pages = _table_arrays(tuple(table), nused)
        new._histogram = (words, pages)
        new._sort()
        new.info = {"source": os.path.abspath(path)}
        return new

    @classmethod
    def from_words(cls, words: Any, geometry: Geometry | int | None = None) -> PageFlagSet:
        """A set from an array of flag words, ``words[pfn]`` for pfns from 0.

        Examples
        --------
        >>> import numpy as np
        >>> PageFlagSet.from_words(np.array([1 << 22, 0, 1 << 22])).select("thp").to_array()
        array([0, 2])
        """
        arr = np.asarray(words)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise TypeError(f"words must be a 1-D integer array, got {arr.dtype} "
                            f"{arr.shape}")
        if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
            raise ValueError("flag words must not be negative (view them as uint64)")
        if arr.size == 0:
            raise ValueError("no flag words")
        arr = np.ascontiguousarray(arr, dtype=np.uint64)
        geometry = as_geometry(arr.size if geometry is None else geometry)
        if arr.size > geometry.npages:
            raise ValueError(f"{arr.size} words, more than the {geometry.npages} pages of "
                             "the geometry")
        new = cls(geometry, arr.size)
        packed = np.empty((64, _WINDOW // 64), dtype=np.uint64)
        table = _kernels.new_table(256)
        nused = 0
        for at in range(0, arr.size, _WINDOW):
            piece = arr[at:at + _WINDOW]
            seen, *table, nused = _kernels.stream_words(piece, piece.size, packed,
                                                        *table, nused)
            g = -(-piece.size // 64)
            for bit in _bits_of(int(seen)):
                flags = new._maps.get(bit)
                if flags is None:
                    flags = new._maps[bit] = PageFlags(geometry)
                flags.put_words(at, packed[bit, :g])
        w, _, pages = _table_arrays(tuple(table), nused)
        new._histogram = (w, pages)
        new._sort()
        return new

    @classmethod
    def from_pagemap(cls, pid: int | str = "self", geometry: Geometry | int | None = None,
                     *, proc: StrPath = "/proc",
                     kpageflags: StrPath = procfs.KPAGEFLAGS) -> PageFlagSet:
        """The physical pages process ``pid`` maps, from ``/proc/PID/pagemap``.

        Walks ``/proc/PID/maps`` and reads the pagemap entries of every area.  The
        set has the maps ``present`` (every pfn mapped), ``soft_dirty``,
        ``exclusive`` (mapped by this process only) and ``file_shared`` (a file page
        or shared anonymous memory); a pfn mapped at several addresses has the bits
        of any of them.  Swapped-out pages have no pfn and are not in the set.
        ``info["pfns_outside"]`` counts present pfns past the geometry (device
        memory mapped into the process), which are left out.

        Parameters
        ----------
        pid : int or "self"
        geometry : Geometry or int, optional
            By default that of :meth:`from_kpageflags` on this machine (the length of
            ``kpageflags``), so that ``live.select("thp") & proc["present"]`` works.
        proc : path-like, default "/proc"
            The proc tree (a copy in tests).

        Raises
        ------
        PermissionError
            Without root: the kernel shows pfn 0 for every page to readers without
            CAP_SYS_ADMIN, and another user's pagemap cannot be opened.

        Examples
        --------
        >>> mine = PageFlagSet.from_pagemap()                 # doctest: +SKIP
        >>> (live.select("thp") & mine["present"]).count()    # doctest: +SKIP
        """
        if geometry is None:
            path = os.fsdecode(os.fspath(kpageflags))
            fd = procfs.open_entries(path)
            try:
                n = procfs.entry_count(fd, path)
            finally:
                os.close(fd)
            if n == 0:
                raise FormatError(path, "size", "no entries")
            geometry = Geometry.from_npages(n)
        geometry = as_geometry(geometry)
        maps, outside = procfs.read_pagemap(pid, geometry, os.fsdecode(os.fspath(proc)))
        new = cls(geometry)
        new._maps.update(maps)
        new.info = {"pid": str(pid), "pfns_outside": outside}
        return new

    # --- what it holds -----------------------------------------------------------------
    @property
    def geometry(self) -> Geometry:
        """The maps' :class:`~pageflags.Geometry`."""
        return self._geometry

    @property
    def nentries(self) -> int | None:
        """Pfns ``[0, nentries)`` have a flag word (None: the set has no words)."""
        return self._nentries

    @property
    def names(self) -> list[str]:
        """The maps' names: flag bits in bit order, then other maps as added."""
        return [self._name(key) for key in self._maps]

    @property
    def bits(self) -> int:
        """The flag bits that some page has, as a word."""
        return sum(1 << key for key in self._maps if isinstance(key, int))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def items(self) -> Iterator[tuple[str, PageFlags]]:
        """``(name, map)`` pairs, in :attr:`names` order."""
        for key, flags in self._maps.items():
            yield self._name(key), flags

    def __contains__(self, name: object) -> bool:
        try:
            return self._key(name) in self._maps
        except (TypeError, ValueError):
            return False

    def __getitem__(self, name: str | int) -> PageFlags:
        key = self._key(name)
        try:
            return self._maps[key]
        except KeyError:
            raise KeyError(f"no map {self._name(key)!r} in the set (it holds "
                           f"{', '.join(self.names) or 'none'})") from None

    def count(self, name: str | int) -> int:
        """Pages with flag ``name``; 0 for a flag bit no page has.

        ``KeyError`` for a name that is neither a flag bit nor a map of the set.
        """
        key = self._key(name)
        if key in self._maps:
            return self._maps[key].count()
        if isinstance(key, int):
            return 0
        raise KeyError(f"no map {key!r} in the set (it holds {', '.join(self.names)})")

    def __repr__(self) -> str:
        g = self._geometry
        words = "no flag words" if self._nentries is None else f"{self._nentries:,} entries"
        return (f"PageFlagSet({g.phys_addr_bits}-bit, {words}, {len(self._maps)} maps: "
                f"{', '.join(self.names)})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PageFlagSet):
            return NotImplemented
        return (self._geometry == other._geometry and self._nentries == other._nentries
                and list(self._maps) == list(other._maps)
                and all(self._maps[k] == other._maps[k] for k in self._maps))

    @property
    def nbytes(self) -> int:
        """Bytes the maps take."""
        return sum(flags.nbytes for flags in self._maps.values())

    def add(self, name: str, flags: PageFlags) -> None:
        """Add map ``flags`` under ``name`` (not a flag bit's name), replacing one of
        that name.

        ``name`` is lower case (``[a-z][a-z0-9_.:-]*``) and must not be one that
        :meth:`select` reads as a flag bit or a number (such as ``"lr"``, a beginning
        of ``lru``).

        Examples
        --------
        >>> from pageflags import PageFlags
        >>> fs = PageFlagSet(1 << 16); fs.add("hot", PageFlags.from_array([5], 1 << 16))
        >>> fs.names, fs.select("hot").count()
        (['hot'], 1)
        """
        _check_name(name)
        if not isinstance(flags, PageFlags):
            raise TypeError(f"flags must be a PageFlags, got {type(flags).__name__}")
        if flags.geometry != self._geometry:
            raise ValueError(f"geometries differ: {flags.geometry} vs {self._geometry}")
        self._maps[name] = flags

    def add_kpagecount(self, path: StrPath = procfs.KPAGECOUNT, *,
                       progress: bool | None = None) -> None:
        """Add ``mapped_once`` and ``mapped_many``: pages whose mapcount in
        ``/proc/kpagecount`` (or a saved copy) is 1, and more than 1.

        Some kernel configurations report a large folio's average mapcount per page.
        """
        n = self._words_needed("kpagecount")
        once, many = procfs.compare_file(path, n, self._geometry, 1, "page map counts",
                                         progress)
        self._maps["mapped_once"] = once
        self._maps["mapped_many"] = many

    def add_kpagecgroup(self, cgroup: int | StrPath,
                        path: StrPath = procfs.KPAGECGROUP, *,
                        name: str | None = None, progress: bool | None = None) -> str:
        """Add the pages charged to one memory cgroup, from ``/proc/kpagecgroup``.

        ``cgroup`` is the cgroup's inode number or its folder (as page-types ``-c``
        takes ``@inode`` or a path).  The map is named ``name``, by default
        ``cgroup_INODE``; the name is returned.
        """
        n = self._words_needed("kpagecgroup")
        if is_integer(cgroup):
            inode = int(cgroup)
            if not 0 < inode < 1 << 64:
                raise ValueError(f"a cgroup inode is in [1, 2**64), got {inode}")
        elif isinstance(cgroup, int):  # a bool
            raise TypeError("a cgroup is an inode number or a folder, not a bool")
        else:
            info = os.stat(cgroup)
            if not os.path.isdir(cgroup):
                raise NotADirectoryError(errno.ENOTDIR, "a cgroup is a folder",
                                         os.fsdecode(os.fspath(cgroup)))
            inode = info.st_ino
        name = f"cgroup_{inode}" if name is None else name
        _check_name(name)
        equal, _ = procfs.compare_file(path, n, self._geometry, inode, "page cgroups",
                                       progress)
        self._maps[name] = equal
        return name

    def _words_needed(self, what: str) -> int:
        if self._nentries is None:
            raise ValueError(f"reading {what} needs a set of flag words (from_kpageflags)")
        return self._nentries

    # --- names -------------------------------------------------------------------------
    @staticmethod
    def _name(key: Key) -> str:
        return bit_name(key) if isinstance(key, int) else key

    @staticmethod
    def _key(name: object) -> Key:
        if isinstance(name, (bool, np.bool_)):
            raise TypeError("a flag is a name or a bit number, not a bool")
        if is_integer(name):
            bit = int(name)
            if not 0 <= bit < 64:
                raise ValueError(f"a flag bit is in [0, 64), got {bit}")
            return bit
        if isinstance(name, str):
            named = bit_of(name)
            return name if named is None else named
        raise TypeError(f"a flag is a name or a bit number, got {type(name).__name__}")

    def _sort(self) -> None:
        bits = sorted(k for k in self._maps if isinstance(k, int))
        extra = [k for k in self._maps if not isinstance(k, int)]
        self._maps = {k: self._maps[k] for k in bits + extra}

    def _extra(self) -> list[str]:
        return [k for k in self._maps if isinstance(k, str)]

    # --- selections --------------------------------------------------------------------
    def select(self, *exprs: str, raw: bool = False) -> PageFlags:
        """The pages passing every page-types ``-b`` expression in ``exprs``: a new map.

        Each expression is one ``-b`` argument (:func:`pageflags.kpf.parse_bits`):
        ``"dirty,lru"`` any of them, ``"dirty,~lru"`` dirty and not lru,
        ``"lru,dirty=lru"`` the same as ``"lru,~dirty"``, ``"=thp,lru"`` exactly those
        flags; several are ANDed, names match by prefix (``"anon"`` is
        ``anonymous``), numbers are flag words, and the other maps of the set can be
        named in full.  The flags are those page-types filters: with ``raw=False``
        its default mode (bits 32-47 hidden, compound bits only on hugetlb pages),
        with ``raw=True`` its ``-r`` (overloaded bits expanded).  Complements are
        taken within the pages that have a flag word.

        Examples
        --------
        >>> import numpy as np
        >>> from pageflags import KPF
        >>> words = np.array([1 << KPF.ANON, 1 << KPF.MMAP, 1 << KPF.ANON | 1 << KPF.MMAP, 0])
        >>> fs = PageFlagSet.from_words(words)
        >>> fs.select("anon,mmap").to_array().tolist()     # anon OR mmap
        [0, 1, 2]
        >>> fs.select("anon", "mmap").to_array().tolist()  # anon AND mmap
        [2]
        >>> fs.select("=anon").to_array().tolist()         # exactly anon
        [0]
        """
        if not exprs:
            raise ValueError("select needs at least one bits expression")
        filters = [parse_bits(e, self._extra()) for e in exprs]
        terms: dict[Key, PageFlags | None] = {}
        result: PageFlags | None = None
        for f in filters:
            chosen = self._filter(f, raw, terms)
            result = chosen if result is None else result & chosen
        assert result is not None
        return result

    def _universe(self) -> PageFlags:
        stop = self._geometry.npages if self._nentries is None else self._nentries
        return PageFlags.from_ranges([0], [stop], self._geometry)

    def _filter(self, f: BitFilter, raw: bool, terms: dict[Key, PageFlags | None]) -> PageFlags:
        def term(t: Key) -> PageFlags | None:
            if t not in terms:
                terms[t] = self._term(t, raw)
            return terms[t]

        if f.bits is None:  # any of the mask
            out = PageFlags(self._geometry)
            for t in f.mask:
                m = term(t)
                if m is not None:
                    out |= m
            return out
        if not f.bits <= f.mask:  # a bit required outside the mask can never match
            return PageFlags(self._geometry)
        out = self._universe()
        for t in f.mask:
            m = term(t)
            if t in f.bits:
                if m is None:
                    return PageFlags(self._geometry)
                out &= m
            elif m is not None:
                out -= m
        return out

    def _term(self, t: Key, raw: bool) -> PageFlags | None:
        """The map of term ``t`` in the words page-types filters (None when empty)."""
        R = self._maps.get
        if isinstance(t, str):
            return self._maps[t]
        if not raw:
            if (kpf.HACKERS_BITS >> t) & 1:
                return None
            if t in (KPF.COMPOUND_HEAD, KPF.COMPOUND_TAIL):
                return _and(R(t), R(KPF.HUGE))
            return R(t)
        # Raw mode moves overloaded bits (kpf.expand_overloaded): each is cleared
        # where its condition holds, and page-types' own bit flipped there.
        if t in (KPF.OWNER_2, KPF.ANON_EXCLUSIVE):
            where = _and(R(KPF.ANON), R(KPF.OWNER_2))
        elif t in (KPF.ACTIVE, KPF.SLUB_FROZEN):
            where = _and(R(KPF.SLAB), R(KPF.ACTIVE))
        elif t in (KPF.ERROR, KPF.SLUB_DEBUG):
            where = _and(R(KPF.SLAB), R(KPF.ERROR))
        elif t in (KPF.RECLAIM, KPF.READAHEAD):
            where = _sub(R(KPF.RECLAIM), R(KPF.WRITEBACK))
        else:
            return R(t)
        if t in (KPF.ANON_EXCLUSIVE, KPF.SLUB_FROZEN, KPF.SLUB_DEBUG, KPF.READAHEAD):
            return _xor(R(t), where)
        return _sub(R(t), where)

    # --- summaries -----------------------------------------------------------------
    def summary(self, raw: bool = False, bits: str | Iterable[str] | None = None,
                within: PageMap | None = None) -> np.ndarray:
        """page-types' summary: one row per distinct flag word, with its pages.

        A structured array of ``flags`` (uint64) and ``pages`` (int64), ordered by
        pages descending, then flags ascending; every entry read counts, all-zero
        words included.

        Parameters
        ----------
        raw : bool, default False
            False: page-types' default mode (bits 32-47 hidden, compound bits hidden
            on pages that are not hugetlb); True: ``-r`` (overloaded bits expanded).
        bits : str or list of str, optional
            ``-b`` expressions (see :meth:`select`): only words passing them.
        within : PageFlags, optional
            Only the pages of this map (a process's ``present`` pages, say).

        Examples
        --------
        >>> import numpy as np
        >>> from pageflags import KPF
        >>> thp = 1 << KPF.THP | 1 << KPF.COMPOUND_HEAD
        >>> fs = PageFlagSet.from_words(np.array([thp, thp, 0]))
        >>> [(hex(f), p) for f, p in fs.summary().tolist()]
        [('0x400000', 2), ('0x0', 1)]
        >>> [(hex(f), p) for f, p in fs.summary(raw=True).tolist()]
        [('0x408000', 2), ('0x0', 1)]
        """
        n = self._words_needed("a summary")
        if within is None:
            words, pages = self._words_histogram()
            labels = np.zeros(words.size, dtype=np.int64)
        else:
            words, labels, pages = self._count(np.array([0]), np.array([n]),
                                               np.array([0]), self._within(within))
        rows = _rows(words, labels, pages, raw, bits)
        return _plain(rows)

    def _within(self, within: PageMap | None) -> PageMap | None:
        if within is not None and (not isinstance(within, PageMap)
                                   or within.geometry != self._geometry):
            raise ValueError("within must be a map of the set's geometry")
        return within

    def _words_histogram(self) -> tuple[np.ndarray, np.ndarray]:
        if self._histogram is None:
            n = self._words_needed("a summary")
            words, _, pages = self._count(np.array([0]), np.array([n]), np.array([0]))
            self._histogram = (words, pages)
        return self._histogram

    def summary_by_node(self, memmap: Any = None, raw: bool = False,
                        bits: str | Iterable[str] | None = None,
                        within: PageMap | None = None) -> np.ndarray:
        """The summary per NUMA node: rows of ``node``, ``flags``, ``pages``.

        Ordered by node, then as :meth:`summary`.  Nodes come from ``memmap`` (a
        :class:`~pageflags.MemoryMap`), by default
        ``MemoryMap.from_sysfs(geometry=fs.geometry)`` (kpageflags has no node
        field); pages of no range (holes, offline blocks) are node -1.  ``raw``,
        ``bits`` and ``within`` are as in :meth:`summary`.
        """
        from .memmap import MemoryMap

        n = self._words_needed("a summary")
        if memmap is None:
            memmap = MemoryMap.from_sysfs(geometry=self._geometry)
        if not isinstance(memmap, MemoryMap):
            raise TypeError(f"memmap must be a MemoryMap, got {type(memmap).__name__}")
        if memmap.geometry.page_shift != self._geometry.page_shift:
            raise ValueError("the memory map's pages are not the set's pages")
        lo, hi, labels = _cover(memmap.ranges, memmap.nodes, n)
        words, places, pages = self._count(lo, hi, labels, self._within(within))
        return _plain(_rows(words, places, pages, raw, bits), "node")

    def summary_by_block(self, block_bytes: int | None = None, raw: bool = False,
                         bits: str | Iterable[str] | None = None,
                         within: PageMap | None = None, *,
                         root: StrPath = "/sys/devices/system/memory"
                         ) -> np.ndarray:
        """The summary per memory block: rows of ``block``, ``flags``, ``pages``.

        ``block_bytes`` defaults to the sysfs tree's ``block_size_bytes`` (under
        ``root``, as :meth:`MemoryMap.from_sysfs` reads it); block ``k`` is pfns
        ``[k * block_pages, (k + 1) * block_pages)``, cut at the entries read.
        """
        from .memmap import _read_hex

        n = self._words_needed("a summary")
        if block_bytes is None:
            block_bytes = _read_hex(Path(root) / "block_size_bytes")
        if not is_integer(block_bytes):
            raise TypeError(f"block_bytes must be an int, got {type(block_bytes).__name__}")
        block_pages = int(block_bytes) >> self._geometry.page_shift
        if block_pages < 1 or int(block_bytes) % self._geometry.page_size:
            raise ValueError(f"block_bytes {block_bytes} is not a whole number of pages")
        lo = np.arange(0, n, block_pages, dtype=np.int64)
        hi = np.minimum(lo + block_pages, n)
        words, places, pages = self._count(lo, hi, lo // block_pages,
                                           self._within(within))
        return _plain(_rows(words, places, pages, raw, bits), "block")

    def _count(self, seg_lo: np.ndarray, seg_hi: np.ndarray, seg_label: np.ndarray,
               within: PageMap | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct ``(word, label)`` of the pages of sorted, disjoint segments,
        rebuilding the words from the maps window by window."""
        seg_lo = np.ascontiguousarray(seg_lo, dtype=np.int64)
        seg_hi = np.ascontiguousarray(seg_hi, dtype=np.int64)
        seg_label = np.ascontiguousarray(seg_label, dtype=np.int64)
        bits = np.array([k for k in self._maps if isinstance(k, int)], dtype=np.int64)
        maps = [self._maps[int(b)] for b in bits]
        npages = self._geometry.npages
        packed = np.zeros((max(bits.size, 1), _WINDOW // 64), dtype=np.uint64)
        out = np.empty(_WINDOW, dtype=np.uint64)
        no_mask = np.empty(0, dtype=np.uint64)
        table = _kernels.new_table(256)
        nused = 0
        if seg_lo.size:
            start = int(seg_lo[0]) // _WINDOW * _WINDOW
            stop = int(seg_hi[-1])
            for lo in range(start, stop, _WINDOW):
                hi = min(lo + _WINDOW, npages)
                if within is not None and not within.any(lo, hi):
                    continue
                first = int(np.searchsorted(seg_hi, lo, side="right"))
                last = int(np.searchsorted(seg_lo, hi, side="left"))
                if first >= last:
                    continue
                g = -(-(hi - lo) // 64)
                for k, flags in enumerate(maps):
                    packed[k, :g] = flags.to_words(lo, hi)
                _kernels.bits_to_words(packed, bits, g, out)
                mask = within.to_words(lo, hi) if within is not None else no_mask
                *table, nused = _kernels.count_segments(
                    out, lo, hi - lo, mask, within is not None, seg_lo[first:last],
                    seg_hi[first:last], seg_label[first:last], *table, nused)
        return _table_arrays(tuple(table), nused)

    def format_summary(self, raw: bool = False, bits: str | Iterable[str] | None = None,
                       within: PageMap | None = None) -> str:
        """:meth:`summary` as page-types prints it: hex flags, pages, MB, letters,
        long names, and a total line.

        Examples
        --------
        >>> import numpy as np
        >>> from pageflags import KPF
        >>> fs = PageFlagSet.from_words(np.array([1 << KPF.LRU] * 300 + [0] * 200))
        >>> print(fs.format_summary())  # doctest: +NORMALIZE_WHITESPACE
                     flags	page-count       MB  symbolic-flags			long-symbolic-flags
        0x0000000000000020	       300        1  _____l_____________________________________	lru
        0x0000000000000000	       200        0  ___________________________________________
                     total	       500        1
        """
        return format_rows(self.summary(raw, bits, within), self._geometry.page_size)

    def words(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The flag words of pfns ``[start, stop)`` (within the entries), rebuilt from
        the maps: what the file held there.

        Examples
        --------
        >>> import numpy as np
        >>> PageFlagSet.from_words(np.array([5, 0, 7])).words().tolist()
        [5, 0, 7]
        """
        n = self._words_needed("flag words")
        stop = n if stop is None else stop
        if not (is_integer(start) and is_integer(stop)):
            raise TypeError("start and stop must be ints")
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= n:
            raise IndexError(f"[{start}, {stop}) is not within the {n} entries")
        out = np.empty(stop - start, dtype=np.uint64)
        bits = np.array([k for k in self._maps if isinstance(k, int)], dtype=np.int64)
        maps = [self._maps[int(b)] for b in bits]
        packed = np.zeros((max(bits.size, 1), _WINDOW // 64), dtype=np.uint64)
        window = np.empty(_WINDOW, dtype=np.uint64)
        npages = self._geometry.npages
        for lo in range(start // 64 * 64, stop, _WINDOW):
            hi = min(lo + _WINDOW, npages)
            g = -(-(hi - lo) // 64)
            for k, flags in enumerate(maps):
                packed[k, :g] = flags.to_words(lo, hi)
            _kernels.bits_to_words(packed, bits, g, window)
            a, b = max(lo, start), min(hi, stop)
            out[a - start:b - start] = window[a - lo:b - lo]
        return out

    # --- snapshots -----------------------------------------------------------------
    def diff(self, other: PageFlagSet) -> dict[str, tuple[PageFlags, PageFlags]]:
        """What changed from ``self`` to ``other``: ``{name: (gained, lost)}``.

        For every name in either set, ``gained`` holds the pages with the flag in
        ``other`` but not in ``self``, ``lost`` the reverse (a flag one set lacks
        counts as no page).  The sets must share a geometry.

        Examples
        --------
        >>> import numpy as np
        >>> before = PageFlagSet.from_words(np.array([16, 16, 0, 0]))   # dirty: 0, 1
        >>> after = PageFlagSet.from_words(np.array([0, 16, 16, 32]))   # dirty: 1, 2
        >>> {k: (g.to_array().tolist(), l.to_array().tolist())
        ...  for k, (g, l) in before.diff(after).items()}
        {'dirty': ([2], [0]), 'lru': ([3], [])}
        """
        if not isinstance(other, PageFlagSet):
            raise TypeError(f"diff needs a PageFlagSet, got {type(other).__name__}")
        if other._geometry != self._geometry:
            raise ValueError(f"geometries differ: {self._geometry} vs {other._geometry}")
        keys = list(self._maps) + [k for k in other._maps if k not in self._maps]
        bits = sorted(k for k in keys if isinstance(k, int))
        keys = bits + [k for k in keys if not isinstance(k, int)]
        empty = PageFlags(self._geometry)
        out = {}
        for key in keys:
            a = self._maps.get(key, empty)
            b = other._maps.get(key, empty)
            out[self._name(key)] = (b - a, a - b)
        return out

    def save(self, folder: StrPath, *, sync: bool = True) -> None:
        """Write the set to ``folder`` (made if missing; its parent must exist).

        One :meth:`PageFlags.save` file per map and ``flagset.json`` last (see the
        module docstring): a crash leaves the old save or the new one, never a mix.
        A folder that exists must be empty or hold a saved set.

        Raises
        ------
        NotADirectoryError
            ``folder`` is a file.
        FileExistsError
            ``folder`` holds something other than a saved set; nothing is written.

        Examples
        --------
        >>> fs.save("snapshots/before")                       # doctest: +SKIP
        >>> PageFlagSet.load("snapshots/before") == fs        # doctest: +SKIP
        True
        """
        given = os.fsdecode(os.fspath(folder))
        path = Path(given)
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", given)
        if path.is_dir():
            names = os.listdir(path)
            if names and MANIFEST not in names:
                raise FileExistsError(errno.EEXIST, "a folder that holds no saved "
                                      "PageFlagSet; refusing to write into it", given)
        else:
            path.mkdir()
        generation = _next_generation(path)
        files = [f"map-{i:03d}.g{generation}.pgf" for i in range(len(self._maps))]
        entries = [{"name": self._name(key), "file": file, "count": flags.count()}
                   for (key, flags), file in zip(self._maps.items(), files, strict=True)]
        g = self._geometry
        body = {"format": FORMAT, "version": VERSION, "generation": generation,
                "geometry": {"phys_addr_bits": g.phys_addr_bits, "page_shift": g.page_shift,
                             "chunk_shift": g.chunk_shift, "npages": g.npages},
                "nentries": self._nentries, "maps": entries, "info": self.info}
        body["checksum"] = _checksum(body)  # refuses an info that is not JSON first
        text = json.dumps(body, indent=1)
        for flags, file in zip(self._maps.values(), files, strict=True):
            flags.save(path / file, sync=sync)
        replace_text(path, MANIFEST, text, sync=sync)
        keep = {e["file"] for e in entries}
        for stale in path.iterdir():
            if _MAP_FILE.fullmatch(stale.name) and stale.name not in keep:
                stale.unlink(missing_ok=True)

    @classmethod
    def load(cls, folder: StrPath) -> PageFlagSet:
        """Read a set written by :meth:`save`, checking everything first.

        Raises
        ------
        FormatError
            A missing, corrupt or altered manifest (its checksum), a missing or
            corrupt map file, or maps that disagree with the manifest; the message
            names the file and the check.
        """
        path = Path(os.fsdecode(os.fspath(folder)))
        manifest_path = str(path / MANIFEST)
        body = _read_manifest(manifest_path)
        try:
            geometry = Geometry(**body["geometry"])
        except (TypeError, ValueError) as exc:
            raise FormatError(manifest_path, "geometry", str(exc)) from None
        nentries = body["nentries"]
        if nentries is not None and (type(nentries) is not int
                                     or not 0 <= nentries <= geometry.npages):
            raise FormatError(manifest_path, "nentries", f"{nentries!r} is not a count of "
                                                         "the geometry's pages")
        new = cls(geometry, nentries)
        entries = body["maps"]
        if not isinstance(entries, list):
            raise FormatError(manifest_path, "maps", "not a list")
        for entry in entries:
            if (not isinstance(entry, dict) or set(entry) != {"name", "file", "count"}
                    or not isinstance(entry["name"], str)
                    or not isinstance(entry["file"], str)
                    or type(entry["count"]) is not int):
                raise FormatError(manifest_path, "maps", f"a bad entry {entry!r:.100}")
            name, file = entry["name"], entry["file"]
            key: Key | None = bit_of(name)
            if key is None and not _EXTRA_NAME.fullmatch(name):
                raise FormatError(manifest_path, "maps", f"bad map name {name!r:.100}")
            key = name if key is None else key
            if key in new._maps:
                raise FormatError(manifest_path, "maps", f"map {name!r} named twice")
            if not _MAP_FILE.fullmatch(file):
                raise FormatError(manifest_path, "maps", f"bad map file name {file!r:.100}")
            map_path = str(path / file)
            try:
                flags = PageFlags.load(map_path)
            except FileNotFoundError:
                raise FormatError(map_path, "missing", "a map file the manifest names is "
                                                       "not there") from None
            if flags.geometry != geometry:
                raise FormatError(map_path, "geometry", f"{flags.geometry}, the manifest "
                                                        f"says {geometry}")
            if flags.count() != entry["count"]:
                raise FormatError(map_path, "count", f"{flags.count()} pages, the "
                                                     f"manifest says {entry['count']}")
            if (isinstance(key, int) and nentries is not None and nentries < geometry.npages
                    and flags.any(nentries, geometry.npages)):
                raise FormatError(map_path, "entries", f"flag {name} on a page past the "
                                                       f"{nentries} entries")
            new._maps[key] = flags
        new._sort()
        new.info = body["info"]
        return new


# --- helpers -----------------------------------------------------------------------

def _check_name(name: object) -> None:
    """Refuse a name for another map that is malformed or that bits expressions would
    read as a flag bit or a number."""
    if not isinstance(name, str) or not _EXTRA_NAME.fullmatch(name):
        raise ValueError(f"a map name is lower case [a-z][a-z0-9_.:-]*, got {name!r}")
    try:
        kpf.parse_bits(name)
    except ValueError:
        return
    raise ValueError(f"{name!r} reads as a flag bit or number in bits expressions; "
                     "pick another name")


def _and(a: PageFlags | None, b: PageFlags | None) -> PageFlags | None:
    return None if a is None or b is None else a & b


def _sub(a: PageFlags | None, b: PageFlags | None) -> PageFlags | None:
    if a is None:
        return None
    return a if b is None else a - b


def _xor(a: PageFlags | None, b: PageFlags | None) -> PageFlags | None:
    if a is None or b is None:
        return b if a is None else a
    return a ^ b


def _cover(ranges: np.ndarray, nodes: np.ndarray, n: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments covering ``[0, n)``: the ranges (cut at ``n``) with their nodes, and
    the gaps between them as node -1."""
    lo, hi, labels = [], [], []
    at = 0
    for (start, stop), node in zip(ranges.tolist(), nodes.tolist(), strict=True):
        start, stop = min(start, n), min(stop, n)
        if start > at:
            lo.append(at)
            hi.append(start)
            labels.append(-1)
        if start < stop:
            lo.append(start)
            hi.append(stop)
            labels.append(node)
        at = max(at, stop)
    if at < n:
        lo.append(at)
        hi.append(n)
        labels.append(-1)
    return (np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64),
            np.array(labels, dtype=np.int64))


def _rows(words: np.ndarray, labels: np.ndarray, pages: np.ndarray, raw: bool,
          bits: str | Iterable[str] | None) -> np.ndarray:
    """Rows ``(place, flags, pages)`` of words shown in page-types' mode, filtered,
    summed per place and word, ordered by place, pages descending, flags."""
    shown = kpf.transform(words, raw)
    if bits is not None:
        exprs = [bits] if isinstance(bits, str) else list(bits)
        keep = kpf.match(shown, [parse_bits(e) for e in exprs])
        shown, labels, pages = shown[keep], labels[keep], pages[keep]
    out = np.empty(0, dtype=[("place", "<i8"), *SUMMARY_DTYPE.descr])
    if shown.size:
        order = np.lexsort((shown, labels))
        shown, labels, pages = shown[order], labels[order], pages[order]
        new = np.ones(shown.size, dtype=bool)
        new[1:] = (shown[1:] != shown[:-1]) | (labels[1:] != labels[:-1])
        at = np.flatnonzero(new)
        out = np.empty(at.size, dtype=out.dtype)
        out["place"] = labels[at]
        out["flags"] = shown[at]
        out["pages"] = np.add.reduceat(pages, at)
        out = out[np.lexsort((out["flags"], -out["pages"], out["place"]))]
    return out


def _plain(rows: np.ndarray, place: str | None = None) -> np.ndarray:
    """Rows without their place field, or with it named ``place``."""
    if place is None:
        out = np.empty(rows.size, dtype=SUMMARY_DTYPE)
    else:
        out = np.empty(rows.size, dtype=[(place, "<i8"), *SUMMARY_DTYPE.descr])
        out[place] = rows["place"]
    out["flags"] = rows["flags"]
    out["pages"] = rows["pages"]
    return out


def format_rows(rows: np.ndarray, page_size: int = 4096) -> str:
    """Summary rows (``flags``, ``pages``) as page-types' ``show_summary`` prints them.

    Examples
    --------
    >>> rows = np.array([(0x10, 512)], dtype=SUMMARY_DTYPE)
    >>> format_rows(rows).splitlines()[1].split(chr(9))[:2]  # tab-separated
    ['0x0000000000000010', '       512        2  ____D______________________________________']
    """
    lines = ["             flags\tpage-count       MB  symbolic-flags\t\t\t"
             "long-symbolic-flags"]
    for flags, pages in zip(rows["flags"].tolist(), rows["pages"].tolist(), strict=True):
        lines.append(f"0x{flags:016x}\t{pages:10d} {pages * page_size >> 20:8d}  "
                     f"{kpf.letters(flags)}\t{kpf.long_names(flags)}")
    total = int(rows["pages"].sum())
    lines.append(f"             total\t{total:10d} {total * page_size >> 20:8d}")
    return "\n".join(lines)


def _checksum(body: Mapping[str, Any]) -> str:
    fields = {k: v for k, v in body.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _next_generation(folder: Path) -> int:
    """One more than any generation in ``folder``'s manifest or map file names, so a
    save never writes over a file that some manifest may name."""
    seen = [0]
    for name in os.listdir(folder):
        m = _MAP_FILE.fullmatch(name)
        if m:
            seen.append(int(m.group(2)))
    try:
        generation = _read_manifest(str(folder / MANIFEST))["generation"]
        if type(generation) is int:
            seen.append(generation)
    except (FormatError, OSError):
        pass
    return max(seen) + 1


def _read_manifest(path: str) -> dict[str, Any]:
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        raise FormatError(path, "manifest", "no manifest: not a saved PageFlagSet") from None
    try:
        size = os.fstat(fd).st_size
        if size > _MANIFEST_MAX_BYTES:
            raise FormatError(path, "size", f"{size} bytes, a manifest is at most "
                                            f"{_MANIFEST_MAX_BYTES}")
        raw = os.read(fd, _MANIFEST_MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(path, "manifest", f"not JSON: {exc}") from None
    keys = {"format", "version", "generation", "geometry", "nentries", "maps", "info",
            "checksum"}
    if not isinstance(body, dict) or set(body) != keys:
        raise FormatError(path, "manifest", f"needs exactly the keys {sorted(keys)}")
    if body["format"] != FORMAT or body["version"] != VERSION:
        raise FormatError(path, "version", f"not a {FORMAT} version {VERSION} manifest")
    if body["checksum"] != _checksum(body):
        raise FormatError(path, "checksum", "the manifest's SHA-256 does not match: it "
                                            "was altered or damaged")
    if not isinstance(body["geometry"], dict) or not isinstance(body["info"], dict):
        raise FormatError(path, "manifest", "geometry and info must be objects")
    return body
