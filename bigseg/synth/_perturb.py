"""``perturb``: the LRCS-Net paper's ground-truth perturbation, block by block."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_in_range, parse_nonnegative_int
from ._particles import parse_seed
from ..errors import InputError
from ..io import UNLABELLED, as_volume, like_volume
from ..kernels.synth import perturb_block

__all__ = ["perturb", "MAX_ITERATIONS"]

#: the most ``iterations`` of :func:`perturb`: an interface moves at most a voxel per iteration, so
#: 1000 can carry it across a whole block, far past any perturbation of a ground truth (the paper's
#: is 5); each iteration is a pass over the block and widens the halo by 2 voxels
MAX_ITERATIONS = 1000


def _label_values_error(value: Any) -> InputError:
    return InputError(f"Expected `labels` values in [0, 254] or {UNLABELLED} (unlabelled). Got {value} instead.")


def _check_label_values(x: np.ndarray) -> None:
    """Refuse values that uint8 would wrap (258 -> 2, -1 -> 255)."""
    if x.dtype != np.uint8 and x.size:
        lo, hi = x.min(), x.max()
        if lo < 0 or hi > UNLABELLED:
            raise _label_values_error(lo if lo < 0 else hi)


def _as_uint8(x: np.ndarray) -> np.ndarray:
    """uint8 labels of a block, checked when the block is computed (a lazy volume's values are
    not read up front)."""
    _check_label_values(x)
    return x.astype(np.uint8)


def _perturb3d(arr: da.Array, ratio: float, iterations: int, seed: int) -> da.Array:
    # a voxel's move depends on its neighbours' neighbours: a halo of 2 voxels per iteration
    # between blocks; an axis held in one block needs none (outside the block reads as 255)
    h = 2 * iterations
    given = arr.chunks
    chunks = [(n,) if len(c) == 1 or n <= h else da.overlap.ensure_minimum_chunksize(h, c)
              for n, c in zip(arr.shape, arr.chunks)]
    arr = arr.rechunk(tuple(chunks))
    depth = tuple(0 if len(c) == 1 else h for c in arr.chunks)
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in arr.chunks]
    padded = da.overlap.overlap(arr, depth=dict(enumerate(depth)), boundary=UNLABELLED)
    inner = tuple(slice(d, (-d) or None) for d in depth)

    def block(x: np.ndarray, block_id=None) -> np.ndarray:
        origin = np.array([starts[a][block_id[a]] - depth[a] for a in range(3)], dtype=np.int64)
        out = perturb_block(np.ascontiguousarray(x), origin, ratio, iterations, seed)
        return out[inner]

    out = da.map_blocks(block, padded, chunks=arr.chunks, dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8),
                        token="synth-perturb")
    return out if out.chunks == given else out.rechunk(given)  # the input's chunks (zarr takes no uneven ones)


def perturb(labels: Any, *, ratio: float = 0.1, iterations: int = 5, seed: int = 0) -> xr.DataArray:
    """Randomly push and pull the interfaces of a label volume (ground-truth perturbation).

    Su et al. 2022 (LRCS-Net, Methods "Synthetic training data"): locate the voxels on every
    phase-pair interface, pick ``ratio`` of them and dilate one phase into the other there,
    ``iterations`` times; 10 % x 5 iterations gave "homogeneous and plausible changes". Here
    each interface voxel (a labelled voxel with a labelled 6-neighbour of another phase) is
    picked with probability ``ratio`` per iteration; it chooses one such neighbour at random
    and, with equal chance, takes its phase or gives it its own. About ``ratio`` of the
    interface voxels move per iteration (9.8 % at 0.1 on ``electrode(64)``; ``ratio`` on each
    side of a flat interface), and every face of the interface is as likely to move one way as
    the other, so no phase gains for being thin (on the default electrode, 5 iterations change
    the fractions by under 0.1 percentage point). All moves of an iteration are simultaneous;
    a voxel offered two phases takes one.

    Parameters
    ----------
    labels : DataArray / dask / NumPy, (z, y, x) or (t, z, y, x) integer labels in [0, 254];
        255 (unlabelled) never moves and never spreads; other values are refused (InputError:
        up front for NumPy input, when the block is computed for lazy input)
    ratio : float in (0, 1], share of the interface voxels picked per iteration
    iterations : int in [0, ``MAX_ITERATIONS``]; no voxel farther than ``iterations - 1`` (6-connected steps) from an
        original interface voxel can change
    seed : int in [0, 2**48); the random picks are hashes of (seed, iteration, global voxel), so the result
        does not depend on the chunking (a halo of ``2 * iterations`` voxels is exchanged)

    Returns
    -------
    DataArray of uint8 labels, same dims, coordinates and attrs (phases) as ``labels``.
    """
    vol = as_volume(labels, name="labels", allow_series=True)
    ratio = parse_in_range("ratio", ratio, 0.0, 1.0, closed="right")
    iterations = parse_nonnegative_int("iterations", iterations, most=MAX_ITERATIONS)
    seed = parse_seed(seed)
    if not np.issubdtype(vol.dtype, np.integer):
        raise InputError(f"Expected `labels` to have an integer dtype. Got {vol.dtype} instead.")
    data = labels.data if isinstance(labels, xr.DataArray) else labels
    if isinstance(data, np.ndarray):  # in memory: refused before any work
        _check_label_values(data)
    arr = vol.data if vol.dtype == np.uint8 else vol.data.map_blocks(_as_uint8, dtype=np.uint8, token="labels-uint8")
    if iterations == 0:
        out = arr
    elif arr.ndim == 4:
        out = da.stack([_perturb3d(arr[t], ratio, iterations, seed * 1009 + t) for t in range(arr.shape[0])])
    else:
        out = _perturb3d(arr, ratio, iterations, seed)
    return like_volume(out, vol, phases=vol.attrs.get("phases"), name="labels")
