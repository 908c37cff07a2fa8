"""Spread over samples and uncertainty from probabilities."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from bigseg.kernels.metrics import interface_mask
from bigseg.measure import over_samples, perturbation_spread, probability_uncertainty, scores, spread, volume_fractions


def test_spread_mean_std(labels):
    segs = [labels, np.roll(labels, 1, 0), labels[::-1]]
    out = spread([scores(labels, s) for s in segs])
    ious = np.array([scores(labels, s).iou.values for s in segs])
    np.testing.assert_allclose(out.iou_mean.values, ious.mean(0))
    np.testing.assert_allclose(out.iou_std.values, ious.std(0, ddof=1))
    assert out.attrs["samples"] == 3 and "accuracy_std" in out
    vf = over_samples(volume_fractions, segs)
    assert vf.volume_fraction_std.dims == ("phase",)
    one = volume_fractions(labels)  # a DataArray's voxel size and shape stay with the spread
    assert vf.attrs["voxel_size"] == one.attrs["voxel_size"] and vf.attrs["shape"] == one.attrs["shape"]
    assert "long_name" not in vf.attrs


def test_spread_refuses_a_dim_of_the_results_own(labels):
    """`spread(..., dim="phase")` concatenated the phases and averaged them into one number per
    metric (samples: 2), silently; an int `dim` raised AttributeError."""
    from bigseg.errors import InputError

    fractions = [volume_fractions(labels), volume_fractions(np.roll(labels, 1, 0))]
    for dim in ("phase", 3, ""):
        with pytest.raises(InputError, match=rf"Expected `dim` to name a new dimension .*\['phase'\]\). Got {dim!r}"):
            spread(fractions, dim=dim)
    assert spread(fractions, dim="segmentation").volume_fraction_mean.dims == ("phase",)
    with pytest.raises(InputError, match="at least two metric Datasets. Got list of length 1 instead"):
        spread(fractions[:1])


def _toy_perturb(truth, *, ratio, iterations, seed):
    """Stand-in for bigseg.synth.perturb: dilate phase 1 at a random subset of interface voxels."""
    rng = np.random.default_rng(seed)
    lab = np.asarray(truth).copy()
    for _ in range(iterations):
        grow = ndi.binary_dilation(lab == 1) & (lab != 1) & (rng.random(lab.shape) < ratio)
        lab[grow] = 1
    return lab


def test_perturbation_spread(labels):
    pred = labels.copy()
    out = perturbation_spread(labels, pred, n=3, perturb=_toy_perturb, ratio=0.3, iterations=2)
    samples = [_toy_perturb(labels, ratio=0.3, iterations=2, seed=i) for i in range(3)]
    fr = np.array([np.bincount(s.ravel(), minlength=3) / s.size for s in samples])
    np.testing.assert_allclose(out.volume_fraction_mean.values, fr.mean(0))
    np.testing.assert_allclose(out.volume_fraction_std.values, fr.std(0, ddof=1))
    assert out.volume_fraction_std.sel(phase="cbd").item() > 0
    for name in ("iou_mean", "iou_std", "area_mean", "voxel_fraction_std", "accuracy_mean"):
        assert name in out


def _ball(r):
    g = np.arange(-r, r + 1)
    return (g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) <= r**2


def _reference_uncertainty(p, threshold, distance, labels=None):
    lab = p.argmax(0) if labels is None else labels
    iface = interface_mask(lab)
    near = ndi.binary_dilation(iface, structure=_ball(distance))
    unc = p.max(0) < threshold
    return unc.mean(), (unc & near).sum() / unc.sum(), near.mean()


@pytest.mark.parametrize("chunks", [(3, 11, 17, 9), (3, 40, 5, 56)], ids=str)
def test_probability_uncertainty_exact(labels, chunks):
    rng = np.random.default_rng(0)
    logits = np.eye(3)[labels].transpose(3, 0, 1, 2) * 3 + ndi.gaussian_filter(rng.standard_normal((3,) + labels.shape), (0, 1, 1, 1)) * 4
    p = np.exp(logits) / np.exp(logits).sum(0)
    p = p.astype(np.float32)
    ds = probability_uncertainty(da.from_array(p, chunks=chunks), threshold=0.6, distance=2)
    unc, share, near = _reference_uncertainty(p, 0.6, 2)
    assert ds.uncertain_fraction.item() == pytest.approx(unc, rel=1e-12)
    assert ds.uncertain_near_interface.item() == pytest.approx(share, rel=1e-12)
    assert ds.near_interface_fraction.item() == pytest.approx(near, rel=1e-12)
    assert 0 < unc < 1 and share > 0.5  # uncertain voxels crowd at interfaces
    ds2 = probability_uncertainty(p, threshold=0.6, distance=1, labels=labels)
    unc2, share2, _ = _reference_uncertainty(p, 0.6, 1, labels)
    assert ds2.uncertain_near_interface.item() == pytest.approx(share2, rel=1e-12)


def test_a_wide_zone_near_interfaces_is_the_balls_and_fast_by_the_distance_transform(labels):
    """Beyond a few voxels the zone is a threshold of the distance transform, not a dilation by a
    ball (1 s per 72³ block at 10 voxels, 26 s at 16): the same voxels, whatever the chunking, and
    no zone at all in blocks without an interface."""
    from bigseg.measure import _uncertainty

    rng = np.random.default_rng(2)
    lab = np.zeros(labels.shape, np.uint8)  # two slabs and a ball: voxels far from every interface
    lab[:, :, 30:] = 2
    zz, yy, xx = np.ogrid[: lab.shape[0], : lab.shape[1], : lab.shape[2]]
    lab[(zz - 20) ** 2 + (yy - 24) ** 2 + (xx - 12) ** 2 < 36] = 1
    logits = np.eye(3)[lab].transpose(3, 0, 1, 2) * 3 + rng.standard_normal((3,) + lab.shape) * 2
    p = (np.exp(logits) / np.exp(logits).sum(0)).astype(np.float32)
    d = _uncertainty._BALL_UP_TO + 3
    ds = probability_uncertainty(da.from_array(p, chunks=(3, 11, 17, 9)), threshold=0.6, distance=d,
                                 labels=da.from_array(lab, chunks=(11, 17, 9)))
    unc, share, near = _reference_uncertainty(p, 0.6, d, lab)
    assert ds.near_interface_fraction.item() == pytest.approx(near, rel=1e-12) and 0.2 < near < 0.9
    assert ds.uncertain_near_interface.item() == pytest.approx(share, rel=1e-12)
    for dist in (0, 1, _uncertainty._BALL_UP_TO, _uncertainty._BALL_UP_TO + 1, 12):  # both ways, the same voxels
        iface = interface_mask(labels)
        want = ndi.binary_dilation(iface, structure=_ball(dist)) if dist else iface
        np.testing.assert_array_equal(_uncertainty.near_interface(iface, dist), want)
    assert not _uncertainty.near_interface(np.zeros((5, 6, 7), bool), 12).any()  # none: none near


@pytest.mark.parametrize("chunks", [(3, 11, 17, 9), (3, 40, 5, 56)], ids=str)
def test_probability_uncertainty_leaves_out_voxels_of_no_data(labels, chunks):
    """Outside a field of view (NaN probabilities, labels 255) counts nowhere, and its rim is
    no interface (was: the fill's guesses counted, the rim read as an interface)."""
    rng = np.random.default_rng(1)
    logits = np.eye(3)[labels].transpose(3, 0, 1, 2) * 3 + rng.standard_normal((3,) + labels.shape) * 2
    p = (np.exp(logits) / np.exp(logits).sum(0)).astype(np.float32)
    yy, xx = np.ogrid[: labels.shape[1], : labels.shape[2]]
    inside = (yy - labels.shape[1] / 2) ** 2 + (xx - labels.shape[2] / 2) ** 2 < (min(labels.shape[1:]) / 2.2) ** 2
    p[:, :, ~inside] = np.nan
    cut = np.where(inside, labels, 255).astype(np.uint8)
    ds = probability_uncertainty(da.from_array(p, chunks=chunks), threshold=0.6, distance=2)
    # the reference: every voxel of data, interfaces between two of them only
    known = np.broadcast_to(inside, labels.shape)
    lab = np.where(known, p.argmax(0), 255)
    iface = interface_mask(lab, ignore=255)
    near = ndi.binary_dilation(iface, structure=_ball(2)) & known
    unc = (np.nan_to_num(p, nan=1).max(0) < 0.6) & known
    assert ds.uncertain_fraction.item() == pytest.approx(unc.sum() / known.sum(), rel=1e-12)
    assert ds.near_interface_fraction.item() == pytest.approx(near.sum() / known.sum(), rel=1e-12)
    assert ds.uncertain_near_interface.item() == pytest.approx((unc & near).sum() / unc.sum(), rel=1e-12)
    assert ds.attrs["voxels"] == known.sum() and 0 < ds.uncertain_fraction.item() < 1
    # labels 255 (probabilities finite there): the same voxels left out
    q = np.nan_to_num(p, nan=1 / 3)
    by_labels = probability_uncertainty(q, threshold=0.6, distance=2, labels=cut)
    near2 = ndi.binary_dilation(interface_mask(cut, ignore=255), structure=_ball(2)) & known
    assert by_labels.near_interface_fraction.item() == pytest.approx(near2.sum() / known.sum(), rel=1e-12)
    assert by_labels.attrs["voxels"] == known.sum()


def test_series_dims_for_agreement_and_probabilities(labels):
    from bigseg.io import make_volume
    from bigseg.measure import agreement

    s1 = make_volume(np.stack([labels, labels]), phases=["pore", "cbd", "active"])
    s2 = make_volume(np.stack([labels, np.roll(labels, 1, 0)]), phases=["pore", "cbd", "active"])
    ag = agreement([s1, s2])
    assert ag.fraction_std.dims == ("t", "phase") and ag.mean_differing_fraction.dims == ("t",)
    assert ag.mean_differing_fraction.values[0] == 0 and ag.mean_differing_fraction.values[1] > 0
    p = np.eye(3, dtype=np.float32)[labels].transpose(3, 0, 1, 2) * 0.5 + 0.5 / 3
    ds = probability_uncertainty(np.stack([p, np.full_like(p, 1 / 3)]), threshold=0.5)
    assert ds.uncertain_fraction.dims == ("t",)
    np.testing.assert_allclose(ds.uncertain_fraction.values, [0.0, 1.0])


def test_over_samples_refuses_what_is_no_list_of_segmentations_by_name():
    """A metric's name instead of the metric raised Python's "'str' object is not callable"; an
    empty list was said as `results` (spread's argument, not over_samples')."""
    from bigseg.errors import InputError

    segs = np.random.default_rng(0).integers(0, 3, (3, 4, 5, 6)).astype(np.uint8)
    with pytest.raises(InputError, match=r"`metric` to be a function .* Got 'volume_fraction'"):
        over_samples("volume_fraction", list(segs))
    for bad, got in (([], "list of length 0"), (segs[0], "ndarray of 3 dimensions"), ([segs[0]], "list of length 1")):
        with pytest.raises(InputError, match=rf"`samples` to be a list of at least two segmentations.*Got {got}"):
            over_samples(volume_fractions, bad)
    stacked = over_samples(volume_fractions, segs)  # an array of them along its first axis: as their list
    import xarray as xr

    xr.testing.assert_identical(stacked, over_samples(volume_fractions, list(segs)))


def test_a_zone_of_32_voxels_is_allowed_and_exact():
    """The cap of `distance` is 32 voxels (the distance transform made a wide zone cheap: it was
    10 while the ball's dilation grew as distance**4): 32 is measured, exactly for a chunking
    narrower than its halo, 33 is refused."""
    lab = np.zeros((4, 6, 70), np.uint8)
    lab[:, :, 35:] = 1  # one interface, across x at 34 | 35
    p = np.stack([lab == 0, lab == 1]).astype(np.float32) * 0.8 + 0.1
    ds = probability_uncertainty(da.from_array(p, chunks=(2, 4, 6, 9)), threshold=0.5, distance=32)
    # within 32 voxels of the interface voxels x = 34 and 35: x in [2, 67], 66 of 70 columns
    assert ds.near_interface_fraction.item() == pytest.approx(66 / 70, rel=1e-12)
    from bigseg.errors import InputError

    with pytest.raises(InputError, match="to be at most 32"):
        probability_uncertainty(p, threshold=0.5, distance=33)


def test_a_wide_zone_takes_the_distance_transform_not_the_balls_dilation(monkeypatch):
    """Beyond _BALL_UP_TO the zone is the distance transform's (the ball's dilation took 1 s per
    72³ block at 10 voxels, 26 s at 16): a return to the dilation is caught by its call, not by time."""
    from bigseg.measure import _uncertainty

    def no_ball(*args, **kwargs):
        raise AssertionError("dilated by a ball beyond _BALL_UP_TO")

    monkeypatch.setattr(_uncertainty.ndi, "binary_dilation", no_ball)
    iface = np.zeros((9, 9, 9), bool)
    iface[4, 4, 4] = True
    d = _uncertainty._BALL_UP_TO + 1
    near = _uncertainty.near_interface(iface, d)
    assert near.sum() == (_ball(d)[d - 4:d + 5, d - 4:d + 5, d - 4:d + 5]).sum()  # the ball, cut to the box
    with pytest.raises(AssertionError, match="ball"):
        _uncertainty.near_interface(iface, _uncertainty._BALL_UP_TO)  # (up to it: the ball's, faster there)
