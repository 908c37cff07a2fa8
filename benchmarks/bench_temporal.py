"""A time window over an operando series (``temporal``): what averaging each scan's
probabilities with its neighbours' buys and costs, and the memory of the two ways to run it.

Quality: for each of three XCT presets an unseen series (``bigseg.synth.series``, seeds
92 000 + i; particles swell and crack, CBD detaches) is imaged as one series: each scan its
own noise, the sample's texture in every scan (already aligned). The default model's probabilities are computed once per scan, then
labelled with windows of radius 0 (each scan alone), 1 and 2
(:func:`bigseg.infer.smooth_over_time`), and scored against the exact labels: IoU per phase
(mean over the steps), the fraction of voxels changing phase between consecutive scans (the
truth's alongside), how many of the truth's changed voxels also change in the labels
(recall) and how many of the labels' changes are true (precision), and the CBD fraction at the
first and last scan (the truth's alongside).

Memory: a larger series segmented by the default model three ways in fresh processes, peak
RSS of each: each scan alone (``temporal=0``), the lazy window (``segment(temporal=1)``
computed as it stands), and the window staged on disk as the pipeline and ``bigseg segment``
run it (:func:`bigseg.infer._temporal.staged`); the last two must label alike (their CBD
fractions within 0.002, asserted).

Run: ``flock /tmp/bigseg-bench.lock nice .venv/bin/python benchmarks/bench_temporal.py``
(``SHAPE``/``STEPS`` for quality, default 64,64,64 and 5; ``MEM_SHAPE``/``MEM_STEPS`` for
memory, default 64,256,256 and 4; ~6 min). Writes ``benchmarks/results/temporal.json`` (any of
them set to another value: ``results/temporal.local.json``, git-ignored).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import PEAK_RSS, no_options, run_case, save  # noqa: E402

#: the environment variables that configure this benchmark, with their defaults (another value: not the reference run)
ENV = {"SHAPE": "64,64,64", "STEPS": "5", "MEM_SHAPE": "64,256,256", "MEM_STEPS": "4"}
SHAPE = tuple(int(v) for v in os.environ.get("SHAPE", ENV["SHAPE"]).split(","))
STEPS = int(os.environ.get("STEPS", ENV["STEPS"]))
MEM_SHAPE = tuple(int(v) for v in os.environ.get("MEM_SHAPE", ENV["MEM_SHAPE"]).split(","))
MEM_STEPS = int(os.environ.get("MEM_STEPS", ENV["MEM_STEPS"]))
PRESETS = ("nano-ct-phase", "nano-ct-absorption", "lab-micro-ct")
RADII = (0, 1, 2)


def _scores(lab: np.ndarray, truth: np.ndarray) -> dict:
    steps = len(truth)
    iou = np.mean([[((lab[t] == k) & (truth[t] == k)).sum() / ((lab[t] == k) | (truth[t] == k)).sum()
                    for k in range(3)] for t in range(steps)], axis=0)
    tc = [truth[t] != truth[t + 1] for t in range(steps - 1)]
    lc = [lab[t] != lab[t + 1] for t in range(steps - 1)]
    return {
        "iou": [round(float(v), 4) for v in iou],
        "changed_per_step": round(float(np.mean([c.mean() for c in lc])), 4),
        "change_recall": round(float(np.mean([(a & b).sum() / a.sum() for a, b in zip(tc, lc)])), 3),
        "change_precision": round(float(np.mean([(a & b).sum() / max(b.sum(), 1) for a, b in zip(tc, lc)])), 3),
        "cbd_first_last": [round(float((lab[0] == 1).mean()), 4), round(float((lab[-1] == 1).mean()), 4)],
    }


def quality() -> list[dict]:
    import bigseg
    from bigseg.infer import segment, smooth_over_time

    model = bigseg.models.load("default")
    rows = []
    for i, preset in enumerate(PRESETS):
        sample = bigseg.synth.series(SHAPE, steps=STEPS, seed=92_000 + i, chunks=32)
        truth = sample.values
        # imaged as one series: each scan its own noise, the sample's texture in every scan (imaged
        # step by step with seeds of their own until 2026-12-07: a texture redrawn per scan, which
        # the window averaged away as if it were noise)
        image = bigseg.synth.xct(sample, seed=92_000 + i, preset=preset).values
        t0 = time.perf_counter()
        ds = segment(image, model, probabilities=True).persist()
        seconds = time.perf_counter() - t0
        tc = [truth[t] != truth[t + 1] for t in range(STEPS - 1)]
        row = {"preset": preset, "predict_seconds": round(seconds, 2),
               "truth": {"changed_per_step": round(float(np.mean([c.mean() for c in tc])), 4),
                         "cbd_first_last": [round(float((truth[0] == 1).mean()), 4),
                                            round(float((truth[-1] == 1).mean()), 4)]}}
        for r in RADII:
            lab = (ds if r == 0 else smooth_over_time(ds, r))["labels"].values
            row[f"temporal={r}"] = _scores(lab, truth)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


MEM_CASE = PEAK_RSS + """
import json, tempfile, time, numpy as np, dask.array as da, bigseg
from bigseg.infer import segment, smooth_over_time
from bigseg.infer._temporal import staged
image = np.load({image!r}, mmap_mode="r")
vol = da.from_array(image, chunks=(1, 64, 64, 64))
t0 = time.perf_counter()
if {how!r} == "staged":
    with tempfile.TemporaryDirectory() as tmp, staged(segment(vol, "default", probabilities=True), tmp) as st:
        lab = smooth_over_time(st, 1)["labels"].compute()
else:
    lab = segment(vol, "default", temporal={temporal})["labels"].compute()
print(json.dumps(dict(seconds=round(time.perf_counter() - t0, 1), cbd=float((lab == 1).mean()),
                      peak=peak_rss_mib())))
"""


def memory(tmp: Path) -> list[dict]:
    import bigseg

    image = bigseg.synth.xct(bigseg.synth.series(MEM_SHAPE, steps=MEM_STEPS, seed=5, chunks=64), seed=5).values
    path = tmp / "series.npy"
    np.save(path, image)
    one_scan = 3 * 4 * int(np.prod(MEM_SHAPE)) / 2**20
    rows = []
    for how, temporal in (("alone", 0), ("lazy", 1), ("staged", 1)):
        res = run_case(MEM_CASE.format(image=str(path), how=how, temporal=temporal))
        row = {"how": how, "temporal": temporal, "seconds": res["seconds"], "peak_rss_mib": round(res["peak"]),
               "one_scan_probabilities_mib": round(one_scan), "cbd_fraction": round(res["cbd"], 5)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    # the staged window (float16 on disk) labels as the lazy one does, but for near-ties
    lazy, on_disk = (r["cbd_fraction"] for r in rows[1:])
    assert abs(lazy - on_disk) < 2e-3, f"CBD fraction {on_disk} staged on disk, {lazy} lazily"
    return rows


def main() -> dict:
    import tempfile

    rows = quality()
    with tempfile.TemporaryDirectory() as tmp:
        mem = memory(Path(tmp))
    out = {"shape": list(SHAPE), "steps": STEPS, "quality": rows,
           "memory": {"shape": list(MEM_SHAPE), "steps": MEM_STEPS, "rows": mem}}
    print(f"wrote {save('temporal', out, env=ENV)}")
    return out


if __name__ == "__main__":
    no_options(__doc__)
    main()
