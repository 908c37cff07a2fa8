"""glibc malloc tuning for block-by-block work (standard library only: imported first).

Two measures keep a process's RSS near its live data while blocks come and go:

* at most one malloc arena (``mallopt(M_ARENA_MAX)``), set when ``bigseg`` is imported:
  glibc otherwise gives every thread that allocates (zarr's I/O and decode threads, dask's
  workers, torch's) a heap of its own, each fragmented by block-sized arrays. Set before
  those threads start (hence at import), it took ``predict``'s peak RSS at 512³ from
  812 to 667-677 MiB; set only when ``predict`` starts, it changed nothing.
* :func:`release_free_heap` (``malloc_trim(0)``) after each inference block hands freed
  pages back. Why not ``mmap`` for every large array instead (a low ``M_MMAP_THRESHOLD``)?
  Each forward pass then page-faults its activations in afresh: ~60 % slower on CPU.

No-ops off glibc. ``BIGSEG_MALLOC_TUNING=0`` turns both off; a ``MALLOC_ARENA_MAX`` set in
the environment (read by glibc itself at start-up) is left alone.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["limit_heap_growth", "release_free_heap"]

_STATE: dict[str, Any] = {}


def _libc() -> Any:
    """glibc, loaded once per process, or ``None`` (another libc, or tuning turned off)."""
    if "libc" not in _STATE:
        lib = None
        if os.environ.get("BIGSEG_MALLOC_TUNING", "1") != "0":
            try:
                import ctypes

                lib = ctypes.CDLL("libc.so.6")
                lib.malloc_trim  # noqa: B018 (glibc only)
            except (OSError, AttributeError):
                lib = None
        _STATE["libc"] = lib
    return _STATE["libc"]


def limit_heap_growth(arenas: int = 1) -> bool:
    """Once per process: at most ``arenas`` malloc arenas. Returns whether it was set."""
    lib = _libc()
    if lib is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    if "arenas" not in _STATE:
        _STATE["arenas"] = int(lib.mallopt(-8, int(arenas)))  # M_ARENA_MAX; 1 = success
    return bool(_STATE["arenas"])


def release_free_heap() -> None:
    """Hand the heap's free pages back to the OS (``malloc_trim(0)``), e.g. after a block."""
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)
