"""k-means on grey level + Sobel gradient magnitude, fitted on a subsample, predicted blockwise."""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import xarray as xr
from scipy import ndimage as ndi

from .._parse import parse_positive_int
from ..errors import InputError
from ..kernels.features import nearest_centre, sobel_magnitude
from ..kernels.filters import exact_float_dtype
from ..kernels.synth import hash_uniform
from ..ops import map_overlap_exact, to_numpy
from ..ops._blocks import per_block
from ..ops._overlap import block_slices, min_chunks
from ..runtime import compute
from ..io._volume import frame_by_frame
from ._common import FOV_DOC, check_volume, labels_volume, parse_classes, parse_seed, phase_names

__all__ = ["kmeans"]


def _features(block: Any) -> Any:
    f = block.astype(exact_float_dtype(block.dtype), copy=False)  # (float32 moved uint32 2**31 + k by up to 128)
    return f.ravel(), sobel_magnitude(f).ravel()


def _predict_block(block: Any, mean: np.ndarray, std: np.ndarray, centres: np.ndarray, order: np.ndarray) -> Any:
    g, s = _features(block)
    x = ((np.stack([to_numpy(g), to_numpy(s)], 1) - mean) / std).astype(np.float32)
    lab = order[nearest_centre(x, centres)].astype(np.uint8)
    return lab.reshape(block.shape)


@frame_by_frame
def kmeans(vol: Any, *, classes: int = 3, sample: int = 200_000, seed: int = 0, phases: Any = None,
           fov: Any = None, progress: bool = False) -> xr.DataArray:
    """k-means clustering of (grey level, Sobel gradient magnitude), as in the LRCS-Net paper's comparison.

    Features are standardised; ``sklearn.cluster.KMeans`` (k-means++, 4 inits) is fitted on a
    random subsample of about ``sample`` voxels, drawn by their position (the same voxels, and so
    the same labels, for any chunking; the Sobel feature is exact blockwise: halo 1);
    every voxel then gets its nearest centre, blockwise. Clusters are ordered by the grey level
    of their centre (for 3 classes: 0 pore, 1 cbd, 2 active).

    A (t, z, y, x) series is segmented frame by frame, each with its own clusters.

    Parameters
    ----------
    vol : volume (z, y, x), integer or float, no NaN/inf; or a series (t, z, y, x)
    classes : number of clusters, in [2, 254] (default 3)
    sample : voxels in the fitting subsample, about (default 200 000)
    seed : an int in [0, 2**32): the subsample and k-means++'s start (default 0)
    phases : names of the classes by grey level (default ``DEFAULT_PHASES`` for 3 classes)
    {fov} The subsample is drawn from the inside.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    lazy uint8 label volume (z, y, x) with ``attrs['phases']`` and ``attrs['centres']`` (grey, sobel)
    """
    from sklearn.cluster import KMeans

    classes = parse_classes(classes)
    sample = parse_positive_int("sample", sample)
    seed = parse_seed(seed)  # before the passes (scikit-learn's own refusal is a traceback)
    names = phase_names(classes, phases)
    v, mask = check_volume(vol, progress=progress, fov=fov)
    arr = v.data
    arr = arr.rechunk(tuple(min_chunks(c, 1) for c in arr.chunks))
    ov = dask.array.overlap.overlap(arr, depth=1, boundary="none") if arr.npartitions > 1 else arr
    # sample on the interior of each overlapped block (Sobel exact there), inside the field of view
    where = block_slices(arr.chunks)
    idxs = list(np.ndindex(*arr.numblocks))
    # the Sobel feature of the field of view's rim sees the fill beyond it: sampled one voxel in
    core = None if mask is None else ndi.binary_erosion(mask, border_value=1)
    inside = {idx: None if core is None else core[where[idx][1:]] for idx in idxs}
    p = min(1.0, sample / (arr.size if core is None else arr.shape[0] * max(int(core.sum()), 1)))
    # which voxels are drawn hangs on their global position, not on the blocks: the same sample,
    # and so the same result, for any chunking
    starts = {idx: tuple(s.start for s in where[idx]) for idx in idxs}

    def drawn(p: float) -> Any:  # one task per block, in C order
        return per_block(_sample_interior, ov, args=lambda idx: (idx, arr.numblocks, p, seed, inside[idx], starts[idx]))

    (x,) = compute(drawn(p), desc="k-means sample", progress=progress)
    x = np.concatenate(x)
    if len(x) < classes:
        (x,) = compute(drawn(1.0), progress=False)
        x = np.concatenate(x)
    grey = np.unique(x[:, 0]).size
    if grey < classes:  # as multi-Otsu refuses it (k-means would split one grey value into "classes")
        raise InputError(f"Expected `vol` to hold at least {classes} distinct grey values for {classes} classes. "
                         f"Got {grey} in the k-means sample of {len(x)} voxels (a blank or saturated scan?).")
    x = x[np.lexsort(x.T[::-1])]  # the blocks' order out of the fit (its sums and its initial centres)
    mean = x.mean(0).astype(x.dtype)  # float32, float64 for grey values float32 would round
    std = x.std(0).astype(x.dtype)
    std[std == 0] = 1
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # float32 sums in one order: the same centres with any number of cores
        km = KMeans(n_clusters=classes, n_init=4, random_state=seed).fit((x - mean) / std)
    centres = km.cluster_centers_.astype(np.float32)
    _warn_tiny_clusters(np.bincount(km.labels_, minlength=classes), classes)
    rank = np.argsort(np.argsort(centres[:, 0]))  # cluster -> class ordered by grey level
    data = map_overlap_exact(_predict_block, arr, 1, dtype=np.uint8, token="kmeans",
                             meta=np.empty((0,) * arr.ndim, np.uint8),  # host labels, whatever the input
                             mean=mean, std=std, centres=centres, order=rank.astype(np.uint8))
    real = centres * std + mean
    order = np.argsort(centres[:, 0])
    return labels_volume(data, v, names, mask=mask, centres=real[order].tolist(), method="kmeans")


kmeans.__doc__ = kmeans.__doc__.replace("{fov}", FOV_DOC)

#: a cluster holding less than this share of the sampled voxels is taken by outliers, not a phase
TINY_CLUSTER = 1e-3


def _warn_tiny_clusters(sizes: np.ndarray, classes: int) -> None:
    """A few extreme grey values (a hot pixel, a metal fleck) take whole clusters of their own,
    leaving the phases to the rest (one outlier of 10**6 in a 32**3 scan: 3 of 3 phases in one
    class, accuracy 0.72 -> 0.15): said, as multi-Otsu refuses such a range."""
    from ..errors import warn_caller

    tiny = int((sizes < TINY_CLUSTER * sizes.sum()).sum())
    if tiny:
        warn_caller(f"k-means gave {tiny} of its {classes} clusters fewer than {100 * TINY_CLUSTER:g} % of the "
                      f"sampled voxels ({sizes.tolist()} of {int(sizes.sum())}): a few outlier grey values (hot "
                      f"pixels, a metal fleck) take clusters of their own. Clip the volume's grey values first (e.g. "
                      f"to its 0.01-99.99 percentiles) or use another baseline.")


def _sample_interior(block: np.ndarray, idx: tuple, numblocks: tuple, p: float, seed: int,
                     inside: np.ndarray | None, start: tuple) -> np.ndarray:
    """Features of the voxels of the block proper (global position ``start``) drawn with
    probability ``p`` by a hash of their global position and ``seed``."""
    g, s = (to_numpy(f).reshape(block.shape) for f in _features(block))  # CuPy blocks: features on the GPU
    sl = tuple(slice(1 if i > 0 else 0, -1 if i < n - 1 else None) for i, n in zip(idx, numblocks))
    g, s = g[sl], s[sl]  # the block proper
    keep = hash_uniform(np.array(start, np.int64), np.array(g.shape, np.int64), seed).ravel() < p
    if inside is not None:  # its (y, x) field of view, along z
        keep &= np.broadcast_to(inside, g.shape).ravel()
    g, s = g.ravel(), s.ravel()
    return np.stack([g[keep], s[keep]], 1)
