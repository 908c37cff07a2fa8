from __future__ import annotations

import argparse
import sys
import time

from ..errors import InputError
from ._common import positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="start a local scheduler and workers and print the dashboard URL",
                       description="Start a local Dask cluster (scheduler + workers) and keep it running until Ctrl-C. "
                                   "Other bigseg commands reach it with --cluster tcp://ADDRESS.")
    p.add_argument("--workers", type=positive_int, default=None, help="number of worker processes (default: one per core)")
    p.add_argument("--threads", type=positive_int, default=1, help="threads per worker (default 1)")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="memory of each worker, e.g. 4GiB (default: 90 %% of the machine's memory split evenly)")
    p.add_argument("--kind", default="local", choices=["local", "local-cuda"], help="local processes (default) or one worker per GPU")
    p.add_argument("--port", type=positive_int, default=None,
                   help="the scheduler's port, e.g. 8786, so that scripts can name a fixed address "
                        "(default: a free one, printed)")
    p.add_argument("--dashboard-port", type=positive_int, default=None,
                   help="the dashboard's port, e.g. 8787, so that an SSH tunnel can name it (default: a free one, "
                        "printed)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address the scheduler and dashboard listen on (default 127.0.0.1: this machine only); "
                        "0.0.0.0 or this machine's name lets other machines' scripts reach it (no TLS: a trusted "
                        "network only)")
    p.add_argument("--duration", type=positive_float, default=None, help="stop after this many seconds (default: run until Ctrl-C)")
    p.set_defaults(func=run, api_aliases={"cluster": "kind", "threads_per_worker": "threads"})  # connect(cluster, ...): --kind


def run(args: argparse.Namespace) -> int:
    from ..runtime import connect

    free = _free(args.port or 0, args.host)  # (0: any port; the host checked all the same)
    port = {} if args.port is None else {"scheduler_port": free}
    if args.dashboard_port is not None:
        if args.dashboard_port == args.port:
            raise InputError(f"Expected `--dashboard-port` to differ from `--port`. Got {args.dashboard_port} for both.")
        port["dashboard_address"] = f"{args.host}:{_free(args.dashboard_port, args.host, option='--dashboard-port')}"
    with connect(args.kind, n_workers=args.workers, threads_per_worker=args.threads,
                 memory_limit=args.memory_limit, quiet=True, host=args.host, **port) as client:
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


def _free(port: int, host: str = "127.0.0.1", *, option: str = "--port") -> int:
    """``port`` when nothing listens on it on ``host`` (0: any port), a ``host`` of this machine; each refused
    by name otherwise (InputError), before any process starts (was distributed's "Cluster failed to start"
    traceback)."""
    import errno
    import os
    import socket

    from ..errors import InputError
    from ..runtime._cluster import check_host

    check_host(host, "--host")  # an IPv6 address: dask's local cluster does not start on one
    with socket.socket() as s:
        if os.name != "nt":  # as the scheduler binds (tornado): a port a stopped cluster left in TIME_WAIT is free
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (a listening one is refused all the same)
        try:
            s.bind((host, port))
        except OSError as exc:
            if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
                raise InputError(f"Expected `--host` to be an address of this machine (127.0.0.1, 0.0.0.0, its "
                                 f"name). Got {host!r}, which is not ({exc.strerror}).") from None
            near = "127.0.0.1" if host == "0.0.0.0" else host
            there = (f"; a scheduler already there is reached with --cluster tcp://{near}:{port}" if option == "--port"
                     else "; another cluster's dashboard?")
            raise InputError(f"Expected `{option}` to be a free port on {host}. Got {port}, which is not "
                             f"({exc.strerror}{there}).") from None
    return port
