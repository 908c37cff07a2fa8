"""Tortuosity through TauFactor: known geometries, sub-volumes and axes against direct TauFactor calls."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

taufactor = pytest.importorskip("taufactor")

import bigseg  # noqa: E402
from bigseg.errors import InputError  # noqa: E402
from bigseg.measure import tortuosity  # noqa: E402


def _channels():
    lab = np.full((20, 24, 24), 2, np.uint8)
    lab[:, ::3, ::2] = 0  # straight pore channels along z
    return lab


def test_straight_channels_and_blocked_transport():
    lab = _channels()
    ds = tortuosity(da.from_array(lab, chunks=7), axis="z", device="cpu")
    assert ds.tau.item() == pytest.approx(1.0, abs=1e-3)
    assert ds.porosity.item() == pytest.approx((lab == 0).mean())
    assert ds.D_eff.item() == pytest.approx(ds.porosity.item(), rel=1e-3)
    across = tortuosity(lab, axis="x", device="cpu")
    assert np.isinf(across.tau.item()) and across.D_eff.item() == 0
    aniso = xr.DataArray(lab, dims=("z", "y", "x"), attrs={"voxel_size": (200.0, 50.0, 50.0), "unit": "nm"})
    assert tortuosity(aniso, axis="z", device="cpu").tau.item() == pytest.approx(1.0, abs=1e-3)


def test_subvolumes_and_axes_match_taufactor():
    lab = bigseg.synth.electrode((32, 40, 36), radius=(4, 1), seed=2).values
    ds = tortuosity(da.from_array(lab, chunks=(11, 13, 36)), axis="y", subvolume=(32, 40, 18), device="cpu")
    assert ds.sizes["subvolume"] == 2
    np.testing.assert_array_equal(ds.x0, [0, 18])
    assert ds.attrs["subvolume"] == [32, 40, 18]
    whole = tortuosity(lab[:, :20, :20], axis="z", device="cpu")  # the default 256: the 32 x 20 x 20 solved said
    assert whole.attrs["subvolume"] == [32, 20, 20]
    for i, sl in enumerate((slice(0, 18), slice(18, 36))):
        img = np.moveaxis(lab[:, :, sl] == 0, 1, 0).astype(np.uint8)
        s = taufactor.Solver(img, device="cpu")
        tau = s.solve(verbose=False)
        assert ds.tau.values[i] == pytest.approx(float(np.ravel(tau)[0]), rel=1e-6)
        assert ds.porosity.values[i] == pytest.approx(img.mean())
    assert 1.2 < ds.tau.values.min() and np.isfinite(ds.tau.values).all()


def test_series_over_time():
    lab = _channels()
    blocked = lab.copy()
    blocked[10] = 2
    ser = xr.DataArray(np.stack([lab, blocked]), dims=("t", "z", "y", "x"), coords={"t": [0, 1]})
    ds = tortuosity(ser, device="cpu")
    assert ds.tau.dims == ("t", "subvolume")
    assert ds.tau.values[0, 0] == pytest.approx(1.0, abs=1e-3) and np.isinf(ds.tau.values[1, 0])


@pytest.mark.parametrize("kwargs,match", [
    (dict(axis="w"), "`axis`"),
    (dict(phase="electrolyte"), "`phase`"),
    (dict(subvolume=2), "`subvolume`"),
    (dict(subvolume=(8, 8)), "`subvolume`"),
    (dict(device="tpu"), "`device`"),
    (dict(conv_crit=2), "`conv_crit`"),
    (dict(iter_limit=0), "`iter_limit`"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(InputError, match=match):
        tortuosity(_channels(), **kwargs)


def _volume(lab, voxel_size):
    return xr.DataArray(lab, dims=("z", "y", "x"), attrs={"voxel_size": voxel_size, "unit": "um",
                                                           "phases": ["pore", "cbd", "active"]})


@pytest.mark.parametrize("voxel_size", [(2.0, 1.0, 1.0), (1.0, 1.0, 2.0), (0.5, 1.0, 1.0)])
def test_anisotropic_voxels_leave_straight_wide_channels_alone(voxel_size):
    # wide channels (conducting neighbours across the flux): TauFactor 1.2 dropped their flux
    # when the voxels are shorter across the flux than along it (tau inf, or 20.7 for 1.667)
    lab = np.full((32, 32, 32), 2, np.uint8)
    lab[:, 8:16, 8:16] = 0  # along z
    lab[4:28, 20:24, :] = 0  # along x, and a dead end for z
    for axis, want in (("z", 2.5), ("x", 5 / 3)):
        assert tortuosity(lab, axis=axis).tau.item() == pytest.approx(want, rel=1e-3)
        assert tortuosity(_volume(lab, voxel_size), axis=axis).tau.item() == pytest.approx(want, rel=1e-3)


def test_anisotropic_voxels_agree_with_the_structure_cut_into_cubes():
    from scipy import ndimage as ndi

    f = ndi.gaussian_filter(np.random.default_rng(0).random((16, 32, 32)), (1, 2, 2), mode="wrap")
    lab = np.where(f > np.quantile(f, 0.55), 0, 2).astype(np.uint8)
    cubes = np.repeat(lab, 2, axis=0)  # the same structure at 1 x 1 x 1
    for axis in "zyx":
        got = tortuosity(_volume(lab, (2.0, 1.0, 1.0)), axis=axis, conv_crit=1e-3).tau.item()
        want = tortuosity(_volume(cubes, (1.0, 1.0, 1.0)), axis=axis, conv_crit=1e-3).tau.item()
        assert got == pytest.approx(want, rel=0.08)  # measured 3-6 %: the coarser cells in z


def test_a_solve_that_does_not_converge_is_no_result():
    lab = bigseg.synth.electrode((24, 24, 24), radius=(4, 1), seed=2).values
    with pytest.warns(UserWarning, match="did not converge in iter_limit=100"):
        ds = tortuosity(lab, axis="z", iter_limit=100, conv_crit=1e-6)
    assert np.isnan(ds.tau.item()) and np.isnan(ds.D_eff.item()) and ds.iterations.item() >= 100


def test_an_iter_limit_below_taufactors_first_check_is_no_result_not_a_crash():
    # TauFactor checks convergence every 100 iterations: below that it has no tau at all (None)
    lab = bigseg.synth.electrode((24, 24, 24), radius=(4, 1), seed=2).values
    with pytest.warns(UserWarning, match="did not converge in iter_limit=50"):
        ds = tortuosity(lab, axis="z", iter_limit=50)
    assert np.isnan(ds.tau.item()) and np.isnan(ds.D_eff.item()) and ds.iterations.item() == 50


def test_labels_too_thin_to_solve_or_mesh_are_refused_by_name():
    from bigseg.measure import interfaces, summary

    thin = np.zeros((1, 20, 20), np.uint8)
    thin[:, :, 10:] = 2
    with pytest.raises(InputError, match=r"`labels` at least 3 voxels along every axis.*\(1, 20, 20\)"):
        tortuosity(thin, axis="y")
    for f in (interfaces, summary):
        with pytest.raises(InputError, match="`method` 'faces' for labels"):
            f(thin, method="marching_cubes")
    assert float(interfaces(thin).area.sel(phase_a="pore", phase_b="active")) == 20.0  # faces still work


def test_solves_on_threads_leave_the_callers_stdout_alone(monkeypatch):
    """TauFactor is silenced with ``redirect_stdout``, which swaps the process-wide ``sys.stdout``:
    sub-volumes solved at once on dask's threads restored each other's StringIO, and every later
    print of the caller went nowhere."""
    import sys
    import time

    import dask

    class SlowSolver:  # TauFactor's interface, slow enough that the threads' solves overlap
        def __init__(self, img, device=None):
            self.tau, self.D_eff, self.iter, self.converged = np.array([1.0]), np.array([0.5]), 3, True

        def solve(self, **kw):
            print("TauFactor talking")
            time.sleep(0.05)

    monkeypatch.setattr(taufactor, "Solver", SlowSolver)
    stdout = sys.stdout
    with dask.config.set(scheduler="threads", num_workers=4):
        ds = tortuosity(_channels(), axis="z", subvolume=(20, 6, 6), device="cpu")
    assert ds.sizes["subvolume"] == 16 and (ds.tau == 1.0).all()
    assert sys.stdout is stdout


def test_subvolumes_are_never_thinner_than_a_solve_needs():
    """10 voxels at subvolume 3 were cut 2 + 3 + 2 + 3 (a 2-voxel slab, thinner than the 3 the
    solve needs and the argument check asks for): now 3 + 4 + 3, every voxel in one sub-volume."""
    lab = _channels()[:10, :4, :12]
    ds = tortuosity(lab, axis="z", subvolume=3, device="cpu")
    for lo, hi, n in (("z0", "z1", 10), ("y0", "y1", 4), ("x0", "x1", 12)):
        cuts = sorted(set(zip(ds[lo].values.tolist(), ds[hi].values.tolist())))
        assert all(b - a >= 3 for a, b in cuts), (lo, cuts)
        assert [a for a, _ in cuts[1:]] == [b for _, b in cuts[:-1]] and cuts[0][0] == 0 and cuts[-1][1] == n


def test_a_solve_that_converges_on_its_last_allowed_check_is_a_result():
    """TauFactor checks every 100 iterations: a solve that converged on the check at exactly
    ``iter_limit`` was flagged "did not converge" and its tau thrown away (NaN)."""
    import warnings

    lab = bigseg.synth.electrode((24, 24, 24), radius=(4, 1), seed=2).values
    free = tortuosity(lab, axis="z")
    n = int(free.iterations.item())
    assert n % 100 == 0 and n >= 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "did not converge"
        capped = tortuosity(lab, axis="z", iter_limit=n)
    assert capped.tau.item() == free.tau.item() and capped.iterations.item() == n
