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
