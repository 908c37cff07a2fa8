"""``bigseg watch``: process scans as they appear in a folder (e.g. a beamline's output)."""

from __future__ import annotations

import argparse

from ._common import add_pipeline_args, add_progress_args, pipeline_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="process scans as they appear in a folder",
                       description="Watch INBOX and run the whole pipeline on every scan that appears there (TIFF file "
                                   "or folder of TIFF slices, HDF5, .npy, zarr/OME-Zarr) once it has stopped changing, "
                                   "each into OUT/<scan name> with its report.html. OUT/watch.json records what was "
                                   "done or failed; a failed scan is retried when its files change (one whose results could not be "
                                   "written, a disk full, less and less often until done). Once two scans are "
                                   "done, OUT/evolution.csv and OUT/evolution.png follow them in name order (scan_2 before "
                                   "scan_10; or by --clock mtime) as the steps of one experiment. Ctrl-C stops.")
    p.add_argument("inbox", help="folder the scans arrive in")
    p.add_argument("--out", required=True, help="output folder (one sub-folder per scan)")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between looks at the inbox (default 30)")
    p.add_argument("--settle", type=float, default=None,
                   help="a scan is taken once unchanged for this many seconds (default 10; with --once 0: with "
                        "--once --settle N, scans changed in the last N seconds are left for the next watch)")
    p.add_argument("--once", action="store_true", help="process what is there now and exit")
    p.add_argument("--clock", choices=("order", "mtime"), default="order",
                   help="the scans' times in evolution.csv: their steps in name order (default), or mtime: minutes "
                        "since the first scan's files were written, in the order they were")
    add_pipeline_args(p, ", kept for the whole watch")
    add_progress_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline import Pipeline

    cfg, cluster = pipeline_config(args)
    pipe = Pipeline(cfg)
    ledger = pipe.watch(args.inbox, args.out, interval=args.interval, settle=args.settle, once=args.once,
                        clock=args.clock, client=cluster, progress=args.progress)
    failed = [k for k, v in ledger.items() if v["state"] == "failed"]
    print(f"{len(ledger) - len(failed)} scan(s) done, {len(failed)} failed: see {args.out}/watch.json")
    return 1 if failed else 0
