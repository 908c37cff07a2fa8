"""An operando series end to end: scans as separate files -> one series -> aligned -> segmented
-> measured and particles tracked, with the time and peak memory of each stage.

    flock /tmp/bigseg-bench.lock nice python benchmarks/bench_series.py [--size 128] [--steps 4] [--chunks 64]

``bigseg.synth.series`` (particles swell and crack, CBD detaches) imaged with the nano-CT
phase preset, each scan with its own noise and moved by a known drift of up to 4 voxels, saved
as one ``.npy`` per scan. One fresh process runs ``bigseg.Pipeline`` with ``filters.align``
and the default model on the list of files (as a beamline script would) and reports the
pipeline's own stage timings, the shifts it found against the true drift, the default model's
IoU per step against the moved truth, and how many particles were tracked through every step.
No target is set by an issue; the figures are for the README. Asserted: every scan scored, the
shifts found within a voxel of the true drift.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import fresh_workdir, run_case, save  # noqa: E402

CASE = """
import json, time, warnings, numpy as np, bigseg
warnings.simplefilter("ignore")
from bigseg.pipeline import Pipeline
scans = {scans!r}
truth = bigseg.io.make_volume(np.load({truth!r}), phases=["pore", "cbd", "active"])
t0 = time.perf_counter()
res = Pipeline(chunks={chunks}, filters={{"align": True}}, measure={{"max_diameter": 40}}).run(scans, {out!r}, truth=truth)
dt = time.perf_counter() - t0
tab = res.particles
steps = tab.t.nunique()
inside = tab[~tab.touches_border]
full = int((inside.groupby("track").t.nunique() == steps).sum())
shifts = json.load(open({out!r} + "/alignment.json"))["shifts"]
print(json.dumps(dict(seconds=dt, timings={{k: round(v, 2) for k, v in res.timings.items()}}, shifts=shifts,
                      iou=res.metrics["iou"].values.round(3).tolist(), particles=len(tab),
                      tracked_through_all_steps=full)))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--chunks", type=int, default=64)
    ap.add_argument("--workdir", default="/tmp/bigseg-bench-series")
    args = ap.parse_args()
    import numpy as np
    from scipy import ndimage as ndi

    from bigseg import synth

    work = fresh_workdir(args.workdir)
    n, steps = args.size, args.steps
    labels = synth.series((n, n, n), steps=steps, seed=3, chunks=64).values
    drift = np.vstack([[0, 0, 0], np.random.default_rng(0).integers(-4, 5, (steps - 1, 3))]).astype(float)
    scans, truths = [], []
    for t in range(steps):
        img = synth.xct(labels[t], seed=100 + t, preset="nano-ct-phase").values  # each scan its own noise
        np.save(work / f"scan_{t:02d}.npy", ndi.shift(img, drift[t], order=1, mode="nearest"))
        truths.append(ndi.shift(labels[t], drift[t], order=0, mode="nearest"))
        scans.append(str(work / f"scan_{t:02d}.npy"))
    np.save(work / "truth.npy", np.stack(truths))
    r = run_case(CASE.format(scans=scans, truth=str(work / "truth.npy"), chunks=args.chunks, out=str(work / "run")))
    voxels = steps * n ** 3
    r.update(size=n, steps=steps, chunks=args.chunks, true_drift=drift.tolist(),
             shift_error_max=float(np.abs(np.asarray(r["shifts"]) + drift).max()),
             mvox_per_s=round(voxels / r["seconds"] / 1e6, 3))
    # the run is complete (scored scan by scan) and the alignment found the drift (to within a voxel)
    assert len(r["iou"]) == steps, f"IoU of {len(r['iou'])} scans, {steps} given"
    assert r["shift_error_max"] < 1, f"alignment missed the drift by {r['shift_error_max']:.2f} voxel"
    print(f"{steps} scans of {n}^3 in {r['seconds']:.1f} s ({r['mvox_per_s']:.2f} Mvox/s), peak RSS "
          f"{r['peak_rss_mib']:.0f} MiB; stages {r['timings']}")
    print(f"shift error <= {r['shift_error_max']:.2f} voxel; IoU per step (pore, cbd, active): {r['iou']}")
    print(f"{r['particles']} particle rows, {r['tracked_through_all_steps']} particles tracked inside the volume "
          "through every step")
    shutil.rmtree(work, ignore_errors=True)
    print(save("series", r))


if __name__ == "__main__":
    main()
