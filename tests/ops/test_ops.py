"""bigseg.ops: halo-aware map_overlap (chunks smaller than the halo), dispatch, exact percentiles."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from bigseg.ops import array_module, is_cupy, map_overlap_exact, min_chunks, ndimage_module, percentiles, to_numpy


@pytest.mark.parametrize(
    "chunks, depth, expected",
    [((5, 5, 5), 3, (5, 5, 5)), ((1, 2, 3, 4), 3, (3, 3, 4)), ((2, 2), 5, (4,)), ((4, 1), 2, (5,)), ((3, 1, 1, 3), 2, (3, 2, 3))],
)
def test_min_chunks(chunks, depth, expected):
    out = min_chunks(chunks, depth)
    assert out == expected
    assert sum(out) == sum(chunks)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=8), st.integers(0, 12))
def test_min_chunks_property(chunks, depth):
    out = min_chunks(chunks, depth)
    assert sum(out) == sum(chunks)
    assert len(out) == 1 or all(c >= depth for c in out)


@pytest.mark.parametrize("shape,chunks", [((9, 10, 11), (1, 2, 3)), ((19, 21, 23), (5, 7, 4)),
                                          ((19, 21, 23), (17, 23, 30)), ((19, 21, 23), 40)])
@pytest.mark.parametrize("size", [3, 7])
def test_map_overlap_exact_uniform_filter(shape, chunks, size):
    rng = np.random.default_rng(0)
    a = rng.random(shape)  # (1, 2, 3) chunks on a smaller array: ~300 blocks, not ~1700
    d = da.from_array(a, chunks=chunks)
    out = map_overlap_exact(lambda b: ndi.uniform_filter(b, size), d, size // 2)
    np.testing.assert_allclose(out.compute(), ndi.uniform_filter(a, size), rtol=1e-12, atol=1e-12)
    assert out.shape == a.shape


def test_map_overlap_exact_depth_larger_than_axis():
    a = np.random.default_rng(1).random((3, 30, 4))
    d = da.from_array(a, chunks=(1, 7, 2))
    out = map_overlap_exact(lambda b: ndi.gaussian_filter(b, 2.0), d, 8).compute()
    np.testing.assert_allclose(out, ndi.gaussian_filter(a, 2.0), rtol=1e-12, atol=1e-12)


def test_dispatch_numpy():
    a = np.zeros(3)
    assert not is_cupy(a)
    assert array_module(a) is np
    assert ndimage_module(a) is ndi
    assert to_numpy(a) is a


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_percentiles_exact_integers(dtype):
    rng = np.random.default_rng(2)
    hi = 200 if dtype == np.uint8 else 3000
    a = rng.integers(0, hi, (23, 19, 17)).astype(dtype)
    qs = [0, 0.5, 13.7, 50, 99.5, 100]
    got = percentiles(da.from_array(a, chunks=(5, 7, 9)), qs)
    np.testing.assert_array_equal(got, np.percentile(a, qs))


def test_percentiles_of_a_wide_integer_range_stay_small_and_exact(monkeypatch):
    """int32 grey values spanning 2**24 - 2: each block's bincount held 2**24 int64 counts (128
    MiB per block, whatever its size: 5 GiB resident for 16 blocks of 32³); now at most 2**16
    counts per block, and the percentiles still equal NumPy's, by sub-bins too."""
    import dask
    import tracemalloc

    import bigseg.ops._histogram as h

    rng = np.random.default_rng(5)
    a = rng.integers(0, 2**24 - 1, (16, 16, 16)).astype(np.int32)
    a.flat[:2] = 0, 2**24 - 2
    qs = [0, 0.5, 13.7, 50, 99.5, 100]
    x = da.from_array(a, chunks=8)
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="synchronous"):
            got = percentiles(x, qs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got, np.percentile(a, qs))
    assert peak < 32 * 2**20, peak
    monkeypatch.setattr(h, "_MAX_EXACT", 0)  # the order statistics from sub-bins: the integers they hold
    np.testing.assert_array_equal(percentiles(x, [13.7]), np.percentile(a, [13.7]))


def test_percentiles_exact_floats():
    rng = np.random.default_rng(3)
    a = rng.lognormal(size=(21, 22, 23)).astype(np.float32)
    qs = [0.5, 1, 50, 99, 99.5]
    got = percentiles(da.from_array(a, chunks=(4, 11, 6)), qs)
    np.testing.assert_allclose(got, np.percentile(a, qs), rtol=1e-12, atol=0)


def _graph_bytes(x) -> int:
    import cloudpickle

    return len(cloudpickle.dumps(dict(x.__dask_graph__())))


def test_masked_values_holds_the_mask_once_with_stable_keys():
    """Was: each block's task carried its own copy of the mask's (y, x) piece, so the graph held
    the mask once per block along z (66 MB for a 2048² field of view in 128³ chunks of 2048³),
    and its keys were random (``dask.delayed`` without ``pure``)."""
    from bigseg.ops import masked_values

    mask = np.random.default_rng(0).random((128, 128)) < 0.5
    few = masked_values(da.zeros((32, 128, 128), np.float32, chunks=(8, 128, 128)), mask)  # 4 blocks
    many = masked_values(da.zeros((256, 128, 128), np.float32, chunks=(8, 128, 128)), mask)  # 32 blocks
    assert many.numblocks == (32,)
    assert _graph_bytes(many) - _graph_bytes(few) < mask.nbytes  # 28 more blocks: not 28 more masks
    assert many.name == masked_values(da.zeros((256, 128, 128), np.float32, chunks=(8, 128, 128)), mask).name
    assert many.name != masked_values(da.zeros((256, 128, 128), np.float32, chunks=(8, 128, 128)), ~mask).name
    a = np.arange(2 * 8 * 6, dtype=np.float32).reshape(2, 8, 6)
    m = np.zeros((8, 6), bool)
    m[2:7, 1:4] = True
    got = masked_values(da.from_array(a, chunks=(1, 3, 4)), m)
    assert got.chunks == ((3, 9, 3) * 2,) and got.compute().tolist() == a[:, m].ravel().tolist()


def test_histogram_and_percentiles_of_uint64_values_beyond_int64():
    """uint64 values past 2**63 (a narrow range there): the counts exact, the percentiles
    NumPy's (which reads them as float64, as the result is)."""
    from bigseg.ops import bincount_offset

    rng = np.random.default_rng(0)
    x = (np.uint64(2**64 - 5000) + rng.integers(0, 300, (6, 7, 5)).astype(np.uint64)).astype(np.uint64)
    arr = da.from_array(x, chunks=(4, 3, 5))
    lo, hi = int(x.min()), int(x.max())
    counts = bincount_offset(arr, lo, hi).compute()
    want = np.bincount((x - np.uint64(lo)).astype(np.int64).ravel(), minlength=hi - lo + 1)
    np.testing.assert_array_equal(counts, want)
    got = percentiles(arr, [0, 37.5, 50, 100])
    assert got == pytest.approx(np.percentile(x, [0, 37.5, 50, 100]).tolist(), rel=1e-15)
