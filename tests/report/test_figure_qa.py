"""What a reader of each figure needs: readable bars and scale bars on thin volumes, slice positions
in physical units, a legend for every label image, one palette, and a message where data is missing."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bigseg import measure
from bigseg.io import make_volume, phase_colour
from bigseg.report import (agreement_figure, orthoslices, particle_figure, rve_figure, shells_figure,
                           thickness_figure, timeslices)

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def _rgb(name, index):
    return tuple(c / 255 for c in phase_colour(name, index)[:3])


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]


def test_thin_volume_keeps_a_readable_colourbar_and_scale_bars_off_its_slivers():
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    rng = np.random.default_rng(0)
    img = make_volume(rng.random((4, 60, 60), dtype=np.float32), voxel_size=50, unit="nm")
    fig = orthoslices(img, index=(2, 30, 30))
    fig.canvas.draw()
    xy, xz = fig.axes[0], fig.axes[1]
    bar = [ax for ax in fig.axes if ax.get_ylabel().startswith("grey value")][0]
    # as high as the xy slice, not as the 4-voxel sliver of xz / yz
    assert bar.get_position().height == pytest.approx(xy.get_position().height, rel=0.05)
    sliver = xz.get_window_extent()
    scale = [a for a in xz.artists if isinstance(a, AnchoredSizeBar)][0].get_window_extent()
    assert scale.y1 <= sliver.y0 + 1  # below the sliver, covering neither it nor its title
    square = [a for a in xy.artists if isinstance(a, AnchoredSizeBar)][0].get_window_extent()
    assert square.y0 >= xy.get_window_extent().y0 - 1  # a slice of some height keeps it inside


def test_slice_titles_give_the_physical_position_in_the_source_frame():
    img = make_volume(np.zeros((8, 20, 20), np.float32), voxel_size=(100, 50, 50), unit="nm", origin=(0, 400, 200))
    fig = orthoslices(img, index=(4, 10, 10))
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["xy (z = 4: 400 nm)", "xz (y = 10: 900 nm)", "yz (x = 10: 700 nm)"]
    lab = xr.DataArray(np.zeros((2, 8, 20, 20), np.uint8), dims=("t", "z", "y", "x"),
                       coords={"y": np.arange(20) * 50.0 + 400}, attrs={"voxel_size": (50, 50, 50), "unit": "nm"})
    fig = timeslices(None, lab, plane="xz", index=10)
    assert "y = 10: 900 nm" in fig.get_suptitle()


def test_a_volume_without_voxel_size_says_so():
    fig = orthoslices(np.zeros((6, 6, 6), np.float32))
    assert "no voxel size" in fig.get_suptitle() and "of 1 voxel" not in fig.get_suptitle()
    assert [ax.get_title() for ax in fig.axes[:3]] == ["xy (z = 3)", "xz (y = 3)", "yz (x = 3)"]


def test_unlabelled_voxels_are_in_the_legend():
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[:, :, 3:] = 2
    lab[:, :2] = 255  # outside a field of view
    fig = orthoslices(None, lab)
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert legend == ["pore", "cbd", "active", "unlabelled"]  # every phase (cbd too, absent here), then the blank


def test_values_beyond_the_phases_are_in_the_legend_after_them():
    """A label value with no phase name (3 and 5 of three phases) has its own entry, by its value,
    after every phase."""
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[:, :, 2:] = 3
    lab[:, :, 4:] = 5
    fig = orthoslices(None, lab)
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert legend == ["pore", "cbd", "active", "3", "5"]


def test_slices_over_time_have_a_phase_legend():
    lab = np.zeros((3, 4, 6, 6), np.uint8)
    lab[:, :, :, 3:] = 1
    fig = timeslices(None, lab)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert len(legends) == 1
    patches = legends[0].get_patches()
    assert [t.get_text() for t in legends[0].get_texts()] == ["pore", "cbd", "active"]  # every phase, in order
    assert np.allclose(patches[1].get_facecolor()[:3], _rgb("cbd", 1))


def test_slice_legends_list_every_phase_whatever_the_slices_hold():
    """A legend listed the phases present in the slices drawn: slices of a scan's pore-only end
    and of its middle had other legends, and a phase named in the volume but absent from the
    slice was left unsaid. Every phase, in order, in its colour, beside any slice."""
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[4:, :, :4] = 1
    lab[4:, :, 4:] = 3
    vol = make_volume(lab, phases=["pore", "cbd", "active", "binder"])
    legends = []
    for index in ((1, 1, 1), (6, 6, 6)):  # pore only; pore, cbd and binder
        fig = orthoslices(None, vol, index=index)
        legends.append(next(ax.get_legend() for ax in fig.axes if ax.get_legend()))
    for legend in legends:
        assert [t.get_text() for t in legend.get_texts()] == ["pore", "cbd", "active", "binder"]
        for i, (name, patch) in enumerate(zip(["pore", "cbd", "active", "binder"], legend.get_patches())):
            assert np.allclose(patch.get_facecolor()[:3], _rgb(name, i))
    fig = timeslices(None, vol.expand_dims(t=2).copy(data=np.stack([lab, lab])), index=1)  # pore only
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend())
    assert [t.get_text() for t in legend.get_texts()] == ["pore", "cbd", "active", "binder"]


def _two_phase():
    lab = np.zeros((16, 16, 16), np.uint8)
    lab[4:12, 4:12, 4:12] = 1
    return make_volume(lab, voxel_size=50, unit="nm", phases=["matrix", "particle"])


def test_a_phase_without_a_fixed_colour_has_its_label_colour_in_every_figure():
    vol = _two_phase()
    matrix = _rgb("matrix", 0)  # as the label slices and the OME-Zarr metadata draw label 0
    sh = measure.shells(vol, around="particle", of="matrix", max_distance=3)
    fig = shells_figure(sh, overall=measure.volume_fractions(vol))
    assert np.allclose(matplotlib.colors.to_rgb(fig.axes[0].lines[0].get_color()), matrix)
    th = measure.thickness(vol, phase=["particle", "matrix"], max_diameter=16)
    th.attrs["phases"] = ["matrix", "particle"]  # the label image's names: "matrix" is label 0, shown second here
    fig = thickness_figure(th)
    assert np.allclose(matplotlib.colors.to_rgb(fig.axes[0].patches[1].get_edgecolor()), matrix)  # (its stairs)


def _table(inside: bool, detachment: float | None):
    row = {"id": 1, "voxels": 500, "volume": 500.0, "equivalent_diameter": 9.8, "surface_area": np.nan,
           "sphericity": np.nan, "contact_pore": 0.3, "contact_particle": 0.0, "touches_border": not inside}
    if detachment is not None:
        row["detachment"] = detachment
    df = pd.DataFrame([row, {**row, "id": 2, "equivalent_diameter": 12.0}])
    df.attrs.update(unit="voxel", phase="active")
    return df


def test_particle_panels_without_data_say_why_instead_of_drawing_an_empty_histogram():
    fig = particle_figure(_table(inside=False, detachment=0.3))
    shape, detach = fig.axes[1], fig.axes[3]
    assert not shape.patches and shape.get_ylim() == (0, 1)
    assert any("no sphericity" in t.get_text() for t in shape.texts)
    assert any("no particle inside the volume" in t.get_text() for t in detach.texts)
    fig = particle_figure(_table(inside=True, detachment=None))  # no pore phase: no detachment column
    assert any("no detachment" in t.get_text() for t in fig.axes[3].texts)


def test_particle_cumulative_curve_stays_below_the_legend():
    fig = particle_figure(_table(inside=True, detachment=0.3))
    twin = [ax for ax in fig.axes if ax.get_ylabel().startswith("cumulative")][0]
    assert twin.get_ylim()[1] >= 1.25  # the curve ends at 1, under the legend's room
    assert twin.get_yticks().max() == pytest.approx(1.0)  # no share above 1 on the axis
    d = fig.axes[3]
    assert d.get_ylim()[0] < 0 and d.get_ylim()[1] > 1  # markers at 0 and 1 drawn whole


def test_agreement_colourbar_is_labelled():
    a = np.zeros((8, 8, 8), np.uint8)
    b = a.copy()
    b[:4] = 2
    fig = agreement_figure(measure.agreement([a, b]))
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bars and bars[0].get_ylabel() == "% of voxels differing"


def test_rve_says_when_no_phase_reaches_the_tolerance_and_names_an_absent_phase():
    rng = np.random.default_rng(0)
    lab = (rng.random((16, 16, 16)) < 0.5).astype(np.uint8) * 2  # pore and active, no cbd; tiny: no RVE
    ds = measure.rve(make_volume(lab), tolerance=1e-6)
    fig = rve_figure(ds)
    ax = fig.axes[0]
    assert "no phase within the tolerance" in ax.get_title()
    assert "cbd (absent)" in [t.get_text() for t in ax.get_legend().get_texts()]
    th = measure.thickness(make_volume(lab), phase=["pore", "cbd"], max_diameter=8)
    fig = thickness_figure(th)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["pore", "cbd (absent)"]


def test_rve_draws_a_phase_without_scatter():
    """Was: a scatter of exactly 0 (a phase alike in every cube) vanished from the log axis, and
    with it the circle of its representative size."""
    lab = np.zeros((32, 32, 32), np.uint8)
    lab[:, :, ::2] = 2  # every cube of an even edge holds half active, half pore: no scatter
    lab[5:9, 5:9, 5:9:2] = 1  # a little cbd in one corner, in pore voxels: cbd and pore scatter
    ds = measure.rve(make_volume(lab), sizes=[4, 8, 16])
    assert (ds.relative_std.sel(phase="active").values == 0).all()
    fig = rve_figure(ds)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "no scatter (0): drawn here" in labels
    curve = next(line for line in ax.lines if line.get_label() == "active")
    y = np.asarray(curve.get_ydata(), float)
    assert np.isfinite(y).all() and (y > 0).all() and (y < ax.get_ylim()[1]).all() and (y > ax.get_ylim()[0]).all()
    circles = [line for line in ax.lines if line.get_marker() == "o" and line.get_markersize() == 11]
    assert any(np.allclose(c.get_ydata(), y[0]) for c in circles)  # active's RVE: the smallest size


def test_metrics_figure_writes_the_numbers_names_absent_phases_and_draws_the_scores():
    """Was: bars without values, an absent phase an unlabelled empty bar, no title, and the IoU
    against a reference the run was given only in the tables."""
    import numpy as np

    from bigseg import measure, synth
    from bigseg.report import metrics_figure

    truth = synth.electrode((16, 20, 24), seed=3).compute()
    pred = truth.copy(data=np.where(truth.values == 1, 0, truth.values).astype(truth.dtype))  # no cbd left
    fig = metrics_figure(measure.summary(pred, truth=truth), title="scan.ome.zarr: segmentation (kmeans)")
    fractions, _, scores, _ = fig.axes  # the interface panel's twin axis last
    texts = [t.get_text() for t in fractions.texts]
    assert texts[1] == "0 (absent)" and texts[0] == f"{float(measure.summary(pred).volume_fraction[0]):.3f}"
    assert scores.get_ylabel() == "IoU against the reference"
    assert [t.get_text() for t in scores.texts][2] == "1.000" and fig._suptitle.get_text().startswith("scan.ome.zarr")
    assert len(metrics_figure(measure.summary(truth)).axes) == 3  # no reference: no score panel


def test_every_panel_of_a_series_metrics_figure_says_its_time_step():
    """Was: "volume fractions (t = 2)" beside "interface areas (crofton)" and "scores" of the same
    step without one: read as totals over the series (QA: report reader)."""
    from bigseg import measure, synth
    from bigseg.report import metrics_figure

    truth = synth.series((12, 16, 16), steps=2, seed=3, radius=(3, 0.5)).compute()
    fig = metrics_figure(measure.summary(truth, truth=truth))
    assert [ax.get_title() for ax in fig.axes[:3]] == ["volume fractions (t = 1)", "interface areas (faces) (t = 1)",
                                                       "scores (t = 1)"]


def test_agreement_figure_draws_each_segmentation_s_iou_against_the_truth():
    """Was: the IoU of `bigseg compare --truth` only in its table and CSV."""
    import numpy as np

    from bigseg import measure, synth
    from bigseg.report import agreement_figure

    t = synth.electrode((16, 20, 20), seed=3).compute()
    a = t.copy(data=np.where(t.values == 1, 0, t.values).astype(t.dtype))
    fig = agreement_figure(measure.agreement([a, t], truth=t))
    scores = [ax for ax in fig.axes if ax.get_title() == "IoU against the reference"]
    assert len(scores) == 1
    shown = [x.get_text() for x in scores[0].texts]
    assert shown[1] == "0.000" and shown[3:] == ["1.000"] * 3  # a's cbd lost; the truth against itself
    assert not [ax for ax in agreement_figure(measure.agreement([a, t])).axes
                if ax.get_title() == "IoU against the reference"]
    # its colours have a scale (was none), and a phase neither holds is grey, not an IoU of 0
    bars = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bars == ["% of voxels differing", "IoU"]
    none = np.where(t.values == 1, 0, t.values).astype(t.dtype)
    fig = agreement_figure(measure.agreement([none, none], truth=none))
    (scores,) = [ax for ax in fig.axes if ax.get_title() == "IoU against the reference"]
    assert [x.get_text() for x in scores.texts][1::3] == ["none", "none"]
    cell = scores.images[0].to_rgba(scores.images[0].get_array())[0, 1]
    assert np.allclose(cell[:3], 0.85) and not np.allclose(cell[:3], scores.images[0].cmap(0.0)[:3])


def test_thickness_bars_are_all_one_width():
    """Was: a step drawn "mid", its first and last bars half as wide as the others."""
    import numpy as np

    from bigseg import measure, synth
    from bigseg.report import thickness_figure

    th = measure.thickness(synth.electrode((16, 20, 20), seed=3).compute(), phase=["pore"])
    step = thickness_figure(th).axes[0].patches[0]
    widths = np.diff(step.get_data().edges)
    np.testing.assert_allclose(widths, widths[0])
    assert step.get_data().edges[0] == th.diameter.values[0] - widths[0] / 2


def test_report_of_cbd_particles_has_no_cbd_contact_column():
    from bigseg import measure, synth
    from bigseg.report._html import _particles_section

    table = measure.particles(synth.electrode((24, 28, 28), seed=2).compute(), phase="cbd")
    page = _particles_section(table)
    assert "Detachment by size" in page and "CBD contact median" not in page and "nan" not in page


def test_particle_figure_of_something_else_than_a_particle_table_is_refused_by_name():
    # a table cut to some columns, or a dict, failed deep in pandas (KeyError: 'sphericity')
    from bigseg.errors import InputError

    table = pd.DataFrame({"equivalent_diameter": [4.0, 6.0], "volume": [33.5, 113.1], "touches_border": [False, True]})
    with pytest.raises(InputError, match=r"`table` to be the particle table of bigseg.measure.particles .* Got a table "
                                         r"without \['sphericity'\] instead"):
        particle_figure(table)
    with pytest.raises(InputError, match=r"`table` to be the particle table .* Got dict instead"):
        particle_figure(table.to_dict())


def test_a_particle_table_read_back_from_csv_is_not_drawn_in_voxels(tmp_path):
    """`pd.read_csv` of a table measured at 50 nm loses its attrs: the diameter axis said
    "[voxel]" over values in nm. It says the unit is not stated, or the unit given."""
    import bigseg

    lab = bigseg.synth.electrode((24, 32, 32), seed=2, chunks=16, voxel_size=50, unit="nm")
    table = measure.particles(lab)
    table.to_csv(tmp_path / "p.csv", index=False)
    back = pd.read_csv(tmp_path / "p.csv")
    assert not back.attrs
    labels = [particle_figure(t, **kw).axes[0].get_xlabel() for t, kw in
              ((table, {}), (back, {}), (back, {"unit": "nm"}))]
    assert labels[0] == labels[2] != labels[1]
    assert "voxel" not in labels[1] and "unit not stated" in labels[1] and "voxel" not in labels[0]
    measure.write_table(table, tmp_path / "u.csv")  # as the pipeline and the CLI write it: the units come back
    assert particle_figure(measure.read_table(tmp_path / "u.csv")).axes[0].get_xlabel() == labels[0]


def test_a_figure_is_drawn_once_in_a_notebook(monkeypatch, tmp_path):
    """A figure left as a notebook cell's last line was drawn twice (the cell's value, then by the
    inline backend at the end of the cell, pyplot still holding it): shown as a PNG once, taken
    from pyplot (checked in a real kernel too: one output each for a last line, an assignment, a
    figure written to `path`)."""
    import pickle
    import sys
    import types

    import matplotlib.pyplot as plt

    from bigseg import report, synth

    shown = []
    fake = types.ModuleType("IPython.display")
    fake.Image = lambda data: ("png", data)
    fake.display = shown.append
    ipython = types.ModuleType("IPython")
    ipython.get_ipython, ipython.version_info = (lambda: None), (9, 0)  # (matplotlib asks them)
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", fake)
    lab = synth.electrode((8, 12, 12), seed=0, radius=(2, 0.3))
    for path in (None, tmp_path / "a.png"):
        fig = report.orthoslices(lab, path=path)
        assert (fig.number in plt.get_fignums()) == (path is None)  # open until shown, unless written
        fig._ipython_display_()  # what IPython calls for a cell's value, and the backend at the cell's end
        assert fig.number not in plt.get_fignums()  # nothing left for the backend to draw again
        kind, data = shown.pop()
        assert kind == "png" and data.startswith(b"\x89PNG") and not shown
        assert pickle.loads(pickle.dumps(fig)).axes  # still picklable


def test_metrics_figure_long_phase_names_do_not_run_into_each_other():
    import itertools

    import matplotlib.pyplot as plt
    import xarray as xr

    from bigseg import measure
    from bigseg.report import metrics_figure

    rng = np.random.default_rng(0)
    lab = xr.DataArray(rng.integers(0, 4, (8, 8, 8)).astype(np.uint8), dims=("z", "y", "x"),
                       attrs={"voxel_size": (1.0, 1.0, 1.0), "unit": "nm",
                              "phases": ["pore", "binder+carbon", "NMC811", "Poren-Raum graphite"]})
    fig = metrics_figure(measure.summary(lab, truth=lab))
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes[:3]:  # fractions, interfaces, scores (the twin axis has no labels of its own)
            labels = [t for t in ax.get_xticklabels() if t.get_text()]
            boxes = [t.get_window_extent(renderer) for t in labels]
            assert len(boxes) >= 4
            # "binder+carbonNMC811Poren-Raum graphite": the level names under the bars overlapped; slanted
            # (each name's box then spans its neighbour's, not its text) or apart
            assert all(t.get_rotation() >= 20 and t.get_horizontalalignment() == "right" for t in labels) or \
                not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2)), ax.get_title()
        # every label and axis title inside the figure (the twin axis' label was cut at the edge)
        fig_box = fig.bbox
        for ax in fig.axes:
            box = ax.yaxis.label.get_window_extent(renderer)
            assert box.x0 >= fig_box.x0 - 1 and box.x1 <= fig_box.x1 + 1
    finally:
        plt.close(fig)


@pytest.mark.parametrize("tight", [False, True])
def test_a_figure_saved_once_drawn_is_the_image_savefig_draws(tmp_path, tight):
    """`finish` lays a figure out on the renderer it saves with and draws it once (savefig drew a
    constrained layout or a tight box twice): the PNG must stay savefig's, pixel for pixel, with
    a colour bar, a suptitle and slanted labels, and the figure must lay itself out again after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.image import imread

    from bigseg.report._figure import _save

    def draw():
        fig, axes = plt.subplots(1, 2, figsize=(5, 3), constrained_layout=not tight)
        im = axes[0].imshow(np.arange(64, dtype=float).reshape(8, 8))
        fig.colorbar(im, ax=axes[0], label="IoU")
        axes[1].bar(["pore", "binder+carbon", "NMC811"], [0.3, 0.2, 0.5])
        axes[1].tick_params(axis="x", labelrotation=30)
        fig.suptitle("a title long enough to need room")
        return fig

    ref, ours = draw(), draw()
    ref.savefig(tmp_path / "ref.png", dpi=90, **({"bbox_inches": "tight"} if tight else {}))
    _save(ours, tmp_path / "ours.png", dpi=90, tight=tight)
    a, b = imread(tmp_path / "ref.png"), imread(tmp_path / "ours.png")
    assert a.shape == b.shape and np.array_equal(a, b)
    assert (ours.get_layout_engine() is None) == tight  # its engine back (a constrained figure stays one)
    ours.savefig(tmp_path / "again.png", dpi=90, **({"bbox_inches": "tight"} if tight else {}))
    ref.savefig(tmp_path / "ref2.png", dpi=90, **({"bbox_inches": "tight"} if tight else {}))
    assert np.array_equal(imread(tmp_path / "again.png"), imread(tmp_path / "ref2.png"))
    plt.close("all")
