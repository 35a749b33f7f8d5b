"""bench/ratios.py: the long table (one row per implementation) and the wide grid table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "ratios.py"
spec = importlib.util.spec_from_file_location("ratios", SCRIPT)
ratios = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ratios)


def bench(group: str, impl: str, seconds: float) -> dict:
    return {"name": f"{group}-{impl}", "group": group, "extra_info": {"impl": impl},
            "stats": {"min": seconds}}


RUN = {"benchmarks": [bench("count 46-bit full", "flat", 2e-3),
                      bench("count 46-bit full", "pageflags", 1e-6),
                      bench("count 46-bit full", "pyroaring", 4e-3),
                      bench("a | b 52-bit sparse", "pageflags", 0.5),
                      bench("a | b 52-bit sparse", "pyroaring", 0.25)]}


def test_long_table_compares_each_row_with_flat():
    lines = ratios.ratio_table(RUN).splitlines()
    assert lines[0] == "| operation | implementation | best time | vs flat |"
    assert "| count 46-bit full | pageflags | 1 us | 2,000.0x |" in lines
    assert "| count 46-bit full | flat | 2 ms |  |" in lines


def test_wide_table_has_a_column_per_implementation_and_escapes_pipes():
    lines = ratios.wide_table(RUN).splitlines()
    assert lines[0] == "| operation | pageflags | flat | pyroaring |"
    assert "| count 46-bit full | 2,000.00x | 2 ms (base) | 0.50x |" in lines
    # No flat in a 52-bit group: pageflags is the baseline there.
    assert r"| a \| b 52-bit sparse | 500 ms (base) |  | 2.00x |" in lines


def test_main_takes_one_file_and_an_optional_wide(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(RUN))
    assert ratios.main([str(path), "--wide"]) == 0
    assert "| operation | pageflags | flat | pyroaring |" in capsys.readouterr().out
    assert ratios.main([]) == 2
