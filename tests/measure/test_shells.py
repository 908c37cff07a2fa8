"""Shells: phase fractions by distance from a phase, against a whole-array SciPy reference."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage as ndi

import bigseg
from bigseg.errors import InputError
from bigseg.measure import shells


def _reference(lab, around, of, max_distance, step, sampling=(1.0, 1.0, 1.0)):
    d = ndi.distance_transform_edt(~np.isin(lab, around), sampling=sampling)
    n = int(np.ceil(max_distance / step))
    frac, tot = [], []
    for i in range(n):
        hi = max_distance if i == n - 1 else (i + 1) * step
        m = (d > i * step) & (d <= hi)
        tot.append(m.sum())
        frac.append(np.isin(lab[m], of).mean() if m.any() else np.nan)
    return np.array(frac), np.array(tot)


@pytest.fixture(scope="module")
def lab():
    return bigseg.synth.electrode((30, 36, 40), radius=(4, 1), seed=5).values


@pytest.mark.parametrize("chunks", [(7, 11, 13), (30, 36, 40), (16, 5, 40)], ids=str)
def test_matches_whole_array_distance_transform(lab, chunks):
    out = shells(da.from_array(lab, chunks=chunks), around="active", of="cbd", max_distance=5.5, step=1.0)
    frac, tot = _reference(lab, [2], [1], 5.5, 1.0)
    np.testing.assert_array_equal(out.voxels, tot)
    np.testing.assert_allclose(out.values, frac, rtol=1e-12)
    np.testing.assert_allclose(out.distance, [1, 2, 3, 4, 5, 5.5])
    assert out.values[0] > 0.3 > out.values[3]  # CBD coats the particles


def test_anisotropic_voxels_several_phases_and_series(lab):
    vol = xr.DataArray(da.from_array(np.stack([lab, lab[::-1]]), chunks=(1, 9, 12, 40)), dims=("t", "z", "y", "x"),
                       attrs={"voxel_size": (100.0, 50.0, 50.0), "unit": "nm"})
    out = shells(vol, around=["cbd", "active"], of="pore", max_distance=4, step=2)
    frac, tot = _reference(lab, [1, 2], [0], 4, 2, sampling=(2.0, 1.0, 1.0))
    np.testing.assert_allclose(out.sel(t=0).values, frac)
    np.testing.assert_array_equal(out.sel(t=0).voxels, tot)
    np.testing.assert_allclose(out.distance, [100.0, 200.0])  # nm: 2 and 4 edges of 50 nm
    assert out.distance.attrs == {"units": "nm", "long_name": "distance from cbd+active (outer radius of the shell)"}
    np.testing.assert_allclose(out.values, 1.0)  # only pore lies outside solid


@pytest.mark.parametrize("kwargs,match", [
    (dict(around="nmc", of="cbd", max_distance=3), "`around`"),
    (dict(around="active", of=[], max_distance=3), "`of`"),
    (dict(around="active", of="cbd", max_distance=0), "`max_distance`"),
    (dict(around="active", of="cbd", max_distance=3, step=4), "`step`"),
    # `of` inside `around` read 0 in every shell, silently
    (dict(around="active", of="active", max_distance=3), r"`of` to name a phase other than `around` \(active\).*of='active'"),
    (dict(around=["cbd", "active"], of=2, max_distance=3), r"other than `around` \(cbd\+active\).*Got of=2 instead"),
])
def test_bad_arguments_are_named(lab, kwargs, match):
    with pytest.raises(InputError, match=match):
        shells(lab, **kwargs)


def test_shells_figure(lab):
    from bigseg.report import shells_figure

    out = shells(lab, around="active", of="cbd", max_distance=4)
    fig = shells_figure(out, overall=0.15)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), out.values)
    assert ax.lines[1].get_ydata()[0] == 0.15 and "cbd around active" in ax.get_title()
    fractions = bigseg.measure.volume_fractions(lab)  # the summary's fractions: the `of` phase picked
    assert shells_figure(out, overall=fractions).axes[0].lines[1].get_ydata()[0] == float(fractions.sel(phase="cbd"))
    series = shells(np.stack([lab, lab]), around="active", of="cbd", max_distance=4)
    assert len(shells_figure(series).axes[0].lines) == 2


@pytest.mark.parametrize("engine", ["h5netcdf", "scipy"])
@pytest.mark.parametrize("around,of", [("active", "cbd"), (["cbd", "active"], "pore")], ids=["one", "two"])
def test_round_trips_netcdf_and_draws_from_the_file(lab, tmp_path, engine, around, of):
    # attrs naming the phases come back as written (a one-item list came back as a bare string,
    # which the figure spelled out letter by letter, and netCDF3 refused lists of strings)
    import matplotlib

    matplotlib.use("Agg")
    from bigseg.report import shells_figure

    out = shells(lab, around=around, of=of, max_distance=3)
    out.to_netcdf(tmp_path / "s.nc", engine=engine)
    back = xr.load_dataarray(tmp_path / "s.nc", engine=engine)
    assert {k: back.attrs[k] for k in ("around", "of")} == {k: out.attrs[k] for k in ("around", "of")}
    fractions = bigseg.measure.volume_fractions(lab)
    ax = shells_figure(back, overall=fractions).axes[0]
    names = [of] if isinstance(of, str) else of
    assert ax.lines[1].get_ydata()[0] == pytest.approx(float(fractions.sel(phase=names).sum()))
    assert ax.get_title() == shells_figure(out).axes[0].get_title() == (
        "cbd around active" if of == "cbd" else "pore around cbd+active")


def test_the_arguments_kept_say_their_unit():
    """`step` and `max_distance` (voxel edges) sat beside `distance_units: nm` as if in nm."""
    from bigseg import synth
    from bigseg.measure import shells as measure_shells

    lab = synth.electrode((16, 20, 20), seed=2).compute().assign_attrs(voxel_size=(50.0, 50.0, 50.0), unit="nm")
    out = measure_shells(lab, around="active", of="cbd", max_distance=3, step=1.5)
    assert out.attrs["step_voxels"] == 1.5 and out.attrs["max_distance_voxels"] == 3.0
    assert "step" not in out.attrs and "max_distance" not in out.attrs and out.attrs["distance_units"] == "nm"


def test_an_absent_around_phase_is_said():
    """No voxel of `around`: every shell was NaN without a word."""
    lab = np.zeros((6, 7, 8), np.uint8)
    lab[2:4] = 1
    with pytest.warns(UserWarning, match=r"no voxel of `around` \(active\)"):
        out = shells(lab, around="active", of="cbd", max_distance=3)
    assert np.isnan(out.values).all()


def test_a_step_too_fine_for_the_counts_is_refused_before_work():
    """A step of 1e-6 made every block allocate (phases x 3 million) counts."""
    lab = np.zeros((6, 7, 8), np.uint8)
    with pytest.raises(InputError, match=r"`step` to make at most 100000 shells.*Got step=1e-06"):
        shells(lab, around="active", of="cbd", max_distance=3, step=1e-6)
    with pytest.raises(InputError, match=r"`step` to make at most 100000 shells.*Got step=1e-06"):
        bigseg.measure.radial_profile(lab, step=1e-6)


def test_every_coordinate_states_its_unit():
    """The shells' `voxels` count had no `units` (distance and distance_voxels had theirs)."""
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[3:5, 3:5, 3:5] = 2
    lab[0] = 1
    out = shells(lab, around="active", of="cbd", max_distance=3)
    for name, c in out.coords.items():
        assert c.attrs.get("units") and c.attrs.get("long_name"), name
