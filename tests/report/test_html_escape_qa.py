"""report.html escapes every text a store or run folder brings: a series' time unit (read from
the store's metadata) once reached the page as raw HTML in each section's "last time step" title
(QA: facility security review)."""

from __future__ import annotations

import json
import re

import numpy as np
import xarray as xr

from bigseg.report._html import write_report

EVIL = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


def test_text_from_the_store_and_run_record_is_escaped(tmp_path):
    ds = xr.Dataset({"volume_fraction": (("t", "phase"), np.full((2, 2), 0.5)),
                     "rve_relative_std": (("cube_edge", "phase"), np.zeros((1, 2))),
                     "cube_edge_physical": (("cube_edge",), [4.0]), "rve_cubes": (("cube_edge",), [8]),
                     "rve_size": (("phase",), [4.0, 4.0])},
                    coords={"t": ("t", [0.0, 30.0], {"units": EVIL}), "phase": [EVIL, "active"], "cube_edge": [4]},
                    attrs={"shape": "[2, 8, 8]", "voxel_size": "[1, 1, 1]", "unit": "nm", "rve_tolerance": EVIL})
    (tmp_path / "metrics.json").write_text(json.dumps(ds.to_dict()))
    (tmp_path / "run.json").write_text(json.dumps({"source": EVIL, "model": EVIL, "truth": EVIL}))
    page = write_report(tmp_path, finished=True).read_text()
    assert not re.search(r"<(script|img)\b", page), re.search(r".{60}<(script|img)\b.{20}", page).group(0)
    assert "last time step, t = 30 &quot;&gt;&lt;img" in page  # said, as text
    assert "(tolerance &quot;&gt;&lt;img" in page
