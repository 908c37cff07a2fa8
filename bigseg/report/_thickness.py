"""Local thickness distributions: the pore size distribution and its kin, per phase."""

from __future__ import annotations

import os
from typing import Any

from ._figure import figure_doc, finish, phase_marker, phase_rgb, pyplot
from ._units import at_last_step

__all__ = ["thickness_figure"]


@figure_doc
def thickness_figure(ds: Any, *, path: str | os.PathLike | None = None, title: str | None = None):
    """The share of each phase's voxels at each local thickness (:func:`bigseg.measure.thickness`;
    for a series its last time step) and the cumulative share, in the phase colours, each
    phase's median marked.

    Parameters
    ----------
    ds : the Dataset of :func:`bigseg.measure.thickness`.
    {path}
    title : text above the panels; default None: "local thickness" (and the step shown).

    Returns
    -------
    matplotlib Figure (closed when ``path`` is given).
    """
    import numpy as np

    from ._units import readable

    d = ds.isel(t=-1) if "t" in ds.dims else ds
    scale, unit = readable(d.diameter.values, d.diameter.attrs.get("units", ""))
    x = d.diameter.values * scale
    plt = pyplot(path)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    # each diameter's bar centred on it, the first and last as wide as the others (a step "mid" halves them)
    half = np.diff(x) / 2 if len(x) > 1 else np.array([0.5])
    edges = np.concatenate([[x[0] - half[0]], x[:-1] + half, [x[-1] + half[-1]]])
    for i, p in enumerate(str(v) for v in d.phase.values):
        colour = phase_rgb(p, i, ds.attrs.get("phases"))
        absent = not np.nansum(d.share.values[i]) > 0  # no voxel of the phase: no distribution to draw
        a.stairs(np.nan_to_num(d.share.values[i]), edges, color=colour, lw=1.8, label=f"{p} (absent)" if absent else p)
        b.plot(x, d.cumulative_share.values[i], color=colour, lw=1.8, label=p, ms=4,
               marker=phase_marker(p, i, ds.attrs.get("phases")), markevery=max(1, len(x) // 10))
        med = float(d.d50.values[i]) * scale
        if med == med:
            b.axvline(med, color=colour, ls=":", lw=1)

    seen = np.flatnonzero(np.nan_to_num(d.share.values).max(axis=0) > 0)  # up to the thickest voxel drawn
    if seen.size:
        for ax in (a, b):
            ax.set_xlim(0, edges[min(seen[-1] + 1, len(x))])
    a.set_xlabel(f"local thickness [{unit}]")
    a.set_ylabel("share of the phase's voxels")
    a.set_title("distribution (volume-weighted)")
    a.set_ylim(0, None)
    a.legend(frameon=False, fontsize="small")
    b.set_xlabel(f"local thickness [{unit}]")
    b.set_ylabel("share at most this thick")
    b.set_ylim(0, 1.02)
    b.set_title("cumulative (dotted: medians)")
    b.legend(frameon=False, fontsize="small", loc="lower right")  # its markers, told apart without colour
    last = at_last_step(ds)
    return finish(fig, path, title=title or f"local thickness{last}", dpi=120)
