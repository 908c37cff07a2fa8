"""QA of the shells, radial and slice profiles and the uncertainty measures against whole-array
NumPy references: the cases that once gave wrong or misleading results."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import bigseg
from bigseg.errors import InputError
from bigseg.measure import over_samples, perturbation_spread, probability_uncertainty, profile, radial_profile


@pytest.fixture(scope="module")
def lab() -> np.ndarray:
    return bigseg.synth.electrode((10, 14, 16), radius=(3, 1), seed=3).values


def _radial_reference(lab, centre, step):
    ny, nx = lab.shape[-2:]
    yy, xx = np.meshgrid(np.arange(ny) - centre[0], np.arange(nx) - centre[1], indexing="ij")
    rbin = np.broadcast_to(np.floor(np.hypot(yy, xx) / step).astype(int), lab.shape)
    n = rbin.max() + 1
    counts = np.array([np.bincount(rbin[lab == p], minlength=n) for p in range(3)], float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / counts.sum(axis=0)


@pytest.mark.parametrize("centre", [(500.0, 600.0), (-1e5, 5.0), (7.0, 16.0), (-0.6, 3.0)], ids=str)
def test_radial_centre_outside_the_cross_section_is_refused(lab, centre):
    # (500, 600), e.g. a centre in nm, gave ~390 shells of NaN; (-1e9, 5) a MemoryError
    # (29.8 GiB of shells) after the value check's pass over the data
    with pytest.raises(InputError, match=r"`centre`.*inside the cross-section.*Got"):
        radial_profile(da.from_array(lab, chunks=(7, 5, 11)), centre=centre, step=2)


@pytest.mark.parametrize("centre", [(-0.5, 15.5), (13.5, 0.0), (0.0, 0.0)], ids=str)
def test_radial_centre_on_the_cross_sections_edge_matches_numpy(lab, centre):
    out = radial_profile(da.from_array(lab, chunks=(1, 17, 4)), centre=centre, step=2.5)
    np.testing.assert_allclose(out.values, _radial_reference(lab, centre, 2.5), rtol=1e-12)


def test_probability_uncertainty_series_keeps_its_times_and_each_scans_voxels(lab):
    rng = np.random.default_rng(1)
    p = rng.dirichlet([1, 1, 1], size=(2,) + lab.shape).transpose(0, 4, 1, 2, 3).astype(np.float32)
    p[1, :, :4] = np.nan  # the second scan: 4 slices of no data
    probs = xr.DataArray(da.from_array(p, chunks=(1, 3, 7, 5, 11)), dims=("t", "phase", "z", "y", "x"),
                         coords={"t": xr.Variable("t", [10.0, 20.0], {"units": "min"})})
    ds = probability_uncertainty(probs, threshold=0.5, distance=1)
    finite = np.isfinite(p).all(axis=1)
    known = finite.sum(axis=(1, 2, 3))  # (2,): 2240 and 1344 voxels of data
    unc = ((np.where(finite, p.max(axis=1), 1.0) < 0.5) & finite).sum(axis=(1, 2, 3))
    np.testing.assert_array_equal(ds.voxels.values, known)  # was attrs["voxels"] = 2240, the first scan's
    np.testing.assert_array_equal(ds.uncertain_voxels.values, unc)
    np.testing.assert_allclose(ds.uncertain_fraction.values, unc / known, rtol=1e-12)
    np.testing.assert_array_equal(ds.t.values, [10.0, 20.0])  # was 0, 1 (no coordinate)
    assert ds.t.attrs["units"] == "min" and "voxels" not in ds.attrs


def test_perturbation_spread_refuses_bad_arguments_before_perturbing(lab):
    calls = []

    def perturb(truth, **kwargs):
        calls.append(kwargs)
        return truth

    with pytest.raises(InputError, match="`method`.*'bogus'"):
        perturbation_spread(lab, n=2, method="bogus", perturb=perturb)
    with pytest.raises(InputError, match="`pred`"):
        perturbation_spread(lab, lab[:-1], n=2, perturb=perturb)
    assert calls == []  # was one perturbation and a pass over the data first
    out = perturbation_spread(lab, lab, n=2, perturb=perturb)  # still measures
    np.testing.assert_allclose(out.volume_fraction_mean.values, np.bincount(lab.ravel(), minlength=3) / lab.size)
    np.testing.assert_allclose(out.iou_mean.values, 1.0)


def test_spread_leaves_out_coordinates_that_differ_between_samples(lab):
    cut = lab.copy()
    cut[:, :5] = 255  # the second segmentation leaves a band unlabelled: fewer voxels per bin
    out = over_samples(profile, [lab, cut], axis="z", step=4)
    ref = []
    for seg in (lab, cut):
        fr = []
        for s in range(0, lab.shape[0], 4):
            b = seg[s:s + 4]
            fr.append([(b == j).sum() / (b != 255).sum() for j in range(3)])
        ref.append(np.array(fr).T)
    np.testing.assert_allclose(out.volume_fraction_mean.values, np.mean(ref, axis=0), rtol=1e-12)
    np.testing.assert_allclose(out.volume_fraction_std.values, np.std(ref, axis=0, ddof=1), rtol=1e-12)
    # bin_voxels (first segmentation's alone: 896 where the second has 576) describes no mean
    assert "bin_voxels" not in out.coords
    np.testing.assert_allclose(out.z.values, [1.5, 5.5, 8.5])  # the shared coordinates stay
    same = over_samples(profile, [lab, lab[::-1, ::-1]], axis="z", step=4)
    np.testing.assert_array_equal(same.bin_voxels.values, [896, 896, 448])


def test_probability_uncertainty_refuses_the_phase_axis_elsewhere(lab):
    p = np.eye(3, dtype=np.float32)[lab]  # (z, y, x, phase): read as 10 phases of 14 x 16 x 3 before
    with pytest.raises(InputError, match=r"`probabilities`.*\('z', 'y', 'x', 'phase'\)"):
        probability_uncertainty(xr.DataArray(p, dims=("z", "y", "x", "phase")))
    ds = probability_uncertainty(xr.DataArray(p, dims=("z", "y", "x", "phase")).transpose("phase", ...))
    assert ds.attrs["voxels"] == lab.size and ds.uncertain_voxels.item() == 0


def test_probability_uncertainty_refuses_labels_of_other_values():
    """`labels` holding a 7 beside 3 phases: the 7s made interfaces of their own, silently."""
    from bigseg.errors import InputError
    from bigseg.measure import probability_uncertainty

    prob = np.full((3, 5, 6, 7), 1 / 3, np.float32)
    lab = np.zeros((5, 6, 7), np.uint8)
    lab[2] = 7
    with pytest.raises(InputError, match=r"`labels` to hold values 0\.\.2 or 255.*1 distinct: 7"):
        probability_uncertainty(prob, labels=lab)
    lab[2] = 255  # unlabelled: left out, as documented
    assert probability_uncertainty(prob, labels=lab).attrs["voxels"] == 4 * 6 * 7


def test_interface_profile_gives_each_bins_labelled_voxels_as_profile_does():
    """`profile` has `bin_voxels` (to weigh the bins); `interface_profile` had none."""
    from bigseg.measure import interface_profile, profile

    lab = np.random.default_rng(2).integers(0, 3, (9, 8, 7)).astype(np.uint8)
    lab[:3, :4] = 255
    for method in ("faces", "crofton"):
        got = interface_profile(lab, axis="z", step=2, method=method)
        np.testing.assert_array_equal(got.bin_voxels.values, profile(lab, axis="z", step=2).bin_voxels.values)
        np.testing.assert_array_equal(got.bin_voxels.values, [(lab[i:i + 2] < 3).sum() for i in range(0, 9, 2)])


def test_perturbation_spread_takes_phase_names():
    """Labels of four phases stating no names could not be measured (no `phases=`)."""
    from bigseg.measure import perturbation_spread, volume_fractions

    lab = np.random.default_rng(4).integers(0, 4, (8, 9, 10)).astype(np.uint8)
    names = ["pore", "cbd", "nmc", "graphite"]
    ds = perturbation_spread(lab, lab, n=2, phases=names, perturb=lambda t, **kw: t)
    assert list(ds.phase.values) == names
    np.testing.assert_allclose(ds.volume_fraction_mean.values, volume_fractions(lab, phases=names).values)
    np.testing.assert_allclose(ds.iou_mean.values, 1.0)


def test_spread_says_how_many_samples_a_mean_is_over_where_some_are_nan():
    """An IoU that is NaN in one sample (the phase absent from both volumes there) was averaged
    over the others while `attrs["samples"]` said 3, with nothing per value."""
    from bigseg.measure import scores, spread

    rng = np.random.default_rng(5)
    a = rng.integers(0, 3, (6, 7, 8)).astype(np.uint8)
    b = np.where(a == 1, 0, a).astype(np.uint8)  # no cbd at all
    runs = [scores(a, a), scores(b, b), scores(a, np.roll(a, 1, 0))]
    ds = spread(runs)
    want = [r.iou.sel(phase="cbd").item() for r in runs]
    assert np.isnan(want[1])
    np.testing.assert_allclose(ds.iou_mean.sel(phase="cbd").item(), np.nanmean(want))
    assert ds.iou_samples.sel(phase="cbd").item() == 2 and ds.iou_samples.sel(phase="pore").item() == 3
    assert "accuracy_samples" not in ds  # a value in every sample: no count
