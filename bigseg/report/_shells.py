"""Curves of a phase's fraction with distance from another (the shells of the 3D U-Net study)."""

from __future__ import annotations

import os
from typing import Any

from ._figure import figure_doc, finish, phase_rgb, pyplot
from ._units import time_at

__all__ = ["shells_figure"]


@figure_doc
def shells_figure(shells: Any, *, overall: Any = None, path: str | os.PathLike | None = None,
                  title: str | None = None):
    """The fraction of the ``of`` phase in each shell against its distance from ``around``
    (:func:`bigseg.measure.shells`), in the ``of`` phase's colour; a series draws a curve per
    time step (dark to light).

    Parameters
    ----------
    shells : the DataArray of :func:`bigseg.measure.shells`.
    overall : the phase's fraction in the whole volume (a number, or the ``volume_fraction``
        (phase) DataArray of :func:`bigseg.measure.summary`, from which the ``of`` phases are
        summed; not for a series), drawn dashed (what the curve tends to far from ``around``);
        default None: not drawn.
    {path}
    title : text above the panel; default None: none.

    Returns
    -------
    matplotlib Figure (closed when ``path`` is given).
    """
    import numpy as np

    from ._units import readable

    scale, unit = readable(shells.distance.values, shells.attrs.get("distance_units", ""))
    # the label image's phase names, for a phase without a fixed colour: the shells' own, else the
    # ``overall`` fractions' (summary's volume_fraction holds every phase)
    phases = shells.attrs.get("phases") or (list(overall.phase.values) if hasattr(overall, "dims") else None)
    of_names, around_names = (_names(shells.attrs.get(f"{key}_phases", shells.attrs.get(key)), phases)
                              for key in ("of", "around"))
    of, around = "+".join(of_names) or "phase", "+".join(around_names) or "phase"
    colour = phase_rgb(of, 1, phases)
    plt = pyplot(path)
    fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
    x = shells.distance.values * scale
    if "t" in shells.dims:
        shades = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, shells.sizes["t"]))
        for j in range(shells.sizes["t"]):
            ax.plot(x, shells.values[j], marker="o", ms=3, color=shades[j], label=f"t = {time_at(shells.t, j)}")
    else:
        ax.plot(x, shells.values, marker="o", ms=4, color=colour, label="in the shell")
    if hasattr(overall, "dims"):  # the volume's fractions: the ``of`` phases' share (one volume only)
        overall = None if "t" in overall.dims else overall.sel(phase=of_names).sum()
    if overall is not None:
        ax.axhline(float(overall), color=colour, ls="--", lw=1, label=f"{of} in the whole volume")
    ax.legend(frameon=False, fontsize="small")
    ax.set_xlabel(f"distance from {around} [{unit}] (shell's outer radius)")
    ax.set_ylabel(f"fraction of {of}")
    ax.set_ylim(0, None)
    if not np.isfinite(shells.values).any() and len(x):  # no shell holds a voxel: say so, not an empty axis round 0
        ax.text(0.5, 0.5, f"no voxel within {x[-1]:g} {unit} of {around}\n(the volume has no {around}, or nothing else)",
                ha="center", va="center", transform=ax.transAxes, color="0.3")
        ax.set(xlim=(0, x[-1] * 1.05), ylim=(0, 1))
    ax.set_title(f"{of} around {around}")
    return finish(fig, path, title=title, dpi=120)


def _names(value: Any, phases: Any = None) -> list[str]:
    """The phases an ``of_phases`` / ``around_phases`` attribute names (a JSON list, as
    :func:`bigseg.measure.shells` writes it), or of an ``around`` / ``of`` text of shells stored
    before those were (``"cbd+active"``), or a list of names. In a text, a phase whose own name
    holds a ``+`` (``"binder+carbon"``) is one name where ``phases`` (the label image's) has it."""
    if value is None:
        return []
    from ..measure._metrics import phases_of_attr

    if isinstance(value, str) and value.startswith("["):
        listed = phases_of_attr(value)
        if listed is not None:
            return listed
    if not isinstance(value, str):
        return [str(v) for v in value]
    parts = value.split("+")
    known = set(phases_of_attr(phases) or []) if phases is not None else set()
    out: list[str] = []
    i = 0
    while i < len(parts):  # the longest run of parts that names a phase, else one part
        j = next((j for j in range(len(parts), i + 1, -1) if "+".join(parts[i:j]) in known), i + 1)
        if "+".join(parts[i:j]):
            out.append("+".join(parts[i:j]))
        i = j
    return out
