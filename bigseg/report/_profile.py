"""Curves of the volume fractions along one axis (the through-thickness profile)."""

from __future__ import annotations

import os
from typing import Any

from ._figure import figure_doc, finish, phase_marker, phase_rgb, pyplot
from ._units import time_at

__all__ = ["profile_figure"]


@figure_doc
def profile_figure(profile: Any, *, path: str | os.PathLike | None = None, title: str | None = None):
    """Volume fraction of each phase against the position along the profile's axis.

    ``profile`` is :func:`bigseg.measure.profile`'s (or :func:`bigseg.measure.radial_profile`'s)
    DataArray or a :func:`bigseg.measure.summary` Dataset holding ``volume_fraction_profile``. One
    panel with a curve per phase in the fixed phase colours (its whole-volume fraction dashed); for a
    series one panel per phase, a curve per time step (dark to light); dotted, the truth's
    profile when the Dataset holds one (``summary(..., truth=...)``); beside it, the interface
    area per volume of each phase pair when the Dataset holds ``specific_area_profile`` (one
    volume). :func:`bigseg.measure.interface_profile`'s DataArray alone: that panel (one volume,
    or one time step of a series).

    Parameters
    ----------
    profile : a DataArray or Dataset as above.
    {path}
    title : text above the panels (with a truth, "dotted: truth" follows it); default None.

    Returns
    -------
    matplotlib Figure (closed when ``path`` is given).
    """
    import numpy as np

    from ._units import readable

    if not hasattr(profile, "data_vars") and "phase_a" in getattr(profile, "dims", ()):
        return _areas_figure(profile, path=path, title=title)
    ref = profile.get("truth_volume_fraction_profile") if hasattr(profile, "data_vars") else None
    spec = profile.get("specific_area_profile") if hasattr(profile, "data_vars") else None
    da = profile["volume_fraction_profile"] if hasattr(profile, "data_vars") else profile
    axis = str(da.attrs.get("axis", da.dims[-1]))
    scale, unit = readable(da[axis].values, da[axis].attrs.get("units", da.attrs.get("unit", "")))
    pos = da[axis].values * scale
    phases = [str(p) for p in da.phase.values]
    colours = [phase_rgb(p, i) for i, p in enumerate(phases)]
    if "axis_label" in da.attrs:  # e.g. the radial profile: distance from the axis
        xlabel = f"{da.attrs['axis_label']} [{unit}]"
    else:
        step = int(da.attrs.get("step", 1))
        xlabel = f"{axis} [{unit}]" + (f" (bins of {step} slices)" if step > 1 else "")
    plt = pyplot(path)
    if "t" not in da.dims:
        if spec is None:
            fig, ax = plt.subplots(figsize=(7, 3.8), constrained_layout=True)
        else:
            fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 3.8), constrained_layout=True)
            _areas_panel(ax2, spec, phases, colours, xlabel, scale)
        w = da["bin_voxels"].values if "bin_voxels" in da.coords else np.ones(len(pos))
        for i, (ph, c) in enumerate(zip(phases, colours)):
            y = da.values[i]
            ax.plot(pos, y, color=c, lw=1.6, label=ph, marker=phase_marker(ph, i), ms=4,
                    markevery=max(1, len(pos) // 10))  # ~10 markers: told apart without colour too
            ok = np.isfinite(y) & (w > 0)
            if ok.any():
                ax.axhline(np.average(y[ok], weights=w[ok]), color=c, lw=0.9, ls="--")
            if ref is not None:
                ax.plot(pos, ref.values[i], color=c, lw=1.1, ls=":")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("volume fraction")
        ax.set_ylim(0, 1)
        ax.legend(frameon=False, ncols=len(phases))
        ax.set_title(f"volume fractions {'by ' + da.attrs['axis_label'] if 'axis_label' in da.attrs else 'along ' + axis}"
                     " (dashed: whole volume"
                     + ("; dotted: truth)" if ref is not None else ")"))
    else:
        times = da.t.values
        shades = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(times)))
        fig, axes = plt.subplots(1, len(phases), figsize=(3.4 * len(phases), 3.6), constrained_layout=True,
                                 sharex=True, squeeze=False)
        for i, (ph, ax) in enumerate(zip(phases, axes[0])):
            for j in range(len(times)):
                ax.plot(pos, da.values[j, i], color=shades[j], lw=1.3, label=f"t = {time_at(da.t, j)}",
                        marker="o" if len(pos) == 1 else None)  # one bin: a point, no line
                if ref is not None:
                    ax.plot(pos, ref.values[j, i], color=shades[j], lw=0.9, ls=":")
            ax.set_title(ph, color=colours[i])
            ax.set_xlabel(xlabel)
        axes[0][0].set_ylabel("volume fraction")
        axes[0][-1].legend(frameon=False, fontsize="small")
        if ref is not None:  # said under the title (the figure's one suptitle)
            title = f"{title}\ndotted: truth" if title else "dotted: truth"
    return finish(fig, path, title=title, dpi=120)


def _areas_figure(spec: Any, *, path: Any, title: str | None):
    """The interface-profile panel alone (:func:`bigseg.measure.interface_profile`)."""
    from ..errors import InputError
    from ._units import readable

    if "t" in spec.dims:
        raise InputError(f"Expected one volume's interface profile. Got a series of {spec.sizes['t']} steps: draw one, "
                         "e.g. profile.isel(t=-1).")
    axis = str(spec.attrs.get("axis", spec.dims[-1]))
    scale, unit = readable(spec[axis].values, spec[axis].attrs.get("units", spec.attrs.get("unit", "")))
    phases = [str(p) for p in spec.phase_a.values]
    colours = [phase_rgb(p, i) for i, p in enumerate(phases)]
    step = int(spec.attrs.get("step", 1))
    xlabel = f"{axis} [{unit}]" + (f" (bins of {step} slices)" if step > 1 else "")
    fig, ax = pyplot(path).subplots(figsize=(7, 3.8), constrained_layout=True)
    _areas_panel(ax, spec, phases, colours, xlabel, scale)
    return finish(fig, path, title=title, dpi=120)


def _areas_panel(ax, spec, phases: list[str], colours: list, xlabel: str, scale: float) -> None:
    """Interface area per volume of each phase pair along the axis (positions times ``scale``,
    the unit of ``xlabel``): the first phase's colour, a line style per pair."""
    import itertools

    from ._units import readable

    axis = str(spec.attrs.get("axis", spec.dims[-1]))
    pos = spec[axis].values * scale
    factor, unit = readable(spec.values, spec.attrs.get("units", ""))
    styles = ["-", "--", "-.", ":"]
    for n, (i, j) in enumerate(itertools.combinations(range(len(phases)), 2)):
        ax.plot(pos, spec.values[i, j] * factor, color=colours[i], ls=styles[n % len(styles)], lw=1.5,
                marker="o" if len(pos) == 1 else None, label=f"{phases[i]}-{phases[j]}")  # one bin: a point, no line
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"interface area per volume [{unit}]")
    ax.set_ylim(0, None)
    ax.legend(frameon=False, fontsize="small")
    ax.set_title(f"interfaces along {axis} ({spec.attrs.get('method', 'faces')})")
