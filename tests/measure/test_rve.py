"""Representative volume element: sub-cube fractions against NumPy on the whole array."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import bigseg
from bigseg.errors import InputError
from bigseg.measure import rve
from bigseg.report import rve_figure


def _reference(lab, size, k=3):
    g = [n // size for n in lab.shape]
    cut = lab[: g[0] * size, : g[1] * size, : g[2] * size]
    cubes = cut.reshape(g[0], size, g[1], size, g[2], size).transpose(0, 2, 4, 1, 3, 5).reshape(-1, size ** 3)
    frac = np.stack([(cubes == p).mean(axis=1) for p in range(k)], axis=1)
    return frac.mean(axis=0), frac.std(axis=0, ddof=1), len(frac)


@pytest.fixture(scope="module")
def lab():
    return bigseg.synth.electrode((37, 45, 50), radius=(4, 1), seed=7).values


@pytest.mark.parametrize("chunks", [(37, 45, 50), (10, 13, 17), (5, 45, 9)], ids=str)
def test_matches_cubes_cut_from_the_whole_array(lab, chunks):
    out = rve(da.from_array(lab, chunks=chunks), base=3, sizes=[3, 6, 9, 18])
    for i, size in enumerate([3, 6, 9, 18]):
        mean, std, n = _reference(lab, size)
        np.testing.assert_allclose(out["mean"].values[i], mean, rtol=1e-12)
        np.testing.assert_allclose(out["std"].values[i], std, rtol=1e-12)
        assert out.cubes.values[i] == n
    np.testing.assert_allclose(out.relative_std, out["std"] / out["mean"])
    # the scatter falls as the cubes grow; the representative size is the first within the tolerance
    assert (np.diff(out.relative_std.values, axis=0) < 0).all()
    rel = out.relative_std.values
    for j in range(3):
        ok = np.flatnonzero(rel[:, j] <= 0.05)
        want = out["size"].values[ok[0]] if len(ok) else np.nan
        np.testing.assert_equal(out.rve_size.values[j], want)


def test_defaults_physical_size_and_tolerance(lab):
    vol = xr.DataArray(lab, dims=("z", "y", "x"), attrs={"voxel_size": (50.0, 50.0, 50.0), "unit": "nm"})
    out = rve(vol, tolerance=1.0)
    assert list(out["size"].values) == [4, 8, 16] and out.attrs["base"] == 4  # up to half the shortest axis (37)
    np.testing.assert_allclose(out.size_physical, [200.0, 400.0, 800.0])
    assert out["size"].attrs["units"] == "voxel" and out.size_physical.attrs["long_name"] == "cube edge along z"
    np.testing.assert_array_equal(out.rve_size, [4.0, 4.0, 4.0])  # every size is within a tolerance of 1
    fig = rve_figure(out)
    assert len(fig.axes[0].lines) >= 4 and fig.axes[0].get_xlabel() == "cube edge [nm]"
    # voxels twice as tall: each sub-volume is a box, its edge said as the one along z (was "cube edge")
    tall = rve(vol.assign_attrs(voxel_size=(100.0, 50.0, 50.0)), tolerance=1.0)
    assert rve_figure(tall).axes[0].get_xlabel() == "cube edge along z [nm]"
    from bigseg.cli.cmd_measure import _rve_table

    assert "cube edge along z [nm]" in _rve_table(tall) and "cube edge [nm]" in _rve_table(out)


def test_base_defaults_to_the_sizes_common_divisor(lab):
    out = rve(lab, sizes=[6, 9])
    assert out.attrs["base"] == 3 and list(out["size"].values) == [6, 9]
    np.testing.assert_allclose(out["mean"].values[1], _reference(lab, 9)[0], rtol=1e-12)


def test_a_base_grid_too_large_is_refused_before_work(monkeypatch, lab):
    import bigseg.measure._rve as mod

    monkeypatch.setattr(mod, "_MAX_GRID_BYTES", 1000)
    with pytest.raises(InputError, match="`base`.*MiB of counts"):
        rve(lab, sizes=[1, 2])


@pytest.mark.parametrize("kw, match", [
    ({"sizes": [5], "base": 4}, "`sizes`"), ({"sizes": [40]}, "`sizes`"), ({"base": 0}, "`base`"),
    ({"tolerance": 0}, "`tolerance`"),
])
def test_bad_arguments_are_named(lab, kw, match):
    with pytest.raises(InputError, match=match):
        rve(lab, **kw)


def test_a_series_is_refused(lab):
    with pytest.raises(InputError, match="isel"):
        rve(np.stack([lab, lab]))


def test_every_variable_says_what_it_is():
    """relative_std and cubes had `units` but no `long_name`."""
    ds = rve(bigseg.synth.electrode((16, 16, 16), radius=(3, 1), seed=1))
    for name, var in ds.variables.items():
        if name != "phase":
            assert var.attrs.get("units") and var.attrs.get("long_name"), name
