"""``bigseg.connect``: one entry point for a laptop, a running scheduler, GPUs or SLURM."""

from __future__ import annotations

import contextlib
import logging  # both used by a client's close, also from __del__ at shutdown, when nothing can be imported
import os
import shutil  # also used by a client's close (the cluster's scratch folder)
import signal
import sys
import tempfile
import threading
import weakref
from typing import Any

from .._parse import parse_positive_float, parse_positive_int
from .._version import version
from ..errors import ClusterError, InputError, MemoryBudgetError
from ._signals import children_ignore_ctrl_c

__all__ = ["connect", "BigsegClient", "gpu_count", "slurm_cluster", "computed_on"]


def gpu_count() -> int:
    """Number of CUDA devices visible (0 without CuPy/torch CUDA or without a GPU)."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        pass
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def _client_class():
    from distributed import Client

    class BigsegClient(Client):
        """A ``distributed.Client`` that also shuts down the cluster it started."""

        _owned_cluster: Any = None
        _environ: tuple[dict[str, str | None], dict[str, str]] | None = None

        def close(self, *args: Any, **kwargs: Any):  # noqa: D401
            # a client that lost its scheduler is trying to reconnect: closing cancels that, which
            # distributed logs as an error with two tracebacks, above bigseg's one line saying so
            lost = self.status not in ("running", "newly-created", "closing", "closed")
            log = logging.getLogger("distributed.client")
            level = log.level
            with contextlib.ExitStack() as undo:
                if lost:
                    log.setLevel(logging.CRITICAL)
                    undo.callback(log.setLevel, level)
                result = super().close(*args, **kwargs)
            cluster, self._owned_cluster = self._owned_cluster, None
            if cluster is not None:
                _close_started(cluster)
            environ, self._environ = self._environ, None
            if environ is not None:
                _restore_environ(*environ)
            return result

    return BigsegClient


BigsegClient = None  # set lazily (distributed is imported on first use)


def _environ_changes(before: dict[str, str]) -> tuple[dict[str, str | None], dict[str, str]]:
    """The variables a cluster's start set in this process (distributed's nannies set e.g.
    OMP_NUM_THREADS=1 for their workers in the parent's environment): their earlier values, and
    the values set."""
    now = dict(os.environ)
    keys = {k for k in set(before) | set(now) if before.get(k) != now.get(k)}
    return {k: before.get(k) for k in keys}, {k: now[k] for k in keys if k in now}


def _restore_environ(earlier: dict[str, str | None], set_: dict[str, str]) -> None:
    """Put back the variables a cluster's start changed, unless changed again since."""
    for key, value in earlier.items():
        if os.environ.get(key) != set_.get(key):
            continue
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# The least memory a worker bigseg starts may be given: one with numpy, dask and torch loaded
# holds ~0.25-0.3 GiB before any data, and its nanny restarts it above 95 % of its limit, so a
# smaller limit restarts the workers in a loop while the run waits for ever.
MIN_WORKER_MEMORY = 2**30
#: why, as the refusals say it
_WHY_FLOOR = ("a worker with torch loaded holds ~0.3 GiB before any data; dask pauses it above 80 % of its limit "
              "and its nanny restarts it above 95 %, in a loop")


def _memory_split(memory_limit: Any, n_workers: int) -> Any:
    """Per-worker memory of a LocalCluster: ``memory_limit`` or 90 % of RAM split evenly;
    below MIN_WORKER_MEMORY refused by name (InputError)."""
    from dask.utils import format_bytes, parse_bytes

    import psutil

    floor = format_bytes(MIN_WORKER_MEMORY)
    total = psutil.virtual_memory().total
    if memory_limit is not None:
        if parse_bytes(memory_limit) < MIN_WORKER_MEMORY:
            raise InputError(f"Expected `memory_limit` to be at least {floor} per worker ({_WHY_FLOOR}). Got "
                             f"{memory_limit!r} instead.")
        if parse_bytes(memory_limit) * n_workers > total:  # dask caps each at the machine's memory, silently
            raise InputError(f"Expected `memory_limit` to be at most {format_bytes(total // n_workers)} per worker "
                             f"for {n_workers} worker(s) on this machine ({format_bytes(total)} of memory: together "
                             f"more would be killed by the system, not spilled by dask). Got {memory_limit!r} "
                             f"instead.")
        return memory_limit
    split = int(total * 0.9 / n_workers)
    if split < MIN_WORKER_MEMORY:
        most = max(1, int(total * 0.9 // MIN_WORKER_MEMORY))
        raise InputError(f"Expected `n_workers` to be at most {most} on this machine ({format_bytes(total)} of "
                         f"memory, at least {floor} per worker). Got {n_workers!r} instead.")
    return split


def check_workers(client: Any) -> None:
    """Workers of a scheduler bigseg did not start must import bigseg (every task would fail there
    with ``ModuleNotFoundError``): refused by name (ClusterError) otherwise; a version other than
    this process's is warned about. Workers that join later are not checked."""
    import warnings

    def bigseg_on_worker() -> str | None:  # nested: sent by value, so it reaches a worker without bigseg
        try:
            import bigseg
        except ImportError:
            return None
        return str(bigseg.__version__)

    found = client.run(bigseg_on_worker)
    missing = sorted(w for w, v in found.items() if v is None)
    if missing:
        raise ClusterError(f"Expected bigseg installed on every worker of the scheduler. Got {len(missing)} of "
                           f"{len(found)} worker(s) without it: {', '.join(missing)}; install bigseg in the "
                           f"workers' environment (pip install bigseg) and start them again.")
    _check_worker_memory(client)
    other = sorted({v for v in found.values()} - {version()})
    if other:
        warnings.warn(f"the scheduler's workers run bigseg {', '.join(other)}, this process {version()}: results "
                      f"may differ from this version's", UserWarning, stacklevel=3)


def _check_worker_memory(client: Any) -> None:
    """Workers of a scheduler bigseg did not start, limited to less than MIN_WORKER_MEMORY, are
    refused by name (MemoryBudgetError), as bigseg refuses to start such workers itself: with
    bigseg imported they sit above dask's pause threshold and the run waits for ever."""
    from dask.utils import format_bytes

    workers = client.scheduler_info(n_workers=-1)["workers"]
    small = sorted((w, int(i["memory_limit"])) for w, i in workers.items()
                   if 0 < int(i.get("memory_limit") or 0) < MIN_WORKER_MEMORY)
    if small:
        got = ", ".join(f"{w} ({format_bytes(m)})" for w, m in small)
        raise MemoryBudgetError(f"Expected every worker of the scheduler to have a memory limit of at least "
                                f"{format_bytes(MIN_WORKER_MEMORY)} ({_WHY_FLOOR}). Got {len(small)} "
                                f"of {len(workers)} worker(s) below: {got}; start them again with a larger "
                                f"limit (dask worker --memory-limit 4GiB; LocalCluster(memory_limit='4GiB')).")


def _announce(client: Any, what: str, *, dashboard: bool = True) -> None:
    # without a dashboard, dashboard_link still names the scheduler's bare HTTP server (its
    # pages 404): connect(dashboard=False) printed that link as the dashboard
    link = getattr(client, "dashboard_link", None) if dashboard else "off (dashboard=False)"
    n = len(client.scheduler_info(n_workers=-1)["workers"]) if hasattr(client, "scheduler_info") else "?"
    print(f"bigseg: connected to {what} ({n} worker{'' if n == 1 else 's'}); dashboard: {link}", file=sys.stderr,
          flush=True)


_JOBQUEUE_IMPORT = threading.Lock()


def _jobqueue() -> Any:
    """``dask_jobqueue`` (its ``slurm`` module loaded), imported without its SIGINT handler: its
    ``runner`` module sets ``sys.exit()`` as Ctrl-C's handler as it is imported, so a script stopped
    by Ctrl-C after ``connect("slurm")`` ended with exit status 0 and a command without its stopped
    note; and imported from any thread but the main one it failed ("signal only works in main
    thread"). While it is imported, that thread's setting of SIGINT's handler is passed over."""
    if "dask_jobqueue.slurm" in sys.modules:
        return sys.modules["dask_jobqueue"]
    with _JOBQUEUE_IMPORT:
        importing, real = threading.get_ident(), signal.signal

        def passed_over(signum: int, handler: Any) -> Any:
            if signum == signal.SIGINT and threading.get_ident() == importing:
                return signal.getsignal(signum)
            return real(signum, handler)

        signal.signal = passed_over
        try:
            import dask_jobqueue
            import dask_jobqueue.slurm  # noqa: F401 — the runner's import, here
        finally:
            signal.signal = real
    return dask_jobqueue


def slurm_cluster(config: str | os.PathLike | None = None, *, n_workers: int | None = None, **options: Any):
    """A dask-jobqueue ``SLURMCluster`` from the ``slurm`` section of a deployment YAML
    (default ``deploy/slurm.yaml``), overridden by ``options``; returns (cluster, jobs)."""
    try:
        SLURMCluster = _jobqueue().SLURMCluster  # noqa: N806
    except ImportError:
        raise ClusterError("`cluster`='slurm' needs dask-jobqueue: pip install 'bigseg[slurm]'.") from None
    from ..config import load_deploy

    kwargs = {**load_deploy(config or "slurm").get("slurm", {}), **options}
    jobs = n_workers or kwargs.pop("jobs", None) or 1  # --workers / n_workers first: the jobs asked for now
    kwargs.pop("jobs", None)
    # queue/account "": none (the site's default partition, no account), where the deployment
    # file names one (null keeps the file's; dask-jobqueue would write "#SBATCH -p " of "")
    kwargs = {k: v for k, v in kwargs.items() if v is not None and not (k in ("queue", "account") and v == "")}
    _check_slurm_keys(kwargs)
    _check_slurm_memory(kwargs)
    threads = _slurm_worker_threads(kwargs)
    prologue = list(kwargs.get("job_script_prologue") or [])
    if threads > 1 and not any(v in line for line in prologue for v in _THREAD_VARIABLES):
        kwargs["job_script_prologue"] = [f"export {' '.join(f'{v}={threads}' for v in _THREAD_VARIABLES)}", *prologue]
    if shutil.which("sbatch") is None:  # dask-jobqueue would log each failed submission and wait for ever
        raise ClusterError("`cluster`='slurm' submits its workers with SLURM's sbatch, which is not on this "
                           "machine's PATH: start bigseg on a node of the SLURM cluster (e.g. a login node), or "
                           "pass the address of a running scheduler.")
    kwargs.setdefault("scheduler_options", {"dashboard_address": ":0"})
    return SLURMCluster(**kwargs), jobs


#: the variables that set torch's intra-op threads (MKL's, where set, before OpenMP's); a nanny
#: starts its worker with both at 1 unless they are set in its environment
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _slurm_worker_threads(kwargs: dict[str, Any]) -> int:
    """Threads of each worker of a SLURM job (``cores`` / ``processes``, as dask-jobqueue splits
    them), which its torch forward passes are given: a nanny starts its worker with
    OMP_NUM_THREADS=MKL_NUM_THREADS=1 unless the job's environment sets them, and inference runs
    one block per process at a time (the device lock), so a worker of 4 threads ran the model on
    one core while the job held four."""
    cores = kwargs.get("cores")
    if not isinstance(cores, int) or cores < 1:
        return 1  # dask-jobqueue's own configuration or error
    processes = kwargs.get("processes")
    if not isinstance(processes, int) or processes < 1:
        from distributed.deploy.local import nprocesses_nthreads

        processes = nprocesses_nthreads(cores)[0]
    return max(1, cores // processes)


def slurm_keywords() -> set[str]:
    """The keywords dask-jobqueue's ``SLURMCluster`` takes, its job's included (``jobs``: how many
    jobs bigseg starts)."""
    import inspect

    jobqueue = _jobqueue()
    SLURMCluster, Job, SLURMJob = jobqueue.SLURMCluster, jobqueue.core.Job, jobqueue.slurm.SLURMJob  # noqa: N806

    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    internal = {"self", "scheduler", "job_cls", "loop", "job_kwargs", "base_class_kwargs", "n_workers"}
    return {n for c in (SLURMCluster, SLURMJob, Job) for n, p in inspect.signature(c.__init__).parameters.items()
            if p.kind in kinds and n not in internal} | {"jobs"}


def _check_slurm_keys(kwargs: dict[str, Any]) -> None:
    """Keywords dask-jobqueue does not take (a typo in the deployment file): refused by name
    before any job is submitted (InputError); dask-jobqueue would fail in its own words."""
    unknown = sorted(set(kwargs) - slurm_keywords())
    if unknown:
        got = ", ".join(f"`{k}`={kwargs[k]!r}" for k in unknown)
        raise InputError(f"Expected the `slurm` settings to be keywords of dask-jobqueue's SLURMCluster "
                         f"({', '.join(sorted(slurm_keywords()))}). Got {got} instead.")


def _check_slurm_memory(kwargs: dict[str, Any]) -> None:
    """A job's ``memory`` split between its ``processes`` (dask workers) below MIN_WORKER_MEMORY
    per worker: refused by name before any job is submitted (InputError), as for a local cluster."""
    from dask.utils import format_bytes, parse_bytes

    if "memory" not in kwargs:
        return
    processes = kwargs.get("processes") or 1
    try:
        per_worker = parse_bytes(kwargs["memory"]) / processes
    except (ValueError, TypeError, ZeroDivisionError):
        return  # said by dask-jobqueue, with its own words
    if per_worker < MIN_WORKER_MEMORY:
        raise InputError(f"Expected `slurm.memory` / `slurm.processes` to give each worker at least "
                         f"{format_bytes(MIN_WORKER_MEMORY)} ({_WHY_FLOOR}). Got memory "
                         f"{kwargs['memory']!r} for {processes} process(es): {format_bytes(per_worker)} each.")


#: seconds ``sbatch --test-only`` may take (a SLURM controller that does not answer)
SBATCH_TEST_TIMEOUT = 60.0


def _check_sbatch_accepts(cluster: Any) -> None:
    """The job script of ``cluster`` (a dask-jobqueue SLURMCluster) checked by ``sbatch
    --test-only``, which validates partition, account, limits and #SBATCH lines without
    submitting: refused by SLURM's own words (ClusterError), before any job. Was: dask-jobqueue
    logged each refused submission as a traceback, and the run said "connected to slurm (0
    workers)" and waited for ever for jobs "still queued"."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="bigseg-slurm-check-", delete=False) as f:
        f.write(cluster.job_script())
    try:
        out = subprocess.run(["sbatch", "--test-only", f.name], capture_output=True, text=True,
                             timeout=SBATCH_TEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"`cluster`='slurm': sbatch --test-only did not answer within {SBATCH_TEST_TIMEOUT:g} s "
                           f"(is the SLURM controller reachable from here? scontrol ping)") from None
    finally:
        os.unlink(f.name)
    if out.returncode != 0:
        said = " ".join((out.stderr or out.stdout).split()) or f"exit code {out.returncode}"
        raise ClusterError(f"Expected SLURM to accept the workers' job (the `slurm` settings: queue, account, cores, "
                           f"memory, walltime, job_extra_directives, ...). Got from sbatch --test-only: {said}")


#: the clusters :func:`connect` starts by name (anything else is a running scheduler's address)
CLUSTER_NAMES = ("local", "local-cuda", "slurm")


def is_address(cluster: str) -> bool:
    """Whether a cluster spec is the address of a running scheduler ("tcp://host:port",
    "host:port"), not the name of one bigseg starts."""
    return "://" in cluster or (":" in cluster and cluster.split(":")[-1].isdigit())


def is_cluster_spec(cluster: Any) -> bool:
    """Whether ``cluster`` is where a run can compute: ``"threads"`` (in the process), a name of
    :data:`CLUSTER_NAMES` or a scheduler's address (checked further where it is reached)."""
    return isinstance(cluster, str) and (cluster == "threads" or cluster in CLUSTER_NAMES or is_address(cluster))


def _check_options(cluster: str, options: dict[str, Any]) -> None:
    """Refuse, before anything starts, keywords that neither the cluster nor its workers take
    (LocalCluster hands unknown ones to each worker, which then fails to start: "Nanny failed
    to start", no name)."""
    address = is_address(cluster)
    if not options or cluster == "slurm" or not (address or cluster in ("local", "local-cuda")):
        return  # slurm_cluster checks its own; an unknown name is said by connect
    import inspect

    if cluster in ("local", "local-cuda"):
        from distributed import LocalCluster, Nanny, Worker
        from distributed.core import Server

        takers: list[Any] = [LocalCluster, Nanny, Worker, Server]
        if cluster == "local-cuda":
            try:
                from dask_cuda import LocalCUDACluster
            except ImportError:
                return  # said by connect, next
            takers.append(LocalCUDACluster)
        what = "LocalCluster or its workers" if cluster == "local" else "LocalCUDACluster or its workers"
    else:
        from distributed import Client

        takers, what = [Client], "distributed.Client"
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    known = {n for t in takers for n, p in inspect.signature(t.__init__).parameters.items() if p.kind in kinds}
    unknown = sorted(set(options) - known)
    if unknown:
        got = ", ".join(f"`{k}`={options[k]!r}" for k in unknown)
        raise InputError(f"Expected the options of `cluster`={cluster!r} to be keywords of {what}. Got {got} instead.")


def check_host(host: Any, name: str = "host") -> str:
    """``host`` as a local cluster listens on it: a name or an IPv4 address; an IPv6 one (``::1``,
    ``[::1]``) refused by ``name`` (InputError) before anything starts: dask's local cluster does not
    start on one (distributed's "Cluster failed to start: invalid address")."""
    if not isinstance(host, str) or not host.strip():
        raise InputError(f"Expected `{name}` to be an address of this machine or its name (127.0.0.1, 0.0.0.0). "
                         f"Got {host!r} instead.")
    if ":" in host or host.startswith("["):
        raise InputError(f"Expected `{name}` to be an IPv4 address of this machine or its name (127.0.0.1, 0.0.0.0; "
                         f"dask's local cluster does not start on IPv6 addresses). Got {host!r} instead.")
    return host


#: where a cluster bigseg starts serves its dashboard unless told (``dashboard_address``): any free
#: port of this machine only (for ``"local"``, of its ``host``)
_DEFAULT_DASHBOARD = "127.0.0.1:0"

#: the clients of the clusters :func:`connect` started in this process (a second start is warned)
_STARTED: weakref.WeakSet = weakref.WeakSet()


def connect(
    cluster: str = "local",
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    memory_limit: Any = None,
    dashboard: bool = True,
    config: str | os.PathLike | None = None,
    timeout: float = 30,
    quiet: bool = False,
    **options: Any,
):
    """Start or reach a Dask cluster and return a client (also a context manager).

    Parameters
    ----------
    cluster : ``"local"`` (LocalCluster of processes: one worker per core, memory split
        evenly, dashboard on 127.0.0.1), ``"local-cuda"`` (dask-cuda LocalCUDACluster: one
        worker per GPU), ``"slurm"`` (dask-jobqueue SLURMCluster configured from
        ``config`` or ``deploy/slurm.yaml``; ``n_workers`` jobs) or a scheduler address
        ``"tcp://host:port"``.
    n_workers : workers to start (``"local"``: default one per core; ``"local-cuda"``: one
        per GPU; ``"slurm"``: jobs); unused with an address (its workers are those it has).
    threads_per_worker : threads of each worker started (default 1).
    memory_limit : per-worker limit ("4GiB" or bytes); default: 90 % of RAM split evenly
    dashboard : serve the dask dashboard (on 127.0.0.1) and print its link.
    config : ``"slurm"`` only: its deployment YAML (default ``deploy/slurm.yaml``).
    timeout : seconds (> 0) to wait for the scheduler or the cluster to answer.
    quiet : do not print the one line naming the cluster, its workers and the dashboard.
    **options : further keywords of the cluster class (e.g. ``LocalCluster``: ``host``,
        ``dashboard_address=":8787"`` for a fixed port an SSH tunnel names, ``processes=False``
        for threads of this process) or, for an address, of ``distributed.Client``; an unknown
        one is refused by name.

    Returns
    -------
    ``distributed.Client`` (bigseg's subclass), closing the workers it started on ``close()``.

    Leaving the ``with`` block (or ``client.close()``) shuts down the workers bigseg started.
    """
    global BigsegClient
    if BigsegClient is None:
        BigsegClient = _client_class()
    if not isinstance(cluster, str) or not cluster:
        raise InputError(f"Expected `cluster` to be 'local', 'local-cuda', 'slurm' or 'tcp://host:port'. Got {cluster!r} instead.")
    if n_workers is not None:
        n_workers = parse_positive_int("n_workers", n_workers)
    # 0 or -1: "Nanny failed to start" after the workers' tracebacks
    parse_positive_int("threads_per_worker", threads_per_worker)
    timeout = parse_positive_float("timeout", timeout)  # -1: "Timeout value out of range" from the socket
    if memory_limit is not None and not (isinstance(memory_limit, str) and memory_limit == "auto"):
        from dask.utils import parse_bytes

        try:
            ok = parse_bytes(memory_limit) > 0
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise InputError(f"Expected `memory_limit` to be a size such as '4GiB' (per worker). Got {memory_limit!r} instead.")
    dash = _DEFAULT_DASHBOARD if dashboard else None
    _check_options(cluster, options)
    if options.get("host") not in (None, "") and cluster in ("local", "local-cuda"):  # (None, "": 127.0.0.1)
        check_host(options["host"])
    if "dashboard_address" in options and cluster in ("local", "local-cuda"):  # a fixed port (an SSH tunnel's)
        given = options.pop("dashboard_address")  # (passed besides bigseg's own: "multiple values" TypeError)
        if not dashboard and given is not None:  # (None: no dashboard, as dashboard=False says)
            raise InputError(f"Expected no `dashboard_address` with dashboard=False. Got {given!r}.")
        if given is not None:
            dash = given

    if is_address(cluster):
        from distributed.comm.registry import backends

        scheme = cluster.split("://")[0] if "://" in cluster else "tcp"
        if scheme not in backends:  # e.g. a typo (tpc://) or http:// (the dashboard's address, not the scheduler's)
            web = " (an http address is the dashboard's; the scheduler listens on tcp, port 8786 by default)"
            raise InputError(f"Expected `cluster` to be a scheduler address such as 'tcp://host:8786' (schemes: "
                             f"{', '.join(sorted(backends))}). Got {cluster!r} instead"
                             f"{web if scheme in ('http', 'https') else ''}.")
        _probe_scheduler(cluster, timeout)  # a port that is no scheduler's: said, not a hang or a MemoryError
        try:
            client = BigsegClient(cluster, timeout=timeout, **options)
        except (OSError, TimeoutError) as exc:
            raise _unreachable(cluster, exc) from None
        try:
            check_workers(client)
        except BaseException:  # refused (ClusterError, MemoryBudgetError) or interrupted: the client closed
            client.close()
            raise
        if not quiet:
            _announce(client, f"scheduler {cluster}")
        return client

    running = [c for c in list(_STARTED) if getattr(c, "status", "") == "running"]
    if running:  # a notebook cell run again: each cluster its own workers and memory
        import warnings

        warnings.warn(f"A cluster bigseg started in this process is still running ({running[0].dashboard_link}): "
                      f"this starts another beside it, with workers and memory of its own. Close the first "
                      "(client.close(), or `with bigseg.connect(...) as client:`), or use it again.", UserWarning,
                      stacklevel=2)
    environ = dict(os.environ)
    lc = None
    try:
        with children_ignore_ctrl_c():  # the workers: Ctrl-C reaches this process alone (held till they run)
            lc = _start(cluster, n_workers, threads_per_worker, memory_limit, dash, config, options)
        client = BigsegClient(lc, timeout=timeout)
    except BaseException:  # also a Ctrl-C held while the cluster started: it is closed, not left running
        if lc is not None:
            _close_started(lc)
        _restore_environ(*_environ_changes(environ))
        raise
    client._owned_cluster = lc
    client._environ = _environ_changes(environ)  # put back on close (OMP_NUM_THREADS=1 stayed set)
    _STARTED.add(client)
    if not quiet:
        _announce(client, cluster, dashboard=dashboard)
    return client


def _unreachable(address: str, exc: BaseException) -> ClusterError:
    return ClusterError(f"Could not reach the Dask scheduler at `cluster`={address!r}: {exc}")


#: seconds a server that accepted the connection has to answer as a Dask scheduler does
HANDSHAKE_TIMEOUT = 10.0


def _probe_scheduler(address: str, timeout: float) -> None:
    """Whether a Dask scheduler answers at ``address``: one connection and its handshake, in a
    thread of its own (a caller's running event loop is left alone). A malformed address (no
    port) is refused (InputError); nothing listening, after ``timeout`` (distributed's retries),
    and a server that is no scheduler's (the dashboard's HTTP port, another service: distributed
    waited for its handshake for ever, or read its bytes as a frame of exabytes) are said by name
    (ClusterError)."""
    import asyncio
    import concurrent.futures
    import socket

    from distributed.comm import connect as comm_connect
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, loc = parse_address(address if "://" in address else f"tcp://{address}")
        host_port = parse_host_port(loc) if scheme in ("tcp", "tls") else None
    except ValueError as exc:
        raise InputError(f"Expected `cluster` to be a scheduler address with its port, such as 'tcp://host:8786'. "
                         f"Got {address!r} instead ({exc}).") from None
    if scheme != "tcp":  # tls, ws, ucx: their security and options are the client's own (not probed)
        return
    budget = timeout + HANDSHAKE_TIMEOUT  # connecting ends by `timeout` (distributed's OSError), then the handshake
    if host_port is not None:
        try:  # listening now: only the handshake is waited for
            socket.create_connection(host_port, timeout=min(timeout, 5)).close()
            budget = HANDSHAKE_TIMEOUT
        except OSError:
            pass  # not (yet) listening: distributed retries for `timeout` s

    async def probe() -> None:
        comm = await asyncio.wait_for(comm_connect(address, timeout=timeout, deserialize=False), budget)
        await comm.close()

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bigseg-probe") as pool:
        try:
            pool.submit(asyncio.run, probe()).result()
        except asyncio.TimeoutError:
            raise ClusterError(f"Expected a Dask scheduler at `cluster`={address!r}. Got a server that accepted the "
                               f"connection but did not answer as a scheduler within {HANDSHAKE_TIMEOUT:g} s: the "
                               f"dashboard's port (http, 8787 by default) or another service? `dask scheduler` and "
                               f"`bigseg cluster` print the scheduler's address (tcp://host:8786 by default).") from None
        except OSError as exc:  # nothing listening there (distributed's retries for `timeout` s)
            raise _unreachable(address, exc) from None
        except Exception as exc:  # noqa: BLE001 — bytes that are no scheduler's handshake (MemoryError, ...)
            raise ClusterError(f"Expected a Dask scheduler at `cluster`={address!r}. Got a server that answered "
                               f"otherwise ({type(exc).__name__}): another service on that port (the dashboard's?). "
                               f"`dask scheduler` and `bigseg cluster` print the scheduler's address.") from None


def _own_scratch(options: dict[str, Any]) -> tuple[str | None, bool]:
    """The folder for a local cluster's scheduler and workers (spilled data, locks) and whether it
    was made here: the caller's ``local_directory`` (the scheduler's too), none where dask's
    ``temporary-directory`` names one, else a folder of its own, set in ``options`` and removed when
    the cluster closes (distributed leaves an empty ``dask-scratch-space`` in the temporary folder)."""
    import dask

    if options.get("local_directory") is not None:
        return str(options["local_directory"]), False
    if dask.config.get("temporary-directory", None):
        return None, False
    options["local_directory"] = tempfile.mkdtemp(prefix="bigseg-dask-")
    return options["local_directory"], True


def _close_started(lc: Any) -> None:
    """Close a cluster :func:`connect` started, and remove the scratch folder made for it."""
    try:
        lc.close()
    finally:
        scratch = getattr(lc, "_bigseg_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _start(cluster: str, n_workers: int | None, threads_per_worker: int, memory_limit: Any, dash: Any,
           config: Any, options: dict[str, Any]) -> Any:
    """The cluster a name asks for (local, local-cuda, slurm), started."""
    options = dict(options)
    folder, made = _own_scratch(options) if cluster in ("local", "local-cuda") else (None, False)
    scratch = folder if made else None
    try:
        import dask

        with dask.config.set({"temporary-directory": folder} if folder else {}):  # the scheduler's folder too
            lc = _started(cluster, n_workers, threads_per_worker, memory_limit, dash, config, options)
    except BaseException:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    lc._bigseg_scratch = scratch
    return lc


def _started(cluster: str, n_workers: int | None, threads_per_worker: int, memory_limit: Any, dash: Any,
             config: Any, options: dict[str, Any]) -> Any:
    if cluster == "local":
        from distributed import LocalCluster

        n = n_workers or os.cpu_count() or 1
        per_worker = _memory_split(memory_limit, n)  # before any process starts
        host = options.pop("host", None) or "127.0.0.1"  # "0.0.0.0": other machines reach it too (was a TypeError)
        processes = options.pop("processes", True)  # (False: threads of this process; was a TypeError)
        if not processes:  # on tcp at ``host`` (distributed's in-process transport takes no host)
            options.setdefault("protocol", "tcp://")
        if dash == _DEFAULT_DASHBOARD:  # (a `dashboard_address` given is the caller's)
            dash = f"{host}:0"
        import dask

        # the workers' torch threads: their own (a nanny sets 1 unless this process's environment sets them)
        torch_threads = {f"distributed.nanny.pre-spawn-environ.{v}": threads_per_worker for v in _THREAD_VARIABLES}
        with dask.config.set(torch_threads if threads_per_worker > 1 else {}):
            lc = LocalCluster(
                n_workers=n,
                threads_per_worker=threads_per_worker,
                processes=processes,
                memory_limit=per_worker,
                dashboard_address=dash,
                host=host,
                **options,
            )
    elif cluster == "local-cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            raise ClusterError(
                "`cluster`='local-cuda' needs dask-cuda: pip install 'bigseg[gpu]' (and a CUDA build of torch)."
            ) from None
        if gpu_count() == 0:
            raise ClusterError("`cluster`='local-cuda' needs at least one CUDA GPU. Found none.")
        if memory_limit not in (None, "auto"):  # the floor, and all workers together (one per GPU unless given)
            _memory_split(memory_limit, n_workers or gpu_count())
        lc = LocalCUDACluster(
            n_workers=n_workers, threads_per_worker=threads_per_worker, dashboard_address=dash,
            memory_limit=memory_limit or "auto", **options,
        )
    elif cluster == "slurm":
        lc, jobs = slurm_cluster(config, n_workers=n_workers, **options)
        try:
            _check_sbatch_accepts(lc)  # before any job: a refused one was logged, then waited on for ever
        except BaseException:
            lc.close()
            raise
        lc.scale(jobs=jobs)
    else:
        raise InputError(
            f"Expected `cluster` to be 'local', 'local-cuda', 'slurm' or 'tcp://host:port'. Got {cluster!r} instead."
        )
    return lc


def computed_on() -> dict[str, Any]:
    """Where work computes now, for run.json and a benchmark's record (a configuration's
    ``cluster`` says what was asked, not how it ran): the scheduler's address with its workers
    (all of them: some distributed versions' ``scheduler_info()`` names 5), threads and each worker's memory
    limit in bytes (the least and the most where they differ; absent where none is set), and the
    kind of cluster (``LocalCluster``, ``SLURMCluster``, ``LocalCUDACluster``) where this process
    started it; or threads in this process."""
    from ._progress import current_client

    client = current_client()
    if client is None:
        import dask

        return {"scheduler": "threads in this process",
                "threads": int(dask.config.get("num_workers", None) or dask.system.CPU_COUNT)}
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    out: dict[str, Any] = {"scheduler": str(client.scheduler.address), "workers": len(workers),
                           "threads": sum(int(w.get("nthreads", 0)) for w in workers)}
    limits = sorted({int(w.get("memory_limit") or 0) for w in workers} - {0})
    if limits:  # what the memory check sized the blocks by (a worker with no limit: none said)
        out["memory_limit_per_worker"] = limits[0] if len(limits) == 1 else [limits[0], limits[-1]]
    cluster = getattr(client, "cluster", None)
    if cluster is not None:  # (none for a scheduler reached by its address)
        out["cluster"] = type(cluster).__name__
    return out
