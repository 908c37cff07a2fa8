"""Annotations drawn in another tool (napari, ilastik, Fiji) are saved as a TIFF or .npy that
states no voxel size and no place: `bigseg train` and `bigseg segment --method random-forest
--labels` take such a stack as of the image's grid, as `measure --truth` and `compare` do,
rather than warning that it has "different voxel sizes" (1 nm against the scan's 50 nm) or lies
at a "different place" of the scan (the image a crop)."""

from __future__ import annotations

import numpy as np
import pytest

import bigseg
from bigseg.cli import main


@pytest.fixture
def annotated(tmp_path):
    truth = bigseg.synth.electrode((16, 24, 28), seed=3).compute()
    img = bigseg.io.make_volume(bigseg.synth.xct(truth, seed=3).values, voxel_size=50, unit="nm",
                                origin=(100, 0, 200))  # a box cut from a scan, 50 nm voxels
    bigseg.save_volume(img, tmp_path / "s.ome.zarr", progress=False)
    ann = np.zeros(truth.shape, np.uint8)  # napari: 0 = not annotated, phases from 1
    ann[::4] = truth.values[::4] + 1
    np.save(tmp_path / "ann.npy", ann)
    return tmp_path


def _no_grid_warning(err: str) -> None:
    assert "different voxel sizes" not in err and "different places" not in err, err


def test_random_forest_takes_an_uncalibrated_stack_as_of_the_image(annotated, capsys):
    assert main(["segment", str(annotated / "s.ome.zarr"), "--method", "random-forest", "--labels",
                 str(annotated / "ann.npy"), "--unlabelled", "0", "--name", "rf", "--no-progress"]) == 0
    _no_grid_warning(capsys.readouterr().err)


@pytest.mark.slow
def test_train_takes_an_uncalibrated_stack_as_of_the_image(annotated, capsys):
    assert main(["train", str(annotated / "s.ome.zarr"), str(annotated / "ann.npy"), "--unlabelled", "0",
                 "-o", str(annotated / "m.pt"), "--arch", "unet3d", "--patch", "16", "--epochs", "1",
                 "--steps-per-epoch", "1", "--batch-size", "2", "--no-progress"]) == 0
    _no_grid_warning(capsys.readouterr().err)
    # the model records the image's voxel size as the one it learnt at
    assert list(bigseg.models.load(annotated / "m.pt").provenance["data"]["voxel_size"]) == [50.0, 50.0, 50.0]
