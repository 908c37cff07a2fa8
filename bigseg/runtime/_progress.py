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
from dask.base import get_scheduler, unpack_collections

from .._parse import parse_flag

__all__ = ["bars", "bar_stream", "compute", "current_client", "in_groups", "progress_bars", "scheduler_for", "showing"]

#: bars off within a block of this context (:func:`bars`: a run with ``progress=False``); None: as
#: :data:`_ALL` says
_BARS: contextvars.ContextVar[bool | None] = contextvars.ContextVar("bigseg_progress_bars", default=None)

#: bars on or off for the whole process (:class:`progress_bars`): every thread, and every later cell
#: of a notebook (ipykernel 7 runs each cell in a context of its own, where a context variable set
#: by an earlier cell is not seen)
_ALL = [True]


def _on() -> bool:
    inner = _BARS.get()
    return _ALL[0] if inner is None else inner and _ALL[0]

#: seconds between a progress bar's lines where stderr is no terminal (a log file, a SLURM job's output)
LOG_INTERVAL_S = 30.0


class _Lines:
    """Where stderr is no terminal: a bar's redraws as lines of their own (carriage returns and
    erase codes, which a log file keeps as one ever-growing line, dropped), at most one each
    ``every`` seconds; the last redraw held back is written when the bar ends (a newline: tqdm
    closing with ``leave=True``; an erase code: distributed's bar), so its 100 % line is kept."""

    def __init__(self, stream: Any, every: float | None = None) -> None:
        self.stream, self.every = stream, LOG_INTERVAL_S if every is None else every
        self.last: float | None = None
        self.held = ""

    def write(self, text: str) -> int:
        line = text.replace("\x1b[2K", "").replace("\r", "").strip()
        now = time.monotonic()
        if not line:  # the bar closed (a newline) or cleared (an erase code), else an empty redraw
            if self.held and ("\n" in text or "\x1b[2K" in text):
                self.stream.write(self.held + "\n")
                self.held = ""
        elif self.last is None or now - self.last >= self.every:
            self.stream.write(line + "\n")
            self.last, self.held = now, ""
        else:
            self.held = line
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def bar_stream() -> tuple[Any, bool]:
    """Where a progress bar draws and whether it stays when done: stderr, and no, on a terminal or
    in a notebook; elsewhere (a log file, a batch job's output) a line each
    :data:`LOG_INTERVAL_S` s, the last one (100 %, the time taken) kept."""
    from ._terminal import PrintableStream, raw_stream

    err = raw_stream(sys.stderr)
    try:
        live = bool(err.isatty())
    except (AttributeError, ValueError):  # closed, or no isatty
        live = False
    live = live or type(err).__module__.startswith("ipykernel")  # a notebook draws \r in place
    if err is not sys.stderr:  # the command line's, escaping what it prints: the bars' own codes kept
        err = PrintableStream(err, bars=True)
    return (err, False) if live else (_Lines(err), True)


def showing(progress: Any) -> bool:
    """Whether a bar asked for with ``progress`` is drawn: unless bars are off around it
    (:func:`bars`, :class:`progress_bars`)."""
    return parse_flag("progress", progress) and _on()


class progress_bars:
    """Every progress bar bigseg draws on (``True``) or off (``False``) from here on, in the whole
    process (a notebook's later cells, a beamline script logging elsewhere, every thread); as a
    ``with`` block, only until its end (the setting before is back after it). A function's own
    ``progress=False`` stays off.

    Parameters
    ----------
    on : True: bars drawn where a function asks for them (the default); False: none.

    Examples
    --------
    >>> import bigseg.runtime
    >>> with bigseg.runtime.progress_bars(False):
    ...     pass  # nothing in here draws a bar
    """

    def __init__(self, on: bool) -> None:
        self._on = parse_flag("on", on)
        self._before = [_ALL[0]]  # (a plain call: from here on)
        _ALL[0] = self._on
        self._fresh = True

    def __enter__(self) -> progress_bars:
        if not self._fresh:  # one object entered again (``quiet = progress_bars(False)``, ``with quiet:`` twice)
            self._before.append(_ALL[0])
            _ALL[0] = self._on
        self._fresh = False
        return self

    def __exit__(self, *exc: Any) -> None:
        _ALL[0] = self._before.pop()


@contextmanager
def bars(on: bool) -> Iterator[None]:
    """Progress bars of every :func:`compute` in the block on (as each call asks) or off (a whole
    pipeline run with ``progress=False``, ``bigseg run --no-progress``)."""
    token = _BARS.set(parse_flag("progress", on) and _BARS.get() is not False)  # ("no" was on: any truthy value)
    try:
        yield
    finally:
        _BARS.reset(token)


def in_groups(groups: list, desc: str, progress: bool, unit: str = "scan") -> Iterator[tuple[Any, bool]]:
    """Each of ``groups`` (lists of items, e.g. scans read a few at a time) with whether the
    :func:`compute` of that group draws its own bar: a single group does (its tasks counted); more
    draw one bar over all their items instead, advanced as each group is done (a bar per group was
    ~50 bars in a log for one pass over 128 scans)."""
    progress = showing(progress)
    if len(groups) <= 1:
        for g in groups:
            yield g, progress
        return
    from tqdm.auto import tqdm

    stream, leave = bar_stream()
    with tqdm(total=sum(len(g) for g in groups), desc=desc, unit=unit, file=stream, leave=leave,
              mininterval=0.5, disable=not progress) as bar:
        for g in groups:
            yield g, False
            bar.update(len(g))


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
    still running, so a caller may clean up a failed write safely. On a cluster,
    a worker dying in a task (distributed's ``KilledWorker``) and a lost
    scheduler raise :class:`~bigseg.errors.ClusterError` saying what to do, and
    a wait with no worker at all is said on stderr.

    The results come in the order of ``objs`` (dask 2026.8's own ``dask.compute(d1, a, d2)``
    of delayed objects ``d1``, ``d2`` and an array ``a`` returns ``d1``'s, ``d2``'s, ``a``'s: it
    optimizes the collections in groups of a kind and returns their results in that order).

    Parameters
    ----------
    *objs : dask collections (arrays, delayed, ...) and plain values, as ``dask.compute`` takes.
    desc : the bar's label and the name of the work in messages (default ``"computing"``).
    progress : True (default) or False: the bar (off as well inside ``bars(False)``).
    **kwargs : passed on to ``dask.compute`` (e.g. ``scheduler``; ``traverse``), or to the client.

    Returns
    -------
    The results, a tuple in the order of ``objs``.
    """
    progress = showing(progress)
    colls, repack = unpack_collections(*objs, traverse=kwargs.pop("traverse", True))
    if not colls:
        return objs
    order = _kinds_together(colls)
    got = _compute(tuple(colls[i] for i in order), desc, progress, kwargs)
    results: list[Any] = [None] * len(colls)
    for i, res in zip(order, got):
        results[i] = res
    return repack(results)


def _kinds_together(colls: list) -> list[int]:
    """Indices of ``colls`` in an order whose results dask returns in that order: the collections
    dask optimizes alike (the same ``__dask_optimize__``) side by side, the kinds in the order of
    their first appearance (a stable sort; dask 2026.8 returns the results of such groups)."""
    kinds: list[Any] = []
    of = []
    for c in colls:
        kind = getattr(c, "__dask_optimize__", None)
        if kind not in kinds:
            kinds.append(kind)
        of.append(kinds.index(kind))
    return sorted(range(len(colls)), key=of.__getitem__)


def _compute(objs: tuple, desc: str, progress: bool, kwargs: dict) -> tuple:
    client = current_client()
    if client is not None:
        futures = _submit(client, objs, kwargs)
        flat = [f for x in futures for f in (x if isinstance(x, list) else [x])]
        try:
            with _say_when_no_workers(client, desc):
                if progress:
                    from distributed import progress as dprogress

                    stream, leave = bar_stream()
                    print(f"{desc}:", file=sys.stderr, flush=True)
                    with contextlib.redirect_stdout(stream):  # distributed draws on stdout: keep it for results
                        dprogress(flat, notebook=False)
                    if not leave:  # drawn in place (a terminal): the line ended
                        print(file=sys.stderr, flush=True)
                return tuple(client.gather(futures))
        except BaseException as exc:
            lost = _lost_cluster(exc, client, desc)
            if not _scheduler_lost(exc):  # else nothing to cancel (the client would wait to reconnect: 30 s)
                try:
                    client.cancel(flat)
                    _wait_until_idle(client, objs)
                except Exception:  # a lost worker or scheduler: the original error matters more
                    pass
            if lost is not None:
                raise lost from exc
            raise
    with ExitStack() as stack:
        own_pool = "pool" not in kwargs and dask.config.get("pool", None) is None  # a user's pool is kept
        get = scheduler_for(objs, kwargs.get("scheduler"))
        if get in (dask.threaded.get, dask.local.get_sync):
            kwargs["scheduler"] = get  # named: dask.compute need not import distributed to look for a client
        if own_pool and get is dask.threaded.get:
            kwargs["pool"] = stack.enter_context(_settling_pool())
        if progress:
            from dask.callbacks import Callback, normalize_callback
            from tqdm.dask import TqdmCallback

            stream, leave = bar_stream()
            bar = TqdmCallback(desc=desc, file=stream, mininterval=0.5, leave=leave)
            if get in (dask.threaded.get, dask.local.get_sync):
                # this compute's own, not added to dask's process-wide Callback.active: a compute
                # starting meanwhile in another thread (a GUI measuring while it segments) took it from
                # there, its tasks counted on this bar and this compute's on none; a caller's own
                # callbacks there (a dask Profiler around the call) still see this compute
                kwargs["callbacks"] = [normalize_callback(bar), *Callback.active.copy()]
            else:
                stack.enter_context(bar)
        return dask.compute(*objs, traverse=False, **kwargs)


def _submit(client: Any, objs: tuple, kwargs: dict) -> list:
    """``objs`` submitted to ``client``: a future per object, except for the per-block results of
    :func:`bigseg.ops._blocks.per_block` a list of the blocks' futures, so that each block's result
    comes to the client from the worker that made it (their list's task would first bring them all
    to one worker)."""
    from ..ops._blocks import BlockResults

    whole = iter(client.compute([o for o in objs if not isinstance(o, BlockResults)], **kwargs))
    # what client.compute's keywords ask of the tasks (retries, workers, resources, ...) asked of the blocks' too
    placing = {k: v for k, v in kwargs.items() if k in _PLACING}
    return [client.get(o.blocks_graph, o.blocks, sync=False, **placing) if isinstance(o, BlockResults)
            else next(whole) for o in objs]


#: the keywords of ``Client.compute`` that ``Client.get`` takes too
_PLACING = ("workers", "allow_other_workers", "resources", "retries", "priority", "fifo_timeout", "actors")


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


#: Seconds a distributed compute waits with no worker at all before saying so (dask waits for ever:
#: SLURM jobs still queued, or every worker gone, e.g. jobs past their walltime).
NO_WORKERS_NOTICE_S = 30.0

_KEPT = "What is already on disk is kept: `bigseg run`, `ingest`, `filter` and `segment` run again take up from it."


def _lost_cluster(exc: BaseException, client: Any, desc: str) -> Exception | None:
    """A distributed compute that failed because the cluster lost a worker or the scheduler, said
    as a :class:`ClusterError` with what to do (None for any other error, raised as it is)."""
    from distributed.scheduler import KilledWorker

    from ..errors import ClusterError

    if isinstance(exc, KilledWorker):
        last = getattr(exc, "last_worker", None)
        tries = getattr(exc, "allowed_failures", None)
        return ClusterError(
            f"{desc}: a worker process died running task {str(exc.task)!r}"
            f"{f', {tries + 1} time(s)' if isinstance(tries, int) else ''} (the last on "
            f"{getattr(last, 'address', last)}; dask's `distributed.scheduler.allowed-failures`). Most often it "
            f"ran out of memory (its log then says it exceeded 95 % of its memory budget: give the workers more "
            f"memory or use smaller chunks), or its process or job was killed (e.g. a SLURM job out of time). "
            f"{_KEPT}")
    if _scheduler_lost(exc):
        where = getattr(getattr(client, "scheduler", None), "address", "?")
        return ClusterError(
            f"{desc}: lost the connection to the Dask scheduler at {where} (it stopped, or the network failed). "
            f"Start it again (or pass another `cluster`) and run the same command. {_KEPT}")
    return None


def _scheduler_lost(exc: BaseException) -> bool:
    from distributed.client import FutureCancelledError

    return isinstance(exc, FutureCancelledError) and getattr(exc, "reason", "") == "scheduler-connection-lost"


@contextmanager
def _say_when_no_workers(client: Any, desc: str, poll: float = 1.0) -> Iterator[None]:
    """While the block runs, say on stderr when the scheduler has had no worker for
    :data:`NO_WORKERS_NOTICE_S` seconds (the compute then waits for ever, its bar still), and
    when workers have joined again."""
    import threading

    stop = threading.Event()

    def workers() -> int:
        # asked of the scheduler, not client.scheduler_info(): that would replace the client's cached
        # worker list with an empty one, which the memory budget may be reading in another thread
        info = client.sync(client.scheduler.identity, n_workers=0)
        return int(info.get("n_workers", len(info.get("workers", {}))))

    def watch() -> None:
        since, said = None, False
        while not stop.wait(poll):
            try:
                n = workers()
            except Exception:  # the scheduler gone: said by the compute itself
                return
            now = time.monotonic()
            if n:
                if said:
                    print(f"\nbigseg: {n} worker(s) joined; {desc} goes on", file=sys.stderr, flush=True)
                since, said = None, False
            elif since is None:
                since = now
            elif not said and now - since >= NO_WORKERS_NOTICE_S:
                where = getattr(getattr(client, "scheduler", None), "address", "?")
                print(f"\nbigseg: the scheduler at {where} has had no worker for {now - since:.0f} s: {desc} "
                      f"waits until workers join (SLURM jobs still queued: see squeue; or every worker gone: "
                      f"start some). Ctrl-C stops it. {_KEPT}", file=sys.stderr, flush=True)
                said = True

    thread = threading.Thread(target=watch, name="bigseg-no-workers", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=poll + 10)  # one call to the scheduler at most (daemon: never keeps Python up)


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
