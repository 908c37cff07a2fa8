"""The quickstart notebook runs from top to bottom (its code cells as one script, on a smaller cube)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    body = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "measure.profile" in body or "profile=" in body
    # the same cells on a 40^3 cube (the 96^3 of the notebook takes ~4x as long on 2 cores)
    assert body.count("n = 96 ") == 1
    body = body.replace("n = 96 ", "n = 40 ")
    # one worker process: still a LocalCluster of processes, one process start, torch import and model load fewer
    assert body.count("n_workers=2") == 1
    body = body.replace("n_workers=2", "n_workers=1")
    # a LocalCluster of processes needs the main guard in a script (a notebook does not)
    script = "import matplotlib\nmatplotlib.use('Agg')\nif __name__ == '__main__':\n" + "\n".join(
        "    " + line for line in body.splitlines())
    (tmp_path / "quickstart.py").write_text(script)
    out = subprocess.run([sys.executable, "quickstart.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "volume_fraction" in out.stdout and (tmp_path / "quickstart.ome.zarr" / "labels" / "segmentation").is_dir()


def test_each_figure_of_the_notebook_shows_once():
    """Jupyter's inline backend draws every pyplot figure a cell made after the cell; a figure that
    is also the cell's last expression is drawn a second time as its value. The report's figure
    functions return pyplot figures: the notebook assigns them (or ends the line with ';')."""
    import bigseg.report

    figures = {name for name in bigseg.report.__all__ if name.endswith(("_figure", "slices"))}
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    twice = []
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or not source.strip() or source.rstrip().endswith(";"):
            continue
        last = ast.parse(source).body[-1]
        if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
            func = last.value.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in figures:
                twice.append(f"cell {i}: {ast.unparse(last)}")
    assert not twice, "drawn twice in Jupyter:\n" + "\n".join(twice)


def test_the_notebook_is_stored_as_its_format_asks_with_outputs_cleared():
    """nbformat 4.5 (the version it states) requires a unique ``id`` on every cell: without them
    ``nbformat.validate`` warns (MissingIDFieldWarning, to become an error) and Jupyter rewrites
    the file on opening. Stored without outputs, so a learner's first run is their own."""
    nb = json.loads(NOTEBOOK.read_text())
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5)
    ids = [cell.get("id") for cell in nb["cells"]]
    assert all(isinstance(i, str) and re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
