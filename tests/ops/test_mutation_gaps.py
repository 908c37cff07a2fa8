"""Gaps a mutation audit of ops/_overlap, ops/_histogram, measure/_blockwise and kernels/features
found: each test fails on a wrong variant of the code that the rest of the suite let through.
References are independent of the code under test (NumPy, SciPy, dask's own block slicing)."""

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from bigseg.kernels.features import feature_halo, multiscale_features, sobel_magnitude
from bigseg.measure._blockwise import ensure_min_chunks, map_with_halo
from bigseg.ops import map_overlap_exact, percentiles
from bigseg.ops._overlap import block_slices


# --- ops/_overlap ---------------------------------------------------------------------------

def test_per_axis_depth_merges_the_chunks_of_its_own_axis():
    # depth only along x, whose chunks (2) are thinner than it; z is chunked too but needs no halo
    a = np.random.default_rng(0).random((8, 5, 20))
    d = da.from_array(a, chunks=(3, 5, 2))
    out = map_overlap_exact(lambda b: ndi.uniform_filter1d(b, 7, axis=2, mode="reflect"), d, (0, 0, 3))
    np.testing.assert_allclose(out.compute(), ndi.uniform_filter1d(a, 7, axis=2, mode="reflect"), rtol=1e-12)


def test_requested_dtype_is_the_result_dtype():
    a = np.arange(6 * 7 * 9, dtype=np.uint8).reshape(6, 7, 9) % 7
    d = da.from_array(a, chunks=(4, 3, 5))
    out = map_overlap_exact(lambda b: ndi.uniform_filter(b.astype(np.float32), 3, mode="reflect"), d, 1,
                            dtype=np.float32)
    assert out.dtype == np.float32
    got = out.compute()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ndi.uniform_filter(a.astype(np.float32), 3, mode="reflect"), rtol=1e-6)


def test_block_slices_cut_the_blocks_dask_cuts():
    a = np.arange(5 * 6 * 4).reshape(5, 6, 4)
    d = da.from_array(a, chunks=((2, 3), (4, 1, 1), (4,)))
    sl = block_slices(d.chunks)
    assert sorted(sl) == sorted(np.ndindex(*d.numblocks))
    for idx, s in sl.items():
        np.testing.assert_array_equal(a[s], d.blocks[idx].compute())


# --- ops/_histogram -------------------------------------------------------------------------

def test_float_percentiles_at_0_and_100():
    a = np.random.default_rng(3).normal(size=(7, 6, 5))
    qs = [0, 100, 50]
    np.testing.assert_allclose(percentiles(da.from_array(a, chunks=(3, 4, 2)), qs), np.percentile(a, qs),
                               rtol=1e-12, atol=0)


def test_float_percentiles_with_many_values_in_one_bin():
    # 2 extremes set the range [0, 1]; the 400 others lie within 1e-6 of 0.5, all in one of the
    # 65536 bins (the suite's other float data has about one value per bin): the values gathered
    # from that bin must be sorted and ranked from the count of the bins before it
    rng = np.random.default_rng(4)
    a = np.concatenate([[0.0, 1.0], 0.5 + 1e-6 * rng.random(400)]).reshape(2, 3, 67)
    qs = [10, 25, 50, 75, 90]
    np.testing.assert_allclose(percentiles(da.from_array(a, chunks=(1, 2, 20)), qs), np.percentile(a, qs),
                               rtol=1e-15, atol=0)


def test_float_percentile_refined_by_sub_bins_is_the_sub_bin_centre(monkeypatch):
    import bigseg.ops._histogram as h

    monkeypatch.setattr(h, "_MAX_EXACT", 0)  # force the second-histogram path of huge bins
    # range 2**32 over 2**16 bins of 2**16 sub-bins: sub-bins 1 wide; the median 12345.9 lies
    # in sub-bin [12345, 12346), whose centre is within half a sub-bin of it
    a = np.array([0.0, 12345.9, 2.0 ** 32])
    (got,) = percentiles(da.from_array(a, chunks=2), [50])
    assert abs(got - 12345.9) <= 0.5 + 1e-9, got


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_percentiles_at_the_extremes_are_the_min_and_max_when_refined_by_sub_bins(monkeypatch, dtype):
    """A range of 2**33 values: sub-bins 2 wide, whose centres put q=0 and q=100 up to 0.75 off
    (integers: the centre of [lo, lo + 2) then rounded nowhere); the range pass knows them exactly."""
    import bigseg.ops._histogram as h

    monkeypatch.setattr(h, "_MAX_EXACT", 0)  # force the second-histogram path of huge bins
    a = np.array([3, 5, 2**32 + 1, 11, 2**33 + 6], dtype)
    qs = [0, 100, 1e-9, 100 - 1e-9]  # the last two: the first / last order statistic, a hair from it
    got = percentiles(da.from_array(a, chunks=2), qs)
    assert got[:2] == [3.0, float(2**33 + 6)], got
    np.testing.assert_allclose(got[2:], np.percentile(a, qs[2:]), rtol=0, atol=1e-4)


# --- measure/_blockwise ---------------------------------------------------------------------

def test_ensure_min_chunks_merges_a_thin_last_chunk():
    d = da.zeros((11, 9, 4), chunks=((5, 5, 1), (1, 4, 4), (4,)))
    out = ensure_min_chunks(d, 2)
    for ax, c in enumerate(out.chunks):
        assert sum(c) == d.shape[ax]
        assert len(c) == 1 or min(c) >= 2, out.chunks


def test_map_with_halo_equals_the_whole_array_filter_with_a_thin_last_chunk():
    a = np.random.default_rng(5).random((11, 9, 7))
    d = da.from_array(a, chunks=((5, 5, 1), (4, 4, 1), (7,)))

    def func(ext, geom):
        f = ndi.uniform_filter(ext, 5, mode="reflect")
        return f[tuple(slice(lo, lo + n) for lo, n in zip(geom.halo_lo, geom.shape))]

    got = map_with_halo(func, d, depth=2, dtype=np.float64).compute()
    np.testing.assert_allclose(got, ndi.uniform_filter(a, 5, mode="reflect"), rtol=1e-12)


# --- kernels/features -----------------------------------------------------------------------

def _grey():
    return np.random.default_rng(6).random((9, 10, 11)).astype(np.float32)


def test_laplacian_and_hessian_eigenvalues_against_scipy_and_eigvalsh():
    g = _grey()
    s = 1.3
    f = multiscale_features(g, (s,))
    kw = dict(sigma=s, mode="reflect", truncate=4.0)
    g64 = g.astype(np.float64)
    np.testing.assert_allclose(f[1], ndi.gaussian_filter(g64, **kw), atol=1e-5)
    np.testing.assert_allclose(f[2], ndi.gaussian_gradient_magnitude(g64, **kw), atol=1e-5)
    np.testing.assert_allclose(f[3], ndi.gaussian_laplace(g64, **kw), atol=1e-5)
    hess = np.empty(g.shape + (3, 3))
    for i in range(3):
        for j in range(3):
            order = [0, 0, 0]
            order[i] += 1
            order[j] += 1
            hess[..., i, j] = ndi.gaussian_filter(g64, order=order, **kw)
    ev = np.linalg.eigvalsh(hess)  # ascending
    for c in range(3):
        np.testing.assert_allclose(f[4 + c], ev[..., c], atol=1e-4)


def test_sobel_magnitude_against_scipy_generic_gradient_magnitude():
    g = _grey()
    np.testing.assert_allclose(sobel_magnitude(g), ndi.generic_gradient_magnitude(g.astype(np.float64), ndi.sobel,
                                                                                  mode="reflect"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sigmas", [(1.2,), (0.6, 2.2)])
def test_feature_halo_makes_features_blockwise_exact(sigmas):
    # scipy's Gaussian kernel radius is int(truncate * sigma + 0.5): 1.2 -> 5, 2.2 -> 9 (not 4, 8)
    g = np.random.default_rng(7).random((6, 6, 30)).astype(np.float32)
    whole = multiscale_features(g, sigmas)
    got = map_overlap_exact(lambda b: multiscale_features(b, sigmas)[1], da.from_array(g, chunks=(6, 6, 10)),
                            feature_halo(sigmas), dtype=np.float32).compute()
    np.testing.assert_allclose(got, whole[1], rtol=1e-6, atol=1e-7)
