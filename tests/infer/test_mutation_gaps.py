"""Gaps a mutation-testing audit of bigseg.infer found: each test fails on a seeded mistake that
the rest of the suite let through, checked against an independent reference (the image's own
metadata, NumPy on the whole volume)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import bigseg
from bigseg.errors import InputError
from bigseg.infer import predict, write_prediction

from ._infer_nets import conv2d_net, conv3d_net, monai_probs

VS = (0.5, 0.25, 0.2)  # anisotropic: an axis swap or a default voxel size shows


@pytest.fixture
def image(tmp_path):
    x = np.random.default_rng(3).normal(size=(10, 13, 11)).astype(np.float32)
    path = tmp_path / "img.ome.zarr"
    bigseg.save_volume(x, path, chunks=(4, 6, 5), voxel_size=VS, unit="um", progress=False)
    return path, x


def test_probabilities_and_uncertainty_are_stored_on_the_images_grid(image):
    path, _ = image
    ds = predict(bigseg.open_volume(path), conv3d_net(), patch=(8, 8, 8), probabilities=True, uncertainty="entropy")
    out = write_prediction(ds, path, progress=False)
    for key in ("labels", "probabilities", "uncertainty"):
        got = bigseg.open_volume(out[key])
        assert got.attrs["voxel_size"] == VS and got.attrs["unit"] == "um", key
        np.testing.assert_allclose(got.x.values, bigseg.open_volume(path).x.values)
    prob = bigseg.open_volume(out["probabilities"])
    assert list(prob.phase.values) == ["pore", "cbd", "active"]
    unc = zarr.open_group(out["uncertainty"], mode="r").attrs["bigseg"]
    assert unc["uncertainty_of"] == "segmentation" and unc["method"] == "entropy"
    assert zarr.open_group(out["probabilities"], mode="r").attrs["bigseg"]["probabilities_of"] == "segmentation"
    # labels replaced under the same name: the probabilities and uncertainty said to be theirs go
    bigseg.save_labels(np.zeros(ds["labels"].shape, np.uint8), path, phases=["pore", "cbd", "active"],
                       overwrite=True, progress=False)
    assert not (path / "labels" / "segmentation_probabilities").exists()
    assert not (path / "labels" / "segmentation_uncertainty").exists()


def test_a_prediction_of_another_shape_writes_nothing(image):
    path, x = image
    small = predict(x[:6], conv3d_net(), patch=(8, 8, 8), probabilities=True, uncertainty="margin")
    with pytest.raises(InputError, match="shape"):
        write_prediction(small, path, progress=False)
    assert not (path / "labels").exists() or not [p.name for p in (path / "labels").iterdir()
                                                    if p.name != "zarr.json"]


def test_the_label_image_gets_the_pyramid_levels_asked_for_beside_probabilities(image):
    path, _ = image
    ds = predict(bigseg.open_volume(path), conv3d_net(), patch=(8, 8, 8), probabilities=True)
    write_prediction(ds, path, levels=2, uncertainty=False, progress=False)
    level1 = bigseg.open_volume(path, label="segmentation", level=1)
    np.testing.assert_array_equal(level1.values, ds["labels"].values[::2, ::2, ::2][:5, :6, :5])
    meta = zarr.open_group(str(path / "labels"), mode="r").attrs["bigseg"]["predictions"]["segmentation"]
    assert meta["n_patches"] == ds.attrs["n_patches"] > 0


def test_a_model_meeting_finer_voxels_than_it_learnt_says_so_too():
    import warnings

    import xarray as xr

    from bigseg import models

    m = models.create("lrcsnet", patch=(16, 16), kernels=4).eval()
    m.provenance = {"data": {"kind": "sparse labels", "axis": 0, "voxel_size": [50.0, 50.0, 50.0], "unit": "nm"}}
    x = np.random.default_rng(5).random((4, 18, 20)).astype(np.float32)

    def scan(vs):
        return xr.DataArray(x, dims=("z", "y", "x"), attrs={"voxel_size": vs, "unit": "nm"})

    with pytest.warns(UserWarning, match=r"this volume's are 50 x 20 x 50 nm \(1x, 0.4x, 1x\)"):
        predict(scan((50.0, 20.0, 50.0)), m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict(scan((50.0, 34.0, 74.0)), m)  # within 1.5x either way


def test_triplanar_labels_alone_are_the_argmax_of_the_three_planes_average():
    x = np.random.default_rng(6).normal(size=(9, 11, 10)).astype(np.float32)
    net = conv2d_net(seed=2)
    roi = (6, 7)
    pz = monai_probs(x, net, roi)
    py = monai_probs(x.transpose(1, 0, 2), net, roi).transpose(0, 2, 1, 3)
    px = monai_probs(x.transpose(2, 0, 1), net, roi).transpose(0, 2, 3, 1)
    want = ((pz + py + px) / 3).argmax(0)
    ds = predict(x, net, patch=roi, triplanar=True, chunks=(4, 5, 6))  # labels only: no probabilities asked
    assert set(ds) == {"labels"} and ds.attrs["planes"] == "zyx"
    agree = (ds["labels"].values == want).mean()
    assert agree > 0.999, agree  # ties in float32 sums aside
    assert (ds["labels"].values != pz.argmax(0)).any()  # the z planes alone decide otherwise somewhere


@pytest.mark.parametrize("plane", ["z", "y"])
def test_a_models_patch_is_capped_at_the_planes_extent(plane):
    """A bigseg 2D Model with a patch larger than the volume: the same as asking for the patch
    the plane's extent allows (zero-padding the windows instead changes the probabilities)."""
    import torch

    from bigseg import models

    torch.manual_seed(0)
    m = models.create("lrcsnet", patch=(64, 64)).eval()
    x = np.random.default_rng(5).random((6, 20, 24)).astype(np.float32)
    extent = {"z": (20, 24), "y": (6, 24)}[plane]
    got = predict(x, m, plane=plane, probabilities=True)["probabilities"].values
    want = predict(x, m, plane=plane, patch=extent, probabilities=True)["probabilities"].values
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
