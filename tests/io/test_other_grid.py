"""Labels paired with an image of the same shape but stated on another grid (another voxel size,
or a box cut from another place of the scan) are warned about wherever they are paired index by
index: stored under the image, trained on, fed to the random forest (scores and particles have
their own tests)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bigseg
from bigseg import baselines, synth

OTHER = r"`{a}` and `labels` have the same shape but different voxel sizes .*\(0.1, 0.1, 0.1\) um.*{then}"


@pytest.fixture(scope="module")
def pair():
    lab = synth.electrode((16, 24, 24), seed=2, voxel_size=50, unit="nm")
    return synth.xct(lab, seed=2), lab


def test_save_labels_says_it_stores_them_on_the_image_grid(pair, tmp_path):
    img, lab = pair
    path = tmp_path / "a.ome.zarr"
    bigseg.save_volume(img, path, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bigseg.save_labels(lab, path, progress=False)  # the image's own grid: no word
        bigseg.save_labels(lab.values, path, name="plain", phases=["pore", "cbd", "active"], progress=False)
    with pytest.warns(UserWarning, match=OTHER.format(a="image_path", then="stored on the image's grid")):
        bigseg.save_labels(bigseg.io.recalibrated(lab, 0.1, "um"), path, name="other", progress=False)
    np.testing.assert_array_equal(bigseg.open_volume(path, label="other").values, lab.values)  # stored all the same


def test_training_and_the_forest_say_labels_of_another_grid(pair):
    img, lab = pair
    other = bigseg.io.recalibrated(lab, 0.1, "um")
    with pytest.raises(UserWarning, match=OTHER.format(a="image", then="paired with their labels")):
        bigseg.train(img, other, epochs=1)  # (warnings are errors here: stops before training)
    with pytest.raises(UserWarning, match=OTHER.format(a="vol", then="paired with their labels")):
        baselines.random_forest(img, other)
    box = lab.isel(z=slice(0, 8))
    with pytest.raises(UserWarning, match=r"`vol` and `labels` .* different places .* 8, 0, 0 voxels"):
        baselines.random_forest(img.isel(z=slice(8, 16)), box)


def test_a_stack_stating_nothing_is_taken_on_the_other_grid(pair, tmp_path):
    """A napari/Fiji annotation of a crop, saved as a plain TIFF or .npy and read in Python by
    `bigseg.io.open_source` (1 nm voxels, first voxel at 0: it states neither), was warned about
    as of another voxel size and another place; it is taken as of the image's grid and box, as
    the commands take it. A stack that states another voxel size is still said."""
    import tifffile

    from bigseg import measure

    img, lab = pair
    crop_i, crop_l = img.isel(z=slice(4, 12)), lab.isel(z=slice(4, 12))
    tifffile.imwrite(tmp_path / "ann.tif", crop_l.values)
    np.save(tmp_path / "ann.npy", crop_l.values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("ann.tif", "ann.npy"):
            ref = bigseg.io.open_source(tmp_path / name)
            measure.scores(ref, crop_l)
            baselines.random_forest(crop_i, ref, n_estimators=5)
    bigseg.export(bigseg.io.recalibrated(crop_l, 0.1, "um"), tmp_path / "stated.tif", progress=False)
    with pytest.warns(UserWarning, match=r"`truth` and `pred` have the same shape but different voxel sizes"):
        measure.scores(bigseg.io.open_source(tmp_path / "stated.tif"), crop_l)
