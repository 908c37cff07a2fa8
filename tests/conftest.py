from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    """Figures a test draws without a path stay open in pyplot: closed after each test (20 open
    in one worker process turn matplotlib's "more than 20 figures" warning into an error)."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture(autouse=True)
def _ctrl_c_as_it_was():
    """A test that leaves SIGINT's handler changed (``pytest.importorskip("dask_jobqueue")``: its
    import sets ``sys.exit``) would change what a stop does in every later test: put back."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    yield
    if signal.getsignal(signal.SIGINT) is not before:
        signal.signal(signal.SIGINT, before)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def odd_volume(rng):
    """A 37 x 53 x 71 uint16 volume with structure (so that chunk mix-ups show)."""
    z, y, x = np.mgrid[0:37, 0:53, 0:71]
    vol = (z * 1000 + y * 10 + x).astype(np.uint16) ^ rng.integers(0, 7, (37, 53, 71), dtype=np.uint16)
    return vol


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch CPU thread (small nets are faster so; restored after)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def bigseg_cli(capsys):
    """``bigseg ARGS`` in this process: a CompletedProcess with its exit status, stdout and stderr.

    The same ``main`` the entry point calls (tests that need the installed script, a pipe or a
    signal start a process themselves; each process costs ~2 s of imports)."""
    import subprocess

    from bigseg.cli import main

    def run(*args, check=True):
        argv = [str(a) for a in args]
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, a bad option
            code = exc.code if isinstance(exc.code, int) else 2
        out, err = capsys.readouterr()
        done = subprocess.CompletedProcess(["bigseg", *argv], code, out, err)
        if check and code:
            raise AssertionError(f"bigseg {' '.join(argv)} failed ({code}):\n{out}\n{err}")
        return done

    return run


def pytest_collection_modifyitems(config, items):
    """The tests marked ``slow`` first: spread over the workers at the start (pytest-xdist), they
    do not leave one worker running the last long test alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order kept within


@pytest.fixture
def interruptible_bigseg():
    """argv that starts ``bigseg`` in a new process that Ctrl-C (SIGINT) interrupts even when
    this test run ignores SIGINT (started in the background by a shell: children inherit the
    ignore, and Python then installs no KeyboardInterrupt handler)."""
    import sys

    return [sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                                  "from bigseg.cli import main; raise SystemExit(main())"]
