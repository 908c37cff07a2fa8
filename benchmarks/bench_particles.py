"""Throughput and peak memory of bigseg.measure.particles, beside the same algorithms on the whole array.

    flock /tmp/bigseg-bench.lock nice python benchmarks/bench_particles.py [--size 256] [--chunks 128]

A ``bigseg.synth.electrode`` label volume (mean particle radius 8 voxels) is written once to
OME-Zarr in ``chunks``³ chunks; each case runs in a fresh subprocess (its own peak RSS):

* ``bigseg components`` / ``bigseg split``: ``measure.particles(split=False/True)`` reading the
  zarr block by block (``max_diameter`` 40), all columns including marching-cubes areas;
* ``skimage components``: ``skimage.measure.label`` + ``regionprops_table`` (area, centroid,
  bbox) on the whole array in memory;
* ``whole-array split``: the same split on the whole array in memory (bigseg's kernels, i.e.
  ``distance_transform_edt`` + the global tie-break, h-maxima (``dome_tops``, equal to
  ``skimage.morphology.h_maxima``) with domes more than 1 voxel high, 6-connected,
  ``watershed``) and ``regionprops_table``;
* ``skimage split, exact ties``: the textbook version without the tie-break: where a dome's top
  is two or more equal voxels not face-connected (common on a voxel lattice), each becomes a
  marker and the particle is cut in pieces: more "particles" than the same method with ties
  broken.

No throughput target is set by an issue; the figures are for the README. Particle counts of
each bigseg case and its whole-array twin must be identical (asserted).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import fresh_workdir, run_case, save  # noqa: E402

OURS = """
import json, time, warnings, numpy as np, bigseg.measure as bm
from bigseg.io import open_volume
warnings.simplefilter("ignore")
lab = open_volume({lab!r})
bm.particles(lab[:48, :48, :48], split={split}, max_diameter=40)  # warm-up (numba)
t0 = time.perf_counter()
tab = bm.particles(lab, split={split}, max_diameter=40)
dt = time.perf_counter() - t0
print(json.dumps(dict(seconds=dt, particles=len(tab), median_diameter=float(tab.equivalent_diameter.median()))))
"""

PEER = """
import json, time, numpy as np
from scipy import ndimage as ndi
from skimage.measure import label, regionprops_table
from skimage.morphology import h_maxima
from skimage.segmentation import watershed
from bigseg.io import open_volume
lab = open_volume({lab!r}).values
t0 = time.perf_counter()
mask = lab == 2
if {split} == "ties":
    d = ndi.distance_transform_edt(mask)
    markers, _ = ndi.label(h_maxima(d, 1.0 + 2e-6, footprint=ndi.generate_binary_structure(3, 1)))
    ids = watershed(-d, markers, mask=mask, connectivity=1)
elif {split}:
    from bigseg.kernels.particles import particle_markers, split_particles
    sp = (1.0, 1.0, 1.0)
    markers, _ = ndi.label(particle_markers(lab, 2, (0, 0, 0), lab.shape, sp, 1.0))
    ids = split_particles(lab, markers.astype(np.int32), 2, (0, 0, 0), lab.shape, sp)
else:
    ids = label(mask, connectivity=1)
props = regionprops_table(ids, properties=("label", "area", "centroid", "bbox"))
dt = time.perf_counter() - t0
print(json.dumps(dict(seconds=dt, particles=len(props["label"]))))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=128)
    ap.add_argument("--workdir", default="/tmp/bigseg-bench-particles")
    args = ap.parse_args()
    import bigseg

    work = fresh_workdir(args.workdir)
    path = str(work / "labels.ome.zarr")
    n = args.size
    bigseg.save_volume(bigseg.synth.electrode((n, n, n), radius=(8, 2), seed=1, chunks=args.chunks), path,
                       phases=["pore", "cbd", "active"], progress=False)
    rows = {}
    for name, code, split in (("bigseg components", OURS, False), ("skimage components", PEER, False),
                              ("bigseg split", OURS, True), ("whole-array split", PEER, True),
                              ("skimage split, exact ties", PEER, "'ties'")):
        r = run_case(code.format(lab=path, split=split))
        r["mvox_per_s"] = round(n ** 3 / r["seconds"] / 1e6, 3)
        rows[name] = r
        print(f"{name:<20} {r['seconds']:8.2f} s {r['mvox_per_s']:8.3f} Mvox/s {r['peak_rss_mib']:8.0f} MiB "
              f"{r['particles']:7d} particles", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    for ours, twin in (("bigseg components", "skimage components"), ("bigseg split", "whole-array split")):
        print(f"{ours} vs {twin}: {rows[ours]['particles']} vs {rows[twin]['particles']} particles, "
              f"{rows[ours]['mvox_per_s'] / rows[twin]['mvox_per_s']:.2f}x the throughput", flush=True)
        assert rows[ours]["particles"] == rows[twin]["particles"], f"{ours} and {twin} count different particles"
    print(save("particles", {"size": n, "chunks": args.chunks, "cases": rows}))


if __name__ == "__main__":
    main()
