"""A fresh process's first use: importing makes no Numba dispatcher and pulls in no
optional dependency, single-page work loads no kernel, cached kernels load without
Numba's lowering modules, and lazy kernels still compile when kernels call them and
when threads race to build them."""

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pageflags._kernels import intrinsics

# Counts the Numba dispatchers pageflags makes in the child process, by function.
COUNT_DISPATCHERS = """
import sys
from numba.core import dispatcher
made = []
init = dispatcher.Dispatcher.__init__

def counting(self, py_func, *args, **kwargs):
    if py_func.__module__.startswith("pageflags"):
        made.append(py_func.__qualname__)
    init(self, py_func, *args, **kwargs)

dispatcher.Dispatcher.__init__ = counting
"""

HEAVY = ("dask", "distributed", "matplotlib", "tqdm", "pyroaring", "bitarray", "pandas")


def run_child(code: str) -> None:
    subprocess.run([sys.executable, "-c", COUNT_DISPATCHERS + textwrap.dedent(code)],
                   check=True)


def test_import_makes_no_dispatcher_and_imports_no_optional_module():
    run_child(f"""
        import pageflags, pageflags.cli
        assert made == [], made
        heavy = sorted(m for m in sys.modules if m.partition(".")[0] in {HEAVY!r})
        assert heavy == [], heavy
        assert pageflags._kernels.dispatchers_built() == []
        # The counter does see a dispatcher being made.
        import numpy; pageflags._kernels.first_out_of_range(numpy.zeros(1, "int64"), 1)
        assert made == ["first_out_of_range"], made
    """)


def test_public_names_of_machines_hotplug_live_flags_and_shards_load_on_first_use():
    run_child("""
        import pageflags
        lazy = ("flagset", "hotplug", "kpf", "memmap", "sharded")
        assert not [m for m in lazy if f"pageflags.{m}" in sys.modules]
        assert pageflags.MemoryMap.__module__ == "pageflags.memmap"
        assert "pageflags.memmap" in sys.modules and "pageflags.hotplug" not in sys.modules
        namespace = {}
        exec("from pageflags import *", namespace)
        assert set(pageflags.__all__) <= set(namespace) <= set(dir(pageflags)) | {"__builtins__"}
        try:
            pageflags.NoSuchName
        except AttributeError as e:
            assert "NoSuchName" in str(e)
        else:
            raise AssertionError("a missing name resolved")
    """)


def test_single_page_work_loads_no_kernel():
    run_child("""
        import pageflags
        flags = pageflags.PageFlags()
        flags.set(12345); flags.set(1 << 30); flags.clear(12345)
        assert flags.test(1 << 30) and not flags.test(12345) and flags.count() == 1
        ppc = flags.geometry.pages_per_chunk
        flags.set_range(5 * ppc, 6 * ppc); flags.clear(5 * ppc)  # a FULL entry unshared
        assert flags.count() == ppc and flags.table[5] is not flags.FULL
        assert made == [], made
    """)


def test_find_next_set_loads_its_one_kernel_and_then_skips_dispatch():
    run_child("""
        import pageflags
        flags = pageflags.PageFlags()
        flags.set(1 << 30)
        assert flags.find_next_set(5) == 1 << 30 and flags.find_next_set(0) == 1 << 30
        assert flags.find_next_set((1 << 30) + 1) == -1
        assert made == ["table_find_next"], made
        assert pageflags._kernels.dispatchers_built() == ["table_find_next"]
        assert type(flags._find_next.func).__name__ == "builtin_function_or_method"
    """)


# Loads kernels that use chunk_words, as_unsigned and the runtime (to_array allocates),
# then compiles a new function, which must refresh Numba's target by itself.
LOAD_CACHED = """
import json, sys
import numba, numpy as np, pageflags
from pageflags._kernels import intrinsics
lowering = ("numba.np.arrayobj", "numba.cpython.unicode", "numba.typed.typeddict")
before = [name for name in lowering if name in sys.modules]
flags = pageflags.PageFlags(1 << 24)
flags.set_range(100, 40_000)
flags.set_many(np.arange(50_000, 90_000, 3))
assert flags.count(0, 1 << 24) == 39_900 + len(range(50_000, 90_000, 3))
assert flags.to_array()[[0, -1]].tolist() == [100, 89_999]
hits = {k.__name__: sum(k.dispatcher().stats.cache_hits.values())
        for k in intrinsics._KERNELS if k.built}
imported = [name for name in lowering if name in sys.modules]
assert numba.njit(lambda n: str(n) + "!")(7) == "7!"
print(json.dumps({"before": before, "imported": imported, "hits": hits}))
"""


def test_cached_kernels_load_without_numbas_lowering_modules(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    run = [sys.executable, "-c", LOAD_CACHED]
    cold, warm = (json.loads(subprocess.run(run, check=True, env=env, capture_output=True,
                                            text=True).stdout) for _ in range(2))
    assert set(cold["hits"].values()) == {0}  # compiled: nothing to load yet
    assert warm["before"] == warm["imported"] == []
    assert len(warm["hits"]) >= 5 and set(warm["hits"].values()) == {1}, warm["hits"]


# Defined in a namespace of their own, which no test collector has looked through.
KERNELS = """
def _callee_body(x):
    return x + 1

callee = jit()(_callee_body)
inlined = jit(inline=True)(lambda x: 2 * x)

@jit()
def caller(x):
    return callee(x) + inlined(x)
"""


def uncached_jit(inline: bool = False):
    """The package's lazy kernels as ``jit`` makes them, uncached (KERNELS has no file)."""
    options = {"inline": "always"} if inline else {"nogil": True}
    return lambda py_func: intrinsics._LazyDispatcher(py_func, options)


def test_kernels_calling_lazy_kernels_compile():
    namespace = {"jit": uncached_jit}
    exec(KERNELS, namespace)
    proxy = namespace["caller"]
    assert isinstance(proxy, intrinsics._LazyDispatcher)
    assert proxy(np.int64(3)) == 10
    # Numba typed the callee through the proxy (its name is not its function's)...
    assert isinstance(namespace["callee"], intrinsics._LazyDispatcher)
    # ...and the caller's dispatcher took the proxy's place in the namespace.
    built = namespace["caller"]
    assert built is proxy.dispatcher() and built.py_func is proxy.py_func
    assert type(built).__name__ == "CPUDispatcher"


def _plus_one(x):
    return x + 1


def test_threads_racing_for_a_new_kernel_get_one_dispatcher():
    lazy = uncached_jit()(_plus_one)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lazy, range(64)))
    assert results == list(range(1, 65))
    assert len({id(lazy.dispatcher()) for _ in range(3)}) == 1
    assert lazy.signatures  # attributes reach the dispatcher
