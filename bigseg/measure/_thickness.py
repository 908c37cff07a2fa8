"""Local thickness distributions: pore size, CBD and particle thickness, exact blockwise."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import xarray as xr

from .._parse import parse_positive_int
from ..errors import InputError
from ..kernels.thickness import EXTRA_LEVELS, level_diameters, thickness_levels
from ..ops._histogram import weighted_quantiles
from ..runtime._progress import compute
from ._blockwise import MAX_BINS, BlockGeometry, block_partials
from ._inputs import Labels, as_labels
from ._metrics import (_check, _codes, _common_attrs, _phase_index, _phase_items, _stats_graph, _time, phase_coord,
                       phases_attr)

__all__ = ["thickness"]


def _levels_block(ext: np.ndarray, geom: BlockGeometry, *, phase: int, levels: int, spacing) -> np.ndarray:
    """Voxels of the phase in the block proper at each thickness level (0..levels)."""
    codes, _ = _codes(ext, geom)
    lev = thickness_levels(codes == phase, spacing, levels)
    core = tuple(slice(lo, lo + n) for lo, n in zip(geom.halo_lo, geom.shape))
    return np.bincount(lev[core][codes[core] == phase], minlength=levels + 1)


def thickness(labels: Any, *, phase: Any = "pore", max_diameter: int = 40, phases: Any = None,
              progress: bool = False) -> xr.Dataset:
    """Local thickness distribution of one or more phases: for every voxel of the phase, the
    diameter of the largest ball inside the phase that holds it (Hildebrand and Rüegsegger 1997;
    the pore size distribution of the pore phase, the thickness of CBD films and bridges).

    Balls are centred on voxel centres and lie inside the union of the phase's voxels; their
    diameters are whole multiples of the smallest voxel edge ``s`` (1, 2, 3 ... ``s``): a
    one-voxel film is one voxel thick and a slab of an odd number of voxels exactly that many,
    but one of an even number reads a voxel thinner (no voxel centre lies on its middle plane:
    a two-voxel film reads one), and a digitised sphere of radius R voxels mostly 2R - 1 (its
    largest inscribed ball). Structures a few voxels thick are at the resolution limit of any
    voxel method; read their thickness with that in mind. Computed per block with a halo of
    ``max_diameter + 3`` voxels, so the result does not depend on the chunking and equals the
    whole-array computation; voxels beyond the volume count as of the phase (a pore cut by the
    border is not made thinner by it), unlabelled voxels (255, outside the field of view) as
    another phase.

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer labels.
    phase : a phase name or index, or a list of them (default the pore phase).
    max_diameter : the largest diameter resolved, in voxels: thicker voxels are counted at it
        (``beyond``, with a warning; a few of them near the rims of much thicker structures, a
        lattice effect, a little below it: raise it until nothing is). Time and halo
        (``max_diameter + 3`` voxels) grow with it (one distance transform per diameter up to
        the thickest structure of a block). At most ``MAX_BINS`` (each block counts its voxels
        at every diameter).
    phases : phase names by label value, default ``labels.attrs["phases"]`` or
        ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    Dataset over ``phase`` and ``diameter`` (physical, the data's unit; and ``t``): ``share``,
    the fraction of the phase's voxels at each local thickness (volume-weighted, summing to 1),
    ``cumulative_share``; over ``phase``: ``mean_thickness``, ``d10``, ``d50`` (median) and ``d90`` (the
    diameters below or at which 10 / 50 / 90 % of the phase lies), ``beyond`` (the share
    counted at ``max_diameter`` that may be thicker).
    """
    lab = as_labels(labels, phases=phases)
    max_diameter = parse_positive_int("max_diameter", max_diameter, most=MAX_BINS)
    wanted = _phase_items(phase)
    if not wanted:
        raise InputError(f"Expected `phase` to name at least one phase of {lab.phases}. Got {phase!r} instead.")
    idx = [_phase_index(lab, p) for p in wanted]
    if len(set(idx)) < len(idx):
        raise InputError(f"Expected `phase` to name each phase once. Got {phase!r} instead.")
    spacing = tuple(float(v) for v in lab.voxel_size)
    depth = max_diameter + EXTRA_LEVELS + 1  # in smallest voxel edges: every axis's halo at most this many voxels
    hists = _stats_graph(lab, hist_only=True)
    parts = [[block_partials(functools.partial(_levels_block, phase=i, levels=max_diameter, spacing=spacing),
                             frame, depth=depth, nout=max_diameter + 1, dtype=np.int64) for i in idx]
             for frame in lab.frames()]
    res = compute(*hists, *[p for f in parts for p in f], desc=f"local thickness ({', '.join(lab.phases[i] for i in idx)})",
                  progress=progress)
    _check(lab, res[: len(hists)], allow_unlabelled=True)
    counts = np.asarray(res[len(hists):], np.float64).reshape(len(parts), len(idx), max_diameter + 1)[..., 1:]
    return _dataset(lab, counts, idx, max_diameter, spacing)


def _dataset(lab: Labels, counts: np.ndarray, idx: list[int], max_diameter: int, spacing) -> xr.Dataset:
    diameters = level_diameters(max_diameter, spacing)[1:]
    total = counts.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts / total
    stats = {name: np.full(counts.shape[:2], np.nan) for name in ("mean", "d10", "d50", "d90")}
    for t in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            s = share[t, j]
            stats["mean"][t, j] = float((s * diameters).sum()) if np.isfinite(s).all() else np.nan
            for q, name in ((0.1, "d10"), (0.5, "d50"), (0.9, "d90")):
                # the smallest diameter below or at which q of the phase lies (NaN without the phase)
                stats[name][t, j] = float(weighted_quantiles(diameters, s, [q])[0])
    beyond = share[..., -1]
    if np.nanmax(beyond, initial=0) > 0:
        worst = [lab.phases[i] for j, i in enumerate(idx) if np.nanmax(beyond[:, j], initial=0) > 0]
        warnings.warn(f"{100 * float(np.nanmax(beyond)):.2g} % of the {', '.join(worst)} voxels are at least "
                      f"`max_diameter` ({max_diameter} voxels) thick and counted there: raise max_diameter to "
                      "resolve them.", stacklevel=3)
    unit = lab.unit
    dims = ("t", "phase") if lab.series else ("phase",)
    pick = (lambda a: a) if lab.series else (lambda a: a[0])
    names = [lab.phases[i] for i in idx]
    ds = xr.Dataset(
        {
            "share": (dims + ("diameter",), pick(share), {"units": "1", "long_name": "share of the phase's voxels at this local thickness"}),
            "cumulative_share": (dims + ("diameter",), pick(np.cumsum(share, axis=-1)), {"units": "1", "long_name": "share at most this thick"}),
            "mean_thickness": (dims, pick(stats["mean"]), {"units": unit, "long_name": "volume-weighted mean local thickness"}),
            "d10": (dims, pick(stats["d10"]), {"units": unit, "long_name": "local thickness that 10 % of the phase's volume is at most"}),
            "d50": (dims, pick(stats["d50"]), {"units": unit, "long_name": "median local thickness"}),
            "d90": (dims, pick(stats["d90"]), {"units": unit, "long_name": "local thickness that 90 % of the phase's volume is at most"}),
            "beyond": (dims, pick(beyond), {"units": "1", "long_name": "share counted at max_diameter (may be thicker)"}),
        },
        coords={"phase": phase_coord("phase", names),
                "diameter": ("diameter", diameters, {"units": unit, "long_name": "local thickness"}),
                **({"t": _time(lab)} if lab.series else {})},
    )
    ds.attrs.update(max_diameter=max_diameter, phases=phases_attr(lab.phases), **_common_attrs(lab))  # (as shells')
    return ds
