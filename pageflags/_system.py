"""What this machine has: the memory it could give us now, and checks against it.

Maps that allocate up front (pinned sections, a loaded file, a hotplug trace, a
sharded map gathered locally) ask first, so a request the machine cannot hold fails
before it changes anything, not halfway through.  Tests replace
:func:`available_bytes` to play a smaller machine.
"""

from __future__ import annotations

import os

from ._sizes import format_size

__all__ = ["available_bytes", "ensure_fits"]


def available_bytes() -> int | None:
    """Memory the kernel could give us now (``MemAvailable``), or None if unknown.

    Examples
    --------
    >>> free = available_bytes(); free is None or free > 0
    True
    """
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # free pages only: an underestimate, but better than no guard
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def ensure_fits(nbytes: int, what: str) -> None:
    """``MemoryError`` naming ``what`` when ``nbytes`` exceed the memory available.

    Pinned chunks are allocated one by one; checking first means a request this
    machine cannot hold fails before it changes anything, not halfway through.

    Examples
    --------
    >>> ensure_fits(4096, "a chunk")
    >>> ensure_fits(1 << 80, "this")                      # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    MemoryError: this takes 1073741824 PiB, more than the ... available
    """
    free = available_bytes()
    if free is not None and nbytes > free:
        raise MemoryError(f"{what} takes {format_size(nbytes)}, more than the "
                          f"{format_size(free)} available")
