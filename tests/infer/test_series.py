"""Operando series (t, z, y, x) through ``predict`` and ``segment``: every frame exactly as if it
were predicted alone, lazily, with the series' t coordinate; through the CLI into OME-Zarr."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from bigseg import predict
from bigseg.cli import main
from bigseg.infer import segment
from bigseg.io import make_volume, open_volume, save_volume

from ._infer_nets import conv3d_net


def _series(rng, t=3, shape=(13, 21, 18)):
    base = rng.random(shape, dtype=np.float32)
    # later scans: other contrast and offset (e.g. a changed beam), plus noise
    frames = [base * (1 + 0.5 * i) + 0.2 * i + 0.05 * rng.random(shape, dtype=np.float32) for i in range(t)]
    return np.stack(frames)


def test_predict_series_equals_each_frame_alone():
    rng = np.random.default_rng(0)
    arr = _series(rng)
    net = conv3d_net(3)
    vol = make_volume(da.from_array(arr, chunks=(1, 6, 11, 7)), voxel_size=(2.0, 1.0, 1.0), unit="um")
    vol = vol.assign_coords(t=[10.0, 20.0, 30.0])
    ds = predict(vol, net, patch=(8, 8, 8), overlap=0.25, probabilities=True, uncertainty="margin")
    assert ds.labels.dims == ("t", "z", "y", "x") and ds.probabilities.dims == ("t", "phase", "z", "y", "x")
    assert isinstance(ds.labels.data, da.Array)  # lazy
    assert list(ds.t.values) == [10.0, 20.0, 30.0] and ds.labels.attrs["voxel_size"] == (2.0, 1.0, 1.0)
    total = 0
    for i in range(arr.shape[0]):
        one = predict(vol.isel(t=i), net, patch=(8, 8, 8), overlap=0.25, probabilities=True, uncertainty="margin")
        np.testing.assert_array_equal(ds.labels.isel(t=i).values, one.labels.values)
        np.testing.assert_array_equal(ds.probabilities.isel(t=i).values, one.probabilities.values)
        np.testing.assert_array_equal(ds.uncertainty.isel(t=i).values, one.uncertainty.values)
        total += one.attrs["n_patches"]
    assert ds.attrs["n_patches"] == total
    # a plain 4D NumPy array works too
    np.testing.assert_array_equal(predict(arr, net, patch=(8, 8, 8), overlap=0.25).labels.values, ds.labels.values)


def test_segment_normalises_each_scan_on_its_own():
    rng = np.random.default_rng(1)
    frame = rng.normal(0.5, 0.2, (16, 24, 20)).astype(np.float32)
    arr = np.stack([frame, 3.0 * frame + 7.0])  # the same sample, another grey scale
    ds = segment(arr, "default")
    a, b = ds.labels.values
    np.testing.assert_array_equal(a, b)  # percentiles taken per scan, so the grey scale does not matter
    np.testing.assert_array_equal(a, segment(frame, "default").labels.values)


def test_bad_series_argument_named_before_work():
    arr = np.zeros((2, 8, 8, 8), np.float32)
    with pytest.raises(Exception, match="overlap"):
        predict(arr, conv3d_net(3), patch=(8, 8, 8), overlap=1.5)
    with pytest.raises(Exception, match=r"\(z, y, x\) or \(t, z, y, x\)"):
        predict(np.zeros((2, 2, 8, 8, 8), np.float32), conv3d_net(3), patch=(8, 8, 8))


def test_cli_segments_a_series_into_ome_zarr(tmp_path, capsys):
    rng = np.random.default_rng(2)
    arr = _series(rng, t=2, shape=(12, 20, 16))
    path = tmp_path / "series.ome.zarr"
    save_volume(xr.DataArray(arr, dims=("t", "z", "y", "x")), path, chunks=(1, 7, 9, 16), progress=False)
    assert main(["segment", str(path), "--model", "default", "--probabilities"]) == 0
    out = capsys.readouterr().out
    assert "t = 0" in out and "t = 1" in out  # fractions per time step
    lab = open_volume(path / "labels" / "segmentation")
    assert lab.dims == ("t", "z", "y", "x") and lab.shape == arr.shape
    np.testing.assert_array_equal(lab.values, segment(open_volume(path), "default").labels.values)
    prob = open_volume(path / "labels" / "segmentation_probabilities")
    assert prob.shape == (2, 3, 12, 20, 16)
    np.testing.assert_allclose(np.asarray(prob.values, np.float32).sum(1), 1, atol=5e-3)
    assert main(["segment", str(path), "--method", "threshold", "--name", "otsu"]) == 0
    assert open_volume(path / "labels" / "otsu").shape == arr.shape


@pytest.mark.parametrize("temporal", [0, 1], ids=["scan-by-scan", "time-window"])
def test_series_model_checked_once_not_per_scan(temporal):
    # the check of the model (a forward pass of a zero patch) ran once per frame: a series' graph
    # took T forward passes to build (64 scans of 24³, default model: 34 of 37 s); once per call now
    rng = np.random.default_rng(2)
    arr = np.concatenate([_series(rng, t=3, shape=(8, 9, 10))] * 2)  # 6 scans
    net = conv3d_net(4)
    calls = []
    net.register_forward_pre_hook(lambda module, args: calls.append(tuple(args[0].shape)))
    ds = predict(arr, net, patch=(8, 8, 8), temporal=temporal)  # lazy: only the check runs the model
    assert len(calls) == 1
    assert ds.labels.shape == arr.shape
    predict(arr, net, patch=(8, 8, 8), temporal=temporal)  # a later call checks (the model may have changed)
    assert len(calls) == 2
