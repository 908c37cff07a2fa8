"""``bigseg demo``: the whole pipeline on a generated electrode, as a beamline user would run it.

1. generate a three-phase cathode (``bigseg.synth.electrode``) and its simulated nano-CT
   (``bigseg.synth.xct``), written as a folder of 16-bit TIFF slices like a beamline's output;
2. run :class:`bigseg.Pipeline` on that folder: ingest to OME-Zarr, median filter, normalise,
   segment with the bundled default model (blended seam-free across blocks), write
   ``labels/segmentation``, measure fractions and interfaces, score against the exact truth;
3. the same with the multi-Otsu baseline for comparison; figures and a summary.

``run_series_demo`` (``bigseg demo --steps N``) does the same for an operando experiment: a
series whose particles swell and crack and whose CBD detaches, each scan a TIFF folder with
its own noise and drifting by a few voxels; the pipeline aligns the scans, segments each,
tracks the particles and writes the measurements over time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .runtime._files import write_text

__all__ = ["run_demo", "run_series_demo"]


def _write_tiff_stack(image: Any, folder: Path, voxel_size: float) -> None:
    """Write a (z, y, x) volume as one uint16 TIFF per slice with its ImageJ calibration (voxel
    size in nm), as a reconstruction is exported for Fiji: :func:`bigseg.export`, slab by slab."""
    import dask

    from .io import export, make_volume

    data = image.data if hasattr(image, "data") else image
    lo, hi = (float(v) for v in dask.compute(data.min(), data.max()))  # one pass over the simulated scan
    scaled = ((data.astype(np.float64) - lo) / max(hi - lo, 1e-12) * 65535.0).clip(0, 65535).astype(np.uint16)
    export(make_volume(scaled, voxel_size=voxel_size, unit="nm"), folder, overwrite=True, progress=False)


#: what a demo folder holds (its runs are recognised as runs), even one stopped early
_DEMO_FILES = ("summary.json", "scan_tiffs", "scan_00")


def _out_folder(out: str | Path) -> Path:
    """``out``, created, once it is checked to be a new or empty folder or an earlier demo's: not a
    file, nor a folder of other data (a zarr store, a scan) that the demo would write into."""
    from .pipeline import _check_folder

    _check_folder(out, "out", _DEMO_FILES, "of an earlier demo", runs_inside=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def check_options(size: Any, chunks: Any, seed: Any, steps: Any = None, model: Any = None) -> None:
    """The generator's options (with ``steps``: a series'; with ``model``: the pipeline's model),
    refused by name before a folder is made, anything printed or a cluster started (`bigseg demo`;
    a model that was no model was refused after the scan was generated)."""
    from ._parse import _is_int, parse_nonnegative_int, parse_positive_int
    from .errors import InputError

    if steps is not None and not (_is_int(steps) and 2 <= steps <= len(_DRIFT)):
        raise InputError(f"Expected `steps` in [2, {len(_DRIFT)}]. Got {steps!r} instead.")
    if parse_positive_int("size", size) < 8:  # the default model's poolings need 8 voxels along each axis
        raise InputError(f"Expected `size` to be at least 8 (voxels along each axis, for the model's poolings). "
                         f"Got {size!r} instead.")
    parse_positive_int("chunks", chunks)
    parse_nonnegative_int("seed", seed)
    if model is not None:
        from .pipeline import Pipeline

        Pipeline(predict={"model": model})._check_model()


def run_demo(out: str | Path = "out/demo", *, size: int = 96, chunks: int = 48, seed: int = 7,
             model: str = "default", cluster: str | None = None, voxel_size: float = 50.0,
             progress: bool = True) -> dict[str, Any]:
    """Run the demo and return a summary dict (also written to ``out/summary.json``); ``progress``:
    the pipeline's bars (the stage lines on stderr stay)."""
    from . import measure, synth
    from .pipeline import Pipeline
    from .runtime import connect

    check_options(size, chunks, seed, model=model)
    out = _out_folder(out)
    t0 = time.perf_counter()
    print(f"[1/3] generating a {size}³ electrode and its simulated nano-CT (seed {seed})", file=sys.stderr)
    truth = synth.electrode((size, size, size), seed=seed, chunks=chunks)
    image = synth.xct(truth, seed=seed)
    tiffs = out / "scan_tiffs"
    _write_tiff_stack(image, tiffs, voxel_size)
    truth = truth.compute()
    # what the scores are against, in run.json, the report and bigseg info (else "an array")
    truth.attrs["source"] = f"the generated electrode's exact labels (seed {seed})"

    summary: dict[str, Any] = {"size": size, "seed": seed, "scan": str(tiffs), "runs": {}}
    ctx = connect(cluster) if cluster else None
    try:
        for i, method in enumerate([model, "threshold"]):
            print(f"[{2 + i}/3] pipeline with {method!r}", file=sys.stderr)
            # the halo spans the whole volume: the particle split is exact, whatever the particle size
            pipe = Pipeline(chunks=chunks, voxel_size=voxel_size, unit="nm", predict={"model": method},
                            measure={"max_diameter": size})
            res = pipe.run(tiffs, out / method, resume=False, truth=truth, progress=progress)
            fr = res.metrics["volume_fraction"].to_series().to_dict()
            summary["runs"][method] = {
                "image": res.image, "labels": res.labels, "figures": res.figures,
                "report": str(out / method / "report.html"),
                "particles": int(len(res.particles)) if res.particles is not None else None,
                "volume_fraction": fr,
                "iou": res.metrics["iou"].to_series().to_dict(),
                "percolating": res.metrics["connectivity_percolating"].to_series().to_dict(),
                "timings_s": {k: round(v, 2) for k, v in res.timings.items()},
            }
    finally:
        if ctx is not None:
            ctx.close()
    summary["truth_volume_fraction"] = measure.volume_fractions(truth).to_series().to_dict()
    summary["truth_percolating"] = measure.connectivity(truth, axis="z").percolating.to_series().to_dict()
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


#: drift of each scan of the series demo (z, y, x voxels), as a sample stage might wander
_DRIFT = ((0, 0, 0), (1, -2, 1), (2, -3, 1), (2, -4, 3), (3, -4, 4), (4, -5, 4))


def run_series_demo(out: str | Path = "out/demo-series", *, size: int = 64, steps: int = 3, chunks: int = 32,
                    seed: int = 7, model: str = "default", cluster: str | None = None, voxel_size: float = 50.0,
                    temporal: int = 0, progress: bool = True) -> dict[str, Any]:
    """The operando demo; returns a summary dict (also ``out/summary.json``). ``temporal``: the
    pipeline's ``predict.temporal`` (each scan's probabilities averaged with its neighbours');
    ``cluster``: as :func:`run_demo`'s; ``progress``: the pipeline's bars."""
    import dask.array as da
    from scipy import ndimage as ndi

    from . import synth
    from .io import make_volume, open_volume
    from .pipeline import Pipeline
    from .runtime import connect

    check_options(size, chunks, seed, steps, model)
    out = _out_folder(out)
    t0 = time.perf_counter()
    print(f"[1/2] generating a {steps}-scan operando series of {size}³ (seed {seed}), scans drifting", file=sys.stderr)
    sample = synth.series((size, size, size), steps=steps, seed=seed, chunks=chunks)
    truth = sample.values
    # the series imaged as one: each scan its own noise, rings and drift, the sample's texture in
    # every scan (imaged step by step with seeds of their own, the CBD's texture changed where the
    # material did not)
    images = synth.xct(sample, seed=seed).values
    scans, moved = [], []
    for t in range(steps):
        image = images[t]
        folder = out / f"scan_{t:02d}"
        shifted = ndi.shift(image, _DRIFT[t], order=1, mode="nearest")
        _write_tiff_stack(da.from_array(shifted, chunks=(chunks, -1, -1)), folder, voxel_size)
        scans.append(str(folder))
        moved.append(ndi.shift(truth[t], _DRIFT[t], order=0, mode="nearest"))
    how = f"segment with a window of ±{temporal} scans" if temporal else "segment each scan"
    print(f"[2/2] pipeline with {model!r}: align, {how}, track particles", file=sys.stderr)
    pipe = Pipeline(chunks=chunks, voxel_size=voxel_size, unit="nm", predict={"model": model, "temporal": temporal},
                    filters={"align": True}, measure={"max_diameter": size, "particle_labels": True})
    run = out / "run"
    reference = make_volume(np.stack(moved), phases=["pore", "cbd", "active"])
    # what the scores are against, in run.json, the report and bigseg info (else "an array")
    reference.attrs["source"] = f"the generated series' exact labels, drifted as the scans (seed {seed})"
    ctx = connect(cluster) if cluster else None  # (--cluster was ignored here)
    try:
        res = pipe.run(scans, run, resume=False, truth=reference, progress=progress)
    finally:
        if ctx is not None:
            ctx.close()
    labels = open_volume(res.labels).values
    summary = {"size": size, "steps": steps, "seed": seed, "temporal": temporal, "scans": scans, "run": str(run),
               # voxels changing phase from scan to scan, in the labels and in the truth (before the drift)
               "changed_per_step": [round(float((labels[t] != labels[t + 1]).mean()), 4) for t in range(steps - 1)],
               "true_changed_per_step": [round(float((truth[t] != truth[t + 1]).mean()), 4) for t in range(steps - 1)],
               "true_drift": [list(d) for d in _DRIFT[:steps]],
               "drift_found": json.loads((run / "alignment.json").read_text())["drift"],  # (shifts: its negatives)
               "figures": res.figures, "report": str(run / "report.html"), "evolution": str(run / "evolution.csv"),
               "seconds": round(time.perf_counter() - t0, 1)}
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary
