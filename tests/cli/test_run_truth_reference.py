"""What a run folder says: its scores against a path found from anywhere (as run.json's
source), for the demo the generated labels, not "an array"; where it computed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import bigseg
from bigseg.cli import main


def test_a_relative_truth_stack_is_recorded_as_an_absolute_path(tmp_path, monkeypatch, capsys):
    """`bigseg run scan.npy --truth truth.npy`: run.json's source was absolute, its truth the
    relative path as typed (found from nowhere else), unlike an OME-Zarr truth's."""
    truth = bigseg.synth.electrode((12, 16, 16), radius=(3, 1), seed=2)
    np.save(tmp_path / "scan.npy", bigseg.synth.xct(truth, seed=2).values)
    np.save(tmp_path / "truth.npy", truth.values)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "scan.npy", "--out", "r", "--model", "threshold", "--truth", "truth.npy",
                 "--voxel-size", "50", "--unit", "nm", "--no-progress"]) == 0
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert Path(run["source"]).is_absolute()
    assert Path(run["truth"]).is_absolute() and Path(run["truth"]).samefile(tmp_path / "truth.npy")
    assert f"<td>reference labels (scores)</td><td>{run['truth']}</td>" in (tmp_path / "r" / "report.html").read_text()
    capsys.readouterr()
    assert main(["info", "r"]) == 0
    assert f"(against {run['truth']})" in capsys.readouterr().out


def test_the_demo_says_what_its_scores_are_against(tmp_path):
    from bigseg.demo import run_demo

    run_demo(tmp_path / "d", size=16, chunks=16, progress=False)
    for method in ("default", "threshold"):
        said = json.loads((tmp_path / "d" / method / "run.json").read_text())["truth"]
        assert said != "an array" and "exact labels" in said
        assert "an array" not in (tmp_path / "d" / method / "report.html").read_text()


def test_run_json_records_where_the_run_computed(tmp_path):
    """Without --cluster or a configuration that names one, a run computes in threads of this
    process (run.json's computed_on said so) while its recorded configuration said
    cluster 'local' (the default of a configuration file)."""
    np.save(tmp_path / "scan.npy", bigseg.synth.xct(bigseg.synth.electrode((12, 16, 16), seed=2), seed=2).values)
    assert main(["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "r"), "--model", "threshold",
                 "--no-progress"]) == 0
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["config"]["cluster"] == "threads" and run["computed_on"]["scheduler"] == "threads in this process"


def test_a_series_figures_are_titled_by_its_scans(tmp_path, monkeypatch):
    """The slices and metrics figures of a run on a list of scans were titled "volume: ..."
    where the report's heading names "2 scans, a.npy … b.npy"."""
    import bigseg.report as report

    said = {}
    real = report.metrics_figure
    monkeypatch.setattr(report, "metrics_figure", lambda *a, **k: said.update(title=k.get("title")) or real(*a, **k))
    img = bigseg.synth.xct(bigseg.synth.electrode((10, 14, 14), seed=2), seed=2).values
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", img)
    assert main(["run", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--out", str(tmp_path / "r"),
                 "--model", "threshold", "--no-progress"]) == 0
    assert said["title"] == "2 scans, a.npy … b.npy: segmentation (threshold)"
    assert "2 scans, a.npy … b.npy" in (tmp_path / "r" / "report.html").read_text()
