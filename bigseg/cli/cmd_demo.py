from __future__ import annotations

import argparse
from pathlib import Path
from shlex import quote


from ._common import add_cluster_args, add_progress_args, cluster_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on a generated electrode",
                       description="Generate a synthetic electrode and its simulated nano-CT as a TIFF stack, then ingest, "
                                   "filter, segment (default model and multi-Otsu), measure and draw, printing where "
                                   "everything is.")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--size", type=int, default=96, help="edge of the generated volume in voxels, at least 8 (default 96)")
    p.add_argument("--chunks", type=int, default=48, help="chunk edge in voxels (default 48)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the electrode and scan (default 7)")
    p.add_argument("--model", default="default", help="model name or checkpoint path (default: the bundled model)")
    p.add_argument("--steps", type=int, default=None,
                   help="an operando series of this many drifting scans instead (2-6; --size 64, --chunks 32 and "
                        "--out out/demo-series unless given): aligned, segmented, particles tracked, measured over time")
    p.add_argument("--temporal", type=int, default=0, metavar="N",
                   help="with --steps: average each scan's probabilities with those of the N scans before and after "
                        "it (predict.temporal; default 0: each scan alone)")
    add_progress_args(p)
    add_cluster_args(p)  # as every command's (was --cluster only, 'threads' and a wrong name refused after generating)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import check_options

    if args.steps is None and args.temporal:
        from ..errors import InputError

        raise InputError(f"Expected `--temporal` only with --steps (a series). Got --temporal {args.temporal} instead.")
    opts = _series_options(args) if args.steps is not None else {"size": args.size, "chunks": args.chunks}
    check_options(opts["size"], opts["chunks"], args.seed, args.steps, args.model)  # before a cluster starts (a bad --size
    with cluster_from_args(args):  # was refused after it); started (or refused by name) before anything is generated
        return _series(args) if args.steps is not None else _single(args)


def _series_options(args: argparse.Namespace) -> dict:
    """A series' folder, size and chunks: the series' defaults where the command line gave none."""
    given = {a for a in ("size", "chunks", "out") if getattr(args, a) != {"size": 96, "chunks": 48, "out": "out/demo"}[a]}
    return {"out": args.out if "out" in given else "out/demo-series", "size": args.size if "size" in given else 64,
            "chunks": args.chunks if "chunks" in given else 32}


def _single(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    s = run_demo(args.out, size=args.size, chunks=args.chunks, seed=args.seed, model=args.model, progress=args.progress)
    print(f"\nbigseg demo: {s['size']}³ electrode, {s['seconds']} s")
    print(f"  simulated scan (TIFF slices)   {s['scan']}")
    phases = list(s["truth_volume_fraction"])
    print(f"  {'':24}" + "".join(f"{p:>10}" for p in phases))
    print(f"  {'true fractions':24}" + "".join(f"{s['truth_volume_fraction'][p]:>10.3f}" for p in phases))
    for method, r in s["runs"].items():
        print(f"  {method + ' fractions':24}" + "".join(f"{r['volume_fraction'].get(p, float('nan')):>10.3f}" for p in phases))
        print(f"  {method + ' IoU':24}" + "".join(f"{r['iou'].get(p, float('nan')):>10.3f}" for p in phases))
    print("  share spanning z (percolating), as segmentation errors change it:")
    print(f"  {'truth':24}" + "".join(f"{s['truth_percolating'][p]:>10.3f}" for p in phases))
    for method, r in s["runs"].items():
        print(f"  {method:24}" + "".join(f"{r['percolating'].get(p, float('nan')):>10.3f}" for p in phases))
    for method, r in s["runs"].items():
        print(f"  {method}: image {r['image']}  labels {r['labels']}  figures {', '.join(r['figures'])}")
        print(f"  {method}: {r['particles']} particles in particles.csv; everything on one page: {r['report']}")
    run = str(Path(s["runs"][args.model]["image"]).parent)
    print(f"  summary {args.out}/summary.json   (a run at a glance: bigseg info {quote(run)}; a volume: "
          f"bigseg info {quote(s['runs'][args.model]['image'])})")
    return 0


def _series(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..demo import run_series_demo

    opts = _series_options(args)
    s = run_series_demo(opts["out"], size=opts["size"], steps=args.steps, chunks=opts["chunks"], seed=args.seed,
                        model=args.model, temporal=args.temporal, progress=args.progress)
    from ..measure import read_table

    ev = read_table(s["evolution"]).set_index("t")  # (headers with their units: "t [min]")
    print(f"\nbigseg demo: {s['steps']} scans of {s['size']}³, {s['seconds']} s")
    print("  drift found (z, y, x voxels): " + "; ".join(",".join(f"{v:+.1f}" for v in d) for d in s["drift_found"])
          + "   true: " + "; ".join(",".join(f"{v:+d}" for v in d) for d in s["true_drift"]))
    # the particles continued counted among all particles (touching the border too): both beside them
    cols = [c for c in ("fraction_cbd", "iou_cbd", "cbd_to_pore", "particles", "particles_inside",
                        "particles_continued", "median_detachment") if c in ev]
    t_name = f"t [{ev.attrs['time_unit']}]" if ev.attrs.get("time_unit") else "t"
    print(f"  {t_name:<22}" + "".join(f"{t:>10}" for t in ev.index))
    for c in cols:  # counts as counts, fractions to 3 places
        fmt = "{:.0f}" if c.startswith("particles") else "{:.3f}"
        print(f"  {c:<22}" + "".join(f"{'—' if pd.isna(v) else fmt.format(v):>10}" for v in ev[c]))
    print("  voxels changing phase per step: " + ", ".join(f"{100 * v:.1f} %" for v in s["changed_per_step"])
          + "   true: " + ", ".join(f"{100 * v:.1f} %" for v in s["true_changed_per_step"])
          + ("" if s["temporal"] else "   (scan noise flickers at interfaces; --temporal 1 averages neighbouring scans)"))
    print(f"  every measurement per scan: {s['evolution']}; curves and slices: {', '.join(s['figures'])}")
    print(f"  everything on one page: {s['report']}; tracked particles: labels/particles in {s['run']}/image.ome.zarr")
    return 0
