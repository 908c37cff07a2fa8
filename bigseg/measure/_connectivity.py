"""Phase connectivity: how much of each phase spans the volume, and how much is cut off."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import xarray as xr

from .._parse import AXES, parse_axis
from ..errors import InputError
from ..kernels.connectivity import CONTACTS, component_contacts
from ..kernels.particles import join_components
from ..runtime._progress import compute
from ._blockwise import BlockGeometry, block_grid, block_results, border_pairs
from ._inputs import Labels, as_labels
from ._metrics import _check, _codes, _common_attrs, _coords, _dims, _stack, _stats_graph

__all__ = ["connectivity"]


def _contacts_block(ext: np.ndarray, geom: BlockGeometry, *, k: int):
    codes, _ = _codes(ext, geom)  # values beyond 0..255 (reported by the histogram) as unlabelled
    on_border = tuple((geom.origin[a] == 0, geom.origin[a] + geom.shape[a] == geom.volume[a]) for a in range(3))
    counts, faces, voxels, contacts = component_contacts(codes, geom.halo_lo, geom.shape, on_border, k)
    # the labelled voxels this block puts on each face of the volume (z0, z1, y0, y1, x0, x1)
    on_faces = np.array([np.count_nonzero(f) if on_border[j // 2][j % 2] else 0 for j, f in enumerate(faces)])
    return counts, faces, voxels, contacts, on_faces


def _classes(lab: Labels, blocks: list[tuple], pairs: dict, grid: tuple[int, ...], axis: int) -> dict[str, np.ndarray]:
    """Per phase of one frame: its voxels in percolating / isolated / other components, the
    number of components and the voxels of the largest, from the blocks' results (C order) and
    the pairs of component ids that meet across each border between blocks (:func:`border_pairs`)."""
    counts = np.stack([b[0] for b in blocks])  # (blocks, k)
    starts = np.concatenate([np.zeros((len(blocks), 1), np.int64), np.cumsum(counts, axis=1)], axis=1)
    flat = {loc: i for i, loc in enumerate(np.ndindex(*grid))}
    out: dict[str, list] = {key: [] for key in ("percolating", "isolated", "unknown", "components", "largest")}

    def phase_pairs(pr: np.ndarray, b: tuple, nb: tuple, p: int) -> np.ndarray:  # phase p's ids on both sides, from 1
        lo, hi = starts[flat[b], p], starts[flat[nb], p]
        keep = (pr[:, 0] > lo) & (pr[:, 0] <= starts[flat[b], p + 1]) & (pr[:, 1] > hi) & \
            (pr[:, 1] <= starts[flat[nb], p + 1])
        return pr[keep] - np.array([lo, hi])

    for p in range(lab.k):
        pick = [slice(starts[i, p], starts[i, p + 1]) for i in range(len(blocks))]
        comp = join_components(counts[:, p].reshape(grid),
                               {(b, nb): phase_pairs(pr, b, nb, p) for (b, nb), pr in pairs.items()})
        n = int(comp.max()) + 1 if len(comp) else 0
        voxels = np.concatenate([b[2][s] for b, s in zip(blocks, pick)])
        touch = np.concatenate([b[3][s] for b, s in zip(blocks, pick)])
        size = np.bincount(comp, weights=voxels, minlength=n)
        hit = np.stack([np.bincount(comp, weights=touch[:, j], minlength=n) > 0 for j in range(len(CONTACTS))], 1)
        spans = hit[:, 2 * axis] & hit[:, 2 * axis + 1]
        alone = ~hit.any(axis=1)
        out["percolating"].append(size[spans].sum())
        out["isolated"].append(size[alone].sum())
        out["unknown"].append(size[~spans & ~alone].sum())
        out["components"].append(n)
        out["largest"].append(size.max() if n else 0)
    return {key: np.asarray(v) for key, v in out.items()}


def _warn_unlabelled_faces(lab: Labels, blocks: list[tuple], ax: int, t: int) -> None:
    """Warn where less than half as much of a face normal to the axis is labelled as of the
    volume (e.g. a cylindrical field of view seen from the side): few components can touch both
    faces there. Along the cylinder's axis its faces are labelled as the volume is (a narrow
    field of view, under half the cross-section, spans z as well as a wide one): not said."""
    on_faces = np.sum([b[4] for b in blocks], axis=0)
    area = int(np.prod([n for a, n in enumerate(lab.spatial_shape) if a != ax]))
    labelled = min(on_faces[2 * ax], on_faces[2 * ax + 1]) / area
    in_volume = sum(float(np.sum(b[2])) for b in blocks) / int(np.prod(lab.spatial_shape))
    if labelled < 0.5 * in_volume:
        import warnings

        name = AXES[ax]
        warnings.warn(f"connectivity along {name}{f' (t={t})' if lab.series else ''}: only {100 * labelled:.0f} % of "
                      f"a face normal to {name} is labelled (the rest unlabelled, e.g. outside a cylindrical field of "
                      f"view seen from the side), so few components can touch both faces and `percolating` reads low. "
                      f"Measure along the field of view's axis, or in a box inside it (bigseg.io.inscribed_box).",
                      stacklevel=3)


def connectivity(labels: Any, *, axis: str | int = "z", phases: Any = None, progress: bool = False) -> xr.Dataset:
    """How each phase is connected: the share of its voxels in components that span the volume
    along ``axis``, that are cut off inside it, and that cannot be told apart from the volume
    alone.

    Components are 6-connected (face neighbours, as transport through the phase needs), joined
    across blocks exactly: the result does not depend on the chunking. Each component is

    - **percolating** when it touches both faces of the volume normal to ``axis`` (e.g. the
      pore space from separator to current collector, the active material and CBD networks
      that carry electrons through the electrode),
    - **isolated** when it touches no face of the volume and no unlabelled voxel (255, outside
      the field of view): cut off in the sample itself (e.g. closed pores, particles without
      contact), whatever lies beyond the imaged volume,
    - **unknown** otherwise: it reaches the edge of what was imaged without spanning it, so it
      may connect outside (the classes of percolating, isolated and unknown voxels of
      Usseglio-Viretta et al. 2018).

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer labels, values ``0..len(phases)-1`` (255:
        unlabelled, left out; a component beside such a voxel counts as reaching the edge).
    axis : ``"z"``, ``"y"`` or ``"x"`` (or 0, 1, 2): the direction to span (e.g. through the electrode).
    phases : phase names by label value, default ``labels.attrs["phases"]`` or
        ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    Dataset over ``phase`` (and ``t``): ``percolating``, ``isolated`` and ``unknown`` (fractions
    of the phase's voxels, summing to 1; NaN for an absent phase), ``largest`` (the largest
    component's share), ``components`` (how many) and ``voxels`` (the phase's voxels).
    """
    lab = as_labels(labels, phases=phases)
    ax = parse_axis("axis", axis)
    if lab.spatial_shape[ax] < 2:  # both faces are one plane: every component would "span" it
        raise InputError(f"Expected `labels` to have at least 2 voxels along `axis`={AXES[ax]!r} (a component "
                         f"percolates from one face to the other). Got shape {lab.spatial_shape} instead.")
    hists = _stats_graph(lab, hist_only=True)
    frames = lab.frames()
    # per frame: the blocks' results without their faces, and the pairs of ids meeting across borders
    results = [block_results(functools.partial(_contacts_block, k=lab.k), f, depth=1) for f in frames]
    parts = [border_pairs(r, 1) for r in results]
    res = compute(*hists, *parts, desc=f"connectivity along {AXES[ax]}", progress=progress)
    _check(lab, res[: len(hists)], allow_unlabelled=True)
    per = []
    for t, (r, (blocks, pairs)) in enumerate(zip(results, res[len(hists):])):
        per.append(_classes(lab, blocks, pairs, block_grid(r), ax))
        _warn_unlabelled_faces(lab, blocks, ax, t)
    dims = _dims(lab, ("phase",))
    voxels = _stack(lab, [(c["percolating"] + c["isolated"] + c["unknown"]).astype(np.int64) for c in per])
    with np.errstate(invalid="ignore", divide="ignore"):
        share = {key: _stack(lab, [c[key] for c in per]) / voxels for key in ("percolating", "isolated", "unknown",
                                                                             "largest")}
    along = f"both faces normal to {AXES[ax]}"
    ds = xr.Dataset(
        {
            "percolating": (dims, share["percolating"], {"units": "1", "long_name": f"share of the phase in components touching {along}"}),
            "isolated": (dims, share["isolated"], {"units": "1", "long_name": "share of the phase in components touching no face and no unlabelled voxel"}),
            "unknown": (dims, share["unknown"], {"units": "1", "long_name": "share of the phase in components reaching the volume's edge without spanning it"}),
            "largest": (dims, share["largest"], {"units": "1", "long_name": "share of the phase in its largest component"}),
            "components": (dims, _stack(lab, [c["components"] for c in per]), {"units": "1", "long_name": "6-connected components"}),
            "voxels": (dims, voxels, {"units": "voxel", "long_name": "voxels of the phase"}),
        },
        coords=_coords(lab, phase=lab.phases),
    )
    ds.attrs.update(axis=AXES[ax], connectivity=6, **_common_attrs(lab))
    return ds
