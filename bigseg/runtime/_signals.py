"""Ctrl-C and the processes bigseg starts (cluster workers, training's data workers)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, Callable


@contextlib.contextmanager
def children_ignore_ctrl_c(active: bool = True) -> Iterator[None]:
    """SIGINT blocked in this thread while ``active``: the processes and threads started from it
    meanwhile inherit the block (a process keeps its signal mask through exec), so Ctrl-C in a
    terminal, which reaches the whole process group, interrupts this process alone, which shuts
    them down, instead of each child printing its KeyboardInterrupt traceback. A Ctrl-C in the
    meantime is held, not lost: it reaches this process's own handler when the block ends, so
    what was started is returned first (and can be shut down). Main thread only, where signal
    handlers are set (elsewhere, or without ``pthread_sigmask``, nothing changes)."""
    import signal
    import threading

    if not active or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "pthread_sigmask") or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    from multiprocessing import resource_tracker

    # started first: starting it unblocks SIGINT in the thread that does (Python 3.11-3.13), and
    # the workers' queues and locks would start it within the block
    resource_tracker.ensure_running()
    held: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))  # taken by another thread
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if signal.SIGINT not in mask and hasattr(signal, "sigtimedwait") \
                and signal.sigtimedwait({signal.SIGINT}, 0) is not None:
            held.append(signal.SIGINT)  # the one waiting for the block to end, taken here
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, handler)
        if held and handler is not signal.SIG_IGN:
            signal.raise_signal(signal.SIGINT)  # now to the handler of before (Python's: KeyboardInterrupt)


def _import_depth(frame: Any) -> int:
    """How many of the frames from ``frame`` down are the import machinery's."""
    n = 0
    while frame is not None:
        n += frame.f_code.co_filename.startswith("<frozen importlib.")
        frame = frame.f_back
    return n


def waits_for_imports(handler: Callable) -> Callable:
    """``handler`` (a stop's, which raises) waiting for the imports the interrupted code runs: a
    stop raised inside one leaves the module half made, and one raised inside torch's (C++ that
    turns the Python error into an exception nobody catches) aborted the process (SIGABRT:
    nothing cleaned up). A stop that comes during an import is sent again every 50 ms
    (:func:`deliver_later`) and handled once the import is done. The imports under way where it
    is made are not waited for: a command run by a module's import (``python -c "import job"``)
    is in one throughout, its stop would be sent again for ever."""
    outer = _import_depth(sys._getframe(1))

    def waiting(signum: int, frame: Any) -> Any:
        if _import_depth(frame) > outer:
            deliver_later(signum)
            return None
        return handler(signum, frame)

    return waiting


def deliver_later(signum: int, delay: float = 0.05) -> threading.Timer:
    """``signum`` sent to the main thread again after ``delay`` seconds, from a daemon timer
    (returned: cancel it to send nothing): a stop that came where it could not be raised (an
    import, a finalizer). A signal to the main thread wakes it from a sleep (a watch's 30 s
    between looks); without ``pthread_kill`` (Windows) it is seen at its next instruction."""
    import _thread

    def send() -> None:
        if hasattr(signal, "pthread_kill"):
            signal.pthread_kill(threading.main_thread().ident, signum)
        else:
            _thread.interrupt_main(signum)

    timer = threading.Timer(delay, send)
    timer.daemon = True
    timer.start()
    return timer


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``, a SLURM job's ``scancel``) ends this process as
    ``SystemExit(143)`` while the block runs, so its ``finally`` clauses run (a benchmark's
    temporary volumes removed, a cluster it started shut down) instead of Python dying on the
    spot; one that comes while a module is imported, once the import is done
    (:func:`waits_for_imports`). Main thread only, and only where SIGTERM has its default action
    (a caller's own handler is left alone)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminated(signum, frame):  # noqa: ANN001
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, waits_for_imports(terminated))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def stops_not_lost() -> Iterator[None]:
    """A Ctrl-C (KeyboardInterrupt) or a SIGTERM (:func:`terminate_as_exit`'s ``SystemExit``) that
    lands while a finalizer runs (an object's ``__del__``, a weakref callback) is raised inside it,
    and Python prints "Exception ignored" and goes on: the stop was lost (a watch went on
    watching). While the block runs such a stop is delivered again, to the main thread, once the
    finalizer has returned. Main thread only (elsewhere nothing changes)."""

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hook_before = sys.unraisablehook
    again: list[threading.Timer] = []

    def deliver(signum: int) -> None:  # from a timer's thread: not from inside the finalizer's machinery,
        again.append(deliver_later(signum))  # where it would be lost again

    def unraisable(info) -> None:  # noqa: ANN001
        stop = info.exc_value
        if isinstance(stop, KeyboardInterrupt):
            deliver(signal.SIGINT)  # to SIGINT's handler now (Python's: KeyboardInterrupt)
        elif isinstance(stop, SystemExit) and threading.current_thread() is threading.main_thread():
            def exit_again(signum, frame):  # noqa: ANN001
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                raise SystemExit(stop.code)

            signal.signal(signal.SIGTERM, exit_again)
            deliver(signal.SIGTERM)
        else:
            hook_before(info)

    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        for timer in again:  # the block ended (by itself, or by that stop): nothing to deliver after it
            timer.cancel()
        sys.unraisablehook = hook_before


#: the signals whose handlers raise to stop a command (Python's Ctrl-C, bigseg's SIGTERM)
_STOPS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


class stops_held:  # noqa: N801 - a context manager, used as ``with stops_held():``
    """While the block runs in the main thread, a stop signal whose handler is Python code is
    held instead of handled; when it ends the handlers are put back and the first stop held is
    handed to its own (which raises, as it would have). Elsewhere, and for a signal with the
    system's action (SIG_DFL, SIG_IGN), nothing changes."""

    __slots__ = ("_before", "_held")

    def __enter__(self) -> stops_held:
        self._before: dict[int, Callable] = {}
        self._held: list[tuple[int, Any]] = []
        if threading.current_thread() is threading.main_thread():
            try:
                for signum in _STOPS:
                    handler = signal.getsignal(signum)
                    if callable(handler):
                        self._before[signum] = handler
                        signal.signal(signum, self._hold)
            except BaseException:  # a stop handled meanwhile (SIGTERM's, before its turn): no block, no
                self._put_back()  # __exit__; SIGINT's handler, swapped already, would hold every Ctrl-C after
                raise
        return self

    def _hold(self, signum: int, frame: Any) -> None:
        self._held.append((signum, frame))

    def _put_back(self) -> None:
        for signum, handler in self._before.items():
            signal.signal(signum, handler)

    def __exit__(self, *exc: object) -> None:
        self._put_back()
        if self._held:
            signum, frame = self._held[0]
            self._before[signum](signum, frame)
