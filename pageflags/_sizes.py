"""Memory sizes written the way people write them: ``"2 TiB"``, ``"512MiB"``, ``4096``.

Only binary units are accepted.  ``"2 TB"`` is rejected rather than guessed at: the
kernel and its users mean 2^40 by it, disk vendors mean 10^12, and a silent factor
of 1.1 in a machine's size is worse than an error.
"""

from __future__ import annotations

import re
from fractions import Fraction

from ._args import check_at_least, is_integer

__all__ = ["format_size", "human_size", "parse_size"]

_UNITS = {"": 0, "b": 0, "k": 10, "kib": 10, "m": 20, "mib": 20, "g": 30, "gib": 30,
          "t": 40, "tib": 40, "p": 50, "pib": 50}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


def parse_size(size: str | int) -> int:
    """Bytes in ``size``: an int, or a number and a binary unit.

    Units are ``B``, ``KiB``, ``MiB``, ``GiB``, ``TiB``, ``PiB`` (any case) and the
    kernel's one-letter ``K``, ``M``, ``G``, ``T``, ``P`` (as in ``mem=2G``).  A
    fraction must come out as a whole number of bytes.

    Raises
    ------
    ValueError
        For other units (``"2 TB"``, ``"2 tebibytes"``), negative or fractional
        byte counts and malformed text.
    TypeError
        For anything that is not a str or an integer.

    Examples
    --------
    >>> parse_size("2 TiB") == 2 << 40, parse_size("1.5G"), parse_size(4096)
    (True, 1610612736, 4096)
    >>> parse_size("2 TB")
    Traceback (most recent call last):
    ...
    ValueError: size '2 TB': unknown unit 'TB' (use B, KiB, MiB, GiB, TiB or PiB)
    """
    if not isinstance(size, str):
        if not is_integer(size):
            raise TypeError(f"size must be a str or an integer, got {type(size).__name__}")
        return check_at_least("size", size, 0)
    match = _SIZE.fullmatch(size)
    if match is None:
        raise ValueError(f"size {size!r}: expected a number and a unit such as '2 TiB'")
    number, unit = match.groups()
    shift = _UNITS.get(unit.lower())
    if shift is None:
        raise ValueError(f"size {size!r}: unknown unit {unit!r} "
                         "(use B, KiB, MiB, GiB, TiB or PiB)")
    value = Fraction(number) * (1 << shift)
    if value.denominator != 1:
        raise ValueError(f"size {size!r} is not a whole number of bytes")
    return int(value)


def format_size(nbytes: int) -> str:
    """``nbytes`` in the largest binary unit that keeps it a whole number.

    Examples
    --------
    >>> format_size(2 << 40), format_size(3 << 29), format_size(1000)
    ('2 TiB', '1536 MiB', '1000 B')
    """
    for name, shift in (("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift} {name}"
    return f"{nbytes} B"


def human_size(nbytes: int) -> str:
    """``nbytes`` rounded to four digits in the largest binary unit that keeps it >= 1.

    Examples
    --------
    >>> human_size(2 << 40), human_size(1536), human_size(77_000_000), human_size(10)
    ('2 TiB', '1.5 KiB', '73.43 MiB', '10 B')
    """
    for name, shift in (("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.4g} {name}"
    return f"{nbytes} B"
