"""pageflags: two-level page-flag bitmaps over huge physical address spaces.

A NumPy object array of lazily allocated ``uint64`` chunks (``None`` = all zero,
a shared ``FULL`` chunk = all ones) with Numba kernels for bulk set/test/count over
page ranges and pfn arrays, searches, iteration and algebra (:class:`PageFlags`);
a flat twin to compare with (:class:`FlatPageFlags`); machines read from
``/proc/iomem``, sysfs or made up (:class:`MemoryMap`); memory hotplug with a
``pfn_valid()`` map (:class:`Hotplug`); crash-safe files and Roaring interchange
(``PageFlags.save``/``load``, :class:`FormatError`); maps sharded over Dask workers
(:class:`ShardedPageFlags`, with the ``distributed`` extra), all of which satisfy one
declared interface (:class:`PageMapLike`); a live machine's page flags from
``/proc/kpageflags`` as one map per flag, with page-types' summaries, bit filters,
snapshots and diffs (:class:`PageFlagSet`, :class:`KPF`); and the ``pageflags``
command.

>>> import pageflags
>>> flags = pageflags.PageFlags()          # a 46-bit space: 2**34 pages of 4 KiB
>>> flags.set_range(1 << 20, 1 << 21); flags.count()
1048576
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import PageMap
from .bitmap import PageFlags
from .errors import FormatError
from .flat import FlatPageFlags
from .geometry import Geometry, capacity
from .interface import PageMapLike
from .preallocated import PreallocatedPageFlags

if TYPE_CHECKING:
    from .flagset import PageFlagSet
    from .hotplug import Hotplug
    from .kpf import KPF
    from .memmap import MemoryMap
    from .sharded import ShardedPageFlags

#: Public names whose modules load on first use (PEP 562), so a script that maps
#: pages does not import machines, hotplug, live page flags or sharding (a third of
#: ``import pageflags``).
_LAZY = {"Hotplug": "hotplug", "KPF": "kpf", "MemoryMap": "memmap",
         "PageFlagSet": "flagset", "ShardedPageFlags": "sharded"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = ["KPF", "FlatPageFlags", "FormatError", "Geometry", "Hotplug", "MemoryMap",
           "PageFlagSet", "PageFlags", "PageMap", "PageMapLike", "PreallocatedPageFlags",
           "ShardedPageFlags", "capacity", "__version__"]
