"""The ``pageflags`` command: ``scan`` (the main job), ``hotplug``, ``info`` and
``pages`` (page-types on a live machine's kpageflags, :mod:`pageflags._pages_cli`).

Argument parsing and printing only: the jobs are functions of
:mod:`pageflags.experiments` that return the dicts ``--json`` prints (their keys are
documented there and stay stable).  Errors are one line on stderr and a non-zero exit
status, never a traceback: 2 for a bad option, 1 for a bad value (a size, or memory
that does not fit the address space).

Examples
--------
>>> main(["info", "--phys-bits", "52", "--json"]) == 0  # doctest: +ELLIPSIS
{...
True
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import _pages_cli, experiments
from ._sizes import human_size
from .geometry import Geometry, capacity

#: The file ``--plot FOLDER`` writes in the folder.
PLOT_NAME = "hotplug.png"


class UsageError(Exception):
    """A bad option or size: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        raise UsageError(message)


def _check_common(args: argparse.Namespace) -> None:
    """Option checks that name the option (the library names its parameter)."""
    if args.nodes < 1:
        raise UsageError(f"--nodes must be >= 1, got {args.nodes}")
    if not 0.0 <= args.density <= 1.0:
        raise UsageError(f"--density must be in [0, 1], got {args.density}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    for option in ("repeat", "walk", "events", "batch"):
        value = getattr(args, option, None)
        if value is not None and value < 1:
            raise UsageError(f"--{option} must be >= 1, got {value}")


def run_scan(args: argparse.Namespace) -> dict[str, Any]:
    _check_common(args)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.workers is not None or args.scheduler is not None:
        try:
            import distributed  # noqa: F401  (only to see whether it is installed)
        except ImportError:
            raise UsageError('--workers and --scheduler need Dask: '
                             'pip install "pageflags[distributed]"') from None
    return experiments.scan(args.phys_bits, args.memory, args.nodes, density=args.density,
                            seed=args.seed, repeat=args.repeat, flat=not args.no_flat,
                            walk=args.walk, workers=args.workers, scheduler=args.scheduler)


def run_hotplug(args: argparse.Namespace) -> dict[str, Any]:
    _check_common(args)
    plot = _plot_path(args.plot) if args.plot else None  # fail before the run, not after
    result = experiments.hotplug(args.phys_bits, args.memory, args.nodes,
                                 events=args.events, batch=args.batch, seed=args.seed,
                                 density=args.density, flat=not args.no_flat)
    if plot is not None:
        experiments.plot_hotplug(result).savefig(plot, format=plot.suffix[1:].lower(),
                                                 dpi=100)
        result["plot"] = str(plot)
    return result


def _plot_path(option: str) -> Path:
    """The file ``--plot`` names, checked: a folder gets ``PLOT_NAME`` inside it, a
    name without a suffix gets ``.png``, and matplotlib must write the format."""
    path = Path(option)
    if path.is_dir():
        path = path / PLOT_NAME
    elif not path.suffix:
        path = path.with_name(path.name + ".png")
    formats = _plot_formats()
    if path.suffix[1:].lower() not in formats:
        raise UsageError(f"--plot {option}: matplotlib cannot write {path.suffix!r} files "
                         f"(use one of {', '.join('.' + f for f in sorted(formats))})")
    folder = path.resolve().parent
    if not folder.is_dir():
        raise UsageError(f"--plot {option}: no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--plot {option}: folder {folder} is not writable")
    return path


def _plot_formats() -> set[str]:
    """File suffixes matplotlib can save to, without a display."""
    try:
        import matplotlib  # noqa: F401  (fails first when matplotlib is missing)
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install matplotlib") from None
    return set(FigureCanvasBase.get_supported_filetypes())


def _format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _speedup(flat_s: float, pageflags_s: float) -> str:
    ratio = flat_s / max(pageflags_s, 1e-12)
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.2g}x"


def _notes(result: dict[str, Any]) -> list[str]:
    lines = []
    if result["agree"]:
        lines.append("pageflags and flat agree on every result")
    if result["note"]:
        lines.append(f"note: {result['note']}")
    lines += [f"why: {line}" for line in result.get("why") or ()]
    return lines


def format_scan(result: dict[str, Any]) -> str:
    g = result["geometry"]
    flat = "flat" in result["nbytes"]
    lines = [f"{g['phys_addr_bits']}-bit space, {human_size(result['memory'])} present in "
             f"{len(result['nodes'])} nodes ({result['ranges']} ranges), "
             f"{result['dirty_pages']:,} dirty pages", ""]
    width = max(len(row["operation"]) for row in result["times"]) + 2
    sharded = result.get("sharded")
    header = f"{'operation':<{width}}{'pageflags':>11}"
    if flat:
        header += f"{'flat':>11}{'speed-up':>10}"
    if sharded:
        header += f"{'sharded':>11}"
    lines += [header, "-" * len(header)]
    for row in result["times"]:
        line = f"{row['operation']:<{width}}{_format_seconds(row['pageflags']):>11}"
        if flat:
            line += (f"{_format_seconds(row['flat']):>11}"
                     f"{_speedup(row['flat'], row['pageflags']):>10}")
        if sharded:
            line += f"{_format_seconds(row['sharded']) if 'sharded' in row else '-':>11}"
        lines.append(line)
    lines.append("")
    for name, sizes in result["nbytes"].items():
        lines.append(f"memory {name:<10} present map {human_size(sizes['present']):>10}, "
                     f"dirty map {human_size(sizes['dirty']):>10}")
    if sharded:
        lines.append(f"sharded: {sharded['present_shards']} of {sharded['shards']} shards of "
                     f"{sharded['shard_pages']:,} pages on {sharded['workers']} Dask "
                     "workers, agreeing with pageflags")
    return "\n".join(lines + _notes(result))


def format_hotplug(result: dict[str, Any]) -> str:
    g = result["geometry"]
    present = result["present_bytes"]
    lines = [f"{g['phys_addr_bits']}-bit space, {human_size(result['memory'])} in "
             f"{result['nodes']} nodes; {result['events']:,} hotplug events in batches "
             f"of {result['batch']} (seed {result['seed']})",
             f"sections added {result['added']:,}, removed {result['removed']:,}; "
             f"present memory {human_size(present['start'])} at the start, "
             f"{human_size(present['end'])} at the end, {human_size(present['peak'])} "
             "at the peak", ""]
    header = f"{'memory':<22}{'start':>11}{'end':>11}{'peak':>11}"
    lines += [header, "-" * len(header)]
    for impl, by_map in result["nbytes"].items():
        for m, s in by_map.items():
            lines.append(f"{impl + ' ' + m:<22}" + "".join(
                f"{human_size(s[k]):>11}" for k in ("start", "end", "peak")))
    flat = "flat" in result["nbytes"]
    header = f"{'scan, per map':<22}{'pageflags':>11}"
    if flat:
        header += f"{'flat':>11}{'speed-up':>10}"
    lines += ["", header, "-" * len(header)]
    for probe, by_impl in result["scan_seconds"].items():
        for stat in ("median", "max"):
            pf = by_impl["pageflags"][stat]
            line = f"{probe + ' (' + stat + ')':<22}{_format_seconds(pf):>11}"
            if flat:
                fl = by_impl["flat"][stat]
                line += f"{_format_seconds(fl):>11}{_speedup(fl, pf):>10}"
            lines.append(line)
    lines.append("")
    if "plot" in result:
        lines.append(f"plot written to {result['plot']}")
    return "\n".join(lines + _notes(result))


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


def _machine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phys-bits", type=int, default=46,
                        help="physical address bits (46: 4-level paging, 52: 5-level)")
    parser.add_argument("--memory", default="2TiB", help="present memory, e.g. 2TiB")
    parser.add_argument("--nodes", type=int, default=8, help="NUMA nodes")
    parser.add_argument("--density", type=float, default=0.01,
                        help="fraction of present pages in the dirty map")
    parser.add_argument("--seed", type=int, default=0, help="seed of the machine and data")
    parser.add_argument("--no-flat", action="store_true",
                        help="skip the flat bitmaps (for spaces they cannot fit in memory)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pageflags", description=(
        "Page-flag bitmaps of huge physical address spaces: scan (the main job), "
        "hotplug, info and pages."))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    jobs = {"scan": "bulk scans on a simulated machine, pageflags vs flat",
            "hotplug": "memory and scan times over hotplug events, pageflags vs flat"}
    job = {}
    for name, help_text in jobs.items():
        job[name] = sub.add_parser(name, help=help_text, description=getattr(
            experiments, name).__doc__.splitlines()[0])
        _machine_options(job[name])
    job["scan"].add_argument("--repeat", type=int, default=3, help="best of N timings")
    job["scan"].add_argument("--walk", type=int, default=100_000,
                             help="dirty pages of the find_next_set walk from pfn 0")
    where = job["scan"].add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", help=(
        "also run the builds, counts and walk sharded on a local Dask cluster of N "
        "single-threaded workers (needs pageflags[distributed])"))
    where.add_argument("--scheduler", metavar="ADDRESS", help=(
        "the same on a running Dask scheduler, e.g. tcp://10.0.0.1:8786"))
    job["hotplug"].add_argument("--events", type=int, default=4096,
                                help="add/remove events")
    job["hotplug"].add_argument("--batch", type=int, default=256,
                                help="events between two measurements")
    job["hotplug"].add_argument("--plot", metavar="FILE.png", help=(
        "draw memory and scan time against events (needs matplotlib); the suffix picks "
        f"the format (.png, .pdf, .svg, ...), a folder gets {PLOT_NAME} in it"))
    info = sub.add_parser("info", help="geometry and costs of a physical address space")
    info.add_argument("--phys-bits", type=int, default=46)
    info.add_argument("--page-shift", type=int, default=12)
    info.add_argument("--chunk-shift", type=int, default=15)
    info.add_argument("--json", action="store_true")
    _pages_cli.add_parser(sub)
    return parser


def run_pages(args: argparse.Namespace) -> dict[str, Any]:
    return _pages_cli.run_pages(args, UsageError)


COMMANDS = {"scan": (run_scan, format_scan), "hotplug": (run_hotplug, format_hotplug),
            "info": (run_info, format_info), "pages": (run_pages, _pages_cli.format_pages)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        compute, render = COMMANDS[args.command]
        result = compute(args)
    except UsageError as exc:
        print(f"pageflags: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, IndexError, MemoryError, RuntimeError, OSError) as exc:
        print(f"pageflags: error: {exc}", file=sys.stderr)
        return 1
    try:
        print(json.dumps(result, indent=2) if args.json else render(result), flush=True)
    except BrokenPipeError:  # `pageflags scan | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
