"""Files written whole or not at all (``runtime._files``), as the run folder's and the
commands' tables and metrics are."""

from __future__ import annotations

import json

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
