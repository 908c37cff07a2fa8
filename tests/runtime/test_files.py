"""Files written whole or not at all (``runtime._files``), as the run folder's and the
commands' tables and metrics are."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bigseg.runtime._files import replacing, write_text


def test_a_write_that_fails_leaves_the_earlier_file_and_no_partial_one(tmp_path):
    target = tmp_path / "table.csv.gz"
    write_text(tmp_path / "a.json", json.dumps({"n": 1}))
    with pytest.raises(RuntimeError):
        with replacing(tmp_path / "a.json") as tmp:
            tmp.write_text('{"n": 2, "cut sh')  # killed half way
            raise RuntimeError("disk full")
    assert json.loads((tmp_path / "a.json").read_text()) == {"n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    # the suffix is kept: pandas picks gzip from it
    import pandas as pd

    with replacing(target) as tmp:
        assert tmp.name.startswith(".table.csv.gz.") and tmp.suffix == ".gz"
        pd.DataFrame({"a": [1, 2]}).to_csv(tmp, index=False)
    assert target.read_bytes()[:2] == b"\x1f\x8b" and list(pd.read_csv(target).a) == [1, 2]


@pytest.mark.parametrize("folder", [False, True])
def test_an_output_another_program_holds_open_is_said_and_kept(tmp_path, monkeypatch, folder):
    """Windows refuses to replace a file another program has open (particles.csv in Excel):
    the PermissionError of os.replace came out as a traceback at the end of the run; said now by
    name, the earlier output kept and no partial one left. (Windows' refusal is simulated.)"""
    import os

    from bigseg.errors import OutputNotWritableError

    target = tmp_path / "particles.csv"
    (target.mkdir() if folder else write_text(target, "earlier"))
    replace = os.replace

    def in_use(src, dst):
        if os.fspath(dst) == os.fspath(target) or os.fspath(src) == os.fspath(target):
            raise PermissionError(13, "The process cannot access the file because it is being used by another process")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", in_use)
    with pytest.raises(OutputNotWritableError, match="particles.csv.*another program may have it open"):
        with replacing(target) as tmp:
            (tmp.mkdir() if folder else tmp.write_text("new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["particles.csv"]
    assert folder or target.read_text() == "earlier"


def test_the_pipeline_leaves_no_metrics_cut_short(tmp_path, monkeypatch):
    # metrics.nc was written in place: a run killed while writing it left a file that
    # `bigseg report` and `info` could not read (and `info` counted the run's outputs as there)
    from bigseg import synth
    from bigseg.pipeline import Pipeline, run_state

    image = synth.xct(synth.electrode((10, 20, 24), seed=2), seed=2).compute()
    opts = {"predict": {"model": "threshold"}, "measure": {"particles": False, "connectivity": None}}
    real = xr.Dataset.to_netcdf

    def cut_short(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)
        with open(path, "r+b") as fh:
            fh.truncate(100)
        raise OSError("no space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", cut_short)
    with pytest.raises(OSError, match="no space"):
        Pipeline(**opts).run(image, tmp_path / "run", progress=False)
    left = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert "metrics.nc" not in left and not [n for n in left if "partial" in n], left
    assert run_state(tmp_path / "run")["state"] == "incomplete"
    monkeypatch.undo()
    Pipeline(**opts).run(image, tmp_path / "run", progress=False)
    np.testing.assert_allclose(float(xr.open_dataset(tmp_path / "run" / "metrics.nc").volume_fraction.sum()), 1.0)


def test_a_full_disk_is_said_of_the_output_not_of_its_hidden_temporary(tmp_path):
    """A disk (or quota) full while run.json, metrics, a table, a figure or a checkpoint was written
    came out as a traceback naming the hidden temporary (`.run.json.6677-8bf3.partial.json`), a
    file gone by then (the command line: exit 1, "a bug to report"); said now of the output."""
    import errno
    import os

    from bigseg.errors import OutputNotWritableError

    write_text(tmp_path / "run.json", "earlier")
    with pytest.raises(OutputNotWritableError, match=r"^Expected room to write '.*run\.json'\. Got: No space left on "
                       r"device \(disk or quota full\)\. Nothing that looks finished was left \(an earlier one stays "
                       r"as it was\)\. Free space") as caught:
        with replacing(tmp_path / "run.json") as tmp:
            tmp.write_text("{cut")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    assert "partial" not in str(caught.value)
    assert (tmp_path / "run.json").read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
    with pytest.raises(OutputNotWritableError, match=r"room to write '.*new\.csv'.*quota.*was left\. Free"):
        with replacing(tmp_path / "new.csv"):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    with pytest.raises(OSError) as other:  # other errors as they were
        with replacing(tmp_path / "new.csv"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
    assert not isinstance(other.value, OutputNotWritableError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_replacing_a_link_to_a_folder_replaces_the_link_not_what_it_leads_to(tmp_path):
    # QA (hostile inputs): `bigseg ingest SRC link.ome.zarr --overwrite`, link.ome.zarr a link to a store
    # elsewhere: the link was moved aside to a hidden `.old` name and its removal (rmtree, which refuses a
    # link, errors ignored) failed without a word, so the hidden link stayed beside the new output
    from bigseg.runtime._files import move_into_place

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep.txt").write_text("theirs")
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / ".out.new").mkdir()
    (tmp_path / ".out.new" / "zarr.json").write_text("{}")
    move_into_place(tmp_path / ".out.new", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "out"]
    assert not (tmp_path / "out").is_symlink() and (tmp_path / "out" / "zarr.json").exists()
    assert (tmp_path / "elsewhere" / "keep.txt").read_text() == "theirs"


def test_a_stop_while_a_folder_is_replaced_leaves_one_of_them_in_place(tmp_path, monkeypatch):
    """A folder is replaced in two moves (the earlier one aside, the new one in): a Ctrl-C or a
    SIGTERM whose handler ran between them (just after the first move) removed the new one and
    left the earlier one under its hidden name, so that nothing was at the path (a store's
    labels/segmentation gone while labels/zarr.json still named it)."""
    import os
    import signal

    target = tmp_path / "segmentation"
    target.mkdir()
    (target / "zarr.json").write_text("earlier")
    replace = os.replace

    def stopped_after(src, dst):
        replace(src, dst)
        if os.fspath(src) == os.fspath(target):  # moved aside: the stop arrives now
            signal.raise_signal(signal.SIGINT)  # (Python's handler runs as this call returns)

    monkeypatch.setattr(os, "replace", stopped_after)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with replacing(target) as tmp:
                tmp.mkdir()
                (tmp / "zarr.json").write_text("new")
    finally:
        signal.signal(signal.SIGINT, before)
    assert (target / "zarr.json").read_text() == "new"  # the write had finished: it is kept, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segmentation"]


def _fsync_log(monkeypatch) -> list[tuple[str, ...]]:
    """Each ``os.fsync`` (the path of its descriptor) and each ``os.replace`` (from, to), in order."""
    import os

    events: list[tuple[str, ...]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(a, b):
        events.append(("replace", os.path.realpath(str(a)), os.path.realpath(str(b))))
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names descriptors by /proc/self/fd (Linux)")
def test_an_output_is_on_the_disk_before_it_takes_its_name(tmp_path, monkeypatch):
    """A power cut or a crashed node (its page cache lost) could leave a store under its finished
    name whose chunks never reached the disk: every file and folder of it is flushed first, and
    the folder that holds the name after."""
    import os

    from bigseg.io import save_volume
    from bigseg.runtime._files import write_text as write

    monkeypatch.setenv("BIGSEG_FSYNC", "1")
    events = _fsync_log(monkeypatch)
    dest = tmp_path / "v.ome.zarr"
    save_volume(np.arange(6 * 8 * 8, dtype=np.float32).reshape(6, 8, 8), dest, chunks=4, progress=False)
    write(tmp_path / "t.json", "{}")
    for out in (dest, tmp_path / "t.json"):
        (at,) = [i for i, e in enumerate(events) if e[0] == "replace" and e[2] == str(out)]
        source = Path(events[at][1])
        synced = {e[1] for e in events[:at] if e[0] == "fsync"}
        if out.is_dir():
            inside = [Path(top) / f for top, dirs, fs in os.walk(out) for f in [*fs, *dirs]]
            assert len(inside) > 8  # metadata, chunks, their folders
            assert {str(source / p.relative_to(out)) for p in inside} <= synced
        assert str(source) in synced
        assert ("fsync", str(tmp_path)) in events[at + 1:]  # the new name itself
    events.clear()
    monkeypatch.setenv("BIGSEG_FSYNC", "0")
    save_volume(np.zeros((4, 4, 4), np.float32), tmp_path / "w.ome.zarr", progress=False)
    assert not [e for e in events if e[0] == "fsync"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names descriptors by /proc/self/fd (Linux)")
def test_a_resumable_block_is_on_the_disk_before_it_is_marked_done(tmp_path, monkeypatch):
    import dask.array as da
    import zarr

    from bigseg.runtime import _manifest

    monkeypatch.setenv("BIGSEG_FSYNC", "1")
    events = _fsync_log(monkeypatch)
    real_touch = Path.touch

    def touch(self, *a, **k):
        events.append(("marker", self.name))
        real_touch(self, *a, **k)

    monkeypatch.setattr(Path, "touch", touch)
    for fmt in (2, 3):
        events.clear()
        group = zarr.open_group(zarr.storage.LocalStore(tmp_path / f"s{fmt}"), mode="w", zarr_format=fmt)
        target = group.create_array("0", shape=(10, 12), chunks=(5, 4), dtype="u1", config={"write_empty_chunks": True})
        _manifest.store_resumable(da.ones((10, 12), chunks=(5, 4), dtype="u1"), target, tmp_path / f"m{fmt}",
                                  progress=False)
        markers = [i for i, e in enumerate(events) if e[0] == "marker"]
        assert len(markers) == 6
        for i in markers:
            z, x = (int(v) for v in events[i][1].split("."))
            chunk = str(tmp_path / f"s{fmt}" / "0" / target.metadata.encode_chunk_key((z, x)))
            before = [e[1] for e in events[:i] if e[0] == "fsync"]
            assert chunk in before and str(Path(chunk).parent) in before, (fmt, events[i])
            # and every folder up to the store's root: v3's c/0/ and c/ are made by the block's write, and
            # a name not on the disk loses what is under it (only c/0/1's own folder was flushed)
            root = tmp_path / f"s{fmt}"
            ups = [p for p in Path(chunk).parents if p == root or root in p.parents]
            assert len(ups) == (4 if fmt == 3 else 2) and {str(p) for p in ups} <= set(before), (fmt, events[i])
