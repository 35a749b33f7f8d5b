"""pageflags.procfs: measuring and streaming per-pfn files, kpagecount and
kpagecgroup maps, a process's pagemap, and the idle bitmap; on fixture files
(regular files standing in for the kernel's), against NumPy."""

from __future__ import annotations

import errno
import os

import _pagetypes as pt
import numpy as np
import pytest

from pageflags import FormatError, Geometry, PageFlags, PageFlagSet, procfs


def readable(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return len(f.read(8)) == 8
    except OSError:
        return False


def write(tmp_path, values, name) -> str:
    path = tmp_path / name
    np.asarray(values, dtype="<u8").tofile(path)
    return str(path)


@pytest.fixture(scope="module")
def words() -> np.ndarray:
    return pt.fixture_words(seed=9, n=3 * 32768 + 1000)


@pytest.fixture
def fs(words) -> PageFlagSet:
    return PageFlagSet.from_words(words)


# --- measuring and streaming -----------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 3, 63, 64, 65, 32768, 32769, 100_003])
def test_entry_count_by_size_and_by_probing(tmp_path, monkeypatch, n):
    path = write(tmp_path, np.arange(n), "entries")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert procfs.entry_count(fd, path) == n
        real = os.fstat

        class NoSize:  # what stat says of a file under /proc
            def __init__(self, info):
                self.st_size, self.st_mode = 0, info.st_mode

        monkeypatch.setattr(os, "fstat", lambda f: NoSize(real(f)))
        assert procfs.entry_count(fd, path) == n
    finally:
        os.close(fd)


@pytest.mark.skipif(not readable(procfs.KPAGEFLAGS), reason="/proc/kpageflags is not "
                    "readable here (needs root)")
def test_entry_count_of_the_live_file_is_its_length():
    fd = procfs.open_entries(procfs.KPAGEFLAGS)
    try:
        counted = procfs.entry_count(fd, procfs.KPAGEFLAGS)
        total = 0
        while part := os.pread(fd, 1 << 22, total):
            total += len(part)
    finally:
        os.close(fd)
    assert counted * 8 == total and counted % 32768 == 0


def test_read_entries_covers_the_range_in_whole_buffers(tmp_path):
    n = procfs.BUFFER_CHUNKS * procfs.CHUNK_ENTRIES * 2 + 777
    values = np.arange(n, dtype=np.uint64) * np.uint64(3)
    path = write(tmp_path, values, "entries")
    fd = os.open(path, os.O_RDONLY)
    try:
        pieces = [(at, w.copy()) for at, w in procfs.read_entries(fd, path, 64, n)]
    finally:
        os.close(fd)
    assert [at for at, _ in pieces] == [64, 64 + procfs.BUFFER_CHUNKS * 32768,
                                        64 + 2 * procfs.BUFFER_CHUNKS * 32768]
    np.testing.assert_array_equal(np.concatenate([w for _, w in pieces]), values[64:])


def test_open_entries_without_permission_says_root(tmp_path, monkeypatch):
    path = write(tmp_path, [1], "entries")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError, match="needs root") as info:
        procfs.open_entries(path, "page map counts")
    assert "page map counts" in str(info.value) and info.value.filename == path


# --- kpagecount and kpagecgroup -----------------------------------------------------------

def test_kpagecount_adds_mapped_once_and_many(fs, words, tmp_path):
    rng = np.random.default_rng(4)
    counts = rng.choice([0, 0, 1, 1, 2, 7], words.size)
    counts[[0, 63, 64, 32767, 32768, words.size - 1]] = [1, 2, 1, 5, 1, 3]
    fs.add_kpagecount(write(tmp_path, counts, "kpagecount"))
    assert fs.names[-2:] == ["mapped_once", "mapped_many"]
    np.testing.assert_array_equal(fs["mapped_once"].to_array(), np.flatnonzero(counts == 1))
    np.testing.assert_array_equal(fs["mapped_many"].to_array(), np.flatnonzero(counts > 1))
    lru = pt.bit_pfns(words, 5)
    assert fs.select("lru,~mapped_many").to_array().tolist() == np.setdiff1d(
        lru, np.flatnonzero(counts > 1)).tolist()


def test_kpagecount_refuses_short_or_odd_files(fs, words, tmp_path):
    before = fs.names
    with pytest.raises(ValueError, match="entries"):
        fs.add_kpagecount(write(tmp_path, np.ones(words.size - 1), "short"))
    odd = tmp_path / "odd"
    odd.write_bytes(bytes(8 * words.size + 4))
    with pytest.raises(FormatError):
        fs.add_kpagecount(odd)
    assert fs.names == before
    with pytest.raises(ValueError, match="flag words"):
        PageFlagSet(1 << 20).add_kpagecount(odd)


def test_kpagecgroup_by_inode_and_by_folder(fs, words, tmp_path):
    folder = tmp_path / "cg"
    folder.mkdir()
    inode = os.stat(folder).st_ino
    rng = np.random.default_rng(5)
    inodes = rng.choice([0, 1, inode, inode + 1], words.size)
    path = write(tmp_path, inodes, "kpagecgroup")
    assert fs.add_kpagecgroup(inode, path) == f"cgroup_{inode}"
    np.testing.assert_array_equal(fs[f"cgroup_{inode}"].to_array(),
                                  np.flatnonzero(inodes == inode))
    assert fs.add_kpagecgroup(folder, path, name="mine") == "mine"
    assert fs["mine"] == fs[f"cgroup_{inode}"]
    values, pages = np.unique(inodes, return_counts=True)
    counted = procfs.value_counts(path)
    assert counted["value"].tolist() == values.tolist()
    assert counted["pages"].tolist() == pages.tolist()
    for bad, error in [(0, ValueError), (tmp_path / "kpagecgroup", NotADirectoryError),
                       (tmp_path / "missing", FileNotFoundError), (True, TypeError)]:
        with pytest.raises(error):
            fs.add_kpagecgroup(bad, path)
    names = fs.names
    with pytest.raises(ValueError):
        fs.add_kpagecgroup(inode, path, name="lr")
    with pytest.raises(ValueError, match="entries"):
        fs.add_kpagecgroup(inode, write(tmp_path, inodes[:-1], "short"), name="other")
    assert fs.names == names


@pytest.mark.skipif(not (readable(procfs.KPAGEFLAGS) and readable(procfs.KPAGECOUNT)),
                    reason="/proc/kpagecount is not readable here (needs root)")
def test_live_kpagecount():
    live = PageFlagSet.from_kpageflags()
    live.add_kpagecount()
    assert 0 < live.count("mapped_once") + live.count("mapped_many") <= live.nentries
    assert not live["mapped_once"].intersects(live["mapped_many"])


# --- a process's pages ---------------------------------------------------------------------

def test_vmas_parses_maps_lines():
    text = ("00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon\n"
            "7ffd1000-7ffd3000 rw-p 00000000 00:00 0                          [stack]\n"
            "7f00-8000 ---p 00000000 00:00 0 \n\n")
    assert procfs.vmas(text) == [(0x400000, 0x452000, "r-xp", "/usr/bin/dbus-daemon"),
                                 (0x7FFD1000, 0x7FFD3000, "rw-p", "[stack]"),
                                 (0x7F00, 0x8000, "---p", "")]
    with pytest.raises(ValueError, match="line 1"):
        procfs.vmas("not a maps line\n")
    with pytest.raises(ValueError, match="ends before"):
        procfs.vmas("2000-1000 r--p 00000000 00:00 0\n")


def test_pagemap_maps_against_the_entries(tmp_path):
    g = Geometry.from_npages(200_000)
    rng = np.random.default_rng(6)
    entries = pt.process_entries(rng, 5000, g.npages)
    entries[10] = pt.PM_PRESENT | (g.npages + 5)  # device memory past the geometry
    entries[11] = pt.PM_PRESENT | entries[12] & ((1 << 55) - 1) | pt.PM_SOFT_DIRTY
    pt.write_process(tmp_path, 77, [(0x400, entries[:3000]), (0x7F0000, entries[3000:])])
    proc = PageFlagSet.from_pagemap(77, g, proc=tmp_path)
    assert proc.names == ["present", "soft_dirty", "exclusive", "file_shared"]
    assert proc.info == {"pid": "77", "pfns_outside": 1} and proc.nentries is None
    pm = np.array(entries, dtype=np.uint64)
    pfn = (pm & np.uint64((1 << 55) - 1)).astype(np.int64)
    present = (pm >> np.uint64(63)).astype(bool) & (pfn < g.npages)
    for name, bit in procfs.PAGEMAP_MAPS.items():
        chosen = present & ((pm >> np.uint64(bit)) & np.uint64(1)).astype(bool)
        assert proc[name].to_array().tolist() == np.unique(pfn[chosen]).tolist(), name
    assert proc.select("present,~soft_dirty") == proc["present"] - proc["soft_dirty"]
    with pytest.raises(ValueError, match="flag words"):
        proc.summary()


def test_pagemap_geometry_defaults_to_the_kpageflags_length(tmp_path):
    kpageflags = write(tmp_path, np.zeros(70_000), "kpageflags")
    pt.write_process(tmp_path, 5, [(0x10, [pt.PM_PRESENT | 69_999])])
    proc = PageFlagSet.from_pagemap(5, proc=tmp_path, kpageflags=kpageflags)
    assert proc.geometry == Geometry.from_npages(70_000)
    assert proc["present"].to_array().tolist() == [69_999]


def test_hidden_pfns_say_root_is_needed(tmp_path):
    pt.write_process(tmp_path, 8, [(0x10, [pt.PM_PRESENT, pt.PM_PRESENT | pt.PM_FILE])])
    with pytest.raises(PermissionError, match="CAP_SYS_ADMIN"):
        PageFlagSet.from_pagemap(8, 1 << 20, proc=tmp_path)
    with pytest.raises(FileNotFoundError):
        PageFlagSet.from_pagemap(9, 1 << 20, proc=tmp_path)


def pfns_shown() -> bool:
    """Whether this process sees pfns in its pagemap (CAP_SYS_ADMIN) and kpageflags."""
    if not readable(procfs.KPAGEFLAGS):
        return False
    page = np.ones(4096 * 2, dtype=np.uint8)
    with open("/proc/self/pagemap", "rb") as f:
        f.seek((page.ctypes.data // 4096 + 1) * 8)
        entry = int(np.frombuffer(f.read(8), dtype="<u8")[0])
    return entry & ((1 << 55) - 1) != 0


@pytest.mark.skipif(not pfns_shown(), reason="pfns in /proc/self/pagemap and "
                    "/proc/kpageflags need root (CAP_SYS_ADMIN)")
def test_live_pagemap_holds_a_buffer_this_process_touched():
    buffer = np.ones(1 << 20, dtype=np.uint8)  # 256 pages, touched
    proc = PageFlagSet.from_pagemap()
    first = buffer.ctypes.data // 4096 + 1
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(first * 8)
        entries = np.frombuffer(f.read(8 * 200), dtype="<u8")
    pfns = (entries & np.uint64((1 << 55) - 1)).astype(np.int64)
    assert (entries >> np.uint64(63)).all() and proc["present"].test_many(pfns).all()
    live = PageFlagSet.from_kpageflags()
    assert proc.geometry == live.geometry
    assert (live.select("anon") & proc["present"]).count() >= 200
    assert proc["exclusive"].test_many(pfns).all()


# --- idle pages -------------------------------------------------------------------------------

def test_mark_idle_writes_the_words_and_read_idle_reads_them(tmp_path):
    g = Geometry.from_npages(5 * 32768 + 100)
    path = write(tmp_path, np.zeros(g.nwords), "bitmap")
    flags = PageFlags.from_array([0, 63, 64, 32767, 32768, 4 * 32768 + 5, g.npages - 1], g)
    flags.set_range(100_000, 130_000)
    assert procfs.mark_idle(flags, path) == flags.count()
    on_disk = np.fromfile(path, dtype="<u8")
    np.testing.assert_array_equal(on_disk, flags.to_words())
    back = procfs.read_idle(g, path)
    back.validate()
    assert back == flags


def test_mark_idle_refuses_a_bitmap_too_small_and_writes_nothing(tmp_path):
    g = Geometry.from_npages(1 << 16)
    path = write(tmp_path, np.arange(100), "bitmap")  # covers pfns below 6400
    flags = PageFlags.from_array([5, 6400], g)
    with pytest.raises(ValueError, match="6400"):
        procfs.mark_idle(flags, path)
    np.testing.assert_array_equal(np.fromfile(path, dtype="<u8"), np.arange(100))
    assert procfs.mark_idle(PageFlags(g), path) == 0


def test_read_idle_refuses_bad_files(tmp_path):
    g = Geometry.from_npages(1000)
    odd = tmp_path / "odd"
    odd.write_bytes(bytes(13))
    with pytest.raises(FormatError):
        procfs.read_idle(g, odd)
    with pytest.raises(ValueError, match="more than"):
        procfs.read_idle(g, write(tmp_path, np.zeros(g.nwords + 1), "long"))
    past = np.zeros(g.nwords, dtype=np.uint64)
    past[-1] = np.uint64(1) << np.uint64(63)  # pfn 1023, past npages 1000
    with pytest.raises(ValueError, match="past npages"):
        procfs.read_idle(g, write(tmp_path, past, "past"))
    assert procfs.read_idle(g, write(tmp_path, np.zeros(3), "short")).count() == 0


def test_idle_bitmap_needs_root(tmp_path, monkeypatch):
    path = write(tmp_path, np.zeros(4), "bitmap")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError, match="root"):
        procfs.mark_idle(PageFlags.from_array([1], 256), path)
    with pytest.raises(PermissionError, match="root"):
        procfs.read_idle(256, path)


@pytest.mark.skipif(not os.path.exists(procfs.IDLE_BITMAP),
                    reason=f"{procfs.IDLE_BITMAP} does not exist (no CONFIG_IDLE_PAGE_TRACKING)")
def test_live_idle_bitmap_reads():  # pragma: no cover  (not on the build machine)
    live = PageFlagSet.from_kpageflags()
    idle = procfs.read_idle(live.geometry)
    assert idle.count() <= live.nentries
