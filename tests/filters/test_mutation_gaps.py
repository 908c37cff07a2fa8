"""Gaps a mutation-testing audit of bigseg.filters found: each test fails on a seeded mistake
that the rest of the suite let through, checked against scipy.ndimage on the whole array."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from bigseg import filters
from bigseg.errors import InputError


@pytest.fixture(scope="module")
def smooth_scan():
    """A smooth random (z, y, x) scan: structure at every scale a correlation can lock onto."""
    rng = np.random.default_rng(7)
    return ndi.gaussian_filter(rng.normal(size=(30, 34, 32)), 2.0).astype(np.float32)


def test_labels_move_by_nearest_voxel_for_fractional_shifts():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 3, (2, 12, 15, 13)).astype(np.uint8)
    shifts = [[0.0, 0.0, 0.0], [1.4, -2.6, 0.5]]
    out = filters.align(da.from_array(lab, chunks=(1, 5, 4, 6)), shifts=shifts, crop=False)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out.values[1], ndi.shift(lab[1], shifts[1], order=0, mode="nearest"))
    np.testing.assert_array_equal(out.values[0], lab[0])


def test_shifts_are_estimated_onto_the_reference_asked_for(smooth_scan):
    true = np.array([[0.0, 0.0, 0.0], [2.0, -1.0, 3.0], [-1.0, 2.0, 1.0]])  # whole voxels: exact moves
    ser = np.stack([ndi.shift(smooth_scan, s, order=0, mode="nearest") for s in true])
    for ref in (1, -1):
        est = filters.estimate_shifts(da.from_array(ser, chunks=(1, 16, 17, 16)), reference=ref, sample=24)
        np.testing.assert_allclose(est, true[ref] - true, atol=0.11)
        assert not est[ref].any()


def test_estimate_options_with_shifts_given_are_refused_not_ignored(smooth_scan):
    ser = np.stack([smooth_scan, smooth_scan])
    for kw in ({"reference": 1}, {"upsample": 4}, {"sample": 16}):
        with pytest.raises(InputError, match=f"`{next(iter(kw))}` only without `shifts`"):
            filters.align(ser, shifts=np.zeros((2, 3)), **kw)


@pytest.mark.parametrize("mask_dims", [2, 3])
def test_normalize_takes_its_percentiles_inside_the_mask_only(mask_dims):
    rng = np.random.default_rng(4)
    vol = rng.normal(100.0, 10.0, (9, 14, 12)).astype(np.float32)
    yy, xx = np.mgrid[:14, :12]
    fov = (yy - 6.5) ** 2 + (xx - 5.5) ** 2 < 5.5**2
    vol[:, ~fov] = rng.normal(1000.0, 1.0, (9, int((~fov).sum())))  # bright outside the field of view
    mask = fov if mask_dims == 2 else np.broadcast_to(fov, vol.shape).copy()
    out = filters.normalize(da.from_array(vol, chunks=(4, 5, 7)), low=1, high=99, mask=mask)
    lo, hi = np.percentile(vol[:, fov], [1, 99])
    assert out.attrs["normalize"] == pytest.approx((lo, hi), rel=1e-6)
    np.testing.assert_allclose(out.values, np.clip((vol - lo) / (hi - lo), 0, 1), rtol=0, atol=1e-5)
    assert (out.values[:, ~fov] == 1).all()  # mapped too, though not counted


@pytest.mark.parametrize("fn", [lambda v: filters.gaussian(v, sigma=1.1), lambda v: filters.unsharp(v, radius=1.5),
                                lambda v: filters.median(v)], ids=["gaussian", "unsharp", "median"])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
def test_the_lazy_dtype_is_the_computed_one(fn, dtype):
    """A writer sizes its store by the lazy dtype: float64 said float32 was stored rounded."""
    a = (np.random.default_rng(5).random((8, 9, 10)) * 300).astype(dtype)
    out = fn(da.from_array(a, chunks=(3, 4, 5)))
    assert out.dtype == out.values.dtype
    if dtype == np.float64:
        assert out.dtype == np.float64


def test_a_series_filters_each_time_step_also_with_several_per_chunk():
    a = np.random.default_rng(6).random((3, 8, 10, 9)).astype(np.float32)
    vol = da.from_array(a, chunks=(2, 3, 4, 5))  # two time steps in one block
    np.testing.assert_array_equal(filters.median(vol).values, np.stack([ndi.median_filter(t, 3) for t in a]))
    np.testing.assert_allclose(filters.gaussian(vol, sigma=(0.0, 1.0, 1.5)).values,
                               np.stack([ndi.gaussian_filter(t, (0.0, 1.0, 1.5)) for t in a]), rtol=1e-6, atol=1e-6)


def test_a_sigma_of_zero_along_some_axes_smooths_the_others_only():
    a = np.random.default_rng(8).random((7, 12, 11)).astype(np.float32)
    for sigma in ((0.0, 1.1, 1.1), (1.3, 0.0, 0.0)):
        got = filters.gaussian(da.from_array(a, chunks=(3, 5, 4)), sigma=sigma).values
        np.testing.assert_allclose(got, ndi.gaussian_filter(a, sigma), rtol=1e-6, atol=1e-6)


def test_check_contrast_refuses_a_scan_of_one_grey_value_in_its_window():
    from bigseg.filters._filters import check_contrast

    flat = filters.normalize(np.full((4, 5, 6), 7.0, np.float32))
    with pytest.raises(InputError, match="more than one grey value"):
        check_contrast(flat, low=0.5, high=99.5)
    two = np.zeros((4, 5, 6), np.float32)
    two[2:] = 1.0
    check_contrast(filters.normalize(two), low=0.5, high=99.5)  # two values: a contrast to keep


def test_shifts_come_from_the_central_sub_volume(smooth_scan):
    """Structure only in the middle of a larger, flat field: a ``sample``-voxel crop taken from
    anywhere but the centre sees nothing to match."""
    field = np.zeros((64, 64, 64), np.float32)
    field[17:47, 15:49, 16:48] = smooth_scan  # flat (0) within 15..17 voxels of every edge
    true = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 2.0]])
    ser = np.stack([ndi.shift(field, s, order=0, mode="nearest") for s in true])
    est = filters.estimate_shifts(da.from_array(ser, chunks=(1, 20, 26, 25)), sample=16)
    np.testing.assert_allclose(est, -true, atol=0.11)


def test_voxels_without_data_add_nothing_to_the_shift_estimate(smooth_scan):
    """NaN outside a fixed field of view (it does not move with the sample): taken as the mean
    of the other voxels, not as a value of their own whose static edge pulls the estimate to 0."""
    true = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, -2.0]])
    ser = np.stack([ndi.shift(smooth_scan + 10.0, s, order=0, mode="nearest") for s in true])
    yy, xx = np.mgrid[:34, :32]
    ser[:, :, (yy - 16.5) ** 2 + (xx - 15.5) ** 2 > 12.0**2] = np.nan
    est = filters.estimate_shifts(da.from_array(ser, chunks=(1, 15, 17, 16)), sample=28)
    np.testing.assert_allclose(est, -true, atol=0.11)


def test_shifts_that_leave_no_voxel_every_scan_covers_are_refused(smooth_scan):
    ser = np.stack([smooth_scan] * 3)  # 30 planes along z
    with pytest.raises(InputError, match="no region is covered by every scan"):
        filters.align(ser, shifts=[[0, 0, 0], [15, 0, 0], [-15, 0, 0]])  # [15, 30 - 15): empty
    out = filters.align(ser, shifts=[[0, 0, 0], [14.5, 0, 0], [-14.0, 0, 0]])  # [15, 16): one plane
    assert out.shape == (3, 1, 34, 32) and out.attrs["crop"][0] == [15, 16]


def test_the_widest_median_window_is_taken_and_one_voxel_more_refused():
    from bigseg.filters._filters import _MAX_MEDIAN_WINDOW

    vol = np.zeros((3, 4, 5), np.float32)
    filters.median(vol, size=(1, 100, _MAX_MEDIAN_WINDOW // 100))  # lazy: built, not computed
    with pytest.raises(InputError, match="`size`"):
        filters.median(vol, size=(1, 1, _MAX_MEDIAN_WINDOW + 1))


def test_a_blank_scan_is_not_moved(smooth_scan):
    """A scan of one grey value (beam off, all outside the field of view) has nothing to match:
    shift 0 (said), not the NaN or arbitrary peak a correlation of zeros gives."""
    ser = np.stack([smooth_scan, np.full_like(smooth_scan, 3.0), ndi.shift(smooth_scan, (1, 0, -2), order=0)])
    with pytest.warns(UserWarning, match=r"scan\(s\) \[1\] hold no structure"):
        est = filters.estimate_shifts(da.from_array(ser, chunks=(1, 15, 17, 16)), sample=24)
    np.testing.assert_allclose(est[1], 0.0)
    np.testing.assert_allclose(est[2], [-1.0, 0.0, 2.0], atol=0.11)
