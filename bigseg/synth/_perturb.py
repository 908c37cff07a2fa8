"""``perturb``: the LRCS-Net paper's ground-truth perturbation, block by block."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_in_range, parse_nonnegative_int
from ..errors import InputError
from ..io import UNLABELLED, as_volume, like_volume
from ..kernels.synth import perturb_block

__all__ = ["perturb"]


def _perturb3d(arr: da.Array, ratio: float, iterations: int, seed: int) -> da.Array:
    h = iterations
    arr = arr.rechunk(tuple(da.overlap.ensure_minimum_chunksize(h, c) for c in arr.chunks))
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in arr.chunks]
    padded = da.overlap.overlap(arr, depth={0: h, 1: h, 2: h}, boundary=UNLABELLED)

    def block(x: np.ndarray, block_id=None) -> np.ndarray:
        origin = np.array([starts[a][block_id[a]] - h for a in range(3)], dtype=np.int64)
        out = perturb_block(np.ascontiguousarray(x), origin, ratio, iterations, seed)
        return out[h:-h, h:-h, h:-h]

    return da.map_blocks(block, padded, chunks=arr.chunks, dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8),
                         token="synth-perturb")


def perturb(labels: Any, *, ratio: float = 0.1, iterations: int = 5, seed: int = 0) -> xr.DataArray:
    """Randomly push and pull the interfaces of a label volume (ground-truth perturbation).

    Su et al. 2022 (LRCS-Net, Methods "Synthetic training data"): locate the voxels on every
    phase-pair interface, pick ``ratio`` of them and dilate one phase into the other there,
    ``iterations`` times; 10 % x 5 iterations gave "homogeneous and plausible changes". Here
    each interface face (two 6-neighbours of different phases) is picked with probability
    ``min(1, 2 * ratio)`` per iteration and one of its voxels, either with equal chance, takes
    the other's phase: on a flat interface ``ratio`` of the voxels on each side move, and no
    phase gains for being thin (on the default electrode, 5 iterations change the fractions by
    at most 0.7 percentage points: a voxel offered two phases takes one). All moves of an
    iteration are simultaneous.

    Parameters
    ----------
    labels : DataArray / dask / NumPy, (z, y, x) or (t, z, y, x) integer labels (< 255);
        255 (unlabelled) never moves and never spreads
    ratio : float in (0, 1], fraction of interface voxels moved per iteration
    iterations : int >= 0; no voxel farther than ``iterations - 1`` (6-connected steps) from an
        original interface voxel can change
    seed : int; the random picks are hashes of (seed, iteration, global voxel), so the result
        does not depend on the chunking (a halo of ``iterations`` voxels is exchanged)

    Returns
    -------
    DataArray of uint8 labels, same dims, coordinates and attrs (phases) as ``labels``.
    """
    vol = as_volume(labels, name="labels", allow_series=True)
    ratio = parse_in_range("ratio", ratio, 0.0, 1.0, closed="right")
    iterations = parse_nonnegative_int("iterations", iterations)
    seed = parse_nonnegative_int("seed", seed)
    if not np.issubdtype(vol.dtype, np.integer):
        raise InputError(f"Expected `labels` to have an integer dtype. Got {vol.dtype} instead.")
    arr = vol.data.astype(np.uint8)
    if iterations == 0:
        out = arr
    elif arr.ndim == 4:
        out = da.stack([_perturb3d(arr[t], ratio, iterations, seed * 1009 + t) for t in range(arr.shape[0])])
    else:
        out = _perturb3d(arr, ratio, iterations, seed)
    return like_volume(out, vol, phases=vol.attrs.get("phases"), name="labels")
