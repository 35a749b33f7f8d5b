"""The ``pageflags`` command: output, JSON, plots, and one-line errors.

Small machines only (a 34- or 36-bit space with 1 to 4 GiB), and never a timing.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from pageflags import experiments
from pageflags.cli import main

MACHINE = ["--phys-bits", "34", "--memory", "1GiB", "--nodes", "2"]
SMALL = [*MACHINE, "--repeat", "1", "--walk", "500"]
HOTPLUG = ["--phys-bits", "36", "--memory", "4GiB", "--nodes", "2", "--events", "300",
           "--batch", "100"]
SCAN_OPERATIONS = {"build present", "build dirty", "count", "count present", "count by node",
                   "find walk, per section", "find walk, first 500 pages", "to_array",
                   "dirty & present", "dirty | present", "count_and"}


def test_scan_prints_a_table_with_both_implementations(capsys):
    assert main(["scan", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "34-bit space, 1 GiB present in 2 nodes" in out
    for op in SCAN_OPERATIONS | {"test_many"}:
        assert op in out
    assert "speed-up" in out and "memory flat" in out and "memory pageflags" in out
    assert "pageflags and flat agree on every result" in out


def test_scan_json_is_machine_readable_and_stable(capsys):
    assert main(["scan", *SMALL, "--json", "--density", "0.1", "--seed", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert tuple(result) == experiments.SCAN_KEYS
    assert result["command"] == "scan" and result["agree"] is True
    assert result["geometry"]["phys_addr_bits"] == 34
    assert result["present_pages"] == 1 << 18 and result["memory"] == 1 << 30
    assert 0.09 * (1 << 18) < result["dirty_pages"] <= 0.1 * (1 << 18)
    assert len(result["nodes"]) == 2 and result["seed"] == 3 and result["repeat"] == 1
    ops = {row["operation"] for row in result["times"]}
    assert SCAN_OPERATIONS <= ops and sum(op.startswith("test_many") for op in ops) == 2
    for row in result["times"]:
        assert set(row) == {"operation", "pageflags", "flat", "speedup"}
        assert row["pageflags"] > 0 and row["flat"] > 0
    assert result["nbytes"]["flat"]["present"] == 1 << 19


def test_scan_is_a_function_of_its_seed(capsys):
    outputs = []
    for _ in range(2):
        assert main(["scan", *SMALL, "--json", "--no-flat", "--seed", "5"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0]["dirty_pages"] == outputs[1]["dirty_pages"]
    assert outputs[0]["nodes"] == outputs[1]["nodes"]


def test_scan_without_flat(capsys):
    assert main(["scan", *SMALL, "--no-flat", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["nbytes"]) == {"pageflags"} and result["agree"] is None
    assert all(set(row) == {"operation", "pageflags"} for row in result["times"])
    assert main(["scan", *SMALL, "--no-flat"]) == 0
    out = capsys.readouterr().out
    assert "speed-up" not in out and "memory flat" not in out


def test_flat_that_does_not_fit_is_skipped_with_a_note(capsys, monkeypatch):
    monkeypatch.setattr(experiments, "flat_fits", lambda geometry, maps: False)
    assert main(["scan", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "note: a flat bitmap of a 34-bit space takes 512 KiB a map" in out
    assert "memory flat" not in out


def test_scan_progress_goes_to_stderr_only_on_a_terminal(capsys):
    assert main(["scan", *SMALL]) == 0
    assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal
    result = experiments.scan(34, "1 GiB", 2, repeat=1, walk=10, progress=True)
    err = capsys.readouterr().err
    assert "building the pageflags maps" in err and "to_array" in err and result["agree"]


def test_hotplug_prints_a_summary(capsys):
    assert main(["hotplug", *HOTPLUG]) == 0
    out = capsys.readouterr().out
    assert "36-bit space, 4 GiB in 2 nodes; 300 hotplug events in batches of 100" in out
    for words in ("sections added", "present memory 4 GiB at the start",
                  "pageflags dirty", "flat total", "count (median)", "walk (max)",
                  "pageflags and flat agree on every result"):
        assert words in out


def test_hotplug_json_is_machine_readable_and_stable(capsys):
    assert main(["hotplug", *HOTPLUG, "--json", "--seed", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert tuple(result) == experiments.HOTPLUG_KEYS
    assert result["command"] == "hotplug" and result["agree"] is True
    assert result["added"] + result["removed"] == result["events"] == 300
    batches = result["batches"]
    assert batches["events"] == [100, 200, 300]
    assert result["present_bytes"]["end"] == batches["present_pages"][-1] * 4096
    assert result["present_bytes"]["start"] == 4 << 30
    for impl in ("pageflags", "flat"):
        assert set(result["nbytes"][impl]) == {"present", "dirty", "total"}
        for s in result["nbytes"][impl].values():
            assert s["peak"] >= max(s["start"], s["end"])
        for probe in ("count", "walk"):
            assert set(result["scan_seconds"][probe][impl]) == {"median", "max"}
            assert all(len(v) == 3 for v in batches["seconds"][probe][impl].values())
    assert batches["nbytes"]["flat"]["present"] == [1 << 21] * 3
    assert result["nbytes"]["pageflags"]["total"]["peak"] < 1 << 21


def test_hotplug_without_flat(capsys):
    assert main(["hotplug", *HOTPLUG, "--no-flat", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["nbytes"]) == {"pageflags"} and result["agree"] is None
    assert set(result["scan_seconds"]["count"]) == {"pageflags"}


def test_hotplug_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "hotplug.png"
    assert main(["hotplug", *HOTPLUG, "--plot", str(path)]) == 0
    assert f"plot written to {path}" in capsys.readouterr().out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_into_a_folder_or_without_a_suffix_reports_the_file_written(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["hotplug", *HOTPLUG, "--plot", str(tmp_path)]) == 0
    written = tmp_path / "hotplug.png"
    assert f"plot written to {written}\n" in capsys.readouterr().out
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["hotplug", *HOTPLUG, "--json", "--plot", str(tmp_path / "run")]) == 0
    assert json.loads(capsys.readouterr().out)["plot"] == str(tmp_path / "run.png")
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_format_is_checked_before_the_run(capsys, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")

    def no_run(*args, **kwargs):
        """Stands in for the experiment, which must not run."""
        raise AssertionError("the experiment ran before the plot path was checked")

    monkeypatch.setattr(experiments, "hotplug", no_run)
    for name in ("x.zzz", "x.PNGG"):
        assert main(["hotplug", *HOTPLUG, "--plot", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "matplotlib cannot write" in err and ".png" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, error, match", [
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": 0.5}, TypeError, "seed must be an integer"),
    ({"repeat": 1.5}, TypeError, "repeat must be an integer"),
    ({"walk": True}, TypeError, "walk must be an integer"),
    ({"density": "0.1"}, TypeError, "density must be a number"),
    ({"nodes": np.timedelta64(2)}, TypeError, "nodes must be an integer"),
    ({"workers": 0}, ValueError, "workers must be >= 1"),
])
def test_experiments_name_the_bad_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        experiments.scan(**{"phys_addr_bits": 34, "memory": "1 GiB", "nodes": 2,
                            "progress": False, **kwargs})


def test_experiments_take_numpy_integers():
    r = experiments.hotplug(36, "4 GiB", np.int64(2), events=np.int64(100),
                            batch=np.int32(50), seed=np.uint8(1), flat=False, progress=False)
    assert r["batches"]["events"] == [50, 100]
    assert json.loads(json.dumps(r))["batch"] == 50  # the result stays JSON-ready


def test_plot_without_matplotlib_is_a_one_line_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    path = tmp_path / "hotplug.png"
    assert main(["hotplug", *HOTPLUG, "--plot", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not path.exists()
    assert captured.err == "pageflags: error: --plot needs matplotlib: pip install matplotlib\n"


def test_info_shows_the_seed_capacity(capsys):
    assert main(["info", "--phys-bits", "52"]) == 0
    out = capsys.readouterr().out
    assert "2 TiB" in out and "1,099,511,627,776" in out  # 2**40 pages
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["seed_capacity_bytes"] == 2 << 40 and info["flat_bytes"] == 2 << 30


@pytest.mark.parametrize("argv, words", [
    (["scan", "--memory", "3GB"], "unknown unit 'GB'"),
    (["scan", "--memory", "lots"], "expected a number and a unit"),
    (["scan", "--memory", "128TiB"], "does not fit a 46-bit"),
    (["scan", *MACHINE[:2], "--memory", "64GiB"], "does not fit a 34-bit"),
    (["scan", "--memory", "4KiB", "--nodes", "2"], "less than a page per node"),
    (["scan", "--nodes", "0"], "--nodes must be >= 1"),
    (["scan", "--density", "2"], "--density must be in [0, 1]"),
    (["scan", "--repeat", "0"], "--repeat must be >= 1"),
    (["scan", "--phys-bits", "x"], "invalid int value: 'x'"),
    (["scan", "--bogus"], "unrecognized arguments: --bogus"),
    (["hotplug", "--events", "0"], "--events must be >= 1"),
    (["hotplug", "--batch", "-1"], "--batch must be >= 1"),
    (["hotplug", "--memory", "1PiB"], "does not fit a 46-bit"),
    (["hotplug", "--plot"], "expected one argument"),
    (["scan", "--memory", "99999999999999999999999PiB"], "does not fit a 46-bit"),
    (["hotplug", "--memory", "99999999999999999999999PiB"], "does not fit a 46-bit"),
    (["scan", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["hotplug", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["scan", "--walk", "0"], "--walk must be >= 1"),
    (["hotplug", *HOTPLUG, "--plot", "x.zzz"], "--plot x.zzz: matplotlib cannot write '.zzz'"),
    (["hotplug", *HOTPLUG, "--plot", "/nonexistent/dir/x.png"], "no folder /nonexistent/dir"),
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
    for bad in (["scan", "--memory", "x"], ["hotplug", "--memory", "999TiB"],
                ["scan", "--memory", "99999999999999999999999PiB"]):
        done = subprocess.run([sys.executable, "-m", "pageflags", *bad],
                              capture_output=True, text=True, check=False)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert done.stderr.startswith("pageflags: error: ")


def test_scan_says_why_a_build_row_loses_to_flat(capsys, monkeypatch):
    def slow_build(rows, g, dirty_pfns, repeat):  # every row as if flat had won
        for row in rows:
            row["speedup"] = 0.5
        return real(rows, g, dirty_pfns, repeat)

    real = experiments._why_slower
    monkeypatch.setattr(experiments, "_why_slower", slow_build)
    assert main(["scan", *SMALL, "--density", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "why: build dirty: " in out and " sections a 4 KiB chunk each and touch them" in out
    assert "why: test_many" in out
