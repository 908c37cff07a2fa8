"""The end-to-end pipeline and the demo on small generated electrodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import bigseg
from bigseg import synth
from bigseg.errors import ConfigError, InputError
from bigseg.pipeline import Pipeline


@pytest.fixture(scope="module")
def scan():
    truth = synth.electrode((40, 44, 48), seed=3, chunks=24)
    return truth.compute(), synth.xct(truth, seed=3).compute()


@pytest.mark.slow
def test_pipeline_threshold_then_resume(tmp_path, scan, bigseg_cli):
    truth, image = scan
    pipe = Pipeline(chunks=(16, 20, 24), voxel_size=(40, 40, 40), predict={"model": "threshold"})
    res = pipe.run(image, tmp_path / "run", truth=truth)
    labels = bigseg.open_volume(res.labels)
    assert labels.shape == truth.shape and labels.dtype == np.uint8
    assert labels.attrs["phases"] == ["pore", "cbd", "active"]
    fr = res.metrics["volume_fraction"]
    assert abs(float(fr.sum()) - 1) < 1e-9
    np.testing.assert_allclose(fr.values, np.bincount(labels.values.ravel(), minlength=3) / labels.size)
    # the particle table of the segmented active phase, with the image's grey values
    table = res.particles
    assert len(table) > 0 and table.voxels.sum() == int((labels.values == 2).sum())
    np.testing.assert_allclose(table.volume, table.voxels * 40.0 ** 3)
    written = bigseg.measure.read_table(tmp_path / "run" / "particles.csv")
    assert written.attrs["units"] == {k: v for k, v in table.attrs["units"].items() if v not in ("", "1")}
    np.testing.assert_allclose(written.mean_intensity, table.mean_intensity)
    assert str(tmp_path / "run" / "particles.png") in res.figures
    # one HTML page with everything; `bigseg report` rewrites it elsewhere
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Particles" in page and "Interfaces" in page and page.count("<img") == len(res.figures) == 4
    assert "sphericity (crofton areas)" in page  # the run's particle_area, read back from run.json
    # interface areas and areas per volume (the specific interface area) in a readable unit
    from bigseg.report._units import readable

    m = res.metrics
    area = float(m.area.sel(phase_a="pore", phase_b="cbd"))
    per_volume = area / (labels.size * 40.0 ** 3)
    pairs = [float(m.area.values[i, j]) for i, j in ((0, 1), (0, 2), (1, 2))]  # the table's unit: all three
    f_area, u_area = readable(pairs, m.area.attrs["units"])
    f_spec, u_spec = readable([a / (labels.size * 40.0 ** 3) for a in pairs], f"1/{m.attrs['unit']}")
    assert f"area [{u_area}]" in page and f"area per volume [{u_spec}]" in page and "<th>IoU</th>" in page
    assert f"<td>{area * f_area:.4g}</td><td>{per_volume * f_spec:.4g}</td>" in page
    assert "area method: crofton</p>" in page  # the areas to quote (faces read +30-60 %)
    assert table.attrs["surface_area_method"] == "crofton"
    np.testing.assert_allclose(m.area.values, bigseg.measure.interfaces(labels, method="crofton").area.values)
    # the through-thickness profile (default along z): per slice, its voxel-weighted mean the fraction
    prof = res.metrics["volume_fraction_profile"]
    assert prof.dims == ("phase", "z") and prof.sizes["z"] == 40
    np.testing.assert_allclose(prof.sel(z=80.0).values, np.bincount(labels.values[2].ravel(), minlength=3) / (44 * 48))
    assert str(tmp_path / "run" / "profile.png") in res.figures and "Along z" in page
    assert f"{len(table)} particles" in page and "threshold" in page
    # at a glance in a notebook: paths, fractions, IoU, particles, timings (not a dump of the table)
    glance = repr(res).splitlines()
    assert glance[0] == "Result" and len(glance) <= 10 and f"  labels     {res.labels}" in glance
    iou = res.metrics["iou"]
    assert f"  IoU        pore {float(iou.sel(phase='pore')):.3f}, cbd {float(iou.sel(phase='cbd')):.3f}" in repr(res)
    assert f"  particles  {len(table)} rows (.particles)" in glance
    bigseg_cli("report", tmp_path / "run", "-o", tmp_path / "r.html", "--title", "scan 7")
    assert "scan 7" in (tmp_path / "r.html").read_text()
    again = bigseg_cli("report", tmp_path / "run", "-o", tmp_path / "r.html", "--title", "other", check=False)
    assert again.returncode == 2 and "`--output` to name a new file or --overwrite" in again.stderr  # was replaced
    assert "scan 7" in (tmp_path / "r.html").read_text()
    bigseg_cli("report", tmp_path / "run", "-o", tmp_path / "r.html", "--title", "other", "--overwrite")
    assert "other" in (tmp_path / "r.html").read_text()
    bigseg_cli("report", tmp_path / "run")  # the run's own page: rewritten, as the command is for
    # `bigseg info` on the run folder: what it holds, in a few lines (or JSON)
    out = bigseg_cli("info", tmp_path / "run", "--json")
    info = __import__("json").loads(out.stdout)
    assert info["particles"] == len(table) and info["model"] == "threshold" and info["steps"] is None
    assert info["volume_fraction"]["cbd"] == pytest.approx(float(fr.sel(phase="cbd")))
    assert info["iou"]["active"] == pytest.approx(float(res.metrics["iou"].sel(phase="active")))
    assert info["report"].endswith("report.html") and len(info["figures"]) == 4
    text = bigseg_cli("info", tmp_path / "run").stdout
    assert text.splitlines()[0].startswith("run ") and f"particles   {len(table)} (particles.csv)" in text
    # each phase's connectivity along z (measure.connectivity: the default), in the metrics, report and info
    conn = bigseg.measure.connectivity(bigseg.open_volume(res.labels), axis="z")
    np.testing.assert_allclose(res.metrics["connectivity_percolating"].values, conn.percolating.values)
    assert info["percolating"]["pore"] == pytest.approx(float(conn.percolating.sel(phase="pore")))
    assert "Connectivity along z" in page and "percolates z" in text
    bad = bigseg_cli("report", tmp_path, check=False)
    assert bad.returncode == 2 and "`run`" in bad.stderr
    assert float(res.metrics["iou"].sel(phase="active")) > 0.5
    assert (tmp_path / "run" / "metrics.json").exists() and (tmp_path / "run" / "metrics.nc").exists()
    from bigseg.report import read_metrics

    assert read_metrics(tmp_path / "run").attrs["voxel_size"] == [40.0, 40.0, 40.0]  # stored as JSON text, decoded
    assert all(Path(f).exists() for f in res.figures)
    # resume: the finished segmentation is not recomputed (its files are untouched)
    seg = Path(res.labels) / "0" / "zarr.json"
    mtime = seg.stat().st_mtime_ns
    res2 = pipe.run(image, tmp_path / "run", truth=truth)
    assert seg.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(bigseg.open_volume(res2.labels).values, labels.values)


def test_a_run_again_with_fewer_outputs_leaves_none_of_the_earlier_ones(tmp_path, scan):
    # particles, their labels and the profile of an earlier run of the folder were kept beside
    # the new segmentation, and the report and `bigseg info` showed them as this run's
    truth, image = scan
    small = image[:16, :20, :24]
    first = Pipeline(voxel_size=40, predict={"model": "threshold"}, measure={"particle_labels": True})
    first.run(small, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "particles.csv").exists() and (tmp_path / "run" / "profile.png").exists()
    image_path = tmp_path / "run" / "image.ome.zarr"
    assert "particles" in bigseg.io._omezarr.label_names(image_path / "labels")
    again = Pipeline(voxel_size=40, predict={"model": "kmeans"}, measure={"particles": False, "profile": None})
    res = again.run(small, tmp_path / "run", progress=False)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert not names & {"particles.csv", "particles.png", "profile.png"}
    assert set(res.figures) == {str(tmp_path / "run" / n) for n in ("slices.png", "metrics.png")}
    assert bigseg.io._omezarr.label_names(image_path / "labels") == ["segmentation"]
    assert not (image_path / "labels" / "particles").exists()
    page = (tmp_path / "run" / "report.html").read_text()
    assert page.count("<img") == 2 and "particles" not in page.lower()


def test_a_run_again_on_another_source_remakes_its_labels_without_a_warning(tmp_path, scan):
    # the run's image is replaced with the labels the run makes again: not the user's labels lost
    truth, image = scan
    pipe = Pipeline(voxel_size=40, predict={"model": "threshold"}, measure={"particles": False, "profile": None})
    pipe.run(image[:16, :20, :24], tmp_path / "run", progress=False)
    res = pipe.run(image[16:32, :20, :24], tmp_path / "run", progress=False)  # the suite's filter: warnings fail
    again = bigseg.open_volume(res.labels)
    fresh = pipe.run(image[16:32, :20, :24], tmp_path / "fresh", progress=False)
    np.testing.assert_array_equal(again.values, bigseg.open_volume(fresh.labels).values)


def test_a_scan_one_slice_thick_runs_and_what_cannot_be_measured_on_it_is_refused_first(tmp_path, scan):
    # the default connectivity along z failed after the segmentation ("at least 2 voxels along
    # `axis`"), leaving a folder without results; tortuosity and RVE failed there too
    _, image = scan
    one = image[:1, :20, :24]
    with pytest.warns(UserWarning, match="connectivity not measured"):
        res = Pipeline(predict={"model": "threshold"}, measure={"particles": False}).run(
            one, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "run.json").exists() and "connectivity_percolating" not in res.metrics
    np.testing.assert_allclose(float(res.metrics.volume_fraction.sum()), 1.0)
    for measure, key in (({"tortuosity": "z"}, "measure.tortuosity"), ({"rve": True}, "measure.rve"),
                         ({"interfaces": "marching_cubes"}, "measure.interfaces")):
        with pytest.raises(ConfigError, match=rf"`{key}` off .* shape \(1, 20, 24\)"):
            Pipeline(predict={"model": "threshold"}, measure={"particles": False, **measure}).run(
                one, tmp_path / "no", progress=False)
        assert not (tmp_path / "no").exists()


@pytest.mark.slow
def test_an_array_is_calibrated_by_voxel_size_and_unit_as_a_path_is(tmp_path, scan, monkeypatch):
    # `unit` was ignored for an array without `voxel_size` (it stayed in voxels, or in the
    # DataArray's own unit) where a path's voxel size is converted to it
    _, image = scan
    small = image[:12, :20, :24].assign_attrs(voxel_size=(50.0, 40.0, 40.0), unit="nm")
    np.save(tmp_path / "plain.npy", np.asarray(small))
    opts = {"predict": {"model": "threshold"}, "measure": {"particles": False, "connectivity": None}}
    cases = [(small, {"unit": "um"}, (0.05, 0.04, 0.04), "um"),  # its own size, converted
             (np.asarray(small), {"unit": "um"}, (1.0, 1.0, 1.0), "um"),  # none stated: 1 in `unit`
             (np.asarray(small), {"voxel_size": 2}, (2.0, 2.0, 2.0), "nm"),
             (small, {"voxel_size": 30, "crop": "2:10,:,:"}, (30.0, 30.0, 30.0), "nm")]
    from contextlib import nullcontext

    from bigseg.errors import UncalibratedWarning

    for i, (src, cfg, vs, unit) in enumerate(cases):
        stated = "voxel_size" in cfg or hasattr(src, "attrs")  # a unit alone for what states no size: said
        with nullcontext() if stated else pytest.warns(UncalibratedWarning, match="a voxel is taken as 1 um"):
            res = Pipeline(**opts, **cfg).run(src, tmp_path / f"run{i}", progress=False)
        vol = bigseg.open_volume(tmp_path / f"run{i}" / "image.ome.zarr")
        np.testing.assert_allclose(vol.attrs["voxel_size"], vs)
        assert vol.attrs["unit"] == unit == res.metrics.attrs["unit"]
        if "crop" in cfg:  # the box keeps its place in the scan's coordinates
            np.testing.assert_allclose(vol.z.values[0], 2 * 30.0)
    # the same array from a file gets the same calibration; run.json says where the file is
    # from anywhere (it kept the path relative to the folder the run started in)
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UncalibratedWarning, match="a voxel is taken as 1 um"):
        Pipeline(**opts, unit="um").run("plain.npy", tmp_path / "path", progress=False)
    assert bigseg.open_volume(tmp_path / "path" / "image.ome.zarr").attrs["unit"] == "um"
    assert json.loads((tmp_path / "path" / "run.json").read_text())["source"] == str(tmp_path / "plain.npy")


def test_a_run_again_that_fails_leaves_no_report_that_reads_as_finished(tmp_path, scan, monkeypatch):
    # the earlier run's report.html stayed as it was (no banner) over results the failed run
    # had in part replaced
    _, image = scan
    small = image[:12, :20, :24]
    opts = {"predict": {"model": "threshold"}, "measure": {"particles": False, "connectivity": None}}
    Pipeline(**opts).run(small, tmp_path / "run", progress=False)
    assert bigseg.pipeline.run_state(tmp_path / "run")["state"] == "done"
    assert "Incomplete run" not in (tmp_path / "run" / "report.html").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("a disk error")

    # failing as it reads the source again: before it has redone any stage
    monkeypatch.setattr(Pipeline, "_ingest", broken)
    with pytest.raises(RuntimeError, match="disk error"):
        Pipeline(**opts).run(small, tmp_path / "run", progress=False)
    assert bigseg.pipeline.run_state(tmp_path / "run")["state"] == "incomplete"
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Incomplete run" in page and "stopped after ingest, segment" in page
    # failing in the measurements, its metrics gone: a page that cannot be drawn again is removed
    monkeypatch.undo()
    monkeypatch.setattr(bigseg.measure, "summary", broken)
    (tmp_path / "run" / "metrics.nc").unlink()
    (tmp_path / "run" / "metrics.json").unlink(missing_ok=True)
    with pytest.raises(RuntimeError, match="disk error"):
        Pipeline(**opts).run(small, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "report.html").exists()
    monkeypatch.undo()
    Pipeline(**opts).run(small, tmp_path / "run", progress=False)  # and a run to the end makes it done again
    assert bigseg.pipeline.run_state(tmp_path / "run")["state"] == "done"
    assert "Incomplete run" not in (tmp_path / "run" / "report.html").read_text()


def test_a_run_again_killed_leaves_no_earlier_report_that_reads_as_finished(tmp_path, scan):
    """A run again with another model, killed once its labels replaced the earlier ones: no handler runs on a
    kill, so the earlier report.html stayed as finished (no banner) over labels it does not describe."""
    import subprocess
    import sys

    _, image = scan
    np.save(tmp_path / "scan.npy", image[:12, :20, :24].values)
    opts = {"measure": {"particles": False, "connectivity": None}}
    Pipeline(predict={"model": "threshold"}, **opts).run(tmp_path / "scan.npy", tmp_path / "run", progress=False)
    killed = ("import os, bigseg, bigseg.measure as m\n"
              "m.summary = lambda *a, **k: os._exit(9)  # as a SIGKILL: the new labels in place, nothing after\n"
              f"bigseg.Pipeline(predict={{'model': 'kmeans'}}, **{opts!r}).run({str(tmp_path / 'scan.npy')!r}, "
              f"{str(tmp_path / 'run')!r}, progress=False)")
    assert subprocess.run([sys.executable, "-c", killed]).returncode == 9
    assert bigseg.pipeline.run_state(tmp_path / "run")["state"] == "interrupted"
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<b>Unfinished run</b> (finished stages: " in page and "a run started here" in page, page[:3000]


def test_info_of_a_run_not_done_says_whose_results_it_shows(tmp_path, scan, capsys):
    """A run killed after writing metrics.nc but before run.json was described as showing "its
    last finished run", though no run had finished (or the metrics were this run's)."""
    import os

    from bigseg.cli import main

    _, image = scan
    opts = {"predict": {"model": "threshold"}, "measure": {"particles": False, "connectivity": None}}
    run = tmp_path / "run"
    Pipeline(**opts).run(image[:12, :20, :24], run, progress=False)
    t = (run / "run.json").stat().st_mtime

    def said(stages: float, metrics: float) -> str:
        os.utime(run / "stages.json", (stages, stages))
        for f in ("metrics.nc", "metrics.json"):
            os.utime(run / f, (metrics, metrics))
        capsys.readouterr()
        assert main(["info", str(run)]) == 0
        return capsys.readouterr().out

    assert "(below: its last finished run)" in said(t + 10, t - 10)  # a rerun stopped before its measurements
    assert "(below: results this run wrote before it stopped, beside an earlier run's record)" in said(t + 10, t + 20)
    (run / "run.json").unlink()  # no run ever finished
    out = said(t + 10, t + 20)
    assert "(below: results this run wrote before it stopped)" in out and "last finished" not in out


def test_a_run_folder_inside_the_source_store_is_refused(tmp_path, scan):
    # Pipeline.run refused only dest = the source (or its image.ome.zarr): a run folder inside
    # an OME-Zarr source was written into the input store
    _, image = scan
    src = bigseg.save_volume(image[:8, :16, :16], tmp_path / "s.ome.zarr", progress=False)
    before = sorted(p.name for p in Path(src).rglob("*"))
    with pytest.raises(InputError, match=r"`dest` to be outside the input '.*s.ome.zarr'"):
        Pipeline(predict={"model": "threshold"}).run(src, Path(src) / "run", progress=False)
    assert sorted(p.name for p in Path(src).rglob("*")) == before


def test_a_source_of_no_numbers_is_refused_as_source_before_work(tmp_path):
    """A complex-valued array was refused as save_volume's `data`, after the run had taken `dest`
    (and started its cluster); now as the run's own `source`, before anything."""
    with pytest.raises(InputError, match=r"^Expected `source` to hold numbers \(integers, floats or booleans\). Got "
                                         r"dtype complex128 instead.$"):
        Pipeline(predict={"model": "threshold"}).run(np.zeros((8, 8, 8), complex), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_checkpoint_retrained_in_place_is_segmented_again(tmp_path, scan):
    # the segmentation stage's key held the checkpoint's path only: a model retrained into the
    # same file kept the old labels on a resumed run (and a watch skipped its done scans)
    import torch

    from bigseg import models

    _, image = scan
    small = image[:8, :16, :16]
    ckpt = tmp_path / "model.pt"
    model = models.create("lrcsnet", patch=(16, 16))
    models.save(model, ckpt)
    pipe = dict(predict={"model": str(ckpt)}, filters={"median": None},
                measure={"particles": False, "profile": None, "connectivity": None})
    Pipeline(**pipe).run(small, tmp_path / "run", progress=False)
    with torch.no_grad():
        for w in model.parameters():
            w.add_(torch.randn_like(w, generator=torch.Generator().manual_seed(0)))
    models.save(model, ckpt, overwrite=True)
    again = Pipeline(**pipe).run(small, tmp_path / "run", progress=False)
    fresh = Pipeline(**pipe).run(small, tmp_path / "fresh", progress=False)
    np.testing.assert_array_equal(bigseg.open_volume(again.labels).values, bigseg.open_volume(fresh.labels).values)
    # the same weights again: kept (resumed, not recomputed)
    stages = (tmp_path / "run" / "stages.json").read_text()
    Pipeline(**pipe).run(small, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "stages.json").read_text() == stages


def test_a_run_loads_and_checks_its_model_once(tmp_path, scan, monkeypatch):
    # the model check before any stage (its memory) and the prediction each loaded the checkpoint
    # and ran its check, a forward pass of a zero patch (0.4-0.8 s for the default model on a
    # CPU, its first there): the run loads it once, checks it once and predicts with the weights
    # its model_key hashes (a worker loads it too, once per process: bigseg.infer._model.cached_module)
    import inspect

    from bigseg import models

    _, image = scan
    ckpt = tmp_path / "model.pt"
    models.save(models.create("lrcsnet", patch=(16, 16)), ckpt)
    loads, checks, real = [], [], models.load

    def load(path):
        net = real(path)
        if "cached_module" not in {f.function for f in inspect.stack()}:  # not a worker's own
            loads.append(net)
        net.register_forward_pre_hook(lambda module, args: checks.append(1) if not args[0].any() else None)
        return net

    monkeypatch.setattr(models, "load", load)
    pipe = Pipeline(predict={"model": str(ckpt)}, filters={"median": None},
                    measure={"particles": False, "profile": None, "connectivity": None})
    res = pipe.run(image[:8, :16, :16], tmp_path / "run", progress=False)
    assert len(loads) == 1 and len(checks) == 1
    assert json.loads((tmp_path / "run" / "run.json").read_text())["model_key"] == loads[0].checkpoint_key()
    assert pipe._loaded_model is None  # not held between runs
    assert bigseg.open_volume(res.labels).shape == (8, 16, 16)


_STAGES_OPTS = {"predict": {"model": "threshold"}, "measure": {"particles": False, "connectivity": None}}


@pytest.fixture(scope="module")
def stages_runs(tmp_path_factory, scan):
    """The first run (no median) and a fresh run with median 5, made once for every damage below: each
    test damages a copy of the first (a copied run folder is resumed as it was: no stage key names its folder)."""
    _, image = scan
    image = image[:16, :20, :24]
    base = tmp_path_factory.mktemp("stages")
    first = Pipeline(filters={"median": None}, **_STAGES_OPTS).run(image, base / "first", progress=False)
    fresh = Pipeline(filters={"median": 5}, **_STAGES_OPTS).run(image, base / "fresh", progress=False)
    return image, base / "first", bigseg.open_volume(first.labels).values, bigseg.open_volume(fresh.labels).values


@pytest.mark.parametrize("damage", [b"", b'{"ingest": "{\\"align', b"[]"], ids=["empty", "cut-short", "not-an-object"])
def test_a_damaged_stages_record_redoes_every_stage(tmp_path, stages_runs, damage):
    """stages.json cut short (a copy that stopped) or edited: its stages were kept as made from this run's
    inputs, so a run again with other filters measured the earlier segmentation and recorded it as theirs."""
    import shutil

    image, first, before, want = stages_runs
    shutil.copytree(first, tmp_path / "run")
    np.testing.assert_array_equal(bigseg.open_volume(tmp_path / "run" / "image.ome.zarr" / "labels" / "segmentation")
                                  .values, before)  # the copy holds the first run's segmentation
    (tmp_path / "run" / "stages.json").write_bytes(damage)
    again = Pipeline(filters={"median": 5}, **_STAGES_OPTS).run(image, tmp_path / "run", progress=False)
    assert (want != before).any()
    np.testing.assert_array_equal(bigseg.open_volume(again.labels).values, want)


@pytest.mark.parametrize("stage", ["ingest", "segment"])
def test_a_run_killed_as_a_stage_is_put_in_place_is_not_kept_for_other_inputs(tmp_path, scan, monkeypatch, stage):
    """A first run killed after a stage's output was moved into place but before stages.json named what it was made
    from: the run again with another source or model kept it as its own (the record fell back to "made from these")."""
    import bigseg.pipeline as pl

    _, image = scan
    first, other = image[:16, :20, :24], image[16:32, :20, :24]
    opts = {"measure": {"particles": False, "connectivity": None, "profile": None}}
    real = pl._write_stage

    def killed(out, name, key, **kw):
        if name == stage and key is not None:
            raise KeyboardInterrupt  # as a SIGKILL there: the output in place, not yet recorded
        return real(out, name, key, **kw)

    monkeypatch.setattr(pl, "_write_stage", killed)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(predict={"model": "threshold"}, **opts).run(first, tmp_path / "run", progress=False)
    monkeypatch.setattr(pl, "_write_stage", real)
    source, model = (other, "threshold") if stage == "ingest" else (first, "kmeans")
    Pipeline(predict={"model": model}, **opts).run(source, tmp_path / "run", progress=False)
    fresh = Pipeline(predict={"model": model}, **opts).run(source, tmp_path / "fresh", progress=False)
    for path in ("image.ome.zarr", "image.ome.zarr/labels/segmentation"):
        np.testing.assert_array_equal(bigseg.open_volume(tmp_path / "run" / path).values,
                                      bigseg.open_volume(tmp_path / "fresh" / path).values)
    monkeypatch.setattr(Pipeline, "_ingest", lambda *a: 1 / 0)  # a first run failing in its ingest: no folder left
    with pytest.raises(ZeroDivisionError):
        Pipeline(predict={"model": "threshold"}, **opts).run(first, tmp_path / "failed", progress=False)
    assert not (tmp_path / "failed").exists()
    monkeypatch.undo()
    before = Pipeline(predict={"model": "threshold"}, **opts).run(first, tmp_path / "before", progress=False)
    assert (bigseg.open_volume(fresh.labels).values != bigseg.open_volume(before.labels).values).any()


def test_pipeline_writes_pyramids_for_viewers(tmp_path, scan):
    truth, image = scan
    res = Pipeline(chunks=16, levels=3, predict={"model": "threshold"}, measure={"particles": False}).run(
        image, tmp_path / "run")
    img = Path(res.image)
    for path in (img, img / "labels" / "segmentation"):
        assert bigseg.io.volume_info(path)["levels"] == 3
    full = bigseg.open_volume(img / "labels" / "segmentation")
    half = bigseg.open_volume(img / "labels" / "segmentation", level=1)
    assert half.shape == (20, 22, 24) and half.attrs["voxel_size"][0] == 2 * full.attrs["voxel_size"][0]
    np.testing.assert_array_equal(half.values, full.values[::2, ::2, ::2])  # labels: nearest, values stay phases


@pytest.mark.slow
def test_pipeline_shells_and_tortuosity_on_request(tmp_path, scan):
    truth, image = scan
    res = Pipeline(chunks=24, predict={"model": "threshold"},
                   measure={"particles": False, "shells": "active:cbd:4", "tortuosity": "z", "rve": True,
                            "thickness": ["pore", "cbd"], "max_diameter": 16}).run(image, tmp_path / "r")
    labels = bigseg.open_volume(res.labels)
    ref_sh = bigseg.measure.shells(labels, around="active", of="cbd", max_distance=4)
    np.testing.assert_allclose(res.metrics.shell_fraction.values, ref_sh.values)
    ref_tau = bigseg.measure.tortuosity(labels, axis="z")
    np.testing.assert_allclose(res.metrics.tortuosity.values, ref_tau.tau.values)
    assert str(tmp_path / "r" / "shells.png") in res.figures and str(tmp_path / "r" / "rve.png") in res.figures
    np.testing.assert_allclose(res.metrics.rve_relative_std.values, bigseg.measure.rve(labels).relative_std.values)
    page = (tmp_path / "r" / "report.html").read_text()
    assert "Transport" in page and "fraction of cbd at a distance from active" in page
    assert "Representative volume element" in page and "<th>cube edge [voxels]</th><th>edge [" in page
    stored = __import__("bigseg.report", fromlist=["read_metrics"]).read_metrics(tmp_path / "r")
    np.testing.assert_allclose(stored.tortuosity_D_eff.values, ref_tau.D_eff.values)
    ref_th = bigseg.measure.thickness(labels, phase=["pore", "cbd"], max_diameter=16)
    np.testing.assert_allclose(stored.thickness_share.values, ref_th.share.values)
    np.testing.assert_allclose(res.metrics.thickness_d50.values, ref_th.d50.values)
    assert "Local thickness" in page and str(tmp_path / "r" / "thickness.png") in res.figures
    with pytest.raises(ConfigError, match="`measure.thickness` to name a phase of the model"):
        Pipeline(predict={"model": "threshold"}, measure={"thickness": ["binder"]}).run(image, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert "<th>porosity</th>" in page
    # the solid's tortuosity (measure.tortuosity_phase; was the pore's only)
    res = Pipeline(chunks=24, predict={"model": "threshold"},
                   measure={"particles": False, "tortuosity": "z", "tortuosity_phase": "active"}).run(image, tmp_path / "a")
    np.testing.assert_allclose(res.metrics.tortuosity.values, bigseg.measure.tortuosity(labels, phase="active").tau.values)
    assert res.metrics.attrs["tortuosity_phase"] == "active"
    assert "<th>volume fraction</th>" in (tmp_path / "a" / "report.html").read_text()
    # in the Transport table itself (the fractions table's header says "volume fraction" in every report)
    transport = (tmp_path / "a" / "report.html").read_text().split("<h2>Transport")[1].split("<h2>")[0]
    assert "<th>volume fraction</th>" in transport and "<th>porosity</th>" not in transport
    with pytest.raises(ConfigError, match="`measure.tortuosity_phase` to name a phase of the model .* Got 'NMC'"):
        Pipeline(predict={"model": "threshold"}, measure={"tortuosity": "z", "tortuosity_phase": "NMC"}).run(
            image, tmp_path / "y")
    assert not (tmp_path / "y").exists()


def test_pipeline_leaves_particles_under_min_voxels_out(tmp_path, scan):
    truth, image = scan
    res = Pipeline(chunks=24, predict={"model": "threshold"}, measure={"min_voxels": 30}).run(image, tmp_path / "r")
    labels = bigseg.open_volume(res.labels)
    ref = bigseg.measure.particles(labels, min_voxels=30, area_method="crofton")
    full = bigseg.measure.particles(labels, area_method="crofton")
    assert len(res.particles) == len(ref) < len(full) and res.particles.voxels.min() >= 30
    np.testing.assert_array_equal(res.particles.voxels, ref.voxels)
    page = (tmp_path / "r" / "report.html").read_text()
    # how many: was "(particles of fewer than 30 voxels left out: ...)", neither the count nor the voxels said
    left = full[full.voxels < 30]
    assert (f"({len(left)} particles of fewer than 30 voxels left out, {left.voxels.sum()} voxels of the phase: "
            "measure.min_voxels)") in page
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert record["particles_left_out"] == {"particles": len(left), "voxels": int(left.voxels.sum())}
    inside = res.particles[~res.particles.touches_border]
    assert f"<td>aspect ratio (major / minor axis)</td><td>{inside.aspect_ratio.mean():.4g}</td>" in page


@pytest.mark.slow
def test_pipeline_inside_a_cylindrical_field_of_view(tmp_path):
    truth = synth.electrode((24, 56, 60), seed=4).compute()
    image = synth.xct(truth, seed=4).compute()
    inside = bigseg.io.fov_mask(image, "cylinder").values
    rec = np.where(inside, image.values, 0).astype(np.float32)  # a masked reconstruction
    res = Pipeline(chunks=(12, 20, 24), fov="auto", measure={"tortuosity": "z", "rve": True}).run(
        rec, tmp_path / "r", truth=np.where(inside, truth.values, 255).astype(np.uint8))
    labels = bigseg.open_volume(res.labels).values
    assert (labels[:, ~inside] == 255).all() and (labels[:, inside] < 3).all()
    true = np.bincount(truth.values[:, inside].ravel(), minlength=3) / inside.sum() / 24
    np.testing.assert_allclose(res.metrics.volume_fraction.values, true, atol=0.04)
    assert res.metrics.iou.values[2] > 0.85
    ys, xs = bigseg.io.inscribed_box(inside)
    assert inside[ys, xs].all() and (ys.stop - ys.start) >= 0.65 * 56  # the largest square in the circle: 0.71 d
    ref_tau = bigseg.measure.tortuosity(labels[:, ys, xs], axis="z")
    np.testing.assert_allclose(res.metrics.tortuosity.values, ref_tau.tau.values)
    # where each sub-volume lies, in the volume's indices, is kept in metrics.nc (it was dropped)
    stored = __import__("bigseg.report", fromlist=["read_metrics"]).read_metrics(tmp_path / "r")
    np.testing.assert_array_equal(stored.subvolume_y0.values, ref_tau.y0.values + ys.start)
    np.testing.assert_array_equal(stored.subvolume_x1.values, ref_tau.x1.values + xs.start)
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["fov"]["fov"] == "auto" and run["fov"]["inside_fraction"] == pytest.approx(inside.mean())
    assert str(tmp_path / "r" / "fov.png") in res.figures and (tmp_path / "r" / "fov.png").stat().st_size > 5000
    # a cylinder's fractions by distance from its axis (cupping shows there)
    ref = bigseg.measure.radial_profile(labels, centre=(27.5, 29.5), step=4)
    np.testing.assert_allclose(res.metrics.volume_fraction_radial.values, ref.values, equal_nan=True)
    assert str(tmp_path / "r" / "radial.png") in res.figures
    # the field of view is part of what the segmentation is made from: another one redoes it
    res2 = Pipeline(chunks=(12, 20, 24), measure={"particles": False}).run(rec, tmp_path / "r")
    assert (bigseg.open_volume(res2.labels).values < 3).all()


def test_a_bad_fov_is_refused_before_work(tmp_path):
    for bad, match in (("sphere", "`fov` to be 'auto'"), ([1, 2], "`fov` to be"), (-1, "`fov` to be")):
        with pytest.raises(bigseg.errors.ConfigError, match=match):
            Pipeline(fov=bad)
    with pytest.raises(bigseg.errors.ConfigError, match="`fov_margin`"):
        Pipeline(fov="auto", fov_margin=-2)


def test_every_figure_names_the_run_it_shows(tmp_path, monkeypatch):
    # QA (report reader): slices.png and metrics.png named the run, profile.png, particles.png, evolution.png,
    # shells.png, thickness.png, rve.png ... did not (a figure in a slide could not be told from another run's),
    # and a series' profile lost its "dotted: truth" to any title it was given
    from matplotlib.figure import Figure

    truth = synth.series((12, 16, 16), steps=2, seed=3, chunks=16, radius=(3, 0.5))
    image = synth.xct(truth, seed=3).compute()
    titles: list = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: titles.append(
        fig.get_suptitle() + " | " + " ".join(ax.get_title() for ax in fig.axes)) or real(fig, *a, **k))
    res = Pipeline(chunks=16, predict={"model": "threshold"},
                   measure={"max_diameter": 12, "rve": True, "shells": "active:cbd:3", "thickness": ["pore"]}).run(
        image, tmp_path / "s", truth=truth, progress=False)
    assert len(titles) == len(res.figures) == 9
    for title in titles:
        assert title.startswith("volume: segmentation (threshold)"), title
    assert any("dotted: truth |" in t and "pore cbd active" in t for t in titles)  # the series' profile


@pytest.mark.slow
def test_pipeline_on_an_operando_series(tmp_path):
    """A (t, z, y, x) series: each scan segmented on its own, every measurement per time step in
    evolution.csv / evolution.png and the report's "Over time" table."""

    truth = synth.series((24, 28, 32), steps=3, seed=2, chunks=16)
    image = synth.xct(truth, seed=2).compute()
    pipe = Pipeline(chunks=(12, 16, 20), predict={"model": "threshold"},
                    measure={"max_diameter": 24, "particle_labels": True})
    res = pipe.run(image, tmp_path / "s", truth=truth)
    assert res.particles.attrs["max_diameter"] == 24  # the configured max_diameter reached particles()
    labels = bigseg.open_volume(res.labels)
    assert labels.dims == ("t", "z", "y", "x") and labels.shape == truth.shape
    stored = labels.values  # read once (each `.values` of the lazy store reads it all again)
    for t in range(3):  # the median filter and the thresholds act on each scan alone
        alone = bigseg.baselines.threshold(bigseg.filters.median(image.isel(t=t), size=3)).values
        np.testing.assert_array_equal(stored[t], alone)
    ev = bigseg.measure.read_table(tmp_path / "s" / "evolution.csv").set_index("t")
    assert list(ev.index) == [0, 1, 2]
    header = (tmp_path / "s" / "evolution.csv").read_text().splitlines()[0].split(",")  # units said in the file
    assert f"specific_area_pore_cbd [{labels.attrs['unit']}^-1]" in header and "fraction_pore" in header
    assert ev.attrs["units"]["specific_area_pore_cbd"] == f"{labels.attrs['unit']}^-1"
    for t in range(3):
        np.testing.assert_allclose(ev.loc[t, ["fraction_pore", "fraction_cbd", "fraction_active"]].to_numpy(float),
                                   np.bincount(stored[t].ravel(), minlength=3) / stored[t].size)
        counts = res.particles[res.particles.t == t]
        assert ev.loc[t, "particles"] == len(counts)
    # labels/particles: the instance labels, valued by track (the same particle keeps its value)
    ids = bigseg.open_volume(Path(res.labels).parent / "particles").values
    assert ids.shape == truth.shape and "phases" not in bigseg.open_volume(Path(res.labels).parent / "particles").attrs
    for t in range(3):
        one = res.particles[res.particles.t == t]
        np.testing.assert_array_equal(np.bincount(ids[t].ravel(), minlength=one.track.max() + 1)[one.track],
                                      one.voxels)
    assert "iou_cbd" in ev and "cbd_to_pore" in ev and str(tmp_path / "s" / "evolution.png") in res.figures
    assert str(tmp_path / "s" / "slices_over_time.png") in res.figures
    page = (tmp_path / "s" / "report.html").read_text()
    assert "Over time" in page and "last time step, t = 2" in page and "<td>scans (t)</td><td>3</td>" in page
    # info counts the last step's particles, as the report and the fractions (it summed every step's)
    summary = bigseg.report.run_summary(tmp_path / "s")
    assert summary["particles"] == int((res.particles.t == 2).sum()) and summary["particle_rows"] == len(res.particles)
    # the scans as separate files: ingested into one series, the same labels
    scans = []
    for t in range(3):
        np.save(tmp_path / f"scan{t}.npy", image.values[t])
        scans.append(tmp_path / f"scan{t}.npy")
    res2 = Pipeline(chunks=(12, 16, 20), predict={"model": "threshold"}, measure={"particles": False}).run(
        scans, tmp_path / "files")
    np.testing.assert_array_equal(bigseg.open_volume(res2.labels).values, stored)
    assert json.loads((tmp_path / "files" / "run.json").read_text())["source"] == [str(p) for p in scans]
    assert "<h1>bigseg report: 3 scans, scan0.npy … scan2.npy</h1>" in (tmp_path / "files" / "report.html").read_text()


@pytest.mark.slow
def test_pipeline_time_window_on_a_series(tmp_path, scan, bigseg_cli):
    """predict.temporal: each scan's probabilities staged on disk, averaged over the window, the
    scratch gone after; the labels are those of segment(temporal=) on the filtered scans; a
    changed window redoes the segmentation; a single scan and watch refuse it by name."""
    from bigseg.errors import ConfigError
    from bigseg.infer import segment
    from bigseg.report import run_summary

    truth = synth.series((24, 28, 32), steps=3, seed=2, chunks=16)
    image = synth.xct(truth, seed=2).compute()
    pipe = Pipeline(chunks=(12, 16, 20), predict={"temporal": 1}, measure={"particles": False})
    (tmp_path / "s" / ".temporal-0badc0de.zarr").mkdir(parents=True)  # left by a killed run
    res = pipe.run(image, tmp_path / "s", truth=truth)
    labels = bigseg.open_volume(res.labels).values
    want = segment(bigseg.filters.median(image, size=3), "default", temporal=1).labels.values
    assert (labels == want).mean() > 0.995  # float16 on disk between the passes
    assert not [p for p in (tmp_path / "s").rglob(".temporal-*")]
    assert run_summary(tmp_path / "s")["temporal"] == 1
    info = bigseg_cli("info", tmp_path / "s")
    assert "time window" in info.stdout
    assert "time window" in (tmp_path / "s" / "report.html").read_text()
    res0 = Pipeline(chunks=(12, 16, 20), measure={"particles": False}).run(image, tmp_path / "s", truth=truth)
    assert (bigseg.open_volume(res0.labels).values != labels).any()  # redone, each scan alone
    np.save(tmp_path / "one.npy", scan[1].values)
    for single in (scan[1], tmp_path / "one.npy"):  # refused before any work: nothing written
        with pytest.raises(ConfigError, match="`predict.temporal` 0 for a single scan"):
            pipe.run(single, tmp_path / "one")
        assert not (tmp_path / "one").exists()
    (tmp_path / "inbox").mkdir()
    with pytest.raises(ConfigError, match="`predict.temporal` 0 for watch"):
        pipe.watch(tmp_path / "inbox", tmp_path / "w", once=True)


@pytest.mark.slow
def test_pipeline_stores_the_probabilities_when_asked(tmp_path, scan):
    """predict.probabilities: the probabilities (float16, phase names) beside the labels, as
    `bigseg segment --probabilities` stores them, the labels their argmax; a time window
    stores the averaged ones; a classical segmenter with it is refused before any work."""
    truth, image = scan
    res = Pipeline(chunks=(16, 20, 24), predict={"probabilities": True}, measure={"particles": False}).run(
        image, tmp_path / "p")
    prob = bigseg.open_volume(tmp_path / "p" / "image.ome.zarr" / "labels" / "segmentation_probabilities")
    labels = bigseg.open_volume(res.labels).values
    assert prob.dtype == np.float16 and prob.shape == (3, *image.shape)
    assert prob.attrs["probabilities_of"] == "segmentation"
    np.testing.assert_allclose(prob.values.astype(np.float32).sum(0), 1, atol=3e-3)
    assert (prob.values.argmax(0) == labels).mean() > 0.999  # float16 ties aside
    series = synth.xct(synth.series((16, 20, 24), steps=2, seed=4, chunks=16), seed=4).compute()
    res = Pipeline(chunks=(8, 20, 24), predict={"probabilities": True, "temporal": 1},
                   measure={"particles": False}).run(series, tmp_path / "s")
    prob = bigseg.open_volume(tmp_path / "s" / "image.ome.zarr" / "labels" / "segmentation_probabilities")
    assert prob.shape == (2, 3, *series.shape[1:])
    assert (prob.values.argmax(1) == bigseg.open_volume(res.labels).values).mean() > 0.999
    with pytest.raises(ConfigError, match=r"`predict.probabilities` false with predict.model 'threshold'"):
        Pipeline(predict={"model": "threshold", "probabilities": True})


@pytest.mark.slow
def test_pipeline_aligns_a_drifting_series(tmp_path):
    """filters.align: true: the scans are moved onto the first before segmentation; the truth,
    given on the raw grid, moves with them, so the scores measure the segmentation, not the drift."""
    from scipy import ndimage as ndi

    truth = synth.electrode((28, 36, 40), seed=5, chunks=40).values
    image = synth.xct(truth, seed=5).values
    drift = [(0, 0, 0), (2, -1, 3), (-1, 2, 1)]  # whole voxels: the moved truth stays exact
    scans = np.stack([ndi.shift(image, d, order=0, mode="nearest") for d in drift])
    truths = np.stack([ndi.shift(truth, d, order=0, mode="nearest") for d in drift])
    pipe = Pipeline(chunks=(14, 18, 20), filters={"align": True}, predict={"model": "threshold"},
                    measure={"particles": False})
    res = pipe.run(scans, tmp_path / "a", truth=bigseg.io.make_volume(truths, phases=["pore", "cbd", "active"]))
    record = json.loads((tmp_path / "a" / "alignment.json").read_text())
    np.testing.assert_allclose(record["shifts"], -np.asarray(drift, float), atol=0.15)
    np.testing.assert_allclose(record["drift"], drift, atol=0.15)  # the drift too, said which is which
    assert "`drift` its offset" in record["meaning"]
    labels = bigseg.open_volume(res.labels)
    assert labels.shape == (3, 28 - 2 - 1, 36 - 2 - 1, 40 - 3)  # the region every scan covers
    assert (tmp_path / "a" / "raw.ome.zarr").exists() and "alignment_shifts" in json.loads(
        (tmp_path / "a" / "run.json").read_text())
    iou = res.metrics["iou"].values  # every step scored against its own (moved) truth: alike
    assert np.ptp(iou, axis=0).max() < 0.05 and iou[:, 2].min() > 0.8  # active; multi-Otsu is poor on CBD
    with pytest.raises(bigseg.BigsegError, match="series"):
        pipe.run(image, tmp_path / "b")


@pytest.mark.slow
def test_pipeline_runs_on_a_given_client(tmp_path, scan):
    from distributed import Client, get_task_stream

    truth, image = scan
    pipe = Pipeline(chunks=24, predict={"model": "threshold"})
    with Client(processes=False, n_workers=1, threads_per_worker=2, memory_limit="3GiB",
                dashboard_address=None) as client:
        with get_task_stream(client) as ts:
            res = pipe.run(image, tmp_path / "c", client=client, truth=truth)
        address = client.scheduler.address
    assert len(ts.data) > 0  # the work went through the client's scheduler
    ref = pipe.run(image, tmp_path / "t", truth=truth)
    np.testing.assert_array_equal(bigseg.open_volume(res.labels).values, bigseg.open_volume(ref.labels).values)
    # run.json says where each ran (its configuration's `cluster` is only what was asked)
    assert json.loads((tmp_path / "c" / "run.json").read_text())["computed_on"] == {
        "scheduler": address, "workers": 1, "threads": 2, "memory_limit_per_worker": 3 * 2**30, "cluster": "LocalCluster"}
    assert json.loads((tmp_path / "t" / "run.json").read_text())["computed_on"]["scheduler"] == "threads in this process"
    with pytest.raises(bigseg.BigsegError, match="`client`"):
        pipe.run(image, tmp_path / "x", client=42)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_cli_writes_a_volume_info_describes(tmp_path, bigseg_cli):
    out = bigseg_cli("demo", "--out", tmp_path / "demo", "--size", "48", "--chunks", "24")
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    image = summary["runs"]["default"]["image"]
    info = bigseg_cli("info", image)
    assert "48 x 48 x 48" in info.stdout and "segmentation" in info.stdout
    for run in summary["runs"].values():
        assert abs(sum(run["volume_fraction"].values()) - 1) < 1e-6
        assert run["particles"] > 0 and Path(run["report"]).exists()
        assert set(run["percolating"]) == set(summary["truth_percolating"])
    assert all(0 < v <= 1 for v in summary["truth_percolating"].values())
    assert "IoU" in out.stdout and "report.html" in out.stdout and "percolating" in out.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_series_demo_cli(tmp_path, bigseg_cli):
    # one worker process: still a LocalCluster the command starts and closes, one torch import and model load fewer
    out = bigseg_cli("demo", "--steps", "2", "--size", "40", "--chunks", "20", "--out", tmp_path / "d", "--no-progress",
                     "--cluster", "local", "--workers", "1")
    assert "%|" not in out.stderr and "[2/2] pipeline" in out.stderr  # the stage lines stay, no bars
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert json.loads((Path(summary["run"]) / "run.json").read_text())["computed_on"]["workers"] == 1  # (was ignored)
    counts = next(line for line in out.stdout.splitlines() if line.strip().startswith("particles_continued")).split()
    assert counts[1] == "—" and counts[2].isdigit()  # counts as counts (were 17.000), none for the first scan
    # among how many (the continued count all particles, touching the border too: not only those inside)
    every = next(line for line in out.stdout.splitlines() if line.strip().startswith("particles ")).split()
    assert int(every[2]) >= int(counts[2])
    np.testing.assert_allclose(summary["drift_found"], summary["true_drift"], atol=0.3)  # one sign, both said as drift
    assert "particles_continued" in out.stdout and "drift found" in out.stdout
    assert Path(summary["report"]).exists() and Path(summary["evolution"]).exists()
    assert bigseg.open_volume(Path(summary["run"]) / "image.ome.zarr" / "labels" / "particles").dims[0] == "t"
    assert len(summary["changed_per_step"]) == 1 and 0 < summary["true_changed_per_step"][0] < 1
    assert "voxels changing phase per step" in out.stdout
    assert "`--steps`" in bigseg_cli("demo", "--steps", "9", "--out", tmp_path / "e", check=False).stderr
    bad = bigseg_cli("demo", "--temporal", "1", "--out", tmp_path / "f", check=False)
    assert bad.returncode == 2 and "`--temporal` only with --steps" in bad.stderr and not (tmp_path / "f").exists()


def test_a_truth_crop_or_dest_that_cannot_work_is_refused_before_anything_is_written(tmp_path):
    from bigseg.errors import InputError

    src = tmp_path / "scan.npy"
    np.save(src, np.zeros((20, 24, 28), np.float32))
    pipe = Pipeline(predict={"model": "threshold"}, crop="2:18,:,4:24")
    with pytest.raises(InputError, match=r"`truth` to have the source's shape \(16, 24, 20\) \(or \(20, 24, 28\)"):
        pipe.run(str(src), tmp_path / "a", truth=np.zeros((16, 24, 28), np.uint8))
    with pytest.raises(InputError, match="`truth` to hold integer labels.*float32"):  # the grey image by mistake
        pipe.run(str(src), tmp_path / "a", truth=np.zeros((16, 24, 20), np.float32))
    with pytest.raises(InputError, match=r"`truth` to be a label array, e.g. bigseg.open_volume.*Got the path '.*ref'"):
        pipe.run(str(src), tmp_path / "a", truth=tmp_path / "ref")  # (was "dtype <U…: a grey image?")
    stray = np.zeros((16, 24, 20), np.uint8)
    stray[0, 0, 0] = 7  # found only once the scan was segmented (hours on a full one)
    with pytest.raises(InputError, match=r"`truth` to hold values 0..2 or 255 \(unlabelled\).*\(1 distinct: 7\)"):
        pipe.run(str(src), tmp_path / "a", truth=stray, progress=False)
    with pytest.raises(InputError, match="`crop`"):
        Pipeline(crop="0:40,:,:").run(str(src), tmp_path / "b")
    (tmp_path / "c").write_text("")
    with pytest.raises(InputError, match="`dest` to be a folder"):
        pipe.run(str(src), tmp_path / "c")
    from bigseg.errors import SourceNotFoundError  # a source that is not there: no empty dest made first

    with pytest.raises(SourceNotFoundError, match="`source`.*nope.npy"):
        pipe.run(str(tmp_path / "nope.npy"), tmp_path / "d")
    with pytest.raises(SourceNotFoundError, match="`source` to be existing scans.*gone.npy"):
        pipe.run([str(src), str(tmp_path / "gone.npy")], tmp_path / "e")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "scan.npy"]
    pipe = Pipeline(predict={"model": "threshold"}, measure={"particles": False})
    (tmp_path / "slices").mkdir()  # a folder of other data (the scan's slices, say): refused, left as it was
    (tmp_path / "slices" / "s_0000.tif").write_text("")
    for call in (lambda: pipe.run(str(src), tmp_path / "slices"),
                 lambda: pipe.watch(tmp_path, tmp_path / "slices", once=True)):
        with pytest.raises(InputError, match=r"`(dest|out)` to be a new or empty folder, or of an earlier (run|watch)"
                                             r"\. Got .*slices', which holds other data \(1 entries, such as 's_0000.tif'"):
            call()
        assert [p.name for p in (tmp_path / "slices").iterdir()] == ["s_0000.tif"]
    (tmp_path / "w" / "scan1" / ".image.ome.zarr.partial-x").mkdir(parents=True)  # a watch stopped in its 1st scan
    (tmp_path / "w" / ".DS_Store").write_text("")  # and a file browser's file: neither is other data
    _check_folder = __import__("bigseg.pipeline", fromlist=["_check_folder"])._check_folder
    _check_folder(tmp_path / "w", "out", ("watch.json",), "of an earlier watch", runs_inside=True)
    _check_folder(tmp_path / "w" / "scan1", "dest", ("image.ome.zarr", ".image.ome.zarr."), "of an earlier run")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "Thumbs.db").write_text("")
    np.save(tmp_path / "grey.npy", np.random.default_rng(0).random((8, 9, 10)).astype(np.float32))
    pipe.run(str(tmp_path / "grey.npy"), tmp_path / "junk", progress=False)  # only a file browser's file: taken
    assert (tmp_path / "junk" / "run.json").exists()
    with pytest.raises(InputError, match="`cluster`"):  # a cluster that cannot start: no empty dest left
        pipe.run(str(src), tmp_path / "f", client="tpc://127.0.0.1:8786")
    assert not (tmp_path / "f").exists()
    with pytest.raises(InputError, match="`out` to be a folder"):  # was FileExistsError's traceback
        pipe.watch(tmp_path / "slices", tmp_path / "c", once=True)


def test_a_model_or_measurement_that_cannot_work_is_refused_before_anything_is_written(tmp_path):
    from bigseg.errors import ConfigError, InputError

    src = tmp_path / "scan.npy"
    np.save(src, np.zeros((20, 24, 28), np.float32))
    for model in ("default", "threshold"):
        with pytest.raises(ConfigError, match=r"`measure.phase` to name a phase of the model '\w+': one of "
                                              r"\['pore', 'cbd', 'active'\]. Got 'graphite'"):
            Pipeline(predict={"model": model}, measure={"phase": "graphite"}).run(str(src), tmp_path / "a")
    with pytest.raises(ConfigError, match="`measure.shells`.*Got 'binder'"):
        Pipeline(measure={"shells": "active:binder:5"}).run(str(src), tmp_path / "a")
    notes = tmp_path / "notes.pt"
    notes.write_text("not a model")
    with pytest.raises(ConfigError, match=r"`predict.model` to be a bigseg checkpoint. Got '.*notes.pt'"):
        Pipeline(predict={"model": str(notes)}).run(str(src), tmp_path / "a")
    Pipeline(predict={"model": "threshold"}, measure={"phase": "graphite", "particles": False})  # not measured: fine
    flat = tmp_path / "slice.npy"
    np.save(flat, np.zeros((24, 28), np.float32))
    with pytest.raises(InputError, match=r"`source` to be a \(z, y, x\) volume.*Got shape \(24, 28\)"):
        Pipeline(predict={"model": "threshold"}).run(str(flat), tmp_path / "a")
    with pytest.raises(InputError, match="`source`"):
        Pipeline(predict={"model": "threshold"}).run(np.zeros((24, 28), np.float32), tmp_path / "a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pt", "scan.npy", "slice.npy"]


def test_progress_false_draws_no_bars(tmp_path, capfd):
    img = np.random.default_rng(2).random((10, 12, 14)).astype(np.float32)
    Pipeline(predict={"model": "threshold"}, measure={"particles": False}).run(img, tmp_path / "q", progress=False)
    assert "it/s" not in capfd.readouterr().err
    Pipeline(predict={"model": "threshold"}, measure={"particles": False}).run(img, tmp_path / "p", resume=False)
    assert "it/s" in capfd.readouterr().err  # (the default: bars on stderr)


def test_the_configuration_sizes_the_cluster_it_starts(tmp_path, monkeypatch):
    """n_workers, threads_per_worker, memory_limit and the slurm section reach the cluster
    (were: only the cluster's name did)."""
    import distributed

    from bigseg.runtime import _cluster

    seen: dict = {}

    def stop(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("cluster asked for")

    monkeypatch.setattr(distributed, "LocalCluster", stop)
    monkeypatch.setattr(_cluster, "slurm_cluster", stop)
    img = np.zeros((8, 10, 12), np.float32)
    pipe = Pipeline(predict={"model": "threshold"}, n_workers=1, threads_per_worker=2, memory_limit="3GiB")
    with pytest.raises(RuntimeError, match="cluster asked for"):
        pipe.run(img, tmp_path / "a", client="local")
    assert (seen["n_workers"], seen["threads_per_worker"], seen["memory_limit"]) == (1, 2, "3GiB")
    seen.clear()  # too little memory per worker: refused before the cluster or the run folder
    pipe = Pipeline(predict={"model": "threshold"}, n_workers=1, memory_limit="200MiB")
    with pytest.raises(InputError, match=r"`memory_limit` to be at least 1.00 GiB per worker.*Got '200MiB'"):
        pipe.run(img, tmp_path / "small", client="local")
    assert not seen and not (tmp_path / "small").exists()
    pipe = Pipeline(predict={"model": "threshold"}, n_workers=3,
                    slurm={"queue": "gpu", "cores": 4, "job_script_prologue": ["module load cuda"]})
    with pytest.raises(RuntimeError, match="cluster asked for"):
        pipe.run(img, tmp_path / "b", client="slurm")
    assert seen == {"n_workers": 3, "queue": "gpu", "cores": 4,  # the rest from deploy/slurm.yaml
                    "job_script_prologue": ["module load cuda"]}  # a site setting (was an unknown key)
    seen.clear()  # a value set that equals the built-in one is set all the same (it was dropped for the file's)
    pipe = Pipeline(predict={"model": "threshold"}, slurm={"memory": "32GiB", "jobs": 1, "cores": 8, "processes": 1})
    with pytest.raises(RuntimeError, match="cluster asked for"):
        pipe.run(img, tmp_path / "c", client="slurm")
    assert seen == {"n_workers": None, "memory": "32GiB", "jobs": 1, "cores": 8, "processes": 1}
    seen.clear()  # a setting for another kind of cluster is said, not silently dropped
    pipe = Pipeline(predict={"model": "threshold"}, memory_limit="8GiB")
    with pytest.raises(RuntimeError, match="cluster asked for"), \
            pytest.warns(UserWarning, match=r"memory_limit='8GiB' not used: a SLURM job's memory is `slurm.memory`"):
        pipe.run(img, tmp_path / "d", client="slurm")
    with pytest.warns(UserWarning, match=r"memory_limit='8GiB' not used: the run computes on the current scheduler"), \
            pytest.raises(InputError, match="distinct grey values"):  # (a blank image: the run itself stops)
        pipe.run(img, tmp_path / "e", client="threads")


def test_the_command_line_memory_limit_sizes_the_local_cluster(tmp_path):
    """`bigseg run --memory-limit` (was: none; only a --config file's memory_limit)."""
    import argparse

    from bigseg.cli._common import pipeline_config

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("cluster: local\nmemory_limit: 2GiB\n")
    args = argparse.Namespace(config=str(cfg_file), model=None, cluster=None, workers=None, memory_limit="6GiB",
                              fov=None, fov_margin=None)
    cfg, cluster = pipeline_config(args)
    assert (cfg.memory_limit, cluster) == ("6GiB", "local")
    args.memory_limit = None
    assert pipeline_config(args)[0].memory_limit == "2GiB"


def test_a_series_times_and_their_unit_reach_the_report(tmp_path, monkeypatch):
    # scans 30 min apart: report.html said "at t = 0, 30, 60" and its "Over time" table "t", no unit
    truth = synth.series((12, 16, 16), steps=3, seed=3, chunks=16, radius=(3, 0.5))
    image = synth.xct(truth, seed=3).compute().assign_coords(t=("t", [0.0, 30.0, 60.0], {"units": "min"}))
    import bigseg.report

    titles: list = []
    real = bigseg.report.rve_figure
    monkeypatch.setattr(bigseg.report, "rve_figure", lambda *a, **k: titles.append(k.get("title")) or real(*a, **k))
    res = Pipeline(chunks=16, predict={"model": "threshold"}, measure={"max_diameter": 12, "rve": True}).run(
        image, tmp_path / "s", progress=False)
    assert titles == ["volume: segmentation (threshold)\nthe last scan (t = 60 min)"]  # the step it measured (was: none said)
    assert bigseg.open_volume(res.labels).t.attrs["units"] == "min"
    page = (tmp_path / "s" / "report.html").read_text()
    assert "at t = 0, 30, 60 min" in page and "<th>t [min]</th>" in page and "t = 60 min)" in page


@pytest.mark.slow
def test_a_truth_naming_other_phases_is_refused_before_the_segmentation(tmp_path):
    """The scores match phases by name: a truth naming others would fail after the whole run."""
    truth = synth.electrode((12, 16, 16), seed=1).compute()
    image = synth.xct(truth, seed=1).compute()
    other = truth.copy()
    other.attrs["phases"] = ["void", "binder", "nmc"]
    with pytest.raises(InputError, match=r"`truth` to name the phases the segmentation will have, \['pore', 'cbd', "
                                         r"'active'\].*Got \['void', 'binder', 'nmc'\]"):
        Pipeline(predict={"model": "threshold"}).run(image, tmp_path / "r", truth=other, progress=False)
    assert not (tmp_path / "r").exists()
    with pytest.raises(InputError, match=r"`truth` to name the phases.*Got \['background', 'foreground'\]"):
        Pipeline(predict={"model": "threshold"}).run(image, tmp_path / "m", truth=truth.values == 2, progress=False)
    assert not (tmp_path / "m").exists()  # a mask: refused before the run too (was: after it, by the scores)
    flipped = truth.copy(data=(2 - truth.values).astype(truth.dtype))  # the same phases, stored the other way round
    flipped.attrs["phases"] = ["active", "cbd", "pore"]
    res = Pipeline(predict={"model": "threshold"}, measure={"particles": False}).run(
        image, tmp_path / "f", truth=flipped, progress=False)
    straight = Pipeline(predict={"model": "threshold"}, measure={"particles": False}).run(
        image, tmp_path / "s", truth=truth, progress=False)
    np.testing.assert_array_equal(res.metrics.iou.values, straight.metrics.iou.values)


def test_a_runs_ingest_leaves_another_threads_labels_replaced_warning_alone(tmp_path, monkeypatch):
    """A run replacing its image quiets the LabelsReplacedWarning of its own writes only: a
    warnings filter (the whole process's) silenced a GUI thread's save over a labelled image for
    as long as the run's ingest took."""
    import threading
    import warnings

    from bigseg.errors import LabelsReplacedWarning

    image = tmp_path / "scan.ome.zarr"
    bigseg.save_volume(np.zeros((4, 5, 6), np.float32), image, progress=False)
    bigseg.save_labels(np.zeros((4, 5, 6), np.uint8), image, phases=["pore"], progress=False)
    ingesting, done = threading.Event(), threading.Event()

    def ingest(self, *args, **kwargs):  # the run paused in its ingest, then stopped
        ingesting.set()
        done.wait(30)
        raise RuntimeError("stopped here")

    monkeypatch.setattr(Pipeline, "_ingest", ingest)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            Pipeline(predict={"model": "threshold"}).run(np.zeros((8, 8, 8), np.float32), tmp_path / "run",
                                                         progress=False)
        except RuntimeError as exc:
            failed.append(exc)

    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always", LabelsReplacedWarning)
        thread = threading.Thread(target=run)
        thread.start()
        try:
            assert ingesting.wait(30)
            bigseg.save_volume(np.ones((4, 5, 6), np.float32), image, overwrite=True, progress=False)
        finally:
            done.set()
            thread.join(30)
    assert [type(w.message) for w in got] == [LabelsReplacedWarning]
    assert len(failed) == 1


@pytest.mark.parametrize("kw, match", [
    (dict(resume="no"), r"`resume` to be True or False. Got 'no'"),
    (dict(resume=None), r"`resume` to be True or False. Got None"),
    (dict(source=[]), r"`source` to be a volume, a path or a list of scans. Got \[\]"),
], ids=["resume-text", "resume-none", "source-empty-list"])
def test_run_argument_sweep_refuses_by_name(tmp_path, kw, match):
    """From the argument sweep: `run(resume="no")` resumed (truthy text) and `run([])` was an
    IndexError from inside; now an InputError naming the argument, and no output folder made."""
    args = {"source": np.zeros((4, 8, 8), np.float32), "resume": True, **kw}
    with pytest.raises(InputError, match=match):
        Pipeline(predict={"model": "threshold"}).run(args["source"], tmp_path / "run", resume=args["resume"], progress=False)
    assert not (tmp_path / "run").exists()


def test_metrics_json_is_strict_json_and_reads_back_with_its_nans(tmp_path):
    """metrics.json held NaN and Infinity (a tortuosity of ∞, an RVE size not reached): no JSON to
    jq, JavaScript or a JSON schema; a boolean attribute passed the netCDF cleaning and h5netcdf
    refused it (the whole run failing at its end); a coordinate's attributes were not cleaned."""
    from bigseg.pipeline import _write_metrics
    from bigseg.report import read_metrics

    ds = xr.Dataset({"tortuosity": ("subvolume", [2.0, np.inf, np.nan])},
                    coords={"subvolume": [0, 1, 2], "z0": ("subvolume", [0, 8, 16], {"bounds": [0, 24]})},
                    attrs={"flag": True})
    _write_metrics(ds, tmp_path)
    text = (tmp_path / "metrics.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    nc = xr.open_dataset(tmp_path / "metrics.nc", engine="h5netcdf")
    np.testing.assert_array_equal(nc.tortuosity.values, [2.0, np.inf, np.nan])  # the netCDF keeps ∞
    assert nc.attrs["flag"] == "true" and nc.z0.attrs["bounds"] == "[0, 24]"
    nc.close()
    (tmp_path / "metrics.nc").unlink()
    back = read_metrics(tmp_path)  # from metrics.json: null reads as NaN, a float variable again
    assert back.tortuosity.dtype == np.float64
    np.testing.assert_array_equal(back.tortuosity.values, [2.0, np.nan, np.nan])


def test_read_metrics_reads_a_metrics_file_of_measure_or_to_netcdf_as_a_run_s(tmp_path):
    """`read_metrics` (`bigseg report`, the watch's evolution) took a netCDF3 metrics.nc, as
    `summary(...).to_netcdf(engine="scipy")` writes it, for one cut short ("a run stopped while
    writing it?"), and gave `bigseg measure --netcdf`'s voxel_size and shape as arrays where a
    run's read as lists (its report showed the shape as [12 14 16])."""
    from bigseg import measure
    from bigseg.pipeline import _write_metrics
    from bigseg.report import read_metrics, write_report

    lab = synth.electrode((12, 14, 16), seed=1, voxel_size=50, unit="nm", chunks=8)
    ds = measure.summary(lab, profile="z")
    (tmp_path / "run").mkdir()
    _write_metrics(ds, tmp_path / "run")
    want = read_metrics(tmp_path / "run")
    assert want.attrs["shape"] == [12, 14, 16]
    for engine in ("scipy", "h5netcdf"):  # to_netcdf's netCDF3; `measure --netcdf`'s netCDF4
        folder = tmp_path / engine
        folder.mkdir()
        ds.to_netcdf(folder / "metrics.nc", engine=engine)
        got = read_metrics(folder)
        for name in ("voxel_size", "shape"):
            assert got.attrs[name] == want.attrs[name] and got.volume_fraction.attrs[name] == want.attrs[name], engine
        xr.testing.assert_allclose(got, want)
        assert "[12, 14, 16]" in write_report(folder).read_text(), engine
    # a run's metrics.nc opened as any netCDF: its voxel size and shape numbers, as measure --netcdf
    # writes them (were JSON text: measure.evolution of the file failed on '[50.0, 50.0, 50.0]')
    with xr.open_dataset(tmp_path / "run" / "metrics.nc") as plain:
        np.testing.assert_array_equal(plain.attrs["voxel_size"], [50.0, 50.0, 50.0])
        np.testing.assert_array_equal(plain.attrs["shape"], [12, 14, 16])
        ev = measure.evolution(plain.load().expand_dims(t=[0]))
    assert ev["fraction_active"].iloc[0] == pytest.approx(float(ds.volume_fraction.sel(phase="active")))


def test_a_metrics_list_of_one_number_reads_back_as_a_list(tmp_path):
    """A one-scan series' ``voxels`` ([n], one count per step) read back from a run's metrics.nc as
    the bare number n (a netCDF array of one element is a scalar), where metrics.json and the
    Dataset in memory held the list."""
    from bigseg import measure
    from bigseg.pipeline import _write_metrics
    from bigseg.report import read_metrics

    lab = synth.electrode((12, 14, 16), seed=1, voxel_size=50, unit="nm", chunks=8).compute()
    ds = measure.summary(lab.expand_dims(t=[0]))
    assert isinstance(ds.attrs["voxels"], list) and len(ds.attrs["voxels"]) == 1
    _write_metrics(ds, tmp_path)
    back = read_metrics(tmp_path)
    assert isinstance(back.attrs["voxels"], list) and back.attrs["voxels"] == ds.attrs["voxels"], back.attrs["voxels"]
    assert back.attrs["shape"] == [12, 14, 16]
    (tmp_path / "metrics.nc").unlink()  # and from metrics.json alike
    assert isinstance(read_metrics(tmp_path).attrs["voxels"], list)
