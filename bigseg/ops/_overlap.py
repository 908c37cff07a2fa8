"""Halo-aware ``map_overlap`` that is exact for any chunking.

The kernel receives each block extended by ``depth`` voxels of its neighbours on inner sides
and nothing beyond the array's edges (``boundary="none"``), so a kernel that implements a
boundary mode itself (e.g. ``scipy.ndimage`` with ``mode="reflect"``) sees the true array edge
and reproduces the whole-array result exactly. Chunks shorter than the halo are merged with
their neighbours first (``min_chunks``), so the halo never needs more than one neighbour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask.array as da
import numpy as np

__all__ = ["min_chunks", "map_overlap_exact", "block_slices"]


def min_chunks(chunks: Sequence[int], depth: int) -> tuple[int, ...]:
    """Merge neighbouring chunks of one axis so that every chunk is at least ``depth`` long.

    An axis shorter than ``depth`` becomes one chunk. Chunks already long enough are kept, so
    a well-chunked array is not rechunked at all.

    Parameters
    ----------
    chunks : the block lengths of one axis.
    depth : the shortest chunk allowed (a halo, in voxels).
    """
    chunks = tuple(int(c) for c in chunks)
    if depth <= 0 or all(c >= depth for c in chunks):
        return chunks
    out: list[int] = []
    acc = 0
    for c in chunks:
        acc += c
        if acc >= depth:
            out.append(acc)
            acc = 0
    if acc:
        if out:
            out[-1] += acc
        else:
            out.append(acc)
    return tuple(out)


def map_overlap_exact(
    func: Callable[..., Any],
    arr: da.Array,
    depth: int | Sequence[int],
    *,
    dtype: Any = None,
    meta: Any = None,
    name: str | None = None,
    token: str | None = None,
    **kwargs: Any,
) -> da.Array:
    """``dask.array.map_overlap`` with ``boundary="none"``, rechunking chunks shorter than the halo.

    Parameters
    ----------
    func : callable, block -> block of the same shape; it must implement the boundary mode at
        the array's edges itself (as ``scipy.ndimage`` filters do).
    arr : dask array
    depth : int or one int per axis, halo in voxels
    dtype : output dtype (default ``arr.dtype``)
    meta : the output's block type, as dask takes it (default: an empty array of the input's
        kind, NumPy or CuPy, in ``dtype``)
    name : the output's full dask name, as dask's ``name`` (default None: from ``token`` and the inputs)
    token : the name of its tasks (on the dashboard's task stream; default the function's name)
    **kwargs : passed on to ``func`` for every block (through ``map_overlap``)

    Returns
    -------
    dask array with ``arr``'s shape (chunks may be merged where they were shorter than ``depth``).
    """
    if isinstance(depth, (int, np.integer)):
        depth = (int(depth),) * arr.ndim
    depth = tuple(int(d) for d in depth)
    new = tuple(min_chunks(c, d) for c, d in zip(arr.chunks, depth))
    if new != arr.chunks:
        arr = arr.rechunk(new)
    # an axis held in one chunk needs no halo (the kernel sees the true edges on both sides)
    depth = tuple(0 if len(c) == 1 else d for c, d in zip(arr.chunks, depth))
    dtype = np.dtype(dtype if dtype is not None else arr.dtype)
    if meta is None:  # NumPy or CuPy, like the input's blocks
        meta = getattr(arr, "_meta", np.empty((0,) * arr.ndim)).astype(dtype)
    if all(d == 0 for d in depth):
        return arr.map_blocks(func, dtype=dtype, meta=meta, name=name, token=token, **kwargs)
    return arr.map_overlap(func, depth=depth, boundary="none", trim=True, dtype=dtype, meta=meta,
                           name=name, token=token, allow_rechunk=False, **kwargs)


def block_slices(chunks: tuple[tuple[int, ...], ...]) -> dict[tuple[int, ...], tuple[slice, ...]]:
    """Map each block index to its slices in the whole array.

    Parameters
    ----------
    chunks : a dask array's ``chunks`` (block lengths per axis).
    """
    import itertools

    starts = [np.concatenate([[0], np.cumsum(c)]) for c in chunks]
    out = {}
    for idx in itertools.product(*(range(len(c)) for c in chunks)):
        out[idx] = tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, idx))
    return out
