"""The unit of a volume's VALUES (attrs["units"]): xarray's plots label the values by ``units``,
falling back to ``unit``, the voxels' length unit. ``vol.isel(z=10).plot()`` (the quickstart
notebook) labelled the colour bar "image [nm]" and a segmentation's "segmentation [nm]": grey
values and phase labels are no nanometres."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr
from xarray.plot.utils import label_from_attrs

import bigseg
from bigseg import baselines, filters, synth
from bigseg.infer import predict
from bigseg.io import export, open_source
from tests.infer._infer_nets import conv3d_net


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A small synthetic scan (50 nm voxels) and its true labels, saved as OME-Zarr."""
    tmp = tmp_path_factory.mktemp("plot_labels")
    truth = synth.electrode((12, 20, 20), voxel_size=50, seed=3)
    image = synth.xct(truth, seed=3)
    path = bigseg.save_volume(image, tmp / "scan.ome.zarr", progress=False)
    bigseg.save_labels(truth, path, name="segmentation", progress=False)
    return path, truth, image


def _says(vol, units):
    label = label_from_attrs(vol)
    assert not label.endswith("[nm]"), label
    assert label.endswith(f"[{units}]"), label


def test_grey_volumes_are_in_arbitrary_units(scan):
    path, _, image = scan
    opened = bigseg.open_volume(path)
    assert opened.attrs["unit"] == "nm" and opened.z.attrs["units"] == "nm"  # the voxels' length unit kept
    for vol in (image, opened, filters.gaussian(opened, sigma=1), filters.median(opened, size=3),
                filters.normalize(opened), opened.isel(z=2)):
        _says(vol, "a.u.")
    assert label_from_attrs(opened.y) == "y [nm]"  # the axes still in nm


def test_label_volumes_are_plain_numbers(scan):
    path, truth, image = scan
    opened = bigseg.open_volume(path, label="segmentation")
    thresholded = baselines.threshold(bigseg.open_volume(path))
    labels = predict(image, conv3d_net(), patch=(8, 8, 8))["labels"]
    for vol in (truth, opened, thresholded, labels, synth.perturb(truth, seed=1)):
        _says(vol, "1")
        assert vol.attrs["long_name"] == "phase label"


def test_probabilities_uncertainty_and_instance_ids(scan, tmp_path):
    _, truth, image = scan
    ds = predict(image, conv3d_net(), patch=(8, 8, 8), probabilities=True, uncertainty="entropy")
    _says(ds["probabilities"].isel(phase=0), "1")
    _says(ds["uncertainty"], "nats")
    path = bigseg.save_volume(image, tmp_path / "s.ome.zarr", progress=False)
    written = bigseg.infer.write_prediction(ds, path, progress=False)
    _says(bigseg.open_volume(written["probabilities"]), "1")
    _says(bigseg.open_volume(written["uncertainty"]), "nats")
    ids = (truth.values == 2).astype(np.int32) * np.arange(truth.size, dtype=np.int32).reshape(truth.shape)
    bigseg.save_labels(ids, path, name="particles", instances=True, progress=False)
    particles = bigseg.open_volume(path, label="particles")
    _says(particles, "1")
    assert particles.attrs["long_name"] == "instance id"


def test_a_units_of_ones_own_is_kept_and_nothing_is_stored(scan, tmp_path):
    path, _, image = scan
    hu = image.assign_attrs(units="HU")
    assert filters.gaussian(hu, sigma=1).attrs["units"] == "HU"  # a filter's values in its input's unit
    assert bigseg.io.as_volume(hu).attrs["units"] == "HU"
    assert filters.normalize(hu).attrs["units"] == "a.u."  # no longer HU
    # a measure's table names the intensities' unit only where the data give one (its columns as they were)
    truth = synth.electrode((12, 20, 20), voxel_size=50, seed=3)
    for grey, want in ((image, ""), (bigseg.open_volume(path), ""), (hu, "HU")):
        assert bigseg.measure.particles(truth, intensity=grey).attrs["units"]["mean_intensity"] == want
    # no store states `units`: a round trip writes the same metadata and reads back the same volume
    opened = bigseg.open_volume(path)
    again = bigseg.open_volume(bigseg.save_volume(opened, tmp_path / "again.ome.zarr", progress=False))
    assert dict(zarr.open_group(str(tmp_path / "again.ome.zarr")).attrs) == dict(zarr.open_group(str(path)).attrs)
    assert "units" not in str(dict(zarr.open_group(str(path)).attrs)).replace("'unit'", "")
    xr.testing.assert_identical(again.assign_attrs(source="").compute(), opened.assign_attrs(source="").compute())
    # labels exported for another tool and read back, and netCDF
    h5 = export(synth.electrode((4, 6, 6), voxel_size=50, seed=1), tmp_path / "l.h5", progress=False)
    assert open_source(h5).attrs["units"] == "1"
    truth = bigseg.open_volume(path, label="segmentation")
    truth.to_netcdf(tmp_path / "l.nc", engine="h5netcdf")
    with xr.open_dataarray(tmp_path / "l.nc", engine="h5netcdf") as back:
        assert back.attrs["units"] == "1" and back.attrs["unit"] == "nm"


def test_a_slice_plot_labels_its_colour_bar_by_what_the_values_are(scan):
    import matplotlib

    matplotlib.use("Agg")
    path, _, _ = scan
    for vol, want in ((bigseg.open_volume(path), "image [a.u.]"),
                      (bigseg.open_volume(path, label="segmentation"), "phase label [1]")):
        artist = vol.isel(z=3).plot()
        assert artist.colorbar.ax.get_ylabel() == want
        assert artist.axes.get_xlabel() == "x [nm]" and artist.axes.get_ylabel() == "y [nm]"
