"""Volume fractions by distance from the axis of a cylindrical sample (or field of view).

A lab or synchrotron reconstruction of a cylinder carries its artefacts radially: beam hardening
darkens the centre (cupping), truncation and rings brighten the rim. A segmentation that
follows them shows phase fractions that change with the distance from the rotation axis where
the electrode itself does not; the radial profile shows it (as the through-thickness profile of
:func:`bigseg.measure.profile` shows gradients along an axis).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import xarray as xr

from .._parse import parse_positive_float
from ..errors import InputError
from ..runtime._progress import compute
from ._blockwise import MAX_BINS, BlockGeometry, block_partials
from ._inputs import Labels, as_labels
from ._metrics import _check, _codes, _common_attrs, _coords, _dims, _stack, _stats_graph

__all__ = ["radial_profile"]


def _radius(shape_yx: tuple[int, int], origin_yx: tuple[int, int], centre: tuple[float, float],
            sampling: tuple[float, float]) -> np.ndarray:
    """Distance of every (y, x) of a block from the axis, in edges of the smaller y/x voxel side."""
    yy = (np.arange(origin_yx[0], origin_yx[0] + shape_yx[0]) - centre[0]) * sampling[0]
    xx = (np.arange(origin_yx[1], origin_yx[1] + shape_yx[1]) - centre[1]) * sampling[1]
    return np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)


def _radial_block(block: np.ndarray, geom: BlockGeometry, *, centre, sampling, step: float, nbins: int,
                  k: int) -> np.ndarray:
    codes, _ = _codes(block, geom)  # values beyond the phases: _check raises
    r = _radius(codes.shape[1:], geom.origin[1:], centre, sampling)
    rbin = np.minimum((r / step).astype(np.int64), nbins - 1)
    cat = np.minimum(codes, k).astype(np.int64)  # 255 (unlabelled) -> k
    return np.bincount((rbin[None] * (k + 1) + cat).ravel(), minlength=nbins * (k + 1))


def _parse_centre(lab: Labels, centre: Any) -> tuple[float, float]:
    ny, nx = lab.spatial_shape[1:]
    if centre is None:
        return (ny - 1) / 2, (nx - 1) / 2
    try:
        cy, cx = (float(v) for v in centre)
    except (TypeError, ValueError):
        raise InputError(f"Expected `centre` to be (y, x) in voxel indices. Got {centre!r} instead.") from None
    if not (math.isfinite(cy) and math.isfinite(cx)):
        raise InputError(f"Expected `centre` to be (y, x) in voxel indices. Got {centre!r} instead.")
    # an axis outside the cross-section (e.g. a centre given in physical units) would leave the
    # shells near it empty and make one shell per step out to it (billions, for a far one)
    if not (-0.5 <= cy <= ny - 0.5 and -0.5 <= cx <= nx - 0.5):
        raise InputError(f"Expected `centre` to be (y, x) in voxel indices inside the cross-section (y in "
                         f"[-0.5, {ny - 0.5:g}], x in [-0.5, {nx - 0.5:g}]). Got {centre!r} instead.")
    return cy, cx


def radial_profile(labels: Any, *, centre: Any = None, step: float = 1.0, phases: Any = None,
                   progress: bool = False) -> xr.DataArray:
    """Volume fraction of every phase in coaxial shells around the z axis through ``centre``.

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer labels, values ``0..len(phases)-1``; voxels
        valued 255 (unlabelled, e.g. outside the field of view) are left out.
    centre : (y, x) of the axis in voxel indices, inside the cross-section (an axis outside it is
        refused); default the centre of the cross-section (also
        that of ``bigseg.io.fov_mask(..., "cylinder")``; a circle's centre is its
        ``attrs["centre"]``).
    step : shell width in voxel edges (of the smaller y/x side for anisotropic voxels: the
        distance is in physical units).
    phases : phase names by label value, default ``labels.attrs["phases"]`` or
        ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    DataArray ``volume_fraction`` over (phase, ``r``) (``t`` first for a series): the phase's
    share of the labelled voxels whose distance d from the axis satisfies ``i * step <= d <
    (i + 1) * step``; the coordinate ``r`` is the shell's mid radius in ``unit`` (the last shell's
    taken as ending at the farthest corner of the cross-section), ``bin_voxels``
    the labelled voxels in it (NaN fractions where 0). Exact for any chunking (integer counts
    summed over blocks).
    """
    lab = as_labels(labels, phases=phases)
    step = parse_positive_float("step", step)
    cy, cx = _parse_centre(lab, centre)
    vy, vx = lab.voxel_size[1:]
    vmin = min(vy, vx)
    sampling = (vy / vmin, vx / vmin)
    ny, nx = lab.spatial_shape[1:]
    far = max(math.hypot((y - cy) * sampling[0], (x - cx) * sampling[1]) for y in (0, ny - 1) for x in (0, nx - 1))
    nbins = int(far // step) + 1
    if nbins > MAX_BINS:  # each block would hold (phases x shells) counts
        raise InputError(f"Expected `step` to make at most {MAX_BINS} shells out to the farthest corner, "
                         f"{far:.4g} voxel edges from the axis (a step of at least {far / MAX_BINS:.3g}). "
                         f"Got step={step!r} instead.")
    fn = functools.partial(_radial_block, centre=(cy, cx), sampling=sampling, step=step, nbins=nbins, k=lab.k)
    hists = _stats_graph(lab, hist_only=True)
    parts = [block_partials(fn, f, depth=0, nout=nbins * (lab.k + 1), dtype=np.int64) for f in lab.frames()]
    res = compute(*hists, *parts, desc="radial profile", progress=progress)
    _check(lab, res[: len(hists)], allow_unlabelled=True)
    counts = [np.asarray(c).reshape(nbins, lab.k + 1)[:, : lab.k].T for c in res[len(hists):]]  # (k, bins)
    labelled = [c.sum(axis=0) for c in counts]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = [np.where(n > 0, c / np.maximum(n, 1), np.nan) for c, n in zip(counts, labelled)]
    out = xr.DataArray(_stack(lab, frac), dims=_dims(lab, ("phase", "r")), coords=_coords(lab, phase=lab.phases),
                       name="volume_fraction")
    lo = np.arange(nbins) * step
    mid = (lo + np.minimum(lo + step, far)) / 2  # the last shell ends at the farthest corner
    out = out.assign_coords(
        r=("r", mid * vmin, {"units": lab.unit, "long_name": "distance from the axis (mid-shell)"}),
        r_voxels=("r", mid, {"units": "voxel", "long_name": "distance from the axis in smallest in-plane voxel edges"}),
        bin_voxels=(_dims(lab, ("r",)), _stack(lab, labelled), {"units": "voxel", "long_name": "labelled voxels in the shell"}))
    out.attrs.update(units="1", long_name="volume fraction by distance from the axis", axis="r",
                     axis_label="distance from the axis", centre=[cy, cx], step=step, **_common_attrs(lab))
    return out
