"""Volume-fraction profiles along an axis, against per-slice NumPy counts of the whole array."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import bigseg
from bigseg.errors import InputError
from bigseg.measure import profile, summary
from bigseg.report import profile_figure

AXES = "zyx"


def _reference(lab, axis, step, k=3):
    """(k, bins) fractions and (bins,) labelled voxels, 255 left out, by NumPy on the whole array."""
    a = np.moveaxis(lab, axis, 0)
    frac, tot = [], []
    for s in range(0, a.shape[0], step):
        v = a[s:s + step].ravel()
        counts = np.array([(v == j).sum() for j in range(k)])
        tot.append(counts.sum())
        frac.append(counts / counts.sum() if counts.sum() else np.full(k, np.nan))
    return np.array(frac).T, np.array(tot)


@pytest.fixture(scope="module")
def lab():
    out = bigseg.synth.electrode((23, 30, 34), radius=(4, 1), seed=3).values.copy()
    out[5:7, :10, :] = 255  # partly unlabelled slices
    out[:, 28:, :] = 255  # two y slices with no labelled voxel at all
    return out


@pytest.mark.parametrize("chunks", [(7, 11, 13), (23, 30, 34), (5, 30, 9)], ids=str)
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("step", [1, 4])
def test_matches_per_slice_counts(lab, chunks, axis, step):
    out = profile(da.from_array(lab, chunks=chunks), axis=AXES[axis], step=step)
    frac, tot = _reference(lab, axis, step)
    assert out.dims == ("phase", AXES[axis])
    np.testing.assert_array_equal(out.bin_voxels, tot)
    np.testing.assert_allclose(out.values, frac, rtol=1e-12)  # NaN where a bin has no labelled voxel
    n = lab.shape[axis]
    np.testing.assert_array_equal(out[f"{AXES[axis]}_index"], np.arange(0, n, step))
    centres = [np.mean(np.arange(s, min(s + step, n))) for s in range(0, n, step)]
    np.testing.assert_allclose(out[AXES[axis]], centres)
    if axis == 1:
        assert np.isnan(out.values[:, -1]).all() and out.bin_voxels.values[-1] == 0


def test_physical_positions_series_and_the_whole_volume_mean(lab):
    lab = np.where(lab == 255, 0, lab).astype(np.uint8)
    vol = xr.DataArray(da.from_array(np.stack([lab, lab[::-1]]), chunks=(1, 6, 30, 17)), dims=("t", "z", "y", "x"),
                       attrs={"voxel_size": (0.25, 0.1, 0.1), "unit": "micrometer", "phases": ["pore", "cbd", "active"]})
    out = profile(vol, axis="z", step=3)
    assert out.dims == ("t", "phase", "z")
    frac, _ = _reference(lab, 0, 3)
    np.testing.assert_allclose(out.sel(t=0).values, frac)
    np.testing.assert_allclose(out.sel(t=1).values[:, 0], _reference(lab[::-1], 0, 3)[0][:, 0])
    np.testing.assert_allclose(out.z[:2], [0.25, 1.0])  # slices 0-2 and 3-5 of 0.25 µm
    assert out.z.attrs["units"] == "micrometer"
    # the voxel-weighted mean of the profile is the whole-volume fraction
    whole = bigseg.measure.volume_fractions(vol)
    np.testing.assert_allclose((out * out.bin_voxels).sum("z") / out.bin_voxels.sum("z"), whole.values, rtol=1e-12)


def test_summary_profile_is_the_same_and_shares_the_pass(lab):
    clean = np.where(lab == 255, 1, lab).astype(np.uint8)
    arr = da.from_array(clean, chunks=(8, 13, 11))
    ds = summary(arr, truth=arr, profile="x", profile_step=5)
    ref = profile(arr, axis="x", step=5)
    got = ds.volume_fraction_profile
    xr.testing.assert_equal(got.drop_vars("voxels"), ref.rename("volume_fraction_profile"))
    assert got.attrs["axis"] == "x" and got.attrs["step"] == 5
    assert float(ds.iou.min()) == 1.0  # the scores are still there
    np.testing.assert_array_equal(ds.truth_volume_fraction_profile, ref)  # the truth's, from the same pass
    # a truth without voxel size (plain array) on the grid of labels in nm: the labels' positions
    nm = xr.DataArray(arr, dims=("z", "y", "x"), attrs={"voxel_size": (40.0, 40.0, 40.0), "unit": "nm"})
    other = summary(nm, truth=da.from_array(lab, chunks=(23, 7, 34)), profile="x", profile_step=5)
    np.testing.assert_allclose(other.truth_volume_fraction_profile, _reference(lab, 2, 5)[0])  # 255 left out
    np.testing.assert_array_equal(other.volume_fraction_profile, ref)
    np.testing.assert_allclose(other.x, ref.x * 40.0)
    assert "volume_fraction_profile" not in summary(arr)


def test_figure(lab, tmp_path):
    fig = profile_figure(profile(lab, axis="y", step=2))
    assert len(fig.axes[0].lines) == 6  # a curve and its whole-volume mean per phase
    series = xr.DataArray(np.stack([lab, lab, lab]), dims=("t", "z", "y", "x"))
    path = tmp_path / "p.png"
    profile_figure(summary(np.where(series == 255, 0, series).astype(np.uint8), profile="z"), path=path)
    assert path.stat().st_size > 10_000
    clean = np.where(lab == 255, 0, lab).astype(np.uint8)
    fig = profile_figure(summary(clean, truth=lab, profile="z"))
    assert len(fig.axes[0].lines) == 9 and "dotted: truth" in fig.axes[0].get_title()
    from bigseg.measure import interface_profile  # alone (was an AttributeError: no `phase`)

    fig = profile_figure(interface_profile(clean, axis="y", step=2))
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3 and "interfaces along y" in fig.axes[0].get_title()
    with pytest.raises(InputError, match=r"Got a series of 3 steps: draw one, e.g. profile.isel\(t=-1\)"):
        profile_figure(interface_profile(np.where(series == 255, 0, series).astype(np.uint8)))


@pytest.mark.parametrize("kw, match", [
    ({"axis": "t"}, "`axis`"), ({"axis": 3}, "`axis`"), ({"step": 0}, "`step`"), ({"step": 24}, "`step`.*23"),
])
def test_bad_arguments_are_named(lab, kw, match):
    with pytest.raises(InputError, match=match):
        profile(lab, **kw)


def test_values_beyond_the_phases_are_refused(lab):
    bad = lab.copy()
    bad[0, 0, 0] = 7
    with pytest.raises(InputError, match="7"):
        profile(bad)
    with pytest.raises(InputError, match="`profile`"):
        summary(lab, profile="depth")


def _pair_faces(a, b, k=3):
    """(k, k) faces between voxels of two equal-shape arrays facing each other, symmetric."""
    m = (a != b) & (a < k) & (b < k)
    out = np.zeros((k, k), np.int64)
    np.add.at(out, (a[m], b[m]), 1)
    return out + out.T


def _faces_by_slice(lab, axis, k=3):
    """(n, k, k) shared faces per slice by NumPy: the faces within slice s, and half of those
    with each neighbouring slice (an end slice: its one neighbour's, for both halves)."""
    a = np.moveaxis(lab, axis, 0)
    n = a.shape[0]
    within = [_pair_faces(sl[:-1], sl[1:], k) + _pair_faces(sl[:, :-1], sl[:, 1:], k) for sl in a]
    between = [_pair_faces(a[s], a[s + 1], k) for s in range(n - 1)]
    out = []
    for s in range(n):
        below = between[s - 1] if s > 0 else between[0]
        above = between[s] if s < n - 1 else between[n - 2]
        out.append(within[s] + (below + above) / 2)
    return np.array(out), between


@pytest.mark.parametrize("chunks", [(7, 11, 13), (23, 30, 34), (5, 30, 9)], ids=str)
@pytest.mark.parametrize("axis", [0, 2])
def test_interface_profile_matches_per_slice_faces(lab, chunks, axis):
    from bigseg.measure import interface_profile, interfaces

    clean = np.where(lab == 255, 1, lab).astype(np.uint8)
    vol = xr.DataArray(da.from_array(clean, chunks=chunks), dims=("z", "y", "x"),
                       attrs={"voxel_size": (2.0, 1.0, 1.0), "unit": "nm"})
    out = interface_profile(vol, axis=AXES[axis], step=4)
    assert out.dims == ("phase_a", "phase_b", AXES[axis]) and out.attrs["units"] == "nm^-1"
    # isotropic reference on the same labels: faces by slice, binned, over the bin volume
    iso = interface_profile(da.from_array(clean, chunks=chunks), axis=AXES[axis], step=4)
    faces, between = _faces_by_slice(clean, axis)
    n = clean.shape[axis]
    starts = np.arange(0, n, 4)
    binned = np.add.reduceat(faces, starts, axis=0)
    vol_bins = np.diff(np.append(starts, n)) * (clean.size // n)
    np.testing.assert_allclose(np.moveaxis(iso.values, -1, 0), binned / vol_bins[:, None, None], rtol=1e-12)
    # anisotropic voxels: the bins add up to the whole volume's interface area (faces, face
    # areas), plus the half of the end slices' faces counted twice
    widths = np.diff(np.append(starts, n)) * (clean.size // n) * 2.0
    along = 2.0 / (2.0, 1.0, 1.0)[axis]  # area of a face normal to the axis
    extra = (between[0] + between[-1]) / 2 * along
    np.testing.assert_allclose((out.values * widths).sum(-1), interfaces(vol).area.values + extra, rtol=1e-12)


@pytest.mark.parametrize("chunks", [(7, 11, 13), (5, 30, 9)], ids=str)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_crofton_interface_profile(lab, chunks, axis):
    """Each slice's Crofton crossings, by NumPy on the whole array (255 left in: unlabelled
    voxels cross nothing), binned over the labelled volume; the bins add up to
    ``interfaces(method="crofton")`` plus half the crossings between each end slice and its
    neighbour (counted twice, as the faces), for any chunking and anisotropic voxels."""
    from bigseg.kernels.crofton import DIRECTIONS, crofton_weights
    from bigseg.measure import interface_profile, interfaces

    spacing = (2.0, 1.0, 1.5)
    vol = xr.DataArray(da.from_array(lab, chunks=chunks), dims=("z", "y", "x"),
                       attrs={"voxel_size": spacing, "unit": "nm"})
    out = interface_profile(vol, axis=AXES[axis], step=4, method="crofton")
    assert out.attrs["method"] == "crofton" and "(crofton)" in out.attrs["long_name"]
    w, length = crofton_weights(spacing)
    n = lab.shape[axis]
    within, between = np.zeros((n, 3, 3)), np.zeros((n, 3, 3))
    for d, wd, ld in zip(DIRECTIONS, w, length):
        a = lab[tuple(slice(max(0, -c), lab.shape[i] - max(0, c)) for i, c in enumerate(d))]
        b = lab[tuple(slice(max(0, c), lab.shape[i] - max(0, -c)) for i, c in enumerate(d))]
        s_a = np.broadcast_to(np.arange(max(0, -d[axis]), n - max(0, d[axis])).reshape(
            [-1 if i == axis else 1 for i in range(3)]), a.shape)
        m = (a != b) & (a < 3) & (b < 3)
        low = np.minimum(s_a, s_a + d[axis])[m]  # the pair's lower slice
        into = between if d[axis] else within
        np.add.at(into, (low, a[m], b[m]), 2 * wd * np.prod(spacing) / ld)
        np.add.at(into, (low, b[m], a[m]), 2 * wd * np.prod(spacing) / ld)
    below = np.concatenate([between[:1], between[:n - 1]])
    above = np.concatenate([between[:n - 1], between[n - 2:n - 1]])
    per_slice = within + (below + above) / 2
    starts = np.arange(0, n, 4)
    labelled = np.moveaxis(lab < 3, axis, 0).reshape(n, -1).sum(1) * np.prod(spacing)
    with np.errstate(invalid="ignore"):  # the bin of y slices without a labelled voxel: NaN
        expect = np.add.reduceat(per_slice, starts, axis=0) / np.add.reduceat(labelled, starts)[:, None, None]
    np.testing.assert_allclose(np.moveaxis(out.values, -1, 0), expect, rtol=1e-9)
    total = np.nansum(np.moveaxis(out.values, -1, 0) * np.add.reduceat(labelled, starts)[:, None, None], 0)
    extra = (between[0] + between[n - 2]) / 2
    np.testing.assert_allclose(total, interfaces(vol, method="crofton").area.values + extra, rtol=1e-9)
    # summary(method="crofton") carries this profile, and so does a marching-cubes summary (which
    # has no slice-by-slice form: Crofton is the closer estimate to it; faces read 30-60 % high)
    ds = summary(vol, method="crofton", profile=AXES[axis], profile_step=4)
    np.testing.assert_allclose(ds.specific_area_profile.values, out.values, rtol=1e-12)
    mc = summary(vol, method="marching_cubes", profile=AXES[axis], profile_step=4)
    np.testing.assert_allclose(mc.specific_area_profile.values, out.values, rtol=1e-12)
    assert mc.specific_area_profile.attrs["method"] == "crofton" and mc.area.attrs["method"] == "marching_cubes"
    whole = summary(vol, method="crofton")  # its totals from the profile's crossings: the same areas
    np.testing.assert_allclose(ds.area.values, whole.area.values, rtol=1e-12)
    profiled = ds.drop_vars([v for v in ds.data_vars if "profile" in v]).drop_dims(AXES[axis])
    xr.testing.assert_allclose(profiled, whole)
    with pytest.raises(InputError, match="method"):
        interface_profile(vol, method="marching_cubes")


def test_interface_profile_has_no_dip_at_the_ends():
    """A statistically uniform structure: the end slices read like the rest (they read about
    a third low when a face counted only for the slice below it)."""
    from bigseg.measure import interface_profile

    rng = np.random.default_rng(0)
    lab = (rng.random((40, 48, 48)) < 0.5).astype(np.uint8)
    p = interface_profile(lab, axis="z", phases=["a", "b"]).values[0, 1]
    interior = p[1:-1].mean()
    assert abs(p[0] / interior - 1) < 0.08 and abs(p[-1] / interior - 1) < 0.08  # noise; was 0.33 low


def test_summary_carries_the_interface_profile(lab):
    from bigseg.measure import interface_profile

    clean = np.where(lab == 255, 0, lab).astype(np.uint8)
    ds = summary(clean, profile="y", profile_step=3)
    np.testing.assert_allclose(ds.specific_area_profile.values, interface_profile(clean, axis="y", step=3).values)
    fig = profile_figure(ds)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 3  # one curve per phase pair


def test_positions_follow_the_voxel_size_not_index_coordinates():
    # a synthetic volume keeps its index coordinates 0, 1, 2 ... when given a voxel size by its
    # attrs: positions are in that unit (slice i at i * 50 nm), as the same volume stated in µm
    lab = bigseg.synth.electrode((12, 8, 8), seed=1, chunks=8)
    nm = lab.assign_attrs(voxel_size=(50.0, 50.0, 50.0), unit="nm")
    um = lab.assign_attrs(voxel_size=(0.05, 0.05, 0.05), unit="um")
    np.testing.assert_allclose(profile(nm, axis="z", step=4).z, [75.0, 275.0, 475.0])
    np.testing.assert_allclose(profile(um, axis="z", step=4).z, [0.075, 0.275, 0.475])
    np.testing.assert_allclose(bigseg.measure.interface_profile(nm, axis="y", step=4).y, [75.0, 275.0])
    # a box cut from a calibrated scan keeps its place in it
    box = bigseg.io._volume.recalibrated(lab, (50.0, 50.0, 50.0), "nm")[4:]
    np.testing.assert_allclose(profile(box, axis="z", step=4).z, [275.0, 475.0])
