"""Particle statistics by size group (small vs big), as the detachment study compares them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._parse import parse_positive_float
from ..errors import InputError

__all__ = ["size_groups"]

_MEDIANS = ("detachment", "contact_cbd", "contact_particle", "sphericity")


def size_groups(table: Any, *, threshold: Any = None) -> pd.DataFrame:
    """Split the particles inside the volume into small and big ones and compare them.

    Jiang et al. (2020) divide the NMC particles at an equivalent diameter (11 µm, chosen from
    the size distribution) and compare the distributions of detachment (the pore-contact
    fraction of the surface) of the two groups: the small particles scatter more.

    Parameters
    ----------
    table : :func:`particles`' table (a ``t`` column for a series: one pair of rows per step).
    threshold : equivalent diameter (in the table's unit) from which a particle is big;
        default the median equivalent diameter of the particles inside the volume (over every
        step of a series, so that the groups stay the same over time).

    Returns
    -------
    DataFrame indexed by ``group`` ("small", "big"; with ``t`` first for a series): the
    number of ``particles``, ``diameter_min``/``diameter_max``, the ``detachment`` mean, std,
    10th/50th/90th percentiles and IQR (its spread), and the medians of ``contact_cbd``,
    ``contact_particle`` and ``sphericity``. ``attrs``: ``threshold``, ``unit``. Particles
    touching the volume border are left out (their size and surface are truncated).
    """
    if not isinstance(table, pd.DataFrame) or not {"equivalent_diameter", "touches_border", "detachment"} <= set(table):
        raise InputError("Expected `table` to be the particle table of bigseg.measure.particles. "
                         f"Got {type(table).__name__} instead.")
    inside = table[~table["touches_border"].astype(bool)]
    if inside.empty:
        got = ("no particle at all" if table.empty else
               f"only particles touching its border ({len(table)})")
        raise InputError(f"Expected `table` to hold particles inside the volume. Got {got}.")
    thr = (float(inside["equivalent_diameter"].median()) if threshold is None
           else parse_positive_float("threshold", threshold))
    group = np.where(inside["equivalent_diameter"] >= thr, "big", "small")
    keys = (["t"] if "t" in inside else []) + ["group"]
    g = inside.assign(group=pd.Categorical(group, ["small", "big"])).groupby(keys, observed=False)
    d = g["detachment"]
    out = pd.DataFrame({
        "particles": g.size(),
        "diameter_min": g["equivalent_diameter"].min(), "diameter_max": g["equivalent_diameter"].max(),
        "detachment_mean": d.mean(), "detachment_std": d.std(),
        "detachment_p10": d.quantile(0.1), "detachment_median": d.median(), "detachment_p90": d.quantile(0.9),
        "detachment_iqr": d.quantile(0.75) - d.quantile(0.25),
        **{f"{c}_median": g[c].median() for c in _MEDIANS[1:] if c in inside},
    })
    out.attrs.update(threshold=thr, unit=table.attrs.get("unit", ""), phase=table.attrs.get("phase", ""))
    return out
