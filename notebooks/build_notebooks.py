"""Write the notebooks of this folder from the cells below, with no outputs.

The cells here are the notebooks' source: edit them, then run
``python notebooks/build_notebooks.py`` and commit the ``.ipynb`` files it writes
(``tests/test_notebooks.py`` runs them and checks they carry no outputs).

Every notebook reads ``PAGEFLAGS_NOTEBOOK_SMALL`` in its first cell: ``1`` (set by the
tests) picks small sizes so the whole run takes seconds; unset, sizes are the
benchmark's and a run takes minutes. The notebooks import ``bench/grid.py`` (layouts,
peers, timing) from the repository checkout.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

def setup(names: str, bench: bool = True) -> str:
    """The first cell: imports (``names`` from pageflags) and the small-size switch.

    ``bench=False`` leaves out ``bench/grid.py`` for a notebook that does not use it.
    """
    cell = SETUP.replace("NAMES", names)
    if not bench:  # its imports go too, or the notebook's lint fails
        cell = cell.replace(GRID, "").replace("import sys\nfrom pathlib import Path\n", "")
    return cell


GRID = """\
# bench/grid.py holds the benchmark grid's machines, layouts, peers and timers.
sys.path.insert(0, str(Path.cwd().resolve().parent / "bench"))
import grid  # noqa: E402

"""
SETUP = '''\
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

# CI sets PAGEFLAGS_NOTEBOOK_SMALL=1: small sizes, a run of seconds. Unset: full sizes.
SMALL = os.environ.get("PAGEFLAGS_NOTEBOOK_SMALL") == "1"
# bench/grid.py holds the benchmark grid's machines, layouts, peers and timers.
sys.path.insert(0, str(Path.cwd().resolve().parent / "bench"))
import grid  # noqa: E402

from pageflags import NAMES  # noqa: E402

print("small sizes" if SMALL else "full sizes")'''


def notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    nb.cells = [new_markdown_cell(text) if kind == "md" else new_code_cell(text)
                for kind, text in cells]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids: a rebuild changes only what was edited
    return nb


SCANNING = [
    ("md", """\
# 1. Scanning a simulated multi-terabyte machine

A 46-bit physical address space (64 TiB) holding 2 TiB of memory in 8 NUMA nodes, one
every 8 TiB, the size of machine `pageflags scan` simulates (with small sizes, a 40-bit
space with 256 GiB). Memory hotplug has removed a random half of the 128 MiB sections,
and a few pages were set in the holes since. What does
the two-level table allocate, where, and how fast do scans run against a flat bitmap
as the population grows?"""),
    ("code", setup("PageFlags")),
    ("code", """\
machine = grid.MACHINES[40 if SMALL else 46]
g = machine.geometry
present = grid.make_layout(machine, "hotplug", npfns=1 << 10)
strays = grid.make_layout(machine, "sparse", npfns=1 << (8 if SMALL else 12), seed=11)

flags = present.fill(PageFlags(g))       # the kept sections: FULL entries, no chunk
flags.set_many(strays.pages)             # pages in removed sections: private chunks
stats = flags.stats()
print(f"{g.phys_addr_bits}-bit space: {g.npages:,} pages, {g.nchunks:,} table entries")
print(f"{machine.nodes} nodes x {machine.node_bytes >> 30} GiB; "
      f"{present.info['sections']:,} sections kept in {present.info['ranges']:,} runs")
print({k: stats[k] for k in ("allocated", "full", "nbytes")})
print(f"pageflags: {flags.nbytes / 2**20:,.1f} MiB; "
      f"a flat bitmap: {g.flat_bytes / 2**20:,.0f} MiB")"""),
    ("md", """\
## A picture of the table

One pixel per entry: white is `None` (no memory, all zero), blue is the shared `FULL`
chunk (a whole section set, no memory either), orange is an allocated chunk (partly
set). Each row of the left picture is a stretch of the address space; the right one
zooms into the first node."""),
    ("code", """\
from matplotlib.colors import ListedColormap


def entry_kinds(flags):
    \"\"\"0 for None, 1 for FULL, 2 for an allocated chunk, per table entry.\"\"\"
    full = flags.FULL
    return np.fromiter((0 if c is None else 1 if c is full else 2 for c in flags.table),
                       dtype=np.int8, count=flags.geometry.nchunks)


kinds = entry_kinds(flags)
colours = ListedColormap(["white", "tab:blue", "tab:orange"])
columns = 1024 if g.nchunks >= 1 << 19 else 128
per_node = (machine.node_bytes >> g.page_shift) >> g.chunk_shift
node0 = kinds[:per_node].reshape(-1, 64)

fig, (whole, zoom) = plt.subplots(1, 2, figsize=(12, 5), width_ratios=[2, 1])
whole.imshow(kinds.reshape(-1, columns), cmap=colours, vmin=0, vmax=2,
             interpolation="nearest", aspect="auto")
row_gib = (columns << (g.chunk_shift + g.page_shift)) >> 30
whole.set(title=f"the whole {g.phys_addr_bits}-bit space", xlabel="entry in row",
          ylabel=f"row ({row_gib:,} GiB each)")
zoom.imshow(node0, cmap=colours, vmin=0, vmax=2, interpolation="nearest")
zoom.set(title="node 0", xlabel="section in row (64 per row)", ylabel="row")
for kind, name in enumerate(["None", "FULL", "allocated"]):
    whole.plot([], [], "s", color=colours(kind), label=f"{name}: {(kinds == kind).sum():,}")
whole.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
fig.tight_layout()
plt.show()"""),
    ("md", """\
## Scan time against population density

Random pages inside the nodes, from a handful to 1 % of the present memory, set in a
pageflags map and a flat bitmap of the same space. `count(start, stop)` over the whole
space sums pageflags' cached per-chunk counts (and popcounts only the two edge
chunks), where a flat bitmap popcounts every word of the space; `test_many` looks up
random pages of the nodes (two dependent loads in pageflags, one in flat)."""),
    ("code", """\
densities = np.logspace(-5, -2, 4) if SMALL else np.logspace(-6, -2, 9)
rows = grid.density_sweep(g, densities, ("count_range", "test_many"), machine=machine,
                          nprobes=1 << (14 if SMALL else 20), repeat=3 if SMALL else 5)

fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax, op in zip(axes, ("count_range", "test_many"), strict=False):
    for impl in ("pageflags", "flat"):
        sel = [r for r in rows if r["op"] == op and r["impl"] == impl]
        ax.loglog([r["density"] for r in sel], [r["seconds"] for r in sel], "o-", label=impl)
    ax.set(title=op, xlabel="fraction of present pages set", ylabel="best time (s)")
    ax.legend()
mem = axes[2]
for impl in ("pageflags", "flat"):
    sel = [r for r in rows if r["op"] == "count_range" and r["impl"] == impl]
    mem.loglog([r["density"] for r in sel], [r["nbytes"] / 2**20 for r in sel], "o-", label=impl)
mem.set(title="memory", xlabel="fraction of present pages set", ylabel="MiB")
mem.legend()
fig.tight_layout()
plt.show()

for op in ("count_range", "test_many"):
    t = {(r["impl"], r["density"]): r["seconds"] for r in rows if r["op"] == op}
    ratios = [t["flat", d] / t["pageflags", d] for d in densities]
    print(f"{op:12s} flat time / pageflags time: "
          + ", ".join(f"{d:.0e}: {x:.2g}x" for d, x in zip(densities, ratios, strict=True)))"""),
    ("md", """\
The holes between nodes are what a flat bitmap pays for: its memory and its scans
cover the whole space, while the table's cost follows the sections that hold memory.
Lookups (`test_many`) chase one more pointer in pageflags; notebook 3 measures where
that makes a flat bitmap win."""),
]


HOTPLUG = [
    ("md", """\
# 2. Hotplug experiments

Memory comes and goes a 128 MiB section at a time: DIMMs, virtio-mem and CXL devices
are added and removed while the machine runs. The seed's second purpose is bitmaps that
follow it: map space for the sections present now and none for the holes. Here a
simulated machine (46-bit space, 2 TiB in 8 NUMA nodes; with small sizes a 40-bit
space with 64 GiB in 2 nodes) goes through thousands of seeded add/remove events,
and after every batch we measure what each map costs and how long a scan takes, in
pageflags and in a flat bitmap replaying the same trace. This is `pageflags hotplug`
(`pageflags hotplug --plot hotplug.png` draws the same figure)."""),
    ("code", setup("Hotplug, MemoryMap, experiments", bench=False) + """
from pageflags.cli import format_hotplug  # noqa: E402  (the command's summary)"""),
    ("code", """\
BITS, MEMORY, NODES = (40, "64 GiB", 2) if SMALL else (46, "2 TiB", 8)
EVENTS, BATCH = (1000, 100) if SMALL else (8192, 256)
SEED = 0

machine = MemoryMap.synthetic(MEMORY, NODES, seed=SEED, phys_addr_bits=BITS)
g = machine.geometry
print(machine)
print(f"{g.nchunks:,} sections in the space, {machine.sections().size:,} present; "
      f"a flat bitmap of the space takes {g.flat_bytes / 2**20:,.0f} MiB")"""),
    ("md", """\
## The trace

`Hotplug.events` draws bursts of consecutive sections of one node (a device going or
coming), nodes interleaved; each burst adds absent sections of the node's part of the
address space or removes present ones. Each dot is one event: which section, when."""),
    ("code", """\
trace = Hotplug(machine).events(EVENTS, seed=SEED)
added = trace["op"] > 0
present_sections = machine.sections().size + np.cumsum(np.where(added, 1, -1))

fig, (where, how_much) = plt.subplots(1, 2, figsize=(13, 4))
for mask, name, colour in ((added, "add", "tab:green"), (~added, "remove", "tab:red")):
    where.scatter(np.flatnonzero(mask), trace["section"][mask], s=2, color=colour,
                  label=name)
where.set(title="sections added and removed", xlabel="event", ylabel="section number")
where.legend(markerscale=5)
how_much.plot(present_sections * (g.chunk_bytes * 8 * g.page_size) / 2**30)
how_much.set(title="present memory", xlabel="event", ylabel="GiB")
fig.tight_layout()
plt.show()"""),
    ("md", """\
## Memory and scan time, pageflags against flat

`experiments.hotplug` builds a `present` map and a `dirty` map (1 % of present pages
set), applies the trace with `Hotplug.run` in batches, and times two scans on each map
after each batch: `count` (a range count of the whole map) and `walk` (one
`find_next_set` per non-empty section, from the first pfn to the last). The flat side
replays the same trace (whole sections set or cleared in one NumPy step) and is timed
the same way; at the end both sides must hold the same bits."""),
    ("code", """\
result = experiments.hotplug(BITS, MEMORY, NODES, events=EVENTS, batch=BATCH, seed=SEED,
                             progress=False)
print(format_hotplug(result))
fig = plt.figure(figsize=(15, 4.5), layout="constrained")
experiments.plot_hotplug(result, fig=fig)
plt.show()"""),
    ("md", """\
A flat bitmap costs the whole space whatever is present, and its scans read all of
it. The table's `present` map stays at the size of its top level (a present section is
a `FULL` entry, no chunk), the `dirty` map follows the sections that hold dirty pages,
and scans skip the `None` entries of the holes. Scan time against present memory shows
which one follows the memory and which one follows the address space:"""),
    ("code", """\
batches = result["batches"]
present_gib = np.asarray(batches["present_pages"]) * g.page_size / 2**30
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, probe in zip(axes, ("count", "walk"), strict=True):
    for impl, marker in (("pageflags", "o"), ("flat", "s")):
        ys = np.asarray(batches["seconds"][probe][impl]["dirty"]) * 1e3
        ax.plot(present_gib, ys, marker, label=impl)
    ax.set(title=f"{probe} of the dirty map", xlabel="present memory (GiB)",
           ylabel="ms", yscale="log")
    ax.legend()
fig.tight_layout()
plt.show()"""),
    ("md", """\
## Allocating for present memory up front

The seed's other mode: map space for present pages only, allocated when memory
appears (`alloc="present"`, the kernel's `PRESENT_PAGES_ONLY`), instead of on the
first write (`alloc="lazy"`). Pinned chunks never allocate on a write, so a writer in
a hot path cannot fail; they cost one chunk per present section, added and freed with
the section. Both are attached to one `Hotplug` and follow the same trace."""),
    ("code", """\
hp = Hotplug(machine)
lazy = hp.new_map("lazy")
pinned = hp.new_map("pinned", alloc="present")
rng = np.random.default_rng(SEED)
ranges = machine.ranges[rng.integers(0, len(machine.ranges), 1 << 8)]
written = rng.integers(ranges[:, 0], ranges[:, 1])  # 256 random present pages
for flags in (lazy, pinned):
    flags.set_many(written)
records = hp.run(trace, batch=BATCH, probe={}, progress=False)

fig, ax = plt.subplots(figsize=(7, 4))
for name in ("present", "lazy", "pinned"):
    ax.plot(records["events"], records["nbytes"][name] / 2**20, label=f"pageflags {name}")
ax.plot(records["events"], records["flat_bytes"] / 2**20, "--", label="flat (any map)")
ax.set(xlabel="hotplug events applied", ylabel="MiB", yscale="log",
       title="memory of a map by allocation mode")
ax.legend()
fig.tight_layout()
plt.show()
hp.validate()
print({name: f"{records['nbytes'][name][-1] / 2**20:,.1f} MiB" for name in ("lazy", "pinned")})"""),
    ("md", """\
The lazy map costs what its written pages touch; the pinned map costs one 4 KiB chunk
per present section (plus the top level), and follows hotplug section by section; the
flat bitmap costs the space. Rerun with `PAGEFLAGS_NOTEBOOK_SMALL` unset for the
issue's 2 TiB machine, or from a shell: `pageflags hotplug --events 8192 --plot
hotplug.png`."""),
]


AGAINST_FLAT = [
    ("md", """\
# 3. Against flat bitmaps, Roaring and bitarray

The benchmark grid of `bench/bench_grid.py`, timed here: every operation on every
implementation (pageflags, `FlatPageFlags`, and pyroaring's `BitMap64` and `bitarray`
where installed), space (40-, 46-bit; 52-bit for pageflags and pyroaring only) and
layout (`sparse` random present pages, `full` sections, `hotplug` sections with a
random half removed). Then a density sweep for the crossover: from which population
density does a flat bitmap start to win?

Ratios, not absolute times, are the result: they come from one run on one machine."""),
    ("code", setup("Geometry") + '''
import ratios  # noqa: E402  (bench/ratios.py: the README's ratio tables)
from IPython.display import Markdown, display  # noqa: E402'''),
    ("code", """\
SPACES = (40,) if SMALL else (40, 46, 52)
NPFNS = 1 << 14 if SMALL else 1 << 18
REPEAT = 3 if SMALL else 5
impls = [i for i in grid.IMPLEMENTATIONS if grid.installed(i)]
print("implementations:", ", ".join(impls))
print("operations:", ", ".join(op for op in grid.OPERATIONS if grid.available(op)))
print("waiting for PageFlags methods:",
      ", ".join(op for op in grid.OPERATIONS if not grid.available(op)) or "none")

rows = grid.time_grid(SPACES, NPFNS, REPEAT)
display(Markdown(ratios.wide_table(grid.as_benchmark_run(rows))))"""),
    ("md", """\
## The grid as plots

One figure per space, one panel per layout: each bar is an implementation's speed-up
over the baseline (a flat bitmap, or pageflags in the 52-bit space, which no flat
bitmap can hold) for one operation; above the line is faster."""),
    ("code", """\
def plot_space(rows, bits):
    here = [r for r in rows if r["space"] == bits]
    base = "flat" if any(r["impl"] == "flat" for r in here) else "pageflags"
    ops = [op for op in grid.OPERATIONS if any(r["op"] == op for r in here)]
    names = list(dict.fromkeys(r["impl"] for r in here))
    width = 0.8 / len(names)
    fig, axes = plt.subplots(len(grid.LAYOUTS), 1, figsize=(12, 3 * len(grid.LAYOUTS)),
                             sharex=True)
    for ax, layout in zip(axes, grid.LAYOUTS, strict=True):
        t = {(r["op"], r["impl"]): r["seconds"] for r in here if r["layout"] == layout}
        for k, impl in enumerate(names):
            xs = [i for i, op in enumerate(ops) if (op, impl) in t and (op, base) in t]
            ys = [t[ops[i], base] / t[ops[i], impl] for i in xs]
            ax.bar(np.array(xs) + (k - (len(names) - 1) / 2) * width, ys, width, label=impl)
        ax.set_yscale("log")
        ax.axhline(1, color="black", linewidth=0.8)
        ax.set(title=f"{bits}-bit space, {layout} layout", ylabel=f"speed-up over {base}")
    axes[-1].set_xticks(range(len(ops)), ops, rotation=20)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=len(names))
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    plt.show()

for bits in SPACES:
    plot_space(rows, bits)"""),
    ("md", "Memory of each implementation's map of each layout:"),
    ("code", """\
fig, axes = plt.subplots(1, len(SPACES), figsize=(5 * len(SPACES), 3.5), squeeze=False)
for ax, bits in zip(axes[0], SPACES, strict=True):
    sizes = {(r["layout"], r["impl"]): r["nbytes"] for r in rows if r["space"] == bits}
    names = list(dict.fromkeys(impl for _, impl in sizes))
    for k, impl in enumerate(names):
        ys = [sizes.get((layout, impl), np.nan) / 2**20 for layout in grid.LAYOUTS]
        ax.bar(np.arange(len(grid.LAYOUTS)) + (k - (len(names) - 1) / 2) * 0.2, ys, 0.2,
               label=impl)
    ax.set_xticks(range(len(grid.LAYOUTS)), grid.LAYOUTS)
    ax.set(yscale="log", ylabel="MiB", title=f"{bits}-bit space")
    ax.legend(fontsize="small")
fig.tight_layout()
plt.show()"""),
    ("md", """\
## The crossover density

Random pages drawn uniformly over a whole space, from almost none to a dense map, in
pageflags and in a flat bitmap. Uniform pages are a sparse table's worst case: past a
few pages per 128 MiB section every chunk is allocated, and pageflags becomes a flat
bitmap with an extra indirection. `set_many` builds a map from nothing (pageflags
allocates its chunks), `test_many` looks up random pages, `count_range` counts the
whole space but its two edge pages."""),
    ("code", """\
sweep_geometry = Geometry.from_npages(1 << 22 if SMALL else 1 << 30)
densities = np.logspace(-6, -1, 6) if SMALL else np.logspace(-7, -2, 11)
OPS = ("set_many", "test_many", "count_range")
sweep = grid.density_sweep(sweep_geometry, densities, OPS, nprobes=1 << (14 if SMALL else 20),
                           repeat=REPEAT)
print(f"space: {sweep_geometry.npages:,} pages; "
      f"flat bitmap {sweep_geometry.flat_bytes / 2**20:g} MiB")


def crossover(densities, pageflags_s, flat_s):
    \"\"\"The density where flat starts to win (log-interpolated), and what happened.\"\"\"
    ahead = np.asarray(flat_s) / np.asarray(pageflags_s)   # above 1: pageflags faster
    if ahead[0] < 1:
        return None, "flat is ahead from the lowest density swept"
    behind = np.flatnonzero(ahead < 1)
    if behind.size == 0:
        return None, "pageflags wins at every density swept"
    i = behind[0]
    lo, hi = np.log10(densities[i - 1]), np.log10(densities[i])
    a, b = np.log(ahead[i - 1]), np.log(ahead[i])
    return 10 ** (lo + (hi - lo) * a / (a - b)), "flat wins from here on"


fig, axes = plt.subplots(1, len(OPS), figsize=(5 * len(OPS), 4))
for ax, op in zip(axes, OPS, strict=True):
    t = {(r["impl"], r["density"]): r["seconds"] for r in sweep if r["op"] == op}
    series = {impl: [t[impl, d] for d in densities] for impl in ("pageflags", "flat")}
    for impl, ys in series.items():
        ax.loglog(densities, ys, "o-", label=impl)
    where, what = crossover(densities, series["pageflags"], series["flat"])
    if where is not None:
        ax.axvline(where, color="grey", linestyle="--", label=f"crossover {where:.1e}")
    print(f"{op:12s} {what}" + (f": density {where:.2e}" if where is not None else ""))
    ax.set(title=op, xlabel="fraction of pages set", ylabel="best time (s)")
    ax.legend()
fig.tight_layout()
plt.show()"""),
    ("md", """\
Where the crossover lands depends on the space and the machine: a flat bitmap of a
small space sits in cache, and then its single load beats the table's two. Over the
sizes people simulate (46-bit: a 2 GiB flat bitmap), the grid above is the better
guide: counts and range scans skip `None` and `FULL` entries, while random lookups and
writes on dense chunks pay the indirection. Rerun with `PAGEFLAGS_NOTEBOOK_SMALL`
unset for the benchmark's sizes; `python -m pytest bench/bench_grid.py --benchmark-only
-o python_files='bench_*.py'` times the same grid with pytest-benchmark."""),
]

LIVE_PAGES = [
    ("md", """\
# 4. This machine's pages

`/proc/kpageflags` holds one 64-bit word of page flags per physical page; root can
read it. `PageFlagSet` reads it into one pageflags map per flag, so the questions
`page-types` answers (what kinds of pages, how many, where) become map algebra, and
snapshots can be kept and compared. Where the live file cannot be read (not root,
or `PAGEFLAGS_NOTEBOOK_FIXTURE=1`), the notebook writes a saved file in the same
format from a real machine's mix of flag words and reads that instead."""),
    ("code", setup("KPF, Geometry, MemoryMap, PageFlagSet", bench=False) + '''
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from pageflags import kpf, procfs  # noqa: E402


def live_readable():
    try:
        with open(procfs.KPAGEFLAGS, "rb") as f:
            return len(f.read(8)) == 8
    except OSError:
        return False


LIVE = live_readable() and os.environ.get("PAGEFLAGS_NOTEBOOK_FIXTURE") != "1"
WORK = Path(tempfile.mkdtemp(prefix="pageflags-live-"))
print("reading", procfs.KPAGEFLAGS if LIVE else "a saved fixture")'''),
    ("code", """\
# A 25 GiB machine's commonest raw flag words and their pages (from a real summary):
# the fixture's mix, in runs of equal words as on a real machine.
MIX = {0x0: 4671576, 0x400: 1635167, 0x402415828: 57743, 0x400005828: 27459,
       0x40000086c: 19851, 0x400415828: 18396, 0x402000028: 18338, 0x100000000: 9795,
       0x10080: 9621, 0x40000006c: 9137, 0x80241002c: 7871, 0x80: 5219, 0x8080: 4259,
       0x20204483c: 1716, 0x1410000: 511, 0x100000: 400}


def fixture_words(npages, seed=0):
    rng = np.random.default_rng(seed)
    words = np.array(list(MIX), dtype=np.uint64)
    p = np.array(list(MIX.values()), dtype=float)
    kinds = rng.choice(words.size, npages // 40 + 1, p=p / p.sum())
    out = np.repeat(words[kinds], rng.geometric(1 / 92, kinds.size))
    return np.resize(out, npages)


if LIVE:
    source = procfs.KPAGEFLAGS
else:
    before_words = fixture_words((1 << 19) if SMALL else (1 << 21))
    source = WORK / "kpageflags"
    before_words.astype("<u8").tofile(source)   # a saved file, as page-types -F reads

live = PageFlagSet.from_kpageflags(source)
print(live)
print(f"{live.nentries:,} entries ({live.nentries * 4096 / 2**30:.1f} GiB of pfns); "
      f"the maps take {live.nbytes / 2**20:.1f} MiB")
print("\\n".join(live.format_summary().splitlines()[:12]))"""),
    ("md", """\
## Pages by kind

Each kind is a page-types `-b` expression; a page counts under the first kind it
matches. `select` answers with a map, so the kinds also combine with any other map."""),
    ("code", """\
KINDS = {                       # -b expression (default mode) -> kind
    "nopage": "no page (hole)",
    "buddy": "free (buddy)",
    "slab": "slab",
    "pgtable": "page tables",
    "anon": "anonymous",
    "lru": "page cache (lru, not anon)",
    "=0": "no flag (kernel, tails, reserved)",
}


def by_kind(rows):
    \"\"\"Pages per kind from summary rows (a row goes to the first kind it matches).\"\"\"
    left = np.ones(rows.size, dtype=bool)
    out = {}
    for expr, name in KINDS.items():
        hit = left & kpf.match(rows["flags"], [kpf.parse_bits(expr)])
        out[name] = int(rows["pages"][hit].sum())
        left &= ~hit
    out["other"] = int(rows["pages"][left].sum())
    return out


kinds = by_kind(live.summary())
assert sum(kinds.values()) == live.nentries
for name, pages in kinds.items():
    print(f"{name:36s} {pages:>12,} pages {pages * 4096 / 2**30:8.2f} GiB")
print("THP pages:", live.select("thp").count(), "  of them mapped by a process:",
      live.select("thp", "mmap").count())

fig, ax = plt.subplots(figsize=(8, 3.5))
ax.barh(list(kinds), [p * 4096 / 2**30 for p in kinds.values()], color="tab:blue")
ax.invert_yaxis()
ax.set(xlabel="GiB", title="pages by kind")
fig.tight_layout()
plt.show()"""),
    ("md", """\
## By NUMA node and by memory block

kpageflags has no node field: nodes come from the sysfs memory-block tree
(`MemoryMap.from_sysfs`), pages outside any online block count as node -1. The
fixture's machine is made up, with two nodes."""),
    ("code", """\
if LIVE:
    memmap = MemoryMap.from_sysfs(geometry=live.geometry)
else:
    half = live.nentries // 2
    memmap = MemoryMap([[0, half - 4096], [half, live.nentries]], nodes=[0, 1],
                       geometry=live.geometry)
rows = live.summary_by_node(memmap)
nodes = np.unique(rows["node"]).tolist()
table = {node: by_kind(rows[rows["node"] == node]) for node in nodes}
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.5), width_ratios=[1, 2])
bottom = np.zeros(len(nodes))
for name in [*KINDS.values(), "other"]:
    gib = np.array([table[n][name] for n in nodes]) * 4096 / 2**30
    left.bar([str(n) for n in nodes], gib, bottom=bottom, label=name)
    bottom += gib
left.set(xlabel="node (-1: no node)", ylabel="GiB", title="pages by node")
left.legend(fontsize="x-small")

block_rows = live.summary_by_block(1 << 27)       # 128 MiB blocks
blocks = block_rows["block"].max() + 1
free = np.zeros(blocks)
hit = kpf.match(block_rows["flags"], [kpf.parse_bits("buddy")])
np.add.at(free, block_rows["block"][hit], block_rows["pages"][hit])
columns = 32
grid_free = np.full(-(-blocks // columns) * columns, np.nan)
grid_free[:blocks] = free / 32768
image = right.imshow(grid_free.reshape(-1, columns), cmap="viridis", vmin=0, vmax=1,
                     aspect="auto", interpolation="nearest")
right.set(title="free fraction of each 128 MiB block", xlabel="block in row",
          ylabel=f"row of {columns} blocks")
fig.colorbar(image, ax=right)
fig.tight_layout()
plt.show()"""),
    ("md", """\
## A snapshot diff across a workload

A child process allocates memory and dirties it, frees half of it and waits; the
notebook takes snapshots before, while the child holds its memory, and after it
exits. `diff` gives, per flag, the pages that gained it and those that lost it;
`from_pagemap` gives the child's own pages, to intersect with any flag. With the
fixture, the workload is played on the words instead: free pages become dirty
anonymous ones, and go back after."""),
    ("code", """\
MIB = 64 if SMALL else 512
WORKLOAD = f'''
import sys
import numpy as np
kept = np.ones({MIB} << 20, dtype=np.uint8)       # anonymous, written: dirty
freed = np.ones({MIB} << 20, dtype=np.uint8)
del freed                                          # unmapped: back to the buddy allocator
print("ready", flush=True)
sys.stdin.readline()
'''

if LIVE:
    before = live
    child = subprocess.Popen([sys.executable, "-c", WORKLOAD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    during = PageFlagSet.from_kpageflags()
    try:
        mine = PageFlagSet.from_pagemap(child.pid, during.geometry)
        print(f"the child mapped {mine.count('present'):,} pages; anonymous:",
              (during.select("anon") & mine["present"]).count())
    except PermissionError as exc:                  # pfns need CAP_SYS_ADMIN
        print("the child's pages:", exc)
    child.communicate("done\\n", timeout=60)
    after = PageFlagSet.from_kpageflags()
else:
    rng = np.random.default_rng(1)
    free = np.flatnonzero(before_words == 0x400)
    taken = rng.choice(free, min(free.size, (MIB << 20) // 4096), replace=False)
    during_words = before_words.copy()
    during_words[taken] = 0x5838                    # uptodate,dirty,lru,mmap,anon,swapbacked
    during_words.astype("<u8").tofile(WORK / "kpageflags-during")
    before = live
    during = PageFlagSet.from_kpageflags(WORK / "kpageflags-during")
    after = PageFlagSet.from_kpageflags(source)

before.save(WORK / "before")                        # snapshots are folders of maps
during.save(WORK / "during")
assert PageFlagSet.load(WORK / "during") == during

grown, shrunk = before.diff(during), during.diff(after)
names = [n for n in ("buddy", "anon", "dirty", "lru", "swapbacked", "mmap")
         if n in grown or n in shrunk]
print(f"{'flag':12s}{'gained':>12s}{'lost':>12s}   (before -> during)")
for n in names:
    g, lo = grown.get(n, (None, None))
    print(f"{n:12s}{g.count() if g else 0:>12,}{lo.count() if lo else 0:>12,}")

fig, ax = plt.subplots(figsize=(8, 3.5))
x = np.arange(len(names))
for k, (label, changes) in enumerate([("before -> during", grown), ("during -> after", shrunk)]):
    net = [changes[n][0].count() - changes[n][1].count() if n in changes else 0
           for n in names]
    ax.bar(x + (k - 0.5) * 0.4, np.array(net) * 4096 / 2**20, 0.4, label=label)
ax.axhline(0, color="black", linewidth=0.8)
ax.set_xticks(x, names)
ax.set(ylabel="MiB gained (net)", title="what the workload changed")
ax.legend()
fig.tight_layout()
plt.show()"""),
    ("md", """\
The same from the command line: `pageflags pages --save before`, run the workload,
`pageflags pages --save after`, then `pageflags pages --diff before after`; `--pid`,
`--by-node`, `--raw` and `--bits` work as page-types' `-p`, `-r` and `-b`."""),
]

NOTEBOOKS = {
    "01_scanning.ipynb": SCANNING,
    "02_hotplug.ipynb": HOTPLUG,
    "03_against_flat.ipynb": AGAINST_FLAT,
    "04_live_pages.ipynb": LIVE_PAGES,
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = notebook(cells)
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
