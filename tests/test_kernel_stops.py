"""Stops (Ctrl-C, SIGTERM) while a compiled kernel runs in the main thread (bigseg.kernels._jit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from bigseg.kernels._jit import Kernel, njit
from bigseg.runtime._signals import stops_held


class Stop(Exception):
    pass


def _raise_stop(signum, frame):  # noqa: ANN001
    raise Stop(signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_within_the_block_is_handled_when_it_ends(signum):
    before = signal.signal(signum, _raise_stop)
    try:
        seen = []
        with pytest.raises(Stop):
            with stops_held():
                signal.raise_signal(signum)  # (handled at once, were the handler in place)
                seen.append("after the signal")
        assert seen == ["after the signal"] and signal.getsignal(signum) is _raise_stop
        with stops_held():  # nothing held: nothing raised, the handler back
            pass
        assert signal.getsignal(signum) is _raise_stop
    finally:
        signal.signal(signum, before)


def test_the_system_action_and_other_threads_are_left_alone():
    before = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with stops_held():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            signal.raise_signal(signal.SIGTERM)  # ignored, as without the block
    finally:
        signal.signal(signal.SIGTERM, before)
    got = []
    thread = threading.Thread(target=lambda: got.append(stops_held().__enter__()._before))
    thread.start()
    thread.join()
    assert got == [{}]


def test_a_kernel_is_numba_s_for_compiled_callers_pickles_and_dask():
    import pickle

    from dask.base import tokenize

    from bigseg.kernels import metrics, synth

    assert isinstance(synth.particle_points, Kernel) and synth.particle_points.__name__ == "particle_points"
    assert pickle.loads(pickle.dumps(synth.hash_uniform)) is synth.hash_uniform
    assert tokenize(metrics.histogram) == tokenize(metrics.histogram) != tokenize(metrics.label_stats)

    @njit(cache=False)
    def twice(a):
        return a * 2, a.sum()

    @njit(cache=False)
    def calls_it(a):  # a compiled caller types a kernel as numba's dispatcher
        b, s = twice(a)
        return b.sum() + s

    a = np.arange(5.0)
    assert calls_it(a) == 30.0 and twice(a)[1] == 10.0 and twice.py_func(a)[1] == 10.0


_STORM = textwrap.dedent("""
    import signal, sys, threading, time
    import numpy as np
    from bigseg.kernels._jit import njit

    @njit(cache=False, nogil=True)
    def arrays(n):
        a = np.zeros(n)
        return a, np.ones(n, np.int32), a + 1.0

    class Stop(Exception):
        pass

    armed = [False]
    def handler(signum, frame):
        if armed[0]:  # (raised only while the kernel is called: nowhere else in this loop)
            armed[0] = False
            raise Stop

    arrays(3)
    main = threading.main_thread().ident
    go, done = threading.Event(), []
    def storm():
        go.wait()
        while not done:
            signal.pthread_kill(main, signal.SIGTERM)
            time.sleep(0.0002)
    threading.Thread(target=storm, daemon=True).start()
    signal.signal(signal.SIGTERM, handler)
    go.set()
    seen = {"returned": 0, "stopped": 0, "system errors": 0}
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        try:
            armed[0] = True
            a, b, c = arrays(50)
            armed[0] = False
            seen["returned"] += int(a.sum() == 0 and b.sum() == 50 and c.sum() == 50)
        except Stop:
            seen["stopped"] += 1
        except SystemError:  # numba's: "returned a result with an exception set"
            armed[0] = False
            seen["system errors"] += 1
    done.append(True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(seen)
""")


@pytest.mark.timeout(120)
def test_a_stop_during_a_kernel_call_is_delivered_after_it_not_lost_in_numba():
    """A SIGTERM handler raising SystemExit (the command line's) while `bigseg bench` drew its
    synthetic electrode in the main thread crashed the process (SIGSEGV, in CI): numba returned
    a tuple with a missing item, or a result with the exception set (SystemError). Under a storm
    of signals each stop now ends a call as the handler's own exception, after the kernel."""
    import ast

    proc = subprocess.run([sys.executable, "-c", _STORM, "3"], capture_output=True, text=True, timeout=100,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert seen["system errors"] == 0 and seen["stopped"] > 0 and seen["returned"] > 0, seen


def test_a_stop_while_the_handlers_are_swapped_puts_them_back(monkeypatch):
    """A stop handled while the block starts (SIGTERM's handler raising before SIGTERM's turn,
    SIGINT's already swapped) ended ``__enter__`` with no ``__exit__``: SIGINT's handler stayed
    the block's, and every later Ctrl-C was held for ever, never handled."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _raise_stop)
    real = signal.getsignal

    def getsignal(signum):  # SIGTERM's handler runs (and raises) as its turn comes
        if signum == signal.SIGTERM:
            raise Stop(signum)
        return real(signum)

    try:
        monkeypatch.setattr(signal, "getsignal", getsignal)
        with pytest.raises(Stop):
            with stops_held():
                pass
        monkeypatch.undo()
        assert signal.getsignal(signal.SIGINT) is before[signal.SIGINT]
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
