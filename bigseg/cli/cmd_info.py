from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import json_text, parse_triple, printable, voxel_size_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe an OME-Zarr volume, a TIFF / HDF5 / npy source before ingest, or a run folder",
                       description="Shape, dtype, chunks, voxel size, bytes on disk, labels and an intensity summary "
                                   "of an OME-Zarr volume; for a source ingest reads (TIFF slices or file, HDF5, .npy, "
                                   "raw), its shape, dtype, the voxel size it states and, for HDF5, its datasets.")
    p.add_argument("path", help="OME-Zarr image or label image, a source for `bigseg ingest`, or the output folder "
                                "of `bigseg run`/`demo`/`watch` (a summary of the run)")
    p.add_argument("--dataset", default=None, help="HDF5 source: the dataset to describe (default /exchange/data, "
                                                   "else a NeXus file's NXdata signal, else the file's only 3D/4D "
                                                   "dataset)")
    p.add_argument("--shape", default=None, help="raw binary source: z,y,x (as for ingest)")
    p.add_argument("--dtype", default=None, help="raw binary source: dtype with endianness, e.g. '<u2'")
    p.add_argument("--offset", type=int, default=0, help="raw binary source: header bytes to skip")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-stats", action="store_true", help="skip the intensity summary (label images: the phase fractions)")
    p.set_defaults(func=run)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def _source_lines(info: dict, args: argparse.Namespace) -> list[str]:
    files = f", {info['files']} files" if "files" in info else ""
    vs = info["voxel_size"]
    lines = [f"path        {info['path']}  ({info['format']}{files})", *_array_lines(info, info.get("dims")),
             f"voxel size  {voxel_size_text(vs, info['unit']) if vs else 'not stated (pass --voxel-size to ingest)'}",
             *_origin_lines(info), *_times_lines(info)]
    if info.get("phases"):  # labels as bigseg export writes them
        lines.append(f"phases      {', '.join(info['phases'])}")
    for name, (shape, dt) in info.get("datasets", {}).items():
        lines.append(f"dataset   {'*' if name == info['dataset'] else ' '} {name}  {' x '.join(map(str, shape))}  {dt}")
    from shlex import quote

    given = [(o, getattr(args, o, None)) for o in ("dataset", "shape", "dtype")] + [("offset", getattr(args, "offset", 0))]
    opts = "".join(f" --{o} {quote(str(v))}" for o, v in given if v)  # a raw file's layout, an HDF5 dataset
    if len(info["shape"]) not in (3, 4):  # ingest would refuse it
        return lines + [f"not a volume bigseg reads: {len(info['shape'])}D, where ingest takes 3D (z, y, x) or 4D "
                        "(t, z, y, x)"]
    import numpy as np

    try:
        kind = np.dtype(info["dtype"]).kind
    except TypeError:  # a record dtype's text ("[('a', '<i4'), ...]") does not parse back
        kind = "V"
    if kind not in "biuf":  # complex, text, records: ingest refuses them too
        return lines + [f"not a volume bigseg reads: {info['dtype']} values, where ingest takes numbers "
                        "(integers, floats or booleans)"]
    return lines + [f"not OME-Zarr: `bigseg ingest {quote(str(args.path))} DEST.ome.zarr{opts}` converts it"]


def _origin_lines(info: dict) -> list[str]:
    if "origin" not in info:
        return []
    return [f"origin      {', '.join(f'{d} {v:g}' for d, v in zip('zyx', info['origin']))} {info['unit'] or 'voxels'} "
            "(first voxel's place in the scan)"]


def _times_lines(info: dict) -> list[str]:
    if "times" not in info:
        return []
    return [f"times       {', '.join(f'{t:g}' for t in info['times'])}" + (f" {info['time_unit']}" if info.get("time_unit") else "")]


def _array_lines(info: dict, dims: list[str] | None) -> list[str]:
    return [f"shape       {' x '.join(map(str, info['shape']))}" + (f"  ({', '.join(dims)})" if dims else ""),
            f"dtype       {info['dtype']}"]


def _volume_lines(info: dict, args: argparse.Namespace) -> list[str]:
    lines = [f"path        {info['path']}", *_array_lines(info, info["dims"]),
             f"chunks      {' x '.join(map(str, info['chunks']))}",
             f"voxel size  {voxel_size_text(info['voxel_size'], info['unit'])}"]
    if "source_region" in info:
        lines.append(f"cropped     {', '.join(f'{d} {a}:{b}' for d, (a, b) in zip('zyx', info['source_region']))} of the source")
    lines += _origin_lines(info) + _times_lines(info)
    if "synth" in info:  # a generated volume: what makes it again
        sy = info["synth"]
        el, ph = sy.get("electrode", {}), sy.get("xct", {})
        lines.append(f"generated   by bigseg {sy.get('bigseg')}: seed {el.get('seed')}, fractions {el.get('fractions')}, "
                     f"radius {el.get('radius')}; XCT preset {ph.get('preset')} (seed {ph.get('seed')}; all its physics "
                     "in the store's attributes, bigseg.synth)")
    lines += [f"levels      {info['levels']}",
              _disk_line(info)]
    if "phases" in info:
        lines.append(f"phases      {', '.join(f'{i} {p}' for i, p in enumerate(info['phases']))}")
    if info.get("labels"):
        lines.append(f"labels      {', '.join(info['labels'])}")
    pooled = f", all {info['shape'][0]} scans pooled" if "t" in (info.get("dims") or ()) else ""  # a series
    if "fractions" in info:
        f = info["fractions"]
        out = f"; {100 * f['unlabelled']:.1f} % of the voxels unlabelled, left out" if f["unlabelled"] else ""
        lines.append(f"fractions   {', '.join(f'{k} {v:.4f}' for k, v in f['of_labelled'].items())}  "
                     f"(of the labelled voxels{out}; level {f['from_level']}, {f['sampled_voxels']} voxels{pooled})")
    if "intensity" in info:
        s = info["intensity"]
        lines.append(f"intensity   min {s['min']:.4g}  max {s['max']:.4g}  mean {s['mean']:.4g}  std {s['std']:.4g}  "
                     f"p1 {s['p1']:.4g}  p99 {s['p99']:.4g}  (level {s['from_level']}, {s['sampled_voxels']} voxels"
                     + pooled + (f"; {s['not_finite']} NaN or infinite left out)" if s.get("not_finite") else ")"))
    return lines


def _run_lines(info: dict, args: argparse.Namespace) -> list[str]:
    from ..report._html import provenance_text

    phases = list(info["volume_fraction"])
    last = f" (last of {info['steps']} scans)" if info["steps"] else ""
    now = [_state_line(info["state"]), f"{'':<12}(below: {_whose_results(Path(info['run']))})"] \
        if info["state"]["state"] != "done" else []
    lines = [f"run         {info['run']}", *now,
             f"source      {info['source']}" + (f"  (cropped: {info['crop']})" if info.get("crop") else ""),
             f"model       {info['model']}"
             + (f"  (bigseg {info['bigseg']})" if info["bigseg"] else "")
             + (f"  weights {info['model_key']}" if info.get("model_key") else ""),
             *([f"computed    {provenance_text(info)}"] if info.get("environment") else []),
             f"shape       {' x '.join(map(str, info['shape'] or []))}  voxel size "
             f"{' x '.join(f'{v:g}' for v in info['voxel_size'] or [])} {info['unit']}"
             + ("  (assumed: the source states none; sizes are in voxels)" if info.get("voxel_size_assumed") else
                {"given": "  (given)", "source": "  (read from the source)"}.get(info.get("voxel_size_from"), ""))]
    if info.get("rerun"):
        lines.append(f"run again   {info['rerun']}")
    if "fov" in info:
        lines.append(f"fov         {info['fov']['fov']}: {100 * float(info['fov']['inside_fraction']):.1f} % of the "
                     "cross-section (measured inside it only)")
    if info.get("temporal"):
        lines.append(f"time window each scan's probabilities averaged with {info['temporal']} scan(s) before and after")
    lines += [f"{'':<12}" + "".join(f"{p:>10}" for p in phases),
              f"{'fraction':<12}" + "".join(f"{v:>10.4f}" for v in info["volume_fraction"].values()) + last]
    if "iou" in info:
        lines.append(f"{'IoU':<12}" + "".join(f"{v:>10.4f}" for v in info["iou"].values())
                     + (f"  (against {info['truth']})" if info.get("truth") else ""))
    if "percolating" in info:
        lines.append(f"{'percolates ' + info['percolating_axis']:<12}" + "".join(f"{v:>10.4f}" for v in info["percolating"].values()))
    if "particles" in info:
        rows = info.get("particle_rows")
        lines.append(f"particles   {info['particles']}" + (f" at the last step ({rows} rows over every step, particles.csv)"
                                                          if rows is not None else " (particles.csv)"))
    if info["timings_s"]:
        lines.append("seconds     " + ", ".join(f"{k} {v:.1f}" for k, v in info["timings_s"].items()))
    lines += [f"images      {', '.join(info['images'])}", f"figures     {', '.join(info['figures'])}"]
    if info["report"]:
        lines.append(f"report      {info['report']}")
    return lines


def _state_line(state: dict) -> str:
    from ..runtime._lock import describe

    done = f" after {', '.join(state['stages'])}" if state["stages"] else " before any stage was done"
    return {"running": f"running     {describe(state.get('holder', {}))}",
            "interrupted": f"interrupted {describe(state.get('holder', {}))} was killed{done}; run it again to resume",
            "incomplete": f"incomplete  stopped{done}; run it again to resume",
            "done": "state       done"}[state["state"]]


def _partial_run_lines(info: dict, args: argparse.Namespace) -> list[str]:
    return [f"run         {info['run']}", _state_line(info["state"])]


def _whose_results(run: Path) -> str:
    """Whose the results on disk of a run folder not done are: an earlier finished run's, or
    this run's, written before it stopped (no run.json, or metrics newer than it)."""
    finished = run / "run.json"
    metrics = [run / f for f in ("metrics.nc", "metrics.json") if (run / f).exists()]
    if finished.exists() and all(m.stat().st_mtime <= finished.stat().st_mtime for m in metrics):
        return "its last finished run"
    return "results this run wrote before it stopped" + (", beside an earlier run's record" if finished.exists() else "")


def _finished(d) -> bool:
    return any((d / f).exists() for f in ("metrics.nc", "metrics.json"))


def _is_run(d) -> bool:
    return _finished(d) or any((d / f).exists() for f in ("stages.json", ".bigseg.lock"))


def _watched(state: dict | None) -> dict:
    """What a watch's ledger adds to a run folder's line: the error of a scan that failed, the new
    name of a scan renamed since it was done."""
    if state and state.get("state") == "failed":
        return {"watch_error": state["error"]}
    return {"renamed_to": state["renamed_to"]} if state and state.get("state") == "renamed" else {}


def _label_images(group) -> list[str]:
    from ..io._omezarr import label_names

    return label_names(group)


def _holds_runs(p) -> bool:
    """A folder of runs: a demo's or a watch's (its ledger, or its lock with run folders inside
    and no stages of its own: a watch in, or stopped in, its first scans)."""
    if any((p / f).exists() for f in ("summary.json", "watch.json")):
        return True
    return (p / ".bigseg.lock").exists() and not (p / "stages.json").exists() and \
        any(d.is_dir() and _is_run(d) for d in p.iterdir())


def _runs_lines(info: dict, args: argparse.Namespace) -> list[str]:
    """A folder of runs (``bigseg demo``'s, ``bigseg watch``'s): one line each, failures with their error."""
    from ..runtime._lock import describe

    failed = info.get("failed", {})
    out = [f"runs in {info['folder']} ({len(info['runs'])}{f', {len(failed)} failed before any output' if failed else ''}"
           f"; one in full: bigseg info {info['folder']}/NAME)"]
    watch = info.get("watch")
    if watch and watch["state"] == "running":
        out.insert(0, f"watch       running: {describe(watch.get('holder', {}))}")
    elif watch and watch["state"] == "interrupted":
        out.insert(0, f"watch       stopped from outside: {describe(watch.get('holder', {}))} was killed; the scans "
                      "below were done (or not) as listed, and the same command goes on")
    elif watch and watch["state"] == "stopped":
        out.insert(0, "watch       not running (it ended: --once, Ctrl-C or SIGTERM); the same command goes on with new scans")
    if watch and "done" in watch:
        out.insert(1, f"ledger      {watch['done']} scan(s) done, {watch['failed']} failed: "
                      f"{info['folder']}/watch.json")
    if watch and watch.get("evolution"):
        out.insert(2, f"evolution   {', '.join(watch['evolution'])}")
    for r in info["runs"]:
        name = Path(r["run"]).name  # (Windows: "C:\\out\\scan_1")
        if "watch_error" in r:  # failed in the watch: running it again with the same files would fail again
            out.append(f"  {name:14s} FAILED: {r['watch_error']}")
        elif "renamed_to" in r:
            out.append(f"  {name:14s} its scan renamed {r['renamed_to']} since (done again there; left out of "
                       "evolution.csv)")
        elif r["state"]["state"] != "done" or "volume_fraction" not in r:
            out.append(f"  {name:14s} {_state_line(r['state']).split(None, 1)[-1]}")
        else:
            frac = ", ".join(f"{p} {v:.3f}" for p, v in r["volume_fraction"].items())
            iou = ("; IoU " + ", ".join(f"{p} {v:.3f}" for p, v in r["iou"].items())) if r.get("iou") else ""
            report = f"; {r['report']}" if r.get("report") else ""
            out.append(f"  {name:14s} {r.get('model', '')}: {frac}{iou}{report}")
    out += [f"  {name:14s} FAILED: {error}" for name, error in failed.items()]
    return out


def run(args: argparse.Namespace) -> int:
    from ..io import volume_info
    from ..io._ingest import source_info
    from ..io._omezarr import is_resumable, partial_writes
    from ..io._volume import is_zarr_store
    from ..pipeline import run_state
    from ..report import run_summary

    p = Path(args.path)
    given = [f"--{o}" for o in ("dataset", "shape", "dtype") if getattr(args, o) is not None] + \
        (["--offset"] if args.offset else [])
    if given and (p.is_dir() or is_zarr_store(args.path)):  # options of a file source: refused, not ignored
        from ..errors import InputError

        raise InputError(f"Expected `{given[0]}` only for an HDF5 or raw binary source. Got {given[0]} for "
                         f"{args.path!r}, a folder or store.")
    if p.is_dir() and _finished(p):  # a pipeline run's folder
        info, lines = {**run_summary(p), "state": run_state(p)}, _run_lines
    elif p.is_dir() and _holds_runs(p):  # demo / watch (running, stopped or done): runs inside
        from ..io._ingest import natural_key

        runs = sorted((d for d in p.iterdir() if d.is_dir() and _is_run(d)), key=lambda d: natural_key(d.name))
        ledger = json.loads((p / "watch.json").read_text()) if (p / "watch.json").exists() else {}
        info = {"folder": str(p), "runs": [{**(run_summary(d) if _finished(d) else {"run": str(d)}),
                                            "state": run_state(d), **_watched(ledger.get(d.name))} for d in runs]}
        if (p / ".bigseg.lock").exists():  # the watch itself: still running, or killed from outside (kill -9, a node lost)
            info["watch"] = run_state(p)
        elif ledger:  # a watch that ended (--once, Ctrl-C): said, not left to guess from the runs
            info["watch"] = {"state": "stopped"}
        if ledger:
            states = [st.get("state") for st in ledger.values()]
            info["watch"].update(done=states.count("done"), failed=states.count("failed"),
                                 evolution=[str(p / f) for f in ("evolution.csv", "evolution.png") if (p / f).exists()])
        # scans a watch refused before writing anything have no folder: their ledger says why
        info["failed"] = {name: st.get("error", "") for name, st in sorted(ledger.items(), key=lambda i: natural_key(i[0]))
                          if st.get("state") == "failed" and not (p / name).is_dir()}
        lines = _runs_lines
    elif p.is_dir() and any((p / f).exists() for f in ("stages.json", ".bigseg.lock")):  # a run not finished yet
        info, lines = {"run": str(p), "state": run_state(p)}, _partial_run_lines
    elif p.name == "labels" and is_zarr_store(p) and len(_label_images(p)) > 1:
        from ..errors import InputError

        raise InputError(f"Expected `path` to be one label image. Got {str(p)!r}, which holds "
                         f"{len(_label_images(p))} ({', '.join(_label_images(p))}): pass {args.path}/NAME.")
    elif is_zarr_store(args.path):
        info, lines = volume_info(args.path, stats=not args.no_stats), _volume_lines
    elif not p.exists() and (partial := partial_writes(p.absolute())):
        from ..errors import SourceNotFoundError

        # a write killed before it finished: said, not just "does not exist"
        raise SourceNotFoundError(
            f"Expected `path` to be an existing file or folder. Got {args.path!r}, which does not exist: a write "
            f"of it was interrupted ({partial[0].name} beside it holds what was written; the same command again "
            f"{'resumes it' if is_resumable(partial[0]) else 'starts it anew'}).")
    else:  # a source for ingest (an HDF5 file without the dataset: the error lists those present)
        info, lines = source_info(args.path, dataset=args.dataset, dtype=args.dtype, offset=args.offset,
                                  shape=parse_triple(args.shape, int, option="--shape")), _source_lines
    # names and attributes are the store's: shown, not obeyed by the terminal (JSON escapes them itself)
    print(json_text(info, indent=2) if args.json else printable("\n".join(lines(info, args))))
    return 0


def _disk_line(info: dict) -> str:
    """Bytes on disk with the uncompressed size of the same thing: the image's full resolution
    against its own uncompressed size, the whole store (levels, labels, probabilities) beside."""
    raw = _size(info["bytes_uncompressed"])
    if "bytes_on_disk_level0" not in info:
        return f"on disk     {_size(info['bytes_on_disk'])} ({raw} uncompressed)"
    return (f"on disk     {_size(info['bytes_on_disk_level0'])} full resolution ({raw} uncompressed); "
            f"{_size(info['bytes_on_disk'])} the whole store")
