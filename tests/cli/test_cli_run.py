"""`bigseg run`: the whole pipeline on a scan from the command line (crop, truth, instance labels)."""

from __future__ import annotations

import numpy as np
import pytest

import bigseg
from bigseg.cli import main
from bigseg.errors import ConfigError


@pytest.mark.slow
def test_run_crops_scores_and_resumes(tmp_path, capsys):
    truth = bigseg.synth.electrode((30, 34, 38), radius=(4, 1), seed=3)
    image = bigseg.synth.xct(truth, seed=3).values
    np.save(tmp_path / "scan.npy", image)
    ref = tmp_path / "ref.ome.zarr"  # the truth on the whole source grid
    bigseg.save_volume(image, ref, progress=False)
    bigseg.save_labels(truth, ref, name="truth", progress=False)
    out = tmp_path / "run"
    args = ["run", str(tmp_path / "scan.npy"), "--out", str(out), "--model", "threshold", "--crop", "2:28,:,5:-5",
            "--voxel-size", "0.5", "--unit", "um", "--truth", str(ref / "labels" / "truth"), "--particle-labels"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "IoU: pore" in text and "particles in" in text and "report.html" in text
    vol = bigseg.open_volume(out / "image.ome.zarr")
    assert vol.shape == (26, 34, 28) and vol.attrs["voxel_size"] == (0.5, 0.5, 0.5) and vol.attrs["unit"] == "um"
    np.testing.assert_array_equal(vol.values, image[2:28, :, 5:-5])
    assert bigseg.io.origin_of(vol) == (1.0, 0.0, 2.5)  # the box's place in the scan (um)
    table = bigseg.measure.read_table(out / "particles.csv")
    assert table.attrs["units"]["centroid_z"] == "um"  # (the header: "centroid_z [um]")
    assert table.centroid_z.min() >= 1.0 and table.centroid_x.min() >= 2.5 and table.centroid_x.max() <= 16.5
    labels = bigseg.open_volume(out / "image.ome.zarr" / "labels" / "segmentation").values
    iou = bigseg.report.read_metrics(out)["iou"].sel(phase="active")
    inter = ((labels == 2) & (truth.values[2:28, :, 5:-5] == 2)).sum()
    union = ((labels == 2) | (truth.values[2:28, :, 5:-5] == 2)).sum()
    assert float(iou) == pytest.approx(inter / union)  # scored against the cropped truth
    # against what: in run.json, the report and bigseg info (it was said nowhere)
    import json

    assert json.loads((out / "run.json").read_text())["truth"] == str(ref / "labels" / "truth")
    assert f"<td>reference labels (scores)</td><td>{ref / 'labels' / 'truth'}</td>" in (out / "report.html").read_text()
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"(against {ref / 'labels' / 'truth'})" in said and "(cropped: 2:28,:,5:-5)" in said
    assert "<td>cropped from the source</td><td>2:28,:,5:-5</td>" in (out / "report.html").read_text()
    assert (out / "image.ome.zarr" / "labels" / "particles").exists() and (out / "report.html").exists()
    mtime = (out / "image.ome.zarr" / "labels" / "segmentation").stat().st_mtime_ns
    assert main(args) == 0  # resumed: the segmentation is not redone
    assert (out / "image.ome.zarr" / "labels" / "segmentation").stat().st_mtime_ns == mtime
    # another model: the segmentation is redone on the same image; another crop: everything
    image_mtime = (out / "image.ome.zarr" / "zarr.json").stat().st_mtime_ns
    assert main([a if a != "threshold" else "kmeans" for a in args]) == 0
    assert (out / "image.ome.zarr" / "labels" / "segmentation").stat().st_mtime_ns != mtime
    assert (out / "image.ome.zarr" / "zarr.json").stat().st_mtime_ns == image_mtime
    assert main([a if a != "2:28,:,5:-5" else "3:28,:,5:-5" for a in args]) == 0
    assert bigseg.open_volume(out / "image.ome.zarr").shape == (25, 34, 28)
    capsys.readouterr()
    assert main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "bad"), "--crop", "0:99,:,:"]) == 2
    assert "`--crop`" in capsys.readouterr().err and not (tmp_path / "bad" / "image.ome.zarr").exists()
    assert main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "bad2"), "--model", "nosuch.pt"]) == 2
    err = capsys.readouterr().err  # refused before any work, by the option typed (was `predict.model`)
    assert "Expected `--model` to be 'default'" in err and "Got 'nosuch.pt'" in err and not (tmp_path / "bad2").exists()
    (tmp_path / "c.yaml").write_text("predict: {model: nosuch.pt}\n")  # from a configuration: its key
    assert main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "bad2"), "--config", str(tmp_path / "c.yaml")]) == 2
    assert "Expected `predict.model` to be 'default'" in capsys.readouterr().err


@pytest.mark.slow
def test_run_says_when_voxels_are_taken_as_one_unit(tmp_path, capsys):
    """As `bigseg ingest` says it: a .npy states no voxel size, so without --voxel-size sizes and
    areas come out in voxels, labelled as the unit; with one, or from a calibrated source, nothing."""
    image = bigseg.synth.xct(bigseg.synth.electrode((12, 20, 20), seed=2), seed=2).values
    np.save(tmp_path / "scan.npy", image)
    assert main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "a"), "--model", "threshold"]) == 0
    err = capsys.readouterr().err
    assert "no voxel size" in err and "--voxel-size" in err
    assert main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "b"), "--model", "threshold",
                 "--voxel-size", "50", "--unit", "nm"]) == 0
    assert "no voxel size" not in capsys.readouterr().err
    bigseg.save_volume(image, tmp_path / "cal.ome.zarr", voxel_size=1.0, unit="um", progress=False)  # states 1 um itself
    assert main(["run", str(tmp_path / "cal.ome.zarr"), "--out", str(tmp_path / "c"), "--model", "threshold"]) == 0
    assert "no voxel size" not in capsys.readouterr().err


@pytest.mark.slow
def test_run_again_on_a_source_replaced_at_the_same_path_starts_over(tmp_path, capsys):
    # the finished stages were kept for a source that only had the same path text: the old
    # image and segmentation were reported as the new scan's
    a = bigseg.synth.xct(bigseg.synth.electrode((12, 20, 20), seed=2), seed=2).values
    b = bigseg.synth.xct(bigseg.synth.electrode((12, 20, 20), seed=9), seed=9).values
    src, out = tmp_path / "scan.npy", tmp_path / "run"
    argv = ["run", str(src), "--out", str(out), "--model", "threshold", "--voxel-size", "50", "--no-progress"]
    np.save(src, a)
    assert main(argv) == 0
    np.testing.assert_array_equal(bigseg.open_volume(out / "image.ome.zarr").values, a)
    first = bigseg.open_volume(out / "image.ome.zarr" / "labels" / "segmentation").values
    stamp = (out / "stages.json").read_text()
    assert main(argv) == 0  # unchanged: kept
    assert (out / "stages.json").read_text() == stamp
    np.save(src, b)
    assert main(argv) == 0
    np.testing.assert_array_equal(bigseg.open_volume(out / "image.ome.zarr").values, b)
    again = bigseg.open_volume(out / "image.ome.zarr" / "labels" / "segmentation").values
    assert (again != first).mean() > 0.2  # segmented anew (another electrode)
    # a truth stack that states no voxel size is on the scan's grid (it was warned about as another one)
    np.save(tmp_path / "truth.npy", bigseg.synth.electrode((12, 20, 20), seed=9).values)
    assert main([*argv[:3], str(tmp_path / "t"), *argv[4:], "--truth", str(tmp_path / "truth.npy")]) == 0
    out_text, err = capsys.readouterr()
    assert "IoU: pore" in out_text and "different voxel sizes" not in err
    assert __import__("json").loads((tmp_path / "t" / "run.json").read_text())["truth"] == str(tmp_path / "truth.npy")
    # a zarr store written anew at the same path, and a folder of slices with one slice rewritten
    zsrc = tmp_path / "scan.ome.zarr"
    bigseg.save_volume(a, zsrc, voxel_size=50, progress=False)
    zargv = ["run", str(zsrc), "--out", str(tmp_path / "z"), "--model", "threshold", "--no-progress"]
    assert main(zargv) == 0
    bigseg.save_volume(b, zsrc, voxel_size=50, overwrite=True, progress=False)
    assert main(zargv) == 0
    np.testing.assert_array_equal(bigseg.open_volume(tmp_path / "z" / "image.ome.zarr").values, b)
    from bigseg.runtime._manifest import path_stamp

    folder = tmp_path / "slices"
    folder.mkdir()
    for z in range(3):
        np.save(folder / f"s{z}.npy", a[z])
    before = path_stamp(folder)
    np.save(folder / "s1.npy", b[1] + 1)  # same name, another size
    assert path_stamp(folder) != before


def test_crop_in_the_configuration():
    assert bigseg.RunConfig.load(crop="1:5,:,:").crop == "1:5,:,:"
    with pytest.raises(ConfigError, match="`crop`"):
        bigseg.RunConfig.load(crop=5)


def test_run_inside_a_field_of_view(tmp_path, capsys):
    truth = bigseg.synth.electrode((16, 40, 44), radius=(4, 1), seed=5)
    image = bigseg.synth.xct(truth, seed=5).values
    inside = bigseg.io.fov_mask(image, "cylinder").values
    np.save(tmp_path / "rec.npy", np.where(inside, image, np.nan).astype(np.float32))  # NaN outside
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "rec.npy"), "--out", str(out), "--model", "threshold", "--fov", "auto",
                 "--fov-margin", "1"]) == 0
    capsys.readouterr()
    labels = bigseg.open_volume(out / "image.ome.zarr" / "labels" / "segmentation").values
    assert (labels[:, ~inside] == 255).all() and (labels[:, inside] == 255).any()  # the margin's rim
    assert main(["info", str(out)]) == 0
    assert "fov         auto:" in capsys.readouterr().out
    assert "field of view" in (out / "report.html").read_text()
    assert main(["run", str(tmp_path / "rec.npy"), "--out", str(tmp_path / "bad"), "--fov", "2,3"]) == 2
    assert "`--fov` to be" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_workers_size_the_cluster_run_and_watch_start(tmp_path, monkeypatch, capsys):
    import numpy as np

    import bigseg.runtime
    from bigseg.cli import main

    asked = []

    def fake_connect(cluster, **sizing):  # records what would be started, starts nothing
        asked.append((cluster, sizing["n_workers"]))
        raise KeyboardInterrupt

    monkeypatch.setattr(bigseg.runtime, "connect", fake_connect)
    np.save(tmp_path / "s.npy", np.random.default_rng(0).random((8, 12, 12), dtype=np.float32))
    (tmp_path / "inbox").mkdir()
    np.save(tmp_path / "inbox" / "s.npy", np.random.default_rng(0).random((8, 12, 12), dtype=np.float32))
    assert main(["run", str(tmp_path / "s.npy"), "--out", str(tmp_path / "r"), "--model", "threshold",
                 "--cluster", "local", "--workers", "3"]) == 130
    assert main(["watch", str(tmp_path / "inbox"), "--out", str(tmp_path / "w"), "--model", "threshold", "--once",
                 "--cluster", "local", "--workers", "5"]) == 130
    assert asked == [("local", 3), ("local", 5)]
    assert main(["run", str(tmp_path / "s.npy"), "--out", str(tmp_path / "r2"), "--workers", "3"]) == 2
    assert "`--workers` only with --cluster" in capsys.readouterr().err


def test_report_of_a_run_that_is_not_done_says_so(tmp_path, capsys):
    """A run stopped after its metrics (no run.json) got a page that looked complete: a banner
    now says it is incomplete and after which stages; a finished run's page has none."""
    truth = bigseg.synth.electrode((16, 20, 24), seed=3)
    np.save(tmp_path / "scan.npy", bigseg.synth.xct(truth, seed=3).values)
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "scan.npy"), "--out", str(out), "--model", "threshold", "--no-progress"]) == 0
    assert "Incomplete run" not in (out / "report.html").read_text()
    (out / "run.json").unlink()
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "<b>Incomplete run</b> (stopped after ingest, segment" in page and "Run it again to resume" in page


def test_a_configuration_may_run_in_this_process(tmp_path):
    """`cluster: threads`: a --config file without a cluster (every configuration started one:
    `cluster: null` is refused and `local` is the default)."""
    import json

    np.save(tmp_path / "scan.npy", bigseg.synth.xct(bigseg.synth.electrode((12, 16, 16), seed=1), seed=1).values)
    (tmp_path / "c.yaml").write_text("cluster: threads\npredict:\n  model: threshold\nmeasure:\n  particles: false\n")
    assert main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "r"), "--config", str(tmp_path / "c.yaml"),
                 "--no-progress"]) == 0
    assert json.loads((tmp_path / "r" / "run.json").read_text())["computed_on"]["scheduler"] == "threads in this process"


def test_run_on_scans_takes_their_times_and_unit(tmp_path, capsys):
    """`bigseg run A B C` made a series timed 0, 1, 2 with no unit (ingest --times first was the
    only way)."""
    img = bigseg.synth.xct(bigseg.synth.series((10, 24, 24), steps=3, seed=1), seed=1).values
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"scan_{i}.npy"))
        np.save(paths[-1], img[i])
    args = ["run", *paths, "--model", "threshold", "--no-progress", "--voxel-size", "50"]
    assert main([*args, "--out", str(tmp_path / "run"), "--times", "0,30,60", "--time-unit", "min"]) == 0
    vol = bigseg.open_volume(tmp_path / "run" / "image.ome.zarr")
    np.testing.assert_array_equal(vol.t.values, [0, 30, 60])
    assert vol.t.attrs["units"] == "min" and "t = 60 min" in (tmp_path / "run" / "report.html").read_text()
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "bad"), "--times", "0,a,60"]) == 2
    assert "Expected `--times` to be comma-separated numbers. Got '0,a,60'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="Expected `times` and `time_unit` only for paths of scans"):
        bigseg.Pipeline(predict={"model": "threshold"}, time_unit="min").run(img, tmp_path / "arr", progress=False)
    assert not (tmp_path / "bad").exists() and not (tmp_path / "arr").exists()  # refused before any work


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_run_terminated_by_sigterm_closes_the_cluster_it_started(tmp_path):
    """SIGTERM (scancel, a SLURM job's time limit) killed `bigseg run` on the spot: the cluster it
    started was never closed (SLURM jobs ran on until their timeout) and the log just stopped.
    Now the command ends as with Ctrl-C: its workers gone, a last line said, exit code 143."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    from bigseg import synth

    np.save(tmp_path / "scan.npy", synth.xct(synth.electrode((48, 48, 48), seed=1), seed=1).values)
    proc = subprocess.Popen([sys.executable, "-m", "bigseg", "run", str(tmp_path / "scan.npy"), "--out",
                             str(tmp_path / "r"), "--cluster", "local", "--workers", "1", "--no-progress"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    for line in proc.stderr:
        if "connected to local" in line:
            break
    time.sleep(2.0)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers and proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 143
    assert "terminated (SIGTERM)" in proc.stderr.read()
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, alive


def test_a_full_disk_in_a_hidden_working_folder_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    """Where no output of bigseg's says a full disk itself (e.g. the particle ids' working folder
    beside the image while measuring), the command ended in a traceback, exit 1 ("a bug to
    report"): one line now, naming the file, saying what is kept, exit 2 as other refusals."""
    import errno

    import bigseg.measure

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / ".particle-ids" / "c" / "0"))

    monkeypatch.setattr(bigseg.measure, "particles", full)
    np.save(tmp_path / "scan.npy", bigseg.synth.xct(bigseg.synth.electrode((12, 16, 16), seed=3), seed=3).values)
    assert main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "r"), "--model", "threshold",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("bigseg run: error: no room writing ") and ".particle-ids" in err
    assert "disk or quota full" in err and "the same command resumes" in err and "Traceback" not in err

    # a command that writes each output whole (no resume) says so, not "the same command resumes"
    bigseg.save_volume(bigseg.synth.electrode((8, 10, 12), seed=1), tmp_path / "lab.ome.zarr", progress=False)
    summary = bigseg.measure.summary
    monkeypatch.setattr(bigseg.measure, "summary", full)
    assert main(["measure", str(tmp_path / "lab.ome.zarr"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no room writing" in err and "nothing that looks finished was left" in err and "resumes" not in err
    monkeypatch.setattr(bigseg.measure, "summary", summary)

    def other(*args, **kwargs):  # any other OSError is no refusal of ours: it still propagates
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(bigseg.measure, "particles", other)
    with pytest.raises(OSError, match="Input/output"):
        main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "r2"), "--model", "threshold", "--no-progress"])


def test_run_again_from_a_record_says_when_the_model_has_other_weights(tmp_path, capsys):
    """`bigseg run SOURCE --config RUN/run.json` (the line `bigseg info` prints) with a checkpoint
    retrained at the recorded path ran silently with the new weights: other labels than the
    record's. It says so before any work; the same weights run again without a word."""
    import torch

    from bigseg import models

    np.save(tmp_path / "scan.npy", bigseg.synth.xct(bigseg.synth.electrode((8, 16, 16), seed=1), seed=1).values)
    ckpt = tmp_path / "model.pt"
    model = models.create("lrcsnet", patch=(16, 16))
    models.save(model, ckpt)
    (tmp_path / "c.yaml").write_text(f"cluster: threads\npredict:\n  model: {ckpt}\nfilters:\n  median: null\n"
                                     "measure:\n  particles: false\n  connectivity: null\n")
    run = ["run", str(tmp_path / "scan.npy"), "--no-progress", "--cluster", "threads"]
    assert main([*run, "--out", str(tmp_path / "a"), "--config", str(tmp_path / "c.yaml")]) == 0
    again = [*run, "--config", str(tmp_path / "a" / "run.json")]
    capsys.readouterr()
    assert main([*again, "--out", str(tmp_path / "b")]) == 0
    assert "weights" not in capsys.readouterr().err
    with torch.no_grad():
        for w in model.parameters():
            w.add_(torch.randn_like(w, generator=torch.Generator().manual_seed(0)))
    models.save(model, ckpt, overwrite=True)
    assert main([*again, "--out", str(tmp_path / "c")]) == 0
    assert "not the bigseg:" in capsys.readouterr().err  # (and the labels differ: pore 1.000 -> 0.781 here)


def test_run_measures_the_particles_of_the_phase_named(tmp_path, capsys):
    """A model of other phases (pore / solid) was refused by `measure.phase` (default active) with no
    option to name another: only a YAML configuration could."""
    import json

    truth = bigseg.synth.electrode((16, 20, 20), radius=(3, 1), seed=2)
    np.save(tmp_path / "scan.npy", bigseg.synth.xct(truth, seed=2).values)
    base = ["run", str(tmp_path / "scan.npy"), "--model", "threshold", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a"), "--particle-phase", "solid"]) == 2
    err = capsys.readouterr().err
    assert "`--particle-phase` to name a phase of the model 'threshold'" in err and "Got 'solid'" in err
    assert not (tmp_path / "a").exists()  # before any work
    assert main([*base, "--out", str(tmp_path / "b"), "--particle-phase", "cbd", "--particle-labels"]) == 0
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["config"]["measure"]["phase"] == "cbd" and run["config"]["measure"]["particle_labels"] is True
    table = bigseg.measure.read_table(tmp_path / "b" / "particles.csv")
    assert "contact_active" in table and "contact_cbd" not in table  # particles of cbd: their contacts with the others
