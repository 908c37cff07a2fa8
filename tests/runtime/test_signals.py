"""Ctrl-C while bigseg starts worker processes: held for this process, never seen by the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from bigseg.runtime._signals import children_ignore_ctrl_c

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signal masks read from /proc (Linux)")


def _sigint_blocked_or_ignored(pid: int | str = "self") -> bool:
    fields = dict(line.split(":\t") for line in open(f"/proc/{pid}/status").read().splitlines() if ":\t" in line)
    bit = 1 << (signal.SIGINT - 1)
    return bool((int(fields["SigBlk"], 16) | int(fields["SigIgn"], 16)) & bit)


@pytest.fixture
def ctrl_c_raises():
    """Python's own Ctrl-C handler, also when this test run was started with SIGINT ignored."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are set in the main thread only")
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_ctrl_c_while_children_start_is_held_not_lost(ctrl_c_raises):
    """The workers were started with SIGINT ignored process-wide: a Ctrl-C during a local
    cluster's start-up (seconds) was dropped, and the run went on to the end."""
    reached_end = False
    with pytest.raises(KeyboardInterrupt):
        with children_ignore_ctrl_c():
            os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C in the middle of starting the workers
            reached_end = True
    assert reached_end  # held until the children are started, then raised
    assert not _sigint_blocked_or_ignored()  # and this process takes the next one as before


def test_processes_started_meanwhile_do_not_see_ctrl_c(ctrl_c_raises):
    with children_ignore_ctrl_c():
        child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert _sigint_blocked_or_ignored(child.pid)
    finally:
        child.communicate(b"")
    assert child.returncode == 0
    with children_ignore_ctrl_c(active=False):
        later = subprocess.run([sys.executable, "-c", "print(open('/proc/self/status').read())"],
                               capture_output=True, text=True, check=True)
    blk = next(ln for ln in later.stdout.splitlines() if ln.startswith("SigBlk:"))
    assert not int(blk.split()[1], 16) & (1 << (signal.SIGINT - 1))


def test_the_block_outlives_multiprocessing_starting_its_resource_tracker():
    """Python's resource tracker unblocks SIGINT in the thread that first starts it, which was
    the cluster's own (a worker's queue starts it): the workers then took Ctrl-C again. Run in a
    fresh interpreter, where no tracker runs yet."""
    code = ("import multiprocessing, signal\n"
            "from bigseg.runtime._signals import children_ignore_ctrl_c\n"
            "with children_ignore_ctrl_c():\n"
            "    q = multiprocessing.get_context('spawn').Queue()\n"
            "    print(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_connect_closes_a_cluster_whose_start_was_interrupted(ctrl_c_raises, monkeypatch):
    """A Ctrl-C held while the cluster started is raised once it runs: that cluster is closed
    and the environment its start changed put back, not left behind."""
    from bigseg.runtime import _cluster

    closed = []

    class Started:
        def close(self):
            closed.append(True)

    def start(*args, **kwargs):
        os.environ["BIGSEG_TEST_SET_BY_START"] = "1"
        os.kill(os.getpid(), signal.SIGINT)
        return Started()

    monkeypatch.setattr(_cluster, "_start", start)
    monkeypatch.delenv("BIGSEG_TEST_SET_BY_START", raising=False)
    with pytest.raises(KeyboardInterrupt):
        _cluster.connect("local", n_workers=1, quiet=True)
    assert closed == [True]
    assert "BIGSEG_TEST_SET_BY_START" not in os.environ


def test_a_ctrl_c_inside_a_finalizer_still_stops_the_command(ctrl_c_raises):
    """A Ctrl-C that lands while an object's ``__del__`` runs is raised there, and Python prints
    "Exception ignored" and goes on: `bigseg watch` went on watching after its Ctrl-C (CI: a test
    waited 30 s for it to end). The CLI's handler delivers it again once the finalizer is done."""
    import time

    from bigseg.cli import _quiet_shutdown_on_interrupt

    class Finalized:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)  # Ctrl-C while the finalizer runs
            sum(range(10))  # (the handler runs at the finalizer's next instruction)

    hook = sys.unraisablehook
    restore = _quiet_shutdown_on_interrupt()
    went_on = False
    try:
        with pytest.raises(KeyboardInterrupt):
            Finalized()  # dropped at once
            t0 = time.monotonic()
            while time.monotonic() - t0 < 5:  # a watch waiting for its next look at the inbox
                time.sleep(0.02)
            went_on = True
    finally:
        restore()
    assert not went_on
    assert sys.unraisablehook is hook and signal.getsignal(signal.SIGINT) is signal.default_int_handler
