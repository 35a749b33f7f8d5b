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

from .base import PageMap
from .bitmap import PageFlags
from .errors import FormatError
from .flagset import PageFlagSet
from .flat import FlatPageFlags
from .geometry import Geometry, capacity
from .hotplug import Hotplug
from .interface import PageMapLike
from .kpf import KPF
from .memmap import MemoryMap
from .preallocated import PreallocatedPageFlags
from .sharded import ShardedPageFlags  # imports Dask only when a map is made

__version__ = "0.1.0"

__all__ = ["KPF", "FlatPageFlags", "FormatError", "Geometry", "Hotplug", "MemoryMap",
           "PageFlagSet", "PageFlags", "PageMap", "PageMapLike", "PreallocatedPageFlags",
           "ShardedPageFlags", "capacity", "__version__"]
