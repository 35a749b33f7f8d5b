"""Numba kernels over plain arrays: the bulk work of every map, by job.

Kernels take NumPy arrays and ints only; they never allocate chunks and never see
the object-array table.  A PageFlags map reaches its chunks through ``addrs``, a
``uint64`` array with one entry per chunk: 0 for a ``None`` (all-zero) entry, the
data address of the shared all-ones chunk for ``FULL``, and otherwise the data
address of the chunk's own ``uint64`` words (``docs/design.md``).

========== ==================================================================
module     job
========== ==================================================================
intrinsics the lazy ``jit`` factory, LLVM intrinsics (word loads and stores,
           popcount, bit scans, prefetch), constants
spans      one span of words: ranges, scans and pfn arrays of a flat bitmap,
           and the per-chunk work of the two-level kernels
table      a PageFlags table's ranges and pfn arrays, counts, equality
scans      next/previous bit, collection, select and runs over a table
algebra    and, or, xor, andnot of flat maps and tables
windows    packed-word windows read from and written into a table
memory     chunk memory at raw addresses: filled, copied, gathered, read
checksum   XXH64 over scattered word segments (saved files)
roaring    Roaring's 64-bit portable serialization, written and read
flagwords  live page flags: flag words to per-flag maps and back, counts
========== ==================================================================

Callers use the names re-exported here (``_kernels.table_range(...)``).  Every
kernel is ``nogil``, so threads from a pool can call them at once on disjoint maps;
every kernel is serial but ``table_combine_parallel`` and ``table_collect_parallel``,
which have the serial ``table_combine`` and ``table_collect`` beside them.
"""

from __future__ import annotations

from .algebra import (
    KIND_CHUNK,
    KIND_FULL,
    KIND_NONE,
    OP_AND,
    OP_ANDNOT,
    OP_OR,
    OP_XOR,
    RESULT_KINDS,
    combine_words,
    flat_count_and,
    table_combine,
    table_combine_parallel,
    table_count_and,
    table_plan,
)
from .checksum import xxh64_digest, xxh64_start, xxh64_update
from .flagwords import (
    bits_to_words,
    compare_to_bits,
    count_segments,
    count_words,
    new_table,
    pagemap_present,
    stream_words,
)
from .intrinsics import ALL_ONES, NULL, dispatchers_built, jit, publish
from .memory import (
    copy_chunks_at,
    fill_chunks_at,
    gather_chunks,
    read_chunk_objects,
    table_fill_chunks,
    words_at,
)
from .roaring import (
    ROARING_ARRAY,
    ROARING_BITSET,
    ROARING_RUN,
    roaring_fill,
    roaring_measure,
    roaring_parse,
    roaring_write,
)
from .scans import (
    table_collect,
    table_collect_parallel,
    table_find_next,
    table_find_prev_set,
    table_occupy,
    table_runs,
    table_select,
)
from .spans import (
    any_bits,
    collect_set,
    count_bits,
    first_out_of_range,
    flat_runs,
    flat_set_ranges,
    flat_test_many,
    flat_write_many,
    next_bit,
    prev_set_bit,
    select_bit,
    write_bits,
)
from .table import (
    RANGE_ANY,
    RANGE_CLEAR,
    RANGE_COUNT,
    RANGE_SET,
    table_entries_at,
    table_equal,
    table_equal_flat,
    table_mark_entries,
    table_popcounts,
    table_range,
    table_range_cover,
    table_recount,
    table_set_ranges,
    table_test_many,
    table_test_many_mixed,
    table_write_many,
)
from .windows import table_get_words, table_put_words, words_chunk_kinds

__all__ = [
    "ALL_ONES", "KIND_CHUNK", "KIND_FULL", "KIND_NONE", "NULL", "OP_AND", "OP_ANDNOT",
    "OP_OR", "OP_XOR", "RANGE_ANY", "RANGE_CLEAR", "RANGE_COUNT", "RANGE_SET",
    "RESULT_KINDS", "ROARING_ARRAY", "ROARING_BITSET", "ROARING_RUN", "any_bits",
    "bits_to_words", "collect_set", "combine_words", "compare_to_bits",
    "copy_chunks_at", "count_bits", "count_segments", "count_words", "dispatchers_built",
    "fill_chunks_at", "first_out_of_range", "flat_count_and", "flat_runs",
    "flat_set_ranges", "flat_test_many", "flat_write_many", "gather_chunks", "jit",
    "new_table", "next_bit", "pagemap_present", "prev_set_bit", "read_chunk_objects",
    "roaring_fill", "roaring_measure", "roaring_parse", "roaring_write", "select_bit",
    "stream_words", "table_collect", "table_collect_parallel", "table_combine",
    "table_combine_parallel",
    "table_count_and", "table_entries_at", "table_equal", "table_equal_flat",
    "table_fill_chunks", "table_find_next", "table_find_prev_set", "table_get_words",
    "table_mark_entries", "table_occupy", "table_plan", "table_popcounts",
    "table_put_words", "table_range", "table_range_cover", "table_recount",
    "table_runs", "table_select", "table_set_ranges", "table_test_many",
    "table_test_many_mixed", "table_write_many", "words_at", "words_chunk_kinds", "write_bits",
    "xxh64_digest", "xxh64_start", "xxh64_update",
]

# Call sites name kernels here: a kernel's dispatcher, once built, replaces its lazy
# proxy here too, so later calls skip the proxy.
publish(globals())
