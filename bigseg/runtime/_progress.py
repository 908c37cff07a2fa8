"""Run dask computations with a progress bar, on the local scheduler or a distributed client."""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any, Iterator

import dask
import dask.local
import dask.threaded
from dask.base import get_scheduler

__all__ = ["bars", "compute", "current_client", "scheduler_for"]

_BARS = contextvars.ContextVar("bigseg_progress_bars", default=True)


@contextmanager
def bars(on: bool) -> Iterator[None]:
    """Progress bars of every :func:`compute` in the block on (as each call asks) or off (a whole
    pipeline run with ``progress=False``, ``bigseg run --no-progress``)."""
    token = _BARS.set(bool(on) and _BARS.get())
    try:
        yield
    finally:
        _BARS.reset(token)


def current_client():
    """The active ``distributed.Client`` or ``None`` when dask runs on a local scheduler.

    Without ``distributed`` imported there is no client, and it is not imported to find that
    out (0.2 s and ~15 MiB of RSS that a local run does not need)."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def compute(*objs: Any, desc: str = "computing", progress: bool = True, **kwargs) -> tuple:
    """``dask.compute(*objs)`` with a progress bar on stderr.

    On a distributed client the graph is submitted to the cluster and
    ``distributed.progress`` draws the bar; locally a ``tqdm`` callback does.
    Either way it returns or raises only once none of the graph's tasks is
    still running, so a caller may clean up a failed write safely.
    """
    progress = progress and _BARS.get()
    client = current_client()
    if client is not None:
        futures = client.compute(list(objs), **kwargs)
        try:
            if progress:
                from distributed import progress as dprogress

                print(f"{desc}:", file=sys.stderr, flush=True)
                with contextlib.redirect_stdout(sys.stderr):  # distributed draws on stdout: keep it for results
                    dprogress(futures, notebook=False)
                print(file=sys.stderr, flush=True)
            return tuple(client.gather(futures))
        except BaseException:
            try:
                client.cancel(futures)
                _wait_until_idle(client, objs)
            except Exception:  # a lost worker or scheduler: the original error matters more
                pass
            raise
    with ExitStack() as stack:
        own_pool = "pool" not in kwargs and dask.config.get("pool", None) is None  # a user's pool is kept
        get = scheduler_for(objs, kwargs.get("scheduler"))
        if get in (dask.threaded.get, dask.local.get_sync):
            kwargs["scheduler"] = get  # named: dask.compute need not import distributed to look for a client
        if own_pool and get is dask.threaded.get:
            kwargs["pool"] = stack.enter_context(_settling_pool())
        if progress:
            from tqdm.dask import TqdmCallback

            stack.enter_context(TqdmCallback(desc=desc, file=sys.stderr, mininterval=0.5, leave=False))
        return dask.compute(*objs, **kwargs)


def scheduler_for(objs: tuple = (), scheduler: Any = None) -> Any:
    """The scheduler ``dask.compute(*objs, scheduler=scheduler)`` will use: the configured one,
    else the collections' own default (threads for arrays and delayed; ``get_scheduler()``
    alone says None then), threads when ``objs`` hold no collection at top level.

    Without ``distributed`` imported there is no client to find, and dask's ``get_scheduler``
    is not asked (it imports ``distributed`` to look for one: 0.2 s and ~15 MiB of RSS)."""
    colls = [o for o in objs if dask.is_dask_collection(o)]
    if scheduler is None and dask.config.get("scheduler", None) is None and "distributed" not in sys.modules:
        return colls[0].__dask_scheduler__ if colls else dask.threaded.get
    get = get_scheduler(scheduler=scheduler)
    if get is not None:
        return get
    return get_scheduler(collections=colls) if colls else dask.threaded.get


def _wait_until_idle(client: Any, objs: tuple, timeout: float = 60.0) -> None:
    """After a failed distributed compute, wait (up to ``timeout`` s) until no worker is still
    running a task of this graph, so the caller's clean-up is not undone by a late task."""
    from dask.base import collections_to_expr

    keys = {str(k) for k in collections_to_expr(objs).__dask_graph__()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # the workers' own view: a cancelled task stays "executing" there until its thread returns
        busy = client.run(_executing_keys)
        if not any(k in keys for ks in busy.values() for k in ks):
            return
        time.sleep(0.05)


def _executing_keys(dask_worker: Any) -> list[str]:
    return [str(ts.key) for ts in dask_worker.state.executing]


class _settling_pool:
    """A thread pool that, on leaving, waits for the tasks already running.

    dask's threaded scheduler raises as soon as one task fails while the
    others keep running on its shared pool; a caller that then removes a
    half-written output would race those tasks (they recreate chunk files).
    With this pool, ``compute`` returns or raises only once nothing it
    started is still running; tasks not yet started are cancelled.
    """

    def __enter__(self) -> ThreadPoolExecutor:
        workers = dask.config.get("num_workers", None) or os.cpu_count() or 1
        self.pool = ThreadPoolExecutor(int(workers), thread_name_prefix="bigseg-compute")
        return self.pool

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
