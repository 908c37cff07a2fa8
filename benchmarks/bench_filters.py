"""Throughput of bigseg.filters side by side with dask-image and scipy (one run, same data).

    flock /tmp/bigseg-bench.lock nice python benchmarks/bench_filters.py [--size 256] [--chunks 128] [--threads 2]

Data: a 256^3 float32 tomogram-like volume (smoothed noise plus spheres). bigseg and dask-image
run on the same dask array (chunks 128^3) with the threaded scheduler and ``--threads`` threads;
scipy runs on the whole in-memory array (one core). Every case is warmed up first (numba
compilation excluded: the kernel's cache is on disk), then timed 3 times; the median time is
reported as Mvox/s. Outputs are compared with scipy (asserted: median identical, Gaussian within 1e-5).
Targets (issue 4): median >= 5x dask-image, Gaussian >= dask-image.

``--cupy`` adds bigseg on CuPy blocks (``cupyx.scipy.ndimage`` on the GPU; timed from the host
array to the host result, transfers included) and writes ``results/filters_cuda.json``; on a
machine without dask-image that column is left out (speed-ups then against scipy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import save  # noqa: E402


def _volume(n: int) -> np.ndarray:
    import scipy.ndimage as ndi

    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:n, :n, :n]
    vol = 0.2 * ndi.gaussian_filter(rng.random((n, n, n), dtype=np.float32), 2)
    for _ in range(40):
        c = rng.integers(0, n, 3)
        r = rng.uniform(n / 20, n / 8)
        vol[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < r * r] += 0.6
    vol += rng.normal(0, 0.05, vol.shape).astype(np.float32)
    return vol.astype(np.float32)


def _time(fn, repeats: int = 3):
    fn()  # warm-up
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sigma", type=float, default=1.1)
    ap.add_argument("--cupy", action="store_true", help="also bigseg on CuPy blocks (a CUDA GPU)")
    args = ap.parse_args()

    import dask
    import dask.array as da
    import scipy.ndimage as ndi

    try:
        import dask_image.ndfilters as dif
    except ImportError:  # e.g. a GPU machine's image: compared with scipy only
        dif = None

    import bigseg.filters as bf

    vol = _volume(args.size)
    nvox = vol.size
    darr = da.from_array(vol, chunks=args.chunks)
    # warm the numba cache on a small crop (compilation is not part of the timing)
    bf.median(vol[:8, :8, :8]).values
    rows = []
    results: dict = {}
    with dask.config.set(scheduler="threads", num_workers=args.threads):
        cases = {
            "median 3x3x3": {
                "bigseg": lambda: bf.median(darr, size=3).values,
                "dask-image": lambda: dif.median_filter(darr, size=3).compute(),
                "scipy (1 core)": lambda: ndi.median_filter(vol, size=3),
            },
            f"gaussian sigma {args.sigma}": {
                "bigseg": lambda: bf.gaussian(darr, sigma=args.sigma).values,
                "dask-image": lambda: dif.gaussian_filter(darr, sigma=args.sigma).compute(),
                "scipy (1 core)": lambda: ndi.gaussian_filter(vol, args.sigma),
            },
        }
        if dif is None:
            for impls in cases.values():
                del impls["dask-image"]
        if args.cupy:
            import cupy as cp

            def on_gpu(fn):  # host array in, host array out: the transfers are part of the time
                def run():
                    out = fn(darr.map_blocks(cp.asarray, meta=cp.empty((0, 0, 0), vol.dtype))).data.compute()
                    return cp.asnumpy(out)
                return run

            cases["median 3x3x3"]["bigseg CuPy"] = on_gpu(lambda a: bf.median(a, size=3))
            cases[f"gaussian sigma {args.sigma}"]["bigseg CuPy"] = on_gpu(lambda a: bf.gaussian(a, sigma=args.sigma))
        for case, impls in cases.items():
            ref = None
            entry = {}
            for impl, fn in impls.items():
                t, out = _time(fn)
                if impl.startswith("scipy"):
                    ref = out
                entry[impl] = {"seconds": round(t, 4), "mvox_s": round(nvox / t / 1e6, 2), "out": out}
            for e in entry.values():
                out = e.pop("out")
                e["max_abs_diff_vs_scipy"] = float(np.max(np.abs(out.astype(np.float64) - ref)))
                e["identical_to_scipy"] = bool(np.array_equal(out, ref))
            e0 = entry["dask-image" if dif is not None else "scipy (1 core)"]["mvox_s"]
            key = "speedup_vs_dask_image" if dif is not None else "speedup_vs_scipy"
            for impl, e in entry.items():
                e[key] = round(e["mvox_s"] / e0, 2)
                rows.append((case, impl, e["mvox_s"], e[key], e["identical_to_scipy"],
                             e["max_abs_diff_vs_scipy"]))
            results[case] = entry
            # the speed counts only for the right result: the median equal to scipy's, the Gaussian within float32 rounding
            for impl, e in entry.items():
                ok = e["identical_to_scipy"] if case.startswith("median") else e["max_abs_diff_vs_scipy"] <= 1e-5
                assert ok, f"{case}, {impl}: differs from scipy by up to {e['max_abs_diff_vs_scipy']:.3g}"
    print(f"{args.size}^3 float32, chunks {args.chunks}^3, {args.threads} threads (median of 3 runs after warm-up)")
    base = "x dask-image" if dif is not None else "x scipy"
    print(f"{'filter':<22}{'implementation':<16}{'Mvox/s':>9}{base:>14}{'== scipy':>10}{'max|diff|':>11}")
    for case, impl, mv, sp, same, diff in rows:
        print(f"{case:<22}{impl:<16}{mv:>9.2f}{sp:>14.2f}{str(same):>10}{diff:>11.2e}")
    path = save("filters_cuda" if args.cupy else "filters", {"size": args.size, "chunks": args.chunks, "threads": args.threads,
                            "dtype": "float32", "note": "GPU machine (see machine)" if args.cupy else
                            "shared 2-core machine with other agents running: figures are pessimistic",
                            "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
