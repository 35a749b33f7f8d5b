"""``pageflags pages``: page-types' summary, filters, snapshots and diffs on the
command line, on fixture files (the live file only where readable).

Never a timing; errors are one line and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import _pagetypes as pt
import numpy as np
import pytest

from pageflags import PageFlagSet
from pageflags.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def words() -> np.ndarray:
    return pt.fixture_words(seed=5, n=70_000)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, words) -> str:
    path = tmp_path_factory.mktemp("cli") / "kpageflags"
    words.astype("<u8").tofile(path)
    return str(path)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["pages", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_is_the_default(capsys, saved):
    code, out, err = run(capsys, "--file", saved)
    assert code == 0 and err == ""
    assert out.rstrip("\n") == PageFlagSet.from_kpageflags(saved).format_summary()


def test_raw_and_bits(capsys, saved, words):
    code, out, _ = run(capsys, "--file", saved, "--raw", "--bits", "lru", "--bits",
                       "anon,~swapbacked")
    assert code == 0
    filters = [pt.parse_bits_mask("lru"), pt.parse_bits_mask("anon,~swapbacked")]
    rows = pt.summary(words, True, filters)
    lines = out.splitlines()
    assert [int(line.split("\t")[0], 16) for line in lines[1:-1]] == [f for f, _ in rows]
    assert lines[-1].split()[1] == str(sum(p for _, p in rows))


def test_json_is_machine_readable(capsys, saved, words):
    code, out, _ = run(capsys, "--file", saved, "--json")
    result = json.loads(out)
    assert code == 0 and result["command"] == "pages" and result["mode"] == "default"
    assert result["entries"] == words.size and result["total"] == words.size
    assert [(int(r["flags"], 16), r["pages"]) for r in result["rows"]] == pt.summary(
        words, False)
    first = result["rows"][0]
    assert set(first) == {"flags", "pages", "mb", "symbolic", "names"}
    assert first["symbolic"] == pt.page_flag_name(int(first["flags"], 16))


def test_save_then_diff(capsys, saved, words, tmp_path):
    snap_a, snap_b = str(tmp_path / "a"), str(tmp_path / "b")
    code, out, _ = run(capsys, "--file", saved, "--save", snap_a)
    assert code == 0 and out.splitlines()[-1] == f"saved to {snap_a}"
    later = words.copy()
    later[:1000] = 1 << 4  # dirty
    later_file = tmp_path / "later"
    later.astype("<u8").tofile(later_file)
    assert run(capsys, "--file", str(later_file), "--save", snap_b)[0] == 0
    # the saved folder reads back as the same summary
    assert run(capsys, "--file", snap_b)[1] == run(capsys, "--file", str(later_file))[1]
    code, out, _ = run(capsys, "--diff", snap_a, snap_b, "--json")
    result = json.loads(out)
    assert code == 0
    rows = {r["name"]: r for r in result["flags"]}
    was = pt.bit_pfns(words, 4)
    assert rows["dirty"]["gained"] == 1000 - np.count_nonzero(was < 1000)
    assert rows["dirty"]["before"] == was.size and rows["dirty"]["lost"] == 0
    lru = pt.bit_pfns(words, 5)
    assert rows["lru"]["lost"] == np.count_nonzero(lru < 1000)
    code, text, _ = run(capsys, "--diff", snap_a, saved)  # a folder and a file
    assert code == 0 and "gained" in text.splitlines()[3]
    assert all(line.split()[-2:] == ["0", "0"] for line in text.splitlines()[4:])


def test_by_node_reads_a_sysfs_tree(capsys, saved, words, tmp_path):
    root = tmp_path / "memory"
    root.mkdir()
    (root / "block_size_bytes").write_text("8000000\n")  # 32768 pages
    for n, node in [(0, 0), (1, 1)]:
        block = root / f"memory{n}"
        block.mkdir()
        (block / "phys_index").write_text(f"{n:08x}\n")
        (block / "state").write_text("online\n")
        (block / f"node{node}").mkdir()
    code, out, _ = run(capsys, "--file", saved, "--by-node", "--sysfs", str(root), "--json")
    result = json.loads(out)
    assert code == 0 and set(result["nodes"]) == {"-1", "0", "1"}
    for node, lo, hi in [("0", 0, 32768), ("1", 32768, 65536), ("-1", 65536, words.size)]:
        got = [(int(r["flags"], 16), r["pages"]) for r in result["nodes"][node]]
        assert got == pt.summary(words[lo:hi], False)
    code, text, _ = run(capsys, "--file", saved, "--by-node", "--sysfs", str(root))
    assert text.startswith("no node") and "\nnode 0\n" in text and "\nnode 1\n" in text


def test_pid_summarises_the_pages_a_process_maps(capsys, saved, words, tmp_path):
    rng = np.random.default_rng(8)
    entries = pt.process_entries(rng, 3000, words.size)
    pt.write_process(tmp_path, 4242, [(0x400, entries[:1000]), (0x7f000, entries[1000:])])
    code, out, _ = run(capsys, "--file", saved, "--pid", "4242", "--proc", str(tmp_path),
                       "--raw", "--json")
    assert code == 0
    pfns = sorted({e & ((1 << 55) - 1) for e in entries if e & pt.PM_PRESENT})
    got = [(int(r["flags"], 16), r["pages"]) for r in json.loads(out)["rows"]]
    assert got == pt.summary(words[pfns], True)


@pytest.mark.parametrize("argv, message", [
    (["--diff", "a", "b", "--file", "c"], "--diff compares two snapshots"),
    (["--diff", "a", "b", "--raw"], "--diff takes no"),
    (["--pid", "abc"], "--pid must be a process id"),
    (["--diff", "a"], "expected 2 arguments"),
    (["--nosuch"], "unrecognized arguments"),
])
def test_usage_errors_exit_2_in_one_line(capsys, saved, argv, message):
    if "--pid" in argv:
        argv = [*argv, "--file", saved]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and err.startswith("pageflags: error: ")


def test_bad_values_exit_1_in_one_line(capsys, saved, tmp_path):
    odd = tmp_path / "odd"
    odd.write_bytes(bytes(12))
    damaged = tmp_path / "damaged"
    PageFlagSet.from_kpageflags(saved).save(damaged)
    manifest = damaged / "flagset.json"
    manifest.write_text(manifest.read_text().replace('"count": ', '"count": 1', 1))
    for argv, message in [(["--file", str(odd)], "8-byte"),
                          (["--file", saved, "--bits", "nosuchflag"], "invalid name"),
                          (["--file", str(damaged)], "checksum"),
                          (["--file", str(tmp_path / "missing")], "No such file"),
                          (["--diff", saved, str(odd)], "8-byte")]:
        code, out, err = run(capsys, *argv)
        assert code == 1 and out == "", argv
        assert err.count("\n") == 1 and message in err, (argv, err)


def test_errors_print_no_traceback(tmp_path):
    odd = tmp_path / "odd"
    odd.write_bytes(bytes(12))
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-m", "pageflags", "pages", "--file", str(odd)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


def test_live_file_without_permission_says_root(capsys, monkeypatch):
    from pageflags import procfs

    def refuse(path, what="page flags"):
        raise PermissionError(13, f"permission denied: reading {what} needs root "
                                  "(CAP_SYS_ADMIN)", path)

    monkeypatch.setattr(procfs, "open_entries", refuse)
    code, _, err = run(capsys)
    assert code == 1 and "needs root" in err and "/proc/kpageflags" in err


@pytest.mark.skipif(not os.access("/proc/kpageflags", os.R_OK),
                    reason="/proc/kpageflags is not readable here (needs root)")
def test_live_summary(capsys):
    code, out, _ = run(capsys, "--json")
    result = json.loads(out)
    assert code == 0 and result["total"] == result["entries"] > 0
