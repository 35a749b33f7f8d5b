"""The kernel's page-flag bits (``/proc/kpageflags``) and page-types' view of them.

Each entry of ``/proc/kpageflags`` is one 64-bit word of flags per pfn, built by the
kernel's ``stable_page_flags()``.  :class:`KPF` numbers its bits as
``include/uapi/linux/kernel-page-flags.h`` and ``include/linux/kernel-page-flags.h``
do, plus the bits that the kernel's ``tools/mm/page-types.c`` takes for itself in
raw mode (47 and up, "not part of kernel API").

What page-types does with a word, reproduced here on NumPy arrays of words:

* **letters and long names** (:func:`letters`, :func:`long_names`): one character
  per bit page-types names, in bit order, ``_`` for a clear bit; the letters are
  positional (``H``, ``d``, ``I``, ``A`` and ``E`` each stand for two bits).  Bits
  page-types has no name for (27-31, 39, 42-46, 49, 52-60) have no position; page-types
  stops with "unknown flag bit" on them, here the long names show them as the
  kernel names them (``uncached``, ``arch_3``) or as ``bitN``.
* **default mode** (:func:`well_known`): bits 32-47 (kernel hackers' bits) cleared,
  and the compound bits cleared on pages that are not hugetlb (``huge``).
* **raw mode** (:func:`expand_overloaded`, page-types ``-r``): overloaded bits
  moved to page-types' own (``owner_2`` on anon pages is ``anon_exclusive``, SLUB's
  ``active`` and ``error`` are ``slub_frozen`` and ``slub_debug``, ``reclaim``
  without ``writeback`` is ``readahead``).
* **bit filters** (:func:`parse_bits`, ``-b``): see its docstring.

The names of page-types' columns follow ``tools/mm/page-types.c`` at commit
06807f849 (which dropped ``uncached``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import IntEnum
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["ALL_BITS", "COMPOUND", "HACKERS_BITS", "KPF", "BitFilter", "bit_name",
           "expand_overloaded", "letters", "long_names", "match", "parse_bits",
           "transform", "well_known"]


class KPF(IntEnum):
    """Bit numbers of a ``/proc/kpageflags`` word, without the ``KPF_`` prefix.

    Bits 0-26 are the kernel's stable API, 32-42 its kernel-hacker bits ("subject to
    change, never rely on them"), and 47-63 page-types' own, which only raw mode
    (:func:`expand_overloaded`) sets.  Old names stay as aliases: ``BALLOON`` (now
    ``OFFLINE``) and ``MAPPEDTODISK`` (now ``OWNER_2``).

    Examples
    --------
    >>> from pageflags import KPF
    >>> KPF.DIRTY, KPF.THP, KPF.RESERVED, KPF.BALLOON.name
    (<KPF.DIRTY: 4>, <KPF.THP: 22>, <KPF.RESERVED: 32>, 'OFFLINE')
    >>> hex(1 << KPF.LRU | 1 << KPF.DIRTY)
    '0x30'
    """

    LOCKED = 0
    ERROR = 1
    REFERENCED = 2
    UPTODATE = 3
    DIRTY = 4
    LRU = 5
    ACTIVE = 6
    SLAB = 7
    WRITEBACK = 8
    RECLAIM = 9
    BUDDY = 10
    MMAP = 11
    ANON = 12
    SWAPCACHE = 13
    SWAPBACKED = 14
    COMPOUND_HEAD = 15
    COMPOUND_TAIL = 16
    HUGE = 17
    UNEVICTABLE = 18
    HWPOISON = 19
    NOPAGE = 20
    KSM = 21
    THP = 22
    OFFLINE = 23
    BALLOON = 23
    ZERO_PAGE = 24
    IDLE = 25
    PGTABLE = 26
    RESERVED = 32
    MLOCKED = 33
    OWNER_2 = 34
    MAPPEDTODISK = 34
    PRIVATE = 35
    PRIVATE_2 = 36
    OWNER_PRIVATE = 37
    ARCH = 38
    UNCACHED = 39
    SOFTDIRTY = 40
    ARCH_2 = 41
    ARCH_3 = 42
    ANON_EXCLUSIVE = 47
    READAHEAD = 48
    SLOB_FREE = 49
    SLUB_FROZEN = 50
    SLUB_DEBUG = 51
    FILE = 61
    SWAP = 62
    MMAP_EXCLUSIVE = 63


def _bit(flag: KPF) -> int:
    return 1 << int(flag)


ALL_BITS = (1 << 64) - 1
#: Bits 32-47, which page-types' default mode hides (``KPF_HACKERS_BITS``).
HACKERS_BITS = 0xFFFF << 32
#: ``compound_head | compound_tail``: what the ``-b`` name ``compound`` means.
COMPOUND = _bit(KPF.COMPOUND_HEAD) | _bit(KPF.COMPOUND_TAIL)

# page-types' page_flag_names: bit -> "letter:long name", in bit order.
_PAGE_TYPES = {
    0: "L:locked", 1: "E:error", 2: "R:referenced", 3: "U:uptodate", 4: "D:dirty",
    5: "l:lru", 6: "A:active", 7: "S:slab", 8: "W:writeback", 9: "I:reclaim",
    10: "B:buddy", 11: "M:mmap", 12: "a:anonymous", 13: "s:swapcache",
    14: "b:swapbacked", 15: "H:compound_head", 16: "T:compound_tail", 17: "G:huge",
    18: "u:unevictable", 19: "X:hwpoison", 20: "n:nopage", 21: "x:ksm", 22: "t:thp",
    23: "o:offline", 24: "z:zero_page", 25: "i:idle_page", 26: "g:pgtable",
    32: "r:reserved", 33: "m:mlocked", 34: "d:owner_2", 35: "P:private",
    36: "p:private_2", 37: "O:owner_private", 38: "h:arch", 40: "f:softdirty",
    41: "H:arch_2", 47: "d:anon_exclusive", 48: "I:readahead", 50: "A:slub_frozen",
    51: "E:slub_debug", 61: "F:file", 62: "w:swap", 63: "1:mmap_exclusive",
}
#: Bits page-types names, in bit order: the positions of the letters column.
LETTER_BITS = tuple(sorted(_PAGE_TYPES))
LETTER = {bit: entry[0] for bit, entry in _PAGE_TYPES.items()}
#: page-types' long name of each bit it names (``anonymous``, ``idle_page``, ...).
PAGE_TYPES_NAME = {bit: entry[2:] for bit, entry in _PAGE_TYPES.items()}


def bit_name(bit: int) -> str:
    """The name a :class:`~pageflags.PageFlagSet` gives bit ``bit``.

    The :class:`KPF` name in lower case, or ``bitN`` for a bit the kernel does not
    name (a saved file may hold any).

    Examples
    --------
    >>> bit_name(4), bit_name(23), bit_name(27)
    ('dirty', 'offline', 'bit27')
    """
    if not 0 <= bit < 64:
        raise ValueError(f"a flag word has bits 0-63, got {bit}")
    try:
        return KPF(bit).name.lower()
    except ValueError:
        return f"bit{bit}"


_BIT_NAME = re.compile(r"bit([0-9]|[1-5][0-9]|6[0-3])")


def bit_of(name: str) -> int | None:
    """The bit a set names ``name`` (a KPF name or alias in lower case, or ``bitN``).

    Examples
    --------
    >>> bit_of("thp"), bit_of("balloon"), bit_of("bit45"), bit_of("mapped_once")
    (22, 23, 45, None)
    """
    member = KPF.__members__.get(name.upper()) if name.islower() else None
    if member is not None:
        return int(member)
    m = _BIT_NAME.fullmatch(name)
    return int(m.group(1)) if m else None


def _long_name(bit: int) -> str:
    return PAGE_TYPES_NAME.get(bit) or bit_name(bit)


def letters(word: int) -> str:
    """page-types' symbolic flags of ``word``: a letter per named bit, ``_`` if clear.

    Examples
    --------
    >>> letters(1 << KPF.DIRTY | 1 << KPF.LRU)[:8]
    '____Dl__'
    >>> len(letters(0)) == len(LETTER_BITS)
    True
    """
    word = int(word)
    return "".join(LETTER[b] if word >> b & 1 else "_" for b in LETTER_BITS)


def long_names(word: int) -> str:
    """page-types' long symbolic flags of ``word``: the set bits' names, comma-separated.

    Bits page-types does not name come last, under their kernel name or ``bitN``.

    Examples
    --------
    >>> long_names(1 << KPF.ANON | 1 << KPF.LRU | 1 << 27)
    'lru,anonymous,bit27'
    """
    word = int(word)
    named = [PAGE_TYPES_NAME[b] for b in LETTER_BITS if word >> b & 1]
    unnamed = [_long_name(b) for b in range(64) if word >> b & 1 and b not in LETTER]
    return ",".join(named + unnamed)


# --- modes -------------------------------------------------------------------------

def _words(words: ArrayLike) -> np.ndarray:
    arr: np.ndarray = np.asarray(words)
    if arr.dtype == np.uint64:
        return arr
    if arr.dtype.kind not in "iu" or (arr.size and int(arr.min()) < 0):
        raise TypeError(f"flag words are non-negative integers, got {arr.dtype}")
    return arr.astype(np.uint64)


def _has(words: np.ndarray, flag: KPF) -> np.ndarray:
    has: np.ndarray = (words & np.uint64(_bit(flag))) != 0
    return has


def well_known(words: ArrayLike) -> np.ndarray:
    """page-types' default mode: hide bits 32-47, and compound bits unless hugetlb.

    Examples
    --------
    >>> thp_head = 1 << KPF.COMPOUND_HEAD | 1 << KPF.THP | 1 << KPF.RESERVED
    >>> hex(int(well_known([thp_head])[0]))
    '0x400000'
    """
    known: np.ndarray = _words(words) & np.uint64(ALL_BITS ^ HACKERS_BITS)
    hide = ((known & np.uint64(COMPOUND)) != 0) & ~_has(known, KPF.HUGE)
    return np.where(hide, known & np.uint64(ALL_BITS ^ COMPOUND), known)


def expand_overloaded(words: ArrayLike) -> np.ndarray:
    """page-types' raw mode (``-r``): its ``expand_overloaded_flags`` on each word.

    Examples
    --------
    >>> anon_exclusive = 1 << KPF.ANON | 1 << KPF.OWNER_2
    >>> hex(int(expand_overloaded([anon_exclusive])[0]))
    '0x800000001000'
    """
    out: np.ndarray = _words(words).copy()
    b = {f: np.uint64(_bit(f)) for f in KPF}
    anon = _has(out, KPF.ANON) & _has(out, KPF.OWNER_2)
    out[anon] ^= b[KPF.OWNER_2] | b[KPF.ANON_EXCLUSIVE]
    slab = _has(out, KPF.SLAB)
    frozen = slab & _has(out, KPF.ACTIVE)
    out[frozen] ^= b[KPF.ACTIVE] | b[KPF.SLUB_FROZEN]
    debug = slab & _has(out, KPF.ERROR)
    out[debug] ^= b[KPF.ERROR] | b[KPF.SLUB_DEBUG]
    ahead = (out & (b[KPF.RECLAIM] | b[KPF.WRITEBACK])) == b[KPF.RECLAIM]
    out[ahead] ^= b[KPF.RECLAIM] | b[KPF.READAHEAD]
    return out


def transform(words: ArrayLike, raw: bool) -> np.ndarray:
    """Words as page-types shows them: :func:`expand_overloaded` if ``raw``, else
    :func:`well_known`."""
    return expand_overloaded(words) if raw else well_known(words)


# --- bit filters (-b) --------------------------------------------------------------

#: The terms of a bit filter: bit numbers, and names of other maps of a set.
Terms: TypeAlias = "frozenset[int | str]"


class BitFilter:
    """One page-types ``-b`` argument: pages whose flags ``f`` satisfy it.

    ``bits is None`` means "any of ``mask``" (``f & mask != 0``); otherwise
    ``f & mask == bits``.  ``mask`` and ``bits`` are sets of terms: bit numbers, and
    names of other maps of a set (such as ``mapped_many``).
    """

    __slots__ = ("bits", "mask", "text")

    def __init__(self, text: str, mask: Terms, bits: Terms | None) -> None:
        self.text = text
        self.mask = mask
        self.bits = bits

    @property
    def mask_word(self) -> int:
        """The mask's bits as a word (other maps' names left out)."""
        return sum(1 << t for t in self.mask if isinstance(t, int))

    def __repr__(self) -> str:
        return f"BitFilter({self.text!r})"


def _number(token: str) -> int | None:
    """``strtoull(token, NULL, 0)`` of a whole token, or None if it is not a number."""
    m = re.fullmatch(r"0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*)", token)
    if not m:
        return None
    hex_, octal, decimal = m.groups()
    value = int(hex_, 16) if hex_ else int(octal, 8) if octal else int(decimal)
    if value > ALL_BITS:
        raise ValueError(f"flag number {token} does not fit in 64 bits")
    return value


def _terms(token: str, text: str, extra: Iterable[str]) -> Terms:
    """The terms one name of a ``-b`` list stands for (page-types' parse_flag_name)."""
    if not token:
        raise ValueError(f"bits {text!r}: an empty flag name")
    if len(token) <= 8 and "compound".startswith(token):
        return frozenset((int(KPF.COMPOUND_HEAD), int(KPF.COMPOUND_TAIL)))
    for bit in LETTER_BITS:  # the first page-types name it begins, in bit order
        if PAGE_TYPES_NAME[bit].startswith(token):
            return frozenset((bit,))
    named = bit_of(token)
    if named is not None:
        return frozenset((named,))
    if token in extra:
        return frozenset((token,))
    value = _number(token)
    if value is None:
        raise ValueError(f"bits {text!r}: invalid name or number: {token}")
    return frozenset(b for b in range(64) if value >> b & 1)


def _names(part: str, text: str, with_negated: bool, extra: Iterable[str]) -> Terms:
    """page-types' parse_flag_names: the terms of a comma list (``~names`` only in
    the mask, ``with_negated``)."""
    terms: Terms = frozenset()
    for token in part.split(","):
        if token.startswith("~"):
            if with_negated:
                terms |= _terms(token[1:], text, extra)
        else:
            terms |= _terms(token, text, extra)
    return terms


def parse_bits(text: str, extra: Iterable[str] = ()) -> BitFilter:
    """Parse one page-types ``-b`` argument.

    ==================  ===============================================
    ``bit1,bit2``        any of them set
    ``bit1,bit2=bit1``   ``flags & (bit1|bit2) == bit1``
    ``bit1,~bit2``       the same: bit1 set and bit2 clear
    ``=bit1,bit2``       exactly those flags and no other
    ==================  ===============================================

    A name is any beginning of a page-types long name, and means the first bit (in
    bit order) whose name begins so: ``a`` is ``active``, ``anon`` is ``anonymous``.
    ``compound`` (or a beginning of it) is head and tail.  Then come the set's own
    names (:func:`bit_name`: ``uncached``, ``arch_3``, ``bit27``) and ``extra``
    names of other maps, then numbers, which are flag *words* as in page-types
    (``0x10`` is ``dirty``; C's base prefixes: ``0x`` hex, a leading ``0`` octal).

    Raises
    ------
    ValueError
        An empty name, or one that is neither a name nor a number.
    TypeError
        ``text`` is not a string.

    Examples
    --------
    >>> f = parse_bits("dirty,~lru"); hex(f.mask_word), sorted(f.bits)
    ('0x30', [4])
    >>> parse_bits("anon,mmap").bits is None      # any of them
    True
    """
    if not isinstance(text, str):
        raise TypeError(f"a bits expression is a str, got {type(text).__name__}")
    extra = frozenset(extra)
    everything = frozenset(range(64))
    if text.startswith("="):
        bits = _names(text[1:], text, False, extra)
        # Exactly these flag bits; other maps it names must be set, the rest are free.
        return BitFilter(text, everything | {t for t in bits if isinstance(t, str)}, bits)
    if "=" in text:
        left, right = text.split("=", 1)
        return BitFilter(text, _names(left, text, False, extra),
                         _names(right, text, False, extra))
    if "~" in text:
        return BitFilter(text, _names(text, text, True, extra),
                         _names(text, text, False, extra))
    return BitFilter(text, _names(text, text, False, extra), None)


def match(words: ArrayLike, filters: Iterable[BitFilter]) -> np.ndarray:
    """Which ``words`` pass every filter (page-types' bit_mask_ok); a bool array.

    Filters naming other maps are refused here (``ValueError``): words cannot
    answer them.

    Examples
    --------
    >>> words = np.array([0x10, 0x30, 0x20, 0x0], dtype=np.uint64)
    >>> match(words, [parse_bits("dirty,~lru")]).tolist()
    [True, False, False, False]
    >>> match(words, [parse_bits("dirty,lru")]).tolist()
    [True, True, True, False]
    """
    words = _words(words)
    ok = np.ones(words.shape, dtype=bool)
    for f in filters:
        terms = f.mask | (f.bits or frozenset())
        if any(not isinstance(t, int) for t in terms):
            raise ValueError(f"bits {f.text!r} names maps other than flag bits")
        mask = np.uint64(f.mask_word)
        if f.bits is None:
            ok &= (words & mask) != 0
        else:
            bits = sum(1 << t for t in f.bits if isinstance(t, int))  # all are: see above
            ok &= (words & mask) == np.uint64(bits)
    return ok
