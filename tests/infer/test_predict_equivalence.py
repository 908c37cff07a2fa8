"""predict == MONAI sliding_window_inference on the whole volume, for any chunking, each window once."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from bigseg.infer import predict, reset_worker_stats, worker_stats
from bigseg.kernels.blend import count_patches, pad_widths

from ._infer_nets import KnownLogits, conv2d_net, conv3d_net, monai_probs

SHAPE = (30, 37, 41)
CHUNKINGS = [(30, 37, 41), (17, 23, 30), (8, 9, 7), (20, 37, 13)]


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(7)
    x = rng.normal(size=SHAPE).astype(np.float32)
    z = np.linspace(-1, 1, SHAPE[0], dtype=np.float32)[:, None, None]
    return x + 2 * z  # some structure so that the classes change


def _run(x, net, chunks, **kw):
    reset_worker_stats(clear_cache=False)
    ds = predict(da.from_array(x, chunks=chunks), net, probabilities=True, **kw)
    probs = ds["probabilities"].values
    return ds, probs, worker_stats()["patches"]


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("net_name", ["conv", "known"])
def test_equals_monai_any_chunking(image, chunks, net_name):
    net = conv3d_net() if net_name == "conv" else KnownLogits()
    patch = (16, 12, 20)
    ref = monai_probs(image, net, patch)
    ds, probs, evaluated = _run(image, net, chunks, patch=patch)
    assert probs.shape == (3, *SHAPE) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, ref, atol=1e-5, rtol=0)
    n = count_patches(SHAPE, patch, 0.5)
    assert ds.attrs["n_patches"] == n
    assert evaluated == n  # each window evaluated exactly once, whatever the chunking
    # labels alone (argmax inside the blend tasks) are the argmax of the probabilities
    np.testing.assert_array_equal(ds["labels"].values, probs.argmax(0))
    alone = predict(da.from_array(image, chunks=chunks), net, patch=patch)
    assert "probabilities" not in alone and alone["labels"].dtype == np.uint8
    np.testing.assert_array_equal(alone["labels"].values, ds["labels"].values)
    np.testing.assert_array_equal(ds["labels"].values, probs.argmax(0).astype(np.uint8))
    assert ds["labels"].dtype == np.uint8 and ds["labels"].dims == ("z", "y", "x")
    assert ds["labels"].attrs["phases"] == ["pore", "cbd", "active"]
    assert ds["labels"].data.chunks == da.from_array(image, chunks=chunks).chunks


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.75])
@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_overlap_and_blend_modes(image, overlap, blend):
    net = conv3d_net(seed=3)
    ref = monai_probs(image, net, (16, 16, 16), overlap=overlap, mode=blend, sigma_scale=0.2)
    ds, probs, evaluated = _run(image, net, (17, 23, 30), patch=(16, 16, 16), overlap=overlap, blend=blend, sigma_scale=0.2)
    np.testing.assert_allclose(probs, ref, atol=1e-5, rtol=0)
    assert evaluated == ds.attrs["n_patches"] == count_patches(SHAPE, (16, 16, 16), overlap)


def test_patch_larger_than_volume_is_padded_like_monai(image):
    x = image[:10, :30, :7]
    net = KnownLogits()
    patch = (16, 16, 16)
    ref = monai_probs(x, net, patch)
    ds, probs, evaluated = _run(x, net, (4, 9, 5), patch=patch)
    np.testing.assert_allclose(probs, ref, atol=1e-5, rtol=0)
    padded = [s + a + b for s, (a, b) in zip(x.shape, pad_widths(x.shape, patch))]
    assert evaluated == ds.attrs["n_patches"] == count_patches(padded, patch, 0.5)
    assert probs.shape == (3, *x.shape)


def test_tta_equals_monai_with_flip_averaging(image):
    x = image[:20, :24, :28]
    net = conv3d_net(seed=5)
    ref = monai_probs(x, net, (12, 12, 12), tta=True)
    ds, probs, evaluated = _run(x, net, (7, 11, 13), patch=(12, 12, 12), tta=True)
    np.testing.assert_allclose(probs, ref, atol=1e-5, rtol=0)
    plain = _run(x, net, (7, 11, 13), patch=(12, 12, 12))[1]
    assert np.abs(plain - probs).max() > 1e-3  # the flips made a difference
    assert evaluated == ds.attrs["n_patches"]


@pytest.mark.parametrize("chunks", [(30, 37, 41), (5, 17, 11)], ids=["one", "small"])
def test_2d_model_slice_by_slice_equals_monai_per_slice(image, chunks):
    net = conv2d_net()
    ref = monai_probs(image, net, (20, 16))  # slices along z as a batch of 2D images
    ds, probs, evaluated = _run(image, net, chunks, patch=(20, 16))
    np.testing.assert_allclose(probs, ref, atol=1e-5, rtol=0)
    assert evaluated == ds.attrs["n_patches"] == SHAPE[0] * count_patches(SHAPE[1:], (20, 16), 0.5)


def test_2d_model_with_channels_last_asked_for(image):
    # channels_last=True converted a 2D net with channels_last_3d, which refuses its 4D weights
    x = image[:9, :20, :17]
    net = conv2d_net(seed=4)
    ref = monai_probs(x, net, (12, 10))
    for triplanar in (False, True):
        reset_worker_stats()  # the model cached without the conversion would hide it
        got = predict(da.from_array(x, chunks=(4, 7, 5)), net, patch=(12, 10), probabilities=True,
                      channels_last=True, triplanar=triplanar)["probabilities"].values
        if not triplanar:
            np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
        reset_worker_stats()
        want = predict(x, net, patch=(12, 10), probabilities=True, triplanar=triplanar)["probabilities"].values
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def test_a_model_cached_in_one_memory_layout_is_not_served_for_the_other(image):
    import torch

    from bigseg.infer._model import _CACHE

    x = image[:12, :16, :16]
    net = conv3d_net(seed=8)
    reset_worker_stats()
    plain = predict(x, net, patch=(8, 8, 8), probabilities=True, channels_last=False)["probabilities"].values
    fast = predict(x, net, patch=(8, 8, 8), probabilities=True, channels_last=True)["probabilities"].values
    layouts = sorted(
        next(p for p in m.parameters() if p.dim() == 5 and p.shape[1] > 1).is_contiguous(memory_format=torch.channels_last_3d)
        for m in _CACHE.values())
    assert layouts == [False, True]  # one module each: the second call was given the first's layout
    np.testing.assert_allclose(fast, plain, atol=1e-5, rtol=0)


def test_triplanar_averages_the_three_directions(image):
    x = image[:22, :26, :30]
    net = conv2d_net(seed=2)
    roi = (12, 14)
    pz = monai_probs(x, net, roi)
    py = monai_probs(x.transpose(1, 0, 2), net, roi).transpose(0, 2, 1, 3)
    px = monai_probs(x.transpose(2, 0, 1), net, roi).transpose(0, 2, 3, 1)
    ds, probs, evaluated = _run(x, net, (9, 10, 11), patch=roi, triplanar=True)
    np.testing.assert_allclose(probs, (pz + py + px) / 3, atol=1e-5, rtol=0)
    n = 22 * count_patches((26, 30), roi, 0.5) + 26 * count_patches((22, 30), roi, 0.5) + 30 * count_patches((22, 26), roi, 0.5)
    assert evaluated == ds.attrs["n_patches"] == n


@pytest.mark.parametrize("plane", ["y", "x", 1])
def test_2d_model_across_another_plane_equals_monai_on_those_planes(image, plane):
    x = image[:22, :26, :30]
    net = conv2d_net(seed=6)
    roi = (12, 14)  # applies to (z, x) for planes normal to y, (z, y) for planes normal to x
    ref = (monai_probs(x.transpose(1, 0, 2), net, roi).transpose(0, 2, 1, 3) if plane in ("y", 1)
           else monai_probs(x.transpose(2, 0, 1), net, roi).transpose(0, 2, 3, 1))
    ds, probs, evaluated = _run(x, net, (9, 10, 11), patch=roi, plane=plane)
    np.testing.assert_allclose(probs, ref, atol=1e-5, rtol=0)
    n = 26 * count_patches((22, 30), roi, 0.5) if plane in ("y", 1) else 30 * count_patches((22, 26), roi, 0.5)
    assert evaluated == ds.attrs["n_patches"] == n and ds.attrs["planes"] == ("y" if plane in ("y", 1) else "x")
    assert np.abs(probs - _run(x, net, (9, 10, 11), patch=roi)[1]).max() > 1e-3  # not the z planes


def test_a_2d_model_sees_the_planes_it_was_trained_across():
    import torch

    from bigseg import models

    torch.manual_seed(0)
    m = models.create("lrcsnet", patch=(16, 16), kernels=4).eval()
    x = np.random.default_rng(5).random((18, 20, 24)).astype(np.float32)
    z = predict(x, m, probabilities=True)
    assert z.attrs["planes"] == "z"
    m.provenance = {"data": {"kind": "sparse labels", "axis": 2}}  # as train(..., axis=2) records it
    got = predict(x, m, probabilities=True)
    assert got.attrs["planes"] == "x"
    np.testing.assert_allclose(got["probabilities"].values,
                               predict(x, m, probabilities=True, plane="x")["probabilities"].values, atol=1e-6)
    np.testing.assert_allclose(predict(x, m, probabilities=True, plane="z")["probabilities"].values,
                               z["probabilities"].values, atol=1e-6)  # an explicit plane wins


def test_a_model_meeting_other_voxels_than_it_learnt_says_so():
    """A model fine-tuned on a 50 nm scan applied to a 100 nm one sees its particles half as
    large in voxels: said (the model's voxel size is recorded by train); nothing within 1.5x, nor
    where either side states no physical size."""
    import warnings

    import xarray as xr

    from bigseg import models

    m = models.create("lrcsnet", patch=(16, 16), kernels=4).eval()
    x = np.random.default_rng(5).random((6, 20, 24)).astype(np.float32)
    m.provenance = {"data": {"kind": "sparse labels", "axis": 0, "voxel_size": [50.0, 50.0, 50.0], "unit": "nm"}}

    def scan(vs, unit="nm"):
        return xr.DataArray(x, dims=("z", "y", "x"), attrs={"voxel_size": vs, "unit": unit})

    with pytest.warns(UserWarning, match=r"trained on voxels of 50 x 50 x 50 nm .*this volume's are 100 x 50 x 50 nm "
                                         r"\(2x, 1x, 1x\)"):
        predict(scan((0.1, 0.05, 0.05), "um"), m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict(scan((60.0, 45.0, 50.0)), m)
        predict(x, m)  # no voxel size stated
        m.provenance["data"]["unit"] = "voxel"
        predict(scan((100.0, 50.0, 50.0)), m)


def test_triplanar_caps_a_models_patch_at_each_planes_extent():
    # a bigseg Model's patch is capped at the volume: the y and x planes at their (z, x) and (z, y)
    # extents too (they zero-padded z from 6 slices up to the (y, x) cap)
    import torch

    from bigseg import models

    torch.manual_seed(0)
    m = models.create("lrcsnet", patch=(64, 64)).eval()  # 32 kernels: 7e-4 apart with the padding
    x = np.random.default_rng(5).random((6, 20, 24)).astype(np.float32)
    tri = predict(x, m, triplanar=True, probabilities=True)["probabilities"].values

    def plane(t):  # the volume turned so the plane's normal is z, predicted, turned back
        inv = np.argsort(t)
        return predict(x.transpose(t), m, probabilities=True)["probabilities"].values.transpose(0, *(1 + inv))

    ref = (plane((0, 1, 2)) + plane((1, 0, 2)) + plane((2, 0, 1))) / 3
    np.testing.assert_allclose(tri, ref, atol=1e-6, rtol=0)


def test_uncertainty_maps(image):
    x = image[:20, :20, :20]
    net = conv3d_net()
    ds = predict(x, net, patch=(12, 12, 12), probabilities=True, uncertainty="entropy")
    p = ds["probabilities"].values
    np.testing.assert_allclose(ds["uncertainty"].values, -(p * np.log(p)).sum(0), rtol=1e-5, atol=1e-6)
    assert ds["uncertainty"].attrs["method"] == "entropy"
    ds2 = predict(x, net, patch=(12, 12, 12), uncertainty="margin")
    np.testing.assert_allclose(ds2["uncertainty"].values, 1 - p.max(0), atol=1e-6)
    assert "probabilities" not in ds2 and ds2["uncertainty"].dtype == np.float32


class DuckModel(KnownLogits):
    """A bigseg-Model-like module: phases, patch, ndim, normalization."""

    phases = ["pore", "binder", "nmc", "crack"]
    patch = (10, 14, 12)
    ndim = 3
    normalization = {"method": "percentile", "low": 0.5, "high": 99.5}

    def __init__(self):
        super().__init__(classes=4)


def test_duck_typed_model_and_dataarray_input(image):
    from bigseg.io import make_volume

    x = image[:21, :25, :24]
    vol = make_volume(da.from_array(x, chunks=(8, 13, 9)), voxel_size=(2.0, 1.0, 1.0), unit="nm")
    model = DuckModel()
    ds = predict(vol, model, probabilities=True)
    ref = monai_probs(x, model, model.patch)
    np.testing.assert_allclose(ds["probabilities"].values, ref, atol=1e-5, rtol=0)
    assert ds.attrs["phases"] == DuckModel.phases and list(ds["phase"].values) == DuckModel.phases
    assert ds["labels"].attrs["voxel_size"] == (2.0, 1.0, 1.0) and ds["labels"].attrs["unit"] == "nm"
    assert '"percentile"' in ds.attrs["normalization"]
    np.testing.assert_array_equal(ds["labels"].coords["z"].values, vol.coords["z"].values)
    assert isinstance(ds, xr.Dataset)


def test_model_by_name_loads_lazily(image, monkeypatch):
    import bigseg.models as models

    calls = []

    def fake_load(name):
        calls.append(name)
        return DuckModel()

    monkeypatch.setattr(models, "load", fake_load, raising=False)
    ds = predict(image[:12, :16, :16], "default")
    assert calls == ["default"] and ds.attrs["patch"] == [10, 14, 12]


def test_bf16_autocast_on_cpu_is_close(image):
    x = image[:20, :20, :20]
    net = conv3d_net()
    exact = predict(x, net, patch=(12, 12, 12), probabilities=True)["probabilities"].values
    fast = predict(x, net, patch=(12, 12, 12), probabilities=True, autocast="bf16")["probabilities"].values
    assert 0 < np.abs(fast - exact).max() < 0.05


@pytest.mark.parametrize("chunks", [None, (7, 9, 11)], ids=["stored", "rechunked"])
def test_zarr_volume_reads_regions_from_the_store(image, tmp_path, chunks):
    """An OME-Zarr volume is read block region by block region straight from the store
    (including zero padding where the patch is larger than the volume)."""
    import bigseg
    from bigseg.io._volume import zarr_source as _zarr_source

    x = image[:30, :12, :40]
    bigseg.save_volume(x, tmp_path / "v.ome.zarr", chunks=(16, 12, 17), progress=False)
    vol = bigseg.open_volume(tmp_path / "v.ome.zarr")
    assert _zarr_source(vol.data) is not None and _zarr_source(vol.data[1:]) is None
    net = conv3d_net(seed=4)
    patch = (16, 16, 16)
    ref = monai_probs(x, net, patch)
    reset_worker_stats(clear_cache=False)
    ds = predict(vol, net, patch=patch, probabilities=True, chunks=chunks)
    np.testing.assert_allclose(ds["probabilities"].values, ref, atol=1e-5, rtol=0)
    assert worker_stats()["patches"] == ds.attrs["n_patches"]
    graph = dict(ds["labels"].data.__dask_graph__())
    assert sum(str(k).startswith("bigseg-source-") for k in graph) == 1
    assert not any(str(k[0] if isinstance(k, tuple) else k).startswith("from-zarr") for k in graph)
    assert ds["labels"].data.chunks == (vol.data.chunks if chunks is None else vol.data.rechunk(chunks).chunks)


def test_a_model_learnt_on_synthetic_cubic_voxels_says_so_of_anisotropic_ones():
    """The default model (trained on synthetic electrodes, cubic voxels, no voxel size recorded)
    met 2 x 0.5 x 0.5 um voxels, whose particles it sees flattened 4x, without a word: said, for
    the axes the model sees (a 2D model's planes), and nothing for cubic voxels or planes whose
    two axes have one edge."""
    import warnings

    import xarray as xr

    from bigseg import models

    m = models.create("lrcsnet", patch=(16, 16), kernels=4).eval()
    m.provenance = {"data": {"kind": "synthetic", "presets": ["lab-micro-ct"], "shape": [48, 96, 96]}}
    x = np.random.default_rng(6).random((16, 20, 24)).astype(np.float32)

    def scan(vs, unit="um"):
        return xr.DataArray(x, dims=("z", "y", "x"), attrs={"voxel_size": vs, "unit": unit})

    with pytest.warns(UserWarning, match=r"learnt synthetic electrodes on cubic voxels; this volume's are 2 x 0.5 x "
                                         r"0.5 um \(z, y, x\), 4x longer along z than along y"):
        predict(scan((2.0, 0.5, 0.5)), m, plane="x")  # planes (z, y): 2 um against 0.5 um
    with pytest.warns(UserWarning, match=r"this volume's are 2 x 0.5 x 2 um \(z, y, x\), 4x longer along x than along y"):
        predict(scan((2.0, 0.5, 2.0)), m, plane="z")  # planes (y, x): the axis named is one the model sees
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict(scan((2.0, 0.5, 0.5)), m, plane="z")  # planes (y, x) of one edge
        predict(scan((0.5, 0.5, 0.5)), m, plane="x")
        predict(scan((1.2, 1.0, 1.0)), m, plane="x")  # within 1.5x
