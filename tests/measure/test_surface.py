"""Smoothed marching-cubes areas: blockwise == whole array, == scikit-image, analytic checks."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import marching_cubes, mesh_surface_area

from bigseg.io import make_volume
from bigseg.kernels.metrics import mc_config_areas, mc_field_areas
from bigseg.measure import interfaces, specific_surface_area, surface_area

FIELDS = [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]


def whole_array_estimator(lab, spacing=(1.0, 1.0, 1.0)):
    """The same estimator on the whole array: one block, border replicated."""
    return dict(zip(FIELDS, mc_field_areas(np.pad(lab, 1, mode="edge"), FIELDS, spacing)))


def skimage_area(lab, phases, spacing=(1.0, 1.0, 1.0)):
    f = ndi.uniform_filter(np.isin(lab, phases).astype(np.float64), 3, mode="nearest")
    v, faces, _, _ = marching_cubes(f, 0.5, spacing=spacing)
    return mesh_surface_area(v, faces)


@pytest.mark.parametrize("chunks", [(17, 23, 30), (5, 9, 56), (1, 48, 11), (13, 2, 19), (40, 48, 56)], ids=str)
def test_marching_cubes_independent_of_chunking(labels, chunks):
    ds = interfaces(da.from_array(labels, chunks=chunks), method="marching_cubes")
    a = whole_array_estimator(labels)
    for i, j in itertools.combinations(range(3), 2):
        want = 0.5 * (a[(i,)] + a[(j,)] - a[(i, j)])
        assert ds.area.values[i, j] == pytest.approx(want, rel=1e-9)
        assert ds.area.values[j, i] == ds.area.values[i, j]
    np.testing.assert_allclose(ds.phase_area.values, [a[(0,)], a[(1,)], a[(2,)]], rtol=1e-9)
    np.testing.assert_array_equal(np.diag(ds.area.values), 0)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.5)], ids=str)
def test_estimator_is_scikit_image_mesh_area(labels, spacing):
    a = whole_array_estimator(labels[:, :30, :35], spacing)
    for f in FIELDS:
        ref = skimage_area(labels[:, :30, :35], f, spacing)
        # scikit-image rounds vertex positions to float32; our vertices are exact float64
        assert a[f] == pytest.approx(ref, rel=2e-6)


def test_anisotropic_blockwise_matches_whole(labels):
    vol = make_volume(da.from_array(labels, chunks=(9, 31, 14)), voxel_size=(2.0, 1.0, 0.5), unit="nm")
    ds = interfaces(vol, method="marching_cubes")
    a = whole_array_estimator(labels, (2.0, 1.0, 0.5))
    np.testing.assert_allclose(ds.phase_area.values, [a[(0,)], a[(1,)], a[(2,)]], rtol=1e-9)
    assert ds.area.attrs["units"] == "nm^2"


def test_config_table_matches_isolated_cells():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 28, (300, 8))
    counts = counts[((counts >= 14).sum(1) % 8) != 0]
    keys = (counts.astype(np.int64) << (5 * np.arange(8))).sum(1)
    areas, unmatched = mc_config_areas(keys, (1.5, 1.0, 0.7), return_unmatched=True)
    assert unmatched == 0
    for key_counts, area in zip(counts[:40], areas[:40]):
        cube = np.zeros((2, 2, 2), np.float32)
        for n in range(8):
            cube[n >> 2, (n >> 1) & 1, n & 1] = key_counts[n] / 27
        v, f, _, _ = marching_cubes(cube, 0.5, spacing=(1.5, 1.0, 0.7))
        assert area == pytest.approx(mesh_surface_area(v, f), rel=1e-5)


def sphere(n=56, r=20.0):
    c = (n - 1) / 2
    zz, yy, xx = np.ogrid[:n, :n, :n]
    return (((zz - c) ** 2 + (yy - c) ** 2 + (xx - c) ** 2) <= r * r).astype(np.uint8)


def test_sphere_area_marching_cubes_and_faces():
    lab = sphere()
    vol = make_volume(da.from_array(lab, chunks=(19, 25, 33)), phases=["pore", "particle"])
    exact = 4 * np.pi * 20.0**2
    mc = surface_area(vol, phase="particle", method="marching_cubes")
    assert abs(mc / exact - 1) < 0.01
    faces = surface_area(vol, phase="particle", method="faces")
    assert 1.40 < faces / exact < 1.60  # face counting: about +50 % on a sphere (documented)
    ssa = specific_surface_area(vol, method="marching_cubes")
    assert ssa.surface_area.sel(phase="particle").item() == pytest.approx(mc, rel=1e-12)
    vol_particle = lab.sum()
    assert ssa.per_phase_volume.sel(phase="particle").item() == pytest.approx(mc / vol_particle)
    assert ssa.per_total_volume.sel(phase="particle").item() == pytest.approx(mc / lab.size)
    assert ssa.per_total_volume.attrs["units"] == "voxel^-1"
    # one phase: a float, the phase's area per sample volume (or per its own volume)
    one = specific_surface_area(vol, phase="particle", method="marching_cubes")
    assert isinstance(one, float) and one == pytest.approx(mc / lab.size, rel=1e-12)
    assert specific_surface_area(vol, phase=1, method="marching_cubes", per="phase") == pytest.approx(mc / vol_particle)
    with pytest.raises(ValueError, match="`per`.*'volume'"):
        specific_surface_area(vol, phase="particle", per="volume")
    with pytest.raises(ValueError, match="`phase`.*'nmc'"):
        specific_surface_area(vol, phase="nmc")


def test_surface_area_faces_box_and_series():
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[2:8, 3:9, 4:15] = 1
    series = np.stack([lab, np.roll(lab, 2, 0)])
    vol = make_volume(series, voxel_size=2.0, unit="nm", phases=["pore", "particle"])
    sa = surface_area(vol, phase="particle")
    assert sa.dims == ("t",)
    np.testing.assert_allclose(sa.values, 4 * 2 * (36 + 66 + 66))
    assert surface_area(lab, phase=1, phases=["pore", "particle"]) == 2 * (36 + 66 + 66)
    ssa = specific_surface_area(vol, phase="particle")
    assert ssa.dims == ("t",) and ssa.attrs["phase"] == "particle"
    np.testing.assert_allclose(ssa.values, sa.values / (series[0].size * 8.0))


def test_fixed_tilings_equal_scikit_image_per_cell():
    from bigseg.kernels import metrics as M

    amb, ntri, tiling = M._learn_tilings()
    assert amb.sum() == 128 and amb[0] == 0 and amb[255] == 0
    rng = np.random.default_rng(11)
    counts = rng.integers(0, 28, (2000, 8))
    idx = ((counts >= 14) << np.arange(8)).sum(1)
    counts = counts[(amb[idx] == 0) & (idx != 0) & (idx != 255)][:300]
    keys = (counts.astype(np.int64) << (5 * np.arange(8))).sum(1)
    want = mc_config_areas(keys, (1.0, 2.0, 0.5))
    empty = np.full(16, -1, np.int64)
    for cnt, w in zip(counts, want):
        cell = np.zeros((2, 2, 2), np.uint8)
        for n in range(8):
            cell[n >> 2, (n >> 1) & 1, n & 1] = cnt[n]
        total, nmiss = M._mc_cells_fast(cell, empty, np.zeros(16), 4, np.empty(1, np.int64), amb, ntri, tiling,
                                        M._EDGES, np.array([1.0, 2.0, 0.5]), np.ones((1, 1, 1), np.bool_))
        assert nmiss == 0
        assert total == pytest.approx(w, rel=1e-12)


def test_thin_film_pair_area_is_never_negative():
    # CBD as a film 1-2 voxels thin between pore and active: the 3x3x3 mean erases it from its
    # own indicator but not from the union's, so A_pore + A_cbd - A_pore∪cbd < 0
    f = ndi.gaussian_filter(np.random.default_rng(11).random((15, 18, 21)), 1.2)
    lab = np.digitize(f, np.quantile(f, [0.35, 0.5])).astype(np.uint8)
    a = whole_array_estimator(lab)
    assert a[(0,)] + a[(1,)] - a[(0, 1)] < 0  # the raw estimate (what the warning is about)
    with pytest.warns(UserWarning, match="pore–cbd .* below 0"):
        ds = interfaces(da.from_array(lab, chunks=(7, 9, 10)), method="marching_cubes")
    assert ds.area.values[0, 1] == 0 and (ds.area.values >= 0).all()
    cov = ds.coverage.values
    assert ((cov >= 0) & (cov <= 1)).all() and np.allclose(cov.sum(axis=1), 1)
    # the other pairs keep their value
    assert ds.area.values[1, 2] == pytest.approx(0.5 * (a[(1,)] + a[(2,)] - a[(1, 2)]), rel=1e-9)
    # with unlabelled voxels a phase's surface is the sum of its pairs: never below 0 either
    masked = lab.copy()
    masked[:, :, :4] = 255
    with pytest.warns(UserWarning, match="below 0"):
        assert surface_area(masked, phase="cbd", method="marching_cubes") >= 0


def test_specific_surface_area_says_what_each_variable_is():
    """Its four variables had `units` but no `long_name`."""
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[2:4, 2:4, 2:4] = 2
    ds = specific_surface_area(make_volume(lab, voxel_size=50))
    for name, var in ds.data_vars.items():
        assert var.attrs.get("long_name"), name
    assert ds.per_total_volume.attrs["units"] == "nm^-1" and ds.surface_area.attrs["units"] == "nm^2"
