"""The ``pageflags`` command: output, JSON, and one-line errors."""

import json
import subprocess
import sys

import pytest

from pageflags.cli import main

SMALL = ["--phys-bits", "34", "--memory", "1GiB", "--nodes", "2", "--repeat", "1"]


def test_scan_prints_a_table_with_both_implementations(capsys):
    assert main(["scan", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "34-bit space, 1 GiB present in 2 nodes" in out
    for op in ("count", "count by node", "test_many", "build present"):
        assert op in out
    assert "speed-up" in out and "memory flat" in out and "memory pageflags" in out


def test_scan_json_is_machine_readable(capsys):
    assert main(["scan", *SMALL, "--json", "--density", "0.1", "--seed", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["geometry"]["phys_addr_bits"] == 34
    assert result["dirty_pages"] > 0.09 * (1 << 18)
    assert {row["operation"] for row in result["times"]} >= {"count", "count by node"}
    assert all(row["pageflags"] > 0 and row["flat"] > 0 for row in result["times"])
    assert result["nbytes"]["flat"]["present"] == 1 << 19


def test_scan_without_flat(capsys):
    assert main(["scan", *SMALL, "--no-flat", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["nbytes"]) == {"pageflags"}
    assert all("flat" not in row for row in result["times"])


def test_info_shows_the_seed_capacity(capsys):
    assert main(["info", "--phys-bits", "52"]) == 0
    out = capsys.readouterr().out
    assert "2 TiB" in out and "1,099,511,627,776" in out  # 2**40 pages
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["seed_capacity_bytes"] == 2 << 40 and info["flat_bytes"] == 2 << 30


@pytest.mark.parametrize("argv, words", [
    (["scan", "--memory", "3GB"], "unknown unit 'GB'"),
    (["scan", "--memory", "128TiB"], "does not fit a 46-bit space"),
    (["scan", "--nodes", "0"], "--nodes must be >= 1"),
    (["scan", "--density", "2"], "--density must be in [0, 1]"),
    (["scan", "--bogus"], "unrecognized arguments: --bogus"),
    (["info", "--chunk-shift", "3"], "chunk_shift must be >= 6"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_errors_are_one_line_and_non_zero(capsys, argv, words):
    assert main(argv) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and words in captured.err
    assert captured.err.startswith("pageflags: error: ")


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "pageflags", "info", "--phys-bits", "40"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "phys_addr_bits" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "pageflags", "scan", "--memory", "x"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
