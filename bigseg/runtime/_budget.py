"""Memory budget: estimate a task's footprint and refuse, before any work, what would not fit.

In the spirit of cubed's ``Plan.validate``: every stage that builds a dask graph states how many
bytes one of its tasks holds at once (block + halo/overhang, channels, dtype, copies) and calls
:func:`check_budget` with the worker's limit, so that a configuration that cannot fit fails in
a second with both numbers instead of after an hour with a killed worker.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import MemoryBudgetError
from ._progress import current_client

__all__ = ["format_bytes", "parse_bytes", "worker_memory_limit", "check_budget"]


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


def worker_memory_limit(memory_limit: Any = None) -> tuple[int, int, str]:
    """The memory one worker may use, how many tasks it runs at once, and where that came from.

    Order: an explicit ``memory_limit`` (bytes or "4GiB"; one task at a time); the active
    ``distributed.Client``'s smallest worker ``memory_limit`` (and its largest ``nthreads``);
    dask config ``distributed.worker.memory.limit``; else the machine's RAM shared by the local
    scheduler's threads.
    """
    if memory_limit is not None:
        return parse_bytes(memory_limit), 1, "memory_limit"
    client = current_client()
    if client is not None:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        limits = [w.get("memory_limit") or 0 for w in workers.values()]
        threads = [w.get("nthreads") or 1 for w in workers.values()]
        if limits and min(limits) > 0:
            return int(min(limits)), int(max(threads)), "worker memory_limit"
    import dask

    cfg = dask.config.get("distributed.worker.memory.limit", None)
    if cfg not in (None, "auto", 0):
        return parse_bytes(cfg), 1, "distributed.worker.memory.limit"
    import psutil

    threads = int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
    return int(psutil.virtual_memory().total), threads, "RAM of this machine (local scheduler)"


def check_budget(
    footprint: int,
    *,
    what: str,
    memory_limit: Any = None,
    suggestion: str = "",
) -> tuple[int, int]:
    """Raise :class:`MemoryBudgetError` when ``footprint`` bytes per task, times the tasks a
    worker runs at once, exceed the worker's limit. Returns ``(needed, limit)`` in bytes."""
    limit, concurrent, source = worker_memory_limit(memory_limit)
    needed = int(footprint) * concurrent
    if needed > limit:
        per = f" ({concurrent} tasks at once × {format_bytes(footprint)})" if concurrent > 1 else ""
        raise MemoryBudgetError(
            f"{what} needs an estimated {format_bytes(needed)} per worker{per}, more than the "
            f"{format_bytes(limit)} available ({source}). {suggestion}".rstrip()
        )
    return needed, limit
