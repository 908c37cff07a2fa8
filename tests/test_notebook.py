"""The quickstart notebook runs from top to bottom (its code cells as one script, on a smaller cube)."""

from __future__ import annotations

import json
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
    # a LocalCluster of processes needs the main guard in a script (a notebook does not)
    script = "import matplotlib\nmatplotlib.use('Agg')\nif __name__ == '__main__':\n" + "\n".join(
        "    " + line for line in body.splitlines())
    (tmp_path / "quickstart.py").write_text(script)
    out = subprocess.run([sys.executable, "quickstart.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "volume_fraction" in out.stdout and (tmp_path / "quickstart.ome.zarr" / "labels" / "segmentation").is_dir()
