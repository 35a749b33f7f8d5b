"""The notebooks run top to bottom at small sizes, and are committed without outputs.

Each notebook in ``notebooks/`` runs in a fresh Jupyter kernel (nbclient) with
``PAGEFLAGS_NOTEBOOK_SMALL=1``, which its first cell reads to pick small sizes; a cell
that raises fails the test. The kernel imports ``pageflags`` from this checkout.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ids = [path.stem for path in NOTEBOOKS]


def test_the_three_jobs_have_notebooks():
    assert {"01_scanning", "02_hotplug", "03_against_flat"} <= {path.stem for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has outputs: strip them"
            assert cell.execution_count is None, f"{path.name} cell {i} was executed"


def test_notebooks_match_their_generator():
    """notebooks/build_notebooks.py is the source: a notebook edited alone drifts."""
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", ROOT / "notebooks" / "build_notebooks.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for name, cells in build.NOTEBOOKS.items():
        committed = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        expected = build.notebook(cells)
        assert [c.source for c in committed.cells] == [c.source for c in expected.cells], (
            f"{name} differs from notebooks/build_notebooks.py: rerun it")


def kernel_env() -> dict[str, str]:
    """The test's environment, small sizes, plots drawn, this checkout importable."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    # Jupyter's inline backend draws every figure to PNG without a display, where Agg
    # (CI's MPLBACKEND) would skip plt.show() and leave the drawing untested.
    return {**os.environ, "PAGEFLAGS_NOTEBOOK_SMALL": "1", "PYTHONPATH": path,
            "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=kernel_env())  # raises CellExecutionError naming the failed cell
    figures = [output for cell in nb.cells for output in cell.get("outputs", [])
               if "image/png" in output.get("data", {})]
    assert figures, f"{path.name} drew no figure"
