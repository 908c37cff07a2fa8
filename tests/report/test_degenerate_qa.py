"""Figures of degenerate data read as what they are (one time step, one slice, one phase,
segmentations all alike), and a phase of its own name in one colour in every figure."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import xarray as xr

from bigseg import measure
from bigseg.io import phase_colour
from bigseg.report import (agreement_figure, metrics_figure, particle_figure, profile_figure, series_figure,
                           shells_figure, thickness_figure, timeslices)

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def _labels(shape, seed=0):
    rng = np.random.default_rng(seed)
    dims = ("t", "z", "y", "x")[-len(shape):]
    return xr.DataArray(rng.integers(0, 3, shape).astype(np.uint8), dims=dims,
                        attrs={"voxel_size": (1.0, 1.0, 1.0), "unit": "nm", "phases": ["pore", "cbd", "active"]})


def test_a_series_of_one_step_has_whole_steps_on_its_time_axis():
    fig = series_figure(measure.summary(_labels((1, 6, 8, 8))))
    fig.canvas.draw()
    for ax in [a for a in fig.axes if a.get_visible()]:
        assert ax.get_xlim() == (-1.0, 1.0)  # was -0.05 ... 0.05: ticks -0.045 -0.030 ... ran into each other
        assert [t.get_text() for t in ax.get_xticklabels()] == ["−1", "0", "1"]


@pytest.mark.parametrize("steps, plane", [(1, "xy"), (3, "xz")])
def test_the_grey_bar_of_timeslices_is_as_high_as_the_slices(steps, plane):
    rng = np.random.default_rng(0)
    img = xr.DataArray(rng.random((steps, 8, 16, 16)), dims=("t", "z", "y", "x"))
    fig = timeslices(img, _labels((steps, 8, 16, 16)), plane=plane)
    fig.canvas.draw()
    bar = [ax for ax in fig.axes if ax.get_ylabel().startswith("grey value")][0]
    # was a share of the row's width, 20 times as long: a stub beside one step, twice the height of flat slices
    assert bar.get_position().height == pytest.approx(fig.axes[0].get_position().height, rel=0.1)


def test_a_profile_of_one_slice_draws_its_interface_areas():
    fig = profile_figure(measure.summary(_labels((1, 8, 8)), profile="z"))
    areas = fig.axes[1]
    assert areas.get_title().startswith("interfaces")
    # one bin: each pair a visible point (a line through one point drew nothing)
    assert all(line.get_marker() not in (None, "None", "") for line in areas.get_lines())


def test_shells_with_no_voxel_in_any_shell_say_so():
    lab = xr.DataArray(np.full((6, 6, 6), 2, np.uint8), dims=("z", "y", "x"),
                       attrs={"voxel_size": (1.0, 1.0, 1.0), "unit": "nm", "phases": ["pore", "cbd", "active"]})
    fig = shells_figure(measure.shells(lab, around="active", of="cbd", max_distance=3))
    ax = fig.axes[0]
    assert any(t.get_text().startswith("no voxel within 3 nm of active") for t in ax.texts)
    assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] >= 3  # the distances, not -0.05 ... 0.05


def test_segmentations_all_alike_differ_by_no_negative_percentage():
    lab = _labels((6, 6, 6))
    fig = agreement_figure(measure.agreement([lab, lab]))
    image = fig.axes[1].images[0]
    assert image.norm.vmin == 0 and image.norm.vmax > 0  # was -0.1 ... 0.1 %: 0 drawn mid-scale
    assert {t.get_color() for t in fig.axes[1].texts} == {"white"}  # readable on the dark end of the scale


def test_one_phase_has_no_negative_interface_areas_on_its_axis():
    lab = xr.DataArray(np.full((4, 4, 4), 2, np.uint8), dims=("z", "y", "x"),
                       attrs={"voxel_size": (1.0, 1.0, 1.0), "unit": "nm", "phases": ["pore", "cbd", "active"]})
    fig = metrics_figure(measure.summary(lab))
    areas = [ax for ax in fig.axes if ax.get_ylabel().startswith(("area", "% of voxels"))]
    assert len(areas) == 2 and all(ax.get_ylim()[0] == 0 for ax in areas)


def test_a_phase_of_its_own_name_has_its_label_colour_in_the_figures_of_a_few_phases():
    """Was: shells, thickness and particles held no phase names, so "crack" (label 3) was drawn in
    the colour of its place among the phases drawn (red, green, purple), yellow in the slices; a
    name holding "+" (their first "+"-joined attribute) moved "crack" to place 4."""
    from matplotlib.colors import to_rgb

    a = np.zeros((12, 16, 16), np.uint8)
    a[:, :, 4:8], a[:, :, 8:12], a[2:8, 2:8, 12:15] = 1, 2, 3
    lab = xr.DataArray(a, dims=("z", "y", "x"), attrs={"voxel_size": (1.0, 1.0, 1.0), "unit": "nm",
                                                     "phases": ["pore", "cbd+binder", "active", "crack"]})
    crack = tuple(c / 255 for c in phase_colour("crack", 3)[:3])
    fig = shells_figure(measure.shells(lab, around="active", of="crack", max_distance=3))
    assert np.allclose(to_rgb(fig.axes[0].lines[0].get_color()), crack)
    fig = thickness_figure(measure.thickness(lab, phase=["crack", "cbd+binder"], max_diameter=16))
    assert np.allclose(to_rgb(fig.axes[1].lines[0].get_color()), crack)
    fig = particle_figure(measure.particles(lab, phase="crack"))
    assert np.allclose(fig.axes[0].patches[0].get_facecolor()[:3], crack)


def _one_ball(centre):
    z, y, x = np.mgrid[:16, :16, :16]
    a = np.zeros((16, 16, 16), np.uint8)
    a[(z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= 16] = 2
    a[:2] = np.where(a[:2] == 0, 1, a[:2])  # some cbd
    return xr.DataArray(a, dims=("z", "y", "x"), attrs={"voxel_size": (1.0, 1.0, 1.0), "unit": "nm",
                                                       "phases": ["pore", "cbd", "active"]})


def test_one_particle_is_drawn_and_named_in_the_singular():
    """One particle: the title said "1 active particles", its cumulative volume (one point on a
    line) drew nothing, and the detachment panel spanned ~0.2 voxel with the point on its edge."""
    fig = particle_figure(measure.particles(_one_ball((8, 8, 8))))
    assert fig.axes[0].get_title() == "1 active particle"
    curve = [line for ax in fig.axes for line in ax.get_lines() if len(line.get_xdata()) == 1
             and ax.get_ylabel().startswith("cumulative")]
    assert curve and curve[0].get_marker() not in (None, "None", "")
    detach = [ax for ax in fig.axes if ax.get_title() == "detachment by size"][0]
    lo, hi = detach.get_xlim()
    d = float(measure.particles(_one_ball((8, 8, 8)))["equivalent_diameter"].iloc[0])
    assert lo < d < hi and hi - lo > 0.3 * d


def test_no_particle_inside_says_so_in_the_contacts_panel():
    fig = particle_figure(measure.particles(_one_ball((3, 8, 8))))  # the only particle cut by the border
    contacts = [ax for ax in fig.axes if ax.get_title() == "contacts"][0]
    assert [t.get_text() for t in contacts.texts] == ["no particle inside the volume"]
    assert contacts.get_ylim() == (0, 1) and contacts.get_legend() is None


def test_an_inverse_voxel_reads_as_a_power():
    from bigseg.report._units import pretty, readable

    assert pretty("1/voxel") == "voxel⁻¹" and readable([0.2], "1/voxel") == (1.0, "voxel⁻¹")
    assert pretty("1/nm") == "nm⁻¹" and pretty("voxel^2") == "voxel²" and pretty("counts") == "counts"


def test_shells_of_a_phase_whose_name_holds_a_plus_draw_its_overall_fraction():
    # "binder+carbon" is one phase: the figure split it at the "+" and failed to select it (KeyError)
    rng = np.random.default_rng(0)
    lab = xr.DataArray(rng.integers(0, 3, (8, 8, 8)).astype(np.uint8), dims=("z", "y", "x"),
                       attrs={"voxel_size": (1.0, 1.0, 1.0), "unit": "nm",
                              "phases": ["pore", "binder+carbon", "NMC811"]})
    sh = measure.shells(lab, around="NMC811", of="binder+carbon", max_distance=2)
    overall = measure.volume_fractions(lab)
    fig = shells_figure(sh, overall=overall)
    ax = fig.axes[0]
    assert ax.get_title() == "binder+carbon around NMC811"
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[0] == pytest.approx(float(overall.sel(phase="binder+carbon")))
    # two phases asked together still read as two
    both = shells_figure(measure.shells(lab, around="NMC811", of=["pore", "binder+carbon"], max_distance=2),
                         overall=overall)
    line = [ln for ln in both.axes[0].get_lines() if ln.get_linestyle() == "--"][0]
    assert line.get_ydata()[0] == pytest.approx(float(overall.sel(phase=["pore", "binder+carbon"]).sum()))


def test_shells_of_two_phases_beside_one_named_by_both_read_back_as_two():
    # phases "a", "a+b", "b": shells of ["a", "b"] were stored as the text "a+b" only, and the
    # figure read it back as the one phase "a+b" (its colour, its overall fraction)
    import json

    rng = np.random.default_rng(1)
    lab = xr.DataArray(rng.integers(0, 4, (8, 8, 8)).astype(np.uint8), dims=("z", "y", "x"),
                       attrs={"voxel_size": (1.0, 1.0, 1.0), "unit": "nm", "phases": ["pore", "a", "a+b", "b"]})
    sh = measure.shells(lab, around="pore", of=["a", "b"], max_distance=2)
    assert json.loads(sh.attrs["of_phases"]) == ["a", "b"] and json.loads(sh.attrs["around_phases"]) == ["pore"]
    assert sh.attrs["of"] == "a+b"  # the text, for reading
    overall = measure.volume_fractions(lab)
    fig = shells_figure(sh, overall=overall)
    line = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "--"][0]
    assert line.get_ydata()[0] == pytest.approx(float(overall.sel(phase=["a", "b"]).sum()))
    assert line.get_ydata()[0] != pytest.approx(float(overall.sel(phase="a+b")))
    # and the same through netCDF (as `measure --netcdf` and a run's results keep them)
    import io as _io

    back = xr.open_dataarray(_io.BytesIO(sh.to_netcdf()))
    assert json.loads(back.attrs["of_phases"]) == ["a", "b"]


def test_pore_beside_a_phase_pore_in_other_case_is_the_only_pore_of_the_figures_and_report():
    # phases "pore" and "Pore": detachment and the pore's tortuosity are of "pore" (phase_named), but the
    # particle figure called both contacts "(detachment)" and the report's Transport table said "porosity"
    # of the tortuosity of "Pore" (a case-blind test of their own, beside the one home of phase_named)
    from bigseg.report._html import _metrics_section

    lab = np.zeros((12, 12, 12), np.uint8)
    lab[:, :6] = 1  # "Pore" in half, "pore" in the other half, three particles touching both
    lab[2:6, 3:9, 2:6] = lab[6:10, 3:9, 6:10] = lab[2:6, 3:9, 7:11] = 2
    vol = xr.DataArray(lab, dims=("z", "y", "x"), attrs={"voxel_size": (1.0, 1.0, 1.0), "unit": "nm",
                                                         "phases": ["pore", "Pore", "active"]})
    table = measure.particles(vol, split=False)
    assert (table["detachment"] == table["contact_pore"]).all()
    fig = particle_figure(table)
    legend = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert "pore (detachment)" in legend and "Pore" in legend and "Pore (detachment)" not in legend, legend
    for phase, header in (("Pore", "<th>volume fraction</th>"), ("pore", "<th>porosity</th>")):
        ds = measure.add_to_metrics(measure.summary(vol), tortuosity=measure.tortuosity(vol, phase=phase, axis="z"))
        transport = _metrics_section(ds).split("<h2>Transport")[1].split("<h2>")[0]
        assert header in transport, (phase, transport)


def test_particle_figure_draws_the_aspect_ratios_of_the_particles_inside():
    """The elongation panel: a histogram of the aspect ratios of the particles inside the volume
    (the table's counts); none inside: said; a table without the column (an earlier bigseg's CSV):
    the four panels as before."""
    z, y, x = np.ogrid[:24, :24, :40]
    lab = np.zeros((24, 24, 40), np.uint8)
    lab[(z - 12) ** 2 + (y - 12) ** 2 + (x - 8) ** 2 <= 16] = 2  # a ball
    lab[((z - 12) / 3.0) ** 2 + ((y - 12) / 3.0) ** 2 + ((x - 27) / 9.0) ** 2 <= 1] = 2  # a 3:1 rod
    vol = xr.DataArray(lab, dims=("z", "y", "x"), attrs={"phases": ["pore", "cbd", "active"]})
    table = measure.particles(vol, split=False)
    assert table.aspect_ratio.tolist() == pytest.approx([1.0, 3.0], rel=0.06)
    fig = particle_figure(table)
    panel = [ax for ax in fig.axes if ax.get_title() == "elongation"]
    assert len(panel) == 1 and panel[0].get_xlabel().startswith("aspect ratio")
    heights = [p.get_height() for p in panel[0].patches]
    assert sum(heights) == 2 and max(heights) == 1
    fig = particle_figure(measure.particles(_one_ball((3, 8, 8))))  # the only particle cut by the border
    panel = [ax for ax in fig.axes if ax.get_title() == "elongation"][0]
    assert [t.get_text() for t in panel.texts] == ["no particle inside the volume"] and not panel.patches
    fig = particle_figure(table.drop(columns=["axis_major_length", "axis_minor_length", "aspect_ratio"]))
    assert not [ax for ax in fig.axes if ax.get_title() == "elongation"] and len(fig.axes) == 5  # 4 and the twin
