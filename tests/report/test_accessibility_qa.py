"""What a reader who cannot rely on colour, or on the images, needs (QA: accessibility and
legibility). Before, cbd and active had one lightness (CIE L* 67): the label slices and every
curve drew them as one grey in a grey-scale print; the phases' curves differed by colour alone;
the slices over time had no colour bar for their one grey window; the agreement's matrix title
ran into its colour bar under long segmentation names; and report.html gave each figure its
file name as its text alternative (WCAG failure F30), no language and empty table headers."""

from __future__ import annotations

import re

import matplotlib
import numpy as np
import pytest

from bigseg import measure, synth
from bigseg.io import PHASE_COLOURS, make_volume
from bigseg.report import agreement_figure, profile_figure, rve_figure, series_figure, thickness_figure, timeslices

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def _lightness(rgb) -> float:
    """CIE L* of an sRGB colour (0-255): the grey a grey-scale print gives it."""
    c = np.asarray(rgb[:3], dtype=float) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = float(lin @ [0.2126, 0.7152, 0.0722])
    return 116 * np.cbrt(y) - 16 if y > 0.008856 else 903.3 * y


def test_the_phase_colours_are_three_greys_in_a_grey_scale_print():
    lightness = {p: _lightness(PHASE_COLOURS[p]) for p in ("pore", "cbd", "active")}
    values = sorted(lightness.values())
    assert min(np.diff(values)) >= 15, lightness  # was cbd 67, active 67: one grey


def test_eight_phases_of_other_names_have_eight_colours_none_a_fixed_one():
    """Was four colours for phases of other names: a fifth (e.g. pore, cbd, active and five more,
    or five unknown names) took the first's colour."""
    from bigseg.io import phase_colour

    names = [f"phase{i}" for i in range(8)]
    colours = [phase_colour(n, i) for i, n in enumerate(names)]
    assert len(set(colours)) == 8
    assert not set(colours) & {PHASE_COLOURS[p] for p in ("pore", "cbd", "active")}
    assert all(c[3] == 255 for c in colours)  # none drawn transparent


def _phase_markers(ax) -> dict[str, str]:
    return {line.get_label(): line.get_marker() for line in ax.lines if line.get_label() in ("pore", "cbd", "active")}


def test_the_phases_curves_differ_by_marker_not_by_colour_alone():
    lab = synth.series((8, 12, 12), steps=2, seed=1, chunks=12, radius=(3.0, 0.5))
    fig = series_figure(measure.summary(lab))
    markers = _phase_markers(fig.axes[0])  # the volume fractions
    assert len(markers) == 3 and len(set(markers.values())) == 3, markers
    vol = make_volume(np.asarray(lab[0]), phases=["pore", "cbd", "active"])
    for fig, ax in ((profile_figure(measure.profile(vol, axis="z")), 0), (rve_figure(measure.rve(vol)), 0),
                    (thickness_figure(measure.thickness(vol, phase=["pore", "active"], max_diameter=12)), 1)):
        markers = _phase_markers(fig.axes[ax])
        assert len(markers) >= 2 and len(set(markers.values())) == len(markers), markers
        assert "None" not in markers.values() and "" not in markers.values()


def test_slices_over_time_have_a_labelled_colour_bar_for_their_grey_window():
    rng = np.random.default_rng(0)
    fig = timeslices(rng.random((3, 4, 6, 6)).astype(np.float32), np.zeros((3, 4, 6, 6), np.uint8))
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel().startswith("grey value")


def test_the_agreement_matrix_title_stays_clear_of_its_colour_bar_with_long_names():
    a = np.zeros((8, 8, 8), np.uint8)
    b = a.copy()
    b[:4] = 2
    names = ["user_a_long_segmentation_name", "random_forest_classifier_v2", "otsu"]
    fig = agreement_figure(measure.agreement([a, b, a]).assign_coords(segmentation=names))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    matrix = next(ax for ax in fig.axes if ax.get_title().startswith("% of voxels differing"))
    bar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")
    title = matrix.title.get_window_extent(renderer)
    assert not title.overlaps(bar.get_tightbbox(renderer))  # was "% of voxels differing (mea|12|10.0)"


def test_report_images_are_described_and_the_page_says_its_language(tmp_path):
    import json

    import xarray as xr

    from bigseg.report import metrics_figure, write_report

    ds = xr.Dataset({"volume_fraction": (("phase",), [0.4, 0.6]), "iou": (("phase",), [0.9, 0.95]),
                     "dice": (("phase",), [0.94, 0.97])}, coords={"phase": ["pore", "active"]},
                    attrs={"shape": "[8, 8, 8]", "voxel_size": "[1, 1, 1]", "unit": "nm"})
    (tmp_path / "metrics.json").write_text(json.dumps(ds.to_dict()))
    summary = measure.summary(make_volume(np.repeat([0, 2], 256).reshape(8, 8, 8).astype(np.uint8)))
    metrics_figure(summary, path=tmp_path / "metrics.png")
    page = write_report(tmp_path, finished=True).read_text()
    alts = re.findall(r"<img [^>]*alt='([^']*)'", page)
    assert len(alts) == 1 and "metrics.png" not in alts[0] and "volume fraction" in alts[0]  # was alt='metrics.png'
    assert "<html lang='en'>" in page
    assert "<th></th>" not in page  # a header cell says what its column holds
    assert "<th>IoU</th><th>Dice</th>" in page  # (was "dice" beside "IoU")


def test_the_field_of_view_figure_names_its_run(tmp_path, monkeypatch):
    """fov.png was the one figure of a run folder without the run's name (drawn before the others
    had a title): a folder of runs' fov.png could not be told apart."""
    import bigseg
    import bigseg.report

    titles = []
    drawn = bigseg.report.fov_figure
    monkeypatch.setattr(bigseg.report, "fov_figure", lambda *a, **k: titles.append(k.get("title")) or drawn(*a, **k))
    img = np.random.default_rng(0).random((6, 20, 20)).astype(np.float32)
    img[:, :3] = 0  # a fill outside the sample
    np.save(tmp_path / "scan_07.npy", img)
    bigseg.Pipeline(predict={"model": "threshold"}, fov="auto", measure={"particles": False}).run(
        tmp_path / "scan_07.npy", tmp_path / "r", progress=False)
    assert titles == ["scan_07.npy: field of view (auto)"]


def test_the_field_of_view_figure_has_a_grey_scale():
    """fov.png was the one slice figure without a colour bar: its grey window (percentiles of the
    voxels inside) could not be read off it."""
    from bigseg.io import fov_mask
    from bigseg.report import fov_figure

    img = np.random.default_rng(1).normal(5.0, 1.0, (4, 24, 24)).astype(np.float32)
    img[:, :4] = 0
    vol = make_volume(img)
    fig = fov_figure(vol, fov_mask(vol, "auto"))
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel().startswith("grey value")
    lo, hi = bars[0].get_ylim()
    inside = img[2, 4:]
    assert lo == pytest.approx(np.percentile(inside, 0.5), rel=1e-4) and hi == pytest.approx(np.percentile(inside, 99.5), rel=1e-4)
