"""Reading the kernel's per-page files: kpageflags, kpagecount, kpagecgroup, a
process's pagemap, and the idle page bitmap.

Every file here is an array of 64-bit words, one per pfn (per virtual page for
pagemap, one per 64 pfns for the idle bitmap), that the kernel builds as it is read.
The kernel demands reads at offsets and of lengths that are multiples of 8
(``-EINVAL`` otherwise), and the files under ``/proc`` report a size of 0, so:

* a regular file with a size (a saved copy) gives its length by ``fstat``, and a
  length that is not a multiple of 8 is a :class:`~pageflags.FormatError`;
* a file reporting size 0 (the live ones) is measured by 8-byte probes, doubling then
  bisecting, to where reads return nothing (the kernel's file ends at
  ``round_up(max_pfn, PAGES_PER_SECTION)``): some 50 one-entry reads;
* then it is read in one fixed buffer of whole 32768-entry chunks, so that memory is
  bounded whatever the file's size, with a tqdm bar on a terminal.

Opening one without permission raises ``PermissionError`` saying that root is
needed (CAP_SYS_ADMIN: the files are mode 0400, and pagemap hides pfns from others).

The readers that build maps belong to :class:`~pageflags.PageFlagSet`
(``from_kpageflags``, ``from_pagemap``, ``add_kpagecount``, ``add_kpagecgroup``);
:func:`mark_idle` and :func:`read_idle` move maps to and from the idle bitmap.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import _kernels
from ._files import StrPath, open_regular
from .base import PageMap
from .bitmap import PageFlags
from .errors import FormatError
from .geometry import Geometry, as_geometry

__all__ = ["IDLE_BITMAP", "KPAGECGROUP", "KPAGECOUNT", "KPAGEFLAGS", "BUFFER_CHUNKS",
           "entry_count", "mark_idle", "open_entries", "read_entries", "read_idle",
           "vmas"]

KPAGEFLAGS = "/proc/kpageflags"
KPAGECOUNT = "/proc/kpagecount"
KPAGECGROUP = "/proc/kpagecgroup"
IDLE_BITMAP = "/sys/kernel/mm/page_idle/bitmap"

#: Entries per chunk of the read buffer: one 128 MiB section, 256 KiB of words.
CHUNK_ENTRIES = 1 << 15
#: Chunks the read buffer holds (2 MiB of words): large reads, bounded memory.
BUFFER_CHUNKS = 8
_PROBE_LIMIT = 1 << 60  # entries: an offset past any file the kernel can make


def _needs_root(path: str, what: str, exc: OSError) -> PermissionError:
    return PermissionError(exc.errno or errno.EACCES,
                           f"permission denied: reading {what} needs root "
                           "(CAP_SYS_ADMIN)", path)


def open_entries(path: StrPath, what: str = "page flags") -> int:
    """A read-only descriptor of the regular file ``path`` (live or a saved copy).

    Raises
    ------
    PermissionError
        Saying that root is needed.
    FileNotFoundError, OSError
        A missing file; anything but a regular file (a FIFO is refused unread).
    """
    path = os.fsdecode(os.fspath(path))
    try:
        return open_regular(path)
    except PermissionError as exc:
        raise _needs_root(path, what, exc) from None


def _pread(fd: int, nbytes: int, offset: int, path: str, what: str) -> bytes:
    try:
        return os.pread(fd, nbytes, offset)
    except PermissionError as exc:
        raise _needs_root(path, what, exc) from None


def entry_count(fd: int, path: str, what: str = "page flags") -> int:
    """Entries (8-byte words) in the open file ``fd``.

    Raises
    ------
    FormatError
        A size, or a probe's read, that is not a multiple of 8 bytes.
    """
    size = os.fstat(fd).st_size
    if size:
        if size % 8:
            raise FormatError(path, "size", f"{size} bytes is not a whole number of "
                                            "8-byte entries")
        return size // 8

    def has(entry: int) -> bool:
        got = _pread(fd, 8, entry * 8, path, what)
        if len(got) not in (0, 8):
            raise FormatError(path, "size", f"a read at entry {entry} gave {len(got)} "
                                            "bytes, not a whole 8-byte entry")
        return len(got) == 8

    if not has(0):
        return 0
    lo, hi = 0, 1  # has(lo) and, once doubled past the end, not has(hi)
    while has(hi):
        lo, hi = hi, hi * 2
        if hi > _PROBE_LIMIT:
            raise FormatError(path, "size", "no end found: not a file of entries")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if has(mid):
            lo = mid
        else:
            hi = mid
    return hi


def _bar(total: int, desc: str, progress: bool | None) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm  # imported only when a bar is wanted

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                leave=False)


def read_entries(fd: int, path: str, start: int, stop: int, *, what: str = "page flags",
                 progress: bool | None = None,
                 buffer_chunks: int = BUFFER_CHUNKS) -> Iterator[tuple[int, np.ndarray]]:
    """Entries ``[start, stop)`` of ``fd`` as ``(first entry, uint64 words)`` pieces.

    ``start`` is a multiple of 64.  The words are a view of one buffer of
    ``buffer_chunks`` chunks, reused by the next piece: use it before asking for
    the next one.

    Raises
    ------
    FormatError
        The file ends before ``stop`` (it shrank while being read) or a read gives a
        part of an entry.
    """
    assert start % 64 == 0
    buffer = np.empty(buffer_chunks * CHUNK_ENTRIES, dtype=np.uint64)
    view = buffer.data.cast("B")
    bar = _bar((stop - start) * 8, os.path.basename(path) or path, progress)
    try:
        at = start
        while at < stop:
            want = min(buffer.size, stop - at)
            got = 0
            while got < want * 8:
                try:
                    n = os.preadv(fd, [view[got:want * 8]], at * 8 + got)
                except PermissionError as exc:
                    raise _needs_root(path, what, exc) from None
                if n == 0:
                    raise FormatError(path, "size", f"ended at entry {at + got // 8}, "
                                                    f"before entry {stop}: it changed "
                                                    "while being read")
                got += n
            if got % 8:  # pragma: no cover  (the kernel gives whole entries)
                raise FormatError(path, "size", "a read gave part of an entry")
            if bar is not None:
                bar.update(want * 8)
            yield at, buffer[:want]
            at += want
    finally:
        if bar is not None:
            bar.close()


# --- process address spaces --------------------------------------------------------

_MAPS_LINE = re.compile(r"([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) (\S+) (\d+)\s*(.*)")


def vmas(text: str, source: str = "maps") -> list[tuple[int, int, str, str]]:
    """The areas of a ``/proc/PID/maps`` text as ``(start, end, perms, path)``.

    Raises
    ------
    ValueError
        A line that is not a maps line, or an area with its end before its start.

    Examples
    --------
    >>> vmas("00400000-00452000 r-xp 00000000 08:02 173521  /usr/bin/dbus-daemon\\n")
    [(4194304, 4530176, 'r-xp', '/usr/bin/dbus-daemon')]
    """
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _MAPS_LINE.fullmatch(line.rstrip("\n"))
        if not m:
            raise ValueError(f"{source} line {number}: not a maps line: {line[:80]!r}")
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        if end < start:
            raise ValueError(f"{source} line {number}: area ends before it starts")
        out.append((start, end, m.group(3), m.group(7)))
    return out


#: The maps a process's set holds, with the pagemap bit each stands for.
PAGEMAP_MAPS = {"present": 63, "soft_dirty": 55, "exclusive": 56, "file_shared": 61}


def read_pagemap(pid: int | str, geometry: Geometry, proc: str = "/proc",
                 buffer_entries: int = CHUNK_ENTRIES) -> tuple[dict[str, PageFlags], int]:
    """The pfns process ``pid`` maps, as one map per :data:`PAGEMAP_MAPS` entry,
    and how many present pfns fell outside ``geometry`` (device memory, for one).

    Walks ``{proc}/{pid}/maps`` and reads ``{proc}/{pid}/pagemap`` for each area in
    buffers of ``buffer_entries`` entries.  A pfn mapped several times has the OR of
    its entries' bits.
    """
    base = os.path.join(os.fsdecode(proc), str(pid))
    maps_path = os.path.join(base, "maps")
    pagemap_path = os.path.join(base, "pagemap")
    fd = open_entries(maps_path, "a process's maps")
    try:
        chunks = []
        while part := os.read(fd, 1 << 20):
            chunks.append(part)
    finally:
        os.close(fd)
    areas = vmas(b"".join(chunks).decode("utf-8", "surrogateescape"), maps_path)
    page_size = geometry.page_size
    pfn_lists: list[np.ndarray] = []
    flag_lists: list[np.ndarray] = []
    hidden = 0
    found = 0
    fd = open_entries(pagemap_path, "a process's pagemap")
    try:
        buffer = np.empty(buffer_entries, dtype=np.uint64)
        view = buffer.data.cast("B")
        pfns = np.empty(buffer_entries, dtype=np.int64)
        flags = np.empty(buffer_entries, dtype=np.uint64)
        for start, end, _, _ in areas:
            vpn, stop = start // page_size, -(-end // page_size)
            while vpn < stop:
                want = min(buffer_entries, stop - vpn)
                try:
                    got = os.preadv(fd, [view[:want * 8]], vpn * 8)
                except PermissionError as exc:
                    raise _needs_root(pagemap_path, "a process's pagemap", exc) from None
                except OSError as exc:  # an area past the task size reads as EINVAL
                    if exc.errno in (errno.EINVAL, errno.EIO):
                        break
                    raise
                if got < 8:
                    break
                n, zero = _kernels.pagemap_present(buffer, got // 8, pfns, flags)
                hidden += zero
                found += n
                if n:
                    pfn_lists.append(pfns[:n].copy())
                    flag_lists.append(flags[:n].copy())
                vpn += got // 8
    finally:
        os.close(fd)
    if found and hidden == found:
        raise PermissionError(errno.EPERM, "every present page reads pfn 0: the kernel "
                              "hides pfns from readers without CAP_SYS_ADMIN (run as "
                              "root)", pagemap_path)
    all_pfns = np.concatenate(pfn_lists) if pfn_lists else np.empty(0, np.int64)
    all_flags = np.concatenate(flag_lists) if flag_lists else np.empty(0, np.uint64)
    inside = all_pfns < geometry.npages
    outside = int(all_pfns.size - np.count_nonzero(inside))
    all_pfns, all_flags = all_pfns[inside], all_flags[inside]
    maps = {}
    for name, bit in PAGEMAP_MAPS.items():
        chosen = all_pfns if bit == 63 else all_pfns[
            (all_flags >> np.uint64(bit - 55)) & np.uint64(1) != 0]
        maps[name] = PageFlags.from_array(chosen, geometry)
    return maps, outside


# --- per-pfn value files: kpagecount, kpagecgroup ------------------------------------

def compare_file(path: StrPath, nentries: int, geometry: Geometry, value: int,
                 what: str, progress: bool | None = None) -> tuple[PageFlags, PageFlags]:
    """Maps of the pfns of ``[0, nentries)`` whose entry in ``path`` equals and
    exceeds ``value``.  The file must hold at least ``nentries`` entries."""
    path = os.fsdecode(os.fspath(path))
    fd = open_entries(path, what)
    try:
        have = entry_count(fd, path, what)
        if have < nentries:
            raise ValueError(f"{path}: {have} entries, the set read {nentries}")
        equal_map, greater_map = PageFlags(geometry), PageFlags(geometry)
        words = BUFFER_CHUNKS * CHUNK_ENTRIES // 64
        equal = np.empty(words, dtype=np.uint64)
        greater = np.empty(words, dtype=np.uint64)
        for at, values in read_entries(fd, path, 0, nentries, what=what, progress=progress):
            n = values.size
            g = -(-n // 64)
            _kernels.compare_to_bits(values, n, np.uint64(value), equal, greater)
            if equal[:g].any():
                equal_map.put_words(at, equal[:g])
            if greater[:g].any():
                greater_map.put_words(at, greater[:g])
    finally:
        os.close(fd)
    return equal_map, greater_map


def value_counts(path: StrPath, what: str = "page cgroups",
                 progress: bool | None = None) -> np.ndarray:
    """The distinct entries of ``path`` (such as kpagecgroup's inodes) and their pfns:
    a structured array of ``value`` (uint64) and ``pages`` (int64), by value."""
    path = os.fsdecode(os.fspath(path))
    fd = open_entries(path, what)
    try:
        n = entry_count(fd, path, what)
        table = _kernels.new_table(1024)
        nused = 0
        for _, values in read_entries(fd, path, 0, n, what=what, progress=progress):
            *table, nused = _kernels.count_words(values, 0, values.size, 0, *table,
                                                 nused)
    finally:
        os.close(fd)
    keys, _, counts, used = table
    order = np.argsort(keys[used], kind="stable")
    out = np.empty(int(nused), dtype=[("value", "<u8"), ("pages", "<i8")])
    out["value"] = keys[used][order]
    out["pages"] = counts[used][order]
    return out


# --- idle page tracking ------------------------------------------------------------

def _open_for_writing(path: str) -> int:
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        from ._files import not_a_regular_file

        raise not_a_regular_file(path, mode)
    try:
        return os.open(path, os.O_WRONLY)
    except PermissionError as exc:
        raise PermissionError(exc.errno, "permission denied: marking pages idle needs "
                              "root", path) from None


def mark_idle(flags: PageMap, path: StrPath = IDLE_BITMAP) -> int:
    """Mark the pages of ``flags`` idle: write its words to the idle bitmap.

    The bitmap's layout is the map's: pfn ``i`` is bit ``i % 64`` of word ``i // 64``,
    native byte order.  Every window of 8 chunks holding a set page is written
    whole, in one 8-byte-aligned write; the kernel ORs what it is given (zeros
    change nothing) and ignores pages it cannot track (only LRU user pages, and a
    huge page only on its head).  A regular file standing in for the bitmap gets
    those windows' words, replacing what it held there.

    Returns
    -------
    int
        The pages asked to be marked (``flags.count()``).

    Raises
    ------
    ValueError
        A regular file with a size too small for the map's highest page; nothing is
        written.
    PermissionError
        Without root.

    Examples
    --------
    >>> import os, tempfile
    >>> from pageflags import PageFlags
    >>> path = os.path.join(tempfile.mkdtemp(), "bitmap")
    >>> with open(path, "wb") as out:
    ...     _ = out.write(bytes(8 * 1024))
    >>> flags = PageFlags(1 << 16); flags.set_many([3, 64, 65])
    >>> mark_idle(flags, path), read_idle(flags.geometry, path).to_array().tolist()
    (3, [3, 64, 65])
    """
    path = os.fsdecode(os.fspath(path))
    top = flags.max()
    fd = _open_for_writing(path)
    try:
        size = os.fstat(fd).st_size
        if top >= 0 and size and (top // 64 + 1) * 8 > size:
            raise ValueError(f"{path}: {size} bytes cover pfns below {size * 8}; the map "
                             f"has pfn {top}")
        window = BUFFER_CHUNKS * CHUNK_ENTRIES
        npages = flags.npages
        at = flags.find_next_set(0) if top >= 0 else -1
        while 0 <= at:
            lo = at // window * window
            hi = min(lo + window, npages)
            words = flags.to_words(lo, hi)
            try:
                _write_at(fd, words, lo // 64 * 8)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    raise OSError(exc.errno, f"pfns from {lo} are past the kernel's "
                                             "max_pfn", path) from None
                raise
            at = flags.find_next_set(hi) if hi < npages else -1
    finally:
        os.close(fd)
    return flags.count()


def _write_at(fd: int, words: np.ndarray, offset: int) -> None:
    view = np.ascontiguousarray(words, dtype=np.uint64).data.cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def read_idle(geometry: Geometry | int, path: StrPath = IDLE_BITMAP, *,
              progress: bool | None = None) -> PageFlags:
    """The idle bitmap as a map: pages the kernel still sees as idle.

    Reads in buffers of whole chunks (4 KiB of bitmap per 32768 pfns) up to the end
    of the file or of ``geometry``.  Reading runs the kernel's rmap walks, which
    clear the bits of pages accessed since they were marked.

    Raises
    ------
    FormatError
        A file whose length is not a multiple of 8 bytes.
    ValueError
        A file holding more pages than ``geometry``, or bits set past its npages;
        nothing is returned.
    PermissionError
        Without root.
    """
    geometry = as_geometry(geometry)
    path = os.fsdecode(os.fspath(path))
    fd = open_entries(path, "the idle bitmap")
    try:
        size = os.fstat(fd).st_size
        if size % 8:
            raise FormatError(path, "size", f"{size} bytes is not a whole number of "
                                            "8-byte words")
        nwords = geometry.nwords
        if size > nwords * 8:
            raise ValueError(f"{path}: {size // 8} words cover more than the "
                             f"{geometry.npages} pages of the geometry")
        flags = PageFlags(geometry)
        total = size // 8 if size else nwords
        pieces = _read_words(fd, path, total, progress)
        for at, words in pieces:
            if words.any():
                flags.put_words(at * 64, words)
        if not size and _pread(fd, 8, total * 8, path, "the idle bitmap"):
            raise ValueError(f"{path}: holds more than the {geometry.npages} pages of "
                             "the geometry")
    finally:
        os.close(fd)
    return flags


def _read_words(fd: int, path: str, total: int, progress: bool | None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """Words ``[0, total)`` of ``fd`` (stopping early at the end of a live file)."""
    buffer = np.empty(BUFFER_CHUNKS * CHUNK_ENTRIES, dtype=np.uint64)
    view = buffer.data.cast("B")
    bar = _bar(total * 8, os.path.basename(path), progress)
    try:
        at = 0
        while at < total:
            want = min(buffer.size, total - at)
            try:
                got = os.preadv(fd, [view[:want * 8]], at * 8)
            except PermissionError as exc:
                raise _needs_root(path, "the idle bitmap", exc) from None
            if got % 8:
                raise FormatError(path, "size", "a read gave part of a word")
            if got == 0:
                return
            if bar is not None:
                bar.update(got)
            yield at, buffer[:got // 8]
            at += got // 8
    finally:
        if bar is not None:
            bar.close()
