"""Human sizes: ``"2 TiB"`` to bytes and back (binary units, as the kernel prints them)."""

from __future__ import annotations

import re

import numpy as np

_UNITS = {"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40, "PiB": 50, "EiB": 60}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


def parse_size(text: str | int) -> int:
    """Bytes in ``text`` such as ``"2TiB"``, ``"256 GiB"`` or ``"1.5 TiB"``.

    Only binary units are accepted (``KiB`` ... ``EiB``, ``B`` or none); decimal or
    ambiguous ones (``GB``, ``G``) raise ``ValueError``, as does a size that is not a
    whole number of bytes.

    Examples
    --------
    >>> parse_size("2 TiB") == 2 << 40, parse_size("512MiB") == 512 << 20
    (True, True)
    """
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"size must be >= 0, got {text}")
        return int(text)
    if not isinstance(text, str):
        raise TypeError(f"size must be a string or an int, got {type(text).__name__}")
    match = _SIZE.fullmatch(text)
    if match is None or match.group(2) not in _UNITS:
        raise ValueError(f"bad size {text!r}: use a number and one of "
                         f"{', '.join(u for u in _UNITS if u)} (e.g. '2TiB')")
    number, unit = match.groups()
    whole, _, frac = number.partition(".")
    scaled = (int(whole + frac) << _UNITS[unit])
    value, rest = divmod(scaled, 10 ** len(frac))
    if rest:
        raise ValueError(f"bad size {text!r}: not a whole number of bytes")
    return value


def format_size(nbytes: int) -> str:
    """``nbytes`` in the largest binary unit that keeps a value >= 1.

    Examples
    --------
    >>> format_size(2 << 40), format_size(1536), format_size(10)
    ('2 TiB', '1.5 KiB', '10 B')
    """
    for unit, shift in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if unit and nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.4g} {unit}"
    return f"{nbytes} B"
