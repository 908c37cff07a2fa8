"""numba's ``njit`` for bigseg's kernels, safe to stop.

A Python signal handler that raises (Ctrl-C's ``KeyboardInterrupt``, the command line's SIGTERM
as ``SystemExit``) while numba runs a compiled function in the main thread is not propagated
by numba: the call returns its result with the exception set (``SystemError: ... returned a
result with an exception set``), or, for a tuple of arrays, a tuple with a missing item, and
unpacking it crashed the process (SIGSEGV: a SLURM job's time limit reached while ``bigseg
bench`` drew its synthetic electrode exited -11, its temporary volumes left behind). So every
kernel called from the main thread runs with Ctrl-C and SIGTERM held, each delivered to its
handler as soon as the kernel returns. Kernels in other threads (dask's workers) are called as
they are: Python runs signal handlers in the main thread only.
"""

from __future__ import annotations

import functools
import importlib
import threading
from typing import Any, Callable

import numba

from ..runtime._signals import stops_held


class Kernel:
    """A compiled kernel: numba's dispatcher (``dispatcher``) called with the stops held in the
    main thread (:class:`stops_held`). Compiled callers use the dispatcher itself (numba types
    a kernel by its ``_numba_type_``); pickles and dask tokens name it by module and name."""

    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher
        functools.update_wrapper(self, dispatcher.py_func)

    @property
    def _numba_type_(self) -> Any:
        return self.dispatcher._numba_type_

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return self.dispatcher(*args, **kwargs)
        with stops_held():
            return self.dispatcher(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # py_func, signatures, ... (only names not found above)
        if name == "dispatcher":  # (unpickling: not yet set)
            raise AttributeError(name)
        return getattr(self.dispatcher, name)

    def __reduce__(self) -> tuple:
        return _named, (self.__module__, self.__qualname__)

    def __dask_tokenize__(self) -> tuple:
        return ("bigseg.kernel", self.__module__, self.__qualname__)

    def __repr__(self) -> str:
        return f"<bigseg kernel {self.__module__}.{self.__qualname__}>"


def _named(module: str, qualname: str) -> Kernel:
    """The kernel ``module.qualname`` (how a pickled one is found again)."""
    return functools.reduce(getattr, qualname.split("."), importlib.import_module(module))


def njit(**options: Any) -> Callable[[Callable], Kernel]:
    """``numba.njit(**options)``, the compiled function made a :class:`Kernel`."""
    def compile_(func: Callable) -> Kernel:
        return Kernel(numba.njit(**options)(func))

    return compile_
