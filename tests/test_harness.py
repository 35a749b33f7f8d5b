"""The experiment harness: traces, their replay, probes and timing (pageflags/harness.py)."""

from __future__ import annotations

import numpy as np
import pytest
from _hotplugkit import PPC, Model, machine, two_nodes

from pageflags import FlatPageFlags, Geometry, PageFlags
from pageflags import harness as harness_module
from pageflags.harness import TRACE_DTYPE, default_probes, probe_count, probe_walk


def test_events_are_seeded_bursty_and_valid():
    hp = two_nodes()
    trace = hp.events(2000, seed=7, burst=(4, 16))
    assert trace.dtype == TRACE_DTYPE and trace.size == 2000
    assert np.array_equal(trace, hp.events(2000, seed=7, burst=(4, 16)))
    assert not np.array_equal(trace, hp.events(2000, seed=8, burst=(4, 16)))
    assert set(trace["op"].tolist()) == {-1, 1}
    assert set(trace["node"].tolist()) == {0, 1}
    assert np.array_equal(trace["node"], hp.section_nodes()[trace["section"]])
    runs = np.diff(np.flatnonzero(np.diff(trace["op"].astype(int)) != 0))
    assert np.median(runs) >= 4  # bursts, not coin flips
    # Valid when replayed event by event from the state it was drawn in.
    present = hp.present._addrs != 0
    for op, nr in zip(trace["op"].tolist(), trace["section"].tolist(), strict=True):
        assert present[nr] == (op == -1)
        present[nr] = op == 1
    assert hp.events(0).size == 0


@pytest.mark.parametrize("kwargs", [{"burst": (0, 3)}, {"burst": (5, 2)},
                                    {"remove_fraction": 1.5}, {"n": -1}])
def test_events_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        two_nodes().events(**{"n": 10, **kwargs})


def test_run_records_each_batch_and_matches_a_model():
    hp = two_nodes()
    dirty = hp.new_map("dirty")
    dirty.set_many(hp.sections()[::3] * hp.geometry.pages_per_chunk + 11)
    model = Model(hp)
    model.maps["dirty"].set_many(hp.sections()[::3] * hp.geometry.pages_per_chunk + 11)
    trace = hp.events(1000, seed=3)
    calls = []
    rec = hp.run(trace, batch=300, probe={"mine": calls.append}, progress=False)
    for op, nr in zip(trace["op"].tolist(), trace["section"].tolist(), strict=True):
        (model.add if op == 1 else model.remove)([nr])
    model.check(hp)
    assert rec["events"].tolist() == [300, 600, 900, 1000]
    assert rec["batch"].tolist() == [0, 1, 2, 3]
    assert rec["added"][-1] == np.count_nonzero(trace["op"] == 1)
    assert rec["added"][-1] + rec["removed"][-1] == 1000
    assert rec["present_pages"][-1] == model.present.count()
    assert rec["present_sections"][-1] == hp.sections().size
    assert rec["nbytes"]["dirty"][-1] == dirty.nbytes
    assert rec["nbytes"]["present"][-1] == hp.present.nbytes
    assert (rec["flat_bytes"] == hp.geometry.flat_bytes).all()
    assert rec.dtype.names[-1] == "mine_s" and (rec["mine_s"]["dirty"] >= 0).all()
    assert len(calls) == 4 * 2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n": 1.5}, TypeError, "n must be an integer, got float 1.5"),
    ({"n": True}, TypeError, "n must be an integer"),
    ({"n": np.timedelta64(10)}, TypeError, "n must be an integer"),
    ({"n": 2**100}, MemoryError, "a trace of"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"burst": (1.5, 3)}, TypeError, "burst must be an integer"),
    ({"burst": 4}, TypeError, "burst must be a pair"),
    ({"remove_fraction": "0.5"}, TypeError, "remove_fraction must be a number"),
    ({"remove_fraction": float("nan")}, ValueError, "remove_fraction must be in"),
])
def test_events_names_the_bad_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        two_nodes().events(**{"n": 10, **kwargs})


def test_events_take_numpy_integers():
    hp = two_nodes()
    assert hp.events(np.int64(10), seed=np.uint8(2), burst=(np.int8(1), 3)).size == 10


def test_run_refuses_a_trace_or_batch_that_is_not_integers():
    hp = two_nodes()
    model = Model(hp)
    trace = hp.events(20, seed=3)
    floats = np.zeros(trace.size, dtype=[("op", np.float64), ("section", np.float64)])
    floats["op"], floats["section"] = trace["op"], trace["section"]
    floats["op"][0] = 1.5 * trace["op"][0]  # would truncate to a valid op
    for bad in (floats, np.ma.array(trace)):
        with pytest.raises(TypeError):
            hp.run(bad, progress=False)
    for batch in (1.5, True, np.timedelta64(4)):
        with pytest.raises(TypeError, match="batch must be an integer"):
            hp.run(trace, batch=batch, progress=False)
    model.check(hp)


def test_run_checks_the_whole_trace_first():
    hp = two_nodes()
    hp.new_map("dirty")
    model = Model(hp)
    trace = hp.events(500, seed=1)
    bad = trace.copy()
    bad[-1]["op"] = -bad[-1]["op"]  # the last event now finds the wrong state
    with pytest.raises(ValueError, match="trace event 499"):
        hp.run(bad, progress=False)
    model.check(hp)
    repeat = np.zeros(2, dtype=TRACE_DTYPE)
    repeat["op"] = -1
    repeat["section"] = hp.sections()[0]
    with pytest.raises(ValueError, match="repeat a section"):
        hp.run(repeat, progress=False)
    odd = trace[:3].copy()
    odd["op"][1] = 0
    with pytest.raises(ValueError, match="trace event 1: op 0"):
        hp.run(odd, progress=False)
    with pytest.raises(TypeError, match="structured"):
        hp.run(np.arange(4), progress=False)
    with pytest.raises(ValueError, match="batch"):
        hp.run(trace, batch=0, progress=False)
    model.check(hp)


def test_run_default_probes_and_progress_bar(capsys):
    hp = two_nodes()
    trace = hp.events(64, seed=5)
    rec = hp.run(trace, batch=32, progress=True)
    assert "count_s" in rec.dtype.names
    assert ("walk_s" in rec.dtype.names) == hasattr(PageFlags, "find_next_set")
    assert "hotplug" in capsys.readouterr().err
    assert set(default_probes()) >= {"count"}


def test_probes_do_the_scans():
    hp = machine()
    assert probe_count(hp.present) == 4 * PPC
    # probe_walk needs find_next_set; fake one on a subclass to check the walk.

    class Walkable(PageFlags):
        __slots__ = ()

        def find_next_set(self, start):
            bits = self.test_many(np.arange(start, self.npages))
            hits = np.flatnonzero(bits)
            return int(start + hits[0]) if hits.size else -1

    flags = Walkable(Geometry(phys_addr_bits=24, chunk_shift=7))
    flags.set_many([5, 6, 300, 301, 4095])
    assert probe_walk(flags) == 3


def test_progress_bar_only_when_asked(monkeypatch, capsys):
    hp = two_nodes()
    monkeypatch.setattr(harness_module.sys.stderr, "isatty", lambda: False, raising=False)
    hp.run(hp.events(10, seed=1), probe={})
    assert capsys.readouterr().err == ""


# --- the pieces on their own -------------------------------------------------------------

def test_equal_runs_cut_where_the_op_changes():
    assert harness_module.equal_runs(np.array([], dtype=np.int64)) == []
    assert harness_module.equal_runs(np.array([1])) == [(0, 1)]
    assert harness_module.equal_runs(np.array([1, 1, -1, -1, -1, 1])) == [(0, 2), (2, 5),
                                                                           (5, 6)]


def test_check_trace_leaves_the_state_it_is_given_alone():
    present = np.array([True, False, False])
    trace = np.zeros(3, dtype=TRACE_DTYPE)
    trace["op"], trace["section"] = [-1, 1, 1], [0, 1, 0]
    ops, nrs = harness_module.check_trace(trace, present)
    assert ops.tolist() == [-1, 1, 1] and nrs.tolist() == [0, 1, 0]
    assert present.tolist() == [True, False, False]
    with pytest.raises(IndexError, match="section 3"):
        harness_module.check_trace(np.array([(1, 3, 0)], dtype=TRACE_DTYPE), present)


def test_events_leave_the_state_they_are_given_alone():
    present = np.zeros(16, dtype=bool)
    trace = harness_module.events(present, np.zeros(16, np.int32), 10, seed=2)
    assert not present.any() and trace.size == 10
    assert (trace["op"][:np.argmax(trace["op"] != 1)] == 1).all()  # adds first: none present


def test_replay_calls_apply_once_per_run_of_each_batch():
    flat = FlatPageFlags(Geometry(phys_addr_bits=30))
    calls = []

    def apply(op, sections):
        calls.append((op, sections.tolist()))

    ops, nrs = np.array([1, 1, 1, -1, -1]), np.arange(5)
    rec = harness_module.replay(ops, nrs, {"f": flat}, apply, batch=2, probe={},
                                progress=False, columns={"calls": lambda: len(calls)})
    # Batches [0, 2), [2, 4), [4, 5): the run of adds is cut at the batch edge.
    assert calls == [(1, [0, 1]), (1, [2]), (-1, [3]), (-1, [4])]
    assert rec["calls"].tolist() == [1, 3, 4]
    assert rec["added"].tolist() == [2, 3, 3] and rec["removed"].tolist() == [0, 1, 2]
    assert rec["nbytes"]["f"].tolist() == [flat.nbytes] * 3
    assert rec.dtype.names == ("batch", "events", "added", "removed", "calls", "nbytes")


def test_best_time_keeps_the_least(monkeypatch):
    ticks = iter([0.0, 5.0, 10.0, 12.0, 20.0, 27.0])  # three calls: 5, 2 and 7 seconds
    monkeypatch.setattr(harness_module.time, "perf_counter", lambda: next(ticks))
    runs = []
    assert harness_module.best_time(lambda: runs.append(1), 3) == 2.0
    assert len(runs) == 3


def test_progress_prints_only_when_shown(capsys):
    harness_module.Progress(False)("quiet")
    assert capsys.readouterr().err == ""
    harness_module.Progress(True)("building")
    err = capsys.readouterr().err
    assert err.startswith("[") and err.rstrip().endswith("s] building")
