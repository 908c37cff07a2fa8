"""``measure.evolution`` (one row per time step) and its curves (``report.series_figure``), also
through ``bigseg measure`` on a series."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from bigseg import measure, synth
from bigseg.cli import main
from bigseg.errors import InputError
from bigseg.io import save_labels, save_volume
from bigseg.report import series_figure


@pytest.fixture(scope="module")
def series():
    lab = synth.series((32, 32, 32), steps=3, seed=4, chunks=12, radius=(3, 0.5), voxel_size=50, unit="nm").compute()
    truth = lab.copy(data=np.roll(lab.values, 1, axis=1))
    return lab, truth


def test_evolution_rows_equal_the_measurements_of_each_step(series):
    lab, truth = series
    lazy = lab.copy(data=da.from_array(lab.values, chunks=(1, 7, 11, 9)))
    m = measure.summary(lazy, truth=truth)
    tab = measure.particles(lazy, max_diameter=32)
    ev = measure.evolution(m, tab)
    assert list(ev.index) == [0, 1, 2] and ev.attrs["unit"] == "nm" and ev.attrs["units"]["median_aspect_ratio"] == "1"
    total = lab[0].size * 50.0 ** 3
    for t in range(3):
        frame = lab.isel(t=t)
        np.testing.assert_allclose(ev.loc[t, "fraction_cbd"], float(measure.volume_fractions(frame).sel(phase="cbd")))
        area = measure.interfaces(frame)["area"].sel(phase_a="pore", phase_b="active")
        np.testing.assert_allclose(ev.loc[t, "specific_area_pore_active"], float(area) / total)
        cov = measure.interfaces(frame)["coverage"].sel(phase_a="active", phase_b="cbd")
        np.testing.assert_allclose(ev.loc[t, "coverage_active_cbd"], float(cov))
        iou = measure.scores(truth.isel(t=t), frame)["iou"].sel(phase="active")
        np.testing.assert_allclose(ev.loc[t, "iou_active"], float(iou))
        one = tab[tab.t == t]
        inside = one[~one.touches_border]
        assert ev.loc[t, "particles"] == len(one) and ev.loc[t, "particles_inside"] == len(inside)
        np.testing.assert_allclose(ev.loc[t, "median_detachment"], inside.detachment.median())
        np.testing.assert_allclose(ev.loc[t, "median_aspect_ratio"], inside.aspect_ratio.median())
    # particles swell and the CBD thins in the simulated series
    assert ev["fraction_active"].is_monotonic_increasing and ev["fraction_cbd"].is_monotonic_decreasing
    assert ev["particles_inside"].sum() > 0 and ev["median_equivalent_diameter"].notna().any()
    for t in (1, 2):  # particles whose track was there one step before
        assert ev.loc[t, "particles_continued"] == len(set(tab[tab.t == t].track) & set(tab[tab.t == t - 1].track))
    assert np.isnan(ev.loc[0, "particles_continued"]) and ev.loc[2, "particles_continued"] > 0
    # phase changes between consecutive steps: the confusion of step t-1 against step t
    changes = measure.transitions(lazy)
    assert changes.dims == ("t", "from_phase", "to_phase") and list(changes.t.values) == [1, 2]
    for t in (1, 2):
        before, after = lab.values[t - 1], lab.values[t]
        np.testing.assert_allclose(float(changes.sel(t=t, from_phase="cbd", to_phase="pore")),
                                   np.mean((before == 1) & (after == 0)))
        np.testing.assert_allclose(float(changes.sel(t=t).sum()), 1.0)
    ev = measure.evolution(m, tab, changes)
    assert np.isnan(ev.loc[0, "cbd_to_pore"]) and ev.loc[2, "cbd_to_pore"] == float(changes.sel(
        t=2, from_phase="cbd", to_phase="pore"))
    with pytest.raises(InputError, match="2 time steps"):
        measure.transitions(lab.isel(t=[0]))
    # 255 in a scan: each step's fractions are of the voxels labelled in both scans, counted per
    # step (attrs["voxels"] held the first step's count alone)
    part = lab.values.copy()
    part[2, :, :, :4] = 255
    cut = measure.transitions(lab.copy(data=part))
    both = [int(((part[t - 1] < 3) & (part[t] < 3)).sum()) for t in (1, 2)]
    assert list(cut.voxels.values) == both and both[0] > both[1]
    np.testing.assert_allclose(float(cut.sel(t=2, from_phase="cbd", to_phase="pore")),
                               ((part[1] == 1) & (part[2] == 0)).sum() / both[1])
    fig = series_figure(m, tab, transitions=changes)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert titles[:7] == ["phases", "interfaces (faces)", "phase changes", "scores", "particles", "particle contacts",
                          "particle shape"]
    assert len(titles) == 8 and "tracked through every step" in titles[7]
    # the particles' median shape over time, as evolution.csv holds it (was drawn nowhere)
    shape = [ax for ax in fig.axes if ax.get_title() == "particle shape"][0]
    got = {line.get_label(): line.get_ydata() for line in shape.get_lines()}
    np.testing.assert_allclose(got["sphericity"], ev["median_sphericity"].to_numpy())
    np.testing.assert_allclose(got["aspect ratio (major / minor)"], ev["median_aspect_ratio"].to_numpy())
    first = fig.axes[0]
    assert first.get_xlabel() == "scan (time step)"
    assert all(float(v).is_integer() for v in first.get_xticks())  # steps, not 0.5
    # no legend covers any of the points (the phases' legend sat on the active curve), the median
    # diameter's on the particles' right-hand axis included (it had no room above its curve)
    fig.canvas.draw()
    legends = 0
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        legends += 1
        box = legend.get_window_extent()
        for other in fig.axes:
            if other.bbox.bounds != ax.bbox.bounds:
                continue
            for line in other.get_lines():
                xy = other.transData.transform(np.column_stack(line.get_data()).astype(float))
                assert not any(box.contains(*pt) for pt in xy), line.get_label()
    assert legends == 8
    assert fig.axes[1].get_title() == "interfaces (faces)" and ev.attrs["area_method"] == "faces"  # the method said
    # the pairs' curves differ by line style too, not by the markers' colour alone
    styles = {(line.get_color(), line.get_linestyle()) for line in fig.axes[1].get_lines()}
    assert len(styles) == len(fig.axes[1].get_lines()) == 3
    # with the connectivity in the metrics: each phase's percolating share per step, and its curves
    conn = measure.connectivity(lazy, axis="x")
    with_conn = measure.add_to_metrics(m, connectivity=conn)
    ev = measure.evolution(with_conn)
    np.testing.assert_array_equal(ev["percolating_cbd"].to_numpy(), conn.percolating.sel(phase="cbd").values)
    # a share, in the unit of metrics.nc's connectivity_percolating (was "", a count's or a yes/no's)
    assert ev.attrs["units"]["percolating_cbd"] == with_conn.connectivity_percolating.attrs["units"] == "1"
    panel = [ax for ax in series_figure(with_conn).axes if ax.get_title() == "connectivity"]
    assert len(panel) == 1 and panel[0].get_ylabel() == "share spanning the volume along x"
    assert max(panel[0].get_yticks()) <= 1 + 1e-9  # a share: no tick in the legend's room above it (was 1.2)
    timed = series_figure(m.assign_coords(t=[0.0, 1.5, 4.0]))
    assert timed.axes[0].get_xlabel() == "t (the times given for the scans)"
    # a single volume is one row; bad inputs are refused by name
    assert len(measure.evolution(measure.summary(lab.isel(t=0)))) == 1
    with pytest.raises(InputError, match="`metrics`"):
        measure.evolution(tab)
    with pytest.raises(InputError, match=r"`particles`.*t = \[7\]"):
        measure.evolution(m, tab.assign(t=7))


def test_an_evolution_table_is_drawn_as_its_measurements(series, tmp_path):
    """``series_figure`` of the table of ``evolution`` (as a run's evolution.csv read back) draws
    the curves the summary and particles give, the tracks' panel aside (it needs the particles)."""
    from bigseg.measure import read_table, write_table

    lab, _ = series
    m = measure.add_to_metrics(measure.summary(lab), connectivity=measure.connectivity(lab, axis="x"))
    tab = measure.particles(lab, max_diameter=32)
    ev = measure.evolution(m, tab)
    assert ev.attrs["connectivity_axis"] == "x"
    write_table(ev, tmp_path / "evolution.csv")
    back = read_table(tmp_path / "evolution.csv")

    def curves(fig):
        return {ax.get_title().split(" (")[0]: [(line.get_label(), line.get_ydata().tolist()) for line in ax.get_lines()]
                for ax in fig.axes if ax.get_visible() and ax.get_title()}  # (the CSV does not say the areas' method)

    whole = curves(series_figure(m, tab))
    for table in (ev, back):
        attrs = dict(table.attrs)
        drawn = curves(series_figure(table))
        assert table.attrs == attrs  # the table as it was
        assert set(whole) - set(drawn) == {t for t in whole if "tracked" in t}
        for title, lines in drawn.items():
            assert [n for n, _ in lines] == [n for n, _ in whole[title]], title
            for (_, got), (_, want) in zip(lines, whole[title]):
                np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=title)
    panel = [ax for ax in series_figure(ev).axes if ax.get_title() == "connectivity"]
    assert panel[0].get_ylabel() == "share spanning the volume along x"
    assert series_figure(back).axes[0].get_xlabel() == "scan (time step)"
    with pytest.raises(InputError, match="`particles` and `transitions` to be None"):
        series_figure(ev, tab)
    with pytest.raises(InputError, match="`metrics`.*fraction_<phase>"):
        series_figure(tab)


def test_cli_measure_series_prints_and_draws_the_evolution(series, tmp_path, capsys):
    lab, _ = series
    image = tmp_path / "s.ome.zarr"
    save_volume(lab.values.astype(np.float32), image, chunks=(1, 10, 12, 14), progress=False)
    save_labels(lab, image, progress=False)
    png, csv = tmp_path / "ev.png", tmp_path / "p.csv"
    assert main(["measure", str(image), "--particles", str(csv), "--no-split", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "over time" in out and "median_detachment" in out and "3 time steps" in out and "cbd_to_pore" in out
    assert png.stat().st_size > 20_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(csv).t.nunique() == 3
    # --rve on a series: refused before any work, nothing written into the image
    capsys.readouterr()
    assert main(["measure", str(image), "--particle-labels", "tracks", "--rve"]) == 2
    assert "`--rve` with one volume" in capsys.readouterr().err
    assert not (image / "labels" / "tracks").exists()


def test_a_step_without_particles():
    lab = synth.series((24, 32, 32), steps=3, seed=1, chunks=16).values.copy()
    lab[1][lab[1] == 2] = 0  # no active material at all in the middle scan
    tab = measure.particles(lab, max_diameter=32)
    assert set(tab.t) == {0, 2}
    ev = measure.evolution(measure.summary(lab), tab, measure.transitions(lab))
    assert list(ev.particles) == [len(tab[tab.t == 0]), 0, len(tab[tab.t == 2])]
    assert list(ev.particles_continued[1:]) == [0, 0]  # nothing carries a track over the empty scan
    ids = measure.particle_labels(lab, max_diameter=32).compute()
    assert not ids[1].any() and set(np.unique(ids[2])) - {0} == set(tab[tab.t == 2].track)


def test_a_particle_table_of_another_series_is_refused(series):
    lab, _ = series
    metrics = measure.summary(lab)
    tab = measure.particles(lab, max_diameter=32)
    assert tab.attrs["t"] == lab.t.values.tolist()
    shorter = measure.particles(lab.isel(t=slice(0, 2)), max_diameter=32)  # its steps are all in `metrics`
    with pytest.raises(InputError, match=r"`particles` of the same time steps as `metrics` \[0, 1, 2\]. Got t = \[0, 1\]"):
        measure.evolution(metrics, shorter)
    with pytest.raises(InputError, match=r"'touches_border' column\). Got DataFrame with columns \['t', 'id'\]"):
        measure.evolution(metrics, tab[["t", "id"]])
    other = tab.copy()
    other.attrs["unit"] = "um"
    with pytest.raises(InputError, match=r"in the unit of `metrics` \('nm'\). Got 'um'"):
        measure.evolution(metrics, other)
    assert measure.evolution(metrics, tab)["particles"].sum() == len(tab)
    spelled = tab.copy()  # one unit spelled two ways ("nanometer", a volume saved by another tool) is the same
    spelled.attrs["unit"] = "nanometer"
    assert measure.evolution(metrics, spelled)["particles"].sum() == len(tab)


def test_a_particle_table_of_one_volume_is_refused_for_a_series(series):
    # the table of one scan (no `t` column) was counted silently as the first step's, whichever
    # scan it measured, and the other steps read as having no particles
    lab, _ = series
    metrics = measure.summary(lab)
    one = measure.particles(lab.isel(t=2), max_diameter=32)
    assert "t" not in one.columns
    with pytest.raises(InputError, match=r"`particles` of the series of `metrics` .* 3 time steps \[0, 1, 2\]. "
                                         r"Got a table of one volume \(no 't' column\)"):
        measure.evolution(metrics, one)
    single = measure.evolution(measure.summary(lab.isel(t=2)), one)  # one volume with its own table: one row
    assert single["particles"].tolist() == [len(one)]

def test_units_are_stated(series):
    lab, truth = series
    assert measure.transitions(lab).attrs["units"] == "1"
    assert measure.transitions(lab).voxels.attrs["units"] == "voxel"  # (a count, not a volume)
    units = measure.evolution(measure.summary(lab), transitions=measure.transitions(lab)).attrs["units"]
    unit = lab.attrs["unit"]
    assert units["fraction_pore"] == units["pore_to_cbd"] == "1" and units["specific_area_pore_cbd"] == f"{unit}^-1"
    ag = measure.agreement([lab, truth], truth=truth)
    assert all(ag[v].attrs.get("units") == "1" for v in ("iou", "dice", "precision", "recall", "volume_fraction"))
    sp = measure.spread([measure.volume_fractions(lab), measure.volume_fractions(truth)])
    assert sp["volume_fraction_std"].attrs["long_name"].startswith("sample standard deviation (n - 1) of")
    assert sp["volume_fraction_mean"].attrs["units"] == "1"


def test_times_keep_their_unit_in_the_table_and_the_figure(series):
    # scans 30 min apart (the t coordinate's units): the table and the curves' axis did not say it
    import matplotlib.pyplot as plt

    lab, _ = series
    m = measure.summary(lab.assign_coords(t=("t", [0.0, 30.0, 60.0], {"units": "min"})))
    ev = measure.evolution(m)
    assert list(ev.index) == [0.0, 30.0, 60.0] and ev.attrs["time_unit"] == "min"
    fig = series_figure(m)
    assert fig.axes[0].get_xlabel() == "t [min]"
    plt.close(fig)
    assert "time_unit" not in measure.evolution(measure.summary(lab)).attrs  # steps: no unit


def test_cli_measure_says_the_times_unit(series, tmp_path, capsys):
    # a series ingested with --time-unit min: the printed steps, the table over time and the CSV's
    # t column said no unit (the CSV's came after the phase columns)
    lab, _ = series
    image = tmp_path / "s.ome.zarr"
    timed = lab.assign_coords(t=("t", [0.0, 30.0, 60.0], {"units": "min"}))
    grey = timed.copy(data=timed.values.astype(np.float32))
    del grey.attrs["phases"]
    save_volume(grey, image, chunks=(1, 16, 16, 16), progress=False)
    save_labels(timed, image, progress=False)
    assert main(["measure", str(image), "--csv", str(tmp_path / "m.csv")]) == 0
    out = capsys.readouterr().out
    assert "t = 30 min\n" in out and "\nt [min] " in out
    assert pd.read_csv(tmp_path / "m.csv").columns[:3].tolist() == ["quantity", "t [min]", "phase"]


def test_transitions_given_in_the_place_of_particles_are_told_to_go_by_keyword(series):
    lab, _ = series
    moves = measure.transitions(lab)
    sm = measure.summary(lab)
    with pytest.raises(InputError, match=r"Got DataArray with columns \[\] instead: phase transitions go by keyword, "
                                         r"evolution\(metrics, transitions=\.\.\.\)"):
        measure.evolution(sm, moves)
    assert len(measure.evolution(sm, transitions=moves)) == lab.sizes["t"]


def test_two_steps_of_one_time_are_refused(series):
    # a series' metrics whose t repeats (two scans given one time): each repeated row got the
    # particles of both steps, counted twice
    lab, _ = series
    m = measure.summary(lab).assign_coords(t=[0.0, 0.0, 30.0])
    tab = measure.particles(lab, max_diameter=32)
    tab = tab.assign(t=tab["t"].map({0: 0.0, 1: 0.0, 2: 30.0}))
    with pytest.raises(InputError, match=r"`metrics` with one time per step. Got t = \[0.0, 0.0, 30.0\]"):
        measure.evolution(m, tab)


def test_transitions_bring_back_a_few_counts_per_step_not_the_joint_histogram():
    """Each step's whole 256 × 256 joint histogram (512 KiB) came back to the client, every step's
    at once (0.5 MiB per scan: 0.5 GiB for 1000 scans): each step's graph now ends in what the
    matrix is made of (4 KiB), the changes as counted voxel by voxel in NumPy."""
    from bigseg.measure._scores import _confusion_graph, _pair

    lab = np.random.default_rng(3).integers(0, 3, (9, 6, 7, 5)).astype(np.uint8)
    lab[2, 0, 0, :2] = 255  # unlabelled voxels: left out of that step and the next
    series = da.from_array(lab, chunks=(1, 4, 3, 5))
    tl, pl = _pair(series[:-1], series[1:], None)
    graphs = _confusion_graph(tl, pl)
    assert len(graphs) == 8 and all(g.shape[0] <= 2 * 256 + 2 + 3 * 4 for g in graphs)
    got = measure.transitions(series)
    for t in range(1, 9):
        a, b = lab[t - 1].ravel(), lab[t].ravel()
        ok = (a != 255) & (b != 255)
        want = np.zeros((3, 3))
        np.add.at(want, (a[ok], b[ok]), 1)
        np.testing.assert_allclose(got.isel(t=t - 1).values, want / ok.sum())


def test_evolution_follows_the_contact_with_every_phase_by_its_own_name(series):
    """Only `contact_cbd` was followed (a phase named "CBD" or "binder" had no median contact), and
    the contacts' curves drew "pore" and "cbd" only (for "Pore" black, for "CBD" none)."""
    lab, _ = series
    named = lab.assign_attrs(phases=["Pore", "CBD", "NMC"])
    m = measure.summary(named)
    tab = measure.particles(named, phase="NMC", max_diameter=32)
    ev = measure.evolution(m, tab)
    contacts = sorted(c for c in ev.columns if c.startswith("median_contact"))
    assert contacts == ["median_contact_CBD", "median_contact_particle"]  # the pore's is median_detachment
    for t in range(3):
        inside = tab[(tab.t == t) & ~tab.touches_border]
        np.testing.assert_allclose(ev.loc[t, "median_contact_CBD"], inside.contact_CBD.median())
        np.testing.assert_allclose(ev.loc[t, "median_detachment"], inside.contact_Pore.median())
    fig = series_figure(ev)
    ax = next(a for a in fig.axes if a.get_title() == "particle contacts")
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["Pore (detachment)", "CBD", "particle"]
    from bigseg.report._figure import phase_rgb

    colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
    assert tuple(colours["Pore (detachment)"]) == phase_rgb("pore") and tuple(colours["CBD"]) == phase_rgb("cbd")
    # the default names: the same columns as before
    default = measure.evolution(measure.summary(lab), measure.particles(lab, max_diameter=32))
    assert sorted(c for c in default.columns if c.startswith("median_contact")) == ["median_contact_cbd",
                                                                                   "median_contact_particle"]


@pytest.mark.parametrize(("phases", "particle"), [(["pore", "cbd", "active"], "cbd"),
                                                  (["Pore", "CBD", "NMC"], "NMC"),
                                                  (["pore", "cbd", "active"], "active")])
def test_series_figure_draws_the_median_diameter_in_the_particle_phase_colour(phases, particle):
    """The median diameter was drawn in the colour of "active" whatever the particles' phase (CBD
    particles in the active colour; NMC particles of a volume naming no "active" in matplotlib's C1)."""
    from matplotlib.colors import to_rgb

    from bigseg.report._figure import phase_rgb

    t = [0, 1, 2]
    ev = pd.DataFrame({f"fraction_{p}": [0.3, 0.3, 0.4] for p in phases} | {"particles": [5, 6, 7],
                      "particles_inside": [3, 4, 5], "median_equivalent_diameter": [4.0, 4.5, 5.0],
                      "median_detachment": [0.1, 0.2, 0.3]}, index=pd.Index(t, name="t"))
    for p in phases[1:]:  # each phase's contact but the pore's (the detachment) and the particles' own
        if p != particle:
            ev[f"median_contact_{p}"] = 0.4
    ev["median_contact_particle"] = 0.1
    ev.attrs["unit"] = "nm"
    fig = series_figure(ev)
    line = next(line for ax in fig.axes for line in ax.get_lines() if line.get_label() == "median diameter")
    np.testing.assert_allclose(to_rgb(line.get_color()), phase_rgb(particle, phases.index(particle)))


def test_particle_phase_of_an_evolution_table_without_contacts_is_none():
    """An evolution table without the particles' contact columns (an earlier bigseg's) names no
    phase as the particles' (two are left: either may be), as one of pore particles names none."""
    from bigseg.report._series import _particle_phase

    phases = ["pore", "cbd", "active"]
    ev = pd.DataFrame({"median_equivalent_diameter": [4.0], "median_detachment": [0.1]})
    assert _particle_phase(ev, phases) is None
    assert _particle_phase(ev.assign(median_contact_cbd=0.3), phases) == "active"
    assert _particle_phase(ev.assign(median_contact_cbd=0.3, median_contact_active=0.2), phases) is None
