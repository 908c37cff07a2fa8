"""A worker's peak memory per stage against the memory budget's estimate (ingest, filters, predict).

    python benchmarks/bench_memory.py [--chunks 128,256] [--workdir /tmp/bigseg-bench-memory]
                                      [--stages ingest_npy,ingest_tiff,median,gaussian,unsharp,predict]

Each case runs on a fresh ``LocalCluster`` of one worker process with one thread (memory_limit
8 GiB: nothing spilled or paused), warmed on a 32³ volume of the same stage (imports, compiled
kernels, the model), then on a volume of 2 × 2 × 2 blocks (predict: one block in 256³ chunks,
2 × 2 × 2 in smaller ones; float32 from an OME-Zarr store; the others uint16, ingest from a
``.npy`` file or a folder of TIFF slices). The worker's peak resident memory (``VmHWM``, reset
through ``/proc/self/clear_refs`` just before the case) less its resident memory then is what
the case held: ``measured`` beside ``estimate``, the footprint of one task that the stage's own
check counted (``bigseg.runtime._budget.check_budget``), and ``ratio`` = measured / estimate
(above 1: the check lets through what a worker cannot hold). Also ``before``: what the warmed
worker held (the budget counts ``WORKER_BASELINE``, 460 MiB). Linux only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import fresh_workdir, save  # noqa: E402

MiB = 2**20
STAGES = ("ingest_npy", "ingest_tiff", "median", "gaussian", "unsharp", "predict")


def _resident() -> dict[str, int]:
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f) if k in ("VmHWM", "VmRSS")}


def _reset_peak() -> dict[str, int]:
    import gc

    from bigseg.runtime._malloc import release_free_heap

    gc.collect()
    release_free_heap()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _resident()


def _source(work: Path, stage: str, n: int, chunks: int) -> Path:
    import bigseg

    dtype = np.float32 if stage == "predict" else np.uint16
    npy = work / f"v{n}_{np.dtype(dtype).name}.npy"
    if not npy.exists():
        rng = np.random.default_rng(0)
        a = np.lib.format.open_memmap(npy, "w+", dtype, (n, n, n))
        for z in range(n):  # one plane in memory at a time
            a[z] = rng.integers(0, 4000, (n, n)).astype(dtype)
        a.flush()
        del a
    if stage == "ingest_npy":
        return npy
    if stage == "ingest_tiff":
        import tifffile

        folder = work / f"tif{n}"
        if not folder.exists():
            folder.mkdir()
            a = np.load(npy, mmap_mode="r")
            for z in range(n):
                tifffile.imwrite(folder / f"slice_{z:05d}.tif", np.asarray(a[z]))
        return folder
    store = work / f"v{n}_{chunks}.ome.zarr"
    if not store.exists():
        bigseg.ingest(npy, store, chunks=chunks, progress=False)
    return store


def _run(stage: str, src: Path, chunks: int, out: Path) -> None:
    import bigseg

    shutil.rmtree(out, ignore_errors=True)
    if stage.startswith("ingest"):
        bigseg.ingest(src, out, chunks=chunks, progress=False)
    elif stage == "predict":
        ds = bigseg.predict(bigseg.open_volume(src), "default", overlap=0.25)
        bigseg.save_volume(bigseg.open_volume(src), out, progress=False)
        bigseg.save_labels(ds["labels"], out, progress=False)
    else:
        vol = getattr(bigseg.filters, stage)(bigseg.open_volume(src))
        bigseg.save_volume(vol, out, progress=False)


def _check(stage: str, src: Path, out: Path, work: Path, n: int) -> None:
    """The case's output is right (asserted): an ingest equals its ``.npy``; a filter's 16³ around
    the volume's centre, where 8 blocks meet, equals the filter on that crop with a 32-voxel
    margin in memory; predict's labels cover the volume with a phase per voxel."""
    import bigseg

    if stage.startswith("ingest"):
        assert np.array_equal(bigseg.open_volume(out).values, np.load(work / f"v{n}_uint16.npy")), f"{stage}: differs"
    elif stage == "predict":
        labels = bigseg.open_volume(out, label="segmentation")
        assert labels.shape == (n,) * 3 and int(labels.max()) < len(labels.attrs["phases"]), f"{stage}: labels"
    else:
        c, lo, hi = n // 2, max(n // 2 - 40, 0), min(n // 2 + 40, n)
        ref = getattr(bigseg.filters, stage)(bigseg.open_volume(src)[lo:hi, lo:hi, lo:hi].values).values
        got = bigseg.open_volume(out)[c - 8:c + 8, c - 8:c + 8, c - 8:c + 8].values
        want = ref[c - 8 - lo:c + 8 - lo, c - 8 - lo:c + 8 - lo, c - 8 - lo:c + 8 - lo]
        assert np.allclose(got, want, rtol=1e-5, atol=1e-3), f"{stage}: blocks differ from the filter in memory"


def _estimate(stage: str, src: Path, chunks: int) -> int:
    """The footprint the stage's own check counts (its check_budget call, caught)."""
    import bigseg
    import bigseg.runtime._budget as budget
    from bigseg.infer import _predict
    from bigseg.io import _ingest

    seen: list[int] = []

    def spy(footprint, **_kw):
        seen.append(int(footprint))
        return 0, 1

    saved = budget.check_budget, _predict.check_budget
    budget.check_budget = _predict.check_budget = spy
    try:
        if stage.startswith("ingest"):
            vol = _ingest._read_volume(src, chunks=chunks, vs=None, unit=None, dataset=None, dtype=None, shape=None,
                                       offset=0, channel=None)
            _ingest._check_memory(vol, (chunks,) * 3)
        elif stage == "predict":
            _predict.predict(bigseg.open_volume(src), "default", overlap=0.25)
        else:
            getattr(bigseg.filters, stage)(bigseg.open_volume(src))
    finally:
        budget.check_budget, _predict.check_budget = saved
    return seen[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", default="128,256")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--workdir", default="/tmp/bigseg-bench-memory")
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    work = fresh_workdir(args.workdir)
    rows = []
    for stage in args.stages.split(","):
        for c in map(int, args.chunks.split(",")):
            n = c if stage == "predict" and c >= 256 else 2 * c
            (work / "warm").mkdir(exist_ok=True)
            src, small = _source(work, stage, n, c), _source(work / "warm", stage, 32, 16)
            with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit="8GiB",
                              dashboard_address=None) as cluster, Client(cluster) as client:
                _run(stage, small, 16, work / "out.ome.zarr")  # imports, compiled kernels, the model
                before = next(iter(client.run(_reset_peak).values()))["VmRSS"]
                t0 = time.perf_counter()
                _run(stage, src, c, work / "out.ome.zarr")
                seconds = time.perf_counter() - t0
                peak = next(iter(client.run(_resident).values()))["VmHWM"]
            _check(stage, src, work / "out.ome.zarr", work, n)
            est = _estimate(stage, src, c)
            dtype = "float32" if stage == "predict" else "uint16"
            rows.append({"stage": stage, "volume": n, "chunks": c, "dtype": dtype,
                         "before_mib": round(before / MiB, 1), "peak_mib": round(peak / MiB, 1),
                         "measured_mib": round((peak - before) / MiB, 1), "estimate_mib": round(est / MiB, 1),
                         "ratio": round((peak - before) / est, 2), "seconds": round(seconds, 1)})
            print(rows[-1], file=sys.stderr)
    print(f"{'stage':<12} {'volume':>7} {'chunks':>6} {'before':>7} {'measured':>9} {'estimate':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['stage']:<12} {r['volume']:>6}³ {r['chunks']:>6} {r['before_mib']:>7.0f} {r['measured_mib']:>9.0f} "
              f"{r['estimate_mib']:>9.0f} {r['ratio']:>6.2f}")
    print("saved", save("memory", {"rows": rows}))


if __name__ == "__main__":
    main()
