"""Area estimators against shapes of known area (the figures quoted in the README).

Shapes are digitised with sub-voxel accuracy (4³ samples per voxel near the surface, majority);
flat and cylindrical shapes cross the volume, and their area per unit area / length comes from
volumes of two sizes (the ends cancel)."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

from bigseg.io import make_volume
from bigseg.measure import interfaces, particles

PHASES = ["pore", "cbd", "active"]


def raster(sdfs, shape, spacing):
    """Phase i + 1 where the i-th signed distance (physical, < 0 inside) is negative, later
    shapes over earlier ones; 0 elsewhere."""
    sp = np.asarray(spacing, float)
    half = 0.5 * float(np.linalg.norm(sp))
    grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, sp)], indexing="ij")
    off = (np.arange(4) + 0.5) / 4 - 0.5
    sub = np.array(list(itertools.product(off, off, off))) * sp
    out = np.zeros(shape, np.uint8)
    for i, f in enumerate(sdfs):
        d = f(*grid)
        inside = d < -half
        near = np.nonzero(np.abs(d) <= half)
        pts = [g[near][:, None] + sub[None, :, a] for a, g in enumerate(grid)]
        inside[near] = (f(*pts) < 0).mean(axis=1) >= 0.5
        out[inside] = i + 1
    return out


def ball(c, r):
    return lambda z, y, x: np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) - r


def area(lab, spacing=(1.0, 1.0, 1.0), method="marching_cubes"):
    vol = make_volume(lab, voxel_size=spacing, unit="um", phases=PHASES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1-voxel films: a pair below 0 set to 0
        return interfaces(vol, method=method).area.values


def ball_error(r, spacing, method):
    sp = np.asarray(spacing, float)
    n = tuple(np.ceil((2 * r + 6) / sp).astype(int))
    c = (np.asarray(n) - 1) / 2 * sp + np.array([0.3, -0.2, 0.1]) * sp
    lab = raster([ball(c, r)], n, spacing)
    return area(lab, spacing, method)[0, 1] / (4 * math.pi * r * r) - 1


@pytest.mark.parametrize("r, want, tol", [(3, -0.24, 0.04), (5, -0.078, 0.01), (10, -0.015, 0.003), (20, 0.0, 0.002)])
def test_marching_cubes_ball(r, want, tol):
    assert ball_error(r, (1, 1, 1), "marching_cubes") == pytest.approx(want, abs=tol)
    assert ball_error(r, (1, 1, 1), "faces") == pytest.approx(0.5, abs=0.06)


def test_ball_particle_area_is_the_marching_cubes_area():
    lab = raster([ball((12.3, 11.8, 12.1), 8)], (25, 25, 25), (1, 1, 1))
    table = particles(make_volume(lab * 2, phases=PHASES), split=False)
    assert table.surface_area.iloc[0] == pytest.approx(area(lab)[0, 1], rel=1e-9)
    assert table.surface_area.iloc[0] / (4 * math.pi * 64) - 1 == pytest.approx(-0.026, abs=0.005)


def test_anisotropic_ball_between_its_cubic_voxels():
    """a ball of radius 10 µm on 2 × 1 × 1 µm voxels reads between 1 µm and 2 µm cubic voxels"""
    fine, aniso, coarse = (ball_error(10, sp, "marching_cubes") for sp in ((1, 1, 1), (2, 1, 1), (2, 2, 2)))
    assert coarse < aniso < fine
    assert aniso == pytest.approx(-0.023, abs=0.005)


def per_length(make, sizes, length):
    a = [make(n) for n in sizes]
    return {m: (a[1][m] - a[0][m]) / length for m in a[0]}


@pytest.mark.parametrize("r, want", [(1, -1.0), (2, -0.105), (3, -0.038), (6, -0.006)])
def test_fibre_along_x(r, want):
    def make(n):
        lab = raster([lambda z, y, x: np.sqrt((z - 8.31) ** 2 + (y - 8.23) ** 2) - r], (17, 17, n), (1, 1, 1))
        return {m: area(lab, method=m)[0, 1] for m in ("faces", "marching_cubes")}
    got = per_length(make, (16, 40), 24 * 2 * math.pi * r)
    assert got["faces"] - 1 == pytest.approx(4 / math.pi - 1, abs=1e-9)  # the digitised circle's perimeter
    assert got["marching_cubes"] - 1 == pytest.approx(want, abs=0.005)


@pytest.mark.parametrize("t", [1, 2, 3])
@pytest.mark.parametrize("spacing, slope, thin, mc", [((1, 1, 1), 0.0, 0.0, 0.0), ((1, 1, 1), 0.5, 0.632, 0.009),
                                                      ((2, 1, 1), 0.5, 0.0, 0.030)], ids=str)
def test_cbd_film_on_flat_active(t, spacing, slope, thin, mc):
    """active below, a CBD film t z-voxel edges thick (across the film), pore above; the plane
    rises ``slope`` along x. Per unit of true area: faces 1 + |slope| over its cos; marching
    cubes reads a film of two voxels and more within 3 % (``mc``: its error), and loses most or
    all of a one-voxel film (``thin``: what is left of it), whose active surface then reads as
    pore contact."""
    sp = np.asarray(spacing, float)
    stretch = math.hypot(1, slope)
    thick = t * sp[0]

    def plane(z, y, x):  # signed distance to the film's lower face
        return (z - 3.37 * sp[0] - slope * x) / stretch

    def make(nx):
        nz = int(np.ceil((slope * nx * sp[2] + thick * stretch) / sp[0])) + 8
        lab = raster([lambda z, y, x: plane(z, y, x) - thick, plane], (nz, 8, nx), spacing)
        # along y the plane is invariant: faces span the 8 voxels, marching cubes the 7 cells
        return {m: area(lab, spacing, m) / (8 - (m == "marching_cubes")) for m in ("faces", "marching_cubes")}

    got = per_length(make, (16, 48), 32 * sp[2] * stretch * sp[1])
    faces = (1 + slope) / stretch - 1
    for pair in ((0, 1), (1, 2)):
        assert got["faces"][pair] - 1 == pytest.approx(faces, abs=1e-9)
    assert got["faces"][0, 2] == 0
    if t == 1:
        for pair in ((0, 1), (1, 2)):
            assert got["marching_cubes"][pair] == pytest.approx(thin, abs=0.01)
        assert got["marching_cubes"][0, 2] == pytest.approx(1 - thin, abs=0.05)
    else:
        for pair in ((0, 1), (1, 2)):
            assert got["marching_cubes"][pair] - 1 == pytest.approx(mc, abs=0.003)
        assert got["marching_cubes"][0, 2] == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("t, cbd_active, cbd_pore", [(1, -1.0, -0.91), (2, -0.014, -0.009), (3, -0.014, -0.007)])
def test_cbd_film_on_active_ball(t, cbd_active, cbd_pore):
    """an active ball of radius 10 voxels in a CBD shell t voxels thick: faces +50 %; marching
    cubes reads a shell of two voxels and more within 1.5 %, and erases a one-voxel shell, whose
    active surface then reads as touching pore (more than its own area)."""
    c = (16.3, 15.8, 16.1)
    lab = raster([ball(c, 10 + t), ball(c, 10)], (33, 33, 33), (1, 1, 1))
    inner, outer = 4 * math.pi * 100, 4 * math.pi * (10 + t) ** 2
    faces = area(lab, method="faces")
    assert faces[1, 2] / inner - 1 == pytest.approx(0.5, abs=0.02)
    assert faces[0, 1] / outer - 1 == pytest.approx(0.5, abs=0.02)
    mc = area(lab)
    assert mc[1, 2] / inner - 1 == pytest.approx(cbd_active, abs=0.01)
    assert mc[0, 1] / outer - 1 == pytest.approx(cbd_pore, abs=0.02)
    if t == 1:
        assert mc[0, 2] / inner == pytest.approx(1.08, abs=0.03)
    else:
        assert mc[0, 2] == pytest.approx(0, abs=1e-6 * inner)


# ---------------------------------------------------------------------------- Crofton (13 directions)
@pytest.mark.parametrize("r, want, tol", [(2, -0.044, 0.01), (3, -0.015, 0.01), (5, -0.007, 0.006), (10, 0.002, 0.004),
                                          (20, 0.001, 0.003)])
def test_crofton_ball(r, want, tol):
    assert ball_error(r, (1, 1, 1), "crofton") == pytest.approx(want, abs=tol)


def test_crofton_anisotropic_ball():
    assert ball_error(10, (2, 1, 1), "crofton") == pytest.approx(0.0, abs=0.006)


@pytest.mark.parametrize("t, cbd_active, cbd_pore, active_pore", [(1, -0.098, -0.080, 0.097), (2, -0.001, 0.001, 0.0)])
def test_crofton_keeps_a_film_one_voxel_thick(t, cbd_active, cbd_pore, active_pore):
    """the shell that marching cubes erases (-100 %) reads within 10 %; the lines along the
    diagonals that slip through its corners cross from active to pore (10 % of the ball)"""
    c = (16.3, 15.8, 16.1)
    lab = raster([ball(c, 10 + t), ball(c, 10)], (33, 33, 33), (1, 1, 1))
    inner, outer = 4 * math.pi * 100, 4 * math.pi * (10 + t) ** 2
    a = area(lab, method="crofton")
    assert a[1, 2] / inner - 1 == pytest.approx(cbd_active, abs=0.01)
    assert a[0, 1] / outer - 1 == pytest.approx(cbd_pore, abs=0.01)
    assert a[0, 2] / inner == pytest.approx(active_pore, abs=0.01)


def test_crofton_planes_read_within_its_weights_orientation_bias():
    """a plane normal n reads 2 Σ w_d |n · u_d| of its area: 0.927 along an axis, 0.961 along a
    body diagonal, the sphere's mean exactly 1"""
    from bigseg.kernels.crofton import DIRECTIONS, crofton_weights

    w, _ = crofton_weights((1.0, 1.0, 1.0))
    u = np.asarray(DIRECTIONS, float)
    u /= np.linalg.norm(u, axis=1)[:, None]
    n_ = 10
    lab = np.zeros((12, n_, n_), np.uint8)
    lab[6:] = 1  # a plane normal to z: the lines along z cross it n², the other 8 directions with a
    crossings = np.array([n_ * n_] + [0] * 4 + [n_ * (n_ - 1)] * 4 + [(n_ - 1) ** 2] * 4)  # z step fewer
    _, step = crofton_weights((1.0, 1.0, 1.0))
    assert area(lab, method="crofton")[0, 1] == pytest.approx(2 * (w * crossings / step).sum(), rel=1e-12)
    assert 2 * (w * np.abs(u @ [1, 0, 0])).sum() == pytest.approx(0.927, abs=1e-3)  # an endless plane
    n = np.random.default_rng(0).normal(size=(20000, 3))
    n /= np.linalg.norm(n, axis=1)[:, None]
    per = 2 * np.abs(n @ u.T) @ w
    assert per.mean() == pytest.approx(1.0, abs=2e-3) and 0.92 < per.min() and per.max() < 1.03


@pytest.mark.parametrize("spacing, low, high, normal_z", [((2.0, 1.0, 1.0), -0.125, 0.094, -0.100),
                                                          ((2.0, 0.5, 0.5), -0.200, 0.101, -0.200),
                                                          ((0.3, 1.0, 1.0), -0.235, 0.086, -0.236)])
def test_crofton_planes_on_anisotropic_voxels_spread_as_the_readme_says(spacing, low, high, normal_z):
    """the orientation spread of a plane on anisotropic voxels (README, "Measurements"): exact on
    average, a plane normal to the long axis 10-24 % low"""
    from bigseg.kernels.crofton import DIRECTIONS, crofton_weights

    w, _ = crofton_weights(spacing)
    u = np.asarray(DIRECTIONS, float) * spacing
    u /= np.linalg.norm(u, axis=1)[:, None]
    n = np.random.default_rng(0).normal(size=(200000, 3))
    n /= np.linalg.norm(n, axis=1)[:, None]
    per = 2 * np.abs(n @ u.T) @ w - 1
    assert per.mean() == pytest.approx(0.0, abs=2e-3)
    assert per.min() == pytest.approx(low, abs=0.003) and per.max() == pytest.approx(high, abs=0.003)
    assert 2 * (w * np.abs(u @ [1, 0, 0])).sum() - 1 == pytest.approx(normal_z, abs=0.003)
