"""How the phase fractions of sub-cubes scatter with their size (representative volume element)."""

from __future__ import annotations

import os
from typing import Any

from ._figure import finish, pyplot
from ._units import along_z

__all__ = ["rve_figure"]


def rve_figure(ds: Any, *, path: str | os.PathLike | None = None, title: str | None = None):
    """Relative scatter (std / mean) of each phase's fraction over sub-cubes against the cube
    edge (:func:`bigseg.measure.rve`), log-log in the fixed phase colours, with the tolerance
    (dashed) and each phase's representative size marked. Returns the Figure (closed when
    ``path`` is given)."""
    import numpy as np

    from ..io import phase_colour
    from ._units import readable

    plt = pyplot(path)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    scale, unit = readable(ds["size_physical"].values, ds["size_physical"].attrs.get("units", ""))
    x = ds["size_physical"].values * scale
    for i, ph in enumerate(str(p) for p in ds.phase.values):
        colour = tuple(c / 255 for c in phase_colour(ph, i)[:3])
        ax.loglog(x, ds.relative_std.values[:, i], marker="o", color=colour, label=ph)
        r = float(ds.rve_size.values[i])
        if np.isfinite(r):
            j = int(np.flatnonzero(ds["size"].values == r)[0])
            ax.plot([x[j]], [ds.relative_std.values[j, i]], marker="o", ms=11, mfc="none", color=colour)
    tol = float(ds.attrs.get("tolerance", 0.05))
    ax.axhline(tol, color="black", ls="--", lw=1, label=f"tolerance {tol:g}")
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel(f"cube edge{along_z(ds.attrs.get('voxel_size'))} [{unit}]")
    ax.set_ylabel("std / mean of the fraction over cubes")
    ax.set_title("representative volume element\n(circled: the first size within the tolerance)", fontsize="medium")
    ax.legend(frameon=False, fontsize="small")
    return finish(fig, path, title=title, dpi=120)
