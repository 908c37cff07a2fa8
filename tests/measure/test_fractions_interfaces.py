"""Volume fractions and face-counted interfaces equal whole-array NumPy counts for any chunking."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from ._measure_ref import faces_per_axis, interface_voxels

from bigseg.io import make_volume
from bigseg.measure import interfaces, volume_fractions

CHUNKINGS = [(17, 23, 30), (40, 48, 56), (5, 9, 56), (1, 48, 11), (13, 2, 19)]


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=str)
def test_volume_fractions_exact(labels, chunks):
    vf = volume_fractions(da.from_array(labels, chunks=chunks))
    counts = np.bincount(labels.ravel(), minlength=3)
    np.testing.assert_array_equal(vf.coords["voxels"].values, counts)
    np.testing.assert_array_equal(vf.values, counts / labels.size)
    assert list(vf.phase.values) == ["pore", "cbd", "active"]
    assert vf.dims == ("phase",) and vf.name == "volume_fraction"


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=str)
def test_interfaces_faces_exact(labels, chunks):
    ds = interfaces(da.from_array(labels, chunks=chunks), method="faces")
    ref = faces_per_axis(labels, 3)
    np.testing.assert_array_equal(ds.faces.values, ref.sum(axis=0))
    assert ds.faces.dtype == np.int64
    np.testing.assert_array_equal(np.diag(ds.faces.values), 0)
    onv = interface_voxels(labels, 3)
    np.testing.assert_array_equal(ds.voxel_fraction.values, (onv + onv.T) / labels.size)
    np.testing.assert_array_equal(ds.area.values, ref.sum(axis=0).astype(float))
    assert ds.area.attrs["units"] == "voxel^2"


def test_interfaces_anisotropic_face_areas(labels):
    vol = make_volume(da.from_array(labels, chunks=(11, 30, 17)), voxel_size=(2.0, 3.0, 5.0), unit="nm",
                      phases=["pore", "cbd", "active"])
    ds = interfaces(vol)
    ref = faces_per_axis(labels, 3)
    want = ref[0] * 15.0 + ref[1] * 10.0 + ref[2] * 6.0  # z faces: vy*vx, y: vz*vx, x: vz*vy
    np.testing.assert_allclose(ds.area.values, want, rtol=1e-15)
    assert ds.area.attrs["units"] == "nm^2"
    # surface coverage: each phase's interface area shared out among the others (rows sum to 1)
    np.testing.assert_allclose(ds.coverage.values, want / want.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(ds.coverage.sum("phase_b"), 1.0)
    one = interfaces(np.zeros((4, 5, 6), np.uint8))  # a phase without interfaces: NaN, not an error
    assert np.isnan(one.coverage.values).all()


def test_box_exact_with_faces():
    lab = np.zeros((30, 31, 32), np.uint8)
    lab[4:14, 6:26, 3:30] = 2  # 10 x 20 x 27 box of 'active' in pore
    vol = make_volume(da.from_array(lab, chunks=(7, 9, 8)), voxel_size=(0.5, 2.0, 3.0), unit="um")
    ds = interfaces(vol)
    dz, dy, dx = 10 * 0.5, 20 * 2.0, 27 * 3.0
    assert ds.area.sel(phase_a="pore", phase_b="active").item() == pytest.approx(2 * (dz * dy + dy * dx + dz * dx), rel=1e-14)
    assert ds.faces.sel(phase_a="active", phase_b="pore").item() == 2 * (10 * 20 + 20 * 27 + 10 * 27)
    # shell of the box, inside and outside, over all voxels
    inner = 10 * 20 * 27 - 8 * 18 * 25
    outer = 2 * (10 * 20 + 20 * 27 + 10 * 27)
    assert ds.voxel_fraction.sel(phase_a="pore", phase_b="active").item() == pytest.approx((inner + outer) / lab.size)
    assert ds.area.sel(phase_a="cbd", phase_b="active").item() == 0.0


def test_series_has_t_dimension(labels):
    series = np.stack([labels, np.roll(labels, 3, axis=2), labels[::-1]])
    vol = make_volume(da.from_array(series, chunks=(1, 13, 24, 20)), phases=["pore", "cbd", "active"])
    vf = volume_fractions(vol)
    assert vf.dims == ("t", "phase")
    for t in range(3):
        np.testing.assert_array_equal(vf.values[t], np.bincount(series[t].ravel(), minlength=3) / labels.size)
    ds = interfaces(vol)
    assert ds.faces.dims == ("t", "phase_a", "phase_b")
    for t in range(3):
        np.testing.assert_array_equal(ds.faces.values[t], faces_per_axis(series[t], 3).sum(axis=0))


def test_unlabelled_voxels_left_out_of_fractions(labels):
    lab = labels.copy()
    lab[:5] = 255
    vf = volume_fractions(lab)
    counts = np.bincount(lab[5:].ravel(), minlength=3)
    np.testing.assert_allclose(vf.values, counts / counts.sum(), rtol=1e-15)


def test_phase_names_from_attrs_and_wide_dtypes(labels):
    vol = make_volume(labels.astype(np.int32), phases=["a", "b", "c", "d"])
    vf = volume_fractions(vol)
    assert list(vf.phase.values) == ["a", "b", "c", "d"] and vf.values[3] == 0
    ds = interfaces(labels.astype(np.int64), phases=["a", "b", "c"])
    np.testing.assert_array_equal(ds.faces.values, faces_per_axis(labels, 3).sum(axis=0))


def test_a_boolean_mask_has_two_phases_of_its_own(labels):
    mask = labels == 2
    vf = volume_fractions(da.from_array(mask, chunks=(17, 23, 30)))
    assert list(vf.phase.values) == ["background", "foreground"]  # was: pore and cbd
    np.testing.assert_allclose(vf.values, [1 - mask.mean(), mask.mean()], rtol=1e-12)
    assert list(volume_fractions(mask, phases=["rest", "nmc"]).phase.values) == ["rest", "nmc"]
    # a mask of an opened label image keeps its attrs (xarray): still two phases, not its three
    lab = make_volume(labels, phases=["pore", "cbd", "active"])
    vf = volume_fractions(lab == 2)
    assert list(vf.phase.values) == ["background", "foreground"]
    np.testing.assert_allclose(vf.values, [1 - mask.mean(), mask.mean()], rtol=1e-12)
    # measures of one phase (default "active" or "pore") say which name a mask's True voxels have
    from bigseg.errors import InputError
    from bigseg.measure import particles, surface_area

    with pytest.raises(InputError, match=r"boolean mask of `labels`.*Got 'active' instead: pass phase='foreground'"):
        particles(lab == 2)
    assert surface_area(mask, phase="foreground") == surface_area(labels, phase=2)


def test_results_round_trip_netcdf(labels, tmp_path):
    ds = xr.merge([volume_fractions(labels).to_dataset(), interfaces(labels, method="marching_cubes")],
                  compat="override", combine_attrs="drop_conflicts")
    path = tmp_path / "m.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    back = xr.open_dataset(path, engine="h5netcdf").load()
    np.testing.assert_array_equal(back.faces.values, ds.faces.values)
    assert back.area.attrs["units"] == "voxel^2"
    assert list(back.phase_a.values) == ["pore", "cbd", "active"]


def test_every_number_of_a_full_metrics_file_says_its_unit(tmp_path):
    """The netCDF of a run held counts and voxel bounds without `units` (bin_voxels, z_index,
    voxels, subvolume_z0 ...): a reader could not tell voxels from nm."""
    from bigseg import measure, synth

    lab = synth.electrode((16, 20, 20), seed=1, voxel_size=50, unit="nm", chunks=9).compute()
    ds = measure.add_to_metrics(
        measure.summary(lab, profile="z"), shells=measure.shells(lab, around="active", of="cbd", max_distance=2),
        tortuosity=measure.tortuosity(lab, phase="pore", axis="z"), rve=measure.rve(lab, sizes=[4, 8]),
        radial=measure.radial_profile(lab), connectivity=measure.connectivity(lab), thickness=measure.thickness(lab))
    ds.to_netcdf(tmp_path / "m.nc", engine="h5netcdf")
    back = xr.open_dataset(tmp_path / "m.nc", engine="h5netcdf")
    numbers = {n: v for n, v in {**back.data_vars, **back.coords}.items()
               if v.dtype.kind in "iuf" and n != "subvolume"}  # (the sub-volumes' numbering)
    assert not [n for n, v in numbers.items() if "units" not in v.attrs]
    assert {back[n].attrs["units"] for n in ("bin_voxels", "z_index", "voxels", "subvolume_z0")} == {"voxel"}
    assert back.z.attrs["units"] == "nm"



def test_every_coordinate_of_phase_names_says_what_it_is(tmp_path):
    """The phase-name coordinates (phase, phase_a, phase_b, truth_phase, ...) were the only
    coordinates of the results (and of metrics.nc) without a CF `long_name`."""
    from bigseg import measure, synth

    lab = synth.electrode((16, 20, 20), seed=1, voxel_size=50, unit="nm", chunks=9).compute()
    ser = xr.concat([lab, lab.copy(data=lab.values[::-1])], dim="t")
    results = {
        "metrics": measure.add_to_metrics(
            measure.summary(lab, truth=lab, method="marching_cubes", profile="z"), rve=measure.rve(lab, sizes=[4, 8]),
            connectivity=measure.connectivity(lab), thickness=measure.thickness(lab, phase="pore")),
        "interfaces": measure.interfaces(lab, method="marching_cubes"),  # its phase_area (phase)
        "confusion": measure.confusion(lab, lab).to_dataset(),
        "radial": measure.radial_profile(lab).to_dataset(),
        "transitions": measure.transitions(ser).to_dataset(),
    }
    want = {"phase": "phase", "thickness_phase": "phase", "phase_a": "phase on one side of the interface",
            "phase_b": "phase on the other side of the interface", "truth_phase": "phase in the reference (truth)",
            "pred_phase": "phase in the prediction", "from_phase": "phase at the step before",
            "to_phase": "phase at this step"}
    for name, ds in results.items():
        ds.to_netcdf(tmp_path / f"{name}.nc", engine="h5netcdf")
        with xr.open_dataset(tmp_path / f"{name}.nc", engine="h5netcdf") as back:
            named = [c for c in back.coords if back[c].dtype.kind in "UO"]
            assert named, name
            assert {c: back[c].attrs.get("long_name") for c in named} == {c: want[c] for c in named}, name
    # agreement's coordinates of segmentations and pairs (had no attributes), through netCDF
    ag = measure.agreement([lab, lab.copy(data=lab.values[::-1]), lab], truth=lab)
    ag.to_netcdf(tmp_path / "agreement.nc", engine="h5netcdf")
    with xr.open_dataset(tmp_path / "agreement.nc", engine="h5netcdf") as back:
        assert back["segmentation"].attrs["long_name"] == "segmentation (in the order given)"
        assert "first segmentation" in back["pair_a"].attrs["long_name"]
        assert "second segmentation" in back["pair_b"].attrs["long_name"]
        assert back["iou"]["segmentation"].attrs["long_name"] == "segmentation (in the order given)"
    # and a series' time: "time step" without units (the scans' order; had no attributes at all)
    assert results["transitions"]["t"].attrs == {"long_name": "time step"}
    assert measure.volume_fractions(ser)["t"].attrs == {"long_name": "time step"}


def test_series_time_coordinate_keeps_its_attrs(labels):
    # times in minutes: values and units come through every measure of a series (the units were dropped)
    from bigseg import measure

    lab = labels[:16, :20, :18]
    ser = xr.DataArray(np.stack([lab, lab[::-1], lab[:, ::-1]]), dims=("t", "z", "y", "x"),
                       coords={"t": ("t", [0.0, 30.0, 60.0], {"units": "min", "long_name": "time"})})
    results = {
        "volume_fractions": measure.volume_fractions(ser),
        "interfaces": measure.interfaces(ser),
        "surface_area": measure.surface_area(ser, phase="cbd"),
        "scores": measure.scores(ser, ser.copy(data=ser.values[::-1])),  # another prediction at the same times
        "summary": measure.summary(ser, profile="z"),
        "profile": measure.profile(ser),
        "shells": measure.shells(ser, around="active", of="cbd", max_distance=2),
        "connectivity": measure.connectivity(ser),
        "tortuosity": measure.tortuosity(ser, subvolume=(16, 20, 18)),
        "transitions": measure.transitions(ser),
    }
    with pytest.warns(UserWarning, match="max_diameter"):
        results["thickness"] = measure.thickness(ser, phase="cbd", max_diameter=3)
    for name, out in results.items():
        times = [30.0, 60.0] if name == "transitions" else [0.0, 30.0, 60.0]
        assert list(out.t.values) == times, name
        assert out.t.attrs == {"units": "min", "long_name": "time"}, name


def test_a_count_of_voxels_has_the_one_unit_voxel():
    """Voxel counts said `units` "voxel" (volume_fractions, profiles), "voxels" (confusion,
    scores' support, probability_uncertainty) or "1" (connectivity): one spelling, as in the
    particle table's units, so that a reader (or pint) can tell a count of voxels from a ratio."""
    from bigseg import measure, synth

    lab = synth.electrode((12, 12, 12), radius=(3, 1), seed=2, chunks=6).compute()
    other = synth.perturb(lab, seed=1)
    prob = xr.DataArray(np.full((3, 12, 12, 12), 1 / 3, np.float32), dims=("phase", "z", "y", "x"))
    counts = {"confusion": measure.confusion(lab, other), "support": measure.scores(lab, other).support,
              "connectivity.voxels": measure.connectivity(lab).voxels,
              "uncertain_voxels": measure.probability_uncertainty(prob).uncertain_voxels,
              "volume_fractions.voxels": measure.volume_fractions(lab).voxels}
    assert {name: c.attrs["units"] for name, c in counts.items()} == dict.fromkeys(counts, "voxel")
