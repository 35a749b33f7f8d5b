"""pageflags.kpf: the KPF bits, page-types' letters, modes and -b filters, against a
line-by-line transliteration of page-types' C (tests/_pagetypes.py)."""

from __future__ import annotations

import _pagetypes as pt
import numpy as np
import pytest

from pageflags import KPF, kpf

# The bits-spec lines of page-types' help text, with bit1 = dirty and bit2 = lru.
HELP_EXAMPLES = {
    "dirty,lru": lambda f: f & 0x30 != 0,            # (flags & (bit1|bit2)) != 0
    "dirty,lru=dirty": lambda f: f & 0x30 == 0x10,   # (flags & (bit1|bit2)) == bit1
    "dirty,~lru": lambda f: f & 0x30 == 0x10,        # (flags & (bit1|bit2)) == bit1
    "=dirty,lru": lambda f: f == 0x30,               # flags == (bit1|bit2)
}


def test_kpf_numbers_are_the_kernels():
    assert (KPF.DIRTY, KPF.THP, KPF.RESERVED) == (4, 22, 32)
    kernel = ["LOCKED", "ERROR", "REFERENCED", "UPTODATE", "DIRTY", "LRU", "ACTIVE", "SLAB",
              "WRITEBACK", "RECLAIM", "BUDDY", "MMAP", "ANON", "SWAPCACHE", "SWAPBACKED",
              "COMPOUND_HEAD", "COMPOUND_TAIL", "HUGE", "UNEVICTABLE", "HWPOISON", "NOPAGE",
              "KSM", "THP", "OFFLINE", "ZERO_PAGE", "IDLE", "PGTABLE"]
    assert [KPF[name] for name in kernel] == list(range(27))
    hackers = ["RESERVED", "MLOCKED", "OWNER_2", "PRIVATE", "PRIVATE_2", "OWNER_PRIVATE",
               "ARCH", "UNCACHED", "SOFTDIRTY", "ARCH_2", "ARCH_3"]
    assert [KPF[name] for name in hackers] == list(range(32, 43))
    assert (KPF.ANON_EXCLUSIVE, KPF.READAHEAD, KPF.SLOB_FREE, KPF.SLUB_FROZEN,
            KPF.SLUB_DEBUG, KPF.FILE, KPF.SWAP, KPF.MMAP_EXCLUSIVE) == (
        47, 48, 49, 50, 51, 61, 62, 63)
    assert KPF.BALLOON is KPF.OFFLINE and KPF.MAPPEDTODISK is KPF.OWNER_2


def test_bit_names_round_trip():
    for bit in range(64):
        name = kpf.bit_name(bit)
        assert name == name.lower() and kpf.bit_of(name) == bit
    assert kpf.bit_name(23) == "offline" and kpf.bit_of("balloon") == 23
    assert kpf.bit_name(27) == "bit27" and kpf.bit_of("bit64") is None
    assert kpf.bit_of("DIRTY") is None and kpf.bit_of("bit07") is None
    with pytest.raises(ValueError):
        kpf.bit_name(64)


def test_letters_and_long_names_match_page_types():
    rng = np.random.default_rng(1)
    named = sum(1 << b for b in pt.NAMES)
    words = [0, named, *[int(w) & named for w in rng.integers(0, 2**63, 200)]]
    for w in words:
        assert kpf.letters(w) == pt.page_flag_name(w)
        expected = ",".join(pt.NAMES[i][2:] for i in range(64) if i in pt.NAMES and w >> i & 1)
        assert kpf.long_names(w) == expected
    assert len(kpf.letters(0)) == 43
    assert kpf.letters(named) == "LERUDlASWIBMasbHTGuXnxtozigrmdPpOhfHdIAEFw1"


def test_long_names_show_bits_page_types_has_no_name_for():
    assert kpf.long_names(1 << 39 | 1 << 42 | 1 << 27 | 1 << 4) == "dirty,bit27,uncached,arch_3"
    assert kpf.letters(1 << 27) == kpf.letters(0)  # no position


@pytest.mark.parametrize("raw", [False, True])
def test_modes_match_the_c(raw):
    rng = np.random.default_rng(2)
    words = np.concatenate([np.array(pt.PALETTE, dtype=np.uint64),
                            rng.integers(0, 2**63, 2000).astype(np.uint64) << np.uint64(1),
                            np.array([pt.ALL, 0], dtype=np.uint64)])
    got = kpf.transform(words, raw)
    assert got.dtype == np.uint64
    assert got.tolist() == [pt.kpageflags_flags(w, raw) for w in words.tolist()]


def test_modes_take_int_lists_and_refuse_negatives():
    assert kpf.well_known([1 << 32 | 1]).tolist() == [1]
    with pytest.raises(TypeError):
        kpf.well_known([-1])
    with pytest.raises(TypeError):
        kpf.expand_overloaded([1.5])


EXPRESSIONS = [
    "dirty,lru", "dirty,lru=dirty", "dirty,~lru", "=dirty,lru", "anon,mmap", "anon",
    "a", "an", "compound", "c", "compound_h", "compound_tail", "0x10", "16", "020",
    "0x10,anon", "=0", "thp,~compound_head", "=buddy", "lru,~active,~referenced",
    "huge,compound=huge", "reserved,mlocked", "owner", "i", "idle", "zero", "arch",
    "arch_2", "s", "sw", "swapb", "d", "f", "file", "1", "mmap_exclusive",
    "slub", "readahead,reclaim", "=anonymous,lru,uptodate,swapbacked,mmap",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_parse_bits_matches_parse_bits_mask(expr):
    mask, bits = pt.parse_bits_mask(expr)
    f = kpf.parse_bits(expr)
    assert f.mask_word == mask
    if bits == pt.ALL:
        assert f.bits is None
    else:
        assert sum(1 << b for b in f.bits) == bits


@pytest.mark.parametrize("raw", [False, True])
def test_match_is_bit_mask_ok(raw):
    words = kpf.transform(pt.fixture_words(n=40_000), raw)
    distinct = np.unique(words)
    for expr in EXPRESSIONS:
        f = kpf.parse_bits(expr)
        expected = [pt.bit_mask_ok(w, [pt.parse_bits_mask(expr)]) for w in distinct.tolist()]
        assert kpf.match(distinct, [f]).tolist() == expected, expr
    both = [kpf.parse_bits("lru"), kpf.parse_bits("anon,~swapbacked")]
    expected = [pt.bit_mask_ok(w, [pt.parse_bits_mask("lru"),
                                   pt.parse_bits_mask("anon,~swapbacked")])
                for w in distinct.tolist()]
    assert kpf.match(distinct, both).tolist() == expected


@pytest.mark.parametrize("expr", sorted(HELP_EXAMPLES))
def test_help_text_examples(expr):
    words = np.arange(0, 0x80, dtype=np.uint64)
    expected = [HELP_EXAMPLES[expr](int(w)) for w in words]
    assert kpf.match(words, [kpf.parse_bits(expr)]).tolist() == expected


def test_anon_mmap_means_either():
    words = np.array([1 << 12, 1 << 11, 1 << 12 | 1 << 11, 0], dtype=np.uint64)
    assert kpf.match(words, [kpf.parse_bits("anon,mmap")]).tolist() == [True, True, True,
                                                                          False]
    assert kpf.match(words, [kpf.parse_bits("anon"), kpf.parse_bits("mmap")]).tolist() == [
        False, False, True, False]


def test_names_the_kernel_has_and_page_types_does_not():
    assert kpf.parse_bits("uncached").mask_word == 1 << 39
    assert kpf.parse_bits("arch_3").mask_word == 1 << 42
    assert kpf.parse_bits("bit27").mask_word == 1 << 27
    assert kpf.parse_bits("balloon").mask_word == 1 << 23


def test_other_maps_can_be_named():
    f = kpf.parse_bits("lru,~mapped_many", extra=["mapped_many"])
    assert f.mask == {5, "mapped_many"} and f.bits == {5}
    exact = kpf.parse_bits("=lru,mapped_many", extra=["mapped_many"])
    assert "mapped_many" in exact.mask and exact.bits == {5, "mapped_many"}
    with pytest.raises(ValueError, match="other than flag bits"):
        kpf.match(np.zeros(1, dtype=np.uint64), [f])


@pytest.mark.parametrize("bad", ["", ",", "dirty,", "nosuchflag", "~", "0x", "12abc",
                                 "-1", "dirty=,", "F", "0x1" + "0" * 16])
def test_bad_expressions_are_refused(bad):
    with pytest.raises(ValueError):
        kpf.parse_bits(bad)


def test_expression_must_be_a_string():
    with pytest.raises(TypeError):
        kpf.parse_bits(16)  # type: ignore[arg-type]
