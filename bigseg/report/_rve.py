"""How the phase fractions of sub-cubes scatter with their size (representative volume element)."""

from __future__ import annotations

import os
from typing import Any

from ._figure import figure_doc, finish, phase_marker, phase_rgb, pyplot
from ._units import along_z

__all__ = ["rve_figure"]


@figure_doc
def rve_figure(ds: Any, *, path: str | os.PathLike | None = None, title: str | None = None):
    """Relative scatter (std / mean) of each phase's fraction over sub-cubes against the cube
    edge (:func:`bigseg.measure.rve`), log-log in the fixed phase colours, with the tolerance
    (dashed) and each phase's representative size marked.

    Parameters
    ----------
    ds : the Dataset of :func:`bigseg.measure.rve`.
    {path}
    title : text above the panel; default None: none.

    Returns
    -------
    matplotlib Figure (closed when ``path`` is given).
    """
    import numpy as np

    from ._units import readable

    plt = pyplot(path)
    fig, ax = plt.subplots(figsize=(7.5, 4), constrained_layout=True)
    scale, unit = readable(ds["size_physical"].values, ds["size_physical"].attrs.get("units", ""))
    x = ds["size_physical"].values * scale
    tol = float(ds.attrs.get("tolerance", 0.05))
    rel = ds.relative_std.values
    # no scatter at all (every cube alike, or a phase filling every cube) has no place on a log
    # axis: such points are drawn on a floor a decade below the smallest scatter (or tolerance)
    # and said in the legend, where they vanished and took the curve's circle with them
    positive = rel[np.isfinite(rel) & (rel > 0)]
    floor = min(float(positive.min()) if positive.size else tol, tol) / 10
    for i, ph in enumerate(str(p) for p in ds.phase.values):
        colour = phase_rgb(ph, i)
        curve = np.where(rel[:, i] == 0, floor, rel[:, i])
        absent = not np.isfinite(curve).any()  # no voxel of it in any cube: std / mean is 0 / 0
        ax.loglog(x, curve, marker=phase_marker(ph, i), color=colour, label=f"{ph} (absent)" if absent else ph)
        r = float(ds.rve_size.values[i])
        if np.isfinite(r):
            j = int(np.flatnonzero(ds["size"].values == r)[0])
            ax.plot([x[j]], [curve[j]], marker="o", ms=11, mfc="none", color=colour)
    if (rel == 0).any():
        ax.axhline(floor, color="grey", ls=":", lw=1, label="no scatter (0): drawn here")
    ax.axhline(tol, color="black", ls="--", lw=1, label=f"tolerance {tol:g}")
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel(f"cube edge{along_z(ds.attrs.get('voxel_size'))} [{unit}]")
    ax.set_ylabel("std / mean of the fraction over cubes")
    none = not np.isfinite(ds.rve_size.values).any()  # nothing circled: say so, and what it means
    ax.set_title("representative volume element\n" + ("(no phase within the tolerance: the volume is smaller than its RVE)"
                                                      if none else "(circled: the first size within the tolerance)"),
                 fontsize="medium")
    ax.legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))  # beside: no curve under it
    return finish(fig, path, title=title, dpi=120)
