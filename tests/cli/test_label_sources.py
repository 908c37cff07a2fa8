"""A reference or annotation made in another tool (a TIFF, HDF5 or .npy label stack) is taken
where an OME-Zarr label image is: measure --truth, run --truth, segment --labels."""

from __future__ import annotations

import numpy as np
import pytest

import bigseg
from bigseg.cli import main


@pytest.fixture
def scan(tmp_path):
    truth = bigseg.synth.electrode((16, 24, 28), seed=3).compute()
    img = bigseg.save_volume(bigseg.synth.xct(truth, seed=3).compute(), tmp_path / "s.ome.zarr", voxel_size=50.0,
                             unit="nm", progress=False)
    bigseg.save_labels(truth, img, name="truth", progress=False)
    bigseg.save_labels(bigseg.baselines.threshold(bigseg.open_volume(img)), img, name="segmentation",
                       progress=False)
    return tmp_path, truth


@pytest.mark.parametrize("suffix", [".tif", ".h5", ".npy"])
def test_measure_scores_against_a_label_stack_as_against_the_label_image(scan, suffix, capsys):
    tmp_path, truth = scan
    seg = str(tmp_path / "s.ome.zarr" / "labels" / "segmentation")
    bigseg.export(bigseg.open_volume(tmp_path / "s.ome.zarr" / "labels" / "truth"), tmp_path / f"truth{suffix}",
                  progress=False)
    assert main(["measure", seg, "--truth", str(tmp_path / "s.ome.zarr" / "labels" / "truth"), "--no-progress",
                 "--csv", str(tmp_path / "a.csv")]) == 0
    assert main(["measure", seg, "--truth", str(tmp_path / f"truth{suffix}"), "--no-progress",
                 "--csv", str(tmp_path / "b.csv")]) == 0
    out = capsys.readouterr().out
    assert f"truth     {tmp_path / f'truth{suffix}'}" in out
    a, b = (tmp_path / "a.csv").read_text(), (tmp_path / "b.csv").read_text()
    assert "iou" in a and a == b


def test_open_source_keeps_an_hdf5_label_stacks_phase_names(tmp_path):
    lab = bigseg.io.make_volume(np.arange(60, dtype=np.uint8).reshape(3, 4, 5) % 2, phases=["electrolyte", "solid"],
                                voxel_size=2.0, unit="um")
    bigseg.export(lab, tmp_path / "l.h5", progress=False)
    back = bigseg.io.open_source(tmp_path / "l.h5")
    assert back.attrs["phases"] == ["electrolyte", "solid"] and back.attrs["voxel_size"] == (2.0, 2.0, 2.0)
    np.testing.assert_array_equal(back.values, lab.values)


def test_a_missing_truth_is_named_by_its_option(scan, capsys):
    tmp_path, _ = scan
    assert main(["measure", str(tmp_path / "s.ome.zarr"), "--truth", str(tmp_path / "nope.tif")]) == 2
    assert "`--truth` to be an existing label image" in capsys.readouterr().err


def test_run_takes_the_truth_label_of_an_image_or_a_tiff(scan, capsys):
    tmp_path, truth = scan
    bigseg.export(bigseg.open_volume(tmp_path / "s.ome.zarr" / "labels" / "truth"), tmp_path / "truth.tif",
                  progress=False)
    for i, ref in enumerate((tmp_path / "s.ome.zarr", tmp_path / "truth.tif")):  # an image holding "truth"; a TIFF
        assert main(["run", str(tmp_path / "s.ome.zarr"), "--out", str(tmp_path / f"run{i}"), "--model", "threshold",
                     "--truth", str(ref), "--no-progress"]) == 0
    scores = [line for line in capsys.readouterr().out.splitlines() if line.startswith("IoU")]
    assert len(scores) == 2 and scores[0] == scores[1], scores
    # the same IoU as measuring the run's labels against the truth directly
    ref = bigseg.measure.scores(truth, bigseg.open_volume(tmp_path / "run0" / "image.ome.zarr" / "labels" /
                                                           "segmentation"))
    assert f"pore {float(ref.iou.sel(phase='pore')):.3f}" in scores[0]


def test_compare_and_random_forest_take_label_stacks(scan, capsys):
    tmp_path, truth = scan
    seg = tmp_path / "s.ome.zarr" / "labels" / "segmentation"
    bigseg.export(bigseg.open_volume(seg), tmp_path / "user_a.tif", progress=False)
    assert main(["compare", str(tmp_path / "user_a.tif"), str(seg), "--truth", str(tmp_path / "s.ome.zarr"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "user_a.tif" in out and "mean over the 1 pair(s): 0.00 %" in out  # the same labels twice
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[::5] = truth.values[::5]
    np.save(tmp_path / "sparse.npy", sparse)
    assert main(["segment", str(tmp_path / "s.ome.zarr"), "--method", "random-forest", "--labels",
                 str(tmp_path / "sparse.npy"), "--name", "rf", "--no-progress"]) == 0
    assert "training labels" in capsys.readouterr().out
    assert bigseg.open_volume(tmp_path / "s.ome.zarr", label="rf").shape == truth.shape


def test_measure_particles_of_a_label_stack(scan, capsys):
    tmp_path, truth = scan
    bigseg.export(bigseg.open_volume(tmp_path / "s.ome.zarr" / "labels" / "truth"), tmp_path / "truth.tif",
                  progress=False)
    bigseg.export(bigseg.open_volume(tmp_path / "s.ome.zarr"), tmp_path / "scan.tif", progress=False)
    args = ["measure", str(tmp_path / "truth.tif"), "--particles", str(tmp_path / "p.csv"), "--no-progress"]
    assert main([*args, "--particle-labels", "ids"]) == 2  # nowhere to write them beside a TIFF
    assert "`--particle-labels` with an OME-Zarr label image" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
    assert main([*args, "--intensity", str(tmp_path / "scan.tif")]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "p.csv")
    ref = bigseg.measure.particles(truth, intensity=bigseg.open_volume(tmp_path / "s.ome.zarr"))
    assert len(table) == len(ref) and np.allclose(np.sort(table.mean_intensity), np.sort(ref.mean_intensity))


@pytest.mark.slow
def test_stacks_of_a_cropped_run_are_taken_as_of_its_box(tmp_path, capsys):
    """A run with `crop` gives labels placed in the scan; a truth or segmentation stack of that
    box from another tool states no place (or voxel size): compare and measure put it in the
    box instead of warning that it lies elsewhere (a second stack of compare also takes the
    first one's voxel size, as a truth did)."""
    import warnings

    truth = bigseg.synth.electrode((20, 24, 24), seed=3, voxel_size=50, unit="nm")
    img = bigseg.synth.xct(truth, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        box = truth.isel(z=slice(2, 18), x=slice(4, 24))
        res = bigseg.Pipeline(crop="2:18,:,4:24", measure={"particles": False}).run(
            img, tmp_path / "r", truth=bigseg.io.make_volume(box.values, voxel_size=50, unit="nm"))
        whole = bigseg.Pipeline(crop="2:18,:,4:24", measure={"particles": False}).run(img, tmp_path / "w", truth=truth)
    np.testing.assert_array_equal(res.metrics.iou.values, whole.metrics.iou.values)
    np.save(tmp_path / "box.npy", box.values)
    seg = str(tmp_path / "r" / "image.ome.zarr" / "labels" / "segmentation")
    for argv in (["measure", seg, "--truth", str(tmp_path / "box.npy")],
                 ["compare", seg, str(tmp_path / "box.npy"), "--truth", str(tmp_path / "box.npy")]):
        assert main([*argv, "--no-progress"]) == 0
        err = capsys.readouterr().err
        assert "different places" not in err and "different voxel sizes" not in err, err
