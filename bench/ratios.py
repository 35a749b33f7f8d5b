"""Turn a saved pytest-benchmark run into a markdown table of ratios.

Usage::

    python -m pytest bench --benchmark-only --benchmark-json=bench.json
    python bench/ratios.py bench.json
    python bench/ratios.py --wide bench.json

Each group's rows are compared with its ``flat`` row (``extra_info["impl"]``): the
ratio is flat's time over the row's time, so 2.0 means twice as fast as flat.
``--wide`` prints one row per group and one column per implementation (the grid of
``bench/bench_grid.py``): each cell is that implementation's ratio against flat, or
against pageflags where a group has no flat row (52-bit spaces).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def best_times(run: dict) -> dict[str, dict[str, float]]:
    """Group -> implementation -> best (minimum) time in seconds."""
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in run["benchmarks"]:
        impl = bench.get("extra_info", {}).get("impl", bench["name"])
        groups[bench["group"] or bench["name"]][impl] = bench["stats"]["min"]
    return groups


def ratio_table(run: dict) -> str:
    groups = best_times(run)
    lines = ["| operation | implementation | best time | vs flat |", "|---|---|---|---|"]
    for group, times in groups.items():
        flat = times.get("flat")
        for impl, seconds in sorted(times.items(), key=lambda item: item[1]):
            ratio = f"{flat / seconds:,.1f}x" if flat and impl != "flat" else ""
            lines.append(f"| {_cell(group)} | {impl} | {_human(seconds)} | {ratio} |")
    lines.append(_measured_on(run))
    return "\n".join(lines)


def wide_table(run: dict, first: tuple[str, ...] = ("pageflags", "flat")) -> str:
    """One row per group, one column per implementation: ratios against the baseline.

    The baseline is ``flat``, or ``pageflags`` in a group without flat; a ratio above
    1 means faster than the baseline, and the baseline's own cell shows its best time.
    """
    groups = best_times(run)
    seen = {impl for times in groups.values() for impl in times}
    impls = [i for i in first if i in seen] + sorted(seen - set(first))
    lines = ["| operation | " + " | ".join(impls) + " |", "|---" * (len(impls) + 1) + "|"]
    for group, times in groups.items():
        base = "flat" if "flat" in times else "pageflags"
        cells = []
        for impl in impls:
            if impl not in times:
                cells.append("")
            elif impl == base:
                cells.append(f"{_human(times[impl])} (base)")
            elif base in times:
                cells.append(f"{times[base] / times[impl]:,.2f}x")
            else:
                cells.append(_human(times[impl]))
        lines.append(f"| {_cell(group)} | " + " | ".join(cells) + " |")
    lines.append("\nRatios are the baseline's best time over the implementation's: above 1"
                 " is faster.")
    lines.append(_measured_on(run))
    return "\n".join(lines)


def _measured_on(run: dict) -> str:
    machine = run.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", "unknown CPU")
    return f"\nMeasured on {cpu}, Python {machine.get('python_version', '?')}."


def _cell(text: str) -> str:
    """``text`` safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def _human(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    wide = "--wide" in args
    args = [a for a in args if a != "--wide"]
    if len(args) != 1:
        print("usage: python bench/ratios.py [--wide] RUN.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        run = json.load(f)
    print(wide_table(run) if wide else ratio_table(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
