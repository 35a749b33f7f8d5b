"""Reference models for the kpageflags tests: page-types' C, transliterated line by
line into Python on ints (one word at a time, no NumPy), and fixture words.

The C is tools/mm/page-types.c at commit 06807f849: ``parse_flag_name``,
``parse_flag_names``, ``parse_bits_mask``, ``bit_mask_ok``,
``expand_overloaded_flags``, ``well_known_flags``, ``page_flag_name``,
``page_flag_longname`` and ``show_summary``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

ALL = (1 << 64) - 1
# page_flag_names[], as "bit letter:name" pairs in the order of the C initialiser.
_NAMES_TEXT = """
0 L:locked 1 E:error 2 R:referenced 3 U:uptodate 4 D:dirty 5 l:lru 6 A:active
7 S:slab 8 W:writeback 9 I:reclaim 10 B:buddy
11 M:mmap 12 a:anonymous 13 s:swapcache 14 b:swapbacked 15 H:compound_head
16 T:compound_tail 17 G:huge 18 u:unevictable 19 X:hwpoison 20 n:nopage 21 x:ksm
22 t:thp 23 o:offline 26 g:pgtable 24 z:zero_page 25 i:idle_page
32 r:reserved 33 m:mlocked 34 d:owner_2 35 P:private 36 p:private_2
37 O:owner_private 38 h:arch 40 f:softdirty 41 H:arch_2
47 d:anon_exclusive 48 I:readahead 50 A:slub_frozen 51 E:slub_debug
61 F:file 62 w:swap 63 1:mmap_exclusive
"""
_FIELDS = _NAMES_TEXT.split()
NAMES = {int(bit): entry for bit, entry in zip(_FIELDS[::2], _FIELDS[1::2], strict=True)}
ARRAY_SIZE = 64
HEAD, TAIL, HUGE = 15, 16, 17
COMPOUND = 1 << HEAD | 1 << TAIL
HACKERS = 0xFFFF << 32


def B(bit: int) -> int:
    return 1 << bit


def parse_number(s: str) -> int:
    # strtoll(str, NULL, 0) on a whole token (the tests give only whole numbers)
    if s.lower().startswith("0x"):
        n = int(s[2:], 16)
    elif s.startswith("0") and len(s) > 1:
        n = int(s[1:], 8)
    else:
        n = int(s)
    if n == 0 and s[0] != "0":
        raise ValueError(f"invalid name or number: {s}")
    return n


def parse_flag_name(s: str, length: int) -> int:
    if not s or not length:
        return 0
    if length <= 8 and "compound"[:length] == s[:length] and len(s[:length]) == length:
        return COMPOUND
    for i in range(ARRAY_SIZE):
        if i not in NAMES:
            continue
        name = NAMES[i][2:]
        if s[:length] == name[:length] and len(name) >= length:  # strncmp == 0
            return 1 << i
    return parse_number(s[:length])


def parse_flag_names(s: str, all_: int) -> int:
    flags = 0
    p = 0
    start = 0
    s = s + "\0"
    while True:
        if s[p] in ",=\0":
            token = s[start:p]
            if not token.startswith("~"):
                flags |= parse_flag_name(token, len(token))
            elif all_ and len(token) > 1:
                flags |= parse_flag_name(token[1:], len(token) - 1)
            if s[p] != ",":
                break
            start = p + 1
        p += 1
    return flags


def parse_bits_mask(optarg: str) -> tuple[int, int]:
    p = optarg.find("=")
    if p == 0:
        return ALL, parse_flag_names(optarg[1:], 0)
    if p > 0:
        return parse_flag_names(optarg, 0), parse_flag_names(optarg[p + 1:], 0)
    if "~" in optarg:
        return parse_flag_names(optarg, 1), parse_flag_names(optarg, 0)
    return parse_flag_names(optarg, 0), ALL


def bit_mask_ok(flags: int, filters: list[tuple[int, int]]) -> bool:
    for mask, bits in filters:
        if bits == ALL:
            if flags & mask == 0:
                return False
        elif flags & mask != bits:
            return False
    return True


def expand_overloaded_flags(flags: int) -> int:
    if flags & B(12) and flags & B(34):
        flags ^= B(34) | B(47)
    if flags & B(7):
        if flags & B(6):
            flags ^= B(6) | B(50)
        if flags & B(1):
            flags ^= B(1) | B(51)
    if flags & (B(9) | B(8)) == B(9):
        flags ^= B(9) | B(48)
    return flags


def well_known_flags(flags: int) -> int:
    flags &= ~HACKERS & ALL
    if flags & COMPOUND and not flags & B(HUGE):
        flags &= ~COMPOUND & ALL
    return flags


def kpageflags_flags(flags: int, raw: bool) -> int:
    return expand_overloaded_flags(flags) if raw else well_known_flags(flags)


def page_flag_name(flags: int) -> str:
    return "".join((NAMES[i][0] if flags >> i & 1 else "_")
                   for i in range(ARRAY_SIZE) if i in NAMES)


def summary(words: np.ndarray, raw: bool, filters=()) -> list[tuple[int, int]]:
    """(flags, pages) rows, by pages descending then flags (page-types prints them
    in hash-slot order; the library sorts)."""
    counts: Counter = Counter()
    for w in words.tolist():
        f = kpageflags_flags(w, raw)
        if bit_mask_ok(f, list(filters)):
            counts[f] += 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


# --- fixture words --------------------------------------------------------------------

PALETTE = [
    0x0, 0x400, 0x28, 0x6c, 0x86c, 0x5828, 0x80, 0x1080,    # none, buddy, lru..., slab
    B(15) | B(22) | 0x28, B(16) | B(22) | 0x28,            # THP head and tail
    B(15) | B(17) | 0x28, B(16) | B(17),                   # hugetlb head and tail
    B(12) | B(34) | 0x28, B(7) | B(6), B(7) | B(1),       # overloaded: anon_excl, SLUB
    B(9) | 0x28, B(9) | B(8) | 0x28,                       # readahead, real reclaim
    B(32), B(32) | B(33) | 0x28, B(20),                    # reserved, mlocked, nopage
    B(27) | 0x28, B(45), B(60) | B(4), B(42) | B(12),      # unknown bits, arch_3
    B(63) | B(61) | B(40),                                 # page-types' own bits
]

# Three chunks and a partial fourth; the end is not a multiple of 64.
NPAGES = 3 * 32768 + 1000


def fixture_words(seed: int = 14, n: int = NPAGES) -> np.ndarray:
    """Flag words with runs from ``PALETTE``, known words at word (64) and chunk
    (32768) edges, holes of zeros and of nopage, and a stretch of random words."""
    rng = np.random.default_rng(seed)
    palette = np.array(PALETTE, dtype=np.uint64)
    lengths = rng.integers(1, 300, n)
    kinds = rng.integers(0, palette.size, n)
    words = np.repeat(palette[kinds], lengths)[:n].copy()
    # A hole, nopage, and random words (these three scale with n).
    words[n * 4 // 10:n // 2] = 0
    words[n // 2:n // 2 + n // 50] = B(20)
    lo, hi = n * 7 // 10, n * 7 // 10 + n // 100
    words[lo:hi] = rng.integers(0, 1 << 63, hi - lo, dtype=np.int64
                                ).astype(np.uint64) << np.uint64(1)
    for i, pfn in enumerate((0, 1, 63, 64, 65, 127, 128, 32767, 32768, 32769, 65535,
                             65536, n - 65, n - 64, n - 2, n - 1)):
        if 0 <= pfn < n:
            words[pfn] = palette[i % palette.size] | np.uint64(B(i % 64))
    return words


def bit_pfns(words: np.ndarray, bit: int) -> np.ndarray:
    return np.flatnonzero((words >> np.uint64(bit)) & np.uint64(1))


# --- a process, as /proc/PID/maps and /proc/PID/pagemap files --------------------------

PM_PRESENT, PM_SWAP, PM_FILE, PM_EXCLUSIVE, PM_SOFT_DIRTY = (1 << 63, 1 << 62, 1 << 61,
                                                             1 << 56, 1 << 55)


def write_process(root, pid: int, areas: list[tuple[int, list[int]]]) -> None:
    """``root/pid/maps`` and ``root/pid/pagemap`` (a sparse regular file) for areas
    ``(first virtual page, pagemap entries)``."""
    folder = root / str(pid)
    folder.mkdir(parents=True)
    lines = []
    with open(folder / "pagemap", "wb") as out:
        for vpn, entries in areas:
            start, end = vpn * 4096, (vpn + len(entries)) * 4096
            lines.append(f"{start:08x}-{end:08x} rw-p 00000000 00:00 0  [area]")
            out.seek(vpn * 8)
            out.write(np.array(entries, dtype="<u8").tobytes())
    (folder / "maps").write_text("\n".join(lines) + "\n")


def process_entries(rng: np.random.Generator, n: int, npages: int) -> list[int]:
    """Pagemap entries: present pages with random pfns and bits, swapped and absent."""
    out = []
    for _ in range(n):
        kind = rng.integers(0, 4)
        if kind == 0:
            out.append(0)
        elif kind == 1:
            out.append(PM_SWAP | int(rng.integers(1, 1000)) << 5)
        else:
            bits = int(rng.integers(0, 8))
            out.append(PM_PRESENT | int(rng.integers(1, npages))
                       | (PM_SOFT_DIRTY if bits & 1 else 0)
                       | (PM_EXCLUSIVE if bits & 2 else 0) | (PM_FILE if bits & 4 else 0))
    return out
