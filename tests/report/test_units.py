"""Figures and report tables show physical quantities in a readable unit; image slices carry a
scale bar."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

from bigseg import measure
from bigseg.io import make_volume
from bigseg.report import metrics_figure, orthoslices, particle_figure, profile_figure
from bigseg.report._units import pretty, readable, scale_bar

matplotlib.use("Agg")


@pytest.mark.parametrize("units, shown", [
    ("nm", "nm"), ("um", "µm"), ("micrometer", "µm"), ("nm^2", "nm²"), ("um^3", "µm³"), ("nm³", "nm³"),
    ("1/nm", "nm⁻¹"), ("mm^-1", "mm⁻¹"), ("voxel", "voxel"), ("voxel^2", "voxel²"), ("", ""), ("1", "1"),
])
def test_pretty(units, shown):
    assert pretty(units) == shown


@pytest.mark.parametrize("values, units, factor, shown", [
    ([3.188e8], "nm^2", 1e-6, "µm²"),      # interface areas of a 4.8 µm cube imaged at 50 nm
    ([0.0035], "1/nm", 1e3, "µm⁻¹"),       # specific interface area
    ([2.7e8], "nm^3", 1e-9, "µm³"),        # a particle's volume
    ([806.7, 1578.0], "nm", 1.0, "nm"),    # diameters read well as they are: kept
    ([12.0], "um", 1.0, "µm"),
    ([1.5e5], "nm", 1e-3, "µm"),
    ([2e-3], "um", 1e3, "nm"),
    ([1e6], "um^2", 1e-6, "mm²"),
    ([5e7], "voxel^2", 1.0, "voxel²"),     # no length unit: as it is
    ([0.0, np.nan], "nm", 1.0, "nm"),      # nothing to read: as it is
])
def test_readable(values, units, factor, shown):
    f, label = readable(values, units)
    assert label == shown
    assert f == pytest.approx(factor)
    shown_values = [abs(v) * f for v in values if np.isfinite(v) and v]
    if shown_values and "voxel" not in units:
        assert 0.1 <= max(shown_values) < 1e4


@pytest.mark.parametrize("span, units", [(4800.0, "nm"), (96.0, "voxel"), (650.0, "um"), (0.3, "mm"),
                                         (96000.0, "nm"), (7.0, "nm")])
def test_scale_bar_is_a_round_length_of_about_a_fifth_to_a_tenth(span, units):
    length, label = scale_bar(span, units)
    assert span / 12 <= length <= span / 5 + 1e-9
    number, unit = label.split(" ")
    mantissa = float(number) / 10 ** math.floor(math.log10(float(number)))
    assert round(mantissa, 9) in (1.0, 2.0, 5.0)
    factor, shown = readable([length], units, low=1.0, high=1000.0)
    assert float(number) == pytest.approx(length * factor) and unit.rstrip("s") == shown


@pytest.fixture(scope="module")
def run_metrics():
    lab = np.zeros((16, 20, 24), np.uint8)
    lab[:, :, 8:] = 1
    lab[:, 5:15, 14:20] = 2
    labels = make_volume(lab, voxel_size=50, unit="nm", phases=["pore", "cbd", "active"])
    return labels, measure.summary(labels, profile="z")


def test_metrics_figure_areas_in_square_micrometres(run_metrics):
    _, ds = run_metrics
    fig = metrics_figure(ds)
    ax = fig.axes[1]
    assert ax.get_ylabel() == "area [µm²]"
    heights = [p.get_height() for p in ax.patches]
    expected = [float(ds.area.values[i, j]) * 1e-6 for i, j in ((0, 1), (0, 2), (1, 2))]
    np.testing.assert_allclose(heights, expected)
    matplotlib.pyplot.close(fig)


def test_profile_figure_specific_areas_per_micrometre(run_metrics):
    _, ds = run_metrics
    fig = profile_figure(ds)
    ax = fig.axes[1]
    assert ax.get_ylabel() == "interface area per volume [µm⁻¹]" and ax.get_xlabel() == "z [nm]"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), ds.specific_area_profile.values[0, 1] * 1e3)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), ds.z.values)
    matplotlib.pyplot.close(fig)


def test_particle_figure_diameters_scaled_with_their_label():
    lab = np.ones((20, 20, 20), np.uint8)
    lab[3:9, 3:9, 3:9] = 2
    lab[10:17, 10:16, 11:18] = 2
    big = make_volume(lab, voxel_size=5000, unit="nm", phases=["pore", "cbd", "active"])
    table = measure.particles(big, phase="active", split=False)
    assert len(table) == 2 and not table.touches_border.any()
    fig = particle_figure(table)
    assert fig.axes[0].get_xlabel() == "equivalent diameter [µm]"
    assert fig.axes[3].get_xlabel() == "equivalent diameter [µm]"
    from matplotlib.collections import PathCollection

    dots = np.concatenate([c.get_offsets()[:, 0] for c in fig.axes[3].collections if isinstance(c, PathCollection)])
    np.testing.assert_allclose(np.sort(dots), np.sort(table.equivalent_diameter * 1e-3))
    matplotlib.pyplot.close(fig)
    # the sphericity says which surface areas made it (marching cubes and Crofton differ by ~15 %)
    crofton = measure.particles(big, phase="active", split=False, area_method="crofton")
    assert particle_figure(crofton).axes[1].get_xlabel() == "sphericity (inside the volume; crofton areas)"
    from bigseg.report._html import _particles_section

    assert "sphericity (crofton areas)" in _particles_section(crofton)


def test_orthoslices_carry_a_scale_bar_and_anisotropic_voxels():
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    img = make_volume(np.random.default_rng(0).random((10, 40, 60), dtype=np.float32), voxel_size=(100, 50, 50),
                      unit="nm")
    fig = orthoslices(img)
    bars = [[a for a in ax.artists if isinstance(a, AnchoredSizeBar)] for ax in fig.axes[:3]]
    assert all(len(b) == 1 for b in bars)
    # x (60 voxels of 50 nm = 3 µm) across xy and xz, y (40 × 50 nm = 2 µm) across yz
    labels = [b[0].txt_label.get_text() for b in bars]
    assert labels == ["500 nm", "500 nm", "200 nm"]
    widths = [b[0].size_bar.get_children()[0].get_width() for b in bars]
    assert widths == pytest.approx([10, 10, 4])  # in pixels: 500 / 50, 200 / 50
    assert "100 × 50 × 50 nm (z × y × x)" in fig.texts[0].get_text()
    matplotlib.pyplot.close(fig)


def test_voxel_text():
    from bigseg.report._units import voxel_text

    assert voxel_text([50.0, 50.0, 50.0], "nm") == "50 nm"
    assert voxel_text((0.65, 0.325, 0.325), "um") == "0.65 × 0.325 × 0.325 µm (z × y × x)"


def test_agreement_figure_legend_beside_the_bars():
    from bigseg.report import agreement_figure

    rng = np.random.default_rng(3)
    segs = [make_volume(rng.integers(0, 3, (8, 10, 12)).astype(np.uint8), phases=["pore", "cbd", "active"])
            for _ in range(3)]
    ds = measure.agreement(segs).assign_coords(segmentation=["a", "b", "c"])
    fig = agreement_figure(ds)
    fig.canvas.draw()
    bars = fig.axes[0]
    legend = bars.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b", "c", "mean ± std"]
    # the legend lies right of the bars' axes (it covered the bars)
    assert legend.get_window_extent().x0 >= bars.get_window_extent().x1 - 1
    matplotlib.pyplot.close(fig)


def test_readable_evolution_scales_and_names_its_columns():
    import pandas as pd

    from bigseg.report._units import readable_evolution

    ev = pd.DataFrame({"fraction_pore": [0.3, 0.31], "specific_area_pore_cbd": [0.0028, 0.0029],
                       "specific_area_cbd_active": [0.0031, 0.0030], "median_equivalent_diameter": [806.7, 812.0]})
    out = readable_evolution(ev, "nm")
    assert list(out.columns) == ["fraction_pore", "specific_area_pore_cbd [µm⁻¹]", "specific_area_cbd_active [µm⁻¹]",
                                 "median_equivalent_diameter [nm]"]
    np.testing.assert_allclose(out["specific_area_pore_cbd [µm⁻¹]"], [2.8, 2.9])
    np.testing.assert_allclose(out["median_equivalent_diameter [nm]"], ev["median_equivalent_diameter"])
    assert list(ev.columns)[1] == "specific_area_pore_cbd"  # the input is left as it was


def test_one_value_reads_in_the_unit_that_suits_it():
    # bigseg measure printed "median equivalent diameter 0.0004421 mm" for a scan stated in mm
    from bigseg.report._units import quantity_text

    assert quantity_text(4.421e-4, "mm") == "442.1 nm"
    assert quantity_text(442.1, "nm") == "442.1 nm"
    assert quantity_text(12.0, "voxel") == "12 voxel"


def test_series_figures_say_the_times_with_their_unit():
    """profile, shells and metrics figures of a series stated in minutes said "t = 30.0"."""
    from bigseg import synth
    from bigseg.report import metrics_figure, profile_figure, shells_figure

    lab = synth.series((16, 24, 24), steps=2, seed=1).compute().assign_coords(t=[0.0, 30.0])
    lab.t.attrs["units"] = "min"
    ds = measure.summary(lab, profile="z")
    fig = profile_figure(ds)
    legend = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None][0]
    assert [t.get_text() for t in legend.get_texts()] == ["t = 0 min", "t = 30 min"]
    assert metrics_figure(ds).axes[0].get_title() == "volume fractions (t = 30 min)"
    sh = measure.shells(lab, around="active", of="cbd", max_distance=3)
    assert "t = 30 min" in [t.get_text() for t in shells_figure(sh).axes[0].get_legend().get_texts()]
    matplotlib.pyplot.close("all")


def test_times_0_1_2_with_a_unit_are_times_not_scan_numbers():
    """Was: scans every minute (t = 0, 1, 2 min) drawn over "scan (time step)" in the evolution
    figure and said without their times in the report, while the slices said "t = 1 min"."""
    from bigseg import synth
    from bigseg.io._volume import is_step_index
    from bigseg.report import series_figure

    lab = synth.series((16, 24, 24), steps=3, seed=1).compute().assign_coords(t=[0, 1, 2])
    assert is_step_index(lab.t)
    assert series_figure(measure.summary(lab)).axes[0].get_xlabel() == "scan (time step)"
    lab.t.attrs["units"] = "min"
    assert not is_step_index(lab.t) and not is_step_index([0, 1, 2], "min")
    assert series_figure(measure.summary(lab)).axes[0].get_xlabel() == "t [min]"
    matplotlib.pyplot.close("all")


def test_size_distribution_and_small_particles_lines():
    """The size distribution line gives D10, D50, D90 and D[4,3] by volume, of a series its last
    step; the line of the particles min_voxels left out is empty where none was."""
    import pandas as pd

    from bigseg.report._units import size_distribution_text, small_particles_text

    def table(d):
        d = np.asarray(d, np.float64)
        return pd.DataFrame({"equivalent_diameter": d, "volume": np.pi / 6 * d ** 3, "touches_border": False})

    one = table([4.0, 5.0, 6.0, 7.0])
    sd = measure.size_distribution(one)
    want = [sd.loc["volume", c] for c in ("d10", "d50", "d90", "mean")]
    assert len(set(want)) == 4
    said = "size distribution by volume (particles inside): D10 {:.4g}, D50 {:.4g}, D90 {:.4g} nm; D[4,3] {:.4g} nm"
    assert size_distribution_text(sd, "nm") == said.format(*want)
    series = pd.concat([table([5.0, 5.0]).assign(t=0), one.assign(t=1)], ignore_index=True)
    assert size_distribution_text(measure.size_distribution(series), "nm") == size_distribution_text(sd, "nm")
    assert small_particles_text({}) == ""
    assert small_particles_text({"small_particles": 0, "small_voxels": 0, "min_voxels": 5}) == ""
    assert small_particles_text({"small_particles": 2, "small_voxels": 7, "min_voxels": 5}) == (
        "(2 particle(s) smaller than 5 voxels left out: 7 voxels of the phase in no row)")
