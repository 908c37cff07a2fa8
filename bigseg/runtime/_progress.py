"""Run dask computations with a progress bar, on the local scheduler or a distributed client."""

from __future__ import annotations

import sys
from typing import Any

import dask

__all__ = ["compute", "current_client"]


def current_client():
    """The active ``distributed.Client`` or ``None`` when dask runs on a local scheduler."""
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def compute(*objs: Any, desc: str = "computing", progress: bool = True, **kwargs) -> tuple:
    """``dask.compute(*objs)`` with a progress bar on stderr.

    On a distributed client the graph is submitted to the cluster and
    ``distributed.progress`` draws the bar; locally a ``tqdm`` callback does.
    """
    client = current_client()
    if client is not None:
        futures = client.compute(list(objs), **kwargs)
        if progress:
            from distributed import progress as dprogress

            print(f"{desc}:", file=sys.stderr, flush=True)
            dprogress(futures, notebook=False)
            print(file=sys.stderr, flush=True)
        return tuple(client.gather(futures))
    if progress:
        from tqdm.dask import TqdmCallback

        with TqdmCallback(desc=desc, file=sys.stderr, mininterval=0.5, leave=False):
            return dask.compute(*objs, **kwargs)
    return dask.compute(*objs, **kwargs)
