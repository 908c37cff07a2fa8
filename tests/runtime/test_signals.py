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



class _StoppedWhileFinalized:
    """Sends ``signum`` to this process from its finalizer, as a Ctrl-C or a SIGTERM that lands
    while Python runs an object's ``__del__`` (between a watch's scans: dask's, zarr's objects)."""

    def __init__(self, signum: int):
        self.signum = signum

    def __del__(self):
        signal.raise_signal(self.signum)
        sum(range(10))  # (the handler runs at the finalizer's next instruction)


def _waits(seconds: float = 5) -> bool:
    """A watch waiting for its next look at the inbox (one sleep: the stop must wake it, not wait
    for its end); True when the wait ran to its end."""
    import time

    time.sleep(seconds)
    return True


@pytest.mark.parametrize("signum, stop", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)])
def test_a_stop_inside_a_finalizer_is_not_lost(ctrl_c_raises, signum, stop):
    """Raised inside ``__del__``, Python printed "Exception ignored" and went on: `bigseg watch` went
    on watching after its Ctrl-C (CI: a test waited 30 s for it to end)."""
    from bigseg.runtime._signals import stops_not_lost, terminate_as_exit

    hook = sys.unraisablehook
    went_on = False
    import time

    t0 = time.monotonic()
    with pytest.raises(stop) as caught:
        with terminate_as_exit(), stops_not_lost():
            _StoppedWhileFinalized(signum)  # dropped at once
            went_on = _waits()
    assert not went_on and time.monotonic() - t0 < 3  # at once, not at the sleep's end
    assert stop is KeyboardInterrupt or caught.value.code == 143
    assert sys.unraisablehook is hook and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_the_cli_and_a_watch_keep_a_stop_raised_in_a_finalizer(ctrl_c_raises, tmp_path, monkeypatch, capsys):
    from bigseg import Pipeline
    from bigseg.cli import main

    def wait_after_a_finalizer(self, *args):  # noqa: ANN001
        _StoppedWhileFinalized(signal.SIGINT)
        return {"went on": {"state": "done"}} if _waits() else {}

    monkeypatch.setattr(Pipeline, "_watch", wait_after_a_finalizer)
    assert main(["watch", str(tmp_path), "--out", str(tmp_path / "out"), "--model", "threshold"]) == 130
    assert "interrupted" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt):  # the Python API's watch too (a beamline script's Ctrl-C)
        Pipeline(predict={"model": "threshold"}).watch(tmp_path, tmp_path / "out")


class _RaisesWhileFinalized:
    def __init__(self, exc: BaseException):
        self.exc = exc

    def __del__(self):
        raise self.exc


def test_other_errors_in_a_finalizer_still_reach_the_hook_before(monkeypatch):
    from bigseg.runtime._signals import stops_not_lost

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: seen.append(info.exc_value))
    with stops_not_lost():
        _RaisesWhileFinalized(ValueError("not a stop"))
    assert [type(e) for e in seen] == [ValueError]


def test_an_exit_in_a_finalizer_keeps_its_code_and_leaves_sigterm_as_it_was():
    from bigseg.runtime._signals import stops_not_lost

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are set in the main thread only")
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with pytest.raises(SystemExit) as caught:
            with stops_not_lost():
                _RaisesWhileFinalized(SystemExit(7))
                _waits()
        assert caught.value.code == 7
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the redelivery's handler is gone
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_stop_is_not_delivered_after_the_block_ended(ctrl_c_raises):
    """The block ended before the stop's redelivery (50 ms later): nothing arrives after it."""
    import time

    from bigseg.runtime._signals import stops_not_lost

    with stops_not_lost():
        _RaisesWhileFinalized(KeyboardInterrupt())
    try:
        time.sleep(0.3)
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C raised in a finalizer was delivered after the block had ended")


def test_outside_the_main_thread_nothing_changes():
    from bigseg.runtime._signals import stops_not_lost

    hook, seen = sys.unraisablehook, []

    def run():
        with stops_not_lost():
            seen.append(sys.unraisablehook)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen == [hook]


_SLOW_IMPORT = """
import os, signal, sys, threading, time
sys.path.insert(0, sys.argv[1])
import bigseg.cli.cmd_info as cmd_info
from bigseg.cli import main

def command(args):  # a command that imports a slow module (as torch's 5 s) when the stop comes
    threading.Timer(0.3, os.kill, (os.getpid(), getattr(signal, sys.argv[2]))).start()
    import slowmodule  # noqa: F401 (its body: a 1.5 s sleep, then `done = True`)
    time.sleep(30)  # the stop, once the import is done, ends the command here

cmd_info.run = command  # (taken by the parser main builds)
try:
    code = main(["info", sys.argv[1]])
except SystemExit as exc:
    code = exc.code
mod = sys.modules.get("slowmodule")
print(code, mod is not None and getattr(mod, "done", False))
"""


@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stop_during_an_import_is_raised_once_the_import_is_done(tmp_path, signame, code):
    """SIGTERM or Ctrl-C that came while torch was imported (5 s of C++ initialisation) raised
    inside it: torch's C++ turned the error into an uncaught exception and the process aborted
    (SIGABRT, -6: nothing cleaned up, no last line). The stop now ends the command when the
    import is done."""
    (tmp_path / "slowmodule.py").write_text("import time\ntime.sleep(1.5)\ndone = True\n")
    proc = subprocess.run([sys.executable, "-c", _SLOW_IMPORT, str(tmp_path), signame], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore",
                                                      "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.split() == [str(code), "True"], proc.stdout + proc.stderr[-2000:]


def test_a_ctrl_c_in_code_exec_made_ends_python_m_bigseg_with_130(tmp_path):
    """A Ctrl-C whose KeyboardInterrupt rose in code run by exec() of a string (a dataclass being
    made while a command imports a module) set CPython's "unhandled KeyboardInterrupt" mark:
    ``python -m bigseg`` said "interrupted" and then killed itself by SIGINT (-2), not 130."""
    (tmp_path / "stopped_in_exec.py").write_text(
        "import sys\n"
        "import bigseg.cli.cmd_info as info\n"
        "info.run = lambda args: exec('raise KeyboardInterrupt')\n"
        "from bigseg.cli import main\n"
        "sys.exit(main(['info', 'nothing']))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    done = subprocess.run([sys.executable, "-m", "stopped_in_exec"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.stderr.strip().splitlines()[-1] == "bigseg info: interrupted"
    assert done.returncode == 130


def test_a_sigterm_while_torch_imports_is_said_without_importing_torch_again(tmp_path):
    """`bigseg train` stopped by SIGTERM while torch was being imported: saying what was kept
    imported bigseg.train (torch) again, and a half-made torch crashed Python (SIGSEGV, a core,
    no "terminated" line). The stop is injected where torch's import starts."""
    (tmp_path / "stopped_in_torch_import.py").write_text(
        "import sys\n"
        "class Stopped:  # terminate_as_exit's SystemExit, raised as torch imports\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise SystemExit(143)\n"
        "from bigseg.cli import main\n"
        "sys.meta_path.insert(0, Stopped())\n"
        "sys.exit(main(['train', '--synthetic', '-o', 't.pt', '--checkpoint-dir', 'ck']))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    done = subprocess.run([sys.executable, "-m", "stopped_in_torch_import"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("bigseg train: terminated (SIGTERM); no epoch had finished")
    from bigseg.cli.cmd_train import STATE_FILE
    from bigseg.train._resume import STATE_FILE as written

    assert STATE_FILE == written


_JOB = """
import os, signal, sys, threading, time
import bigseg.cli.cmd_info as cmd_info
from bigseg.cli import main

def command(args):  # no import of its own when the stop comes
    threading.Timer(0.3, os.kill, (os.getpid(), getattr(signal, os.environ["STOP"]))).start()
    time.sleep(30)

cmd_info.run = command
try:
    code = main(["info", os.environ["WHERE"]])
except SystemExit as exc:
    code = exc.code
print(code)
"""


@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_command_run_by_an_import_is_stopped(tmp_path, signame, code):
    """A command run from a module's import (``python -c "import job"``) runs in an import
    throughout: the stop was sent again every 50 ms for ever (nothing but SIGKILL ended it).
    Only the imports the command itself runs are waited for."""
    (tmp_path / "job.py").write_text(_JOB)
    proc = subprocess.run([sys.executable, "-c", "import job"], capture_output=True, text=True, timeout=25,
                          cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore", "STOP": signame,
                                             "WHERE": str(tmp_path),
                                             "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])})
    assert proc.stdout.split() == [str(code)], proc.stdout + proc.stderr[-2000:]
