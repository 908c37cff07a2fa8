"""How the measurements of an operando series change over time: one row per time step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InputError
from ..io._volume import as_volume, time_unit
from ._groups import contact_columns, with_border_flags
from ._metrics import named_time, phase_coord

__all__ = ["evolution", "transitions"]

#: particle columns summarised per time step (medians over the particles inside the volume)
PARTICLE_MEDIANS = ("equivalent_diameter", "sphericity", "aspect_ratio", "detachment")


def _column_units(table: pd.DataFrame, unit: str, t_unit: str) -> dict[str, str]:
    """The unit of each column of :func:`evolution`'s table (``"1"``: a share, ``""``: a count or
    a yes/no), its index ``t`` among them (the times' unit, ``""`` for steps)."""
    def of(col: str) -> str:
        if col.startswith("specific_area_"):
            return f"{unit}^-1"
        if col == "median_equivalent_diameter":
            return unit
        if col.startswith("particles"):
            return ""
        return "1"  # fractions, coverages, IoU, percolating shares, transitions, sphericity, aspect ratio, contacts

    return {"t": t_unit, **{str(c): of(str(c)) for c in table.columns}}


def transitions(labels: Any, *, phases: Any = None, progress: bool = False) -> xr.DataArray:
    """Voxels that change phase from each scan of a (t, z, y, x) series to the next, e.g. CBD
    that became pore (detachment) or pore that became active material (swelling).

    Parameters
    ----------
    labels : (t, z, y, x) integer label series of at least 2 aligned scans; 255: unlabelled.
    phases : phase names by label value, default ``labels.attrs["phases"]`` or
        ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    DataArray ``transitions`` (t, from_phase, to_phase): the fraction of the volume (0-1) that
    was ``from_phase`` at the step before ``t`` and is ``to_phase`` at ``t``, for every step but
    the first (the diagonal: what stayed), of the voxels labelled in both scans (255, e.g.
    outside a field of view, in either is left out); their number per step is the coordinate
    ``voxels`` (t). Exact for any chunking
    (the per-block confusion counts of consecutive scans, :func:`confusion`). The scans must be
    aligned (:func:`bigseg.filters.align`).
    """
    from ._scores import confusion

    lab = as_volume(labels, name="labels", ndim=4)
    if lab.sizes["t"] < 2:
        raise InputError(f"Expected `labels` to hold at least 2 time steps. Got {lab.sizes['t']} instead.")
    after = lab.isel(t=slice(1, None))  # each step against the one before, labelled by its own time
    before = lab.isel(t=slice(0, -1)).assign_coords(t=after["t"].variable)
    counts = confusion(before, after, phases=phases, progress=progress)
    total = counts.sum(("truth_phase", "pred_phase"))
    out = (counts / total).rename(truth_phase="from_phase", pred_phase="to_phase")
    out = out.assign_coords(t=named_time(lab["t"][1:].variable),  # (the times' units kept)
                            from_phase=phase_coord("from_phase", out.from_phase.values),
                            to_phase=phase_coord("to_phase", out.to_phase.values),
                            voxels=("t", total.values.astype(np.int64),
                                    {"units": "voxel", "long_name": "voxels labelled in both scans"}))
    out.name = "transitions"
    out.attrs = {"units": "1", "long_name": "fraction of the volume that changed from from_phase to to_phase",
                 **{k: v for k, v in counts.attrs.items() if k in ("voxel_size", "unit", "shape")}}
    return out


def _same_unit(a: Any, b: Any) -> bool:
    """Whether two unit strings name one unit (``um``, ``µm`` and ``micrometer`` do)."""
    from ..io._calibration import normalise_unit

    na, nb = normalise_unit(str(a)), normalise_unit(str(b))
    return (na == nb) if na is not None and nb is not None else str(a) == str(b)


def evolution(metrics: xr.Dataset, particles: pd.DataFrame | None = None,
              transitions: xr.DataArray | None = None) -> pd.DataFrame:
    """One row per time step of a series: what :func:`summary` and :func:`particles` measured,
    side by side, ready to plot or save (``.to_csv``).

    Parameters
    ----------
    metrics : Dataset from :func:`bigseg.measure.summary` of a (t, z, y, x) series (a single
        volume gives one row)
    particles : optional table from :func:`bigseg.measure.particles` of the same series
    transitions : optional :func:`transitions` of the same series

    Returns
    -------
    pandas.DataFrame indexed by ``t`` with ``fraction_<phase>``; ``specific_area_<a>_<b>`` (the
    interface area per volume, ``unit^-1``); ``coverage_<a>_<b>`` (the share of a's interface
    area on its interface with b, Müller et al. 2021); with a reference, ``iou_<phase>``; with
    :func:`connectivity` added (:func:`add_to_metrics`), ``percolating_<phase>``; with particles,
    ``particles`` (count), ``particles_inside`` (not touching the border),
    ``particles_continued`` (of all ``particles``, those whose track goes on from the step
    before; see ``track`` in :func:`particles`) and ``median_<quantity>`` over the particles inside
    the volume
    (equivalent diameter in ``unit``, sphericity, aspect ratio, detachment = pore contact, the contact with
    every other phase, ``median_contact_cbd`` ..., and with other particles; NaN when no particle
    lies inside); with transitions, ``<a>_to_<b>`` for every pair
    of different phases (the fraction of the volume that changed from a to b since the step
    before; NaN at the first step). ``attrs`` hold the unit, each column's unit (``units``; with
    ``t``, the times' unit), with connectivity the axis it is along (``connectivity_axis``) and,
    when the ``t`` coordinate states one (its ``units``), ``time_unit``; :func:`write_table` writes them into the headers. The interface areas are divided by
    each step's own volume (its voxel count times the volume of a voxel: a ``voxel_volume``
    coordinate over ``t`` where the steps' voxel sizes differ, else ``attrs["voxel_size"]``).
    """
    if not isinstance(metrics, xr.Dataset) or "volume_fraction" not in metrics:
        raise InputError("Expected `metrics` to be the Dataset of bigseg.measure.summary. "
                         f"Got {type(metrics).__name__} instead.")
    ds = metrics if "t" in metrics.dims else metrics.expand_dims(t=[0])
    times = ds.t.values.tolist()
    if len(set(times)) < len(times):  # the particles (and changes) of two steps would be counted as one's
        raise InputError(f"Expected `metrics` with one time per step. Got t = {times} instead: give each step "
                         "its own time.")
    phases = [str(p) for p in ds.phase.values]
    vs = np.asarray(ds.attrs.get("voxel_size", (1.0, 1.0, 1.0)), np.float64)
    # the volume of a voxel: per step where the scans differ (those of a watch), else the attrs'
    vv = ds.voxel_volume.values.astype(np.float64) if "voxel_volume" in ds.coords else float(np.prod(vs))
    if "voxels" in ds.coords and "t" in ds.voxels.dims:  # per step (scans of a watch may differ in size)
        total = ds.voxels.sum("phase").values.astype(np.float64) * vv
    else:
        total = float(ds.attrs.get("voxels", np.nan)) * vv
    out = pd.DataFrame(index=pd.Index(ds.t.values, name="t"))
    for i, p in enumerate(phases):
        out[f"fraction_{p}"] = ds.volume_fraction.values[:, i]
    if "area" in ds:
        for i in range(len(phases)):
            for j in range(i + 1, len(phases)):
                out[f"specific_area_{phases[i]}_{phases[j]}"] = ds.area.values[:, i, j] / total
    if "coverage" in ds:  # e.g. coverage_active_cbd: the share of the active surface touching CBD
        for i, a in enumerate(phases):
            for j, b in enumerate(phases):
                if i != j:
                    out[f"coverage_{a}_{b}"] = ds.coverage.values[:, i, j]
    if "iou" in ds:
        for i, p in enumerate(phases):
            out[f"iou_{p}"] = ds.iou.values[:, i]
    if "connectivity_percolating" in ds:  # e.g. a CBD network that breaks up as the electrode cycles
        for i, p in enumerate(phases):
            out[f"percolating_{p}"] = ds.connectivity_percolating.values[:, i]
    if particles is not None:
        if not isinstance(particles, pd.DataFrame) or "touches_border" not in particles.columns:
            moves = isinstance(particles, xr.DataArray) and "from_phase" in particles.dims
            raise InputError("Expected `particles` to be the table of bigseg.measure.particles (with a "
                             f"'touches_border' column). Got {type(particles).__name__} with columns "
                             f"{list(getattr(particles, 'columns', []))} instead"
                             + (": phase transitions go by keyword, evolution(metrics, transitions=...)." if moves
                                else "."))
        if "t" not in particles.columns and len(out.index) > 1:  # was counted silently as the first step's
            raise InputError(f"Expected `particles` of the series of `metrics` (a table with a 't' column, from "
                             f"bigseg.measure.particles of the (t, z, y, x) labels) for its {len(out.index)} time steps "
                             f"{out.index.to_numpy().tolist()}. Got a table of one volume (no 't' column) instead: "
                             "measure the particles of the whole series, or add the step it shows as a 't' column.")
        tab = particles if "t" in particles.columns else particles.assign(t=out.index[0])
        steps = particles.attrs.get("t")  # a series' table knows its steps, also those without particles
        unknown = sorted(set(tab["t"]) - set(out.index))
        if unknown or (steps is not None and list(steps) != out.index.to_numpy().tolist()):
            raise InputError(f"Expected `particles` of the same time steps as `metrics` {list(out.index)}. "
                             f"Got t = {unknown or list(steps)} instead.")
        if "unit" in particles.attrs and not _same_unit(particles.attrs["unit"], ds.attrs.get("unit", "voxel")):
            raise InputError(f"Expected `particles` in the unit of `metrics` ({ds.attrs.get('unit', 'voxel')!r}). "
                             f"Got {particles.attrs['unit']!r} instead: measured on another volume?")
        inside = tab[~with_border_flags(tab, "particles")["touches_border"]]
        out["particles"] = tab.groupby("t").size().reindex(out.index, fill_value=0)
        out["particles_inside"] = inside.groupby("t").size().reindex(out.index, fill_value=0)
        if "track" in tab:  # particles whose track was already there one step before
            seen = {t: set(g) for t, g in tab.groupby("t")["track"]}  # a step may have none
            steps = [seen.get(t, set()) for t in out.index]
            out["particles_continued"] = [np.nan] + [len(steps[i] & steps[i - 1]) for i in range(1, len(steps))]
        for col in (*PARTICLE_MEDIANS, *contact_columns(inside)):
            if col in inside:
                out[f"median_{col}"] = inside.groupby("t")[col].median().reindex(out.index)
    if transitions is not None:
        if not isinstance(transitions, xr.DataArray) or not {"t", "from_phase", "to_phase"} <= set(transitions.dims):
            raise InputError("Expected `transitions` to be the DataArray of bigseg.measure.transitions (t, from_phase, "
                             f"to_phase). Got {type(transitions).__name__} instead.")
        # every step of `metrics` but the first, as for `particles`: others would leave NaN columns unsaid
        steps = transitions["t"].values.tolist()
        if steps != out.index.to_numpy().tolist()[1:]:
            raise InputError(f"Expected `transitions` of the time steps of `metrics` after the first "
                             f"{out.index.to_numpy().tolist()[1:]}. Got t = {steps} instead: measured on another "
                             f"series, or on its values without their times?")
        for a in transitions.from_phase.values:
            for b in transitions.to_phase.values:
                if a != b:
                    col = transitions.sel(from_phase=a, to_phase=b).to_series()
                    out[f"{a}_to_{b}"] = col.reindex(out.index).to_numpy()
    out.attrs["unit"] = str(ds.attrs.get("unit", "voxel"))
    out.attrs["units"] = _column_units(out, out.attrs["unit"], time_unit(ds.t))
    if "area" in ds and ds["area"].attrs.get("method"):  # what made the specific areas (faces read 30-60 % higher)
        out.attrs["area_method"] = str(ds["area"].attrs["method"])
    if "connectivity_percolating" in ds and ds.attrs.get("connectivity_axis"):  # along which the shares span
        out.attrs["connectivity_axis"] = str(ds.attrs["connectivity_axis"])
    if time_unit(ds.t):  # the times' unit (minutes, seconds...), for tables and figures to say
        out.attrs["time_unit"] = time_unit(ds.t)
    return out
