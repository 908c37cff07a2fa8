"""Memory budget: estimate a task's footprint and refuse, before any work, what would not fit.

In the spirit of cubed's ``Plan.validate``: every stage that builds a dask graph states how many
bytes one of its tasks holds at once (block + halo/overhang, channels, dtype, copies) and calls
:func:`check_budget` with the worker's limit, so that a configuration that cannot fit fails in
a second with both numbers instead of after an hour with a killed worker.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

from ..errors import InputError, MemoryBudgetError
from ._progress import current_client

__all__ = ["format_bytes", "parse_bytes", "worker_memory_limit", "check_budget", "fitting_edge", "chunks_lever",
           "run_chunks", "MAX_STORED_CHUNK", "MAX_CHOSEN_CHUNK", "check_stored_chunk"]


def format_bytes(n: float) -> str:
    """``1536 -> '1.5 KiB'`` (binary units)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def parse_bytes(value: Any, *, name: str = "memory_limit") -> int:
    """Bytes from an int or a string such as ``"4GiB"``/``"500 MB"`` (InputError otherwise)."""
    from .._parse import _fail

    if isinstance(value, bool):
        raise _fail(name, "to be a number of bytes or a size such as '4GiB'", value)
    if isinstance(value, (int, float)) and value > 0:
        return int(value)
    if isinstance(value, str):
        from dask.utils import parse_bytes as _pb

        try:
            n = int(_pb(value))
        except (ValueError, TypeError):
            raise _fail(name, "to be a number of bytes or a size such as '4GiB'", value) from None
        if n > 0:
            return n
    raise _fail(name, "to be a positive number of bytes or a size such as '4GiB'", value)


#: what a worker process holds before any data, which its tasks cannot use (measured resident
#: memory of a LocalCluster worker: 0.06 GiB bare, 0.33 GiB with bigseg and torch imported, 0.44 GiB
#: once the compiled filter kernels are loaded)
WORKER_BASELINE = 460 * 2**20


def _for_tasks(limit: int) -> tuple[int, str]:
    """A worker's ``memory_limit`` as what its tasks may use: up to dask's terminate threshold
    (95 % by default: its nanny restarts it there), less :data:`WORKER_BASELINE`."""
    import dask

    frac = dask.config.get("distributed.worker.memory.terminate", 0.95) or 1.0
    usable = max(int(limit * float(frac)) - WORKER_BASELINE, 1)
    return usable, (f"{format_bytes(limit)}: {float(frac):.0%} before it is restarted, less the "
                    f"~{format_bytes(WORKER_BASELINE)} a worker holds before any data")


def worker_memory_limit(memory_limit: Any = None) -> tuple[int, int, str]:
    """The memory the tasks of one worker may use, how many it runs at once, and where that came from.

    Order: an explicit ``memory_limit`` (bytes or "4GiB", all of it for one task at a time); the
    active ``distributed.Client``'s smallest worker ``memory_limit`` (and its largest
    ``nthreads``); dask config ``distributed.worker.memory.limit`` (a worker's limit is what its
    tasks may use up to dask's terminate threshold, less what the worker holds before any data,
    :func:`_for_tasks`); else the machine's RAM shared by the local scheduler's threads.
    """
    if memory_limit is not None:
        return parse_bytes(memory_limit), 1, "memory_limit"
    client = current_client()
    if client is not None:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        limits = [w.get("memory_limit") or 0 for w in workers.values()]
        threads = [w.get("nthreads") or 1 for w in workers.values()]
        if limits and min(limits) > 0:
            usable, how = _for_tasks(int(min(limits)))
            return usable, int(max(threads)), f"worker memory_limit {how}"
    import dask

    cfg = dask.config.get("distributed.worker.memory.limit", None)
    if cfg not in (None, "auto", 0):
        # a number up to 1 (or its text, "0.5") is a share of the memory this process may use,
        # as dask's memory_limit reads it (0.5 was 1 byte: every stage refused)
        share = _share(cfg)
        usable, how = _for_tasks(int(share * _memory_total()) if share is not None else parse_bytes(cfg))
        return usable, 1, f"distributed.worker.memory.limit {how}"
    import psutil

    threads = int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
    return int(psutil.virtual_memory().total), threads, "RAM of this machine (local scheduler)"


def _share(value: Any) -> float | None:
    """``value`` as a share of memory (a number in (0, 1], or its text), else None (bytes)."""
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if 0 < x <= 1 else None


def _memory_total() -> int:
    """The memory this process may use: dask's own figure (the machine's, or its cgroup's limit
    under SLURM or in a container) where distributed is imported already, else the machine's.
    (Not imported here: imported inside a ``dask.config.set`` block, distributed's defaults are
    lost when the block ends, and later reads of its settings fail with KeyError.)"""
    if "distributed" in sys.modules:
        from distributed.system import MEMORY_LIMIT

        return int(MEMORY_LIMIT)
    import psutil

    return int(psutil.virtual_memory().total)


def check_budget(
    footprint: int,
    *,
    what: str,
    memory_limit: Any = None,
    suggestion: str = "",
    tasks: int | None = None,
) -> tuple[int, int]:
    """Raise :class:`MemoryBudgetError` when ``footprint`` bytes per task, times the tasks a
    worker runs at once (no more than the graph's ``tasks``), exceed what its tasks may use
    (:func:`worker_memory_limit`). Returns ``(needed, limit)`` in bytes."""
    limit, concurrent, source = worker_memory_limit(memory_limit)
    concurrent = max(1, min(concurrent, tasks)) if tasks is not None else concurrent
    needed = int(footprint) * concurrent
    if needed > limit:
        per = f" ({concurrent} tasks at once × {format_bytes(footprint)})" if concurrent > 1 else ""
        raise MemoryBudgetError(
            f"{what} needs an estimated {format_bytes(needed)} per worker{per}, more than the "
            f"{format_bytes(limit)} available ({source}). {suggestion}".rstrip()
        )
    return needed, limit


def fitting_edge(budget: int, bytes_per_voxel: float, *, halo: int = 0) -> int:
    """The largest chunk edge (a multiple of 16) whose cube, with a halo of ``halo`` voxels on each
    side, holds at most ``budget`` bytes at ``bytes_per_voxel``; below 16 where none fits."""
    edge = int((budget / bytes_per_voxel) ** (1 / 3)) - 2 * halo
    return edge // 16 * 16 if edge >= 16 else edge


#: the most bytes one stored chunk of a source (a zarr array, a chunked HDF5 dataset) may decode to: a read
#: decodes whole chunks, and a file of a few KB (zstd of zeros) stating one 1024³ chunk took 1.2 GB at the
#: first read, a 4096³ one 64 GiB. Other writers' slices (1 × 2048 × 2048) or 512³ blocks stay well below
MAX_STORED_CHUNK = 2**30

#: the most bytes of a chunk bigseg chooses itself when writing (no ``chunks`` given: the data's own,
#: halved until they fit): a viewer decodes a whole chunk to show one slice of it (was up to 1 GiB, a
#: NumPy array's dask "auto" chunks 128 MiB); 256³ float32
MAX_CHOSEN_CHUNK = 2**26


def check_stored_chunk(chunks: Any, dtype: Any, *, name: str, value: Any) -> int:
    """Refuse, before any read, a source (argument ``name`` of value ``value``) whose stored chunks of
    shape ``chunks`` and ``dtype`` would each decode to more than :data:`MAX_STORED_CHUNK` bytes;
    returns a chunk's bytes. A source whose chunks fit is checked against the workers' memory where a
    stage reads it (its stored chunk in the task's footprint: ingest's ``_check_memory``)."""
    import numpy as np

    nbytes = math.prod(int(c) for c in chunks) * np.dtype(dtype).itemsize
    if nbytes > MAX_STORED_CHUNK:
        raise InputError(
            f"Expected `{name}` to store its data in chunks of at most {format_bytes(MAX_STORED_CHUNK)} each once "
            f"decoded (every read decodes whole chunks). Got {str(value)!r}, whose chunks of {tuple(chunks)} "
            f"{np.dtype(dtype)} decode to {format_bytes(nbytes)} each: not read (a small file can state chunks that "
            f"need more memory than the machine has). Rechunk it with another tool first (e.g. to 256³ blocks or "
            f"single slices: zarr's or h5py's copy with other chunks, rechunker, h5repack -l CHUNK=...).")
    return nbytes


#: set inside a pipeline run (:func:`run_chunks`): the chunks a refusal suggests are the run's setting
_RUN_CHUNKS: contextvars.ContextVar[bool] = contextvars.ContextVar("bigseg_run_chunks", default=False)


@contextlib.contextmanager
def run_chunks() -> Iterator[None]:
    """Within the block, :func:`chunks_lever` names a run's ``chunks`` (``--chunks``): what sets the
    blocks of every stage of a pipeline run, where a stage's own lever (``vol.chunk``) is none."""
    token = _RUN_CHUNKS.set(True)
    try:
        yield
    finally:
        _RUN_CHUNKS.reset(token)


def chunks_lever(edge: int, own: str) -> str:
    """How to get chunks of ``edge`` as a refusal says it: the stage's ``own`` way, or inside
    :func:`run_chunks` the run's setting."""
    return f"the run's `chunks`: chunks={edge}, command line --chunks {edge}" if _RUN_CHUNKS.get() else own
