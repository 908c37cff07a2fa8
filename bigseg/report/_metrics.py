"""Bar charts of a metrics Dataset: volume fractions and interfaces."""

from __future__ import annotations

import itertools
import os
from typing import Any

from ._figure import finish, phase_rgb, pyplot
from ._units import time_at

__all__ = ["metrics_figure"]


def metrics_figure(ds: Any, *, path: str | os.PathLike | None = None):
    """Volume fractions and phase-pair interface areas (and % of voxels on each interface) of a
    :func:`bigseg.measure.summary` Dataset, in the fixed phase colours; the last time step of a
    series. Returns the Figure (closed when ``path`` is given)."""
    import numpy as np

    from ._units import readable

    phases = [str(p) for p in ds.phase.values]
    colours = [phase_rgb(p, i) for i, p in enumerate(phases)]
    d = ds.isel(t=-1) if "t" in ds.dims else ds
    pairs = list(itertools.combinations(range(len(phases)), 2))
    fig, (a1, a2) = pyplot(path).subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    a1.bar(phases, d.volume_fraction.values, color=colours, edgecolor="black")
    a1.set_ylabel("volume fraction")
    a1.set_title("volume fractions" + (f" (t = {time_at(ds.t)})" if "t" in ds.dims else ""))
    x = np.arange(len(pairs))
    areas = np.array([d.area.values[i, j] for i, j in pairs])
    factor, unit = readable(areas, ds.area.attrs.get("units", ""))
    a2.bar(x - 0.2, areas * factor, width=0.4, color=[colours[i] for i, _ in pairs],
           edgecolor=[colours[j] for _, j in pairs], linewidth=3)
    a2.set_xticks(x, [f"{phases[i]}-{phases[j]}" for i, j in pairs], rotation=20)
    a2.set_ylabel(f"area [{unit}]")
    a2.set_title(f"interface areas ({ds.attrs.get('method', '')})")
    ax3 = a2.twinx()
    ax3.bar(x + 0.2, [100 * d.voxel_fraction.values[i, j] for i, j in pairs], width=0.4, color="0.7",
            edgecolor="black")
    ax3.set_ylabel("% of voxels on the interface (grey)")
    return finish(fig, path, dpi=120)
