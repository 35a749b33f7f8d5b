"""PageFlagSet: sets of maps from kpageflags files, against NumPy and page-types'
C (tests/_pagetypes.py) over the same words."""

from __future__ import annotations

import errno
import json
import os
import sys

import _pagetypes as pt
import numpy as np
import pytest

from pageflags import KPF, FormatError, Geometry, MemoryMap, PageFlags, PageFlagSet, kpf, procfs
from pageflags import flagset as flagset_module
from pageflags.flagset import MANIFEST, format_rows

LIVE = "/proc/kpageflags"


def live_readable() -> bool:
    try:
        with open(LIVE, "rb") as f:
            return len(f.read(8)) == 8
    except OSError:
        return False


needs_live = pytest.mark.skipif(not live_readable(),
                                reason=f"{LIVE} is not readable here (needs root)")


@pytest.fixture(scope="module")
def words() -> np.ndarray:
    return pt.fixture_words()


@pytest.fixture(scope="module")
def saved(tmp_path_factory, words) -> str:
    path = tmp_path_factory.mktemp("kpf") / "kpageflags"
    words.astype("<u8").tofile(path)
    return str(path)


@pytest.fixture(scope="module")
def fs(saved) -> PageFlagSet:
    return PageFlagSet.from_kpageflags(saved)


def write(tmp_path, words, name="kpageflags") -> str:
    path = tmp_path / name
    np.asarray(words, dtype="<u8").tofile(path)
    return str(path)


# --- building -------------------------------------------------------------------------

def test_every_bit_that_occurs_is_a_map_of_exactly_its_pages(fs, words):
    occurring = [b for b in range(64) if pt.bit_pfns(words, b).size]
    assert fs.names == [kpf.bit_name(b) for b in occurring]
    assert fs.bits == sum(1 << b for b in occurring)
    for b in occurring:
        flags = fs[b]
        flags.validate()
        np.testing.assert_array_equal(flags.to_array(), pt.bit_pfns(words, b))
        assert fs.count(kpf.bit_name(b)) == pt.bit_pfns(words, b).size
    assert {"bit27", "bit45", "bit60", "arch_3", "mmap_exclusive"} <= set(fs.names)


def test_geometry_defaults_to_exactly_the_entries(fs, words):
    assert fs.geometry == Geometry.from_npages(words.size)
    assert fs.nentries == words.size and fs.geometry.page_size == 4096
    assert fs.info["source"].endswith("kpageflags")


def test_words_come_back_from_the_maps(fs, words):
    np.testing.assert_array_equal(fs.words(), words)
    for lo, hi in [(0, 1), (63, 65), (32767, 32769), (words.size - 1, words.size),
                   (5, 5), (100, 70_000)]:
        np.testing.assert_array_equal(fs.words(lo, hi), words[lo:hi])
    with pytest.raises(IndexError):
        fs.words(0, words.size + 1)


def test_a_larger_geometry_holds_the_entries_and_nothing_past_them(saved, words):
    g = Geometry(40)
    big = PageFlagSet.from_kpageflags(saved, g)
    assert big.geometry == g and big.nentries == words.size
    np.testing.assert_array_equal(big["lru"].to_array(), pt.bit_pfns(words, 5))
    # complements stay within the entries read
    not_lru = np.flatnonzero(((words >> np.uint64(5)) & np.uint64(1)) == 0)
    assert big.select("~lru").to_array().tolist() == not_lru.tolist()
    assert big.select("=0").count() == int(np.count_nonzero(kpf.well_known(words) == 0))


def test_a_geometry_too_small_is_refused(saved, words):
    with pytest.raises(ValueError, match="more than"):
        PageFlagSet.from_kpageflags(saved, words.size - 1)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 32768, 32769])
def test_lengths_at_word_and_chunk_edges(tmp_path, n):
    w = pt.fixture_words(seed=n, n=n)
    got = PageFlagSet.from_kpageflags(write(tmp_path, w))
    np.testing.assert_array_equal(got.words(), w)
    assert got.summary(raw=True).tolist() == pt.summary(w, True)


def test_buffer_edges_in_a_file_of_several_buffers(tmp_path):
    n = procfs.BUFFER_CHUNKS * procfs.CHUNK_ENTRIES * 2 + 100
    w = np.full(n, 0x28, dtype=np.uint64)
    edge = procfs.BUFFER_CHUNKS * procfs.CHUNK_ENTRIES
    w[edge - 1:edge + 1] = 1 << 4  # a run across the buffer edge
    w[-1] = 1 << 63
    got = PageFlagSet.from_kpageflags(write(tmp_path, w))
    assert got["dirty"].to_array().tolist() == [edge - 1, edge]
    assert got["lru"].count() == n - 3 and got["mmap_exclusive"].to_array().tolist() == [n - 1]
    assert got["lru"].stats()["full"] >= 2 * procfs.BUFFER_CHUNKS - 2


def test_from_words_is_from_kpageflags(fs, words):
    assert PageFlagSet.from_words(words) == fs
    with pytest.raises(TypeError):
        PageFlagSet.from_words(words.astype(float))
    with pytest.raises(ValueError):
        PageFlagSet.from_words(np.array([-1]))
    with pytest.raises(ValueError):
        PageFlagSet.from_words(np.array([], dtype=np.uint64))


# --- bad files ------------------------------------------------------------------------

def test_length_not_a_multiple_of_8_is_a_format_error(tmp_path):
    path = tmp_path / "odd"
    path.write_bytes(bytes(8 * 10 + 3))
    with pytest.raises(FormatError, match="8-byte") as info:
        PageFlagSet.from_kpageflags(path)
    assert info.value.check == "size" and info.value.path == str(path)


def test_empty_file_is_a_format_error(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="no entries"):
        PageFlagSet.from_kpageflags(path)


def test_no_permission_says_root_is_needed(tmp_path, monkeypatch):
    path = write(tmp_path, [1, 2, 3])
    if os.geteuid() != 0:
        os.chmod(path, 0)
    else:  # root reads anything: refuse the open as the kernel would
        real_open = os.open

        def refuse(p, *args, **kwargs):
            if os.fsdecode(p) == path:
                raise PermissionError(errno.EACCES, "Permission denied", p)
            return real_open(p, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError, match="needs root") as info:
        PageFlagSet.from_kpageflags(path)
    assert info.value.filename == path


def test_a_fifo_is_refused_without_blocking(tmp_path):
    from conftest import finishes_within

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="FIFO"):
        finishes_within(10, lambda: PageFlagSet.from_kpageflags(fifo), str(fifo))


def test_a_file_that_shrinks_while_read_returns_nothing(tmp_path, monkeypatch):
    n = procfs.BUFFER_CHUNKS * procfs.CHUNK_ENTRIES + 500
    path = write(tmp_path, np.full(n, 0x28, dtype=np.uint64))
    real = os.preadv
    calls = []

    def shrinking(fd, buffers, offset):
        calls.append(offset)
        return 0 if offset else real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", shrinking)
    with pytest.raises(FormatError, match="changed while being read"):
        PageFlagSet.from_kpageflags(path)
    assert len(calls) == 2


def test_progress_bar_only_when_asked_or_on_a_terminal(saved, capsys):
    PageFlagSet.from_kpageflags(saved, progress=True)
    assert "kpageflags" in capsys.readouterr().err
    assert not sys.stderr.isatty()
    PageFlagSet.from_kpageflags(saved)
    assert capsys.readouterr().err == ""


@needs_live
def test_live_file_reads_whole():
    live = PageFlagSet.from_kpageflags()
    assert live.nentries % 32768 == 0  # the kernel rounds up to a section
    assert int(live.summary()["pages"].sum()) == live.nentries
    assert live.count("nopage") + live.count("buddy") + live.count("lru") > 0


# --- names ----------------------------------------------------------------------------

def test_names_iteration_and_lookup(fs):
    assert list(fs) == fs.names == [name for name, _ in fs.items()]
    assert fs["dirty"] is fs[KPF.DIRTY] is fs[4]
    assert len(fs.names) == 64  # the random stretch has every bit
    small = PageFlagSet.from_words(np.array([0x10, 0x30, 0]))
    assert small.names == ["dirty", "lru"]
    assert "dirty" in small and "hwpoison" not in small and 3.5 not in small
    assert small.count("hwpoison") == 0 and small.count(KPF.LRU) == 1
    with pytest.raises(KeyError, match="hwpoison"):
        small["hwpoison"]
    with pytest.raises(KeyError):
        fs.count("nosuchmap")
    with pytest.raises(TypeError):
        fs[True]
    with pytest.raises(ValueError):
        fs[64]
    assert "6,553,600" not in repr(fs) and f"{fs.nentries:,} entries" in repr(fs)


def test_add_checks_names_and_geometry(fs):
    other = PageFlagSet(fs.geometry, fs.nentries)
    hot = PageFlags.from_array([1, 2], fs.geometry)
    other.add("hot", hot)
    assert other.names == ["hot"] and other["hot"] is hot
    for bad in ["lr", "dirty", "Hot", "", "0x10", "compound", "bit3", "a b"]:
        with pytest.raises(ValueError):
            other.add(bad, hot)
    with pytest.raises(ValueError, match="geometries"):
        other.add("cold", PageFlags(1 << 20))
    with pytest.raises(TypeError):
        other.add("cold", hot.to_array())


# --- select ---------------------------------------------------------------------------

SELECT = ["dirty,lru", "dirty,~lru", "dirty,lru=dirty", "=dirty,lru", "anon,mmap",
          "compound", "compound_head", "thp", "huge,compound=huge", "=0", "0x10",
          "lru,~active,~referenced", "reserved", "owner_2", "anon_exclusive", "slub_frozen",
          "slub_debug", "active", "error", "readahead", "reclaim", "bit27", "arch_3",
          "=buddy", "nopage", "=mmap_exclusive,file,softdirty", "~lru"]


@pytest.mark.parametrize("raw", [False, True], ids=["default", "raw"])
@pytest.mark.parametrize("expr", SELECT)
def test_select_is_bit_mask_ok_on_every_page(fs, words, expr, raw):
    shown = [pt.kpageflags_flags(w, raw) for w in words.tolist()]
    # page-types has no names for bits 27 and 42: give its parser their numbers
    mask_bits = [pt.parse_bits_mask({"bit27": hex(1 << 27), "arch_3": hex(1 << 42)}
                                    .get(expr, expr))]
    expected = [i for i, f in enumerate(shown) if pt.bit_mask_ok(f, mask_bits)]
    got = fs.select(expr, raw=raw)
    got.validate()
    assert got.to_array().tolist() == expected
    assert got.count() == int(fs.summary(raw, bits=expr)["pages"].sum())


def test_several_expressions_are_anded(fs, words):
    a, b = fs.select("lru"), fs.select("anon,~swapbacked")
    assert fs.select("lru", "anon,~swapbacked") == (a & b)
    with pytest.raises(ValueError):
        fs.select()
    with pytest.raises(ValueError):
        fs.select("nosuchflag")


def test_select_does_not_change_the_set(fs, words):
    before = {name: flags.copy() for name, flags in fs.items()}
    for expr in SELECT:
        fs.select(expr).set(0)
        fs.select(expr, raw=True).clear(1)
    assert all(fs[name] == flags for name, flags in before.items())


def test_select_names_other_maps(fs, words):
    extra = PageFlagSet.from_words(words)
    many = PageFlags.from_ranges([1000], [60_000], extra.geometry)
    extra.add("mapped_many", many)
    assert extra.select("lru,~mapped_many") == extra.select("lru") - many
    assert extra.select("mapped_many") == many
    assert extra.select("=lru,mapped_many") == extra.select("=lru") & many


# --- summaries -----------------------------------------------------------------------

@pytest.mark.parametrize("raw", [False, True], ids=["default", "raw"])
def test_summary_is_page_types_summary(fs, words, raw):
    rows = fs.summary(raw)
    assert rows.dtype == flagset_module.SUMMARY_DTYPE
    assert rows.tolist() == pt.summary(words, raw)
    assert int(rows["pages"].sum()) == words.size


@pytest.mark.parametrize("raw", [False, True], ids=["default", "raw"])
def test_summary_recomputed_from_the_maps_agrees(fs, words, raw):
    rebuilt = PageFlagSet(fs.geometry, fs.nentries)
    rebuilt._maps = dict(fs._maps)  # the same maps, no histogram from a read
    assert rebuilt.summary(raw).tolist() == pt.summary(words, raw)


def test_summary_with_bits_filters_rows(fs, words):
    for exprs in (["lru"], ["dirty,~lru"], ["lru", "anon"]):
        filters = [pt.parse_bits_mask(e) for e in exprs]
        assert fs.summary(bits=exprs).tolist() == pt.summary(words, False, filters)
    assert fs.summary(bits="lru").tolist() == fs.summary(bits=["lru"]).tolist()


def test_summary_within_a_map(fs, words):
    within = PageFlags.from_ranges([0, 32760, 90_000], [100, 40_000, words.size],
                                   fs.geometry)
    pick = within.to_array()
    assert fs.summary(True, within=within).tolist() == pt.summary(words[pick], True)
    assert fs.summary(within=PageFlags(fs.geometry)).size == 0
    with pytest.raises(ValueError):
        fs.summary(within=PageFlags(1 << 20))


def test_format_summary_is_show_summary(fs, words):
    text = fs.format_summary(raw=True)
    lines = text.splitlines()
    assert lines[0] == ("             flags\tpage-count       MB  symbolic-flags\t\t\t"
                        "long-symbolic-flags")
    for line, (flags, pages) in zip(lines[1:-1], pt.summary(words, True), strict=True):
        assert line.startswith(f"0x{flags:016x}\t{pages:10d} {pages * 4096 >> 20:8d}  "
                               f"{pt.page_flag_name(flags)}\t")
    assert lines[-1] == f"             total\t{words.size:10d} {words.size * 4096 >> 20:8d}"
    assert format_rows(fs.summary()[:0]).splitlines()[-1].split() == ["total", "0", "0"]


def test_summary_by_node(fs, words):
    n = words.size
    mm = MemoryMap([[0, 30_000], [32768, 65536], [70_000, n + 5000]], nodes=[0, 1, 0],
                   geometry=Geometry.from_npages(n + 5000))
    rows = fs.summary_by_node(mm, raw=True)
    assert rows.dtype.names == ("node", "flags", "pages")
    node = np.full(n, -1)
    node[:30_000] = 0
    node[32768:65536] = 1
    node[70_000:] = 0
    expected = []
    for k in (-1, 0, 1):
        expected += [(k, f, p) for f, p in pt.summary(words[node == k], True)]
    assert rows.tolist() == expected
    assert fs.summary_by_node(mm, bits="lru")["pages"].sum() == fs.select("lru").count()
    with pytest.raises(TypeError):
        fs.summary_by_node("sysfs")


def test_summary_by_block(fs, words, tmp_path):
    (tmp_path / "block_size_bytes").write_text("4000000\n")  # 64 MiB: 16384 pages
    rows = fs.summary_by_block(root=tmp_path)
    assert rows.dtype.names == ("block", "flags", "pages")
    expected = []
    for k in range(-(-words.size // 16384)):
        expected += [(k, f, p) for f, p in pt.summary(words[k * 16384:(k + 1) * 16384],
                                                      False)]
    assert rows.tolist() == expected
    assert fs.summary_by_block(1 << 27).tolist()[0][0] == 0
    with pytest.raises(ValueError):
        fs.summary_by_block(1000)


def test_a_set_without_words_has_no_summary():
    with pytest.raises(ValueError, match="flag words"):
        PageFlagSet(1 << 20).summary()


@needs_live
def test_live_summary_by_node_covers_every_entry():
    live = PageFlagSet.from_kpageflags()
    rows = live.summary_by_node()
    assert int(rows["pages"].sum()) == live.nentries
    assert set(rows["node"].tolist()) <= {-1, *range(1024)}


# --- diff -----------------------------------------------------------------------------

def test_diff_is_gained_and_lost_per_flag(words):
    before = PageFlagSet.from_words(words)
    later = words.copy()
    rng = np.random.default_rng(3)
    changed = rng.choice(words.size, 5000, replace=False)
    later[changed] = rng.choice(np.array(pt.PALETTE, dtype=np.uint64), changed.size)
    later[:64] = 1 << 19  # hwpoison appears
    after = PageFlagSet.from_words(later)
    diff = before.diff(after)
    names = set(before.names) | set(after.names)
    assert set(diff) == names and "hwpoison" in diff
    for name, (gained, lost) in diff.items():
        b = kpf.bit_of(name)
        was, now = pt.bit_pfns(words, b), pt.bit_pfns(later, b)
        assert gained.to_array().tolist() == np.setdiff1d(now, was).tolist()
        assert lost.to_array().tolist() == np.setdiff1d(was, now).tolist()
    with pytest.raises(ValueError):
        before.diff(PageFlagSet.from_words(words[:100]))
    with pytest.raises(TypeError):
        before.diff(words)


# --- save and load ---------------------------------------------------------------------

def test_save_and_load_round_trip(fs, words, tmp_path):
    extra = PageFlagSet.from_words(words)
    extra.add("hot", PageFlags.from_array([5, 99_000], extra.geometry))
    extra.info = {"source": "test", "pid": "7"}
    extra.save(tmp_path / "snap")
    back = PageFlagSet.load(tmp_path / "snap")
    assert back == extra and back.names == extra.names and back.info == extra.info
    assert back.summary(True).tolist() == pt.summary(words, True)
    files = sorted(os.listdir(tmp_path / "snap"))
    assert MANIFEST in files and len(files) == len(extra.names) + 1


def test_a_new_save_replaces_the_old_generation(fs, tmp_path):
    folder = tmp_path / "snap"
    fs.save(folder, sync=False)
    first = set(os.listdir(folder))
    fs.save(folder, sync=False)
    second = set(os.listdir(folder))
    assert len(first) == len(second) and not (first & second) - {MANIFEST}
    assert PageFlagSet.load(folder) == fs


def test_a_crash_before_the_manifest_leaves_the_old_save(fs, words, tmp_path, monkeypatch):
    folder = tmp_path / "snap"
    old = PageFlagSet.from_words(words[:50_000])
    old.save(folder)
    new = PageFlagSet.from_words(np.zeros(50_000, dtype=np.uint64) + 0x10)
    real_replace = os.replace

    def crash(src, dst):
        if os.fspath(dst).endswith(MANIFEST):
            raise OSError(errno.EIO, "simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        new.save(folder)
    monkeypatch.undo()
    assert PageFlagSet.load(folder) == old
    assert not [n for n in os.listdir(folder) if n.endswith(".tmp")]
    new.save(folder)
    assert PageFlagSet.load(folder) == new


def test_save_refuses_info_that_is_not_json_before_writing(words, tmp_path):
    bad = PageFlagSet.from_words(words[:1000])
    bad.info = {"when": object()}
    with pytest.raises(TypeError):
        bad.save(tmp_path / "snap")
    assert os.listdir(tmp_path / "snap") == []


def test_save_refuses_folders_that_hold_something_else(fs, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        fs.save(tmp_path / "other")
    assert os.listdir(tmp_path / "other") == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        fs.save(tmp_path / "file")


def _saved_set(tmp_path, words) -> tuple:
    folder = tmp_path / "snap"
    PageFlagSet.from_words(words[:40_000]).save(folder, sync=False)
    body = json.loads((folder / MANIFEST).read_text())
    return folder, body


def _rewrite(folder, body, checksum=True):
    if checksum:
        body["checksum"] = flagset_module._checksum(body)
    (folder / MANIFEST).write_text(json.dumps(body))


def test_load_refuses_a_damaged_manifest(tmp_path, words):
    folder, _ = _saved_set(tmp_path, words)
    raw = (folder / MANIFEST).read_bytes()
    at = raw.index(b'"count": ') + 9
    (folder / MANIFEST).write_bytes(raw[:at] + b"9" + raw[at:])
    with pytest.raises(FormatError, match="checksum"):
        PageFlagSet.load(folder)
    (folder / MANIFEST).write_bytes(raw[:len(raw) // 2])
    with pytest.raises(FormatError, match="not JSON"):
        PageFlagSet.load(folder)
    os.unlink(folder / MANIFEST)
    with pytest.raises(FormatError, match="no manifest"):
        PageFlagSet.load(folder)


@pytest.mark.parametrize("change", [
    lambda b: b.update(version=2),
    lambda b: b.update(nentries=-1),
    lambda b: b.update(nentries=1 << 40),
    lambda b: b["geometry"].update(page_shift=99),
    lambda b: b["maps"][0].update(file="../escape.pgf"),
    lambda b: b["maps"][0].update(name="Bad Name"),
    lambda b: b["maps"][1].update(name=b["maps"][0]["name"]),
    lambda b: b["maps"][0].update(count=b["maps"][0]["count"] + 1),
    lambda b: b["maps"][0].update(extra=1),
    lambda b: b.update(maps={}),
    lambda b: b.pop("info"),
], ids=["version", "negative-entries", "entries-past-space", "geometry", "file-name",
        "map-name", "twice", "count", "entry-keys", "maps-type", "keys"])
def test_load_refuses_manifests_that_lie(tmp_path, words, change):
    folder, body = _saved_set(tmp_path, words)
    change(body)
    _rewrite(folder, body)
    with pytest.raises(FormatError):
        PageFlagSet.load(folder)


def test_load_refuses_missing_or_damaged_map_files(tmp_path, words):
    folder, body = _saved_set(tmp_path, words)
    target = folder / body["maps"][0]["file"]
    data = bytearray(target.read_bytes())
    data[100] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="checksum"):
        PageFlagSet.load(folder)
    os.unlink(target)
    with pytest.raises(FormatError, match="missing"):
        PageFlagSet.load(folder)


def test_load_refuses_flags_past_the_entries(tmp_path, words):
    folder, body = _saved_set(tmp_path, words)
    body["nentries"] = 100
    _rewrite(folder, body)
    with pytest.raises(FormatError, match="past the"):
        PageFlagSet.load(folder)


def test_load_refuses_a_map_of_another_geometry(tmp_path, words):
    folder, body = _saved_set(tmp_path, words)
    PageFlags.from_array([1], 1 << 20).save(folder / body["maps"][0]["file"])
    body["maps"][0]["count"] = 1
    _rewrite(folder, body)
    with pytest.raises(FormatError, match="geometry"):
        PageFlagSet.load(folder)
