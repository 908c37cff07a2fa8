"""Segmenting inside a reconstruction's field of view: what the mask buys, and what it costs.

For each realistic XCT preset, an unseen electrode (seeds 91 000 + i) is imaged and cut to the
circle inscribed in its y-x cross-section, the outside set to 0 (a masked reconstruction, as
tomopy's ``circ_mask`` leaves it). The default model segments it three ways, all scored inside
the circle against the exact labels:

* ``fov``: ``bigseg.infer.segment(rec, "default", fov="auto")`` (percentiles from the inside,
  the outside filled with noise of the inside's moments, labelled 255);
* ``as is``: the zero-filled reconstruction segmented like any volume (the fill counts in the
  percentiles, the model sees it, its voxels come out as a phase);
* ``no fill``: the same electrode imaged without any cut, segmented whole (the best one can
  hope for: real sample all round every voxel).

Also the time of the field-of-view passes (find it, normalise inside, fill) against the
segmentation, on this machine.

Run: ``flock /tmp/bigseg-bench.lock nice .venv/bin/python benchmarks/bench_fov.py``
(``SHAPE=z,y,x``, default 48,128,128; ~2 min). Writes ``benchmarks/results/fov.json`` (another
``SHAPE``: ``results/fov.local.json``, git-ignored).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _util import no_options, save  # noqa: E402

#: the environment variables that configure this benchmark, with their defaults (another value: not the reference run)
ENV = {"SHAPE": "48,128,128"}
SHAPE = tuple(int(v) for v in os.environ.get("SHAPE", ENV["SHAPE"]).split(","))
PRESETS = ("nano-ct-phase", "nano-ct-absorption", "lab-micro-ct", "synchrotron-micro-ct")


def main() -> dict:
    import bigseg
    from bigseg.infer import segment
    from bigseg.io import fill_outside, fill_outside_like_inside, fov_mask
    from bigseg.filters import normalize
    from bigseg.measure import confusion

    model = bigseg.models.load("default")
    rows = []
    for i, preset in enumerate(PRESETS):
        truth = bigseg.synth.electrode(SHAPE, seed=91_000 + i).compute()
        image = bigseg.synth.xct(truth, seed=91_000 + i, preset=preset).compute()
        inside = fov_mask(image, "cylinder")
        rec = fill_outside(image, inside, 0).compute()
        ref = fill_outside(truth, inside, 255).compute()
        true = np.bincount(ref.values[ref.values < 3], minlength=3) / np.count_nonzero(ref.values < 3)
        t0 = time.perf_counter()
        found = fov_mask(rec, "auto")
        n = normalize(rec, mask=found.values)
        fill_outside_like_inside(n, found).data.sum().compute()
        t_fov = time.perf_counter() - t0
        row = {"preset": preset, "inside_fraction": round(float(found.attrs["inside_fraction"]), 4),
               "fov_found_exactly": bool((found.values == inside.values).all()), "fov_passes_s": round(t_fov, 2)}
        for name, vol, kw in (("fov", rec, {"fov": found.values}), ("as is", rec, {}), ("no fill", image, {})):
            t0 = time.perf_counter()
            labels = segment(vol, model, **kw)["labels"].compute()
            row[f"{name} seconds"] = round(time.perf_counter() - t0, 2)
            cm = confusion(ref, labels).values.astype(np.float64)  # inside the circle only (truth 255 outside)
            tp = np.diag(cm)
            row[f"{name} iou"] = [round(float(v), 4) for v in tp / (cm.sum(0) + cm.sum(1) - tp)]
            labels_inside = labels.values[:, inside.values]
            frac = np.bincount(labels_inside[labels_inside < 3], minlength=3) / max(np.count_nonzero(labels_inside < 3), 1)
            row[f"{name} fraction error pp"] = [round(float(v), 2) for v in 100 * (frac - true)]
        rows.append(row)
        print(json.dumps(row), flush=True)
    mean = {key: [round(float(v), 4) for v in np.mean([r[key] for r in rows], axis=0)]
            for key in rows[0] if key.endswith(("iou", "pp"))}
    out = {"shape": list(SHAPE), "machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": rows,
           "mean": mean, "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(mean, indent=1))
    print(f"wrote {save('fov', out, env=ENV)}")
    return out


if __name__ == "__main__":
    no_options(__doc__)
    main()
