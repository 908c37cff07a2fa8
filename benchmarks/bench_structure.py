"""Connectivity and local thickness: bigseg blockwise (labels read lazily from OME-Zarr) against
the same computation on the whole array in memory (SciPy's ``ndimage.label``; the thickness
kernel on the whole array), each in a fresh process (its own peak RSS).

    flock /tmp/bigseg-bench.lock nice .venv/bin/python benchmarks/bench_structure.py [--size 256] [--chunks 128]

Both sides must agree exactly (asserted); the figures are time and peak memory.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import run_case, save  # noqa: E402

OURS = """
import json, time, warnings, numpy as np, bigseg.measure as bm
from bigseg.io import open_volume
lab = open_volume({lab!r})
bm.connectivity(lab[:32, :32, :32]); bm.thickness(lab[:32, :32, :32], max_diameter=4)  # warm-up (numba, imports)
t0 = time.perf_counter(); c = bm.connectivity(lab, axis="z"); t_conn = time.perf_counter() - t0
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    th = bm.thickness(lab, phase=["pore", "cbd", "active"], max_diameter={maxd})
t_th = time.perf_counter() - t0
print(json.dumps(dict(t_connectivity=t_conn, t_thickness=t_th, percolating=c.percolating.values.tolist(),
                      isolated=c.isolated.values.tolist(), share=th.share.values.tolist(),
                      d50=th.d50.values.tolist(), rss_self_mib=peak_rss_mib())))
"""

WHOLE = """
import json, time, numpy as np
from scipy import ndimage as ndi
from bigseg.io import open_volume
from bigseg.kernels.thickness import thickness_levels
lab = open_volume({lab!r}).values
faces = ndi.generate_binary_structure(3, 1)
t0 = time.perf_counter()
perc, iso = [], []
for p in range(3):
    cc, n = ndi.label(lab == p, faces)
    size = np.bincount(cc.ravel(), minlength=n + 1)[1:]
    ids = np.arange(1, n + 1)
    spans = np.isin(ids, cc[0]) & np.isin(ids, cc[-1])
    edge = np.unique(np.concatenate([np.take(cc, i, a).ravel() for a in range(3) for i in (0, -1)]))
    perc.append(float(size[spans].sum() / size.sum())); iso.append(float(size[~np.isin(ids, edge)].sum() / size.sum()))
t_conn = time.perf_counter() - t0
t0 = time.perf_counter()
share = []
for p in range(3):
    lev = thickness_levels(lab == p, (1.0, 1.0, 1.0), {maxd})[lab == p]
    share.append((np.bincount(lev, minlength={maxd} + 1)[1:] / lev.size).tolist())
t_th = time.perf_counter() - t0
print(json.dumps(dict(t_connectivity=t_conn, t_thickness=t_th, percolating=perc, isolated=iso, share=share,
                      rss_self_mib=peak_rss_mib())))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=128)
    ap.add_argument("--max-diameter", type=int, default=40)
    ap.add_argument("--workdir", default="/tmp/bigseg-bench-structure")
    args = ap.parse_args()
    import numpy as np

    import bigseg

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    lab = work / "labels.ome.zarr"
    n = args.size
    bigseg.save_volume(bigseg.synth.electrode((n, n, n), seed=1, chunks=args.chunks), lab, chunks=args.chunks,
                       progress=False)
    ours = run_case(OURS.format(lab=str(lab), maxd=args.max_diameter))
    whole = run_case(WHOLE.format(lab=str(lab), maxd=args.max_diameter))
    np.testing.assert_allclose(ours["percolating"], whole["percolating"], rtol=1e-12)
    np.testing.assert_allclose(ours["isolated"], whole["isolated"], rtol=1e-12)
    np.testing.assert_allclose(ours["share"], whole["share"], rtol=1e-12)
    mvox = n ** 3 / 1e6
    rows = {"bigseg (blocks, OME-Zarr)": ours, "whole array in memory": whole}
    print(f"{n}³ electrode, chunks {args.chunks}³, thickness up to {args.max_diameter} voxels, 3 phases each")
    print(f"{'':28}{'connectivity':>16}{'thickness':>16}{'peak RSS':>12}")
    for name, r in rows.items():
        print(f"{name:28}{r['t_connectivity']:>9.2f} s ({mvox / r['t_connectivity']:4.1f})"
              f"{r['t_thickness']:>9.1f} s ({mvox / r['t_thickness']:4.2f}){r['peak_rss_mib']:>9.0f} MiB")
    print("(Mvox/s in brackets; results equal)")
    save("structure", {"size": n, "chunks": args.chunks, "max_diameter": args.max_diameter,
                       "bigseg": {k: v for k, v in ours.items() if k.startswith(("t_", "peak", "d50"))},
                       "whole_array": {k: v for k, v in whole.items() if k.startswith(("t_", "peak"))},
                       "percolating": ours["percolating"], "isolated": ours["isolated"]})
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
