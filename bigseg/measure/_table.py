"""A table as a CSV file that states its units: ``volume [nm^3]``, read back with them.

A spreadsheet or ``pd.read_csv`` of ``particles.csv`` showed ``volume``, ``equivalent_diameter``,
``centroid_x`` without a unit; the table's ``attrs["units"]`` went nowhere.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pandas as pd

__all__ = ["read_table", "write_table"]

_HEADER = re.compile(r"^(?P<name>.+?) \[(?P<unit>[^\[\]]+)\]$")


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """``table`` (:func:`bigseg.measure.particles`, :func:`bigseg.measure.evolution`: its index
    ``t`` the first column) to CSV, each column with a unit named with it
    (``volume [nm^3]``, ``bbox_z0 [voxel]``, ``t [min]``); dimensionless and unit-less columns as
    they are. :func:`read_table` gives it back with its ``attrs``.

    Parameters
    ----------
    table : a DataFrame whose ``attrs["units"]`` maps column names to units.
    path : the CSV file written (replaced if it exists).
    """
    units = table.attrs.get("units") or {}  # (a series' "t" among them: the times' unit)
    if table.index.name is not None:  # an index of its own (evolution's t): a column like the others
        table = table.reset_index()
    named = {c: f"{c} [{units[c]}]" for c in table.columns if str(units.get(c, "")) not in ("", "1")}
    table.rename(columns=named).to_csv(path, index=False)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A table written by :func:`write_table` (a run's ``particles.csv`` and ``evolution.csv``,
    ``bigseg measure --particles``): the column names without their units, which go to ``attrs["units"]``,
    the length unit to ``attrs["unit"]`` and a series' time unit to ``attrs["time_unit"]``.

    Parameters
    ----------
    path : the CSV file to read.

    Returns
    -------
    The DataFrame, its ``attrs`` as above.
    """
    df = pd.read_csv(path)
    names: dict[str, str] = {}
    units: dict[str, Any] = {}
    for col in df.columns:
        m = _HEADER.match(str(col))
        if m:
            names[col], units[m["name"]] = m["name"], m["unit"]
    df = df.rename(columns=names)
    time = units.get("t")
    df.attrs["units"] = units
    length = (units.get("equivalent_diameter") or units.get("centroid_x") or units.get("median_equivalent_diameter")
              or next((u[:-3] for c, u in units.items() if c.startswith("specific_area_") and u.endswith("^-1")), None))
    if length:
        df.attrs["unit"] = length
    if time:
        df.attrs["time_unit"] = time
    return df
