"""Particle statistics by size group, against pandas on the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bigseg.errors import InputError
from bigseg.measure import size_distribution, size_groups
from bigseg.report import particle_figure


def _table(n=60, seed=0, t=None):
    rng = np.random.default_rng(seed)
    d = rng.uniform(2, 12, n)
    df = pd.DataFrame({"equivalent_diameter": d, "volume": np.pi / 6 * d**3,
                       "touches_border": rng.random(n) < 0.2,
                       "detachment": np.clip(0.2 + rng.normal(0, 0.3, n) / d, 0, 1),
                       "contact_cbd": rng.random(n), "contact_particle": rng.random(n), "contact_pore": 0.0,
                       "sphericity": rng.uniform(0.7, 1.0, n)})
    df["contact_pore"] = df["detachment"]
    if t is not None:
        df.insert(0, "t", t)
    df.attrs.update(unit="nm", phase="active")
    return df


def test_groups_split_at_the_median_or_a_given_diameter():
    df = _table()
    g = size_groups(df)
    inside = df[~df.touches_border]
    thr = inside.equivalent_diameter.median()
    assert g.attrs["threshold"] == thr and g.attrs["unit"] == "nm" and list(g.index) == ["small", "big"]
    for name, sel in (("small", inside.equivalent_diameter < thr), ("big", inside.equivalent_diameter >= thr)):
        part = inside[sel]
        assert g.loc[name, "particles"] == len(part)
        assert g.loc[name, "detachment_median"] == pytest.approx(part.detachment.median())
        assert g.loc[name, "detachment_iqr"] == pytest.approx(part.detachment.quantile(0.75) - part.detachment.quantile(0.25))
        assert g.loc[name, "contact_cbd_median"] == pytest.approx(part.contact_cbd.median())
        assert g.loc[name, "diameter_max"] <= part.equivalent_diameter.max()
    # the simulated detachment scatters more for small particles (noise / diameter), as in the study
    assert g.loc["small", "detachment_std"] > g.loc["big", "detachment_std"]
    g5 = size_groups(df, threshold=5.0)
    assert g5.loc["small", "particles"] == int((inside.equivalent_diameter < 5).sum())


def test_particles_of_one_size_stay_in_one_group_and_the_groups_stay_balanced():
    """Small particles take few distinct sizes: six of 1.0 and three larger were all 'big' (at or
    above their median, 1.0)."""
    df = _table(n=9).assign(touches_border=False)
    df["equivalent_diameter"] = [1.0] * 6 + [2.0, 3.0, 4.0]
    g = size_groups(df)
    assert (g.loc["small", "particles"], g.loc["big", "particles"]) == (6, 3) and g.attrs["threshold"] == 2.0
    df["equivalent_diameter"] = [1.0] * 3 + [2.0] * 5 + [3.0]
    assert size_groups(df).loc["small", "particles"] == 3  # 3 / 6 is closer to even than 8 / 1
    df["equivalent_diameter"] = 1.5
    with pytest.warns(UserWarning, match=r"every particle inside the volume has the same equivalent diameter \(1.5\)"):
        g = size_groups(df)
    assert g.loc["big", "particles"] == 9


def test_series_keeps_one_threshold_and_empty_groups():
    df = pd.concat([_table(seed=1, t=0), _table(seed=2, t=1)], ignore_index=True)
    df.attrs.update(unit="nm")
    g = size_groups(df, threshold=100.0)  # nothing is big
    assert list(g.index.names) == ["t", "group"]
    assert g.loc[(0, "big"), "particles"] == 0 and g.loc[(1, "small"), "particles"] == int((~df[df.t == 1].touches_border).sum())


def test_bad_tables_are_refused():
    with pytest.raises(InputError, match="`table`"):
        size_groups(pd.DataFrame({"a": [1]}))
    df = _table()
    with pytest.raises(InputError, match=rf"inside the volume. Got only particles touching its border \({len(df)}\)"):
        size_groups(df.assign(touches_border=True))
    with pytest.raises(InputError, match="inside the volume. Got no particle at all"):
        size_groups(df.iloc[:0])
    with pytest.raises(InputError, match="`threshold`"):
        size_groups(df, threshold=-1)


def test_particle_figure_draws_detachment_by_size():
    fig = particle_figure(_table())
    ax = [a for a in fig.axes if a.get_title() == "detachment by size"][0]
    assert len(ax.collections) >= 2 and "split at" in ax.get_legend().get_title().get_text()
    fig = particle_figure(_table().assign(sphericity=np.nan))  # was an empty axis without a word
    shape = [a for a in fig.axes if a.get_title() == "shape"][0]
    assert any("no sphericity" in t.get_text() for t in shape.texts)


def test_report_shows_the_last_steps_groups_by_name():
    from bigseg.report._html import _particles_section

    df = pd.concat([_table(seed=1, t=0), _table(seed=2, t=1)], ignore_index=True)
    df.attrs.update(unit="nm")
    df.loc[df.t == 1, "equivalent_diameter"] *= 1.3  # the particles grow: the last step's median is another
    page = _particles_section(df)
    last = df[(df.t == 1) & ~df.touches_border]
    thr = size_groups(df).attrs["threshold"]  # one split for the whole series, as size_groups and the CLI make it
    assert thr != last.equivalent_diameter.median()
    assert "Detachment by size" in page and "<td>small</td>" in page and "<td>big</td>" in page
    assert f"split at {thr:.4g} nm, the median over every time step" in page
    assert f"<td>{(last.equivalent_diameter < thr).sum()}</td>" in page
    small = last[last.equivalent_diameter < thr].detachment  # the spread the figure and the CLI show: 10-90 %
    assert "detachment 10–90 %" in page and f"<td>{small.quantile(0.1):.3f}–{small.quantile(0.9):.3f}</td>" in page
    fig = particle_figure(df)  # the figure's groups too (it split the last step at its own median)
    ax = [a for a in fig.axes if a.get_title() == "detachment by size"][0]
    assert ax.get_legend().get_title().get_text() == f"split at {thr:.4g} nm"


def test_report_of_particles_none_inside_says_so_without_an_empty_table():
    from bigseg.report._html import _particles_section

    page = _particles_section(_table().assign(touches_border=True))
    assert "none inside the volume" in page and "<th>median</th>" not in page
    # none at all (no voxel of the phase): said so, not "0 particles ... every one touches the border"
    empty = _table().iloc[:0]
    empty.attrs["phase"] = "NMC811"
    page = _particles_section(empty)
    assert "No particles: the segmentation holds no voxel of &#x27;NMC811&#x27;." in page
    assert "touches" not in page and "<th>median</th>" not in page


def test_border_flags_read_back_as_text_are_not_all_true(tmp_path):
    """A particle table through a spreadsheet can hold touches_border as "False"/"TRUE" text or
    0/1: `astype(bool)` read every text as True, so size_groups refused the table as all
    particles touching the border. Text and 0/1 are read as booleans; other values refused."""
    import bigseg

    lab = bigseg.synth.electrode((32, 40, 40), radius=(4, 1), seed=2, chunks=20, voxel_size=50, unit="nm")
    table = bigseg.measure.particles(lab)
    want = bigseg.measure.size_groups(table)
    for text in (table.touches_border.map({True: "TRUE", False: "false"}), table.touches_border.astype(int)):
        got = bigseg.measure.size_groups(table.assign(touches_border=text))
        np.testing.assert_array_equal(got["particles"].values, want["particles"].values)
    bigseg.report.particle_figure(table.assign(touches_border=table.touches_border.astype(str)))
    with pytest.raises(InputError, match=r"`table`'s touches_border column to hold True/False \(or 1/0\)\. "
                                         r"Got \['maybe'\] instead"):
        bigseg.measure.size_groups(table.assign(touches_border="maybe"))


def test_a_threshold_in_another_unit_is_said():
    """Jiang et al.'s 11 µm given as 11 to a table in nm (diameters of thousands) made every
    particle big without a word; 11000 (nm) on a table in µm every one small."""
    df = _table().assign(equivalent_diameter=lambda d: d.equivalent_diameter * 1000.0)  # 2-12 µm in nm
    with pytest.warns(UserWarning, match=r"`threshold` 11 lies more than 100 times below the particles' equivalent "
                                         r"diameters \(.* nm\): every particle is big. A threshold in another unit"):
        g = size_groups(df, threshold=11)
    assert g.loc["small", "particles"] == 0
    df.attrs.update(unit="um")
    df["equivalent_diameter"] /= 1000.0
    with pytest.warns(UserWarning, match=r"more than 100 times above .* um\): every particle is small"):
        size_groups(df, threshold=11000)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        size_groups(df, threshold=11)  # within the diameters' range
        size_groups(df, threshold=100.0)  # nothing big, but no unit slip


def test_cbd_contact_in_other_case_is_the_cbds():
    """A table of phases named in the user's case ("CBD": contact_CBD) gives the CBD contact
    medians by its name, as evolution does (contact_CBD_median; size_groups had it as
    contact_cbd_median), and the report's particle and size tables show them as one of "cbd"
    (they had none)."""
    from bigseg.report._html import _particles_section

    low = _table()
    up = low.rename(columns={"contact_cbd": "contact_CBD", "contact_pore": "contact_Pore"})
    up.attrs.update(low.attrs)
    g, want = size_groups(up), size_groups(low)
    assert "contact_CBD_median" in g and "contact_cbd_median" not in g
    pd.testing.assert_frame_equal(g, want.rename(columns={"contact_cbd_median": "contact_CBD_median"}))
    page = _particles_section(up)
    assert page == _particles_section(low) and "CBD contact median" in page and "<td>CBD contact</td>" in page


def test_groups_give_the_contact_median_of_every_phase_as_evolution():
    """Only the CBD's contact median was given (a fourth phase's, e.g. a binder, left out), where
    evolution follows every phase's (the same helper, contact_columns), each by its name."""
    df = _table()
    df.insert(df.columns.get_loc("contact_particle"), "contact_binder", np.linspace(0, 1, len(df)))
    g = size_groups(df)
    inside = df[~df.touches_border]
    big = inside[inside.equivalent_diameter >= g.attrs["threshold"]]
    assert list(g.columns[-4:]) == ["contact_cbd_median", "contact_binder_median", "contact_particle_median",
                                    "sphericity_median"]  # (the pore's contact: the detachment's columns)
    assert g.loc["big", "contact_binder_median"] == pytest.approx(big.contact_binder.median())


def test_size_distribution_by_number_and_by_volume():
    """By number: numpy's percentiles of the diameters inside; by volume: the smallest diameter up
    to which the particles hold q % of the volume (numpy 2's weighted inverted CDF), D[4,3]; a
    series step by step (a step without particles: NaN, 0 particles); in the report and the CLI."""
    df = _table(n=80, seed=3)
    inside = df[~df.touches_border]
    d, v = inside.equivalent_diameter.to_numpy(), inside.volume.to_numpy()
    sd = size_distribution(df, q=(10, 50, 90))
    assert list(sd.index) == ["number", "volume"] and sd.attrs["unit"] == "nm"
    assert (sd["particles"] == len(inside)).all()
    np.testing.assert_allclose(sd.loc["number", ["d10", "d50", "d90"]].to_numpy(float), np.percentile(d, [10, 50, 90]))
    np.testing.assert_array_equal(sd.loc["volume", ["d10", "d50", "d90"]].to_numpy(float),
                                  np.percentile(d, [10, 50, 90], weights=v, method="inverted_cdf"))
    assert sd.loc["volume", "mean"] == pytest.approx((v * d).sum() / v.sum())
    assert sd.loc["number", "mean"] == pytest.approx(d.mean())
    # by volume the big particles weigh: D50 above the number median
    assert sd.loc["volume", "d50"] > sd.loc["number", "d50"]
    # the volume is split at D50: the particles below it hold less than half, up to it at least half
    assert v[d < sd.loc["volume", "d50"]].sum() < v.sum() / 2 <= v[d <= sd.loc["volume", "d50"]].sum()
    ser = _table(seed=1, t=0)
    ser.attrs.update(t=[0, 1])  # a series whose second step has no particle
    sds = size_distribution(ser)
    assert list(sds.index) == [(0, "number"), (0, "volume"), (1, "number"), (1, "volume")]
    pd.testing.assert_frame_equal(sds.loc[0], size_distribution(_table(seed=1)), check_names=False)
    assert sds.loc[1, "particles"].tolist() == [0, 0] and sds.loc[1, "d50"].isna().all()
    for bad in (150, -1, "50", [], True):
        with pytest.raises(InputError, match="`q`"):
            size_distribution(df, q=bad)
    with pytest.raises(InputError, match="`table`"):
        size_distribution(df.drop(columns="volume"))
    from bigseg.report._html import _particles_section

    page = _particles_section(df)
    row = [float(sd.loc["volume", c]) for c in ("mean", "d10", "d50", "d90")]
    assert ("<td>equivalent diameter by volume (D[4,3], D10, D50, D90) [nm]</td>"
            + "".join(f"<td>{x:.4g}</td>" for x in row)) in page


def test_size_line_of_a_series_whose_last_step_has_no_particle_inside():
    from bigseg.report._units import size_distribution_text

    ser = _table(seed=1, t=0)
    ser.attrs.update(t=[0, 5])
    assert size_distribution_text(size_distribution(ser), "nm", at=" (t = 5)") == (
        "size distribution (t = 5): no particle inside the volume")
    assert "D50" in size_distribution_text(size_distribution(_table(seed=1)), "nm")


def test_the_cumulative_volume_curve_steps_at_each_particle_so_d50_reads_off_it():
    df = _table(n=40, seed=6)
    fig = particle_figure(df)
    twin = [ax for ax in fig.axes if ax.get_ylabel().startswith("cumulative")][0]
    line = twin.get_lines()[0]
    assert line.get_drawstyle() == "steps-post"
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    for q in (10, 50, 90):  # the first particle where the curve reaches q %: the table's D by volume
        assert x[np.argmax(y >= q / 100)] == pytest.approx(size_distribution(df).loc["volume", f"d{q}"])


def test_size_distribution_at_its_ends_and_without_volume():
    """q = 0 and 100 are the smallest and largest diameters inside, by number and by volume, also
    where the running sum of the volumes falls short of their total by rounding (a particle of
    1e16 then 100 000 of 1: no index past the last particle) or reaches q % a
    rounding short of it; particles without
    volume: NaN by volume (no division by zero)."""
    from bigseg.measure._groups import _volume_percentiles

    df = _table(n=40, seed=2)
    d = df.equivalent_diameter[~df.touches_border].to_numpy()
    sd = size_distribution(df, q=(0, 100))
    for basis in ("number", "volume"):
        assert sd.loc[basis, ["d0", "d100"]].tolist() == [d.min(), d.max()]
    big = np.array([1e16] + [1.0] * 100_000)
    diameters = np.arange(len(big), dtype=np.float64)
    assert np.cumsum(big)[-1] / big.sum() < 1 - 1e-12  # the case
    assert _volume_percentiles(diameters, big, [0.0, 50.0, 100.0]).tolist() == [0.0, 0.0, len(big) - 1]
    # 0.7 + 0.1 is 0.7999999999999999 in floats: the 80 % are reached at the second particle all the same
    # (numpy 2's weighted inverted CDF, rounding, says the third)
    assert _volume_percentiles(np.array([1.0, 2.0, 3.0]), np.array([0.7, 0.1, 0.2]), [80.0]).tolist() == [2.0]
    empty = df.assign(volume=0.0)
    sd = size_distribution(empty)
    assert sd.loc["volume", ["d10", "d50", "d90", "mean"]].isna().all()
    assert sd.loc["number", "d50"] == pytest.approx(np.median(d))


def test_report_rows_of_the_size_distribution_and_of_min_voxels():
    """The row by volume follows the equivalent diameter's (before the volume's); the note of
    particles left out only for a ``min_voxels`` above 1 (every particle has its row at 1)."""
    from bigseg.report._html import _particles_section

    df = _table()
    page = _particles_section(df)
    labels = ("equivalent diameter [", "equivalent diameter by volume", "volume [")
    at = [page.index(f"<td>{label}") for label in labels]
    assert at == sorted(at)
    assert "min_voxels" not in page
    df.attrs["min_voxels"] = 1
    assert "min_voxels" not in _particles_section(df)
    df.attrs["min_voxels"] = 8
    assert "(particles of fewer than 8 voxels left out: measure.min_voxels)" in _particles_section(df)
