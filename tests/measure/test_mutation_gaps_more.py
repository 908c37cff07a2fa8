"""Mutation-testing gaps (rve, uncertainty, summary): exactly known cases and brute-force references."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from bigseg.errors import InputError
from bigseg.measure import probability_uncertainty, rve, spread


def _rve_exact_volume():
    """(4, 4, 4) labels of two phases, eight 2-voxel cubes; three cubes hold an unlabelled voxel, the
    five others hold 2, 6, 2, 6, 4 of 8 voxels of phase 1: fractions 1/4, 3/4, 1/4, 3/4, 1/2, whose mean
    is 1/2 and sample standard deviation exactly 1/4 (sum of squares 1/4 over n - 1 = 4): relative 1/2."""
    lab = np.zeros((4, 4, 4), np.uint8)
    ones = {(0, 0, 0): 2, (0, 0, 1): 6, (0, 1, 0): 2, (0, 1, 1): 6, (1, 0, 0): 4}
    for (i, j, k), n in ones.items():
        cube = np.zeros(8, np.uint8)
        cube[:n] = 1
        lab[2 * i:2 * i + 2, 2 * j:2 * j + 2, 2 * k:2 * k + 2] = cube.reshape(2, 2, 2)
    for i, j, k in [(1, 0, 1), (1, 1, 0), (1, 1, 1)]:
        lab[2 * i + 1, 2 * j, 2 * k + 1] = 255
    return lab


def test_rve_scatter_exactly_at_the_tolerance_counts_as_representative():
    lab = _rve_exact_volume()
    # independent reference: cut the cubes from the whole array
    cubes = lab.reshape(2, 2, 2, 2, 2, 2).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 8)
    full = cubes[(cubes < 2).all(axis=1)]
    frac = (full == 1).mean(axis=1)
    assert len(full) == 5 and frac.mean() == 0.5 and frac.std(ddof=1) == 0.25
    vol = xr.DataArray(da.from_array(lab, chunks=(3, 1, 2)), dims=("z", "y", "x"),
                       attrs={"voxel_size": (100.0, 50.0, 25.0), "unit": "nm"})
    out = rve(vol, sizes=[2], tolerance=0.5, phases=["a", "b"])
    assert out.cubes.values.tolist() == [5]
    np.testing.assert_array_equal(out.relative_std.values, [[0.5, 0.5]])
    # "at most tolerance": equal scatter is representative
    np.testing.assert_array_equal(out.rve_size.values, [2.0, 2.0])
    # the physical edge is said along z (voxel size 100 nm there, not 25 nm along x)
    np.testing.assert_array_equal(out.size_physical.values, [200.0])


def test_rve_default_sizes_reach_exactly_half_the_shortest_axis():
    lab = np.zeros((16, 17, 19), np.uint8)
    lab[::2] = 1
    out = rve(da.from_array(lab, chunks=(5, 6, 7)), phases=["a", "b"])
    assert out.attrs["base"] == 4
    assert out["size"].values.tolist() == [4, 8]  # 2 * 8 == 16: two cubes fit along z


def test_rve_a_size_over_half_the_shortest_axis_is_refused():
    lab = np.zeros((7, 9, 9), np.uint8)
    with pytest.raises(InputError, match="half the shortest axis"):
        rve(lab, sizes=[4], phases=["a", "b"])
    rve(lab, sizes=[3], phases=["a", "b"])  # 2 * 3 <= 7 is fine


# --------------------------------------------------------------------------------------------
# uncertainty
# --------------------------------------------------------------------------------------------


def test_probability_exactly_at_the_threshold_is_not_uncertain():
    """"Uncertain when the largest class probability is below the threshold": 0.5 is not below 0.5."""
    p = np.zeros((2, 5, 6, 7), np.float64)
    p[0] = 0.75
    p[1] = 0.25
    p[:, 1:3] = 0.5  # 2 of 5 slabs tied at exactly 0.5
    p[0, 4], p[1, 4] = 0.4, 0.6
    out = probability_uncertainty(da.from_array(p, chunks=(2, 2, 4, 3)), threshold=0.5, distance=0)
    assert out.uncertain_voxels.item() == 0
    out = probability_uncertainty(da.from_array(p, chunks=(2, 2, 4, 3)), threshold=0.6, distance=0)
    assert out.uncertain_voxels.item() == 2 * 6 * 7  # 0.5 < 0.6; 0.6 and 0.75 are not below 0.6


def test_no_data_next_to_a_phase_is_no_interface_without_labels():
    """Without ``labels`` the argmax defines the interfaces; NaN (no data) voxels are no phase, so a
    uniform phase-1 volume beside a NaN slab has no interface at all (argmax of NaN would say 0)."""
    p = np.zeros((2, 8, 6, 7), np.float64)
    p[1] = 0.9
    p[0] = 0.1
    p[:, :3] = np.nan
    out = probability_uncertainty(da.from_array(p, chunks=(2, 3, 4, 5)), threshold=0.95, distance=1)
    assert out.attrs["voxels"] == 5 * 6 * 7
    assert out.near_interface_fraction.item() == 0.0
    assert out.uncertain_near_interface_voxels.item() == 0
    assert out.uncertain_fraction.item() == 1.0


def test_spread_counts_samples_where_a_value_is_missing_in_one_of_three():
    a = xr.Dataset({"m": ("phase", [1.0, 2.0])})
    b = xr.Dataset({"m": ("phase", [3.0, np.nan])})
    c = xr.Dataset({"m": ("phase", [5.0, 4.0])})
    out = spread([a, b, c])
    np.testing.assert_array_equal(out.m_samples.values, [3, 2])
    np.testing.assert_allclose(out.m_mean.values, [3.0, 3.0])
    np.testing.assert_allclose(out.m_std.values, [np.std([1, 3, 5], ddof=1), np.std([2, 4], ddof=1)])


# --------------------------------------------------------------------------------------------
# summary / add_to_metrics
# --------------------------------------------------------------------------------------------
def test_add_to_metrics_keeps_each_measure_on_its_own_named_dimension():
    from bigseg.measure import add_to_metrics, shells, summary

    lab = np.zeros((8, 9, 10), np.uint8)
    lab[:, :, 5:] = 1
    lab[:, 4:, :] = np.where(lab[:, 4:, :] == 1, 2, 0)
    names = ["pore", "active", "cbd"]
    m = summary(da.from_array(lab, chunks=(3, 4, 5)), phases=names)
    sh = shells(lab, around="active", of="pore", max_distance=3, phases=names)
    rv = rve(lab, sizes=[2, 4], phases=names, tolerance=0.3)
    out = add_to_metrics(m, shells=sh, rve=rv)
    assert out.shell_fraction.dims == ("shell_distance",)
    np.testing.assert_array_equal(out.shell_fraction.values, sh.values)
    assert out.rve_mean.dims == ("cube_edge", "phase") and out.rve_size.dims == ("phase",)
    assert out.cube_edge.values.tolist() == [2, 4]
    np.testing.assert_array_equal(out.rve_cubes.values, rv.cubes.values)
    assert out.attrs["rve_tolerance"] == 0.3
    # the volume fractions are untouched: exactly the voxel counts
    want = [np.mean(lab == p) for p in range(3)]
    np.testing.assert_allclose(out.volume_fraction.values, want, rtol=1e-12)


def test_rve_of_a_synthetic_electrode_keeps_its_stated_unit_and_z_voxel_size():
    """A synthetic electrode in µm (not the default nm) keeps its unit through to the physical cube edge."""
    import bigseg

    vol = bigseg.synth.electrode((16, 16, 16), radius=(3, 1), voxel_size=(0.5, 0.25, 0.25), unit="um", chunks=5)
    assert vol.attrs["unit"] == "um"
    out = rve(vol, sizes=[4, 8])
    assert out.size_physical.attrs["units"] == "um"
    np.testing.assert_array_equal(out.size_physical.values, [4 * 0.5, 8 * 0.5])


def test_a_voxel_with_any_nan_probability_is_no_data():
    p = np.full((3, 4, 5, 6), 1 / 3)
    p[:, 0] = [[[0.8]], [[0.1]], [[0.1]]]
    p[1, 1:3] = np.nan  # one class NaN in two slabs: no data, counted nowhere
    out = probability_uncertainty(da.from_array(p, chunks=(3, 3, 2, 4)), threshold=0.5, distance=1)
    assert out.attrs["voxels"] == 2 * 5 * 6
    assert out.uncertain_voxels.item() == 5 * 6  # the last slab, 1/3 each; the first is sure (0.8)
