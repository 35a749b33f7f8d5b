"""Where a fresh process's first use of pageflags goes: import, then each kernel's first call.

Usage::

    python bench/first_use.py            # the dozen-operation script of bench_calls.py
    python bench/first_use.py SCRIPT.py  # any script

It runs the script once to fill the Numba cache, then again in a fresh interpreter
that times ``import numba, numpy``, ``import pageflags``, the script, and every
``Dispatcher.compile`` (the first call of a kernel with a new signature: a cache load
when the cache is warm, a compile when it is not; ``NUMBA_DEBUG_CACHE=1`` tells which).
The first kernel loaded also builds Numba's runtime (NRT) module, and its first array
argument makes Numba import ``numpy.ma`` (its ``typeof`` rejects masked arrays).
Dispatchers are made on a kernel's first use (so inside the script, also counted),
and full garbage collections, which scan all of Numba's objects, are timed apart:
``import numba`` leaves one due (it ends with the collector's counts at their
thresholds and has never collected in full), which whatever allocates next pays.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: A dozen basic operations once each, as a user's first script runs them.
FIRST_USE_SCRIPT = """
import numpy as np
import pageflags
a = pageflags.PageFlags()
a.set(12345); a.test(12345); a.clear(12345)
a.set_range(1 << 20, (1 << 20) + 100_000); a.clear_range(1 << 20, (1 << 20) + 10)
a.count(0, 1 << 22)
pfns = np.arange(1 << 24, (1 << 24) + 4096, 7, dtype=np.int64)
a.set_many(pfns); a.test_many(pfns)
a.find_next_set(0); a.to_array()
b = pageflags.PageFlags(); b.set_range(5 << 20, 6 << 20)
(a | b).any()
"""

#: Runs in the fresh interpreter: argv[1] is the script to run.
TRACER = """
import gc, sys, time
clock = time.perf_counter
t0 = clock()
import numba, numpy
t1 = clock()
from numba.core import dispatcher
loads, made, collections = [], [], []
original, original_init = dispatcher.Dispatcher.compile, dispatcher.Dispatcher.__init__

def timed_compile(self, sig):
    start = clock()
    result = original(self, sig)
    loads.append((clock() - start, self.py_func.__name__, len(sig)))
    return result

def timed_init(self, py_func, *args, **kwargs):
    start = clock()
    original_init(self, py_func, *args, **kwargs)
    made.append((clock() - start, py_func.__module__.startswith("pageflags")))

def on_gc(phase, info):  # full collections: what scanning numba's objects costs
    if info["generation"] == 2:
        collections.append(clock() * (1 if phase == "stop" else -1))

dispatcher.Dispatcher.compile = timed_compile
dispatcher.Dispatcher.__init__ = timed_init
gc.callbacks.append(on_gc)
import pageflags
t2 = clock()
made_at_import, gc_at_import = len(made), sum(collections)
with open(sys.argv[1]) as f:
    exec(compile(f.read(), sys.argv[1], "exec"), {"__name__": "__main__"})
t3 = clock()
ms = lambda s: f"{s * 1e3:7.1f} ms"

def making(some):
    ours = sum(1 for _, mine in some if mine)
    return (f"{ms(sum(s for s, _ in some))} making {len(some)} dispatchers"
            f" ({ours} of pageflags)")

print(f"import numba, numpy   {ms(t1 - t0)}")
print(f"import pageflags      {ms(t2 - t1)}, of which {making(made[:made_at_import])},"
      f" {ms(gc_at_import)} in full garbage collections")
print(f"the script            {ms(t3 - t2)}, of which {making(made[made_at_import:])},"
      f" {ms(sum(collections) - gc_at_import)} in full garbage collections,"
      f" {ms(sum(x[0] for x in loads))} in {len(loads)} first calls of"
      f" {len({x[1] for x in loads})} kernels:")
for seconds, name, nargs in loads:
    print(f"  {ms(seconds)}  {name} ({nargs} arguments)")
"""


def fresh_env() -> dict[str, str]:
    """This checkout first on the path; bytecode cached outside it, as installed."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(), "bench-pycache"))
    return env


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory() as folder:
        if args:
            script = args[0]
        else:
            script = os.path.join(folder, "first_use_script.py")
            Path(script).write_text(FIRST_USE_SCRIPT)
        env = fresh_env()
        subprocess.run([sys.executable, script], check=True, env=env)  # warms the cache
        subprocess.run([sys.executable, "-c", TRACER, script], check=True, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
