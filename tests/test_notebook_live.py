"""notebooks/04_live_pages.ipynb on its saved fixture, as it runs where the live
/proc/kpageflags cannot be read (tests/test_notebooks.py runs it as it finds the
machine: live where readable)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from test_notebooks import kernel_env

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "04_live_pages.ipynb"


def test_live_pages_notebook_runs_on_its_fixture():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute(env={**kernel_env(), "PAGEFLAGS_NOTEBOOK_FIXTURE": "1"})
    text = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", ()))
    assert "reading a saved fixture" in text and "before -> during" in text
    figures = [out for cell in nb.cells for out in cell.get("outputs", ())
               if "image/png" in out.get("data", {})]
    assert len(figures) == 3
