"""Every filter equals scipy.ndimage / scikit-image on the whole array, for any chunking."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage.filters import unsharp_mask

import bigseg.filters as bf
from bigseg.io import make_volume

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def volumes(draw, max_edge=18, dtype=np.float32):
    shape = tuple(draw(st.integers(1, max_edge)) for _ in range(3))
    chunks = tuple(draw(st.integers(max(1, s // 4), s)) for s in shape)
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        a = rng.random(shape, dtype=np.float32).astype(dtype)
    else:
        a = rng.integers(0, 6, shape).astype(dtype)  # many ties
    return a, chunks


@SETTINGS
@given(volumes(), st.sampled_from([np.float32, np.uint8]))
def test_median3_equals_scipy(data, dtype):
    a, chunks = data
    a = a.astype(dtype) if dtype == np.float32 else (a * 5).astype(dtype)
    out = bf.median(da.from_array(a, chunks=chunks), size=3)
    res = out.values
    assert res.dtype == a.dtype
    np.testing.assert_array_equal(res, ndi.median_filter(a, size=3))


@SETTINGS
@given(volumes(max_edge=14), st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)))
def test_median_other_sizes_equal_scipy(data, size):
    a, chunks = data
    out = bf.median(da.from_array(a, chunks=chunks), size=size).values
    np.testing.assert_array_equal(out, ndi.median_filter(a, size=size))


@pytest.mark.parametrize("size", [3, (1, 3, 5)])
def test_median_of_float16_is_float16_and_exact(size):
    # scipy has no float16 kernels ("array type not supported" at compute time, after the graph was built)
    a = np.random.default_rng(2).random((9, 11, 13)).astype(np.float16)
    out = bf.median(da.from_array(a, chunks=(4, 5, 6)), size=size).values
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, ndi.median_filter(a.astype(np.float32), size=size).astype(np.float16))


@SETTINGS
@given(volumes(), st.floats(0.3, 3.0), st.sampled_from([4.0, 2.5]))
def test_gaussian_equals_scipy(data, sigma, truncate):
    a, chunks = data
    out = bf.gaussian(da.from_array(a, chunks=chunks), sigma=sigma, truncate=truncate).values
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ndi.gaussian_filter(a, sigma, truncate=truncate), rtol=1e-6, atol=1e-6)


@SETTINGS
@given(volumes(max_edge=16), st.floats(0.5, 4.0), st.floats(-1.0, 2.0), st.sampled_from(["3d", "2d"]))
def test_unsharp_equals_skimage(data, radius, amount, axes):
    a, chunks = data
    out = bf.unsharp(da.from_array(a, chunks=chunks), radius=radius, amount=amount, axes=axes).values
    if axes == "3d":
        ref = unsharp_mask(a, radius=radius, amount=amount, preserve_range=True)
    else:
        ref = np.stack([unsharp_mask(s, radius=radius, amount=amount, preserve_range=True) for s in a])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_lrcsnet_preprocessing_awkward_chunks():
    """The LRCS-Net chain: median 3 then 2D unsharp (radius 6, weight 0.6), chunks (17, 23, 30)."""
    rng = np.random.default_rng(0)
    a = rng.normal(100, 20, (40, 50, 64)).astype(np.float32)
    vol = make_volume(da.from_array(a, chunks=(17, 23, 30)), voxel_size=(50, 40, 40), unit="nm")
    out = bf.unsharp(bf.median(vol), radius=6, amount=0.6, axes="2d")
    assert isinstance(out, xr.DataArray) and isinstance(out.data, da.Array)
    assert out.attrs["voxel_size"] == (50.0, 40.0, 40.0) and out.attrs["unit"] == "nm"
    med = ndi.median_filter(a, 3)
    ref = np.stack([unsharp_mask(s, radius=6, amount=0.6, preserve_range=True) for s in med])
    np.testing.assert_allclose(out.values, ref, rtol=1e-5, atol=1e-3)


def test_chunks_smaller_than_halo_gaussian():
    a = np.random.default_rng(1).random((9, 40, 11), dtype=np.float32)
    out = bf.gaussian(da.from_array(a, chunks=(2, 3, 1)), sigma=2.5).values  # halo 10 > every chunk
    np.testing.assert_allclose(out, ndi.gaussian_filter(a, 2.5), rtol=1e-6, atol=1e-6)


def test_unsharp_integer_input_is_float32_no_overflow():
    """uint16 input: output float32, values beyond the uint16 range kept (no wrap, no clip)."""
    a = np.zeros((12, 20, 20), np.uint16)
    a[:, 10:] = 65535
    out = bf.unsharp(da.from_array(a, chunks=7), radius=2, amount=1.0).values
    assert out.dtype == np.float32
    assert out.max() > 65535 and out.min() < 0
    ref = unsharp_mask(a, radius=2, amount=1.0, preserve_range=True)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=0.05)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float64])
def test_gaussian_dtypes(dtype):
    a = (np.random.default_rng(2).random((15, 16, 17)) * 200).astype(dtype)
    out = bf.gaussian(da.from_array(a, chunks=(4, 5, 6)), sigma=1.1).values
    assert out.dtype == (np.float64 if dtype == np.float64 else np.float32)
    np.testing.assert_allclose(out, ndi.gaussian_filter(a.astype(out.dtype), 1.1), rtol=1e-6, atol=1e-4)


def test_series_filters_each_time_step():
    a = np.random.default_rng(3).random((2, 10, 12, 14), dtype=np.float32)
    vol = make_volume(da.from_array(a, chunks=(1, 4, 5, 6)))
    out = bf.median(vol).values
    np.testing.assert_array_equal(out, np.stack([ndi.median_filter(t, 3) for t in a]))
    g = bf.gaussian(vol, sigma=1.0).values
    np.testing.assert_allclose(g, np.stack([ndi.gaussian_filter(t, 1.0) for t in a]), rtol=1e-6, atol=1e-6)


def test_median_nan_propagate_matches_scipy():
    a = np.random.default_rng(4).random((12, 13, 14), dtype=np.float32)
    a[5, 6, 7] = np.nan
    a[0, 0, 0] = np.inf
    out = bf.median(da.from_array(a, chunks=5), nan_policy="propagate").values
    np.testing.assert_array_equal(out, ndi.median_filter(a, 3))


def test_numpy_input_is_accepted():
    a = np.random.default_rng(5).random((8, 9, 10), dtype=np.float32)
    out = bf.median(a)
    assert out.dims == ("z", "y", "x")
    np.testing.assert_array_equal(out.values, ndi.median_filter(a, 3))


@pytest.mark.parametrize("fn", [bf.gaussian, bf.unsharp, bf.normalize])
@pytest.mark.parametrize("dtype", [">f8", ">f4", ">u2"])
def test_big_endian_input_equals_native(fn, dtype):
    """A big-endian scan (HDF5, raw files from another machine) filters as its native copy:
    >f8 stayed float64 only if compared as `== np.float64` natively (it came back float32)."""
    a = (np.random.default_rng(6).random((9, 10, 11)) * 300).astype(dtype)
    native = a.astype(a.dtype.newbyteorder("="))
    out, ref = fn(da.from_array(a, chunks=(4, 5, 6))), fn(native)
    assert out.dtype == ref.dtype
    np.testing.assert_array_equal(out.values, ref.values)
