"""Every notebook runs top to bottom in a real IPython kernel, within a time bound."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
SECONDS = 120  # a whole notebook; each is meant to take seconds


@pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=SECONDS,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    started = time.monotonic()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    assert time.monotonic() - started < SECONDS
    texts = [
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    ]
    if path.stem in ("retail", "sensors", "confluent_cloud"):
        assert "everything stopped\n" in texts
