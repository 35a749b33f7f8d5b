"""The ``pageflags`` command: ``scan`` (the main job) and ``info``.

Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._sizes import human_size, parse_size
from .bitmap import PageFlags
from .flat import FlatPageFlags
from .geometry import Geometry, capacity


class UsageError(Exception):
    """A bad option or size: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        raise UsageError(message)


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        print(f"... {message}", file=sys.stderr, flush=True)


def _best_time(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def node_ranges(geometry: Geometry, memory: int, nodes: int) -> np.ndarray:
    """``(nodes, 2)`` pfn ranges: equal nodes at equal strides across the space."""
    if nodes < 1:
        raise UsageError(f"--nodes must be >= 1, got {nodes}")
    node_pages = (memory // nodes) >> geometry.page_shift
    stride = geometry.npages // nodes
    if node_pages < 1:
        raise UsageError(f"--memory {human_size(memory)} is less than a page per node")
    if node_pages > stride:
        raise UsageError(
            f"--memory {human_size(memory)} in {nodes} nodes does not fit a "
            f"{geometry.phys_addr_bits}-bit space ({human_size(geometry.memory_bytes)})")
    starts = np.arange(nodes, dtype=np.int64) * stride
    return np.stack([starts, starts + node_pages], axis=1)


def _flat_fits(geometry: Geometry, maps: int) -> bool:
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # not every platform reports it
        return True
    return maps * geometry.flat_bytes < available // 2


def run_scan(args: argparse.Namespace) -> dict[str, Any]:
    geometry = Geometry(args.phys_bits)
    memory = parse_size(args.memory)
    nodes = node_ranges(geometry, memory, args.nodes)
    if not 0.0 <= args.density <= 1.0:
        raise UsageError(f"--density must be in [0, 1], got {args.density}")
    if args.repeat < 1:
        raise UsageError(f"--repeat must be >= 1, got {args.repeat}")
    with_flat = not args.no_flat and _flat_fits(geometry, 2)
    note = None
    if not args.no_flat and not with_flat:
        note = (f"a flat bitmap of a {geometry.phys_addr_bits}-bit space takes "
                f"{human_size(geometry.flat_bytes)} a map: too much for this machine, "
                "so the flat columns are skipped")
    rng = np.random.default_rng(args.seed)
    present_pages = int((nodes[:, 1] - nodes[:, 0]).sum())
    ndirty = int(present_pages * args.density)
    which = rng.integers(0, len(nodes), ndirty)
    dirty_pfns = nodes[which, 0] + rng.integers(0, nodes[which, 1] - nodes[which, 0])
    probes = rng.integers(0, geometry.npages, min(1 << 22, max(ndirty, 1 << 16)))

    kinds = {"pageflags": PageFlags}
    if with_flat:
        kinds["flat"] = FlatPageFlags
    maps: dict[str, tuple[Any, Any]] = {}
    build_times: dict[str, dict[str, float]] = {"build present": {}, "build dirty": {}}
    for name, kind in kinds.items():
        _warm_up(kind)
        _progress(f"building the {name} maps")
        present, dirty = kind(geometry), kind(geometry)
        start = time.perf_counter()
        for lo, hi in nodes.tolist():
            present.set_range(lo, hi)
        build_times["build present"][name] = time.perf_counter() - start
        start = time.perf_counter()
        dirty.set_many(dirty_pfns)
        build_times["build dirty"][name] = time.perf_counter() - start
        maps[name] = (present, dirty)

    operations: dict[str, Callable[[Any, Any], Any]] = {
        "count": lambda p, d: d.count(),
        "count by node": lambda p, d: [d.count(lo, hi) for lo, hi in nodes.tolist()],
        "count present": lambda p, d: p.count(),
        f"test_many ({len(probes):,} pfns)": lambda p, d: d.test_many(probes),
    }
    rows = [{"operation": op, **{k: times[k] for k in kinds}}
            for op, times in build_times.items()]
    for op, fn in operations.items():
        _progress(op)
        results = {name: fn(*pair) for name, pair in maps.items()}  # warms the JIT
        if with_flat and not _same(results["pageflags"], results["flat"]):
            raise RuntimeError(f"pageflags and flat disagree on {op}")
        rows.append({"operation": op, **{
            name: _best_time(lambda fn=fn, pair=pair: fn(*pair), args.repeat)
            for name, pair in maps.items()}})
    memory_rows = {name: {"present": p.nbytes, "dirty": d.nbytes}
                   for name, (p, d) in maps.items()}
    return {"geometry": geometry.describe(), "memory": memory, "nodes": nodes.tolist(),
            "dirty_pages": int(maps["pageflags"][1].count()), "times": rows,
            "nbytes": memory_rows, "note": note}


def _warm_up(kind: type) -> None:
    """Compile (or load from cache) the build kernels, so build times exclude the JIT."""
    tiny = kind(Geometry.from_npages(1 << 16))
    tiny.set_range(10, 1 << 15)
    tiny.set_many(np.arange(3))


def _same(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def format_scan(result: dict[str, Any]) -> str:
    g = result["geometry"]
    flat = "flat" in result["nbytes"]
    lines = [f"{g['phys_addr_bits']}-bit space, {human_size(result['memory'])} present in "
             f"{len(result['nodes'])} nodes, {result['dirty_pages']:,} dirty pages", ""]
    header = f"{'operation':<32}{'pageflags':>12}"
    if flat:
        header += f"{'flat':>12}{'speed-up':>12}"
    lines += [header, "-" * len(header)]
    for row in result["times"]:
        line = f"{row['operation']:<32}{_format_seconds(row['pageflags']):>12}"
        if flat:
            line += f"{_format_seconds(row['flat']):>12}{row['flat'] / row['pageflags']:>11.1f}x"
        lines.append(line)
    lines.append("")
    for name, sizes in result["nbytes"].items():
        lines.append(f"memory {name:<10} present map {human_size(sizes['present']):>10}, "
                     f"dirty map {human_size(sizes['dirty']):>10}")
    if result["note"]:
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> dict[str, Any]:
    g = Geometry(args.phys_bits, args.page_shift, args.chunk_shift)
    info = g.describe()
    entry_bytes = np.dtype(object).itemsize + 8 + 4  # object pointer, address, count
    info.update(
        table_bytes=g.nchunks * entry_bytes,
        fully_allocated_bytes=g.nchunks * (entry_bytes + g.chunk_bytes),
        seed_capacity_bytes=capacity(512, 128 * 1024, 4096),
        capacity_with_this_chunk=capacity(g.nchunks, g.chunk_bytes, g.page_size))
    return info


def format_info(info: dict[str, Any]) -> str:
    sizes = {"memory_bytes", "flat_bytes", "table_bytes", "fully_allocated_bytes",
             "seed_capacity_bytes", "capacity_with_this_chunk", "chunk_bytes", "page_size"}
    lines = []
    for key, value in info.items():
        shown = f"{value:,}" + (f"  ({human_size(value)})" if key in sizes else "")
        lines.append(f"{key:<26}{shown}")
    lines.append("seed capacity: 512 entries x 128 KiB chunks x 8 bits x 4 KiB pages = 2 TiB")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pageflags", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    scan = sub.add_parser("scan", help="bulk scans on a simulated machine, pageflags vs flat")
    scan.add_argument("--phys-bits", type=int, default=46)
    scan.add_argument("--memory", default="2TiB", help="present memory, e.g. 2TiB")
    scan.add_argument("--nodes", type=int, default=8)
    scan.add_argument("--density", type=float, default=0.01,
                      help="fraction of present pages in the dirty map")
    scan.add_argument("--seed", type=int, default=0)
    scan.add_argument("--repeat", type=int, default=3, help="best of N timings")
    scan.add_argument("--no-flat", action="store_true",
                      help="skip the flat bitmaps (for spaces they cannot fit in memory)")
    scan.add_argument("--json", action="store_true", help="print JSON for scripts")
    info = sub.add_parser("info", help="geometry and costs of a physical address space")
    info.add_argument("--phys-bits", type=int, default=46)
    info.add_argument("--page-shift", type=int, default=12)
    info.add_argument("--chunk-shift", type=int, default=15)
    info.add_argument("--json", action="store_true")
    return parser


COMMANDS = {"scan": (run_scan, format_scan), "info": (run_info, format_info)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        compute, render = COMMANDS[args.command]
        result = compute(args)
    except UsageError as exc:
        print(f"pageflags: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, IndexError, MemoryError) as exc:
        print(f"pageflags: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0
