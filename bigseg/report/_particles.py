"""Per-particle distributions: size, shape and contact with the other phases."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..measure._groups import contact_column, with_border_flags
from ._figure import figure_doc, finish, phase_rgb, pyplot
from ._units import readable

__all__ = ["particle_figure"]


@figure_doc
def particle_figure(table: Any, *, path: str | os.PathLike | None = None, title: str | None = None, dpi: int = 110,
                    unit: str | None = None):
    """Histograms of a :func:`bigseg.measure.particles` table: equivalent diameter (by count and
    by volume), sphericity, and each contact fraction (``detachment`` = pore contact); then
    detachment against size with the small/big groups of :func:`bigseg.measure.size_groups`
    (split at the median diameter) and each group's median and 10-90 % range; last, where the
    table has it, the aspect ratio (major / minor axis).

    Particles touching the volume border are drawn apart (grey, stacked above those inside) in the
    size histogram and left out of the others: their size and shape are truncated. For a series,
    the last time step is drawn.

    Parameters
    ----------
    table : the DataFrame of :func:`bigseg.measure.particles` (or its CSV read back by
        :func:`bigseg.measure.read_table`).
    {path}
    title : text above the panels; default None: none.
    dpi : resolution of the written file, dots per inch (default 110).
    unit : the length unit of the sizes, default the table's ``attrs["unit"]`` (a table read
        back from CSV has none: its axis then says the unit is not stated).

    Returns
    -------
    matplotlib Figure (closed when ``path`` is given).
    """
    import pandas as pd

    from ..errors import InputError

    need = ["equivalent_diameter", "volume", "sphericity", "touches_border"]  # was a KeyError from pandas
    missing = [c for c in need if c not in getattr(table, "columns", [])]
    if not isinstance(table, pd.DataFrame) or missing:
        got = type(table).__name__ if not isinstance(table, pd.DataFrame) else f"a table without {missing}"
        raise InputError(f"Expected `table` to be the particle table of bigseg.measure.particles (with columns "
                         f"{need}). Got {got} instead.")
    table = with_border_flags(table)  # text read back from a spreadsheet ("False") is no True
    plt = pyplot(path)
    from matplotlib.ticker import MaxNLocator

    df = table
    split = None
    if "t" in df.columns and len(df):
        split = series_split(df)  # the groups of the whole series, as size_groups and bigseg measure split them
        df = df[df["t"] == df["t"].iloc[-1]]
    stated = unit if unit is not None else table.attrs.get("unit")
    scale, unit = readable(df["equivalent_diameter"], stated) if stated else (1.0, "unit not stated")
    phase = table.attrs.get("phase", "particle")
    inner = df[~df["touches_border"]]
    border = df[df["touches_border"]]
    contacts = [c for c in df.columns if c.startswith("contact_")]
    elongation = "aspect_ratio" in df.columns  # (a table of an earlier bigseg has no axes)
    fig, axes = plt.subplots(1, 5 if elongation else 4, figsize=(20 if elongation else 16, 3.6),
                             constrained_layout=True)
    colour = phase_rgb(phase, 2, table.attrs.get("phases"))
    d_all = df["equivalent_diameter"].to_numpy() * scale
    bins = np.histogram_bin_edges(d_all, bins=min(30, max(5, len(d_all) // 5))) if len(d_all) else 10
    a = axes[0]
    a.hist([inner["equivalent_diameter"] * scale, border["equivalent_diameter"] * scale], bins=bins, stacked=True,
           color=[colour, "0.8"], edgecolor="black", label=["inside", "touching the border"])
    a.set_xlabel(f"equivalent diameter [{unit}]")
    a.set_ylabel("particles")
    a2 = a.twinx()
    if len(inner):
        order = np.argsort(inner["equivalent_diameter"].to_numpy())
        cum = np.cumsum(inner["volume"].to_numpy()[order])
        # in steps, rising at each particle: D10/D50/D90 by volume (measure.size_distribution) read off it
        a2.plot(inner["equivalent_diameter"].to_numpy()[order] * scale, cum / cum[-1], color="black",
                drawstyle="steps-post",
                marker="o" if len(inner) == 1 else None)  # one particle: a point (a line through it drew nothing)
    a2.set_ylabel("cumulative volume fraction (inside)")
    # room above the bars and the curve for the legend: the curve tops out at 1 wherever the largest
    # particle inside lies, under the legend if its axis ended at 1
    a2.set_ylim(0, 1.3)
    a2.set_yticks(np.linspace(0, 1, 6))
    a.set_ylim(0, a.get_ylim()[1] * 1.3)
    a.legend(loc="upper left", fontsize=8, ncols=2)
    a.set_title(f"{len(df)} {phase} particle{'' if len(df) == 1 else 's'}")
    s = inner["sphericity"].dropna()
    if len(s):
        axes[1].hist(s, bins=20, range=(min(0.3, s.min()), max(1.2, s.max())), color=colour, edgecolor="black")
    method = table.attrs.get("surface_area_method")
    axes[1].set_xlabel(f"sphericity (inside the volume{f'; {method} areas' if method else ''})")
    axes[1].set_ylabel("particles")
    axes[1].set_title("shape")
    if not len(s):  # every particle cut by the border or without a sphericity: say so, not an empty axis
        axes[1].text(0.5, 0.5, "no sphericity: every particle\ntouches the volume border\nor is too small",
                     ha="center", va="center", transform=axes[1].transAxes, color="0.3")
        axes[1].set(xlim=(0.3, 1.2), ylim=(0, 1))  # an empty axis, not an empty histogram's ±0.05 around 0
    pore = contact_column(contacts, "pore")  # ("contact_Pore"; not beside a "contact_pore")
    for c in contacts:
        other = c[len("contact_"):]
        col = "0.5" if other == "particle" else phase_rgb(other, 0, table.attrs.get("phases"))
        axes[2].hist(inner[c].dropna(), bins=20, range=(0, 1), histtype="step", linewidth=2, color=col,
                     label=other + (" (detachment)" if c == pore else ""))
    axes[2].set_xlabel("fraction of the particle surface in contact")
    axes[2].set_ylabel("particles")
    if inner.empty or not contacts:  # say why the panel is empty (was counts of 0 ... 0.072 in ticks)
        axes[2].text(0.5, 0.5, "no particle inside the volume" if inner.empty else "no contact measured",
                     ha="center", va="center", transform=axes[2].transAxes, color="0.3")
        axes[2].set(xlim=(0, 1), ylim=(0, 1))
    else:
        axes[2].set_ylim(0, axes[2].get_ylim()[1] * 1.35)  # room above the histograms for the legend
        axes[2].legend(fontsize=8, loc="upper center", ncols=2)
    axes[2].set_title("contacts")
    for ax in axes[:3]:  # particle counts are whole numbers
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _detachment_by_size(axes[3], df, scale, unit, colour, split)
    if elongation:
        _aspect_ratios(axes[4], inner["aspect_ratio"].dropna().to_numpy(np.float64), colour)
    return finish(fig, path, title=title, dpi=dpi)


def _aspect_ratios(ax: Any, ratios: np.ndarray, colour: tuple) -> None:
    """Histogram of the particles' aspect ratios (inside the volume), from 1 (a ball) up."""
    from matplotlib.ticker import MaxNLocator

    ratios = ratios[np.isfinite(ratios)]
    if len(ratios):
        ax.hist(ratios, bins=20, range=(1.0, max(3.0, float(ratios.max()))), color=colour, edgecolor="black")
    else:
        ax.text(0.5, 0.5, "no particle inside the volume", ha="center", va="center", transform=ax.transAxes,
                color="0.3")
        ax.set(xlim=(1, 3), ylim=(0, 1))
    ax.set_xlabel("aspect ratio, major / minor axis (inside)")
    ax.set_ylabel("particles")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("elongation")


def series_split(table: Any) -> float | None:
    """The diameter :func:`bigseg.measure.size_groups` splits a series' particles at (the median
    over every step: the groups stay the same over time), or ``None`` where it splits none (no
    series, no particle inside the volume)."""
    from ..measure import size_groups

    if "t" not in table or table["touches_border"].astype(bool).all():
        return None
    return float(size_groups(table).attrs["threshold"])


def _detachment_by_size(ax: Any, df: Any, scale: float, unit: str, colour: tuple, split: float | None = None) -> None:
    """Detachment against equivalent diameter (particles inside the volume; diameters times
    ``scale``, in ``unit``), small and big groups split at ``split`` (default the median diameter),
    each group's median and 10-90 % range."""
    from ..measure import size_groups

    inside = df[~df["touches_border"].astype(bool)]
    inner = inside.dropna(subset=["detachment"]) if "detachment" in inside else inside.iloc[:0]
    ax.set_xlabel(f"equivalent diameter [{unit}]")
    ax.set_ylabel("detachment (pore contact)")
    ax.set_title("detachment by size")
    if inner.empty:  # say why the panel is empty
        why = ("no particle inside the volume" if inside.empty
               else "no detachment: no pore phase\n(or no particle surface)")
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="0.3")
        ax.set_ylim(0, 1)
        return
    groups = size_groups(inner.drop(columns=["t"], errors="ignore"), threshold=split)
    thr = groups.attrs["threshold"]
    big = inner["equivalent_diameter"] >= thr
    d = inner["equivalent_diameter"] * scale
    thr *= scale
    ax.scatter(d[~big], inner["detachment"][~big], s=10, color="0.55", label="small")
    ax.scatter(d[big], inner["detachment"][big], s=10, color=colour, edgecolor="black",
               linewidths=0.3, label="big")
    ax.axvline(thr, color="black", lw=0.8, ls="--")
    said = False
    for _, row in groups.iterrows():
        if row["particles"]:
            x = 0.5 * (row["diameter_min"] + row["diameter_max"]) * scale
            ax.errorbar([x], [row["detachment_median"]], yerr=[[row["detachment_median"] - row["detachment_p10"]],
                                                                [row["detachment_p90"] - row["detachment_median"]]],
                        fmt="s", color="black", capsize=5, ms=6, label=None if said else "median, 10–90 %")
            said = True
    ax.set_ylim(-0.03, 1.03)  # a share: 0 and 1 are common, and their markers stay whole
    if d.nunique() == 1:  # particles of one size: an axis round it (was ~0.2 voxel, the point at its edge)
        ax.set_xlim(0.8 * float(d.iloc[0]), 1.2 * float(d.iloc[0]))
    ax.legend(fontsize=8, title=f"split at {thr:.4g} {unit}", title_fontsize=8)
