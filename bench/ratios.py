"""Turn a saved pytest-benchmark run into a markdown table of ratios.

Usage::

    python -m pytest bench --benchmark-only --benchmark-json=bench.json
    python bench/ratios.py bench.json

Each group's rows are compared with its ``flat`` row (``extra_info["impl"]``): the
ratio is flat's time over the row's time, so 2.0 means twice as fast as flat.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def ratio_table(run: dict) -> str:
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in run["benchmarks"]:
        impl = bench.get("extra_info", {}).get("impl", bench["name"])
        groups[bench["group"] or bench["name"]][impl] = bench["stats"]["min"]
    lines = ["| operation | implementation | best time | vs flat |", "|---|---|---|---|"]
    for group, times in groups.items():
        flat = times.get("flat")
        for impl, seconds in sorted(times.items(), key=lambda item: item[1]):
            ratio = f"{flat / seconds:,.1f}x" if flat and impl != "flat" else ""
            lines.append(f"| {group} | {impl} | {_human(seconds)} | {ratio} |")
    machine = run.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", "unknown CPU")
    lines.append(f"\nMeasured on {cpu}, Python {machine.get('python_version', '?')}.")
    return "\n".join(lines)


def _human(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python bench/ratios.py RUN.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        print(ratio_table(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
