"""Distributed histograms and exact global percentiles of a dask array.

Integer volumes spanning at most ``B = 65536`` values (any uint8 or uint16 one): one pass for (min, max), one
``bincount`` pass; the percentiles equal ``numpy.percentile(..., method="linear")`` on the whole
array. Wider integer ranges take the float path below (a bincount of each block over 2**24
values made 128 MiB of counts per block: 5 GiB resident for 16 blocks of 32³), whose order
statistics are exact, and rounded to the integer they are when refined by sub-bins narrower
than one (ranges below 2**32), so the percentiles are exact there too.

Float volumes: a two-pass refinement. Pass 1 histograms the values into ``B = 65536`` equal
bins over [min, max]; the bins holding the needed order statistics are located from the
cumulative counts; pass 2 gathers the values inside those bins (at most ``max_exact`` of them)
and sorts them, so the order statistics, hence the percentiles, are exact. Only when those bins
hold more than ``max_exact`` values (a volume with > 4 M voxels in one 1/65536 of its range) does
pass 2 histogram the bin again into ``B`` sub-bins and return the sub-bin centre: the error is
then at most ``(max - min) / B**2 = (max - min) / 2**32``, and none for the first and last order
statistics (q = 0 and 100 among them): the min and max of the range pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..runtime import compute
from ._blocks import per_block
from ._dispatch import array_module, to_numpy

__all__ = ["value_range", "bincount_offset", "percentiles", "histogram", "lerp_percentile", "masked_values"]

_BINS = 1 << 16
_MAX_EXACT = 1 << 22


def value_range(arr: da.Array, *, progress: bool = False) -> tuple[Any, Any]:
    """(min, max) of the array in one pass.

    Parameters
    ----------
    arr : a dask array (NumPy or CuPy blocks).
    progress : a progress bar on stderr for the pass (default off)
    """
    lo, hi = compute(arr.min(), arr.max(), desc="value range", progress=progress)
    return lo, hi


# The block functions below take NumPy or CuPy blocks: a CuPy block is counted on its GPU and
# only the counts (or the few values asked for) come back to the host.


def _block_bincount(b: Any, lo: int, n: int) -> np.ndarray:
    xp = array_module(b)
    if b.dtype.kind == "u":  # in its own dtype (b >= lo): uint64 values beyond 2**63 do not fit int64
        off = (b - b.dtype.type(lo)).astype(np.int64, copy=False)
    else:
        off = b.astype(np.int64, copy=False) - lo
    c = xp.bincount(off.ravel(), minlength=n)
    return to_numpy(c).reshape((1,) * b.ndim + (n,))


def bincount_offset(arr: da.Array, lo: int, hi: int) -> da.Array:
    """Lazy counts of each integer value ``lo..hi`` (int64, length ``hi - lo + 1``).

    Parameters
    ----------
    arr : an integer dask array (NumPy or CuPy blocks) whose values lie in ``lo..hi``.
    lo, hi : the smallest and largest value counted (inclusive).
    """
    n = int(hi) - int(lo) + 1
    per = arr.map_blocks(_block_bincount, int(lo), n, token="histogram", chunks=(1,) * arr.ndim + (n,), new_axis=arr.ndim,
                         dtype=np.int64, meta=np.empty((0,) * (arr.ndim + 1), np.int64))
    return per.sum(axis=tuple(range(arr.ndim)))


def _bin_index(b: Any, lo: float, hi: float, nbins: int) -> Any:
    xp = array_module(b)
    scale = nbins / (hi - lo) if hi > lo else 0.0
    idx = xp.floor((xp.asarray(b, dtype=np.float64) - lo) * scale).astype(np.int64)
    return xp.clip(idx, 0, nbins - 1, out=idx)


def _block_hist(b: Any, lo: float, hi: float, nbins: int) -> np.ndarray:
    c = array_module(b).bincount(_bin_index(b, lo, hi, nbins).ravel(), minlength=nbins)
    return to_numpy(c).reshape((1,) * b.ndim + (nbins,))


def histogram(arr: da.Array, lo: float, hi: float, nbins: int) -> da.Array:
    """Lazy counts in ``nbins`` equal bins over [lo, hi] (the last bin closed), int64.

    Parameters
    ----------
    arr : a dask array (NumPy or CuPy blocks); values outside [lo, hi] go to the end bins.
    lo, hi : the range binned.
    nbins : the number of bins.
    """
    per = arr.map_blocks(_block_hist, float(lo), float(hi), int(nbins), token="histogram", chunks=(1,) * arr.ndim + (nbins,),
                         new_axis=arr.ndim, dtype=np.int64, meta=np.empty((0,) * (arr.ndim + 1), np.int64))
    return per.sum(axis=tuple(range(arr.ndim)))


def _virtual_index(n: int, q: float) -> float:
    # numpy's 'linear' method (alpha = beta = 1): n * q + (1 + q * (1 - 1 - 1)) - 1
    q = q / 100.0
    return n * q + (1 + q * (1 - 1 - 1)) - 1


def lerp_percentile(a: float, b: float, t: float) -> float:
    """numpy's interpolation between neighbouring order statistics (same rounding)."""
    a = np.float64(a)
    b = np.float64(b)
    d = b - a
    return float(b - d * (1 - t)) if t >= 0.5 else float(a + d * t)


def weighted_quantiles(values: Any, weights: Any, qs: Sequence[float]) -> np.ndarray:
    """The smallest of ``values`` (ascending) at which the running sum of ``weights`` reaches the
    share ``q`` of their total, for each ``q`` of ``qs`` (in [0, 1]): the inverted CDF of weighted
    values (numpy 2's ``percentile(..., weights=, method="inverted_cdf")``, which numpy 1.26 lacks),
    a running share within 1e-12 of ``q`` counted as reaching it (0.7 + 0.1 of 1 reaches 0.8; numpy's
    rounding says not); NaN where the weights total nothing or no finite number. The local thickness'
    d10/d50/d90 (voxels by diameter) and the particles' D10/D50/D90 by volume."""
    w = np.asarray(weights, np.float64)
    total = w.sum()  # (pairwise: nearer the true total than the running sum's end, which rounding may leave short)
    if not (np.isfinite(total) and total > 0):
        return np.full(len(qs), np.nan)
    at = np.searchsorted(np.cumsum(w) / total, np.asarray(qs, np.float64) * (1 - 1e-12), side="left")
    return np.asarray(values)[np.minimum(at, len(w) - 1)]


def _needed(n: int, qs: Sequence[float]) -> list[tuple[int, int, float]]:
    out = []
    for q in qs:
        v = _virtual_index(n, q)
        k = int(math.floor(v))
        k = min(max(k, 0), n - 1)
        out.append((k, min(k + 1, n - 1), float(v - math.floor(v))))
    return out


def _order_stats_from_counts(counts: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    cum = np.cumsum(counts)
    return np.searchsorted(cum, np.asarray(ks), side="right")


def _gather_bins(b: Any, lo: float, hi: float, nbins: int, wanted: np.ndarray) -> np.ndarray:
    xp = array_module(b)
    idx = _bin_index(b, lo, hi, nbins)
    return to_numpy(b[xp.isin(idx, xp.asarray(wanted))].astype(np.float64))


def percentiles(arr: da.Array, qs: Sequence[float], *, progress: bool = False) -> list[float]:
    """Global percentiles (numpy 'linear' method) of a dask array; see the module notes.

    Parameters
    ----------
    arr : a dask array (NumPy or CuPy blocks).
    qs : percentiles, each in [0, 100].
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    list of floats, one per ``qs``.
    """
    n = int(arr.size)
    lo, hi = value_range(arr, progress=progress)
    need = _needed(n, qs)
    ks = sorted({k for t in need for k in t[:2]})
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        lo, hi = int(lo), int(hi)
        if hi - lo < _BINS:  # at most _BINS counts per block
            (counts,) = compute(bincount_offset(arr, lo, hi), desc="histogram", progress=progress)
            pos = _order_stats_from_counts(counts, ks)
            stat = {k: float(lo + int(p)) for k, p in zip(ks, pos)}
            return [lerp_percentile(stat[a], stat[b], t) for a, b, t in need]
    integer = np.issubdtype(arr.dtype, np.integer)
    lo, hi = float(lo), float(hi)
    if hi == lo:
        return [lo for _ in qs]
    (counts,) = compute(histogram(arr, lo, hi, _BINS), desc="histogram", progress=progress)
    cum = np.cumsum(counts)
    pos = _order_stats_from_counts(counts, ks)
    wanted = np.unique(pos)
    stat: dict[int, float] = {}
    if counts[wanted].sum() <= _MAX_EXACT:
        (parts,) = compute(per_block(_gather_bins, arr, args=lambda idx: (lo, hi, _BINS, wanted)),
                           desc="refining percentiles", progress=progress)
        vals = np.concatenate(parts)
        idx = _bin_index(vals, lo, hi, _BINS)
        for k, p in zip(ks, pos):
            inside = np.sort(vals[idx == p])
            before = int(cum[p - 1]) if p > 0 else 0
            stat[k] = float(inside[k - before])
    else:  # too many values in one bin: histogram it again, error <= (hi - lo) / _BINS**2
        width = (hi - lo) / _BINS
        for k, p in zip(ks, pos):
            a = lo + p * width
            sub = arr[(_bin_index_dask(arr, lo, hi) == p)]
            (c2,) = compute(da.histogram(sub, bins=_BINS, range=(a, a + width))[0], desc="refining", progress=progress)
            before = int(cum[p - 1]) if p > 0 else 0
            j = int(np.searchsorted(np.cumsum(c2), k - before, side="right"))
            stat[k] = a + (j + 0.5) * width / _BINS
            if integer and width < _BINS:  # sub-bins under one wide: the one integer in it
                stat[k] = float(round(stat[k]))
    # the first and last order statistics are the range pass's min and max, exactly (a sub-bin's
    # centre, (max - min) / 2**32 wide, was up to half of one off)
    stat.update({k: v for k, v in ((0, lo), (n - 1, hi)) if k in stat})
    return [lerp_percentile(stat[a], stat[b], t) for a, b, t in need]


def _pick(block: Any, mask: np.ndarray) -> Any:
    xp = array_module(block)
    return block[xp.broadcast_to(xp.asarray(mask), block.shape)]


def masked_values(arr: da.Array, mask: np.ndarray) -> da.Array:
    """The values of ``arr`` where ``mask`` is True, as a lazy 1-D array with known chunks.

    ``mask``: a NumPy boolean array over the trailing axes of ``arr`` (e.g. a (y, x) field of
    view for a (z, y, x) volume or a (t, z, y, x) series), broadcast over the leading ones.
    Each block keeps its own voxels (its size is known from the mask, so no pass over the
    data is needed to size the result); the histograms and percentiles of this module take it
    as they take any array.
    """
    from dask.highlevelgraph import HighLevelGraph

    from ._overlap import block_slices

    mask = np.asarray(mask, dtype=bool)
    lead = arr.ndim - mask.ndim
    if lead < 0 or tuple(mask.shape) != tuple(arr.shape[lead:]):
        raise ValueError(f"mask of shape {mask.shape} does not match the trailing axes of {arr.shape}")
    # the mask cut as the trailing axes are, each piece one key that every block along the
    # leading axes shares: the graph holds the mask once, not once per block (a (y, x) field of
    # view was copied into each z block's task: 66 MB for 2048^3 in 128^3 chunks)
    dm = da.from_array(mask, chunks=arr.chunks[lead:])
    name = "masked-values-" + dask.base.tokenize(arr.name, dm.name)
    dsk, sizes = {}, []
    for idx, sl in block_slices(arr.chunks).items():
        n = int(np.count_nonzero(mask[sl[lead:]])) * int(np.prod([s.stop - s.start for s in sl[:lead]], dtype=np.int64))
        if n:
            dsk[(name, len(sizes))] = (_pick, (arr.name, *idx), (dm.name, *idx[lead:]))
            sizes.append(n)
    if not sizes:
        return da.zeros((0,), dtype=arr.dtype)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[arr, dm])
    return da.Array(graph, name, chunks=(tuple(sizes),), dtype=arr.dtype, meta=arr._meta.reshape((0,)))


def _bin_index_dask(arr: da.Array, lo: float, hi: float) -> da.Array:
    return arr.map_blocks(_bin_index, lo, hi, _BINS, dtype=np.int64, token="histogram-bins")
