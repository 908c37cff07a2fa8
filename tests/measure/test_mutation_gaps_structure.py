"""Gaps found by a hand-made mutation audit of the structure measurements (thickness,
connectivity, tortuosity, shells, profiles, evolution): each test here fails on a plausible wrong
variant of the code that the rest of the suite let through. Tiny synthetic volumes with awkward
chunking, compared with whole-array NumPy / SciPy references or exactly known cases."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from bigseg.measure import connectivity

from .test_connectivity import _got, _reference


@pytest.mark.parametrize("axis", ["z", "y", "x"])
def test_an_unlabelled_voxel_in_the_next_block_puts_a_component_at_the_edge(axis):
    """A cbd component wholly inside one block whose only unlabelled neighbour lies in the next
    block (across the block border, in the halo): unknown, not isolated."""
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[2:5, 3:6, 3:6] = 1  # cbd, in the first block along z (chunks of 5), clear of every face
    lab[5, 4, 4] = 255  # its one unlabelled neighbour, in the second block
    lab[8, 1, 8] = 2  # an isolated active voxel (every phase present)
    lab = np.moveaxis(lab, 0, "zyx".index(axis))
    ref = _reference(lab, 3, 0)
    assert ref[1, 2] == 1.0  # the reference: cbd all unknown
    np.testing.assert_allclose(_got(connectivity(da.from_array(lab, chunks=5), axis="z")), ref)


def test_the_unlabelled_face_warning_reads_the_less_labelled_of_the_two_faces():
    """The face at z = 0 is fully labelled, the one at z = end 75 % unlabelled: the warning
    names the 25 % of the less labelled face (no component can span more than it)."""
    lab = np.zeros((6, 8, 8), np.uint8)
    lab[::2, ::2] = 1
    lab[1::2, 1::2] = 2
    lab[-1, :, 2:] = 255  # 16 of 64 voxels of the last plane labelled
    with pytest.warns(UserWarning, match=r"only 25 % of a face normal to z is labelled"):
        connectivity(da.from_array(lab, chunks=(4, 3, 5)), axis="z")


def test_tortuosity_in_the_box_of_a_field_of_view_off_centre_names_its_voxels():
    """A field of view whose box starts at y = 2, x = 5 (not on the diagonal): the sub-volume
    bounds are in the indices of the labels, y and x each their own."""
    from bigseg.measure import tortuosity

    lab = np.full((6, 12, 16), 255, np.uint8)
    fov = np.zeros((12, 16), bool)
    fov[2:9, 5:12] = True
    lab[:, fov] = 0
    lab[:, 4, 7] = 2  # a column of active material inside the box
    lab[:, 8, 6] = 2
    ds = tortuosity(da.from_array(lab, chunks=(4, 5, 7)), phase="pore", axis="z", fov=fov, subvolume=16)
    assert ds.attrs["box_yx"] == [[2, 9], [5, 12]]
    assert (ds.z0.item(), ds.y0.item(), ds.x0.item(), ds.z1.item(), ds.y1.item(), ds.x1.item()) == (0, 2, 5, 6, 9, 12)
    assert ds.porosity.item() == pytest.approx(np.mean(lab[:, 2:9, 5:12] == 0))
    assert ds.tau.item() == pytest.approx(1.0, rel=1e-2)  # straight columns along z


@pytest.mark.parametrize("case", ["diagonal", "short"])
def test_no_six_connected_path_between_the_faces_is_infinite_without_a_solve(case):
    """Pore joined only along voxel edges (a diagonal staircase), or a channel stopping one
    plane short of the far face: no 6-connected path, tau inf, D_eff 0, the solver not run."""
    from bigseg.measure import tortuosity

    lab = np.full((5, 5, 5), 2, np.uint8)
    if case == "diagonal":
        for z in range(5):
            lab[z, z, 2] = 0
    else:
        lab[:4, 2, 2] = 0  # from z = 0 to z = 3 of 0..4
        lab[4, 0, 0] = 0  # a pore voxel on the far face, not joined to it
    cc, _ = ndi.label(lab == 0)  # the reference: no component on both faces
    assert not np.intersect1d(cc[0][cc[0] > 0], cc[-1][cc[-1] > 0]).size
    ds = tortuosity(da.from_array(lab, chunks=3), phase="pore", axis="z", subvolume=5)
    assert np.isinf(ds.tau.item()) and ds.D_eff.item() == 0.0 and ds.iterations.item() == 0
    assert ds.porosity.item() == pytest.approx(np.mean(lab == 0))


def test_shells_of_several_phases_count_every_one_of_them():
    """`of` naming two phases: the fraction of either, against a whole-array SciPy transform."""
    from bigseg.measure import shells

    from .test_shells import _reference

    rng = np.random.default_rng(3)
    lab = rng.choice(np.array([0, 1, 2], np.uint8), size=(9, 10, 11), p=[0.5, 0.3, 0.2])
    out = shells(da.from_array(lab, chunks=(4, 3, 5)), around="active", of=["pore", "cbd"], max_distance=3, step=1)
    frac, tot = _reference(lab, [2], [0, 1], 3, 1)
    np.testing.assert_array_equal(out.voxels, tot)
    np.testing.assert_allclose(out.values, frac, rtol=1e-12)
    assert out.attrs["of"] == "pore+cbd"


@pytest.mark.parametrize("axis", ["z", "y", "x"])
def test_profile_positions_take_the_voxel_edge_along_their_own_axis(axis):
    """Anisotropic voxels (2, 0.5, 3) um: the bins along each axis lie at that axis's edge
    times the mean index of the bin (the last bin shorter), for both profiles."""
    import xarray as xr

    from bigseg.measure import interface_profile, profile

    rng = np.random.default_rng(0)
    lab = rng.integers(0, 3, (7, 8, 5)).astype(np.uint8)
    vol = xr.DataArray(da.from_array(lab, chunks=(3, 5, 2)), dims=("z", "y", "x"),
                       attrs={"voxel_size": (2.0, 0.5, 3.0), "unit": "um"})
    a = "zyx".index(axis)
    n, edge = lab.shape[a], (2.0, 0.5, 3.0)[a]
    want = [edge * np.mean(np.arange(s, min(s + 2, n))) for s in range(0, n, 2)]
    np.testing.assert_allclose(profile(vol, axis=axis, step=2)[axis].values, want)
    np.testing.assert_allclose(interface_profile(vol, axis=axis, step=2)[axis].values, want)


def test_evolution_divides_each_steps_areas_by_its_own_voxel_volume():
    """Two scans of other sizes and voxel sizes (as a watch joins them, with a per-step
    ``voxel_volume`` and per-step voxel counts): each step's specific area is its own area over
    its own labelled voxels times its own voxel volume."""
    import pandas as pd
    import xarray as xr

    from bigseg import measure

    rng = np.random.default_rng(2)
    labs = [rng.integers(0, 3, (6, 7, 8)).astype(np.uint8), rng.integers(0, 3, (5, 6, 9)).astype(np.uint8)]
    scans = [xr.DataArray(da.from_array(a, chunks=(3, 4, 5)), dims=("z", "y", "x"),
                          attrs={"voxel_size": (s, s, s), "unit": "um"}) for a, s in zip(labs, (1.0, 2.0))]
    metrics = [measure.summary(v) for v in scans]
    metrics = [m.drop_dims([d for d in m.dims if d not in ("phase", "phase_a", "phase_b")]) for m in metrics]
    ds = xr.concat(metrics, dim=pd.Index([0, 1], name="t"), combine_attrs="override")
    ds = ds.assign_coords(voxel_volume=("t", [1.0, 8.0]))
    ev = measure.evolution(ds)
    for t, (m, a, vv) in enumerate(zip(metrics, labs, (1.0, 8.0))):
        for i, j in ((0, 1), (0, 2), (1, 2)):
            name = f"specific_area_{PHASES_[i]}_{PHASES_[j]}"
            assert ev.loc[t, name] == pytest.approx(float(m.area.values[i, j]) / (a.size * vv), rel=1e-12)


PHASES_ = ["pore", "cbd", "active"]
