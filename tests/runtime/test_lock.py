"""One writer per output: a second process writing the same output (a resubmitted job, a watch
and a hand-started run) is refused before any work, with who holds it; a killed holder leaves
nothing locked; one process may hold an output again (a command, then its write)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from bigseg import Pipeline
from bigseg.errors import OutputInUseError
from bigseg.io import open_volume, save_volume
from bigseg.runtime._lock import held, lock_path


class Holder:
    """Another process holding ``target`` (as :func:`held` does) until it is stopped."""

    def __init__(self, target, inside=False):
        code = textwrap.dedent(f"""
            import sys
            from bigseg.runtime._lock import held
            with held({str(target)!r}, argument="x", inside={inside!r}):
                print("holding", flush=True)
                sys.stdin.read()
        """)
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout.readline().strip() == "holding"

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)


def test_a_second_process_is_refused_naming_the_holder_and_a_killed_holder_frees_it(tmp_path):
    target = tmp_path / "seg.ome.zarr"
    other = Holder(target)
    try:
        with pytest.raises(OutputInUseError, match=r"`out`.*seg\.ome\.zarr.*process %d" % other.proc.pid):
            with held(target, argument="out"):
                pass
    finally:
        other.kill()  # a killed process holds nothing
    with held(target, argument="out") as path:
        assert path == lock_path(target).resolve()
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with held(target, argument="out"):  # the same process again
            pass
        assert path.exists()
    assert not path.exists()  # removed on release


def test_save_volume_into_an_output_being_written_is_refused_and_leaves_it_alone(tmp_path):
    dest = tmp_path / "v.ome.zarr"
    save_volume(np.zeros((4, 5, 6), np.float32), dest, progress=False)
    other = Holder(dest)
    try:
        # a save starts anew: it does not "resume what it finished" (the refusal said so of every output)
        with pytest.raises(OutputInUseError, match=r"`path`.*and run again\.$"):
            save_volume(np.ones((4, 5, 6), np.float32), dest, overwrite=True, progress=False)
    finally:
        other.kill()
    assert float(open_volume(dest).max()) == 0.0
    assert not list(tmp_path.glob(".v.ome.zarr.partial-*"))
    save_volume(np.ones((4, 5, 6), np.float32), dest, overwrite=True, progress=False)
    assert float(open_volume(dest).min()) == 1.0


def test_a_run_or_watch_into_a_folder_in_use_is_refused_before_any_work(tmp_path):
    out = tmp_path / "run"
    other = Holder(out, inside=True)
    try:
        with pytest.raises(OutputInUseError, match="`dest`.*run again: the run resumes what it finished"):
            Pipeline().run(np.zeros((8, 8, 8), np.float32), out)
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        with pytest.raises(OutputInUseError, match="`out`"):
            Pipeline().watch(inbox, out, once=True)
    finally:
        other.kill()
    assert sorted(p.name for p in out.iterdir()) == [".bigseg.lock"]  # nothing was started


def test_cli_segment_into_labels_being_written_says_so(tmp_path, capsys):
    from bigseg.cli import main

    src = tmp_path / "s.ome.zarr"
    save_volume(np.random.default_rng(0).random((8, 9, 10), dtype=np.float32), src, progress=False)
    other = Holder(src / "labels" / "segmentation")
    try:
        assert main(["segment", str(src), "--method", "threshold", "--no-progress"]) == 2
    finally:
        other.kill()
    err = capsys.readouterr().err
    assert "`--name`" in err and f"process {other.proc.pid}" in err
    assert not (src / "labels" / "segmentation").exists()
    assert main(["segment", str(src), "--method", "threshold", "--no-progress"]) == 0


def test_info_says_whether_a_run_is_running_was_killed_stopped_or_done(tmp_path, capsys, monkeypatch):
    from bigseg import measure
    from bigseg.cli import main
    from bigseg.pipeline import run_state

    img = np.random.default_rng(1).random((12, 14, 16), dtype=np.float32)
    out = tmp_path / "run"
    pipe = Pipeline(chunks=8, predict={"model": "threshold"}, measure={"particles": False})

    def broken(*a, **k):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:  # a run that stops with an error after the segmentation
        m.setattr(measure, "summary", broken)
        with pytest.raises(RuntimeError, match="disk full"):
            pipe.run(img, out)
    assert run_state(out) == {"state": "incomplete", "stages": ["ingest", "segment"]}
    assert main(["info", str(out)]) == 0
    assert "stopped after ingest, segment; run it again to resume" in capsys.readouterr().out
    other = Holder(out, inside=True)
    try:
        state = run_state(out)
        assert state["state"] == "running" and state["holder"]["pid"] == other.proc.pid
        assert main(["info", str(out)]) == 0
        assert f"running     process {other.proc.pid}" in capsys.readouterr().out
    finally:
        other.kill()
    assert run_state(out)["state"] == "interrupted"  # killed: its lock file is left
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"]["state"] == "interrupted"
    pipe.run(img, out)
    assert run_state(out) == {"state": "done", "stages": ["ingest", "segment"]}
    assert main(["info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "state" not in printed.split("\n")[1] and "fraction" in printed


def test_a_file_system_without_flock_writes_unlocked_with_a_warning(tmp_path, monkeypatch):
    import errno
    import types

    from bigseg.runtime import _lock

    def refuse(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")  # Lustre mounted without -o flock

    monkeypatch.setattr(_lock, "fcntl", types.SimpleNamespace(flock=refuse, LOCK_EX=2, LOCK_NB=4))
    dest = tmp_path / "a.ome.zarr"
    with pytest.warns(UserWarning, match="does not support flock") as seen:
        save_volume(np.ones((4, 5, 6), np.float32), dest)
    assert len(seen) == 1 and np.array_equal(open_volume(dest).values, np.ones((4, 5, 6), np.float32))
    assert not lock_path(dest).exists()  # no lock file left behind
    assert _lock.holder(dest) is None
    lock_path(dest).touch()  # even beside a lock file another writer left
    assert _lock.holder(dest) is None


@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES])
def test_an_output_where_this_process_may_not_write_is_refused_by_name(tmp_path, monkeypatch, capsys, err):
    """A read-only mount (a beamline's raw-data store) or a folder without write permission: the
    labels that segment writes into the image cannot go there; said before any work, with --out
    as the way out (root ignores permissions here, so the refusal of the OS is simulated)."""
    import numpy as np

    import bigseg
    from bigseg.cli import main
    from bigseg.errors import OutputNotWritableError
    from bigseg.runtime import _lock

    img = bigseg.save_volume(np.random.default_rng(0).random((8, 10, 12), dtype=np.float32),
                             tmp_path / "raw.ome.zarr", progress=False)

    def refuse(path, *a, **k):
        raise OSError(err, os.strerror(err), str(path))

    monkeypatch.setattr(_lock, "_acquire", refuse)
    with pytest.raises(OutputNotWritableError, match=r"`dest` somewhere this process may write"):
        with _lock.held(tmp_path / "x.ome.zarr", argument="dest"):
            pass
    assert main(["segment", img, "--method", "threshold"]) == 2
    said = capsys.readouterr().err
    assert "`--name` somewhere this process may write" in said and "--out OUT.ome.zarr" in said
    assert not (tmp_path / "raw.ome.zarr" / "labels").exists() or not any((tmp_path / "raw.ome.zarr" / "labels").iterdir())


def test_an_output_under_a_file_is_refused_by_name(tmp_path, capsys):
    """A file where a folder must go (a typo, a name taken): said for every kind of output, was a
    FileExistsError / NotADirectoryError traceback."""
    import numpy as np

    import bigseg
    from bigseg.cli import main

    img = bigseg.save_volume(np.random.default_rng(0).random((8, 10, 12), dtype=np.float32),
                             tmp_path / "s.ome.zarr", progress=False)
    np.save(tmp_path / "s.npy", np.zeros((4, 5, 6), np.float32))
    (tmp_path / "afile").write_text("x")
    under = str(tmp_path / "afile")
    cases = [(["ingest", str(tmp_path / "s.npy"), f"{under}/x.ome.zarr"], "`dest`"),
             (["segment", img, "--method", "threshold", "--out", f"{under}/s.ome.zarr"], "`--out`"),
             (["export", img, f"{under}/e.tif"], "`dest`"),
             (["measure", img, "--csv", f"{under}/m.csv"], "`--csv`"),
             (["run", str(tmp_path / "s.npy"), "--out", f"{under}/run", "--model", "threshold"], "`--out`")]
    for argv, name in cases:
        assert main([*argv, "--no-progress"]) == 2, argv
        err = capsys.readouterr().err
        assert f"Expected {name} in a folder" in err and f"but {under!r} is a file, not a folder" in err, err
    assert (tmp_path / "afile").read_text() == "x"


def test_held_keeps_no_entry_for_a_lock_once_released(tmp_path):
    """A watch or a beamline script runs hundreds of scans in one process, each holding its run
    folder and stores: what the process holds is kept while it holds it, not for ever (three
    entries per scan were left at 0)."""
    from bigseg.runtime import _lock

    before = dict(_lock._HELD)
    for i in range(3):
        with held(tmp_path / f"run{i}", argument="dest", inside=True):
            with held(tmp_path / f"run{i}", argument="dest", inside=True):  # again, from this process
                pass
            assert _lock._HELD[next(p for p in _lock._HELD if p.parent.name == f"run{i}")] == 1
    assert dict(_lock._HELD) == before


def test_another_thread_of_the_process_is_refused_and_the_lock_stays_the_first_ones(tmp_path):
    """A GUI's second worker thread (or a notebook's background thread) writing the run folder a
    first thread writes: refused as another process is. It was let in as "the same process again",
    and the first thread's release removed the lock file and freed the flock while the second
    still wrote (another process was then let in too)."""
    from bigseg.runtime._lock import holder

    target = tmp_path / "run"
    got: list[BaseException] = []

    def second() -> None:
        try:
            with held(target, argument="dest", inside=True):
                pass
        except OutputInUseError as exc:
            got.append(exc)

    with held(target, argument="dest", inside=True) as path:
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=30)
        assert len(got) == 1 and "another thread of this process" in str(got[0])
        assert path.exists() and holder(target, inside=True)["pid"] == os.getpid()
        with held(target, argument="dest", inside=True):  # this thread again
            pass
    assert not path.exists() and holder(target, inside=True) is None
    with held(target, argument="dest", inside=True):  # and once released, any thread
        pass


def test_a_thread_refused_while_another_waits_on_another_processs_lock_names_that_process(tmp_path, monkeypatch):
    """Another process writes the run; a first thread of this one asks for it (and waits its ~0.2 s
    for the lock); a second thread asking meanwhile was told that "another thread of this process"
    was writing it: the process that is named now."""
    import fcntl
    import json

    from bigseg.runtime import _lock

    target = tmp_path / "run"
    target.mkdir()
    path = _lock.lock_path(target, inside=True)
    path.write_text(json.dumps({"pid": 4242424, "host": "node-7", "since": "2026-12-07 08:00:00",
                                "command": "bigseg run scan.zarr"}))
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "the other process" (an open file of its own)
    waiting, asked = threading.Event(), threading.Event()
    real = _lock._acquire

    def slow(p, tries=10):
        waiting.set()
        asked.wait(timeout=30)
        return real(p, tries)

    monkeypatch.setattr(_lock, "_acquire", slow)
    got: dict[str, BaseException] = {}

    def ask(name: str) -> None:
        try:
            with held(target, argument="dest", inside=True):
                pass
        except OutputInUseError as exc:
            got[name] = exc

    first = threading.Thread(target=ask, args=("first",))
    try:
        first.start()
        assert waiting.wait(timeout=30)
        ask("second")
        asked.set()
        first.join(timeout=30)
    finally:
        asked.set()
        os.close(fd)
    for name in ("first", "second"):
        assert "process 4242424 on node-7" in str(got[name]) and "this process" not in str(got[name]), name


def test_an_output_name_without_room_for_its_hidden_names_is_refused_before_any_work(tmp_path):
    """A name of 230-255 bytes is the file system's to allow, but the hidden names written beside
    it (``.NAME.partial-r…``, ``.NAME.PID-HEX.partial.zarr``, ``.NAME.lock``) passed the limit: the
    write ended in "File name too long" naming one of them. Refused by name now, before any work;
    the longest name allowed is written whole."""
    from bigseg.errors import OutputNotWritableError
    from bigseg.runtime._lock import HIDDEN_NAME_EXTRA

    most = os.pathconf(tmp_path, "PC_NAME_MAX")
    room = most - max(HIDDEN_NAME_EXTRA[0] + len(".zarr"), HIDDEN_NAME_EXTRA[1])
    assert room == 224 or most != 255
    vol = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    long = tmp_path / ("a" * (room + 1 - len(".ome.zarr")) + ".ome.zarr")
    with pytest.raises(OutputNotWritableError, match=rf"`path` with a name of at most {room} bytes .*{room + 1} bytes"):
        save_volume(vol, long)
    assert os.listdir(tmp_path) == []  # nothing begun
    fits = tmp_path / ("b" * (room - len(".ome.zarr")) + ".ome.zarr")
    save_volume(vol, fits, resume_key="k")  # its resumable hidden folder, lock and partial names all fit
    np.testing.assert_array_equal(open_volume(fits).values, vol)
    assert os.listdir(tmp_path) == [fits.name]


def test_hidden_name_extra_is_what_the_longest_hidden_names_add(tmp_path, monkeypatch):
    """HIDDEN_NAME_EXTRA holds the bytes the hidden names beside an output add to its name: a
    file's partial write (a 7-digit PID), a time window's keyed scratch (``segment --temporal``)
    and, shorter, a resumable store's partial folder and the lock; a smaller number let a name
    through that one of them then pushed past the file system's limit."""
    from bigseg.infer._scratch import keyed_scratch
    from bigseg.io._omezarr import _partial_path, _resumable_path
    from bigseg.runtime import _files
    from bigseg.runtime._lock import HIDDEN_NAME_EXTRA

    name = "scan.ome.zarr"
    monkeypatch.setattr(_files.os, "getpid", lambda: 9_999_999)  # the longest PID Linux gives (pid_max 2**22)
    with _files.replacing(tmp_path / name) as tmp:
        tmp.mkdir()
        partial = tmp.name
    assert len(partial) - len(name) == HIDDEN_NAME_EXTRA[0] + len(".zarr")
    temporal = keyed_scratch(tmp_path, f"temporal.{name}", "any key").name
    assert len(temporal) - len(name) == HIDDEN_NAME_EXTRA[1]
    for shorter in (_partial_path(tmp_path / name).name, _resumable_path(tmp_path / name, "k").name,
                    lock_path(tmp_path / name).name):
        assert len(shorter) - len(name) <= max(HIDDEN_NAME_EXTRA[0] + len(".zarr"), HIDDEN_NAME_EXTRA[1])


@pytest.mark.parametrize("where", ["acquire", "guard"])
def test_a_stop_landing_while_the_lock_is_taken_leaves_it_released(tmp_path, monkeypatch, where):
    """A Ctrl-C landing between taking the lock and noting it (API use in a notebook) left the
    lock's descriptor open and locked, or the output counted as held by this thread for ever: the
    next run of that output in the process was refused, or let in without a lock. The stop is
    now held until both are done, raised after, and the lock released."""
    import signal

    from bigseg.runtime import _lock

    if where == "acquire":
        real = _lock._acquire

        def acquire_then_stopped(path, *a, **k):
            fd = real(path, *a, **k)
            os.kill(os.getpid(), signal.SIGINT)
            return fd

        monkeypatch.setattr(_lock, "_acquire", acquire_then_stopped)
    else:
        class Guard:  # the stop lands as the thread's count is raised
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                os.kill(os.getpid(), signal.SIGINT)

        monkeypatch.setattr(_lock, "_GUARD", Guard())
    target = tmp_path / "out"
    before = dict(_lock._HELD)
    fd_dir = next((d for d in ("/proc/self/fd", "/dev/fd") if os.path.isdir(d)), None)  # (macOS: no /proc)
    fds = len(os.listdir(fd_dir)) if fd_dir else None
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's (a test may have imported
    try:  # dask_jobqueue, whose import sets sys.exit)
        with pytest.raises(KeyboardInterrupt):
            with held(target, argument="dest", inside=True):
                pytest.fail("the block ran: the stop was not raised before it")
    finally:
        signal.signal(signal.SIGINT, handler)
    monkeypatch.undo()
    assert dict(_lock._HELD) == before and _lock.holder(target, inside=True) is None
    assert fd_dir is None or len(os.listdir(fd_dir)) == fds
    with held(target, argument="dest", inside=True):  # taken again, locked
        assert _lock.holder(target, inside=True) is not None
