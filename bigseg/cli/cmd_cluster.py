from __future__ import annotations

import argparse
import sys
import time

from ._common import positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="start a local scheduler and workers and print the dashboard URL",
                       description="Start a local Dask cluster (scheduler + workers) and keep it running until Ctrl-C. "
                                   "Other bigseg commands reach it with --cluster tcp://ADDRESS.")
    p.add_argument("--workers", type=positive_int, default=None, help="number of worker processes (default: one per core)")
    p.add_argument("--threads", type=positive_int, default=1, help="threads per worker (default 1)")
    p.add_argument("--memory-limit", default=None, help="per-worker memory limit, e.g. 4GiB")
    p.add_argument("--kind", default="local", choices=["local", "local-cuda"], help="local processes or one worker per GPU")
    p.add_argument("--port", type=positive_int, default=None,
                   help="the scheduler's port on 127.0.0.1, e.g. 8786, so that scripts can name a fixed address "
                        "(default: a free one, printed)")
    p.add_argument("--duration", type=positive_float, default=None, help="stop after this many seconds (default: run until Ctrl-C)")
    p.set_defaults(func=run, api_aliases={"cluster": "kind", "threads_per_worker": "threads"})  # connect(cluster, ...): --kind


def run(args: argparse.Namespace) -> int:
    from ..runtime import connect

    port = {} if args.port is None else {"scheduler_port": _free(args.port)}
    with connect(args.kind, n_workers=args.workers, threads_per_worker=args.threads,
                 memory_limit=args.memory_limit, quiet=True, **port) as client:
        print(f"scheduler   {client.scheduler.address}")
        print(f"dashboard   {client.dashboard_link}")
        print(f"workers     {len(client.scheduler_info(n_workers=-1)['workers'])}")
        print("press Ctrl-C to stop" if args.duration is None else f"stopping in {args.duration:g} s (or at Ctrl-C)",
              flush=True)
        start = time.monotonic()
        try:
            while args.duration is None or time.monotonic() - start < args.duration:
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
    return 0


def _free(port: int) -> int:
    """``port`` when nothing listens on it on 127.0.0.1; refused by name otherwise (InputError), before
    any process starts (was distributed's "Cluster failed to start" traceback)."""
    import socket

    from ..errors import InputError

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise InputError(f"Expected `--port` to be a free port on 127.0.0.1. Got {port}, which is not "
                             f"({exc.strerror}; a scheduler already there is reached with --cluster "
                             f"tcp://127.0.0.1:{port}).") from None
    return port
