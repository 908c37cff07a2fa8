"""Per-particle statistics: instance labelling stitched across blocks and one table row per particle."""

from __future__ import annotations

import functools
import math
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from .._parse import parse_choice, parse_flag, parse_in_range, parse_path, parse_positive_float, parse_positive_int
from ..errors import InputError, OutputExistsError
from ..io._volume import (as_volume, frame_arrays, is_zarr_store, origin_of, own_units, phase_named, time_unit,
                          warn_other_grid, zarr_source)
from ..kernels.particles import (PARTIAL_KEYS, axis_lengths, block_components, join_components, label_points,
                                  mutual_matches, overlap_counts, particle_markers, particle_partials, split_particles)
from ..runtime._malloc import release_free_heap
from ..runtime._progress import compute
from ._blockwise import BlockGeometry, block_grid, block_results, border_pairs, crop_halo, ensure_min_chunks, map_with_halo
from ._inputs import Labels, as_labels
from ._metrics import _check, _phase_index, _stats_graph, phases_attr

__all__ = ["particles", "particle_labels"]

# marching cubes and faces need 2 voxels of the neighbours, and one more to fill unlabelled ones among them
_MC_HALO = 3
#: how far above 1 a sphericity may read before its smoothed area counts as lost (a ball of
#: radius 7 voxels reads 1.04, of 5 1.08, of 4 1.13, of 3 1.26)
SPHERICITY_TOLERANCE = 0.1


def _markers_block(codes: np.ndarray, geom: BlockGeometry, *, phase: int, spacing, h: float) -> np.ndarray:
    """Global linear indices (int64, sorted) of the block's marker voxels."""
    origin = tuple(o - lo for o, lo in zip(geom.origin, geom.halo_lo))
    open_sides = tuple((lo > 0, hi > 0) for lo, hi in zip(geom.halo_lo, geom.halo_hi))
    m = crop_halo(particle_markers(codes, phase, origin, geom.volume, spacing, h, open_sides), geom, 0)[0]
    z, y, x = np.nonzero(m)
    out = np.ravel_multi_index((z + geom.origin[0], y + geom.origin[1], x + geom.origin[2]), geom.volume)
    del m
    release_free_heap()
    return out


def _split_block(codes: np.ndarray, geom: BlockGeometry, *, phase: int, spacing, index: np.ndarray,
                 ids: np.ndarray) -> np.ndarray:
    """Watershed ids of the block, flooded from the global markers near it (``index`` -> ``ids``)."""
    origin = tuple(o - lo for o, lo in zip(geom.origin, geom.halo_lo))
    pos = [c - o for c, o in zip(np.unravel_index(index, geom.volume), origin)]
    inside = np.ones(len(index), bool)
    for p, n in zip(pos, codes.shape):
        inside &= (p >= 0) & (p < n)
    markers = np.zeros(codes.shape, ids.dtype)
    markers[pos[0][inside], pos[1][inside], pos[2][inside]] = ids[inside]
    out = crop_halo(split_particles(codes, markers, phase, origin, geom.volume, spacing), geom, 0)[0].copy()
    del markers
    release_free_heap()  # the distance map and the watershed's buffers: back to the OS, not kept as free heap
    return out


def _markers_near(index: np.ndarray, ids: np.ndarray, volume: tuple[int, int, int]):
    """``geom -> {"index", "ids"}``: the markers in a block's halo region only (z range by
    binary search on the sorted indices, then y and x), so each task carries its own few."""
    z, y, x = np.unravel_index(index, volume)

    def near(geom: BlockGeometry) -> dict[str, np.ndarray]:
        lo = [o - h for o, h in zip(geom.origin, geom.halo_lo)]
        hi = [o + s + h for o, s, h in zip(geom.origin, geom.shape, geom.halo_hi)]
        a, b = np.searchsorted(z, lo[0]), np.searchsorted(z, hi[0])
        sel = np.arange(a, b)
        sel = sel[(y[sel] >= lo[1]) & (y[sel] < hi[1]) & (x[sel] >= lo[2]) & (x[sel] < hi[2])]
        return {"index": index[sel], "ids": ids[sel]}

    return near


def _partials_block(ids, codes, *rest, phase: int, k: int, spacing, area_method: str = "marching_cubes") -> dict[str, np.ndarray]:
    intensity = rest[0] if len(rest) == 2 else None
    geom: BlockGeometry = rest[-1]
    return particle_partials(ids, codes, intensity, phase=phase, n_phases=k, origin=geom.origin,
                             shape=geom.shape, volume=geom.volume, halo_lo=geom.halo_lo,
                             halo_hi=geom.halo_hi, spacing=spacing, area_method=area_method)


def _markers(codes: da.Array, *, phase: int, depth: int, spacing, h: float) -> Any:
    """Delayed list of the global linear indices of the marker voxels, one array per block."""
    return block_results(functools.partial(_markers_block, phase=phase, spacing=spacing, h=h), codes, depth=depth)


def _ids_graph(codes: da.Array, *, phase: int, split: bool, depth: int, spacing,
               markers: np.ndarray | None = None) -> da.Array:
    """Lazy int32 particle ids (0 = none; int64 beyond 2**31 - 1 of them) of one 3D frame,
    consistent across blocks.

    ``split=True`` needs ``markers``: the sorted global linear indices of all marker voxels
    (computed from :func:`_markers`), labelled here by 6-connected components.
    """
    if not split:
        return _components(codes, phase)
    shape = tuple(int(n) for n in codes.shape)
    mids = label_points(markers, shape)  # type: ignore[arg-type]
    dtype = _id_dtype(int(mids.max(initial=0)))
    fn = functools.partial(_split_block, phase=phase, spacing=spacing)
    return map_with_halo(fn, codes, depth=depth, dtype=dtype,
                         block_kwargs=_markers_near(markers, mids.astype(dtype), shape))


def _id_dtype(n: int) -> np.dtype:
    """int32 for ids up to ``n``, int64 beyond 2**31 - 1: a cast wrapped them to negative ids,
    which the numbering, the label image and the tracks take for no particle (and a series'
    track numbers count every particle that started a track, over all its steps)."""
    return np.dtype(np.int32 if n <= np.iinfo(np.int32).max else np.int64)


def _faces_block(codes: np.ndarray, geom: BlockGeometry, *, phase: int):
    _, n, faces = block_components(codes == phase)
    return geom.origin, n, faces


def _cc_block(codes: np.ndarray, geom: BlockGeometry, *, phase: int, lut: np.ndarray) -> np.ndarray:
    lab, _, _ = block_components(codes == phase)
    return lut[lab]


def _components(codes: da.Array, phase: int) -> da.Array:
    """Lazy int32 ids (int64 beyond 2**31 - 1 components) of the 6-connected components of
    ``codes == phase``, stitched across blocks.

    The blocks are labelled twice (``scipy.ndimage.label`` is cheap): once for the pairs of
    labels that meet across their borders (matched on the workers: the faces never reach the
    client), which are joined on the client into global ids, and once to write them.
    """
    blocks = block_results(functools.partial(_faces_block, phase=phase), codes, depth=0)
    grid = block_grid(blocks)
    (res, found), = compute(border_pairs(blocks, 2), desc="particle components", progress=False)  # blocks in C order
    counts = np.array([n for _, n, _ in res], np.int64).reshape(grid)
    comp = join_components(counts, found)
    offsets = np.concatenate([[0], np.cumsum(counts.ravel())])
    dtype = _id_dtype(int(comp.max(initial=-1)) + 1)
    luts = {origin: np.concatenate([[0], comp[offsets[i]:offsets[i + 1]] + 1]).astype(dtype)
            for i, (origin, _, _) in enumerate(res)}
    return map_with_halo(functools.partial(_cc_block, phase=phase), codes, depth=0, dtype=dtype,
                         block_kwargs=lambda geom: {"lut": luts[geom.origin]})


def _all_markers(results: list[np.ndarray]) -> np.ndarray:
    return np.sort(np.concatenate([np.asarray(r, np.int64) for r in results])) if results else np.zeros(0, np.int64)


def _frame_ids(lab: Labels, idx: int, *, split: bool, depth: int, h: float,
               progress: bool) -> tuple[list[da.Array], list[int]]:
    """Pass 1: the label values of every frame, checked (values beyond the phases are refused,
    255 is unlabelled), and with ``split`` the marker voxels of every block of every frame, one
    compute; then the lazy particle ids of every frame, and the voxels of the phase per frame."""
    frames = lab.frames()
    hists = _stats_graph(lab, hist_only=True)
    mparts = [_markers(codes, phase=idx, depth=depth, spacing=lab.voxel_size, h=h) for codes in frames] if split else []
    res = compute(*hists, *mparts, desc=f"particle markers ({lab.phases[idx]})" if split else "label values",
                  progress=progress)
    counts = [int(c["hist"][idx]) for c in _check(lab, list(res[:len(hists)]), allow_unlabelled=True)]
    found = list(res[len(hists):])
    ids = [_ids_graph(codes, phase=idx, split=split, depth=depth, spacing=lab.voxel_size,
                      markers=_all_markers(found[t]) if split else None) for t, codes in enumerate(frames)]
    return ids, counts


def particle_labels(labels: Any, *, phase: str | int = "active", split: bool = True, max_diameter: int = 40,
                    h: float = 1.0, min_overlap: float = 0.5, phases: Any = None, progress: bool = False,
                    min_voxels: int = 1) -> da.Array:
    """Instance labels of the particles of one phase, numbered as :func:`particles` numbers its
    rows: a lazy int32 dask array (int64 for track numbers beyond 2**31 - 1), 0 = none, value =
    the table's ``id`` (raster order of each particle's first voxel, independent of the
    chunking) or, for a (t, z, y, x) series, its ``track`` (the same particle has the same value
    at every step, e.g. one colour in napari).

    Two passes over ``labels`` run at once (the label values, checked as :func:`particles`
    checks them, and the split markers; then the numbering: each block's particles, first
    voxels and, for a series, overlaps with the next step); writing or computing the result
    runs the last.

    Parameters
    ----------
    labels, phase, split, max_diameter, h, min_overlap, min_voxels, progress : as for
        :func:`particles` (defaults ``"active"``, True, 40 voxels, 1 voxel edge, 0.5, 1 voxel;
        progress bars off): a particle smaller than ``min_voxels`` is 0 here as it has no row there.
    phases : phase names by label value, default ``labels.attrs["phases"]`` or
        ``["pore", "cbd", "active"]``.

    Returns
    -------
    Lazy int32 (or int64) dask array of the shape of ``labels``, as described above.
    """
    lab, idx, depth, h = _parse(labels, phase, split, max_diameter, h, phases)
    min_overlap = parse_in_range("min_overlap", min_overlap, 0.0, 1.0, closed="right")
    min_voxels = parse_positive_int("min_voxels", min_voxels)
    nframes = len(lab.frames())
    ids_frames, _ = _frame_ids(lab, idx, split=split, depth=depth, h=h, progress=progress)
    numbering = [block_results(_numbering_block, ids, depth=0) for ids in ids_frames]
    overlaps = [block_results(_overlap_block, a, b, depth=0) for a, b in zip(ids_frames, ids_frames[1:])]
    res = list(compute(*numbering, *overlaps, desc="particle numbering", progress=progress))
    order = []  # per frame: (voxels per particle, block-level ids), in table order
    for blocks in res[:nframes]:
        raw = np.concatenate([b[1] for b in blocks])
        df = pd.DataFrame({"raw": raw, "first": np.concatenate([b[2] for b in blocks]),
                           "voxels": np.concatenate([b[3] for b in blocks])})
        g = df.groupby("raw").agg({"first": "min", "voxels": "sum"})
        g = g[g["voxels"] >= min_voxels].sort_values("first")
        order.append((g[["voxels"]].reset_index(drop=True), g.index.to_numpy(np.int64)))
    values = (_tracks(order, res[nframes:], min_overlap) if lab.series
              else [np.arange(1, len(raw) + 1) for _, raw in order])
    out = [_relabelled(ids, raw, val) for ids, (_, raw), val in zip(ids_frames, order, values)]
    return da.stack(out) if lab.series else out[0]


def _numbering_block(ids: np.ndarray, geom: BlockGeometry) -> tuple:
    """The block's particles (block-level ids, sorted), their first voxel (smallest global linear
    index) and voxel counts."""
    flat = ids.ravel()
    where = np.flatnonzero(flat > 0)
    uniq, inv, counts = np.unique(flat[where], return_inverse=True, return_counts=True)
    glob = np.ravel_multi_index(tuple(c + o for c, o in zip(np.unravel_index(where, ids.shape), geom.origin)),
                                geom.volume)
    first = np.full(len(uniq), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, inv.ravel(), glob)
    return geom.origin, uniq.astype(np.int64), first, counts.astype(np.int64)


def _parse(labels, phase, split, max_diameter, h, phases) -> tuple[Labels, int, int, float]:
    parse_flag("split", split)
    depth = parse_positive_int("max_diameter", max_diameter)
    h = parse_positive_float("h", h)
    lab = as_labels(labels, phases=phases)
    return lab, _phase_index(lab, phase), min(depth, max(lab.spatial_shape)), h


def particles(labels: Any, *, phase: str | int = "active", intensity: Any = None, split: bool = True,
              max_diameter: int = 40, h: float = 1.0, min_overlap: float = 0.5, phases: Any = None,
              labels_to: str | os.PathLike | None = None, overwrite: bool = False,
              progress: bool = False, area_method: str = "marching_cubes", min_voxels: int = 1) -> pd.DataFrame:
    """One row per particle of ``phase``: size, shape, position, intensity and contacts.

    Parameters
    ----------
    labels : (z, y, x) or (t, z, y, x) integer phase labels (DataArray, dask or NumPy), values
        ``0..len(phases)-1``; ``attrs["voxel_size"]`` and ``attrs["unit"]`` give physical units.
    phase : the particle phase, by name or label value (default ``"active"``, e.g. NMC).
    intensity : grey values on the same grid (e.g. the tomogram), for ``mean_intensity``,
        ``min_intensity`` and ``max_intensity``.
    split : False: particles are the 6-connected components of the phase (exact, any size).
        True (default): touching particles are split by a distance-transform watershed: one
        marker per h-maximum of the Euclidean distance to the other phases (domes more than
        ``h`` voxel edges above the saddle towards a higher dome), flooded inside the phase.
    max_diameter : the halo, in voxels, each block borrows from its neighbours for the split:
        the width of the largest particle. A particle that crosses a block border and reaches
        further than this beyond it is flagged by a warning (its split may then depend on the
        chunking); one inside a single block is seen whole whatever its size.
    h : h-maxima height in voxel edges (default 1); larger values split fewer particles.
    min_overlap : series only: the share of the smaller particle two particles of consecutive
        steps must have in common to be one track (default 0.5; in (0, 1]).
    labels_to : also write the particles' instance labels (value = the row's ``id``, for a
        series its ``track``; 0 = none) as this OME-Zarr label image, e.g.
        ``"scan.ome.zarr/labels/particles"``: what :func:`particle_labels` gives, from the same
        split (each block's watershed runs once for both; the raw ids wait in a scratch zarr
        beside the image, removed afterwards). ``overwrite`` replaces an existing one.
    min_voxels : the smallest particle listed, in voxels (default 1: every one): a particle of
        fewer voxels (after the split), e.g. a speck of noise a threshold left, has no row, no
        ``id`` (the rows are numbered among those kept) and no value in ``labels_to`` (0); for a
        series no track at that step. How many were left out, and their voxels:
        ``attrs["small_particles"]``, ``attrs["small_voxels"]``.
    area_method : how ``surface_area`` is measured: ``"marching_cubes"`` (default, below) or
        ``"crofton"``: the crossings of the particle's surface by lines along the 13 neighbour
        directions (:func:`bigseg.measure.interfaces`' ``"crofton"``): balls of radius 3 voxels
        within 1.5 % (marching cubes: 26 % low, so NaN), no particle too small or too thin for a
        surface; the whole table in 1.1–1.4 × the meshes' time.
    phases : phase names by label value, default ``labels.attrs["phases"]`` or
        ``["pore", "cbd", "active"]``.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    pandas.DataFrame, one row per particle (and per ``t`` for a series), numbered ``id`` =
    1, 2, ... in raster order of each particle's first voxel (the numbering of
    ``skimage.measure.label`` for ``split=False``), independent of the chunking. Columns:

    * for a series, ``t`` and ``track``: the same particle through time. A particle continues
      the track of the particle of the previous step it shares most voxels with, when that one
      also shares most with it and the overlap is at least ``min_overlap`` of the smaller of
      the two (a cracked particle continues as its largest piece; the other pieces, and
      particles that appear, start new tracks, numbered in order of appearance). Overlap
      tracking assumes the sample does not move between scans by more than a fraction of a
      particle (align the scans first otherwise: :func:`bigseg.filters.align`);

    * ``voxels``; ``volume`` (``unit^3``); ``equivalent_diameter`` = (6 V / π)^(1/3) (``unit``);
    * ``surface_area`` (``unit^2``): the particle's smoothed marching-cubes area (3 × 3 × 3 mean
      of its indicator, iso-level 0.5, as :func:`bigseg.measure.surface_area`), open at the
      volume border and at unlabelled voxels; NaN for a particle too small to leave a surface
      at that level (under about 14 voxels) and for one whose smoothed area is more than 9 %
      below that of the ball of its volume (no closed surface is smaller: the smoothing lost it,
      as for a ball under about 5 voxels in radius, which reads 10-20 % low, or a sheet a voxel
      or two thin); ``sphericity`` = π^(1/3) (6 V)^(2/3) / A with V the voxel volume: about 1
      for a ball (1.01-1.02 at a radius of 10 voxels, 1.04 at 7, 1.08 at 5: the smoothed surface
      lies slightly inside the voxels), at most 1.1 (NaN with the area above); NaN for a particle that
      touches the volume border (its surface is cut open there, so the ratio would mean
      nothing: up to 17 for a small cut particle) or whose smoothed surface vanishes (fewer
      than about 14 voxels);
    * ``axis_major_length``, ``axis_minor_length`` (``unit``): the longest and shortest full axes
      of the ellipsoid with the particle's second moments (each voxel a solid box; scikit-image's
      names, whose voxels are points: a ball of radius 10 voxels reads the same within 0.5 %, one
      voxel 1.29 edges here, 0 there), in physical units for anisotropic voxels;
      ``aspect_ratio`` = major / minor (1 for a ball, 2 for a 2:1 spheroid, 2.3 for a cylinder
      twice as long as wide; truncated, as the volume, for a particle that touches the border);
    * ``centroid_z/y/x`` (``unit``, voxel centres at index × voxel size, plus the volume's
      origin: a box cut from a scan gives positions in the scan); ``bbox_z0/y0/x0``,
      ``bbox_z1/y1/x1`` (voxel indices into ``labels`` as given, half-open as scikit-image's
      ``bbox``: for a box cut from a scan, indices of the box, where the centroids are in the
      scan's frame; ``bigseg.io.origin_of`` gives where the box starts in the scan, in ``unit``);
    * ``mean_intensity``, ``min_intensity``, ``max_intensity``: the particle's grey values
      (``intensity_mean``/``_min``/``_max`` of ``skimage.measure.regionprops``; NaN without
      ``intensity``). NaN and inf grey values are no measurement: they are left out, counted in
      ``attrs["nonfinite_intensity_voxels"]`` and warned about (NaN for a particle with no finite one);
    * ``contact_<phase>`` for every other phase and ``contact_particle`` (other particles of
      the same phase): fractions of the area of the particle's voxel faces inside the volume
      shared with them (they add up to 1; with anisotropic voxels each face counts by its area,
      so a volume reads as the same volume resampled to cubic voxels); ``detachment`` =
      ``contact_pore`` when a phase is named "pore" (in any case: ``contact_Pore``; the
      pore-contact fraction of the surface, Jiang et al. 2020; NaN otherwise);
    * ``touches_border``: a voxel on the volume border or next to an unlabelled (255) voxel,
      e.g. the edge of the field of view (its size and shape are then truncated: flagged, not
      dropped). The split treats unlabelled voxels as the volume border (the particle may go on
      there): a volume with unlabelled voxels splits as the volume cropped without them.

    ``DataFrame.attrs`` holds the unit, voxel size, phase and options, and ``units``: the unit
    of every column (e.g. ``{"volume": "nm^3", "bbox_z0": "voxel", "sphericity": "1", ...}``).
    Every column is a sum, minimum or maximum of per-block partials and equals the whole-volume
    computation for any chunking (to float rounding).

    Examples
    --------
    >>> from bigseg import measure, synth
    >>> labels = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
    >>> table = measure.particles(labels, phase="active")  # pandas.DataFrame, one row per particle
    >>> len(table) > 0, list(table.columns[:6])
    (True, ['id', 'voxels', 'volume', 'equivalent_diameter', 'surface_area', 'sphericity'])
    >>> table.attrs["units"]["volume"], table.attrs["units"]["equivalent_diameter"]
    ('nm^3', 'nm')
    >>> inside = table[~table.touches_border]  # particles cut by the volume's border left out
    >>> bool((inside.detachment >= 0).all() and (inside.detachment <= 1).all())
    True
    """
    lab, idx, depth, h = _parse(labels, phase, split, max_diameter, h, phases)
    min_overlap = parse_in_range("min_overlap", min_overlap, 0.0, 1.0, closed="right")
    area_method = parse_choice("area_method", area_method, ("marching_cubes", "crofton"))
    min_voxels = parse_positive_int("min_voxels", min_voxels)
    target = _labels_target(labels_to, lab, overwrite) if labels_to is not None else None
    inten = None
    if intensity is not None:
        inten = as_volume(intensity, name="intensity", allow_series=True)
        if tuple(inten.shape) != tuple(lab.vol.shape):
            raise InputError(f"Expected `intensity` to have the shape of `labels` {tuple(lab.vol.shape)}. "
                             f"Got {tuple(inten.shape)} instead.")
        warn_other_grid(labels, lab.vol, "labels", intensity, inten, "intensity", stacklevel=3,
                        then="Each particle's grey values are read index by index.")
    frames = lab.frames()
    ifr = frame_arrays(inten) if inten is not None else None
    # pass 1: values check and (split) the marker voxels of every block; the voxels of the phase per frame
    ids_frames, counts = _frame_ids(lab, idx, split=split, depth=depth, h=h, progress=progress)
    # with somewhere to keep them (beside the image of labels_to, else beside the stored labels),
    # the particle ids are computed once, written, and read back with their halo by pass 2 (no
    # ids block waits in memory for its neighbours); in-memory labels keep them in the graph
    scratch = _scratch_folder(target, labels)
    try:
        if scratch is not None:
            ids_frames = _stored_ids(scratch, ids_frames, desc=f"particle split ({lab.phases[idx]})", progress=progress)
        # pass 2: the per-block partial tables of the particles (ids stitched across blocks)
        graphs = []
        for t, (ids, codes) in enumerate(zip(ids_frames, frames)):
            arrays = (ids, codes) + ((ifr[t],) if ifr is not None else ())
            fn = functools.partial(_partials_block, phase=idx, k=lab.k, spacing=lab.voxel_size, area_method=area_method)
            graphs.append(block_results(fn, *arrays, depth=_MC_HALO))
        # a series: the voxels each particle shares with those of the next step
        overlaps = [block_results(_overlap_block, a, b, depth=0) for a, b in zip(ids_frames, ids_frames[1:])]
        res = compute(*graphs, *overlaps, desc=f"particles ({lab.phases[idx]})", progress=progress)
        out = _assemble(list(res), len(graphs), lab, idx, with_intensity=inten is not None,
                        min_overlap=min_overlap, min_voxels=min_voxels, labels_to=target, ids_frames=ids_frames,
                        overwrite=overwrite, progress=progress)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if split:
        n_wide = int(_beyond_halo(out, ensure_min_chunks(frames[0], depth).chunks, depth).sum()) if len(out) else 0
        # phase voxels no marker reached: a particle's marker lay beyond a block's halo
        lost = sum(counts) - int(out["voxels"].sum()) - out.attrs["small_voxels"]
        if n_wide or lost:
            what = " and ".join(([f"{n_wide} particle(s) are wider than `max_diameter`={depth} voxels where they "
                                  "cross a block border"] if n_wide else [])
                                + ([f"{lost} voxel(s) of the phase belong to no particle"] if lost else []))
            warnings.warn(f"{what}: the split may depend on the chunking. Pass a larger `max_diameter` (pipeline "
                          "configuration: `measure.max_diameter`).", stacklevel=2)
    if out.attrs.get("nonfinite_intensity_voxels"):
        warnings.warn(f"{out.attrs['nonfinite_intensity_voxels']} grey value(s) of `intensity` inside the particles "
                      "are NaN or inf: left out of their mean_intensity, min_intensity and max_intensity (NaN for a "
                      "particle without a finite one).", stacklevel=2)
    out.attrs.update(unit=lab.unit, voxel_size=list(lab.voxel_size), phase=lab.phases[idx], phases=phases_attr(lab.phases),
                     split=bool(split), min_voxels=min_voxels,
                     max_diameter=depth, h=h, surface_area_method=area_method)
    out.attrs["units"] = _column_units(out, lab, inten)
    if lab.series:  # the series' steps, even those without a particle
        out.attrs["t"] = (lab.vol.coords["t"].values if "t" in lab.vol.coords else np.arange(lab.vol.sizes["t"])).tolist()
    return out


def _column_units(table: pd.DataFrame, lab: Labels, intensity: xr.DataArray | None) -> dict[str, str]:
    """Unit of every column of the table: lengths in the volume's ``unit`` (powers for areas and
    volumes), ``"voxel"`` for voxel indices and counts, ``"1"`` for ratios, the grey image's
    ``units`` attribute (if it states one of its own) for the intensities, the ``t`` coordinate's
    for a series."""
    u = lab.unit
    grey = own_units(intensity) if intensity is not None else ""
    units = {"t": time_unit(lab.vol.coords["t"]) if "t" in lab.vol.coords else "", "id": "", "track": "",
             "voxels": "voxel", "volume": f"{u}^3", "equivalent_diameter": u, "surface_area": f"{u}^2",
             "sphericity": "1", "axis_major_length": u, "axis_minor_length": u, "aspect_ratio": "1",
             "detachment": "1", "touches_border": ""}
    units.update({f"centroid_{ax}": u for ax in "zyx"})
    units.update({f"bbox_{ax}{e}": "voxel" for ax in "zyx" for e in "01"})
    units.update({f"{s}_intensity": grey for s in ("mean", "min", "max")})
    units.update({c: "1" for c in table.columns if c.startswith("contact_")})
    return {c: units[c] for c in table.columns}


def _beyond_halo(table: pd.DataFrame, chunks: tuple[tuple[int, ...], ...], depth: int) -> np.ndarray:
    """Per row: the particle's bounding box leaves the extended region (block ± ``depth``) of a
    block whose core it reaches, so that block split it without seeing all of it. A particle
    inside one block's core is seen whole whatever its size."""
    lo = table[["bbox_z0", "bbox_y0", "bbox_x0"]].to_numpy(np.int64)
    hi = table[["bbox_z1", "bbox_y1", "bbox_x1"]].to_numpy(np.int64)
    out = np.zeros(len(table), bool)
    for ax, ch in enumerate(chunks):
        bounds = np.concatenate([[0], np.cumsum(ch)])
        starts, ends = bounds[:-1], bounds[1:]
        first = np.searchsorted(ends, lo[:, ax], side="right")  # blocks reached along this axis: first..last
        last = np.searchsorted(starts, hi[:, ax], side="left") - 1
        out |= (lo[:, ax] < starts[last] - depth) | (hi[:, ax] > ends[first] + depth)
    return out


def _assemble(res: list, nframes: int, lab: Labels, idx: int, *, with_intensity: bool,
              min_overlap: float, min_voxels: int, labels_to: Path | None, ids_frames: list[da.Array], overwrite: bool,
              progress: bool) -> pd.DataFrame:
    """The table from the blocks' partials of each of ``nframes`` frames (``res``' first items;
    for a series, then the overlaps of consecutive steps, each a list over the blocks); with
    ``labels_to`` the instance labels, relabelled from the (stored) raw ids."""
    tables = [_table(p, lab, idx, with_intensity=with_intensity, min_voxels=min_voxels) for p in res[:nframes]]
    if lab.series:
        tcoord = lab.vol.coords["t"].values if "t" in lab.vol.coords else np.arange(len(tables))
        values = _tracks(tables, res[nframes:], min_overlap)
        for t, (tab, _), track in zip(tcoord, tables, values):
            tab.insert(0, "t", t)
            tab.insert(2, "track", track)
        out = pd.concat([tab for tab, _ in tables], ignore_index=True)
        for key in ("small_particles", "small_voxels") + (("nonfinite_intensity_voxels",) if with_intensity else ()):
            out.attrs[key] = sum(tab.attrs[key] for tab, _ in tables)
    else:
        values = [tables[0][0]["id"].to_numpy(np.int64)]
        out = tables[0][0]
    if labels_to is not None:
        from ..io import save_labels

        ids = [_relabelled(f, raw, val) for f, (_, raw), val in zip(ids_frames, tables, values)]
        save_labels(xr.DataArray(da.stack(ids) if lab.series else ids[0], dims=lab.vol.dims), labels_to.parent.parent,
                    name=labels_to.name, instances=True, overwrite=overwrite, progress=progress)
    return out


def _relabelled(ids: da.Array, raw: np.ndarray, value: np.ndarray) -> da.Array:
    """``value`` of every raw id (0 stays 0), int32 or, for values beyond 2**31 - 1, int64
    (:func:`_id_dtype`); the lookup table is one key of the graph."""
    order = np.argsort(raw, kind="stable")
    lut = np.stack([np.asarray(raw, np.int64)[order], np.asarray(value, np.int64)[order]])
    dtype = _id_dtype(int(lut[1].max(initial=0)))
    table = da.from_array(lut, chunks=lut.shape)
    return da.blockwise(_lookup, "zyx", ids, "zyx", table, "ab", dtype=dtype, concatenate=True, out_dtype=dtype)


def _lookup(ids: np.ndarray, lut: np.ndarray, out_dtype: np.dtype = np.dtype(np.int32)) -> np.ndarray:
    out = np.zeros(ids.shape, out_dtype)
    sel = ids > 0
    if sel.any() and lut.shape[1]:
        raw = ids[sel]
        at = np.minimum(np.searchsorted(lut[0], raw), lut.shape[1] - 1)
        # a particle without a row (smaller than min_voxels) is no particle here either: 0
        out[sel] = np.where(lut[0][at] == raw, lut[1][at], 0)
    return out


def _labels_target(labels_to: Any, lab: Labels, overwrite: bool) -> Path:
    """``labels_to`` checked before any work: ``IMAGE/labels/NAME`` of an existing image of the
    labels' shape, new unless ``overwrite``."""
    p = parse_path("labels_to", labels_to)  # (labels_to=5 was Python's TypeError from pathlib)
    image = p.parent.parent
    if p.parent.name != "labels" or not is_zarr_store(image):
        raise InputError(f"Expected `labels_to` to name a label image IMAGE/labels/NAME of an existing OME-Zarr "
                         f"image, e.g. 'scan.ome.zarr/labels/particles'. Got {str(labels_to)!r} instead.")
    if not parse_flag("overwrite", overwrite) and p.exists():
        raise OutputExistsError(f"Expected `labels_to` to be a new label image or `overwrite=True`. "
                                f"Got {str(p)!r}, which exists.")
    from ..io import open_volume

    shape = tuple(open_volume(image).shape)
    if shape != tuple(lab.vol.shape):
        raise InputError(f"Expected the image of `labels_to` to have the labels' shape {tuple(lab.vol.shape)}. "
                         f"Got {shape} ({str(image)!r}) instead.")
    return p


def _scratch_folder(target: Path | None, labels: Any) -> Path | None:
    """A new hidden folder for the raw particle ids, on the filesystem the workers share: beside
    the image of ``target``, else beside the stored label image ``labels`` came from (when it
    can be written there); ``None`` for labels held in memory."""
    if target is not None:
        image = target.parent.parent
        place, stem = image.parent, f"{image.name}.{target.name}"
    else:
        src = getattr(labels, "attrs", {}).get("source") if isinstance(labels, xr.DataArray) else None
        if not src or zarr_source(labels.data) is None:  # not (or no longer) a plain stored array
            return None
        image = Path(src).parent.parent if Path(src).parent.name == "labels" else Path(src)
        place, stem = image.parent, f"{image.name}.{Path(src).name}"  # outside the OME-Zarr
    folder = place.absolute() / f".{stem}.particle-ids-{uuid.uuid4().hex[:8]}"  # (workers in another directory)
    try:
        folder.mkdir(parents=False)
    except OSError:  # e.g. a read-only archive: the ids stay in the graph
        return None
    return folder


def _stored_ids(folder: Path, ids_frames: list[da.Array], *, desc: str, progress: bool) -> list[da.Array]:
    """Every frame's ids written into ``folder`` (one zarr array per frame, regular chunks: each
    block written by one task), then opened lazily: each block's watershed ran once."""
    import zarr

    targets, sources = [], []
    for t, ids in enumerate(ids_frames):
        chunks = tuple(max(c) for c in ids.chunks)
        targets.append(zarr.create_array(str(folder / str(t)), shape=ids.shape, chunks=chunks, dtype=ids.dtype,
                                         fill_value=0))
        sources.append(ids.rechunk(chunks))
    compute(da.store(sources, targets, lock=False, compute=False), desc=desc, progress=progress)
    return [da.from_zarr(str(folder / str(t))) for t in range(len(ids_frames))]


def _overlap_block(a: np.ndarray, b: np.ndarray, geom: BlockGeometry) -> tuple[np.ndarray, np.ndarray]:
    return overlap_counts(a, b)


def _tracks(tables: list[tuple[pd.DataFrame, np.ndarray]], overlaps: list[list], min_overlap: float) -> list[np.ndarray]:
    """Track number of every particle of every step: continued from the previous step by
    :func:`bigseg.kernels.particles.mutual_matches`, else new (numbered in order of appearance)."""
    out, next_track, prev = [], 1, None
    for t, (tab, raw) in enumerate(tables):
        track = np.zeros(len(tab), np.int64)
        if t > 0:
            (ptab, praw), parts = tables[t - 1], overlaps[t - 1]
            pairs = np.concatenate([p for p, _ in parts]) if parts else np.zeros((0, 2), np.int64)
            counts = np.concatenate([c for _, c in parts]) if parts else np.zeros(0, np.int64)
            key, inv = np.unique(pairs, axis=0, return_inverse=True)
            summed = np.bincount(inv.ravel(), weights=counts, minlength=len(key)).astype(np.int64)
            # block-level ids -> table ids (1, 2, ... by raster order)
            # (a particle without a row, smaller than min_voxels: no pair)
            a = pd.Series(np.arange(1, len(praw) + 1), index=praw).reindex(key[:, 0]).to_numpy()
            b = pd.Series(np.arange(1, len(raw) + 1), index=raw).reindex(key[:, 1]).to_numpy()
            both = ~(np.isnan(a) | np.isnan(b))
            a, b, summed = a[both].astype(np.int64), b[both].astype(np.int64), summed[both]
            size_a = np.concatenate([[0], ptab["voxels"].to_numpy()])
            size_b = np.concatenate([[0], tab["voxels"].to_numpy()])
            for ia, ib in mutual_matches(np.stack([a, b], axis=1), summed, size_a, size_b, min_overlap).items():
                track[ib - 1] = prev[ia - 1]
        new = track == 0
        track[new] = np.arange(next_track, next_track + int(new.sum()))
        next_track += int(new.sum())
        out.append(track)
        prev = track
    return out


def _table(parts: list[dict[str, np.ndarray]], lab: Labels, idx: int, *,
           with_intensity: bool, min_voxels: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """Add up the blocks' partials (sums, minima, maxima per id) into the particle table; also
    the block-level ids of its rows (row i is particle ``i + 1``)."""
    k = lab.k
    cols = {key: np.concatenate([p[key] for p in parts]) for key in PARTIAL_KEYS if key != "contacts"}
    contacts = np.concatenate([p["contacts"].reshape(-1, k + 1) for p in parts])
    df = pd.DataFrame(cols)
    for j in range(k + 1):
        df[f"c{j}"] = contacts[:, j]
    agg = {c: "sum" for c in df.columns if c != "id"}
    agg.update({c: "min" for c in ("min_z", "min_y", "min_x", "first", "min_intensity")})
    agg.update({c: "max" for c in ("max_z", "max_y", "max_x", "max_intensity")})
    g = df.groupby("id").agg(agg)
    g = g[g["voxels"] > 0]
    small = g["voxels"] < min_voxels  # no row (min_voxels)
    n_small, small_voxels = int(small.sum()), int(g.loc[small, "voxels"].sum())
    g = g[~small].sort_values("first")
    vs = np.asarray(lab.voxel_size, np.float64)
    n = g["voxels"].to_numpy(np.int64)
    volume = n * float(np.prod(vs))
    area = g["area"].to_numpy(np.float64)
    out = pd.DataFrame({"id": np.arange(1, len(g) + 1, dtype=np.int64), "voxels": n, "volume": volume})
    out["equivalent_diameter"] = np.cbrt(6.0 * volume / math.pi)
    # a particle too small for the smoothed indicator to reach 0.5 has no mesh: not measurable, not 0
    out["surface_area"] = np.where(area > 0, area, np.nan)
    shape = lab.spatial_shape
    lo = g[["min_z", "min_y", "min_x"]].to_numpy(np.int64)
    hi = g[["max_z", "max_y", "max_x"]].to_numpy(np.int64) + 1
    # cut by the volume's border or by unlabelled voxels (outside the field of view): the last
    # column of the contacts counts the faces against both
    border = (lo == 0).any(axis=1) | (hi == np.asarray(shape)).any(axis=1) | (g[f"c{k}"].to_numpy() > 0)
    ball = math.pi ** (1 / 3) * (6.0 * volume) ** (2 / 3)  # the area of the ball of the particle's volume
    with np.errstate(divide="ignore", invalid="ignore"):
        # a cut particle's surface is open where the volume ends: no sphericity (it would read > 1)
        sphericity = np.where((area > 0) & ~border, ball / area, np.nan)
    # no closed surface is smaller than the ball's (isoperimetric inequality): a smoothed area
    # more than SPHERICITY_TOLERANCE below it is the smoothing's loss (a particle a few voxels
    # across, or a sheet a voxel or two thin: CBD read up to 200× low), not a measurement
    lost = sphericity > 1.0 + SPHERICITY_TOLERANCE
    out.loc[lost, "surface_area"] = np.nan
    out["sphericity"] = np.where(lost, np.nan, sphericity)
    sums = g[["sum_z", "sum_y", "sum_x"]].to_numpy(np.float64)
    products = g[[f"sum_{a}{b}" if f"sum_{a}{b}" in g else f"sum_{b}{a}" for a in "zyx" for b in "zyx"]].to_numpy(
        np.float64).reshape(-1, 3, 3)
    axes = axis_lengths(n, sums, products, vs)
    out["axis_major_length"], out["axis_minor_length"] = axes[:, 0], axes[:, 2]
    out["aspect_ratio"] = axes[:, 0] / axes[:, 2]
    at = origin_of(lab.vol)  # a box of a scan: positions in the scan
    for a, ax in enumerate("zyx"):
        out[f"centroid_{ax}"] = at[a] + g[f"sum_{ax}"].to_numpy() / n * vs[a]
    for ax in "zyx":
        out[f"bbox_{ax}0"] = g[f"min_{ax}"].to_numpy(np.int64)
    for ax in "zyx":
        out[f"bbox_{ax}1"] = g[f"max_{ax}"].to_numpy(np.int64) + 1
    if with_intensity:  # over the particle's finite grey values (NaN where it has none)
        graded = g["intensity_voxels"].to_numpy(np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["mean_intensity"] = np.where(graded > 0, g["intensity"].to_numpy() / graded, np.nan)
        out["min_intensity"] = np.where(graded > 0, g["min_intensity"].to_numpy(np.float64), np.nan)
        out["max_intensity"] = np.where(graded > 0, g["max_intensity"].to_numpy(np.float64), np.nan)
    else:
        for key in ("mean_intensity", "min_intensity", "max_intensity"):
            out[key] = np.nan
    faces = g[[f"c{j}" for j in range(k)]].to_numpy(np.float64)
    inside = faces.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = faces / inside[:, None]
    for j, name in enumerate(lab.phases):
        if j != idx:
            out[f"contact_{name}"] = frac[:, j]
    out["contact_particle"] = frac[:, idx]
    pore = phase_named(lab.phases, "pore")  # ("Pore" too)
    out["detachment"] = out[f"contact_{pore}"] if pore is not None and lab.phases[idx] != pore else np.nan
    out["touches_border"] = border
    out = out.reset_index(drop=True)
    out.attrs.update(small_particles=n_small, small_voxels=small_voxels)
    if with_intensity:  # grey values left out of the statistics: NaN or inf inside particles
        out.attrs["nonfinite_intensity_voxels"] = int((n - graded).sum())
    return out, g.index.to_numpy(np.int64)
