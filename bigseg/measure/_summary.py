"""All the per-volume metrics in one pass over the data."""

from __future__ import annotations

import dataclasses

from typing import Any

import numpy as np
import xarray as xr

from .._parse import parse_positive_int
from ..kernels.crofton import DIRECTIONS, crossing_areas
from ..runtime._progress import compute
from ._inputs import as_labels
from ._profile import (_area_profile_graph, _interface_profile_dataarray, _profile_dataarray, _profile_graph,
                       parse_axis, parse_step)
from ._metrics import (Method, _check, _common_attrs, _fractions_dataarray, _interfaces_dataset, _stats_graph,
                       parse_method)
from ._scores import _confusion_graph, _confusion_post, _pair, _scores_dataset, _stated_phases

__all__ = ["summary", "add_to_metrics"]


def summary(labels: Any, *, truth: Any = None, method: Method = "faces", phases: Any = None,
            profile: Any = None, profile_step: int = 1, progress: bool = False) -> xr.Dataset:
    """Volume fractions, interfaces and (given ``truth``) scores, computed together.

    The same numbers as :func:`volume_fractions`, :func:`interfaces` and
    ``scores(truth, labels)``, but from one dask graph: every block of ``labels`` is read once
    (the fractions come from the interface pass's histogram, and the confusion matrix shares
    the block reads), which roughly halves the time on data read from disk. With ``profile``
    (an axis, ``"z"``, ``"y"`` or ``"x"``) also the volume fractions slice by slice along it,
    in bins of ``profile_step`` slices, as :func:`profile` gives them.

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer label volume, as for :func:`volume_fractions`.
    truth : a reference label volume of the same shape: adds the scores of ``labels`` against
        it (phases matched by name, as :func:`scores`); default None.
    method : the area estimate, ``"faces"`` (default), ``"marching_cubes"`` or ``"crofton"``
        (see :func:`interfaces`).
    phases : phase names for both volumes, default ``labels.attrs["phases"]`` (else the truth's,
        else ``["pore", "cbd", "active"]``).
    profile : None (default: no profiles) or an axis, ``"z"``, ``"y"``, ``"x"`` (or 0, 1, 2).
    profile_step : slices (voxels) per profile bin, a positive integer no larger than the
        volume along ``profile`` (default 1).
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    Dataset with ``volume_fraction`` (phase), ``faces``, ``voxel_fraction``, ``area``,
    ``coverage`` (phase_a, phase_b; as :func:`interfaces`; for ``"marching_cubes"`` also its
    ``phase_area`` (phase)) and, with ``truth``, ``iou``, ``dice``, ``precision``, ``recall``,
    ``support`` (phase) and ``accuracy``; with ``profile``, ``volume_fraction_profile`` (phase,
    axis), ``specific_area_profile`` (phase_a, phase_b, axis; :func:`interface_profile` by
    ``method``; by Crofton for ``"marching_cubes"``, which has no slice-by-slice form: the
    closer of the two estimates to it) and,
    given ``truth``, ``truth_volume_fraction_profile``; a ``t`` dimension for series.

    Examples
    --------
    A threshold segmentation against the exact labels, in one pass:

    >>> from bigseg import baselines, measure, synth
    >>> truth = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
    >>> seg = baselines.threshold(synth.xct(truth, seed=0), classes=3)
    >>> s = measure.summary(seg, truth=truth)
    >>> list(s.data_vars)  # doctest: +NORMALIZE_WHITESPACE
    ['volume_fraction', 'faces', 'voxel_fraction', 'area', 'coverage', 'iou', 'dice', 'precision',
     'recall', 'support', 'accuracy']
    >>> s.iou.dims, s.phase.values.tolist()
    (('phase',), ['pore', 'cbd', 'active'])
    """
    lab = as_labels(labels, phases=phases)
    if truth is not None:  # phases matched by name (labels stating none take the truth's), as in scores
        tl, pl = _pair(truth, labels, phases, pred_name="labels",
                       pred_phases=lab.phases if phases is None and _stated_phases(lab) is not None else None)
        lab = dataclasses.replace(lab, phases=pl.phases)
    method = parse_method(method, lab)
    ax = None if profile is None else parse_axis("profile", profile)
    parse_positive_int("profile_step", profile_step)  # without a profile too: -1 or "3" was silently ignored
    profile_step = parse_step(lab, ax, profile_step, name="profile_step") if ax is not None else 1
    area_profile = "faces" if method == "faces" else "crofton"  # marching cubes have no slice-by-slice form
    # with a Crofton profile its per-slice areas add up to the totals: the crossings are counted once
    graphs = _stats_graph(lab, marching_cubes=method == "marching_cubes", crofton=method == "crofton" and ax is None)
    n = len(graphs)
    if truth is not None:
        graphs += _confusion_graph(tl, pl)
    n_scores = len(graphs) - n
    if ax is not None:
        graphs += _profile_graph(lab, ax)
        graphs += _area_profile_graph(lab, ax, area_profile)
        if truth is not None:
            graphs += _profile_graph(tl, ax)
    results = compute(*graphs, desc="measuring", progress=progress)
    stats = _check(lab, results[:n], allow_unlabelled=True, crofton=method == "crofton" and ax is None)
    parts: list[xr.Dataset] = []
    if ax is not None:
        m = len(lab.frames())
        at = n + n_scores
        prof = _profile_dataarray(lab, ax, profile_step, list(results[at:at + m]))
        parts.append(prof.rename("volume_fraction_profile").to_dataset())
        per_slice = list(results[at + m:at + 2 * m])
        if method == "crofton":  # the totals of the per-slice crossings
            for st, v in zip(stats, per_slice):
                counts = np.asarray(v)[:, :-1].reshape(-1, len(DIRECTIONS), lab.k, lab.k).sum(axis=0)
                st["areas"] = crossing_areas(counts, lab.voxel_size).ravel()
        spec = _interface_profile_dataarray(lab, ax, profile_step, per_slice, area_profile)
        parts.append(spec.rename("specific_area_profile").to_dataset())
        if truth is not None:
            ref = _profile_dataarray(tl, ax, profile_step, list(results[at + 2 * m:]))
            name = prof.attrs["axis"]  # on the same grid: the positions of the labels (the truth may have none)
            # in the labels' phase order (the truth's may differ: merged by name, it would reorder them all)
            ref = ref.drop_vars("bin_voxels").assign_coords({name: prof[name]}).sel(phase=list(pl.phases))
            parts.append(ref.rename("truth_volume_fraction_profile").to_dataset())
    parts[:0] = [_fractions_dataarray(lab, stats).to_dataset(), _interfaces_dataset(lab, stats, method)]
    if truth is not None:
        parts.insert(2, _scores_dataset(dataclasses.replace(tl, phases=pl.phases),
                                        _confusion_post(tl, pl, results[n:n + n_scores])))
    ds = xr.merge(parts, compat="override", combine_attrs="drop_conflicts")
    ds.attrs.update(_common_attrs(lab))  # list-valued attributes do not survive the merge
    return ds


def add_to_metrics(metrics: xr.Dataset, *, shells: xr.DataArray | None = None,
                   tortuosity: xr.Dataset | None = None, rve: xr.Dataset | None = None,
                   radial: xr.DataArray | None = None, connectivity: xr.Dataset | None = None,
                   thickness: xr.Dataset | None = None) -> xr.Dataset:
    """``metrics`` (:func:`summary`) with :func:`shells` as ``shell_fraction`` (over
    ``shell_distance``), :func:`tortuosity` as ``tortuosity``, ``tortuosity_D_eff`` and
    ``tortuosity_porosity`` (over ``subvolume``, its voxel bounds ``subvolume_z0`` ...
    ``subvolume_x1``) and :func:`rve` as ``rve_mean``, ``rve_std``,
    ``rve_relative_std``, ``rve_cubes`` (over ``cube_edge``) and ``rve_size`` and
    :func:`radial_profile` as ``volume_fraction_radial`` (over ``r``, its voxel counts
    ``r_bin_voxels``) and :func:`connectivity` as ``connectivity_percolating``, ``_isolated``,
    ``_unknown``, ``_largest`` and ``_components`` (over ``phase``) and :func:`thickness` as
    ``thickness_share``, ``_cumulative_share`` (over ``thickness_phase``, ``diameter``),
    ``thickness_mean``, ``_d10``, ``_d50``, ``_d90`` and ``_beyond`` (over ``thickness_phase``),
    so that one netCDF file holds them all.

    Parameters
    ----------
    metrics : the Dataset of :func:`summary` (not changed: a copy is returned).
    shells, tortuosity, rve, radial, connectivity, thickness : the results of the functions of
        those names, each default None (left out).

    Returns
    -------
    A copy of ``metrics`` with the variables above (and their settings in ``attrs``).
    """
    ds = metrics.copy()
    if thickness is not None:  # its phases may be a few of the volume's: their own dimension
        th = thickness.rename(phase="thickness_phase")
        for name, var in th.data_vars.items():
            ds["thickness_mean" if name == "mean_thickness" else f"thickness_{name}"] = var
        ds.attrs.update(thickness_max_diameter=int(thickness.attrs["max_diameter"]))
    if connectivity is not None:
        for name in ("percolating", "isolated", "unknown", "largest", "components"):
            ds[f"connectivity_{name}"] = connectivity[name]
        ds.attrs.update(connectivity_axis=str(connectivity.attrs["axis"]))
    if radial is not None:
        ds["volume_fraction_radial"] = radial.rename(bin_voxels="r_bin_voxels")
        ds.attrs.update(radial_centre=list(radial.attrs["centre"]), radial_step=float(radial.attrs["step"]))
    if rve is not None:
        for name, var in rve.rename(size="cube_edge", size_physical="cube_edge_physical").data_vars.items():
            ds[name if name.startswith("rve") else f"rve_{name}"] = var
        ds.attrs.update(rve_tolerance=float(rve.attrs["tolerance"]))
    if shells is not None:
        ds["shell_fraction"] = shells.rename(distance="shell_distance")
    if tortuosity is not None:
        bounds = ("z0", "y0", "x0", "z1", "y1", "x1")  # where each sub-volume lies (voxel indices)
        for name in ("tau", "D_eff", "porosity"):
            var = tortuosity[name]
            var = var.drop_vars([c for c in var.coords if c not in ("t", "subvolume", *bounds)])
            ds["tortuosity" if name == "tau" else f"tortuosity_{name}"] = var.rename(
                {c: f"subvolume_{c}" for c in bounds if c in var.coords})
        ds.attrs.update({f"tortuosity_{k}": str(tortuosity.attrs[k]) for k in ("phase", "axis", "box_yx") if k in tortuosity.attrs})
    return ds
