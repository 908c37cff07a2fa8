"""Particle statistics by size group (small vs big), as the detachment study compares them."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .._parse import parse_positive_float
from ..errors import InputError
from ..io._volume import phase_named
from ..ops._histogram import weighted_quantiles

__all__ = ["size_distribution", "size_groups"]

def contact_column(columns: Any, name: str) -> str | None:
    """The particle table's column of the contact with the phase ``name`` (in other case too:
    ``contact_CBD`` for ``"cbd"``, :func:`bigseg.io._volume.phase_named`), None if it has none."""
    phases = [str(c)[len("contact_"):] for c in columns
              if str(c).startswith("contact_") and str(c) != "contact_particle"]
    phase = phase_named(phases, name)
    return None if phase is None else f"contact_{phase}"


def contact_columns(table: Any) -> list[str]:
    """The particle table's ``contact_<phase>`` and ``contact_particle`` columns but the pore's
    (whose share is ``detachment``): each phase's by its own name ("CBD", "binder"), where only
    ``contact_cbd`` was followed (:func:`size_groups` and :func:`bigseg.measure.evolution` give
    the median of each)."""
    pore = contact_column(table.columns, "pore")
    return [str(c) for c in table.columns if str(c).startswith("contact_") and str(c) != pore]


def contact_median(groups: pd.DataFrame, name: str) -> str | None:
    """The column of :func:`size_groups`' ``groups`` holding the median contact with the phase
    ``name`` (in other case too: ``contact_CBD_median`` for ``"cbd"``), None if it has none
    (CBD particles have no contact with CBD)."""
    medians = [str(c)[:-len("_median")] for c in groups.columns if str(c).endswith("_median")]
    column = contact_column(medians, name)
    return None if column is None else f"{column}_median"


def _balanced_threshold(diameters: np.ndarray) -> float:
    """The diameter from which a particle is big that splits ``diameters`` closest to half and
    half: the median, or where particles tie with it one of the sizes, so that particles of one
    size (a few voxels take few distinct sizes) stay in one group ("at or above the median" put
    every particle in big where many tied with it)."""
    median = float(np.median(diameters))
    if abs(2 * int((diameters >= median).sum()) - len(diameters)) <= 1:  # no ties at the median
        return median
    values = np.unique(diameters)
    if len(values) == 1:
        return float(values[0])
    small = np.searchsorted(np.sort(diameters), values[1:], side="left")  # particles below each candidate
    best = int(np.argmin(np.abs(2 * small - len(diameters))))
    return float(values[1:][best])


def size_groups(table: Any, *, threshold: Any = None) -> pd.DataFrame:
    """Split the particles inside the volume into small and big ones and compare them.

    Jiang et al. (2020) divide the NMC particles at an equivalent diameter (11 µm, chosen from
    the size distribution) and compare the distributions of detachment (the pore-contact
    fraction of the surface) of the two groups: the small particles scatter more.

    Parameters
    ----------
    table : :func:`particles`' table (a ``t`` column for a series: one pair of rows per step).
    threshold : equivalent diameter (in the table's unit) from which a particle is big;
        default the median equivalent diameter of the particles inside the volume, or where
        many tie with it the size that splits them closest to half and half (particles of one
        size stay in one group), over every step of a series, so that the groups stay the same over time; warned
        about when all particles have one size, and when a given one lies more than 100 times below or above
        every diameter (a unit slip: 11 meant as µm on a table in nm).

    Returns
    -------
    DataFrame indexed by ``group`` ("small", "big"; with ``t`` first for a series): the
    number of ``particles``, ``diameter_min``/``diameter_max``, the ``detachment`` mean, std,
    10th/50th/90th percentiles and IQR (its spread), and the medians of the contact with every
    other phase the table has but the pore (its contact is the detachment), each by its name
    (``contact_cbd_median``; ``contact_CBD_median`` for a phase named "CBD"), of
    ``contact_particle`` and of ``sphericity``, as :func:`bigseg.measure.evolution` follows them
    over time (:func:`contact_columns`). ``attrs``: ``threshold``, ``unit``. Particles touching
    the volume border are left out (their size and surface are truncated).
    """
    if not isinstance(table, pd.DataFrame) or not {"equivalent_diameter", "touches_border", "detachment"} <= set(table):
        raise InputError("Expected `table` to be the particle table of bigseg.measure.particles. "
                         f"Got {type(table).__name__} instead.")
    table = with_border_flags(table)
    inside = table[~table["touches_border"]]
    if inside.empty:
        got = ("no particle at all" if table.empty else
               f"only particles touching its border ({len(table)})")
        raise InputError(f"Expected `table` to hold particles inside the volume. Got {got}.")
    diameters = inside["equivalent_diameter"].to_numpy(np.float64)
    thr = _balanced_threshold(diameters) if threshold is None else parse_positive_float("threshold", threshold)
    group = np.where(diameters >= thr, "big", "small")
    if threshold is not None and not diameters.min() / 100 <= thr <= diameters.max() * 100:
        # 11 meant as 11 µm on a table in nm (particles of thousands): every particle in one group
        unit = str(table.attrs.get("unit", "")) or "the table's unit"
        warnings.warn(f"`threshold` {thr:g} lies more than 100 times {'below' if thr < diameters.min() else 'above'} "
                      f"the particles' equivalent diameters ({diameters.min():.4g} to {diameters.max():.4g} {unit}): "
                      f"every particle is {'big' if thr < diameters.min() else 'small'}. A threshold in another "
                      f"unit? It is in {unit}.", UserWarning, stacklevel=2)
    if threshold is None and len(diameters) > 1 and thr == diameters.min():  # one particle: nothing to split
        warnings.warn(f"every particle inside the volume has the same equivalent diameter ({thr:g}): all are "
                      f"counted big, none small; pass a threshold to measure.size_groups", UserWarning, stacklevel=2)
    keys = (["t"] if "t" in inside else []) + ["group"]
    g = inside.assign(group=pd.Categorical(group, ["small", "big"])).groupby(keys, observed=False)
    d = g["detachment"]
    out = pd.DataFrame({
        "particles": g.size(),
        "diameter_min": g["equivalent_diameter"].min(), "diameter_max": g["equivalent_diameter"].max(),
        "detachment_mean": d.mean(), "detachment_std": d.std(),
        "detachment_p10": d.quantile(0.1), "detachment_median": d.median(), "detachment_p90": d.quantile(0.9),
        "detachment_iqr": d.quantile(0.75) - d.quantile(0.25),
        **{f"{c}_median": g[c].median() for c in (*contact_columns(inside), "sphericity") if c in inside},
    })
    out.attrs.update(threshold=thr, unit=table.attrs.get("unit", ""), phase=table.attrs.get("phase", ""))
    return out


_WORDS = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False, "yes": True, "no": False}


def with_border_flags(table: pd.DataFrame, name: str = "table") -> pd.DataFrame:
    """``table`` with its ``touches_border`` column as booleans (attrs kept): a table read back
    from a spreadsheet may hold them as text ("True", "FALSE") or 0/1, which ``astype(bool)``
    reads all as True (any text); other values are refused by name."""
    col = table["touches_border"]
    if col.dtype == bool:
        return table
    parsed = col.map(lambda v: bool(v) if isinstance(v, (bool, np.bool_)) else _WORDS.get(str(v).strip().lower()))
    if parsed.isna().any():
        odd = sorted({str(v) for v in col[parsed.isna()]})[:5]
        raise InputError(f"Expected `{name}`'s touches_border column to hold True/False (or 1/0). Got {odd} instead.")
    out = table.copy()
    out["touches_border"] = parsed.astype(bool)
    return out


def size_distribution(table: Any, *, q: Any = (10, 50, 90)) -> pd.DataFrame:
    """The particle size distribution of the particles inside the volume: percentiles of the
    equivalent diameter by number and by volume (D10, D50, D90 as a laser-diffraction PSD of the
    powder states them) and the mean diameters.

    Parameters
    ----------
    table : :func:`particles`' table (a ``t`` column for a series: two rows per step).
    q : percentiles, each in [0, 100] (default 10, 50, 90).

    Returns
    -------
    DataFrame indexed by ``basis`` ("number", "volume"; with ``t`` first for a series), columns
    ``particles`` (inside the volume) and ``d<q>`` for each percentile, in the table's unit
    (``attrs["unit"]``): by number the percentile of the diameters (linear between particles, as
    ``numpy.percentile`` and the medians of :func:`size_groups`), by volume the diameter of the
    particle at which the particles up to its size hold ``q`` % of their volume (the inverted
    cumulative distribution: D50 is the size that splits the volume in half); ``mean``: the mean
    diameter by number, and by volume the De Brouckere mean D[4,3] = Σ V d / Σ V. Particles
    touching the volume border are left out (their sizes are truncated); NaN where none is inside.

    Examples
    --------
    >>> import pandas as pd
    >>> from bigseg.measure import size_distribution
    >>> t = pd.DataFrame({"equivalent_diameter": [1.0, 2.0, 10.0], "volume": [0.52, 4.19, 523.6],
    ...                   "touches_border": [False, False, False]})
    >>> size_distribution(t)["d50"].round(2).tolist()  # by number, by volume
    [2.0, 10.0]
    """
    if not isinstance(table, pd.DataFrame) or not {"equivalent_diameter", "volume", "touches_border"} <= set(table):
        raise InputError("Expected `table` to be the particle table of bigseg.measure.particles (columns "
                         "equivalent_diameter, volume, touches_border). Got "
                         f"{type(table).__name__ if not isinstance(table, pd.DataFrame) else 'a table without them'} "
                         "instead.")
    qs = np.atleast_1d(np.asarray(q, dtype=object))
    if not len(qs) or not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                              and 0 <= float(v) <= 100 for v in qs):
        raise InputError(f"Expected `q` to be percentiles in [0, 100]. Got {q!r} instead.")
    qs = [float(v) for v in qs]
    inside = table[~with_border_flags(table)["touches_border"]]
    columns = [f"d{v:g}" for v in qs]

    def rows(part: pd.DataFrame) -> list[list[float]]:
        d = part["equivalent_diameter"].to_numpy(np.float64)
        v = part["volume"].to_numpy(np.float64)
        if not len(d):
            return [[0] + [np.nan] * (len(qs) + 1)] * 2
        by_volume = _volume_percentiles(d, v, qs)
        return [[len(d), *np.percentile(d, qs), d.mean()],
                [len(d), *by_volume, float((v * d).sum() / v.sum()) if v.sum() > 0 else np.nan]]

    names = ["particles", *columns, "mean"]
    if "t" in table:
        steps = table.attrs.get("t") or sorted(table["t"].unique().tolist())
        data = [r for t in steps for r in rows(inside[inside["t"] == t])]
        index = pd.MultiIndex.from_product([steps, ["number", "volume"]], names=["t", "basis"])
    else:
        data, index = rows(inside), pd.Index(["number", "volume"], name="basis")
    out = pd.DataFrame(data, index=index, columns=names).astype({"particles": np.int64})
    out.attrs.update(unit=table.attrs.get("unit", ""), q=qs)
    return out


def _volume_percentiles(d: np.ndarray, v: np.ndarray, qs: list[float]) -> np.ndarray:
    """The smallest of the diameters ``d`` up to which the particles hold ``q`` % of the volume
    ``v``, for each ``q`` of ``qs``: ``numpy.percentile(d, qs, weights=v, method="inverted_cdf")``
    of numpy 2 (bigseg's floor, numpy 1.26, lacks it), but for a running share within 1e-12 of
    ``q`` taken as reaching it (0.7 + 0.1 of a volume of 1 reaches 80 %; numpy's rounding says
    not); NaN without volume."""
    order = np.argsort(d, kind="stable")
    return weighted_quantiles(d[order], v[order], np.asarray(qs, np.float64) / 100.0)
