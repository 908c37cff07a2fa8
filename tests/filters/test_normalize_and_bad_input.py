"""normalize (global percentiles, exact) and the filters' bad-input errors."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import bigseg.filters as bf
from bigseg.errors import InputError


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("chunks", [(5, 7, 9), (17, 23, 30), 64])
def test_normalize_matches_numpy_percentiles(dtype, chunks):
    rng = np.random.default_rng(0)
    a = (rng.gamma(2.0, 300.0, (30, 40, 50))).astype(dtype)
    out = bf.normalize(da.from_array(a, chunks=chunks), low=0.5, high=99.5)
    lo, hi = np.percentile(a, [0.5, 99.5])
    assert out.attrs["normalize"] == pytest.approx((lo, hi), rel=1e-12, abs=0)
    ref = np.clip((a.astype(np.float32) - lo) / (hi - lo), 0, 1)
    res = out.values
    assert res.dtype == np.float32
    assert res.min() == 0.0 and res.max() == 1.0
    np.testing.assert_allclose(res, ref, rtol=1e-5, atol=1e-6)


def test_normalize_constant_volume_gives_zeros():
    out = bf.normalize(np.full((4, 5, 6), 7, np.uint8)).values
    assert out.dtype == np.float32 and not out.any()


def test_normalize_nan_raise_counts_and_propagate():
    a = np.random.default_rng(1).random((10, 11, 12)).astype(np.float32)
    a[1, 2, 3] = a[4, 5, 6] = np.nan
    a[7, 7, 7] = np.inf
    with pytest.raises(InputError, match=r"2 NaN and 1 infinite"):
        bf.normalize(da.from_array(a, chunks=4))
    out = bf.normalize(da.from_array(a, chunks=4), nan_policy="propagate")
    finite = a[np.isfinite(a)]
    assert out.attrs["normalize"] == pytest.approx(tuple(np.percentile(finite, [0.5, 99.5])))
    res = out.values
    assert np.isnan(res[1, 2, 3]) and res[7, 7, 7] == 1.0


@pytest.mark.parametrize("fn", [bf.median, bf.gaussian, bf.unsharp])
def test_nonfinite_raises_with_count_at_compute(fn):
    a = np.random.default_rng(2).random((9, 10, 11)).astype(np.float32)
    a[0, 0, 0] = np.nan
    a[5, 5, 5] = -np.inf
    a[8, 9, 10] = np.nan
    lazy = fn(da.from_array(a, chunks=(4, 5, 6)))  # lazy: nothing computed yet
    with pytest.raises(InputError, match=r"\d NaN and \d infinite voxels in one block and its halo \(the first at "
                                         r"z (0, y 0, x 0|5, y 5, x 5|8, y 9, x 10)\)"):
        lazy.values
    with pytest.raises(InputError, match=r"2 NaN and 1 infinite voxels in one block and its halo \(the first at z 0, "
                                         r"y 0, x 0\)"):
        fn(a).values  # one block: the whole count
    assert bf.count_nonfinite(da.from_array(a, chunks=(4, 5, 6))) == (2, 1)


@pytest.mark.parametrize("chunks", [(7, 9, 11), (10, 30, 30), (30, 30, 30), (1, 30, 30)])
def test_nonfinite_position_is_the_voxels_in_the_volume(chunks):
    # the halo'ed block's own coordinates were given (z 32:46 in a 30-slice volume)
    a = np.zeros((30, 30, 30), np.float32)
    a[25, 2, 17] = np.inf
    for fn in (bf.median, bf.gaussian):
        with pytest.raises(InputError, match=r"the first at z 25, y 2, x 17\).*nan_policy='propagate'") as e:
            fn(da.from_array(a, chunks=chunks)).values
        assert "fov='auto'" in str(e.value) and "pass its field of view" not in str(e.value)  # filters take none
    s = np.zeros((2, 12, 12, 12), np.float32)
    s[1, 7, 3, 4] = np.nan
    with pytest.raises(InputError, match=r"the first at t 1, z 7, y 3, x 4\)"):
        bf.gaussian(da.from_array(s, chunks=(1, 5, 5, 5))).values


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda v: bf.median(v, size=0), "`size`"),
        (lambda v: bf.median(v, size=(3, 3)), "`size`"),
        (lambda v: bf.median(v, size=2.5), "`size`"),
        (lambda v: bf.gaussian(v, sigma=0), "`sigma`"),
        (lambda v: bf.gaussian(v, sigma=-1.0), "`sigma`"),
        (lambda v: bf.gaussian(v, sigma=(1, 1)), "`sigma`"),
        (lambda v: bf.gaussian(v, sigma=1, truncate=0), "`truncate`"),
        (lambda v: bf.unsharp(v, radius=0), "`radius`"),
        (lambda v: bf.unsharp(v, radius=(3, 0, 0), axes="2d"), "`radius`"),
        (lambda v: bf.unsharp(v, amount=float("nan")), "`amount`"),
        (lambda v: bf.unsharp(v, axes="xy"), "`axes`"),
        (lambda v: bf.median(v, nan_policy="omit"), "`nan_policy`"),
        (lambda v: bf.normalize(v, low=60, high=40), "`low` < `high`"),
        (lambda v: bf.normalize(v, high=101), "`high`"),
    ],
)
def test_bad_parameters_name_the_argument(call, match):
    v = np.zeros((4, 5, 6), np.float32)
    with pytest.raises(InputError, match=match):
        call(v)


def test_bad_volumes():
    with pytest.raises(InputError, match="`vol`"):
        bf.median(np.zeros((4, 5)))
    with pytest.raises(InputError, match="`vol`"):
        bf.gaussian(np.zeros((2, 3, 4), complex))
    with pytest.raises(InputError, match="`vol`"):
        bf.median(np.zeros((0, 3, 4)))


def test_normalize_of_nothing_but_nan_is_refused_by_name():
    # nan_policy="propagate" takes the percentiles of the finite voxels: with none, say so
    with pytest.raises(InputError, match="`vol` to hold some finite values. Got 8 NaN and 0 infinite voxels of 8"):
        bf.normalize(np.full((2, 2, 2), np.nan, np.float32), nan_policy="propagate")
    a = np.random.default_rng(0).random((3, 6, 7)).astype(np.float32)
    inside = np.zeros((6, 7), bool)
    inside[2:4, 2:5] = True
    b = np.where(inside, np.nan, a)  # data outside the mask only
    with pytest.raises(InputError, match="`vol` to hold some finite values inside `mask`. Got 18 NaN"):
        bf.normalize(b, mask=inside, nan_policy="propagate")
    assert bf.normalize(b, nan_policy="propagate").attrs["normalize"][1] <= 1.0  # finite voxels outside: fine


def test_a_median_size_given_as_a_float_is_told_integers():
    """`median(size=3.0)` was told "Expected `size` to hold 3 positive values. Got 3.0": it is
    positive; what it must be is an integer."""
    with pytest.raises(InputError, match=r"`size` to hold 3 positive integers. Got 3.0"):
        bf.median(np.zeros((4, 5, 6), np.float32), size=3.0)


def test_an_unsharp_radius_along_z_only_in_2d_is_shown_as_given():
    """`unsharp(radius=(3, 0, 0), axes="2d")` was refused showing (0.0, 0.0, 0.0), a radius the
    user never gave."""
    with pytest.raises(InputError, match=r"along y or x for axes='2d' .*Got \(3.0, 0.0, 0.0\)"):
        bf.unsharp(np.zeros((4, 5, 6), np.float32), radius=(3, 0, 0), axes="2d")


@pytest.mark.parametrize("call, match", [
    (lambda v: bf.normalize(v, low="1"), r"Expected `low` to be a number in \[0, 100\]. Got '1' instead"),
    (lambda v: bf.normalize(v, high=b"99"), r"Expected `high` to be a number in \[0, 100\]. Got b'99' instead"),
    (lambda v: bf.gaussian(v, truncate="4"), r"Expected `truncate` to be a positive number. Got '4' instead"),
])
def test_a_number_given_as_text_is_refused_by_name(call, match):
    """`normalize(low="1")` ran (float() reads text) while `gaussian(sigma="1")` was refused: a
    number given as text is refused alike everywhere, naming the argument and the text."""
    with pytest.raises(InputError, match=match):
        call(np.zeros((4, 5, 6), np.float32))


@pytest.mark.parametrize("dtype, base", [(np.int32, 2**30), (np.int64, 2**50), (np.uint32, 2**31)])
def test_normalize_of_wide_integers_far_from_zero_is_not_rounded_to_float32(dtype, base):
    """int32/int64 values beyond 2**24 were cast to float32 before the low percentile was taken
    off: 2**30 + 0..99 mapped onto 2-3 levels (up to 0.65 off the exact [0, 1] mapping)."""
    a = (base + np.random.default_rng(2).integers(0, 100, (6, 7, 8))).astype(dtype)
    out = bf.normalize(da.from_array(a, chunks=(5, 3, 7)))
    lo, hi = np.percentile(a.astype(np.float64), [0.5, 99.5])
    ref = np.clip((a.astype(np.float64) - lo) / (hi - lo), 0, 1).astype(np.float32)
    np.testing.assert_allclose(out.values, ref, atol=1e-6)


def test_normalize_of_a_constant_volume_keeps_inf_as_1_and_nan_as_nan():
    """``low == high``: an inf voxel came out NaN (x * 0), not the 1/0 that +-inf map to."""
    a = np.full((3, 4, 5), 3.0, np.float32)
    a[0, 0, 0], a[1, 1, 1], a[2, 2, 2] = np.inf, -np.inf, np.nan
    out = bf.normalize(da.from_array(a, chunks=2), nan_policy="propagate").values
    assert out[0, 0, 0] == 1.0 and out[1, 1, 1] == 0.0 and np.isnan(out[2, 2, 2])
    assert np.isnan(out).sum() == 1 and np.nansum(out) == 1.0


def test_normalize_of_uint64_beyond_2_63_is_no_overflow_traceback():
    """uint64 values beyond int64's range: OverflowError in the histogram's offset."""
    a = (np.uint64(2**63 + 5) + np.arange(24, dtype=np.uint64) * np.uint64(2**12)).reshape(2, 3, 4)
    out = bf.normalize(da.from_array(a, chunks=(1, 2, 3)))
    assert out.attrs["normalize"] == pytest.approx(tuple(np.percentile(a.astype(np.float64), [0.5, 99.5])), rel=1e-15)


@pytest.mark.parametrize("call, match", [
    (lambda v: bf.median(v, size=10**12), r"Expected `size` a window of at most 100,000 voxels.*\(1000000000000, "),
    (lambda v: bf.gaussian(v, sigma=1e12), r"Expected `sigma` \* `truncate`.*Got sigma=\(1000000000000.0, "),
    (lambda v: bf.gaussian(v, truncate=1e12), r"Expected `sigma` \* `truncate`.*truncate=1000000000000.0 instead"),
    (lambda v: bf.unsharp(v, radius=1e12), r"Expected `radius` \* `truncate`.*Got radius=\(1000000000000.0, "),
    (lambda v: bf.unsharp(v, amount="1.0"), r"Expected `amount` to be a finite number. Got '1.0' instead"),
    (lambda v: bf.unsharp(v, amount=True), r"Expected `amount` to be a finite number. Got True instead"),
], ids=["median-size-huge", "gaussian-sigma-huge", "gaussian-truncate-huge", "unsharp-radius-huge",
        "unsharp-amount-text", "unsharp-amount-bool"])
def test_argument_sweep_refuses_at_the_call(call, match):
    """From the argument sweep: `median(size=10**12)` passed the window check (NumPy's int64
    product wrapped round) and a huge sigma/radius/truncate asked scipy for TiBs of kernel, each
    a raw ValueError/MemoryError at compute; `unsharp(amount="1.0")` or `True` ran. Now each is an
    InputError at the call, naming the argument and its value."""
    with pytest.raises(InputError, match=match):
        call(np.zeros((4, 5, 6), np.float32))


def test_percentiles_given_as_fractions_are_warned_about():
    """normalize(low=0.005, high=0.995), fractions meant, mapped all but the darkest 1 % to white
    without a word."""
    v = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"`low`=0.005, `high`=0.995 are percentiles in \[0, 100\].*"
                                         r"Then low=0.5, high=99.5") as said:
        out = bf.normalize(v, low=0.005, high=0.995)
    assert [w.filename for w in said] == [__file__]  # at the caller's line
    assert float((out == 1).mean().compute()) > 0.98
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bf.normalize(v, low=0.5, high=99.5)
        bf.normalize(v, low=0, high=1.5)
