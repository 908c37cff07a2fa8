"""Bar charts of a metrics Dataset: volume fractions and interfaces."""

from __future__ import annotations

import itertools
import os
from typing import Any

from ._figure import figure_doc, finish, phase_rgb, pyplot
from ._units import at_last_step

__all__ = ["metrics_figure"]


@figure_doc
def metrics_figure(ds: Any, *, path: str | os.PathLike | None = None, title: str | None = None):
    """Volume fractions (each bar's value written on it) and phase-pair interface areas (and % of
    voxels on each interface) of a :func:`bigseg.measure.summary` Dataset, in the fixed phase
    colours, and the IoU of each phase against the reference when the summary was given one;
    the last time step of a series.

    Parameters
    ----------
    ds : a :func:`bigseg.measure.summary` Dataset (``volume_fraction``, ``area``,
        ``voxel_fraction``; ``iou`` when scored), e.g. a run's ``metrics.nc``
        (:func:`read_metrics`).
    {path}
    title : text above the panels; default None: none.

    Returns
    -------
    matplotlib Figure (closed when ``path`` is given).
    """
    import numpy as np

    from ._units import readable

    phases = [str(p) for p in ds.phase.values]
    colours = [phase_rgb(p, i) for i, p in enumerate(phases)]
    d = ds.isel(t=-1) if "t" in ds.dims else ds
    pairs = list(itertools.combinations(range(len(phases)), 2))
    scored = "iou" in d
    # long phase names ("binder+carbon", "Poren-Raum graphite") ran into each other under the bars:
    # slanted, on a taller figure (the panels keep their height)
    slanted = sum(len(p) for p in phases) > 28 or max((len(p) for p in phases), default=0) > 12
    fig, axes = pyplot(path).subplots(1, 3 if scored else 2, figsize=(13 if scored else 9, 4.8 if slanted else 3.6),
                                      constrained_layout=True, gridspec_kw={"width_ratios": [1, 1.3, 0.8][:3 if scored else 2]})
    a1, a2 = axes[:2]
    fractions = d.volume_fraction.values
    bars = a1.bar(phases, fractions, color=colours, edgecolor="black")
    a1.bar_label(bars, [f"{v:.3f}" if v > 0 else "0 (absent)" for v in fractions], fontsize=8, padding=2)
    a1.set_ylim(0, max(1e-9, float(np.nanmax(fractions, initial=0))) * 1.18)  # room for the numbers
    a1.set_ylabel("volume fraction")
    a1.set_title("volume fractions" + at_last_step(ds))
    if slanted:
        _slant(a1)
    if scored:  # against the reference the run was given: the numbers a segmentation is judged by
        a3 = axes[2]
        iou = d.iou.values
        bars = a3.bar(phases, np.nan_to_num(iou), color=colours, edgecolor="black")
        a3.bar_label(bars, [f"{v:.3f}" if np.isfinite(v) else "none" for v in iou], fontsize=8, padding=2)
        a3.set_ylim(0, 1.12)
        a3.set_yticks(np.linspace(0, 1, 6))
        a3.set_ylabel("IoU against the reference")
        a3.set_title("scores" + at_last_step(ds))
        if slanted:
            _slant(a3)
    x = np.arange(len(pairs))
    areas = np.array([d.area.values[i, j] for i, j in pairs])
    factor, unit = readable(areas, ds.area.attrs.get("units", ""))
    a2.bar(x - 0.2, areas * factor, width=0.4, color=[colours[i] for i, _ in pairs],
           edgecolor=[colours[j] for _, j in pairs], linewidth=3)
    a2.set_xticks(x, [f"{phases[i]}-{phases[j]}" for i, j in pairs], rotation=35 if slanted else 20,
                  ha="right" if slanted else "center", rotation_mode="anchor" if slanted else "default")
    a2.set_ylabel(f"area [{unit}]")
    a2.set_ylim(bottom=0)  # no interface at all (one phase): no negative areas on the axis
    a2.set_title(f"interface areas ({ds.attrs.get('method', '')})" + at_last_step(ds))  # each panel: which step
    ax3 = a2.twinx()
    ax3.bar(x + 0.2, [100 * d.voxel_fraction.values[i, j] for i, j in pairs], width=0.4, color="0.7",
            edgecolor="black")
    ax3.set_ylabel("% of voxels on the interface (grey)")
    ax3.set_ylim(bottom=0)
    return finish(fig, path, title=title, dpi=120)


def _slant(ax) -> None:
    """``ax``'s phase names under the bars slanted, each ending at its bar (long names ran together)."""
    for label in ax.get_xticklabels():
        label.set(rotation=25, horizontalalignment="right", rotation_mode="anchor")
