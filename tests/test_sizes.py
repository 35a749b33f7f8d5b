"""Memory sizes as people write them: binary units accepted, decimal ones refused."""

from __future__ import annotations

import numpy as np
import pytest

from pageflags._sizes import format_size, parse_size


@pytest.mark.parametrize(("text", "expected"), [
    ("2 TiB", 2 << 40), ("2TiB", 2 << 40), ("2 tib", 2 << 40), ("512 MiB", 512 << 20),
    ("1.5 GiB", 3 << 29), ("4 KiB", 4096), ("1 PiB", 1 << 50), ("2G", 2 << 30),
    ("7 B", 7), ("12", 12), (4096, 4096), (np.int64(8), 8), (" 3 T ", 3 << 40),
])
def test_parse_size_accepts_binary_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["2 TB", "2 GB", "1 tebibyte", "2 XiB", "", "TiB",
                                  "-1 GiB", "1.0000001 KiB", "2 Ti B", "0x10 MiB"])
def test_parse_size_rejects_others(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


@pytest.mark.parametrize("bad", [2.0, True, None, [1], np.timedelta64(4096), np.bool_(True)])
def test_parse_size_rejects_non_sizes(bad):
    with pytest.raises(TypeError):
        parse_size(bad)


def test_format_size_round_trips():
    for n in (1, 1000, 4096, 3 << 29, 2 << 40, 5 << 50):
        assert parse_size(format_size(n)) == n
