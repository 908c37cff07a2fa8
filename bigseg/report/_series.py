"""Curves over time of an operando series: fractions, interfaces, scores and particles."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..io._volume import is_step_index, phase_named
from ._figure import figure_doc, finish, phase_marker, phase_rgb, pyplot
from ._units import readable

__all__ = ["series_figure"]


def _whole_tracks(particles: Any):
    """Rows of the tracks present, inside the volume, at every step (None when there are none)."""
    if particles is None or "track" not in particles or "detachment" not in particles or not len(particles):
        return None
    steps = particles["t"].nunique()
    inside = particles[~particles["touches_border"].astype(bool)]
    n = inside.groupby("track")["t"].nunique()
    keep = n.index[n == steps]
    return inside[inside["track"].isin(keep)] if len(keep) and steps > 1 else None


def _legend_above(ax: Any, *, ncols: int = 3, fontsize: float = 8, room: float = 0.35, axes: tuple = ()) -> None:
    """One legend (over ``ax`` and the twin ``axes``) at the top, in ``room`` (a share of the
    y range) added above the curves of each, so that it covers none of their points."""
    handles, labels = [], []
    for a in (ax, *axes):
        lo, hi = a.get_ylim()
        a.set_ylim(lo, hi + room * (hi - lo))
        h, lab = a.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    (axes[-1] if axes else ax).legend(handles, labels, fontsize=fontsize, ncols=ncols, loc="upper center")


def _particle_phase(ev: Any, phases: list[str]) -> str | None:
    """The particles' phase of an evolution table ``ev`` (the phase its medians of particle size
    are of): the one of ``phases`` that they have no contact with, as it has a
    ``median_contact_<phase>`` of every other phase but the pore (whose is
    ``median_detachment``); None where that leaves not one (particles of the pore)."""
    pore = phase_named(phases, "pore")
    left = [p for p in phases if p != pore and f"median_contact_{p}" not in ev]
    return left[0] if len(left) == 1 else None


@figure_doc
def series_figure(metrics: Any, particles: Any = None, *, transitions: Any = None,
                  path: str | os.PathLike | None = None, title: str | None = None, dpi: int = 110):
    """Curves over ``t`` of :func:`bigseg.measure.evolution` (``metrics`` from
    :func:`bigseg.measure.summary` of a series, optional ``particles`` table): volume fractions,
    specific interface areas, per-phase IoU (with a reference) and, with particles, their count
    and median size (inside the volume), median contact fractions (detachment = pore contact)
    and median sphericity and aspect ratio, the detachment of every particle tracked inside the
    volume through all steps (``track``), each phase's percolating share (with
    :func:`bigseg.measure.connectivity` in the metrics) and, with ``transitions``
    (:func:`bigseg.measure.transitions`), the volume that changed from one phase to another since
    the step before (a pair's line in the first phase's colour, its markers in the second's and
    dashed by the second), in the fixed phase colours.

    ``metrics`` may also be the table of :func:`bigseg.measure.evolution` itself (e.g. a run's
    ``evolution.csv`` read back by :func:`bigseg.measure.read_table`), drawn as it is: then
    without ``particles`` or ``transitions`` (the table has their columns; the tracks' panel needs
    the particles themselves).

    Parameters
    ----------
    metrics : a :func:`bigseg.measure.summary` Dataset of a series (over ``t``), or the table of
        :func:`bigseg.measure.evolution`.
    particles : the :func:`bigseg.measure.particles` table of the series; default None.
    transitions : the DataArray of :func:`bigseg.measure.transitions`; default None.
    {path}
    title : text above the panels; default None: none.
    dpi : resolution of the written file, dots per inch (default 110).

    Returns
    -------
    matplotlib Figure (closed when ``path`` is given).
    """
    import pandas as pd

    from ..errors import InputError
    from ..measure import evolution

    if isinstance(metrics, pd.DataFrame):  # an evolution table (its columns say what it holds)
        if particles is not None or transitions is not None:
            raise InputError("Expected `particles` and `transitions` to be None with `metrics` an evolution table "
                             "(its columns hold theirs). Got "
                             f"{'particles' if particles is not None else 'transitions'} instead: pass the summary's "
                             "Dataset to draw them from the measurements.")
        if not any(str(c).startswith("fraction_") for c in metrics.columns):
            raise InputError("Expected `metrics` to be the Dataset of bigseg.measure.summary or the table of "
                             "bigseg.measure.evolution (fraction_<phase> columns). Got a table with columns "
                             f"{list(metrics.columns)} instead.")
        ev = metrics.set_index("t") if "t" in metrics.columns else metrics.copy(deep=False)  # (its attrs its own)
        ev.attrs = {"unit": "voxel", **metrics.attrs}
    else:
        ev = evolution(metrics, particles, transitions)
    plt = pyplot(path)
    from matplotlib.ticker import MaxNLocator

    unit = ev.attrs["unit"]
    t = ev.index.to_numpy()
    phases = [c[len("fraction_"):] for c in ev.columns if c.startswith("fraction_")]
    colour = {p: phase_rgb(p, i) for i, p in enumerate(phases)}
    marker = {p: phase_marker(p, i) for i, p in enumerate(phases)}  # told apart without colour too
    pore = phase_named(phases, "pore")  # ("Pore": detachment is its contact)
    full = _whole_tracks(particles)
    changes = [(a, b) for a in phases for b in phases if a != b and f"{a}_to_{b}" in ev]
    dashes = {p: ("-", "--", ":", "-.")[i % 4] for i, p in enumerate(phases)}  # a pair's second phase, as its markers
    panels = (["fractions", "areas"] + (["changes"] if changes else []) + (["iou"] if f"iou_{phases[0]}" in ev else [])
              + (["percolating"] if f"percolating_{phases[0]}" in ev else [])
              + (["particles", "contacts"] if "particles" in ev else [])
              + (["shape"] if {"median_sphericity", "median_aspect_ratio"} & set(ev.columns) else [])
              + (["tracks"] if full is not None else []))
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), constrained_layout=True, squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    style = dict(marker="o", markersize=3)
    steps = is_step_index(t, ev.attrs.get("time_unit", ""))  # no times given: the scans' order
    for ax, panel in zip(axes.ravel(), panels):
        ax.set_xlabel("scan (time step)" if steps else f"t [{ev.attrs['time_unit']}]" if "time_unit" in ev.attrs
                      else "t (the times given for the scans)")
        if steps:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if panel in ("fractions", "iou", "percolating"):  # one curve per phase
            axis = ev.attrs.get("connectivity_axis", "an axis")
            prefix, ylabel, name = {"fractions": ("fraction_", "volume fraction", "phases"),
                                    "iou": ("iou_", "IoU against the reference", "scores"),
                                    "percolating": ("percolating_", f"share spanning the volume along {axis}",
                                                    "connectivity")}[panel]
            for p in phases:
                ax.plot(t, ev[prefix + p], color=colour[p], label=p, **{**style, "marker": marker[p]})
            ax.set_ylabel(ylabel)
            ax.set_title(name)
            _legend_above(ax)
            if panel != "fractions":  # a share or a score: no tick above 1 in the legend's room
                ax.set_yticks([v for v in ax.get_yticks() if -1e-9 <= v <= 1 + 1e-9])
        elif panel == "areas":
            cols = [c for c in ev.columns if c.startswith("specific_area_")]
            scale, shown = readable(ev[cols].to_numpy(), f"1/{unit}")
            for i, a in enumerate(phases):
                for b in phases[i + 1:]:
                    if f"specific_area_{a}_{b}" in ev:
                        ax.plot(t, ev[f"specific_area_{a}_{b}"] * scale, color=colour[a], markerfacecolor=colour[b],
                                markeredgecolor=colour[b], linestyle=dashes[b], label=f"{a}-{b}", **style)
            ax.set_ylabel(f"interface area per volume [{shown}]")
            ax.set_title(f"interfaces ({ev.attrs['area_method']})" if "area_method" in ev.attrs else "interfaces")
            _legend_above(ax)
        elif panel == "particles":
            ax.plot(t, ev["particles"], color="0.6", label="all", **style)
            ax.plot(t, ev["particles_inside"], color="black", label="inside", **style)
            ax.set_ylabel("particles")
            ax.set_ylim(0, max(1.0, float(np.nanmax(ev["particles"].to_numpy(float)))))
            ax2 = ax.twinx()
            scale, shown = readable(ev["median_equivalent_diameter"].to_numpy(), unit)
            ax2.plot(t, ev["median_equivalent_diameter"] * scale, color=colour.get(_particle_phase(ev, phases), "C1"),
                     linestyle="--", label="median diameter", **style)
            ax2.set_ylabel(f"median equivalent diameter [{shown}] (dashed)")
            _legend_above(ax, axes=(ax2,))
            ax.set_title("particles")
        elif panel == "changes":
            for a, b in changes:
                ax.plot(t, ev[f"{a}_to_{b}"], color=colour.get(a, "0.3"), markerfacecolor=colour.get(b, "0.3"),
                        markeredgecolor=colour.get(b, "0.3"), linestyle=dashes[b], label=f"{a} → {b}", **style)
            ax.set_ylabel("volume fraction changed\nsince the step before")  # two lines: within its axes, under the title
            ax.set_title("phase changes")
            ax.set_ylim(0, ax.get_ylim()[1])
            _legend_above(ax, fontsize=7, room=0.6)  # two rows
        elif panel == "shape":  # (was in evolution.csv only: swelling rounds, cracking elongates)
            col = colour.get(_particle_phase(ev, phases), "C1")
            for c, label, line in (("median_sphericity", "sphericity", "-"),
                                   ("median_aspect_ratio", "aspect ratio (major / minor)", "--")):
                if c in ev:
                    ax.plot(t, ev[c], color=col, linestyle=line, label=label,
                            **{**style, "marker": "o" if line == "-" else "s"})
            ax.set_ylabel("median over the particles inside")
            ax.set_title("particle shape")
            _legend_above(ax, ncols=2)
        elif panel == "tracks":
            wide = full.pivot(index="t", columns="track", values="detachment")
            ax.plot(wide.index, wide.to_numpy(), color=colour.get(pore, "black"), alpha=0.25, linewidth=0.8)
            ax.plot(wide.index, wide.median(axis=1), color="black", linewidth=2.5, label="median", **style)
            ax.set_ylabel("detachment (pore contact)")
            ax.set_ylim(0, 1)
            ax.set_title(f"{wide.shape[1]} particle{'' if wide.shape[1] == 1 else 's'} tracked through every step")
            _legend_above(ax)
            ax.set_yticks(np.linspace(0, 1, 6))
        else:
            # the pore's share (detachment), then every other phase's by its name ("CBD", "binder"), then particles'
            curves = [("median_detachment", colour.get(pore, "black"), f"{pore or 'pore'} (detachment)", pore or "pore")]
            curves += [(f"median_contact_{p}", colour[p], p, p) for p in phases if p != pore]
            for c, col, label, other in [*curves, ("median_contact_particle", "0.5", "particle", "particle")]:
                if c in ev:
                    ax.plot(t, ev[c], color=col, label=label,
                            **{**style, "marker": marker.get(other, phase_marker(other))})
            ax.set_ylabel("median fraction of the surface in contact")
            ax.set_ylim(0, 1)
            ax.set_title("particle contacts")
            _legend_above(ax)
            ax.set_yticks(np.linspace(0, 1, 6))  # a share: no ticks in the legend's room above 1
    if len(t):  # every panel over all the steps (a panel of changes has none at the first); one step:
        # an axis a step wide each side of it (was -0.045 ... 0.045 in ticks running into each other)
        pad = 0.05 * float(t.max() - t.min()) if len(t) > 1 else 1.0
        for ax in axes.ravel()[: len(panels)]:
            ax.set_xlim(float(t.min()) - pad, float(t.max()) + pad)
    return finish(fig, path, title=title, dpi=dpi)
