"""``pageflags pages``: page-types' job on the command line, from PageFlagSet.

The summary of the live ``/proc/kpageflags`` (or ``--file``: a saved copy, or a
folder of ``--save``) in page-types' default mode or ``--raw``, filtered by
``--bits``, for one process's pages (``--pid``), per NUMA node (``--by-node``);
``--save`` keeps the set as a snapshot, ``--diff A B`` compares two.  The run
function returns the dict ``--json`` prints; :func:`format_pages` draws the text.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

from . import kpf, procfs
from .flagset import PageFlagSet, format_rows


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``pages`` subcommand to the subparsers ``sub``."""
    pages: argparse.ArgumentParser = sub.add_parser(
        "pages", help="page-types: summary, filters, snapshots and diffs of kpageflags",
        description="The summary of /proc/kpageflags (root only) or a saved copy, as "
                    "page-types prints it; snapshots and their differences.")
    pages.add_argument("--file", metavar="SAVED", help=(
        "read a saved kpageflags file (as page-types -F) or a --save folder instead of "
        f"{procfs.KPAGEFLAGS}"))
    pages.add_argument("--raw", action="store_true",
                       help="raw mode (page-types -r): every bit, overloaded bits expanded")
    pages.add_argument("--bits", metavar="EXPR", action="append", help=(
        "only pages whose flags pass EXPR (page-types -b: 'dirty,lru' any, 'dirty,~lru', "
        "'=bit1,bit2' exactly); repeat to AND"))
    pages.add_argument("--pid", metavar="PID", help=(
        "only the pages process PID maps, from /proc/PID/pagemap (root only)"))
    pages.add_argument("--by-node", action="store_true",
                       help="one summary per NUMA node (nodes from sysfs)")
    pages.add_argument("--save", metavar="SNAPSHOT",
                       help="also save the set to the folder SNAPSHOT, for --diff later")
    pages.add_argument("--diff", nargs=2, metavar=("A", "B"), help=(
        "pages that gained and lost each flag from A to B (saved files or folders)"))
    pages.add_argument("--sysfs", metavar="ROOT", default="/sys/devices/system/memory",
                       help="the sysfs memory tree --by-node reads")
    pages.add_argument("--proc", metavar="ROOT", default="/proc",
                       help="the proc tree --pid reads")
    pages.add_argument("--json", action="store_true", help="print JSON for scripts")
    return pages


def _read(source: str) -> PageFlagSet:
    if os.path.isdir(source):
        return PageFlagSet.load(source)
    return PageFlagSet.from_kpageflags(source)


def _rows(rows: np.ndarray, page_size: int) -> list[dict[str, Any]]:
    return [{"flags": f"0x{flags:016x}", "pages": pages, "mb": pages * page_size >> 20,
             "symbolic": kpf.letters(flags), "names": kpf.long_names(flags)}
            for flags, pages in zip(rows["flags"].tolist(), rows["pages"].tolist(),
                                    strict=True)]


def run_pages(args: argparse.Namespace, usage_error: type[Exception]) -> dict[str, Any]:
    """The ``pages`` job; bad option combinations raise ``usage_error``."""
    if args.diff:
        for option in ("file", "pid", "save", "bits"):
            if getattr(args, option):
                raise usage_error(f"--diff compares two snapshots; it takes no --{option}")
        if args.by_node or args.raw:
            raise usage_error("--diff takes no --by-node or --raw")
        return _run_diff(*args.diff)
    source = args.file or procfs.KPAGEFLAGS
    for expr in args.bits or ():
        kpf.parse_bits(expr)  # a bad expression fails before the read
    fs = _read(source)
    within = None
    if args.pid is not None:
        pid = args.pid
        if pid != "self" and not pid.isdigit():
            raise usage_error(f"--pid must be a process id, got {pid!r}")
        within = PageFlagSet.from_pagemap(pid, fs.geometry, proc=args.proc)["present"]
    page_size = fs.geometry.page_size
    result: dict[str, Any] = {
        "command": "pages", "source": os.path.abspath(source),
        "mode": "raw" if args.raw else "default", "bits": args.bits or [],
        "pid": args.pid, "page_size": page_size, "entries": fs.nentries}
    if args.by_node:
        from .memmap import MemoryMap

        memmap = MemoryMap.from_sysfs(args.sysfs, geometry=fs.geometry)
        rows = fs.summary_by_node(memmap, args.raw, args.bits, within)
        result["nodes"] = {str(node): _rows(rows[rows["node"] == node], page_size)
                           for node in np.unique(rows["node"]).tolist()}
        result["total"] = sum(row["pages"] for rs in result["nodes"].values() for row in rs)
    else:
        rows = fs.summary(args.raw, args.bits, within)
        result["rows"] = _rows(rows, page_size)
        result["total"] = int(rows["pages"].sum())
    if args.save:
        fs.save(args.save)
        result["saved"] = os.path.abspath(args.save)
    return result


def _run_diff(a: str, b: str) -> dict[str, Any]:
    before, after = _read(a), _read(b)
    changes = before.diff(after)
    flags = []
    for name, (gained, lost) in changes.items():
        flags.append({"name": name,
                      "before": before.count(name) if name in before else 0,
                      "after": after.count(name) if name in after else 0,
                      "gained": gained.count(), "lost": lost.count()})
    return {"command": "pages", "diff": [os.path.abspath(a), os.path.abspath(b)],
            "entries": [before.nentries, after.nentries],
            "page_size": before.geometry.page_size, "flags": flags}


def _table(rows: list[dict[str, Any]], page_size: int) -> str:
    arr = np.array([(int(r["flags"], 16), r["pages"]) for r in rows],
                   dtype=[("flags", "<u8"), ("pages", "<i8")])
    return format_rows(arr, page_size)


def format_pages(result: dict[str, Any]) -> str:
    """The text of a ``pages`` result: page-types' table, one per node, or a diff."""
    page_size = result["page_size"]
    if "diff" in result:
        a, b = result["diff"]
        lines = [f"from {a}", f"  to {b}", "",
                 f"{'flag':<18}{'before':>12}{'after':>12}{'gained':>12}{'lost':>12}"]
        for row in result["flags"]:
            lines.append(f"{row['name']:<18}{row['before']:>12,}{row['after']:>12,}"
                         f"{row['gained']:>12,}{row['lost']:>12,}")
        return "\n".join(lines)
    lines = []
    if "nodes" in result:
        for node, rows in result["nodes"].items():
            lines += [f"node {node}" if node != "-1" else "no node (holes, offline)",
                      _table(rows, page_size), ""]
        lines.pop()
    else:
        lines.append(_table(result["rows"], page_size))
    if result.get("saved"):
        lines.append(f"saved to {result['saved']}")
    return "\n".join(lines)
