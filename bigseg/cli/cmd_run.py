"""``bigseg run``: the whole pipeline on one scan (or the scans of an operando series)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InputError
from ._common import (add_pipeline_args, add_progress_args, open_label_image, parse_triple, pipeline_config,
                      refuse_label_image, refuse_replacing, say_if_uncalibrated)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the whole pipeline on a scan: ingest, filter, segment, measure, report",
                       description="Run the whole pipeline on SOURCE (a TIFF folder/file, HDF5, .npy, raw or "
                                   "OME-Zarr; several: the scans of an operando series in time order) into the "
                                   "folder OUT: image.ome.zarr with labels/segmentation, metrics (netCDF, JSON), "
                                   "particles.csv, figures and report.html. Settings come from --config (YAML, see "
                                   "deploy/*.yaml) and the options below; an interrupted run resumes where it stopped.")
    p.add_argument("source", nargs="+", help="the scan, or the scans of a series in time order")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--voxel-size", default=None, help="voxel edge, or z,y,x, in --unit (default: the source's)")
    p.add_argument("--unit", default=None, help="length unit (default: the source's, else nm)")
    p.add_argument("--crop", default=None, help="keep only this box of the source: z0:z1,y0:y1,x0:x1")
    p.add_argument("--times", default=None,
                   help="several scans: the time (cycle, state of charge...) of each, comma separated (default 0,1,2...)")
    p.add_argument("--time-unit", default=None, help="the unit of the scans' times, e.g. s, min, h or cycle")
    p.add_argument("--truth", default=None,
                   help="reference labels: an OME-Zarr label image (ref.ome.zarr/labels/truth, or an image holding one "
                        "called truth), or a TIFF/HDF5/.npy label stack: adds IoU/Dice scores")
    p.add_argument("--particle-labels", action="store_true",
                   help="also write the particles' instance labels to image.ome.zarr/labels/particles")
    p.add_argument("--particle-phase", default=None, metavar="NAME",
                   help="the phase whose particles are measured (measure.phase; default active): a model of "
                        "other phases names one of its own")
    p.add_argument("--temporal", type=int, default=None, metavar="N",
                   help="a series: average each scan's probabilities with those of the N scans before and after "
                        "it before labelling (predict.temporal; default 0: each scan alone)")
    p.add_argument("--fresh", action="store_true", help="start again instead of resuming finished stages")
    add_pipeline_args(p)
    add_progress_args(p)
    p.set_defaults(func=run, api_aliases={"dest": "out", "measure.phase": "particle_phase"})  # Pipeline.run(source, dest): the --out folder


def _grid(source: Any, cfg: Any) -> tuple[Any, str] | None:
    """(voxel size, unit) the run's image will have (for a truth stack that states none: the
    scan's grid), or None where the source cannot be opened here."""
    from ..io import open_source

    if cfg.voxel_size is not None:
        return cfg.voxel_size, cfg.unit or "nm"
    try:
        vol = open_source(source[0] if isinstance(source, list) else source)
    except Exception:  # said by the run itself, with the source named
        return None
    return vol.attrs["voxel_size"], vol.attrs["unit"]


def _say_if_other_weights(config: str | None, model: Any) -> None:
    """Run again from a run record (``--config RUN/run.json``) with a model whose weights are not the
    recorded ones (``model_key``: a checkpoint retrained at the same path, another bigseg's bundled
    model): said before any work, as its labels and metrics will not be the record's."""
    import json
    import warnings
    from pathlib import Path

    from ..config import CLASSICAL_MODELS

    try:
        record = json.loads(Path(config).read_text(encoding="utf-8")) if config else None
    except (OSError, ValueError):  # a YAML configuration, or none: no record to compare with
        return
    if not isinstance(record, dict) or "environment" not in record or not record.get("model_key") \
            or model in CLASSICAL_MODELS or model != record.get("config", {}).get("predict", {}).get("model") \
            or not (model == "default" or Path(model).is_file()):  # (another --model: asked for; none: refused later)
        return
    from ..models import load

    now = load(model).checkpoint_key()
    if now != record["model_key"]:
        warnings.warn(f"the model {str(model)!r} now has weights {now}, not the {record['model_key']} that made "
                      f"the run recorded in {config!r}: its labels and metrics will differ", UserWarning, stacklevel=2)


def _measure_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``measure`` settings the options give (over the configuration's)."""
    out: dict[str, Any] = {}
    if args.particle_labels:
        out["particle_labels"] = True
    if args.particle_phase is not None:
        out["phase"] = args.particle_phase
    return out


def run(args: argparse.Namespace) -> int:
    from ..pipeline import Pipeline

    refuse_replacing(args.out, args.source, "--out")  # a run folder inside the input store would change it
    for src in args.source:
        refuse_label_image(src, "source", instead="run the pipeline on the image it labels")
    times = None
    if args.times is not None:
        try:
            times = [float(v) for v in args.times.split(",")]
        except ValueError:
            raise InputError(f"Expected `--times` to be comma-separated numbers. Got {args.times!r} instead.") from None
    cfg, cluster = pipeline_config(args, voxel_size=parse_triple(args.voxel_size, option="--voxel-size"), unit=args.unit, crop=args.crop,
                                   times=times, time_unit=args.time_unit,
                                   **({"measure": measure} if (measure := _measure_options(args)) else {}),
                                   **({"predict": {"temporal": args.temporal}} if args.temporal is not None else {}))
    _say_if_other_weights(args.config, cfg.predict["model"])
    source = args.source if len(args.source) > 1 else args.source[0]
    truth = open_label_image(args.truth, None, "truth", "--truth", say="truth", grid=_grid(source, cfg)) \
        if args.truth else None
    if truth is not None and "source" not in truth.attrs:  # a label stack: its path, for run.json and the report
        truth.attrs["source"] = str(args.truth)
    res = Pipeline(cfg).run(source, args.out, resume=not args.fresh, truth=truth, client=cluster,
                            progress=args.progress)
    m = res.metrics
    phases = [str(p) for p in m["phase"].values]
    series = "t" in m.dims
    frac = m["volume_fraction"].isel(t=-1) if series else m["volume_fraction"]
    line = ", ".join(f"{p} {float(v):.3f}" for p, v in zip(phases, frac.values))
    print(f"volume fractions{' (last step)' if series else ''}: {line}")
    if "iou" in m:
        iou = m["iou"].isel(t=-1) if series else m["iou"]
        print("IoU: " + ", ".join(f"{p} {float(v):.3f}" for p, v in zip(phases, iou.values)))
    if res.particles is not None:
        table = res.particles
        if series and "t" in table and len(table):  # the last step's, as the fractions above
            last = int((table["t"] == table["t"].iloc[-1]).sum())
            print(f"{last} particles at the last step ({len(table)} rows over every step) in {args.out}/particles.csv")
        else:
            print(f"{len(table)} particles in {args.out}/particles.csv")
        if table.attrs.get("small_particles"):  # measure.min_voxels: how many, as bigseg measure says it
            from ..report._units import small_particles_text

            print(small_particles_text(table.attrs))
    print(f"report: {args.out}/report.html  ({', '.join(f'{k} {v:.1f} s' for k, v in res.timings.items())})")
    if cfg.voxel_size is None:  # as bigseg ingest says it: sizes in voxels, named as the unit
        from ..io import open_volume

        say_if_uncalibrated(source, open_volume(res.image))
    return 0
