"""On a GPU machine: the default model through a dask-cuda cluster (one worker per GPU) gives
the labels a single process gives on the same GPU; prints both timings. Part of
scripts/gpu_check.sh."""

from __future__ import annotations

import os
import sys
import time

import numpy as np


def main() -> int:
    import bigseg
    from bigseg import infer, synth

    lab = synth.electrode((96, 128, 128), seed=2, chunks=64).compute()
    img = synth.xct(lab, seed=2).compute()
    t = time.perf_counter()
    device, cluster = os.environ.get("DEVICE", "cuda"), os.environ.get("CLUSTER", "local-cuda")  # cpu/local: a dry run
    ref = infer.segment(img, "default", device=device, autocast=None)["labels"].values
    single = time.perf_counter() - t
    try:
        client = bigseg.connect(cluster, quiet=True, dashboard=False, **({"n_workers": 1} if cluster == "local" else {}))
    except Exception as exc:  # dask-cuda missing or no GPU: said; a failure on a GPU (a dry run on the CPU: not)
        print(f"{cluster}: {'FAILED: ' if device != 'cpu' else ''}not started ({type(exc).__name__}: {exc})")
        return 0 if device == "cpu" else 2
    with client:
        n = len(client.scheduler_info()["workers"])
        t = time.perf_counter()
        out = infer.segment(img, "default", autocast=None)["labels"].values
        clustered = time.perf_counter() - t
    same = float((out == ref).mean())
    iou = bigseg.measure.scores(lab, out)["iou"].values
    print(f"{cluster}: {n} worker(s); labels equal to one process's on {100 * same:.4f} % of voxels; "
          f"{img.size / 1e6:.1f} Mvox in {clustered:.1f} s (one process: {single:.1f} s); IoU {np.round(iou, 3)}")
    return 0 if same > 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())
