"""Local thickness: against its definition by brute force, shapes of known thickness, any chunking."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage as ndi

import bigseg
from bigseg.errors import InputError
from bigseg.kernels.thickness import thickness_levels
from bigseg.measure import thickness

from ._measure_ref import local_thickness_ref


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0)], ids=["isotropic", "anisotropic"])
def test_kernel_equals_the_definition(spacing):
    rng = np.random.default_rng(0)
    mask = ndi.binary_opening(rng.random((14, 15, 16)) < 0.6)
    mask[:, :, :2] = True  # the phase continues beyond the array there
    np.testing.assert_array_equal(thickness_levels(mask, spacing, 9), local_thickness_ref(mask, spacing, 9))


def test_the_voxel_size_scales_the_diameters_and_nothing_else():
    """Cubic voxels of 0.3 or 0.65 (um) give the levels of 1: float32 distances in the data's unit
    rounded some voxels across a level."""
    lab = bigseg.synth.electrode((40, 44, 48), radius=(6, 1), seed=3).values
    for p in range(3):
        ref = thickness_levels(lab == p, (1.0, 1.0, 1.0), 20)
        for s in (0.3, 0.325, 0.65, 50.0):
            np.testing.assert_array_equal(thickness_levels(lab == p, (s, s, s), 20), ref)


def test_thicker_than_the_top_level_reads_the_top_level():
    rod = np.zeros((5, 9, 9), bool)
    rod[:, 3:6, 3:6] = True  # 3 voxels thick: its corners lie in the centre line's diameter-3 balls only
    np.testing.assert_array_equal(thickness_levels(rod, (1.0, 1.0, 1.0), 2)[rod], 2)
    lab = bigseg.synth.electrode((40, 44, 48), radius=(5, 1), seed=3).values
    for cap in (3, 6):
        capped = thickness_levels(lab == 2, (1.0, 1.0, 1.0), cap)
        full = np.minimum(thickness_levels(lab == 2, (1.0, 1.0, 1.0), 60), cap)
        assert (capped != full)[lab == 2].mean() < 0.005


def test_shapes_of_known_thickness():
    for width in (1, 3, 5, 7):  # odd slabs: exact; even ones read a voxel thinner
        slab = np.zeros((12, 12, 20), np.uint8)
        slab[..., 6:6 + width] = 1
        ds = thickness(slab, phase="cbd", max_diameter=10)
        assert float(ds.d10.sel(phase="cbd")) == float(ds.d90.sel(phase="cbd")) == width
    two = np.zeros((12, 12, 20), np.uint8)
    two[..., 6:8] = 1
    assert float(thickness(two, phase="cbd").d50.sel(phase="cbd")) == 1
    # a cylinder of radius 6 (voxels): its core reads its inscribed diameter, nearly 2r - 1
    yy, xx = np.ogrid[:31, :31]
    rod = np.broadcast_to(((yy - 15) ** 2 + (xx - 15) ** 2 <= 36)[None], (10, 31, 31)).astype(np.uint8) * 2
    assert float(thickness(rod, phase="active").d50.sel(phase="active")) == 11.0  # 2r - 1


def test_slabs_read_their_thickness_across_any_axis_of_anisotropic_voxels():
    """(2, 1, 1.5) um voxels: a 10 um slab read 11 um across z and 9 across y (every ball stopped
    half the smallest edge short of the other phase, whichever way it lay)."""
    for n, axis, want in [(5, 0, 10.0), (9, 1, 9.0), (5, 2, 7.0), (3, 0, 6.0), (1, 0, 2.0)]:
        lab = np.full((20, 24, 28), 2, np.uint8)
        box = [slice(None)] * 3
        box[axis] = slice(6, 6 + n)
        lab[tuple(box)] = 0
        vol = xr.DataArray(da.from_array(lab, chunks=(7, 11, 13)), dims=("z", "y", "x"),
                           attrs={"voxel_size": [2.0, 1.0, 1.5], "unit": "um"})
        ds = thickness(vol, phase="pore", max_diameter=20)
        # 5 x 1.5 um = 7.5 um across x: the diameters are whole smallest edges (1 um), the largest inside
        assert float(ds.d10[0]) == float(ds.d90[0]) == want, (n, axis)
    lab = bigseg.synth.electrode((30, 34, 38), radius=(5, 1), seed=3).values
    vol = xr.DataArray(lab, dims=("z", "y", "x"), attrs={"voxel_size": [2.0, 1.0, 1.5], "unit": "um"})
    whole = thickness(vol, phase=["pore", "active"], max_diameter=30)
    for chunks in [(7, 11, 13), (30, 17, 38)]:
        xr.testing.assert_equal(thickness(vol.chunk(dict(zip("zyx", chunks))), phase=["pore", "active"],
                                          max_diameter=30), whole)


@pytest.mark.parametrize("chunks", [(9, 40, 13), (25, 25, 25)], ids=str)
def test_any_chunking_equals_the_whole_array(chunks):
    lab = bigseg.synth.electrode((40, 44, 48), radius=(5, 1), seed=3).values
    whole = thickness(lab, phase=["pore", "cbd", "active"], max_diameter=12)
    got = thickness(da.from_array(lab, chunks=chunks), phase=["pore", "cbd", "active"], max_diameter=12)
    xr.testing.assert_equal(got, whole)
    for i, p in enumerate(["pore", "cbd", "active"]):  # against the kernel on the whole array
        lev = thickness_levels(lab == i, (1.0, 1.0, 1.0), 12)[lab == i]
        ref = np.bincount(lev, minlength=13)[1:] / (lab == i).sum()
        np.testing.assert_allclose(whole.share.sel(phase=p).values, ref)
        for q in ("d10", "d50", "d90"):  # the smallest diameter at or below which that share lies
            assert float(whole[q].sel(phase=p)) == np.sort(lev)[int(np.ceil(int(q[1:]) / 100 * len(lev))) - 1]
        assert float(whole["mean_thickness"].sel(phase=p)) == pytest.approx(lev.mean())
    np.testing.assert_allclose(whole.share.sum("diameter"), 1.0)
    assert whole.share.dims == ("phase", "diameter")


def test_units_series_unlabelled_beyond_and_bad_input():
    lab = np.zeros((2, 10, 12, 14), np.uint8)
    lab[..., 4:9] = 2
    lab[1, :, :, 4:9] = 255  # t = 1: the slab is outside the field of view
    series = xr.DataArray(lab, dims=("t", "z", "y", "x"), attrs={"voxel_size": [50.0, 50.0, 50.0], "unit": "nm"})
    ds = thickness(series, phase="active", max_diameter=6)
    assert ds.d50.dims == ("t", "phase") and float(ds.d50.isel(t=0, phase=0)) == 250.0
    assert np.isnan(float(ds.d50.isel(t=1, phase=0))) and ds.diameter.attrs["units"] == "nm"
    walled = np.full((10, 12, 14), 255, np.uint8)
    walled[..., 4:9] = 0  # pore between two unlabelled walls: they bound it as another phase would
    assert float(thickness(walled, phase="pore", max_diameter=8).d10.sel(phase="pore")) == 5.0
    with pytest.warns(UserWarning, match="`max_diameter` \\(3 voxels\\)"):
        big = thickness(np.zeros((10, 10, 10), np.uint8), max_diameter=3)
    assert float(big.beyond.sel(phase="pore")) == 1.0
    with pytest.raises(InputError, match="`max_diameter`"):
        thickness(lab[0], max_diameter=0)
    with pytest.raises(InputError, match="`phase`"):
        thickness(lab[0], phase="binder")
    with pytest.raises(InputError, match="`phase` to name each phase once"):
        thickness(lab[0], phase=["pore", 0])


@pytest.mark.parametrize("spacing", [(2.0, 1.0, 1.0), (100.0, 50.0, 50.0), (2.0, 1.0, 1.5)])
def test_anisotropic_thickness_keeps_each_ball_off_every_other_voxel(spacing):
    """The ball radius took the nearest other voxel only (whichever of several at the same
    distance the distance transform names): one just as near, or a little further, across a
    long edge has a longer ellipsoid along the line and the ball overlapped it. On (2, 1, 1)
    voxels an electrode's pore phase read a median of 3 voxel edges instead of 2."""
    lab = bigseg.synth.electrode((12, 14, 14), radius=(3, 1), seed=3, chunks=32).values
    for p in range(3):
        mask = lab == p
        np.testing.assert_array_equal(thickness_levels(mask, spacing, 12), local_thickness_ref(mask, spacing, 12))


def test_anisotropic_thickness_distribution_blockwise_equals_the_reference():
    lab = bigseg.synth.electrode((12, 14, 14), radius=(3, 1), seed=3, chunks=32).values
    vol = xr.DataArray(da.from_array(lab, chunks=(7, 5, 11)), dims=("z", "y", "x"),
                       attrs={"voxel_size": [100.0, 50.0, 50.0], "unit": "nm", "phases": ["pore", "cbd", "active"]})
    ds = thickness(vol, phase=["pore", "active"], max_diameter=12)
    for name in ("pore", "active"):
        mask = lab == ["pore", "cbd", "active"].index(name)
        ref = local_thickness_ref(mask, (100.0, 50.0, 50.0), 12)[mask]
        share = np.bincount(ref, minlength=13)[1:] / mask.sum()
        np.testing.assert_allclose(ds.share.sel(phase=name).values, share, atol=1e-12)
        np.testing.assert_allclose(float(ds.mean_thickness.sel(phase=name)), 50.0 * ref.mean(), rtol=1e-12)
        assert ds.diameter.attrs["units"] == "nm"


def test_every_variable_says_what_it_is():
    """d10 and d90 had `units` but no `long_name` (d50 had one)."""
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[2:6, 2:6, 2:6] = 2
    ds = thickness(lab, phase="active", max_diameter=6)
    for name, var in ds.data_vars.items():
        assert var.attrs.get("units") and var.attrs.get("long_name"), name
