"""Volume fractions slice by slice along one axis: the through-thickness profile of an electrode."""

from __future__ import annotations

import functools
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._parse import AXES, parse_axis, parse_choice, parse_positive_int
from ..errors import InputError
from ..io._volume import origin_of
from ..kernels.crofton import DIRECTIONS, crossing_counts, slice_areas
from ..kernels.metrics import slice_counts, slice_faces
from ..runtime._progress import compute
from ._inputs import Labels, as_labels
from ._metrics import _check, _codes, _common_attrs, _coords, _dims, _face_areas, _stack, _stats_graph
from ._blockwise import BlockGeometry, crop_halo, slab_partials

__all__ = ["profile", "interface_profile"]


def _counts_block(block: np.ndarray, geom: BlockGeometry, *, axis: int, k: int) -> np.ndarray:
    codes, _ = _codes(block, geom)  # values beyond the phases: _check raises
    return slice_counts(codes, axis, k)  # (n, k + 1)


def _profile_graph(lab: Labels, axis: int) -> list[da.Array]:
    """Per frame, the lazy (n_axis, k + 1) counts of each phase (and the unlabelled voxels) per slice."""
    fn = functools.partial(_counts_block, axis=axis, k=lab.k)
    return [slab_partials(fn, f, depth=0, axis=axis, nout=lab.k + 1, dtype=np.int64) for f in lab.frames()]


def parse_step(lab: Labels, axis: int, step: Any, *, name: str = "step") -> int:
    """Slices per bin: a positive integer no larger than the volume along ``axis``."""
    step = parse_positive_int(name, step)
    if step > lab.spatial_shape[axis]:
        raise InputError(f"Expected `{name}` to be at most the volume's extent along {AXES[axis]} "
                         f"({lab.spatial_shape[axis]}). Got {step} instead.")
    return step


def _profile_dataarray(lab: Labels, axis: int, step: int, counts: list[np.ndarray]) -> xr.DataArray:
    """The ``volume_fraction`` profile DataArray from the summed per-slice counts of each frame."""
    name = AXES[axis]
    starts = np.arange(0, lab.spatial_shape[axis], step)
    binned = [np.add.reduceat(np.asarray(c, np.int64), starts, axis=0) for c in counts]  # (bins, k + 1)
    phase_counts = [b[:, : lab.k].T for b in binned]  # (k, bins)
    labelled = [c.sum(axis=0) for c in phase_counts]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = [np.where(t > 0, c / np.maximum(t, 1), np.nan) for c, t in zip(phase_counts, labelled)]
    out = xr.DataArray(_stack(lab, frac), dims=_dims(lab, ("phase", name)), coords=_coords(lab, phase=lab.phases),
                       name="volume_fraction")
    out = out.assign_coords({**_bin_coords(lab, axis, step), "bin_voxels": (
        _dims(lab, (name,)), _stack(lab, labelled), {"units": "voxel", "long_name": "labelled voxels in the bin"})})
    out.attrs.update(units="1", long_name=f"volume fraction by {name}", axis=name, step=step,
                     **_common_attrs(lab))
    return out


def _run(labels: Any, axis: Any, step: Any, phases: Any, progress: bool, *, graph, build, what: str,
         allow_unlabelled: bool) -> xr.DataArray:
    """Parse, compute the value check and ``graph``'s per-frame partials in one pass, ``build``."""
    ax = parse_axis("axis", axis)
    lab = as_labels(labels, phases=phases)
    step = parse_step(lab, ax, step)
    hists = _stats_graph(lab, hist_only=True)
    res = compute(*hists, *graph(lab, ax), desc=f"{what} along {AXES[ax]}", progress=progress)
    _check(lab, res[: len(hists)], allow_unlabelled=allow_unlabelled)
    return build(lab, ax, step, list(res[len(hists):]))


def profile(labels: Any, *, axis: Any = "z", step: int = 1, phases: Any = None,
            progress: bool = False) -> xr.DataArray:
    """Volume fraction of every phase slice by slice along ``axis``.

    The through-thickness profile of an electrode (e.g. porosity from the separator side to the
    current collector, or CBD accumulating near the surface after drying) when ``axis`` is the
    electrode's thickness direction.

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer labels, values ``0..len(phases)-1``; voxels valued
        255 (unlabelled) are left out of each slice's total.
    axis : ``"z"``, ``"y"`` or ``"x"`` (or 0, 1, 2): the slices are normal to it.
    step : slices per bin (the last bin takes what is left).
    phases : phase names, default ``labels.attrs["phases"]`` or ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    DataArray ``volume_fraction`` over (phase, ``axis``) (and ``t`` first for a series),
    dimensionless; the ``axis`` coordinate is the bin centre in ``unit``, ``{axis}_index`` the
    first slice of each bin and ``bin_voxels`` the labelled voxels in it (NaN fractions where it is
    0). Exact (integer counts summed over blocks) for any chunking.
    """
    return _run(labels, axis, step, phases, progress, graph=_profile_graph, build=_profile_dataarray,
                what="profile", allow_unlabelled=True)


def _interface_block(block: np.ndarray, geom: BlockGeometry, *, axis: int, k: int, method: str) -> np.ndarray:
    """Per slice of the block: its faces (3 axes) or Crofton crossings (13 directions) per phase
    pair, then its labelled voxels."""
    codes, _ = _codes(block, geom)  # values beyond the phases: _check raises
    if method == "crofton":
        pairs = crossing_counts(codes, geom.halo_lo, geom.halo_hi, k, axis)
    else:
        pairs = slice_faces(codes, geom.halo_lo, geom.halo_hi, axis, k)
    core, _, _ = crop_halo(codes, geom, 0)
    labelled = slice_counts(core, axis, k)[:, :k].sum(axis=1)
    return np.concatenate([pairs.reshape(pairs.shape[0], -1), labelled[:, None]], axis=1)


def _area_profile_graph(lab: Labels, axis: int, method: str = "faces") -> list[da.Array]:
    """Per frame, the lazy per-slice integer partials of the interfaces, then the slice's
    labelled voxels: (n_axis, 3 * k * k + 1) faces per axis and phase pair, or with ``crofton``
    (n_axis, 13 * k * k + 1) crossings per direction and phase pair (exact for any chunking)."""
    per_slice = len(DIRECTIONS) if method == "crofton" else 3
    fn = functools.partial(_interface_block, axis=axis, k=lab.k, method=method)
    return [slab_partials(fn, f, depth=1, axis=axis, nout=per_slice * lab.k * lab.k + 1, dtype=np.int64)
            for f in lab.frames()]


def _bin_coords(lab: Labels, axis: int, step: int) -> dict[str, Any]:
    """The bins' coordinates along ``axis``: centre position (in unit) and first slice.

    Slice ``i`` lies at the volume's origin (its first coordinate: a box cut from a scan keeps
    its place, see :func:`bigseg.io.origin_of`) plus ``i`` times the voxel size, as the
    particles' centroids: the attribute gives the spacing, not the coordinates (plain indices
    0, 1, 2 ... left on a volume given a voxel size say nothing, see ``as_volume``)."""
    name, n = AXES[axis], lab.spatial_shape[axis]
    starts = np.arange(0, n, step)
    pos = origin_of(lab.vol)[axis] + np.arange(n, dtype=np.float64) * lab.voxel_size[axis]
    centre = np.add.reduceat(pos, starts) / np.diff(np.append(starts, n))
    return {name: (name, centre, {"units": lab.unit, "long_name": f"{name} position (centre of the bin)"}),
            f"{name}_index": (name, starts, {"units": "voxel", "long_name": f"first slice of the bin along {name}"})}


def _centred(between: np.ndarray) -> np.ndarray:
    """Faces between slices ``s`` and ``s + 1`` (row ``s``; the last row 0) shared half and half
    by the two slices; an end slice, whose other side is outside the volume, takes its one side
    for both halves (so it does not read low)."""
    n = between.shape[0]
    if n < 2:
        return between
    below = np.concatenate([between[:1], between[:-1]])  # faces to s - 1 (the first slice: to s + 1)
    above = np.concatenate([between[:-1], between[n - 2:n - 1]])  # faces to s + 1 (the last: to s - 1)
    return (below + above) / 2.0


def _slice_areas(v: np.ndarray, lab: Labels, axis: int, method: str) -> np.ndarray:
    """(n, k, k) symmetric pair areas of each slice from the summed partials ``v`` of
    :func:`_area_profile_graph` (the last column aside), those shared with a neighbouring slice
    centred (:func:`_centred`)."""
    n, k = v.shape[0], lab.k
    if method == "crofton":  # (within the slice, to the next one), symmetric, in physical units
        a = slice_areas(v[:, :-1].reshape(n, len(DIRECTIONS), k, k), lab.voxel_size, axis)
        return a[:, 0] + _centred(a[:, 1])
    f = v[:, :-1].reshape(n, 3, k, k).astype(np.float64)
    f = f + f.transpose(0, 1, 3, 2)
    f[:, axis] = _centred(f[:, axis])
    return (f * _face_areas(lab.voxel_size)[None, :, None, None]).sum(axis=1)


def _interface_profile_dataarray(lab: Labels, axis: int, step: int, vecs: list[np.ndarray],
                                 method: str = "faces") -> xr.DataArray:
    name = AXES[axis]
    n = lab.spatial_shape[axis]
    starts = np.arange(0, n, step)
    voxel_volume = float(np.prod(lab.voxel_size))
    spec, labelled = [], []
    for v in vecs:
        v = np.asarray(v, np.int64).reshape(n, -1)
        area = np.add.reduceat(_slice_areas(v, lab, axis, method), starts, axis=0)  # (bins, k, k)
        labelled.append(np.add.reduceat(v[:, -1], starts))
        volume = labelled[-1].astype(np.float64) * voxel_volume  # labelled voxels only
        with np.errstate(divide="ignore", invalid="ignore"):
            spec.append(np.moveaxis(np.where(volume > 0, 1.0, np.nan)[:, None, None] * area
                                    / np.maximum(volume, voxel_volume)[:, None, None], 0, -1))
    dims = _dims(lab, ("phase_a", "phase_b", name))
    out = xr.DataArray(_stack(lab, spec), dims=dims, coords=_coords(lab, phase_a=lab.phases, phase_b=lab.phases),
                       name="specific_area")
    out = out.assign_coords({**_bin_coords(lab, axis, step), "bin_voxels": (
        _dims(lab, (name,)), _stack(lab, labelled), {"units": "voxel", "long_name": "labelled voxels in the bin"})})
    out.attrs.update(units=f"{lab.unit}^-1", long_name=f"interface area per volume by {name} ({method})", axis=name,
                     step=step, method=method, **_common_attrs(lab))
    return out


def interface_profile(labels: Any, *, axis: Any = "z", step: int = 1, phases: Any = None,
                      method: str = "faces", progress: bool = False) -> xr.DataArray:
    """Interface area per volume of every phase pair, slice by slice along ``axis``.

    The depth profile of, e.g., the active material's contact with the electrolyte (pore) or
    with the CBD through the electrode's thickness. Areas as :func:`interfaces` measures them
    with the same ``method``: shared voxel faces (``"faces"``, anisotropic face areas included)
    or the Cauchy-Crofton crossings of neighbour pairs (``"crofton"``). A slice takes those
    within it, and half of those it shares with each neighbouring slice (centred, no half-slice
    shift); a slice at either end of the volume has one neighbour and counts those with it twice
    over (its other side is unseen), so it does not read low (it read about a third low when a
    face counted for the slice below it only). The bins add up to the volume's interface area
    plus half of what lies between the first two and between the last two slices (use
    :func:`interfaces` for totals).

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer labels, values ``0..len(phases)-1``; voxels
        valued 255 (unlabelled, e.g. outside the field of view) are no part of the sample.
    axis, step : as for :func:`profile`.
    method : ``"faces"`` or ``"crofton"`` (see :func:`interfaces`; the smoothed marching cubes
        have no slice-by-slice form).
    phases : phase names by label value, default ``labels.attrs["phases"]`` or
        ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    DataArray ``specific_area`` over (phase_a, phase_b, ``axis``) (``t`` first for a series) in
    ``1/unit``: the pair's interface area in the bin over the bin's labelled volume (NaN for a
    bin without labelled voxels); symmetric in the pair, zero on the diagonal; the coordinates
    as for :func:`profile` (``bin_voxels`` the bin's labelled voxels). Exact for any chunking.
    """
    method = parse_choice("method", method, ("faces", "crofton"))
    return _run(labels, axis, step, phases, progress, graph=functools.partial(_area_profile_graph, method=method),
                build=functools.partial(_interface_profile_dataarray, method=method), what="interfaces",
                allow_unlabelled=True)
