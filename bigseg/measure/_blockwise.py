"""Dask orchestration of the per-block partials: halos, block geometry and additive reductions.

Every metric in :mod:`bigseg.measure` is ``sum over blocks of kernel(block + halo)``; this module
builds that graph. Blocks get a halo of ``depth`` voxels from their neighbours (none at the
volume border, ``boundary="none"``), each kernel call is told where its block lies, and the
small partial vectors are summed by dask's tree reduction, so peak memory is a few blocks.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.utils import funcname

from ..io._volume import zarr_source
from ..ops import min_chunks
from ..ops._blocks import block_tasks, per_block, task_name


__all__ = ["BlockGeometry", "block_grid", "block_partials", "block_results", "border_pairs", "map_with_halo", "ensure_min_chunks",
           "crop_halo", "MAX_BINS"]

#: the most bins (shells, radii) a block's partial sums may hold per phase: a step far finer than
#: the voxels would make each block allocate gigabytes of counts
MAX_BINS = 100_000


@dataclass(frozen=True)
class BlockGeometry:
    """Where a block lies: ``origin``/``shape`` of the block (no halo) in the volume of ``volume``
    shape, and the halo widths actually present on the low and high side of each axis."""

    origin: tuple[int, ...]
    shape: tuple[int, ...]
    volume: tuple[int, ...]
    halo_lo: tuple[int, ...]
    halo_hi: tuple[int, ...]


def ensure_min_chunks(arr: da.Array, depth: int, axes: tuple[int, ...] | None = None) -> da.Array:
    """Merge chunks thinner than ``depth`` into a neighbour so every block can lend a full halo
    (along ``axes``, default all; :func:`bigseg.ops.min_chunks` per axis)."""
    axes = tuple(range(arr.ndim)) if axes is None else axes
    new = tuple(min_chunks(c, depth) if ax in axes else c for ax, c in enumerate(arr.chunks))
    return arr.rechunk(new) if new != arr.chunks else arr


def _halo_array(a: da.Array, depth: dict[int, int], src: Any = None) -> da.Array:
    """``a`` with every block extended by ``depth[axis]`` voxels of its neighbours (none at the
    volume border): ``da.overlap`` in general; when ``a`` holds the stored zarr array ``src``
    (e.g. from ``open_volume``, in any chunking), one task per block that reads its extended
    region straight from the store (the same blocks), so no input chunk and none of the slices
    cut from it wait in memory for the neighbours that share it: the peak then stays that of
    the blocks in flight, however many blocks the volume has. Every chunk must be at least
    ``depth`` thick (:func:`ensure_min_chunks`), as for ``da.overlap``."""
    if src is None or not any(depth.values()):
        return da.overlap.overlap(a, depth=depth, boundary="none")
    edges = []
    for ax, chunks in enumerate(a.chunks):
        bounds = np.concatenate([[0], np.cumsum(chunks)])
        d, n = depth.get(ax, 0), int(bounds[-1])
        edges.append([(max(int(lo) - d, 0), min(int(hi) + d, n)) for lo, hi in zip(bounds[:-1], bounds[1:])])
    name = "halo-read-" + tokenize(a.name, sorted(depth.items()))
    dsk = {(name, *loc): (operator.getitem, src, tuple(slice(*edges[ax][i]) for ax, i in enumerate(loc)))
           for loc in np.ndindex(*a.numblocks)}
    chunks = tuple(tuple(hi - lo for lo, hi in e) for e in edges)
    return da.Array(HighLevelGraph.from_collections(name, dsk, dependencies=[]), name, chunks=chunks,
                    dtype=a.dtype, meta=np.empty((0,) * a.ndim, dtype=a.dtype))


def crop_halo(ext: np.ndarray, geom: BlockGeometry, depth: int) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
    """View of ``ext`` (block + its halo) keeping at most ``depth`` halo voxels per side."""
    sl = []
    lo = []
    hi = []
    for a in range(len(geom.shape)):
        l_ = min(depth, geom.halo_lo[a])
        h_ = min(depth, geom.halo_hi[a])
        start = geom.halo_lo[a] - l_
        sl.append(slice(start, start + l_ + geom.shape[a] + h_))
        lo.append(l_)
        hi.append(h_)
    return ext[tuple(sl)], tuple(lo), tuple(hi)


def _with_halo(arrays: tuple[da.Array, ...], depth: int, spatial_axes: int):
    """Chunk ``arrays`` alike, give every block a ``depth`` halo where the volume continues and
    return ``(overlapped arrays, core chunks, geometry(chunk-location) -> BlockGeometry)``."""
    sources = [zarr_source(a) for a in arrays]  # before any rechunk: stored arrays are read directly
    ref = arrays[0]
    lead = ref.ndim - spatial_axes
    target = tuple((n,) for n in ref.shape[:lead]) + ref.chunks[lead:]
    ref = ref.rechunk(target)
    ref = ensure_min_chunks(ref, max(depth, 1), axes=tuple(range(lead, ref.ndim)))  # no empty block either
    arrays = (ref,) + tuple(
        a.rechunk(tuple((n,) for n in a.shape[: a.ndim - spatial_axes]) + ref.chunks[lead:]) for a in arrays[1:]
    )
    chunks = ref.chunks[lead:]
    starts = [np.concatenate([[0], np.cumsum(c)]) for c in chunks]
    nblocks = [len(c) for c in chunks]
    shape = tuple(int(s) for s in ref.shape[lead:])
    core_chunks = ref.chunks
    if depth > 0:
        def dep(a: da.Array) -> dict[int, int]:  # no halo along an axis held in one chunk
            off = a.ndim - spatial_axes
            return {ax: (depth if ax >= off and nblocks[ax - off] > 1 else 0) for ax in range(a.ndim)}

        arrays = tuple(_halo_array(a, dep(a), src) for a, src in zip(arrays, sources))

    def geometry(loc: tuple[int, ...]) -> BlockGeometry:
        loc = tuple(loc)[lead:]
        return BlockGeometry(
            origin=tuple(int(starts[a][loc[a]]) for a in range(spatial_axes)),
            shape=tuple(int(chunks[a][loc[a]]) for a in range(spatial_axes)),
            volume=shape,
            halo_lo=tuple(depth if loc[a] > 0 else 0 for a in range(spatial_axes)),
            halo_hi=tuple(depth if loc[a] < nblocks[a] - 1 else 0 for a in range(spatial_axes)),
        )

    return arrays, core_chunks, geometry


def block_partials(
    func: Callable[..., np.ndarray],
    *arrays: da.Array,
    depth: int,
    nout: int,
    dtype: type | np.dtype,
    spatial_axes: int = 3,
) -> da.Array:
    """Sum over blocks of ``func(*blocks_with_halo, geom) -> (nout,)``.

    Parameters
    ----------
    func : pure function of the NumPy blocks (with a ``depth`` halo on the spatial axes, where
        the volume continues) and their :class:`BlockGeometry`; returns a 1D array of ``nout``.
    arrays : dask arrays whose LAST ``spatial_axes`` axes are (z, y, x), of the same spatial
        shape; they are chunked alike (the first array's chunks win); leading axes (e.g. phase)
        are kept whole.
    depth : halo width in voxels.

    Returns
    -------
    (nout,) lazy dask array, the sum of the partials (exact for integer ``dtype``).
    """
    arrays, _, geometry = _with_halo(arrays, depth, spatial_axes)
    lead = arrays[0].ndim - spatial_axes

    def wrapper(*blocks, block_info=None):
        out = np.asarray(func(*blocks, geometry(block_info[0]["chunk-location"])), dtype=dtype)
        return out.reshape((1,) * (lead + spatial_axes) + (nout,))

    out_chunks = tuple((1,) * len(c) for c in arrays[0].chunks) + ((nout,),)
    parts = da.map_blocks(
        wrapper, *arrays, dtype=dtype, chunks=out_chunks, new_axis=arrays[0].ndim, token=task_name(func),
        meta=np.empty((0,) * (arrays[0].ndim + 1), dtype=dtype),
    )
    return parts.sum(axis=tuple(range(arrays[0].ndim)), dtype=dtype)


def slab_partials(func: Callable[..., np.ndarray], array: da.Array, *, depth: int, axis: int, nout: int,
                  dtype: type | np.dtype) -> da.Array:
    """Per slice along ``axis``, the sum over blocks of ``func(block_with_halo, geom)``.

    ``func`` returns ``(block.shape[axis], nout)`` for the block's own slices (its halo only
    read); the result is the lazy ``(n_axis, nout)`` sum over each slab of blocks, chunked along
    ``axis`` as the volume is, so no partial holds more than its block's slices.
    """
    (arr,), core_chunks, geometry = _with_halo((array,), depth, 3)

    def wrapper(block, block_info=None):
        out = np.asarray(func(block, geometry(block_info[0]["chunk-location"])), dtype=dtype)
        shape = [1, 1, 1]
        shape[axis] = out.shape[0]
        return out.reshape(*shape, nout)

    out_chunks = tuple(c if d == axis else (1,) * len(c) for d, c in enumerate(core_chunks)) + ((nout,),)
    parts = da.map_blocks(wrapper, arr, dtype=dtype, chunks=out_chunks, new_axis=3, token=task_name(func),
                          meta=np.empty((0, 0, 0, 0), dtype=dtype))
    return parts.sum(axis=tuple(d for d in range(3) if d != axis), dtype=dtype)


def map_with_halo(func: Callable[..., np.ndarray], *arrays: da.Array, depth: int,
                  dtype: type | np.dtype, block_kwargs: Callable[[BlockGeometry], dict] | None = None) -> da.Array:
    """Lazy (z, y, x) array whose blocks are ``func(*blocks_with_halo, geom, **block_kwargs(geom))``.

    Like :func:`block_partials`, ``func`` sees every 3D block of ``arrays`` with a ``depth`` halo
    where the volume continues, and where that block lies; it returns the block proper (no
    halo). Use it for kernels that need global coordinates (e.g. deterministic tie-breaks).
    ``block_kwargs`` gives each block's task its own small arguments (e.g. the markers near it),
    so no task carries what every block needs between them.
    """
    arrays, core_chunks, geometry = _with_halo(arrays, depth, 3)
    if block_kwargs is None:
        def wrapper(*blocks, block_info=None):
            return _own(func(*blocks, geometry(block_info[0]["chunk-location"])), dtype)

        return da.map_blocks(wrapper, *arrays, dtype=dtype, chunks=core_chunks, token=task_name(func),
                             meta=np.empty((0, 0, 0), dtype=dtype))
    name, graph = block_tasks(_owning(func, dtype), *arrays, args=lambda idx: (geometry(idx),),
                              kwargs=lambda idx: block_kwargs(geometry(idx)))
    return da.Array(graph, name, chunks=core_chunks, dtype=dtype, meta=np.empty((0, 0, 0), dtype=dtype))


def _own(block: Any, dtype: Any) -> np.ndarray:
    """``block`` as an array of its own: a view of the block + halo (a core cut out of it)
    would keep the whole extended array alive for as long as dask holds the result (4.5x the
    memory for a 128-voxel block with a 40-voxel halo)."""
    out = np.asarray(block, dtype=dtype)
    return out.copy() if out.base is not None else out


def _owning(func: Callable[..., Any], dtype: Any) -> Callable[..., np.ndarray]:
    def run(*args: Any, **kwargs: Any) -> np.ndarray:
        return _own(func(*args, **kwargs), dtype)

    run.__name__ = funcname(func)  # the task's name on the dashboard (a partial: the function it wraps)
    return run


def block_results(func: Callable[..., Any], *arrays: da.Array, depth: int) -> Delayed:
    """One delayed list of ``func(*blocks_with_halo, geom)`` for every block of the (z, y, x)
    ``arrays``, blocks in C order (results of any kind, e.g. the per-particle partial tables of
    :func:`bigseg.measure.particles`). Block ``(i, j, k)``'s result is the graph's key
    ``(key, i, j, k)`` (:func:`border_pairs` reads them there)."""
    arrays, _, geometry = _with_halo(arrays, depth, 3)
    return per_block(func, *arrays, args=lambda idx: (geometry(idx),))


def block_grid(results: Delayed) -> tuple[int, ...]:
    """The grid of blocks :func:`block_results` cut (chunks of no voxel merged away: the grid of
    the arrays' chunks may have more)."""
    idx = np.array([k[1:] for k in results.__dask_graph__().layers[results.key] if isinstance(k, tuple)])
    return tuple(int(n) + 1 for n in idx.max(axis=0))


def _face_pairs_task(low: Any, high: Any, faces: int, axis: int) -> np.ndarray:
    from ..kernels.particles import face_pairs

    return face_pairs(low[faces][2 * axis + 1], high[faces][2 * axis])


def _without_faces(result: Any, faces: int) -> tuple:
    return tuple(None if i == faces else r for i, r in enumerate(result))


def _with_pairs(blocks: list, pairs: list, grid: tuple[int, ...]) -> tuple[list, dict]:
    from ..kernels.particles import neighbours

    return blocks, {(b, nb): p for (b, nb, _), p in zip(neighbours(grid), pairs)}


def border_pairs(results: Delayed, faces: int) -> Delayed:
    """For the per-block results of :func:`block_results` (a :func:`block_grid` of blocks) whose item
    ``faces`` is the block's six face label arrays (low and high per axis, as
    :func:`bigseg.kernels.particles.block_components` gives them): one delayed ``(results with
    None there, {(block, neighbour): pairs})``, the
    :func:`~bigseg.kernels.particles.face_pairs` across each border between blocks made on the
    workers. Only these reach the client, never the faces: they are the blocks' surfaces, 24
    bytes per voxel divided by the chunk edge (1.5 GiB for 2048³ in 128³ chunks), where the
    pairs are as many as the components that meet at a border."""
    from ..kernels.particles import neighbours

    grid = block_grid(results)
    name = "face-pairs-" + tokenize(results.key, faces)
    locs = list(np.ndindex(*grid))
    dsk: dict[Any, Any] = {(name, i): (_without_faces, (results.key, *loc), faces) for i, loc in enumerate(locs)}
    pairs = []
    for b, nb, a in neighbours(grid):
        pairs.append((name, len(dsk)))
        dsk[pairs[-1]] = (_face_pairs_task, (results.key, *b), (results.key, *nb), faces, a)
    dsk[name] = (_with_pairs, [(name, i) for i in range(len(locs))], pairs, tuple(grid))
    return Delayed(name, HighLevelGraph.from_collections(name, dsk, dependencies=[results]), layer=name)
