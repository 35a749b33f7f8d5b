import numpy as np
import pytest

from pageflags import Geometry, capacity
from pageflags.geometry import as_geometry


def test_default_geometry_is_x86_64_4_level():
    g = Geometry()
    assert (g.phys_addr_bits, g.page_shift, g.chunk_shift) == (46, 12, 15)
    assert g.npages == 1 << 34
    assert g.nchunks == 1 << 19
    assert g.pages_per_chunk == 32768
    assert g.words_per_chunk == 512
    assert g.chunk_bytes == 4096
    assert g.page_size == 4096
    assert g.flat_bytes == 2 << 30
    assert g.memory_bytes == 1 << 46
    # One chunk is one 128 MiB sparsemem section.
    assert g.pages_per_chunk * g.page_size == 128 << 20


def test_seed_capacity_sum_is_two_tebibytes():
    assert capacity(512, 128 * 1024, 4096) == 2 * 1024**4
    assert capacity(0, 4096, 4096) == 0
    with pytest.raises(ValueError):
        capacity(-1, 4096, 4096)
    with pytest.raises(TypeError):
        capacity(1.5, 4096, 4096)
    for bad in (True, np.timedelta64(512)):
        with pytest.raises(TypeError, match="top_entries must be an integer"):
            capacity(bad, 4096, 4096)


def test_five_level_paging_space():
    g = Geometry(52)
    assert g.npages == 1 << 40 and g.nchunks == 1 << 25


@pytest.mark.parametrize("npages, nchunks, last", [
    (1, 1, 1), (32768, 1, 32768), (32769, 2, 1), (100_000, 4, 100_000 - 3 * 32768)])
def test_from_npages_leaves_a_partial_last_chunk(npages, nchunks, last):
    g = Geometry.from_npages(npages)
    assert g.npages == npages and g.nchunks == nchunks and g.last_chunk_pages == last
    assert g.nwords == -(-npages // 64)
    assert (1 << (g.phys_addr_bits - g.page_shift)) >= npages


def test_conversions():
    g = Geometry()
    assert g.addr_to_pfn(0x1_0000_0fff) == 0x100000
    assert g.pfn_to_addr(0x100000) == 0x1_0000_0000
    assert g.pfn_to_chunk(32767) == 0 and g.pfn_to_chunk(32768) == 1
    assert g.pfn_to_chunk(g.npages - 1) == g.nchunks - 1
    assert g.chunk_to_pfn(3) == 3 * 32768
    assert g.addr_to_pfn(np.int64(8192)) == 2


@pytest.mark.parametrize("call", [
    lambda g: g.addr_to_pfn(-1), lambda g: g.addr_to_pfn(1 << 46),
    lambda g: g.pfn_to_addr(1 << 34), lambda g: g.pfn_to_chunk(-1),
    lambda g: g.chunk_to_pfn(1 << 19)])
def test_conversions_reject_out_of_range(call):
    with pytest.raises(IndexError):
        call(Geometry())


@pytest.mark.parametrize("kwargs", [
    {"page_shift": -1}, {"page_shift": 41}, {"chunk_shift": 5}, {"chunk_shift": 31},
    {"phys_addr_bits": 12}, {"phys_addr_bits": 65}, {"phys_addr_bits": 64, "page_shift": 3},
    {"npages": 0}, {"npages": (1 << 34) + 1}])
def test_invalid_geometry_raises_value_error(kwargs):
    with pytest.raises(ValueError):
        Geometry(**kwargs)


@pytest.mark.parametrize("kwargs", [{"page_shift": 12.0}, {"phys_addr_bits": True},
                                    {"npages": "10"}, {"npages": np.timedelta64(10)},
                                    {"chunk_shift": np.bool_(True)}])
def test_geometry_rejects_non_integers(kwargs):
    with pytest.raises(TypeError):
        Geometry(**kwargs)


def test_geometry_is_a_value():
    assert Geometry() == Geometry(46, 12, 15, 1 << 34)
    assert Geometry() != Geometry(52)
    assert hash(Geometry.from_npages(10)) == hash(Geometry.from_npages(10))
    assert Geometry(np.int64(40)).phys_addr_bits == 40


@pytest.mark.parametrize("npages, page_shift, limit", [
    (2**61, 12, 52), (2**53, 12, 52), (2**61, 0, 60), (2**100, 12, 52)])
def test_from_npages_past_the_limit_talks_about_npages(npages, page_shift, limit):
    with pytest.raises(ValueError, match=rf"npages must be <= 2\*\*{limit} with page_shift "
                                         rf"{page_shift}.*got {npages}"):
        Geometry.from_npages(npages, page_shift=page_shift)
    assert Geometry.from_npages(2**limit, page_shift=page_shift).npages == 2**limit


@pytest.mark.parametrize("kwargs, name", [({"page_shift": 12.0}, "page_shift"),
                                          ({"chunk_shift": "15"}, "chunk_shift"),
                                          ({"page_shift": 41}, "page_shift")])
def test_from_npages_names_the_bad_shift(kwargs, name):
    with pytest.raises((TypeError, ValueError), match=f"^{name} must be"):
        Geometry.from_npages(100, **kwargs)


def test_conversions_refuse_timedelta_and_bool():
    g = Geometry(40)
    for call in (g.pfn_to_addr, g.pfn_to_chunk, g.chunk_to_pfn, g.addr_to_pfn):
        for bad in (np.timedelta64(1), True):
            with pytest.raises(TypeError):
                call(bad)


def test_as_geometry():
    g = Geometry(40)
    assert as_geometry(g) is g
    assert as_geometry(1000).npages == 1000
    with pytest.raises(TypeError):
        as_geometry(1000.0)
    with pytest.raises(TypeError):
        as_geometry(np.timedelta64(1000))
    with pytest.raises(ValueError):
        as_geometry(0)


def test_describe_lists_derived_sizes():
    d = Geometry().describe()
    assert d["nchunks"] == 1 << 19 and d["flat_bytes"] == 2 << 30
