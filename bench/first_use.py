"""Where a fresh process's first use of pageflags goes: import, then each kernel's first call.

Usage::

    python bench/first_use.py            # the dozen-operation script of bench_calls.py
    python bench/first_use.py SCRIPT.py  # any script

It runs the script once to fill the Numba cache, then again in a fresh interpreter
that times ``import numba, numpy``, ``import pageflags``, the script, and every
``Dispatcher.compile`` (the first call of a kernel with a new signature: a cache load
when the cache is warm, a compile when it is not; ``NUMBA_DEBUG_CACHE=1`` tells which).
The first kernel loaded also pays Numba's one-off target refresh, which imports its
lowering modules and builds the NRT module.
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
import sys, time
clock = time.perf_counter
t0 = clock()
import numba, numpy
t1 = clock()
from numba.core import dispatcher
loads = []
original = dispatcher.Dispatcher.compile

def timed_compile(self, sig):
    start = clock()
    result = original(self, sig)
    loads.append((clock() - start, self.py_func.__name__, len(sig)))
    return result

dispatcher.Dispatcher.compile = timed_compile
import pageflags
t2 = clock()
with open(sys.argv[1]) as f:
    exec(compile(f.read(), sys.argv[1], "exec"), {"__name__": "__main__"})
t3 = clock()
ms = lambda s: f"{s * 1e3:7.1f} ms"
print(f"import numba, numpy   {ms(t1 - t0)}")
print(f"import pageflags      {ms(t2 - t1)}")
print(f"the script            {ms(t3 - t2)}, of which {ms(sum(x[0] for x in loads))} in"
      f" {len(loads)} first calls of {len({x[1] for x in loads})} kernels:")
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
