"""QA of the operando path: alignment of a series (known applied shifts, NaN outside a
cylindrical field of view, flat scans), the time window of predictions (NumPy mean of the
per-scan probabilities; bad options refused before the scans are read) and ``evolution`` with
``transitions`` of other time steps."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import xarray as xr

from bigseg import filters, measure, predict, synth
from bigseg.errors import InputError
from bigseg.infer import segment

from ._infer_nets import conv3d_net

KW = dict(patch=(8, 8, 8), overlap=0.25)


def _drifted(shifts, *, seed=1, crop=(slice(8, 32), slice(16, 64), slice(16, 64))):
    """(t, 24, 48, 48) float32 scans of one smooth random sample: scan t(x) = sample(x + shifts[t]),
    so that ``align`` must apply ``shifts[t]`` (output(x) = scan(x - shift))."""
    base = ndi.gaussian_filter(np.random.default_rng(seed).normal(size=(40, 80, 80)), 2.0)
    return np.stack([ndi.shift(base, -np.asarray(s), order=3, mode="nearest")[crop] for s in shifts]).astype(np.float32)


def _outside_cylinder(ny, nx):
    yy, xx = np.mgrid[:ny, :nx]
    return (yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2 > (min(ny, nx) / 2 - 1) ** 2


def test_shifts_found_with_nan_outside_the_field_of_view():
    """A reconstruction's NaN fill (tomopy's circ_mask) made phase_cross_correlation raise its
    own ValueError; the voxels without data now add nothing to the correlation."""
    shifts = np.array([[0, 0, 0], [1.3, -2.0, 0.7], [-0.6, 1.4, -2.2]])
    vol = _drifted(shifts)
    vol[:, :, _outside_cylinder(48, 48)] = np.nan
    for chunks in [(1, 7, 13, 17), (3, 24, 48, 48)]:
        got = filters.estimate_shifts(da.from_array(vol, chunks=chunks))
        np.testing.assert_allclose(got, shifts, atol=0.15)
    aligned = filters.align(vol, shifts=shifts, crop=False).values  # NaN stays where there is no data
    want = np.stack([ndi.shift(vol[t], shifts[t], order=1, mode="nearest", prefilter=False) if shifts[t].any()
                     else vol[t] for t in range(3)])  # (scipy's zero shift spreads NaN by its zero weights)
    np.testing.assert_array_equal(np.isnan(aligned), np.isnan(want))
    np.testing.assert_allclose(aligned, want, atol=1e-6)


def test_time_window_over_a_nan_filled_series_with_a_field_of_view():
    """``segment(series, fov="auto", temporal=1)`` of scans with NaN outside the cylinder (the
    README's case) crashed in the drift check; now its probabilities are the NumPy mean of each
    scan's over the window, NaN outside, and a drift within the window is still warned about."""
    rng = np.random.default_rng(0)
    arr = rng.random((3, 16, 32, 32), dtype=np.float32)
    arr[:, :, _outside_cylinder(32, 32)] = np.nan
    net = conv3d_net(3)
    alone = segment(arr, net, **KW, fov="auto", normalize=False, probabilities=True).probabilities.values
    window = [alone[max(0, t - 1):t + 2] for t in range(3)]
    seen = [np.isfinite(w).sum(axis=0) for w in window]  # the scans that saw each voxel (NaN: none)
    want = np.stack([np.where(n > 0, np.nansum(w, axis=0) / np.maximum(n, 1), np.nan) for w, n in zip(window, seen)])
    ds = segment(da.from_array(arr, chunks=(1, 7, 13, 17)), net, **KW, fov="auto", normalize=False, temporal=1,
                 probabilities=True)
    got = ds.probabilities.values
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, atol=2e-7)
    assert (ds.labels.values[:, :, _outside_cylinder(32, 32)] == 255).all()
    # the same check on drifted scans of a structured sample, NaN outside: warned, not a crash
    drifted = _drifted([[0, 0, 0], [0, 3, -2], [0, 3, -2]])
    drifted[:, :, _outside_cylinder(48, 48)] = np.nan
    with pytest.warns(UserWarning, match="scans 0 and 1 .* moved 3 voxels"):
        segment(drifted, net, **KW, fov="auto", normalize=False, temporal=1)


def test_short_axis_drift_refined_until_its_whole_voxel_part_settles():
    """Drifts near 3 voxels along the 24-voxel axis: the first estimate (on crops sharing
    less) read 2.3-2.4 voxels, its whole-voxel part 2, and the refinement of the 0.9 voxel left
    stopped 0.2 voxel short; refined again on the crops the new whole-voxel part aligns."""
    shifts = np.array([[0, 0, 0], [-2.9, -0.3, 0.4], [-3.0, -0.57, -0.36], [2.8, 1.2, -0.7]])
    vol = _drifted(shifts)
    got = filters.estimate_shifts(da.from_array(vol, chunks=(1, 7, 13, 17)))
    np.testing.assert_allclose(got, shifts, atol=0.12)
    # a reference other than 0: each scan moved onto scan 2
    np.testing.assert_allclose(filters.estimate_shifts(vol, reference=2), shifts - shifts[2], atol=0.12)


def test_flat_scans_give_zero_shift_without_a_warning_from_inside():
    """A blank scan (constant crop) has nothing to match: zero shift, and no scikit-image
    warning ("Could not determine RMS error", an error under filterwarnings=error) from
    ``estimate_shifts`` (only its own, which names the scans) or from a time window's drift check."""
    for value in (0.0, 0.1):
        arr = np.full((3, 16, 16, 16), value, np.float32)
        with pytest.warns(UserWarning) as said:
            np.testing.assert_array_equal(filters.estimate_shifts(arr), np.zeros((3, 3)))
        assert [str(w.message).split(" hold ")[0] for w in said] == ["`vol`'s scan(s) [0, 1, 2]"]
        ds = predict(arr, conv3d_net(0), **KW, temporal=1, probabilities=True)
        alone = predict(arr, conv3d_net(0), **KW, probabilities=True).probabilities.values
        np.testing.assert_allclose(ds.probabilities.values, alone, atol=1e-7)  # identical scans: their own mean


@pytest.mark.parametrize("bad, name", [(dict(overlap=1.2), "overlap"), (dict(blend="box"), "blend"),
                                       (dict(batch_size=0), "batch_size")])
def test_bad_options_with_a_window_refused_before_the_scans_are_read(bad, name, monkeypatch):
    """With ``temporal`` the drift check read every scan's centre before ``predict``'s options
    were checked."""
    import bigseg.infer._predict as P

    def read(*args, **kwargs):
        raise AssertionError("the scans were read before the options were checked")

    monkeypatch.setattr(P, "warn_if_misaligned", read)
    with pytest.raises(InputError, match=f"`{name}`"):
        predict(np.zeros((3, 16, 16, 16), np.float32), conv3d_net(0), **{**KW, **bad}, temporal=1)


def test_evolution_refuses_transitions_of_other_time_steps():
    """``transitions`` of the series' values (t = 1, 2, 3) beside metrics timed in minutes gave
    all-NaN ``cbd_to_pore`` columns without a word; the particle table is refused in that case."""
    lab = synth.series((16, 24, 24), steps=4, seed=4, chunks=(7, 13, 17), radius=(3, 0.5)).compute()
    lab = lab.assign_coords(t=xr.DataArray([0.0, 30.0, 60.0, 120.0], dims="t", attrs={"units": "min"}))
    m = measure.summary(lab)
    good = measure.evolution(m, transitions=measure.transitions(lab))
    for t in (1, 2, 3):  # the fraction of the volume that went from CBD to pore, by NumPy
        before, after = lab.values[t - 1], lab.values[t]
        np.testing.assert_allclose(good["cbd_to_pore"].iloc[t], np.mean((before == 1) & (after == 0)))
    assert np.isnan(good["cbd_to_pore"].iloc[0]) and good.attrs["time_unit"] == "min"
    with pytest.raises(InputError, match=r"`transitions`.*\[30.0, 60.0, 120.0\].*\[1, 2, 3\]"):
        measure.evolution(m, transitions=measure.transitions(lab.values))
    with pytest.raises(InputError, match="`transitions`"):
        measure.evolution(m, transitions=measure.volume_fractions(lab))


def test_windowed_probabilities_say_they_are_averaged_over_scans():
    """After a time window the probabilities still described themselves as "blended softmax
    probabilities" (attrs["temporal"] of the Dataset aside)."""
    import xarray as xr

    from bigseg.infer._temporal import smooth_over_time

    p = np.random.default_rng(0).random((3, 3, 4, 5, 6)).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    ds = xr.Dataset({"labels": (("t", "z", "y", "x"), p.argmax(1).astype(np.uint8)),
                     "probabilities": (("t", "phase", "z", "y", "x"), p, {"description": "blended softmax probabilities"})})
    got = smooth_over_time(ds, 1, probabilities=True)
    assert got["probabilities"].attrs["description"] == ("blended softmax probabilities, each scan's averaged with 1 "
                                                         "scan(s) before and after")
    np.testing.assert_allclose(got["probabilities"].values[1], p.mean(axis=0), rtol=1e-6)


def test_align_refuses_estimate_options_with_shifts_given():
    """`align(vol, shifts=..., reference=9)` ignored `reference` (and `upsample`, `sample`):
    they only steer the estimate, which given shifts replace."""
    from bigseg.errors import InputError
    from bigseg.filters import align

    vol = np.random.default_rng(0).random((3, 8, 9, 10)).astype(np.float32)
    shifts = np.zeros((3, 3))
    with pytest.raises(InputError, match=r"`reference` only without `shifts`.*Got reference=9"):
        align(vol, shifts=shifts, reference=9)
    with pytest.raises(InputError, match=r"`upsample` only without `shifts`.*Got upsample=0"):
        align(vol, shifts=shifts, upsample=0)
    np.testing.assert_array_equal(align(vol, shifts=shifts).values, vol)  # the defaults: fine
