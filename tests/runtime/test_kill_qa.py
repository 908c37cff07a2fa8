"""Runs stopped at a chosen moment (a kill, an error mid-write): nothing that looks finished is
left cut short, and the next run resumes (QA of the "interrupted run" promises)."""

from __future__ import annotations

import pytest


def test_a_figure_cut_short_leaves_no_png_and_keeps_the_earlier_one(tmp_path, monkeypatch):
    # figures were written in place: a run killed (SIGTERM) while matplotlib wrote slices.png left
    # a PNG cut short, which no viewer opens, beside a report that links it
    from matplotlib.figure import Figure

    from bigseg.report._figure import finish, pyplot

    plt = pyplot(tmp_path / "f.png")
    target = tmp_path / "slices.png"
    finish(plt.figure(), target)
    earlier = target.read_bytes()
    assert earlier[:8] == b"\x89PNG\r\n\x1a\n"

    def killed_half_way(self, fname, *args, **kwargs):
        with open(fname, "wb") as fh:
            fh.write(earlier[:40])  # the header and a little: what a process killed mid-write leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", killed_half_way)
    fig = plt.figure()
    with pytest.raises(KeyboardInterrupt):
        finish(fig, target, title="again")
    assert target.read_bytes() == earlier  # the earlier figure as it was, not the cut one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slices.png"]  # no hidden partial left
    assert not plt.fignum_exists(fig.number)  # closed all the same
    with pytest.raises(KeyboardInterrupt):
        finish(plt.figure(), tmp_path / "new.png")
    assert not (tmp_path / "new.png").exists()


def _prediction(shape=(8, 16, 16)):
    """A model's output as ``bigseg.predict`` gives it (labels, probabilities, uncertainty), in blocks."""
    import dask.array as da
    import numpy as np
    import xarray as xr

    rng = np.random.default_rng(7)
    p = rng.random((3, *shape)).astype(np.float32)
    p /= p.sum(0)
    block = (4, 8, 8)
    return xr.Dataset({"labels": (("z", "y", "x"), da.from_array(p.argmax(0).astype(np.uint8), chunks=block)),
                       "probabilities": (("phase", "z", "y", "x"), da.from_array(p, chunks=(3, *block))),
                       "uncertainty": (("z", "y", "x"), da.from_array(1 - p.max(0), chunks=block))},
                      attrs={"phases": ["pore", "cbd", "active"], "n_patches": 4, "patch": [4, 8, 8]})


def test_a_prediction_stopped_before_its_probabilities_are_written_resumes(tmp_path, monkeypatch):
    # `bigseg segment IMG --model default --probabilities` killed after labels/segmentation was in
    # place but before labels/segmentation_probabilities: the labels looked finished, the same
    # command was then refused ("labels/segmentation exists") and `bigseg run` with
    # predict.probabilities skipped the segmentation, so the probabilities never came
    import numpy as np

    import bigseg.infer._write as write
    from bigseg.io import open_volume, save_volume
    from bigseg.io._omezarr import label_names

    ds = _prediction()
    for name in ("ref", "img"):
        save_volume(np.zeros(ds["labels"].shape, np.float32), tmp_path / f"{name}.ome.zarr", chunks=(4, 8, 8),
                    progress=False)
    write.write_prediction(ds, tmp_path / "ref.ome.zarr", resume_key="k", progress=False)

    real = write.write_volume

    def killed_at_the_uncertainty(data, path, **kwargs):
        if str(path).endswith("_uncertainty"):
            raise KeyboardInterrupt
        return real(data, path, **kwargs)

    monkeypatch.setattr(write, "write_volume", killed_at_the_uncertainty)
    img = tmp_path / "img.ome.zarr"
    with pytest.raises(KeyboardInterrupt):
        write.write_prediction(ds, img, resume_key="k", progress=False)
    assert not (img / "labels" / "segmentation").exists()  # nothing that reads as a finished segmentation
    assert "segmentation" not in label_names(img / "labels")
    monkeypatch.undo()
    write.write_prediction(ds, img, resume_key="k", progress=False)  # the same write again: taken up
    for part in ("segmentation", "segmentation_probabilities", "segmentation_uncertainty"):
        np.testing.assert_array_equal(open_volume(img / "labels" / part).values,
                                      open_volume(tmp_path / "ref.ome.zarr" / "labels" / part).values)
    assert sorted(p.name for p in (img / "labels").iterdir() if p.name.startswith(".")) == []  # no scratch left


def test_labels_of_another_write_beside_a_stopped_predictions_siblings_stay_refused(tmp_path, monkeypatch):
    # a prediction stopped before its labels (its probabilities there, its uncertainty not), then labels
    # of the same name written by another command: the stopped write taken up again refuses them (they are
    # not its own: not all its siblings are there), and leaves them as they are
    import numpy as np

    import bigseg.infer._write as write
    from bigseg.errors import OutputExistsError
    from bigseg.io import open_volume, save_labels, save_volume

    ds = _prediction()
    img = tmp_path / "img.ome.zarr"
    save_volume(np.zeros(ds["labels"].shape, np.float32), img, chunks=(4, 8, 8), progress=False)
    real = write.write_volume

    def killed_at_the_uncertainty(data, path, **kwargs):
        if str(path).endswith("_uncertainty"):
            raise KeyboardInterrupt
        return real(data, path, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(write, "write_volume", killed_at_the_uncertainty)
        with pytest.raises(KeyboardInterrupt):
            write.write_prediction(ds, img, resume_key="k", progress=False)
    assert (img / "labels" / "segmentation_probabilities").is_dir()
    theirs = np.ones(ds["labels"].shape, np.uint8)
    save_labels(theirs, img, name="segmentation", phases=["pore", "cbd", "active"], progress=False)
    with pytest.raises(OutputExistsError, match="segmentation'? exists"):
        write.write_prediction(ds, img, resume_key="k", progress=False)
    np.testing.assert_array_equal(open_volume(img / "labels" / "segmentation").values, theirs)
    with pytest.raises(Exception, match="exists"):  # finished: not written over without overwrite
        write.write_prediction(ds, img, resume_key="k", progress=False)


def test_filter_refuses_a_busy_dest_by_its_name_before_the_normalize_passes(tmp_path, monkeypatch, bigseg_cli):
    # `bigseg filter SRC DEST --normalize` into a DEST another run writes (or a read-only folder)
    # first ran the percentile passes over the whole volume, then was refused naming `path`
    # (save_volume's argument, not the command's)
    import fcntl
    import os

    import numpy as np

    import bigseg.filters
    from bigseg.io import save_volume
    from bigseg.runtime._lock import lock_path

    save_volume(np.arange(8 * 16 * 16, dtype=np.float32).reshape(8, 16, 16), tmp_path / "scan.ome.zarr",
                progress=False)
    dest = tmp_path / "f.ome.zarr"
    other = os.open(lock_path(dest), os.O_RDWR | os.O_CREAT, 0o644)  # another writer's hold (its own open file)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(other, b'{"pid": 4242, "host": "node7", "since": "earlier", "command": "bigseg filter"}')

        def work_started(*args, **kwargs):
            raise AssertionError("the passes over the data ran before `dest` was checked")

        monkeypatch.setattr(bigseg.filters, "normalize", work_started)  # (its percentiles: passes over the data)
        res = bigseg_cli("filter", tmp_path / "scan.ome.zarr", dest, "--normalize", "--median", "3", "--no-progress",
                         check=False)
    finally:
        os.close(other)
    assert res.returncode == 2, res.stderr
    assert "`dest`" in res.stderr and str(dest) in res.stderr and "process 4242 on node7" in res.stderr, res.stderr
    assert not dest.exists()


def test_info_of_a_store_whose_write_was_killed_says_so(tmp_path, capsys):
    """`bigseg info` of a store a killed `segment --out`/`filter`/`ingest` never finished said
    only that it does not exist, though its finished blocks wait beside it."""
    from bigseg.cli import main

    (tmp_path / ".seg.ome.zarr.partial-r0123456789ab").mkdir()
    (tmp_path / ".raw.ome.zarr.partial-1a2b3c4d").mkdir()
    assert main(["info", str(tmp_path / "seg.ome.zarr")]) == 2
    err = capsys.readouterr().err
    assert "does not exist: a write of it was interrupted (.seg.ome.zarr.partial-r0123456789ab" in err
    assert "the same command again resumes it" in err
    assert main(["info", str(tmp_path / "raw.ome.zarr")]) == 2
    assert "starts it anew" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "other.ome.zarr")]) == 2
    assert "interrupted" not in capsys.readouterr().err


@pytest.mark.parametrize("at", ["report", "run.json"])
def test_a_run_stopped_at_its_report_is_not_done(tmp_path, monkeypatch, at):
    # run.json (which marks a run done) was written before report.html: a run stopped by Ctrl-C or
    # SIGTERM while its report was written was `done` for `bigseg info` (and a watch), without a report
    import numpy as np

    import bigseg.pipeline as pipeline
    import bigseg.report
    from bigseg import Pipeline
    from bigseg.pipeline import run_state

    real_report, real_text = bigseg.report.write_report, pipeline.write_text

    def report(run, **kwargs):
        if at == "report" and kwargs.get("finished"):
            raise KeyboardInterrupt
        return real_report(run, **kwargs)

    def text(path, content):
        if at == "run.json" and path.name == "run.json":
            raise KeyboardInterrupt
        return real_text(path, content)

    monkeypatch.setattr(bigseg.report, "write_report", report)
    monkeypatch.setattr(pipeline, "write_text", text)
    vol = np.random.default_rng(0).random((12, 16, 14)).astype(np.float32)
    pipe = Pipeline(chunks=8, predict={"model": "threshold"}, measure={"particles": False, "connectivity": None})
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        pipe.run(vol, out, progress=False)
    assert run_state(out)["state"] == "incomplete"
    if (out / "report.html").exists():  # one written before the stop: said to be of a run not finished
        assert "Incomplete run" in (out / "report.html").read_text()
    monkeypatch.undo()
    pipe.run(vol, out, progress=False)  # the same run again: done, with its report
    assert run_state(out)["state"] == "done"
    assert "Incomplete run" not in (out / "report.html").read_text()


@pytest.mark.parametrize("stage, changed", [("segment", {"predict": {"model": "kmeans"}}),
                                            ("ingest", {"crop": "2:12,:,:"})])
def test_a_run_stopped_as_a_stage_lands_keeps_nothing_stale(tmp_path, monkeypatch, stage, changed):
    # a run with another model (crop) stopped after its labels (image) replaced the earlier ones but before
    # stages.json said what they were made from: the earlier settings run again then kept them, as theirs
    import numpy as np

    import bigseg.pipeline as pipeline
    from bigseg import Pipeline
    from bigseg.io import open_volume

    vol = np.random.default_rng(1).normal(size=(14, 16, 12)).astype(np.float32)
    vol[:, :, 6:] += 3
    base = {"chunks": 8, "predict": {"model": "threshold"}, "measure": {"particles": False, "connectivity": None}}
    out = tmp_path / "run"
    seg = out / "image.ome.zarr" / "labels" / "segmentation"
    Pipeline(**base).run(vol, out, progress=False)
    before = open_volume(seg).values

    real = pipeline._write_stage

    def stopped(out_, name, key, **kwargs):
        if name == stage and key is not None:  # what the stage wrote is in place, stages.json not yet saying so
            raise KeyboardInterrupt
        return real(out_, name, key, **kwargs)

    monkeypatch.setattr(pipeline, "_write_stage", stopped)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(**{**base, **changed}).run(vol, out, progress=False)
    monkeypatch.undo()
    Pipeline(**base).run(vol, out, progress=False)  # the earlier settings again: their own results
    np.testing.assert_array_equal(open_volume(seg).values, before)
