"""Field of view: detection, masks, fills, masked normalisation, and segmentation inside it."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import bigseg
from bigseg.errors import InputError
from bigseg.filters import normalize
from bigseg.io import fill_outside, fill_outside_like_inside, fov_mask
from bigseg.ops import masked_values, percentiles


def _circle(ny, nx, cy, cx, r):
    yy, xx = np.ogrid[:ny, :nx]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


@pytest.fixture(scope="module")
def rec():
    """A float reconstruction: noise inside an off-centre circle, 0 outside."""
    a = np.random.default_rng(0).normal(1.0, 0.3, (6, 40, 52)).astype(np.float32)
    inside = _circle(40, 52, 20.0, 24.0, 18.5)
    a[:, ~inside] = 0
    return a, inside


@pytest.mark.parametrize("chunks", [(6, 40, 52), (4, 7, 11)], ids=str)
def test_auto_finds_a_constant_fill(rec, chunks):
    a, inside = rec
    m = fov_mask(da.from_array(a, chunks=chunks))
    np.testing.assert_array_equal(m.values, inside)
    assert m.dims == ("y", "x") and m.attrs["found"] and m.attrs["fill"] == 0.0
    assert m.attrs["inside_fraction"] == pytest.approx(inside.mean())
    nan = np.where(inside, a, np.nan)
    np.testing.assert_array_equal(fov_mask(nan).values, inside)
    # a fill column inside the sample (not connected to the edge) stays inside
    b = a.copy()
    b[:, 20, 24] = 0
    np.testing.assert_array_equal(fov_mask(b).values, inside)


def test_auto_on_integer_volumes(rec):
    a, inside = rec
    u16 = np.where(inside, np.clip(a * 20000, 1, 65535), 0).astype(np.uint16)
    m = fov_mask(da.from_array(u16, chunks=(4, 7, 11)))
    np.testing.assert_array_equal(m.values, inside)
    assert m.attrs["fill"] == 0
    labels = np.repeat(np.where(inside, 1, 255).astype(np.uint8)[None], 3, axis=0)  # labels: the 255 fill is found too
    assert fov_mask(labels).attrs["fill"] == 255 and (fov_mask(labels).values == inside).all()


def test_auto_finds_nothing_in_noise():
    m = fov_mask(np.random.default_rng(1).random((3, 10, 12)))
    assert m.values.all() and not m.attrs["found"]
    one = fov_mask(np.random.default_rng(1).random((1, 10, 12)))  # one slice: every column is "constant"
    assert one.values.all() and not one.attrs["found"]


def test_circles_and_margin():
    vol = np.zeros((2, 30, 40), np.uint8)
    np.testing.assert_array_equal(fov_mask(vol, "cylinder").values, _circle(30, 40, 14.5, 19.5, 15))
    np.testing.assert_array_equal(fov_mask(vol, (10, 12, 7.5)).values, _circle(30, 40, 10, 12, 7.5))
    np.testing.assert_array_equal(fov_mask(vol, "10, 12, 7.5").values, _circle(30, 40, 10, 12, 7.5))
    shrunk = fov_mask(vol, (15, 20, 10), margin=3).values
    assert shrunk.sum() < _circle(30, 40, 15, 20, 10).sum()
    assert (shrunk <= _circle(30, 40, 15, 20, 10)).all() and shrunk[15, 20] and not shrunk[15, 28]
    given = np.zeros((30, 40), bool)
    given[5:9, 3:7] = True
    np.testing.assert_array_equal(fov_mask(vol, given).values, given)


@pytest.mark.parametrize("fov, match", [
    ("sphere", "`fov` to be 'auto'"), ((1, 2), "`fov` to be"), ((5, 5, 0), "`fov` to be"), ("a,b,c", "`fov` to be"),
    (np.ones((3, 3), bool), r"`fov` as a mask to have the volume's \(y, x\) shape \(30, 40\)"),
    (np.ones((2, 30, 40), bool), r"`fov` as a mask to be a \(y, x\)"),
    ((-50, -50, 2), "`fov` to hold some of the volume"),
])
def test_bad_fov_is_named(fov, match):
    with pytest.raises(InputError, match=match):
        fov_mask(np.zeros((2, 30, 40), np.uint8), fov)
    with pytest.raises(InputError, match="`margin`"):
        fov_mask(np.zeros((2, 30, 40), np.uint8), "cylinder", margin=-1)


def test_fill_outside_keeps_the_inside(rec):
    a, inside = rec
    v = bigseg.io.make_volume(da.from_array(a, chunks=(4, 7, 11)), voxel_size=2.0, unit="um")
    out = fill_outside(v, inside, -1)
    assert out.attrs["unit"] == "um" and out.dtype == a.dtype
    np.testing.assert_array_equal(out.values, np.where(inside, a, -1))
    x = [fill_outside_like_inside(bigseg.io.make_volume(da.from_array(a, chunks=c)), inside).values
         for c in ((4, 7, 11), (6, 40, 52))]
    np.testing.assert_array_equal(x[0], x[1])  # the noise is a function of the voxel, not of the chunk
    np.testing.assert_array_equal(x[0][:, inside], a[:, inside])
    assert x[0][:, ~inside].mean() == pytest.approx(a[:, inside].mean(), abs=0.02)
    assert x[0][:, ~inside].std() == pytest.approx(a[:, inside].std(), rel=0.05)


def test_integer_fill_stays_in_range():
    a = np.full((4, 20, 20), 250, np.uint8)
    a[:, ::2] = 5  # mean 127.5, spread 122.5: noise beyond 0..255 is clipped, not wrapped
    inside = np.zeros((20, 20), bool)
    inside[5:15, 5:15] = True
    out = fill_outside_like_inside(bigseg.io.make_volume(a), inside).values
    assert out.dtype == np.uint8
    outside = out[:, ~inside].astype(int)
    assert (outside == 0).any() and (outside == 255).any()
    assert abs(outside.mean() - 127.5) < 12


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32])
def test_integer_fill_near_the_dtypes_top_does_not_wrap(dtype):
    """Was: the noise clipped in float32 to the dtype's largest value, which float32 rounds up to one
    past it: an int32 volume near 2**31 got -2**31 outside (and a RuntimeWarning from the cast)."""
    top = int(np.iinfo(dtype).max)
    a = np.full((4, 16, 16), top - 400, dtype)
    a[:, ::2] = top
    inside = np.zeros((16, 16), bool)
    inside[4:12, 4:12] = True
    out = fill_outside_like_inside(bigseg.io.make_volume(a), inside).values
    outside = out[:, ~inside]
    assert out.dtype == dtype and outside.min() >= top - 2000 and (outside == top).any()


def test_masked_values_and_normalize_inside(rec):
    a, inside = rec
    x = masked_values(da.from_array(a, chunks=(4, 7, 11)), inside)
    np.testing.assert_array_equal(np.sort(x.compute()), np.sort(a[:, inside].ravel()))
    assert percentiles(x, [1, 99]) == pytest.approx(np.percentile(a[:, inside], [1, 99]), rel=1e-12)
    b = np.where(inside, a, np.nan)  # NaN outside counts for nothing
    n = normalize(da.from_array(b, chunks=(4, 7, 11)), low=1, high=99, mask=inside)
    assert n.attrs["normalize"] == pytest.approx(tuple(np.percentile(a[:, inside], [1, 99])), rel=1e-12)
    series = np.stack([a, 2 * a])
    ns = normalize(series, low=1, high=99, mask=inside)
    assert ns.attrs["normalize"] == pytest.approx(tuple(np.percentile(series[:, :, inside], [1, 99])), rel=1e-12)
    with pytest.raises(InputError, match=r"`mask` to be a boolean array over the trailing axes"):
        normalize(a, mask=np.ones((3, 3), bool))
    with pytest.raises(InputError, match="`mask` to select some voxels"):
        normalize(a, mask=np.zeros(inside.shape, bool))


def test_segment_inside_a_cylinder():
    lab = bigseg.synth.electrode((24, 64, 64), seed=3)
    img = bigseg.synth.xct(lab, seed=3)
    inside = fov_mask(img, "cylinder")
    rec = fill_outside(img, inside, 0)  # a masked reconstruction
    truth = fill_outside(lab, inside, 255)
    ds = bigseg.infer.segment(rec, "default", fov="auto")
    labels = ds["labels"].values
    assert (labels[:, ~inside.values] == 255).all() and (labels[:, inside.values] < 3).all()
    assert ds.attrs["fov"] == "auto" and ds.attrs["fov_inside_fraction"] == pytest.approx(inside.values.mean())
    with_fov = bigseg.measure.summary(labels, truth=truth)
    without = bigseg.measure.summary(bigseg.infer.segment(rec, "default")["labels"], truth=truth)
    true = bigseg.measure.volume_fractions(truth)
    # the flat fill read as pore skews the fractions; inside the field of view they come right
    err = [float(np.abs(s.volume_fraction - true).max()) for s in (with_fov, without)]
    assert err[0] < 0.03 < err[1]
    assert with_fov.iou.values[0] > without.iou.values[0] + 0.02


def test_fill_outside_takes_plain_arrays_and_refuses_a_value_the_dtype_cannot_hold(rec):
    a, inside = rec
    for vol in (a, da.from_array(a, chunks=(3, 20, 26))):  # plain arrays, as every volume function takes them
        out = fill_outside(vol, inside, -1)
        np.testing.assert_array_equal(out.values, np.where(inside, a, -1))
        x = fill_outside_like_inside(vol, inside)
        np.testing.assert_array_equal(x.values[:, inside], a[:, inside])
    labels = (a > 1).astype(np.uint8)
    for value in (np.nan, 300, -1, 2.5, "x"):  # not wrapped, rounded or failing inside NumPy
        with pytest.raises(InputError, match="Expected `value` to be a number the volume's dtype uint8 can hold"):
            fill_outside(labels, inside, value)
    assert (fill_outside(labels, inside, 255.0).values[:, ~inside] == 255).all()


def test_fill_outside_refuses_complex_overflowing_and_non_boolean_values(rec):
    """QA (static analysis): a complex value was Python's TypeError for an integer volume and lost
    its imaginary part for a float one; 1e300 became inf in float32, 0.5 became True."""
    a, inside = rec
    for dtype, value in ((np.uint8, 1 + 2j), (np.float32, 1 + 2j), (np.float32, 1e300), (bool, 0.5), (bool, 2)):
        with pytest.raises(InputError, match="Expected `value` to be a number the volume's dtype"):
            fill_outside(a.astype(dtype), inside, value)
    for dtype, value in ((np.float32, np.nan), (np.float32, -np.inf), (np.float32, 3.4e38), (bool, 1), (bool, False)):
        out = fill_outside(a.astype(dtype), inside, value).values[:, ~inside]
        assert out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out, np.asarray(value).astype(dtype))


def test_empty_or_3d_masks_are_refused_by_name(rec):
    a, inside = rec
    with pytest.raises(InputError, match="`mask` to select some of the"):
        fill_outside_like_inside(a, np.zeros(inside.shape, bool))
    with pytest.raises(InputError, match="`mask` to be a \\(y, x\\) field of view holding some voxels. Got an all-False"):
        bigseg.io.inscribed_box(np.zeros(inside.shape, bool))
    with pytest.raises(InputError, match="Got shape \\(6, 40, 52\\)"):
        bigseg.io.inscribed_box(np.broadcast_to(inside, a.shape))


def test_a_mask_of_zeros_and_ones_is_a_field_of_view():
    """A 0/1 mask (uint8, as ImageJ and most tools save one) was refused by `fov=`, its whole
    array printed in the message, while fill_outside took it; it is a mask now, and an integer
    image of other values is refused by its values, not printed."""
    import xarray as xr

    from bigseg.baselines import threshold

    vol = np.random.default_rng(0).random((2, 30, 40)).astype(np.float32)
    given = np.zeros((30, 40), bool)
    given[5:25, 3:37] = True
    for m in (given.astype(np.uint8), given.astype(np.int64), xr.DataArray(given.astype(np.uint8), dims=("y", "x"))):
        np.testing.assert_array_equal(fov_mask(vol, m).values, given)
    np.testing.assert_array_equal(threshold(vol, fov=given.astype(np.uint8)).values,
                                  threshold(vol, fov=given).values)
    with pytest.raises(InputError, match=r"`fov` as a mask to hold True/False \(or 1/0\)\. Got an array of dtype "
                                         r"uint8 with the values \[0, 1, 7\] instead") as err:
        bad = given.astype(np.uint8)
        bad[0, 0] = 7
        fov_mask(vol, bad)
    assert "array([" not in str(err.value)
    with pytest.raises(InputError, match=r"Got an array of dtype float64 and shape \(30, 40\) instead"):
        fov_mask(vol, given.astype(float))
