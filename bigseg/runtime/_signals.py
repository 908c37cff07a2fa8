"""Ctrl-C and the processes bigseg starts (cluster workers, training's data workers)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def children_ignore_ctrl_c(active: bool = True) -> Iterator[None]:
    """SIGINT ignored in this process while ``active``: the processes started meanwhile inherit
    it (Python keeps an ignored SIGINT ignored at start-up), so Ctrl-C in a terminal reaches this
    process alone, which shuts them down, instead of each child printing its KeyboardInterrupt
    traceback. Main thread only (elsewhere signal handlers cannot be set: nothing changes)."""
    import signal
    import threading

    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
