"""``bigseg report``: one self-contained HTML page for a pipeline run folder."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the HTML report of a pipeline run folder",
                       description="Gather a run folder's metrics (volume fractions, interfaces, scores), particle "
                                   "statistics, timings and figures into one HTML file with the figures embedded. "
                                   "Pipeline runs write it themselves (report.html); this rewrites it, e.g. after "
                                   "adding figures.")
    p.add_argument("run", help="the output folder of a pipeline run (holds metrics.nc or metrics.json)")
    p.add_argument("-o", "--output", default=None, help="where to write (default RUN/report.html)")
    p.add_argument("--title", default=None, help="page title (default: the scan's name)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --output file (RUN/report.html, the run's own page, is always rewritten)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import write_report
    from ._common import output_file

    output_file(args.output, "--output", suffixes=(".html", ".htm"), overwrite=args.overwrite)
    out = write_report(args.run, path=args.output, title=args.title)
    print(f"wrote {out}")
    return 0
