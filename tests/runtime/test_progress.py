"""bigseg.runtime.compute on a distributed cluster that loses its workers or its scheduler."""

from __future__ import annotations

import os
import signal
import threading
import time

import dask
import pytest

from bigseg.errors import ClusterError
from bigseg.runtime import _progress
from bigseg.runtime._progress import compute

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore")]
distributed = pytest.importorskip("distributed")


def test_a_worker_dying_mid_task_is_one_clear_error():
    """Was: distributed's KilledWorker and its traceback, nothing on what to do."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc):
        die = dask.delayed(lambda: os.kill(os.getpid(), signal.SIGKILL), pure=False)()
        with pytest.raises(ClusterError, match=r"^writing x: a worker process died running task 'lambda-.*out of "
                                               r"memory.*SLURM job out of time.*run again take up") as info:
            compute(die, desc="writing x", progress=False)
    assert isinstance(info.value.__cause__, distributed.scheduler.KilledWorker)


def test_a_lost_scheduler_is_one_clear_error_at_once():
    """Was: FutureCancelledError ("scheduler-connection-lost"), raised only after the clean-up had
    waited 30 s for the client to reconnect. The connection is cut from the client's side here
    (the scheduler lives on: the cluster closes fast)."""
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        cut = threading.Timer(1.0, lambda: client.loop.add_callback(client.scheduler_comm.comm.abort))
        cut.start()
        start = time.monotonic()
        try:
            with pytest.raises(ClusterError, match=r"^sleeping: lost the connection to the Dask scheduler at .*Start "
                                                   r"it again") as info:
                compute(dask.delayed(time.sleep, pure=False)(4), desc="sleeping", progress=False)
        finally:
            cut.join()
        assert time.monotonic() - start < 15  # not after the client's 30 s of trying to reconnect (loose: a busy CI)
    assert isinstance(info.value.__cause__, distributed.client.FutureCancelledError)


def test_a_compute_waiting_without_workers_says_so(monkeypatch, capsys):
    """Was: a bar standing still for ever (every worker gone, or SLURM jobs still queued)."""
    monkeypatch.setattr(_progress, "NO_WORKERS_NOTICE_S", 0.5)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as lc, \
            distributed.Client(lc):
        grow = threading.Timer(3.5, lambda: lc.scale(1))
        grow.start()
        try:
            assert compute(dask.delayed(sum)([1, 2]), desc="adding", progress=False) == (3,)
        finally:
            grow.join()
    err = capsys.readouterr().err
    assert "has had no worker for" in err and "adding waits until workers join" in err and "squeue" in err


def test_bars_into_a_log_file_are_lines_at_most_each_interval_and_the_last_kept():
    """Was: a redraw each 0.5 s (distributed's: 0.1 s), carriage returns a log file keeps as one
    line growing for the whole run."""
    import io

    out = io.StringIO()
    lines = _progress._Lines(out, every=3600)
    for text in ("\r 0%|", "\r 10%|#", "\r 50%|#####", "\r100%|##########"):
        lines.write(text)
    lines.write("")  # an empty redraw (tqdm makes some) ends nothing
    assert out.getvalue() == "0%|\n"  # the first at once, the rest within the interval held back
    lines.write("\n")  # the bar closed: its last state kept
    lines.write("\x1b[2K\r")
    assert out.getvalue() == "0%|\n100%|##########\n"
    lines.write("\r7")
    lines.write("\x1b[2K\r")  # distributed's bar ends with an erase code
    assert out.getvalue().endswith("100%|##########\n7\n")
    fast = _progress._Lines(out := io.StringIO(), every=0)
    for text in ("\r1", "\r2"):
        fast.write(text)
    assert out.getvalue() == "1\n2\n"


@pytest.mark.parametrize("where", ["threads", "distributed"])
def test_a_compute_into_a_log_file_writes_lines(where, capsys):
    import dask.array as da

    x = da.ones((40, 40), chunks=10)
    if where == "threads":
        assert compute(x.sum(), desc="summing")[0] == 1600
    else:
        with distributed.Client(processes=False, n_workers=1, dashboard_address=None):
            assert compute(x.sum(), desc="summing")[0] == 1600
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "\x1b" not in captured.err and captured.out == ""
    assert "100%" in captured.err.splitlines()[-1]  # the end kept: it finished, and in how long


def test_bars_name_the_output_not_its_hidden_partial_write(tmp_path, capsys):
    """Was: `writing .s.ome.zarr.partial-1a2b3c4d` while `bigseg synth s.ome.zarr` wrote."""
    import numpy as np

    from bigseg.io import export, open_volume, save_volume
    from bigseg.io._omezarr import writing

    with writing(tmp_path / "s.ome.zarr") as tmp:
        save_volume(np.zeros((4, 6, 8), np.float32), tmp)
    export(open_volume(tmp_path / "s.ome.zarr"), tmp_path / "s.tif")
    err = capsys.readouterr().err
    assert "writing s.ome.zarr: 100%" in err and "partial" not in err and "writing s.tif: 100%" in err


def test_closing_a_client_whose_scheduler_died_logs_no_traceback(tmp_path, caplog):
    """Was: distributed logged its cancelled reconnect as an ERROR with two tracebacks, above
    bigseg's one line saying the scheduler was lost."""
    import json
    import logging
    import subprocess
    import sys

    import bigseg

    file = tmp_path / "scheduler.json"
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--scheduler-file", str(file),
                              "--port", "0", "--dashboard-address", ":0"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if file.exists() and file.read_text().strip():
                break
            time.sleep(0.1)
        client = bigseg.connect(json.loads(file.read_text())["address"], quiet=True)
        sched.kill()
        sched.wait()
        for _ in range(100):  # the client notices and starts to reconnect
            if client.status != "running":
                break
            time.sleep(0.1)
        assert client.status != "running"
        before = logging.getLogger("distributed.client").level
        with caplog.at_level(logging.ERROR, logger="distributed.client"):
            inside = logging.getLogger("distributed.client").level
            client.close()
            assert logging.getLogger("distributed.client").level == inside  # put back
        assert not [r for r in caplog.records if r.name == "distributed.client" and r.levelno >= logging.ERROR]
        assert logging.getLogger("distributed.client").level == before
    finally:
        sched.kill()


def _block_total(block):
    return float(block.sum())


def test_per_block_results_reach_the_client_from_their_workers_not_through_one():
    """Was: the blocks' results (e.g. particle tables, ~0.3 GB at a million particles) all brought
    to one worker by their list's task, then sent on to the client; now each block's key is
    gathered from where it was made, and the list's task never runs."""
    import dask.array as da
    import numpy as np

    from bigseg.ops._blocks import per_block

    x = np.arange(6 * 10 * 7, dtype=np.float64).reshape(6, 10, 7)
    a = da.from_array(x, chunks=(4, 3, 7))
    blocks = per_block(_block_total, a)
    other = per_block(_block_total, a + 1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc, \
            distributed.Client(lc) as client, distributed.get_task_stream(client) as ts:
        got, total, got_other = compute(blocks, a.sum(), other, desc="summing", progress=False)
    ran = {t["key"] for t in ts.data}
    want = [float(b.sum()) for b in a.to_delayed().ravel().tolist() for b in [b.compute(scheduler="sync")]]
    assert got == want and len(got) == 2 * 4 and total == x.sum()
    assert got_other == [w + b.size for w, b in zip(want, (a.blocks[i] for i in np.ndindex(*a.numblocks)))]
    assert blocks.key not in ran and other.key not in ran and set(blocks.blocks) <= ran
    # on the local scheduler the same object is still one delayed list
    assert dask.compute(blocks, scheduler="sync")[0] == want




def _same(got: tuple, want: tuple) -> None:
    import numpy as np

    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert type(g) is type(w) and np.array_equal(np.asarray(g, dtype=object), np.asarray(w, dtype=object))


def test_results_come_in_the_order_asked_for_whatever_their_kinds():
    """Was: dask 2026.8's compute(d1, a, d2) of delayed objects and an array returns d1's, d2's
    then a's results (it groups the collections by kind), so a caller unpacking them got the
    wrong values."""
    import dask.array as da
    import numpy as np
    import xarray as xr

    from bigseg.ops._blocks import per_block

    a = da.from_array(np.arange(24.0).reshape(2, 3, 4), chunks=(1, 2, 4))
    objs = (dask.delayed(str)("first"), a.sum(), [dask.delayed(len)("abc"), a.max()], per_block(_block_total, a),
            xr.DataArray(a, dims=("z", "y", "x")).mean(), dask.delayed(str)("last"), "not dask", a[0, 0])
    want = tuple(dask.compute(o, scheduler="sync")[0] for o in objs)  # one at a time: nothing to reorder
    assert want[:3] == ("first", 276.0, [3, 23.0]) and want[3] == [28.0, 38.0, 124.0, 86.0]
    _same(compute(*objs, progress=False), want)
    _same(compute(*objs, progress=False, scheduler="sync"), want)
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as lc, distributed.Client(lc):
        _same(compute(*objs, progress=False), want)


_TRIES: dict = {}


def _fails_once(block):
    key = float(block.flat[0])
    _TRIES[key] = _TRIES.get(key, 0) + 1
    if _TRIES[key] == 1:
        raise OSError(f"transient failure of the block at {key}")
    return float(block.sum())


def test_per_block_results_on_a_client_keep_the_computes_keywords():
    """Was: the blocks of a per_block result, gathered by their keys, were submitted without
    ``compute``'s keywords: ``retries=1`` retried the other collections' tasks, and a block that
    failed once failed the whole compute."""
    import dask.array as da
    import numpy as np

    from bigseg.ops._blocks import per_block

    a = da.from_array(np.arange(24.0).reshape(2, 3, 4), chunks=(1, 3, 4))
    _TRIES.clear()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as lc, \
            distributed.Client(lc):
        got, total = compute(per_block(_fails_once, a), a.sum(), retries=1, progress=False)
    assert got == [66.0, 210.0] and total == 276.0 and sorted(_TRIES.values()) == [2, 2]


def test_a_compute_in_another_thread_keeps_to_its_own_bar(monkeypatch):
    """Two computes at once in threads of one process (a GUI measuring one scan while it segments
    another), each with a bar: each bar counts its own tasks. The bars were registered in dask's
    process-wide Callback.active, which the compute that started first took whole: the other
    thread's bar showed that compute's tasks, and its own went on no bar."""
    import tqdm.dask

    counted: dict[str, list[int]] = {}

    start_state, posttask = tqdm.dask.TqdmCallback._start_state, tqdm.dask.TqdmCallback._posttask

    def recording_start(self, dsk, state):
        counted[self.tqdm_class.keywords["desc"]] = [0]
        start_state(self, dsk, state)

    def recording_post(self, *args, **kwargs):
        counted[self.tqdm_class.keywords["desc"]][0] += 1
        posttask(self, *args, **kwargs)

    # the class's methods, not a subclass in its place (tqdm 4.66's own super(TqdmCallback, self) then recursed)
    monkeypatch.setattr(tqdm.dask.TqdmCallback, "_start_state", recording_start)
    monkeypatch.setattr(tqdm.dask.TqdmCallback, "_posttask", recording_post)
    b_ready, a_running, b_done = threading.Event(), threading.Event(), threading.Event()
    real = dask.compute

    def interleaved(*args, **kwargs):  # A's bar set up, then B's, then A's compute starts, then B's
        if threading.current_thread().name == "A":
            b_ready.wait(10)
        else:
            b_ready.set()
            a_running.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(dask, "compute", interleaved)

    def waits(x):
        a_running.set()
        b_done.wait(10)
        return x

    a = dask.delayed(sum)([dask.delayed(waits)(1), *(dask.delayed(int)(i) for i in range(4))])
    thread = threading.Thread(target=compute, args=(a,), kwargs={"desc": "A"}, name="A")
    thread.start()
    try:
        assert compute(dask.delayed(int)(2), desc="B") == (2,)
    finally:
        b_done.set()
        thread.join(10)
    assert counted == {"A": [6], "B": [1]}


def test_objects_that_are_not_dask_come_back_as_dask_compute_gives_them():
    assert compute("not dask", 3, progress=False) == dask.compute("not dask", 3) == ("not dask", 3)


def test_progress_is_a_flag_not_any_truthy_value(capsys):
    """``progress="no"`` drew bars (any truthy value was on): refused by name, as every flag."""
    from bigseg.errors import InputError

    with pytest.raises(InputError, match="`progress`.*'no'"):
        compute(dask.delayed(len)("ab"), progress="no")
    with pytest.raises(InputError, match="`progress`.*'no'"):
        with _progress.bars("no"):
            pass
    assert capsys.readouterr().err == ""


def test_a_single_group_s_compute_draws_its_own_bar_several_share_one():
    """in_groups: one group (a series of a few scans) is computed with its own bar, its tasks
    counted; several draw one bar over all their items and their computes none."""
    from bigseg.runtime._progress import in_groups

    assert list(in_groups([[0, 1, 2]], "scans", True)) == [([0, 1, 2], True)]
    assert list(in_groups([[0, 1, 2]], "scans", False)) == [([0, 1, 2], False)]
    assert list(in_groups([], "scans", True)) == []
    assert list(in_groups([[0, 1], [2]], "scans", False)) == [([0, 1], False), ([2], False)]


def test_progress_bars_off_for_a_whole_script_or_a_block(tmp_path, capsys):
    """One switch for every bar (a notebook, a script logging elsewhere): there was none public,
    and the training's epoch bars and an export's bar ignored the private one."""
    import numpy as np

    import bigseg
    from bigseg.io import export, make_volume

    vol = make_volume(np.zeros((4, 6, 8), np.float32))
    rng = np.random.default_rng(0)
    img = rng.random((2, 32, 32)).astype(np.float32)
    sparse = np.full(img.shape, 255, np.uint8)
    sparse[0, :16] = 0
    sparse[0, 16:] = 2

    def everything(name: str) -> str:
        compute(dask.delayed(len)("ab"), desc="summing")
        export(vol, tmp_path / f"{name}.tif")
        bigseg.train(img, sparse, phases=["pore", "cbd", "active"], arch="lrcsnet",
                     arch_kwargs=dict(kernels=4, growth=1.0), patch=(32, 32), epochs=1, steps_per_epoch=1,
                     batch_size=1, val_fraction=0, seed=0)
        return capsys.readouterr().err

    with bigseg.runtime.progress_bars(False):
        assert everything("a") == ""
    shown = everything("b")  # on again after the block
    assert "summing" in shown and "writing b.tif" in shown and "epoch 1/1" in shown
    bigseg.runtime.progress_bars(False)  # from here on, no block
    try:
        assert everything("c") == ""
        with bigseg.runtime.progress_bars(True):  # a block on within it
            assert "writing d.tif" in everything("d")
        assert everything("e") == ""
    finally:
        bigseg.runtime.progress_bars(True)
    with pytest.raises(bigseg.errors.InputError, match="`on`"):
        bigseg.runtime.progress_bars("no")


def test_one_progress_bars_object_entered_twice_is_off_in_each_block():
    """``quiet = progress_bars(False)`` then ``with quiet:`` twice: the second block drew its bars and
    ended in a RuntimeError (its one token "has already been used once")."""
    from bigseg.runtime import progress_bars
    from bigseg.runtime._progress import showing

    quiet = progress_bars(False)
    try:
        for _ in range(2):
            with quiet:
                assert not showing(True)
                with quiet:  # nested in itself too
                    assert not showing(True)
                assert not showing(True)
            assert showing(True)
    finally:
        progress_bars(True)
    assert showing(True)


def test_progress_bars_off_in_one_notebook_cell_stays_off_in_the_next():
    """ipykernel 7 runs each cell in a context of its own: a context variable set by one cell was
    not seen by the next (nor by another thread), so `progress_bars(False)` held for one cell."""
    import contextvars
    import threading

    from bigseg.runtime import progress_bars
    from bigseg.runtime._progress import bars, showing

    try:
        contextvars.copy_context().run(progress_bars, False)  # "cell 1"
        assert not contextvars.copy_context().run(showing, True)  # "cell 2"
        seen = []
        worker = threading.Thread(target=lambda: seen.append(showing(True)))
        worker.start()
        worker.join(10)
        assert seen == [False]
        with bars(True):  # a function's own block cannot turn them on again
            assert not showing(True)
    finally:
        progress_bars(True)
    assert showing(True)
    with bars(False):  # a run with progress=False: off within, whatever the process says
        assert not showing(True)
    assert showing(True)
