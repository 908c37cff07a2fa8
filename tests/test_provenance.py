"""What a result records to be reproduced and cited (reviewer / data steward): the run folder's
run.json and metrics, a generated store, a trained model; each says its bigseg version (and
commit from a checkout), the libraries' versions, the machine, the date and the model's weights
hash. Before, run.json had the version and the model's name only ("default", a path), metrics.nc
none of it, a `bigseg synth` store not its seed or physics, a checkpoint no bigseg version."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import bigseg
from bigseg._version import _git_commit, environment, version
from bigseg.cli import main


def test_environment_names_versions_commit_and_machine(tmp_path):
    env = environment()
    assert env["bigseg"] == version()
    assert {"numpy", "scipy", "scikit-image", "numba", "torch", "dask", "zarr", "xarray"} <= set(env["packages"])
    assert env["packages"]["numpy"] == np.__version__
    assert env["python"] and env["machine"]["host"] is not None and env["machine"]["cpus"]
    assert _git_commit(tmp_path) is None  # not a checkout (an installed package): no commit, no error


def test_a_run_records_date_environment_and_the_model_weights(tmp_path):
    np.save(tmp_path / "scan.npy", bigseg.synth.xct(bigseg.synth.electrode((16, 16, 16), seed=2), seed=2).values)
    (tmp_path / "c.yaml").write_text("measure: {particle_labels: true}\n")
    assert main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "r"), "--config", str(tmp_path / "c.yaml"),
                 "--no-progress"]) == 0
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    key = bigseg.models.load("default").checkpoint_key()
    assert run["model"] == "default" and run["model_key"] == key  # the weights, not only a name
    assert run["date"].endswith("Z") and run["environment"]["packages"]["torch"]
    attrs = xr.open_dataset(tmp_path / "r" / "metrics.nc").attrs  # the metrics say it too, away from run.json
    assert attrs["bigseg"] == version() and attrs["model_key"] == key
    page = (tmp_path / "r" / "report.html").read_text()
    assert key in page and f"numpy {np.__version__}" in page
    # how the model was made, kept with the run (the checkpoint may be retrained or lost): its
    # provenance, the epochs' rows (its own and its parent's) left out; the particles' labels say
    # what made them, as the segmentation's do
    made = bigseg.models.load("default").provenance
    trained = run["model_training"]
    assert trained["seed"] == made["seed"] and trained["scores"] == made["scores"] and "history" not in trained
    assert trained["parent"]["seed"] == made["parent"]["seed"] and "history" not in trained["parent"]
    assert len(json.dumps(trained)) < 8000 < len(json.dumps(made))
    import zarr

    for name in ("segmentation", "particles"):
        labels = zarr.open_group(str(tmp_path / "r" / "image.ome.zarr" / "labels" / name), mode="r")
        assert labels.attrs["bigseg"]["made_by"]["model_key"] == key, name


def test_the_metrics_name_the_scan_and_what_their_scores_are_against(tmp_path):
    # QA (report reader): metrics.nc, sent on its own, held IoU/Dice without the reference they were
    # scored against, and not which scan they measure (run.json alone said both)
    truth = bigseg.synth.electrode((16, 16, 16), seed=2)
    np.save(tmp_path / "scan.npy", bigseg.synth.xct(truth, seed=2).values)
    np.save(tmp_path / "truth.npy", truth.values)
    assert main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "r"), "--model", "threshold",
                 "--truth", str(tmp_path / "truth.npy"), "--no-progress"]) == 0
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    for attrs in (xr.open_dataset(tmp_path / "r" / "metrics.nc").attrs,
                  json.loads((tmp_path / "r" / "metrics.json").read_text())["attrs"]):
        assert attrs["source"] == run["source"] == str(tmp_path / "scan.npy")
        assert attrs["truth"] == run["truth"] == str(tmp_path / "truth.npy")


def test_a_voxel_size_the_source_does_not_state_is_said_to_be_assumed(tmp_path, capsys):
    # QA (report reader): a .npy scan run without --voxel-size got "note: ... a voxel is taken as 1 nm"
    # on the terminal only; its report said "voxel size 1 nm" as if measured, every size and area in nm
    np.save(tmp_path / "scan.npy", bigseg.synth.xct(bigseg.synth.electrode((16, 16, 16), seed=2), seed=2).values)
    for out, more in (("r", []), ("given", ["--voxel-size", "50"])):
        assert main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / out), "--model", "threshold",
                     "--no-progress", *more]) == 0
    assert json.loads((tmp_path / "r" / "run.json").read_text())["voxel_size_assumed"] is True
    assert "1 nm — assumed, not measured: the source states no voxel size" in (tmp_path / "r" / "report.html").read_text()
    capsys.readouterr()
    assert main(["info", str(tmp_path / "r")]) == 0
    assert "voxel size 1 x 1 x 1 nm  (assumed: the source states none" in capsys.readouterr().out
    assert "voxel_size_assumed" not in json.loads((tmp_path / "given" / "run.json").read_text())
    assert "assumed" not in (tmp_path / "given" / "report.html").read_text()


def test_a_generated_store_records_how_to_make_it_again(tmp_path, capsys):
    dest = tmp_path / "s.ome.zarr"
    assert main(["synth", str(dest), "--shape", "12", "--seed", "5", "--chunks", "8", "--preset", "lab-micro-ct",
                 "--snr", "2.5", "--no-progress"]) == 0
    made = bigseg.io.volume_info(str(dest), stats=False)["synth"]
    assert made["bigseg"] == version() and made["electrode"]["seed"] == 5 and made["shape"] == [12, 12, 12]
    assert made["xct"]["preset"] == "lab-micro-ct" and made["xct"]["snr"] == 2.5
    # and those settings make the same volume again
    again = bigseg.synth.xct(bigseg.synth.electrode((12, 12, 12), seed=made["electrode"]["seed"], chunks=4),
                             seed=made["xct"]["seed"], preset=made["xct"]["preset"], snr=made["xct"]["snr"])
    assert np.array_equal(again.values, bigseg.open_volume(str(dest)).values)
    capsys.readouterr()
    assert main(["info", str(dest), "--no-stats"]) == 0
    assert "generated   by bigseg" in capsys.readouterr().out


def test_a_trained_model_records_the_environment(tmp_path):
    labels = bigseg.synth.electrode((16, 24, 24), seed=1)
    image = bigseg.synth.xct(labels, seed=1)
    model = bigseg.train(image, labels, arch="unet3d", arch_kwargs={"channels": (4, 8)}, patch=(8, 16, 16), epochs=1,
                         steps_per_epoch=1, batch_size=1, progress=False)
    env = model.provenance["environment"]
    assert env["bigseg"] == version() and env["packages"]["torch"]


@pytest.mark.slow
def test_a_run_records_what_its_settings_meant_and_runs_again_from_its_record(tmp_path, capsys, monkeypatch):
    # QA (provenance audit): run.json gave `predict.model: kmeans`, `filters.unsharp: true` and a
    # voxel size of null, not k-means' seed and sample, unsharp's radius and amount, nor the voxel
    # size read from the source; `--config RUN/run.json` was refused ("Unknown configuration key
    # `source`"), so a reviewer had no documented way to run it again; metrics.nc held no settings
    # and labels/segmentation nothing of the run that wrote it
    import zarr

    image = bigseg.synth.xct(bigseg.synth.electrode((12, 16, 16), seed=3), seed=3)
    bigseg.save_volume(image.assign_attrs(voxel_size=(50.0, 50.0, 50.0)), tmp_path / "scan.ome.zarr")
    (tmp_path / "k.yaml").write_text("predict: {model: kmeans}\nfilters: {unsharp: true}\n"
                                     "measure: {particles: false, connectivity: null, profile: null}\n")
    src, first = str(tmp_path / "scan.ome.zarr"), tmp_path / "r"
    assert main(["run", src, "--out", str(first), "--config", str(tmp_path / "k.yaml"), "--no-progress"]) == 0
    run = json.loads((first / "run.json").read_text())
    assert run["parameters"]["kmeans"] == {"classes": 3, "sample": 200_000, "seed": 0}
    assert run["parameters"]["unsharp"]["radius"] == 6.0 and run["parameters"]["unsharp"]["amount"] == 0.6
    assert run["voxel_size"] == [50.0, 50.0, 50.0] and run["unit"] == "nm" and run["voxel_size_from"] == "source"
    assert run["source_stamp"][0] == src
    metrics = xr.open_dataset(first / "metrics.nc")
    assert json.loads(metrics.attrs["config"]) == run["config"] and metrics.attrs["voxel_size_from"] == "source"
    made = dict(zarr.open_group(str(first / "image.ome.zarr" / "labels" / "segmentation"), mode="r").attrs)
    assert made["bigseg"]["made_by"] == {"run": str(first), "model": "kmeans", "bigseg": version()}
    capsys.readouterr()
    assert main(["info", str(first)]) == 0
    said = capsys.readouterr().out
    assert "(read from the source)" in said and f"--config {first / 'run.json'}" in said
    monkeypatch.chdir(tmp_path)  # the run named relative to here: its record's path still from anywhere
    assert main(["info", "r"]) == 0
    assert f"--config {first / 'run.json'}" in capsys.readouterr().out
    # the record runs again, in other chunks, to the same numbers
    again = tmp_path / "again"
    monkeypatch.setenv("BIGSEG_CHUNKS", "8")
    assert main(["run", src, "--out", str(again), "--config", str(first / "run.json"), "--no-progress"]) == 0
    before, after = xr.open_dataset(first / "metrics.nc"), xr.open_dataset(again / "metrics.nc")
    assert before.equals(after)
    assert json.loads((again / "run.json").read_text())["config"] == {**run["config"], "chunks": 8}


def test_the_rerun_line_names_a_truth_file_not_an_array(tmp_path):
    # QA review: a run scored against an in-memory truth records "truth": "an array"; `bigseg info`
    # printed `... --config RUN/run.json --truth 'an array'`, a command that fails
    from bigseg.report._html import run_summary

    ds = xr.Dataset({"volume_fraction": ("phase", [0.5, 0.5])}, coords={"phase": ["pore", "active"]})
    (tmp_path / "metrics.json").write_text(json.dumps(ds.to_dict()))
    truth = tmp_path / "truth.npy"
    record = {"source": str(tmp_path / "scan.npy"), "config": {}, "environment": {}}
    for given, said in (("an array", None), (str(truth), f"--truth {truth}")):
        (tmp_path / "run.json").write_text(json.dumps({**record, "truth": given}))
        rerun = run_summary(tmp_path)["rerun"]
        assert rerun.startswith(f"bigseg run {tmp_path / 'scan.npy'} --out NEW_FOLDER --config")
        assert ("--truth" in rerun) == (said is not None) and (said is None or rerun.endswith(said))
    # where it ran is not taken from run.json (a received one could name anyone's scheduler): a kind bigseg
    # starts is said in the line, an address left out
    for cluster, said in (("slurm", " --cluster slurm"), ("threads", " --cluster threads"),
                          ("tcp://203.0.113.5:8786", ""), ("local", "")):
        (tmp_path / "run.json").write_text(json.dumps({**record, "config": {"cluster": cluster}}))
        rerun = run_summary(tmp_path)["rerun"]
        assert rerun.endswith("run.json" + said) and "203.0.113.5" not in rerun
