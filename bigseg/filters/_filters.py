"""Dask wrappers of the filter kernels: halo from the parameters, exact for any chunking.

Each public filter takes a volume (DataArray, dask or NumPy array, (z, y, x) or
(t, z, y, x) with the time axis never filtered) and returns a lazy volume with the same
coordinates, voxel size and unit. Blocks may be NumPy or CuPy arrays (dask-cuda workers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_choice, parse_finite_float, parse_in_range, parse_positive_float, parse_positive_int, parse_tuple
from ..errors import InputError
from ..io._volume import as_volume, like_volume
from ..kernels import filters as K
from ..ops import array_module, map_overlap_exact, masked_values, percentiles, to_numpy
from ..runtime import compute

__all__ = ["median", "gaussian", "unsharp", "normalize", "count_nonfinite"]

NAN_POLICIES = ("raise", "propagate")


# --------------------------------------------------------------------------------------- helpers
def _volume(vol: Any) -> xr.DataArray:
    v = as_volume(vol, name="vol", allow_series=True)
    if not (np.issubdtype(v.dtype, np.number) or v.dtype == np.bool_) or np.issubdtype(v.dtype, np.complexfloating):
        raise InputError(f"Expected `vol` to hold real numbers. Got dtype {v.dtype} instead.")
    return v


def _spatial(v: xr.DataArray, per_axis: tuple, fill: Any) -> tuple:
    """Prepend a no-op parameter for the time axis of a series."""
    return ((fill,) + per_axis) if v.ndim == 4 else per_axis


def _nonfinite_block(b: Any) -> np.ndarray:
    nan, inf = K.count_nonfinite(b)
    return np.array([nan, inf], np.int64).reshape((1,) * b.ndim + (2,))


def _nonfinite_counts(arr: da.Array) -> da.Array:
    per = arr.map_blocks(_nonfinite_block, token="count-nonfinite", chunks=(1,) * arr.ndim + (2,), new_axis=arr.ndim, dtype=np.int64,
                         meta=np.empty((0,) * (arr.ndim + 1), np.int64))
    return per.sum(axis=tuple(range(arr.ndim)))


#: what to do about NaN/inf (the filters take no field of view: they let NaN through on request)
_NONFINITE_ADVICE = ("A NaN fill outside a reconstruction's field of view: filter with nan_policy='propagate' "
                     "(a NaN region stays NaN and grows by the filter's reach; the median, as SciPy's, may move a "
                     "lone NaN) and segment inside the field of view (fov='auto', --fov auto); else clean or mask "
                     "them.")


def _nonfinite_message(nan: int, inf: int, total: int) -> str:
    return (f"Expected `vol` to hold finite values only. Got {nan} NaN and {inf} infinite voxels "
            f"(of {total}) instead. {_NONFINITE_ADVICE}")


def count_nonfinite(vol: Any, *, mask: Any = None, progress: bool = False) -> tuple[int, int]:
    """Count the NaN and the +-inf voxels of a volume: ``(n_nan, n_inf)`` (one pass); with
    ``mask`` (boolean over the trailing axes, e.g. a (y, x) field of view), of the voxels
    inside it only.

    Parameters
    ----------
    vol : volume (z, y, x) or series (t, z, y, x): DataArray, dask or NumPy array (an integer
        volume has none: ``(0, 0)`` without a pass).
    mask : boolean array over the trailing axes, True inside; default None: every voxel.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    ``(n_nan, n_inf)``, two ints.
    """
    v = _volume(vol)
    if not np.issubdtype(v.dtype, np.floating):
        return 0, 0
    arr = v.data if mask is None else masked_values(v.data, _parse_mask(mask, tuple(v.shape)))
    (c,) = compute(_nonfinite_counts(arr), desc="counting non-finite voxels", progress=progress)
    return int(c[0]), int(c[1])


def _checked(kernel: Callable[..., Any], depth: tuple[int, ...]) -> Callable[..., Any]:
    """Wrap a kernel so that a block holding NaN/inf fails with their count and the first one's
    position in the volume (the block is the map_overlap'ed one, with a halo of ``depth``).

    The check is per block (no extra pass, no global dependency that would pin every input
    block in memory until a count finished); :func:`count_nonfinite` gives the total.
    """

    def run(block: Any, *args: Any, block_info: Any = None, **kw: Any) -> Any:
        nan, inf = K.count_nonfinite(block)
        if nan + inf:
            where = ""
            info = (block_info or {}).get(None) or {}
            if "chunk-location" in info:
                # a halo'ed block i starts 2 * depth * i voxels further on in the overlapped array than
                # the volume's voxel it holds first (each inner block boundary adds a halo on both sides)
                start = [a - 2 * d * i for (a, _b), d, i in zip(info["array-location"], depth, info["chunk-location"])]
                first = np.argwhere(~np.isfinite(to_numpy(block)))[0]
                where = " (the first at " + ", ".join(f"{ax} {s + int(f)}" for ax, s, f in
                                                      zip("tzyx"[-len(start):], start, first)) + ")"
            raise InputError(
                f"Expected `vol` to hold finite values only. Got {nan} NaN and {inf} infinite voxels in one block "
                f"and its halo{where} instead; count them all with bigseg.filters.count_nonfinite(vol). "
                f"{_NONFINITE_ADVICE}"
            )
        return kernel(block, *args, **kw)

    return run


def _series(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """Apply a 3D kernel to each time step of a (t, z, y, x) block."""

    def run(block: Any, *args: Any, **kw: Any) -> Any:
        if block.ndim == 3:
            return kernel(block, *args, **kw)
        outs = [kernel(block[i], *args, **kw) for i in range(block.shape[0])]
        return array_module(outs[0]).stack(outs)

    return run


#: bytes per voxel of a block and its halo that a filter's task holds beside the kernel's own
#: arrays: the chunks read from the store, the halo's pieces, the encoded output (a worker's peak
#: resident memory, less its own, was 25-28 bytes per voxel for median and gaussian of uint16
#: and float32 blocks, 130³-264³ with halo in 2x2x2 grids, where the kernels' terms alone count 16-20)
_BLOCK_COPIES_BYTES_PER_VOXEL = 12


def _check_memory(arr: da.Array, depth: tuple[int, ...], dtype: Any, name: str) -> None:
    """Refuse, before any work, blocks whose task would not fit a worker (:func:`check_budget`):
    a block with its halo held twice (the neighbours' pieces and their concatenation), three
    arrays of the output dtype (the kernel's work, as measured with tracemalloc: float32 blocks
    peak at 2x the block, uint16 at 6x, beside the input) and what dask and zarr hold beside
    (:data:`_BLOCK_COPIES_BYTES_PER_VOXEL`)."""
    from ..runtime._budget import check_budget, chunks_lever, fitting_edge, worker_memory_limit

    halo = [int(max(c)) + (2 * d if len(c) > 1 else 0) for c, d in zip(arr.chunks, depth)]
    per_voxel = 2 * arr.dtype.itemsize + 3 * max(np.dtype(dtype).itemsize, 4) + _BLOCK_COPIES_BYTES_PER_VOXEL
    foot = int(np.prod(halo)) * per_voxel
    chunks = tuple(int(max(c)) for c in arr.chunks)
    try:
        check_budget(foot, what=f"{name} with chunks {chunks} (a block and its halo {tuple(halo)})",
                     tasks=arr.npartitions)
    except MemoryError as exc:
        from ..errors import MemoryBudgetError

        limit, conc, _ = worker_memory_limit()
        edge = fitting_edge(limit // min(conc, arr.npartitions), per_voxel, halo=max(depth[-3:]))
        hint = (f"Use chunks of at most {edge} voxels along z, y and x ("
                f"{chunks_lever(edge, f'vol.chunk({edge}) first; on the command line, ingest with --chunks {edge}')}"
                "), or workers with more memory." if edge >= 16 else
                f"Even 16-voxel chunks do not fit beside a halo of {max(depth)} voxels: a smaller filter, or "
                "workers with more memory.")
        raise MemoryBudgetError(f"{exc} {hint}") from None


def _apply(v: xr.DataArray, kernel: Callable[..., Any], depth: tuple[int, ...], dtype: Any, nan_policy: str,
           name: str, **kw: Any) -> xr.DataArray:
    """map_overlap the (3D) kernel with the halo ``depth`` (spatial axes); NaN/inf check first,
    the memory a task needs before that (:func:`_check_memory`)."""
    arr = v.data
    depth = _spatial(v, depth, 0)
    _check_memory(arr, depth, dtype, name)
    fn = _series(kernel)
    if nan_policy == "raise" and np.issubdtype(arr.dtype, np.floating):
        fn = _checked(fn, tuple(0 if len(c) == 1 else d for c, d in zip(arr.chunks, depth)))
    out = map_overlap_exact(fn, arr, depth, dtype=dtype, token=name, **kw)
    return like_volume(out, v, name=name, units=v.attrs.get("units"))  # grey values in the input's unit


# --------------------------------------------------------------------------------------- filters
#: The widest median window taken (voxels): scipy's rank filter runs out of memory far beyond it
_MAX_MEDIAN_WINDOW = 100_000
#: The longest Gaussian kernel radius taken (voxels, ``truncate * sigma``): far beyond any volume's
#: edge; scipy allocates the kernel (sigma=1e12 asked it for 58 TiB, a raw MemoryError at compute)
_MAX_GAUSSIAN_RADIUS = 100_000


def _gaussian_depth(name: str, sigma: tuple[float, ...], truncate: float) -> tuple[int, ...]:
    """The kernel radius per axis (the halo), refused beyond :data:`_MAX_GAUSSIAN_RADIUS`."""
    depth = K.gaussian_radius(sigma, truncate)
    if max(depth) > _MAX_GAUSSIAN_RADIUS:
        raise InputError(f"Expected `{name}` * `truncate` (the kernel radius) of at most {_MAX_GAUSSIAN_RADIUS:,} "
                         f"voxels. Got {name}={sigma}, truncate={truncate} instead.")
    return depth


def median(vol: Any, *, size: int | tuple[int, int, int] = 3, nan_policy: str = "raise") -> xr.DataArray:
    """3D median filter, equal to ``scipy.ndimage.median_filter(vol, size)`` (mode 'reflect').

    The LRCS-Net paper's preprocessing step (3D median of kernel 3). ``size=3`` runs the
    compiled selection network (:mod:`bigseg.kernels._median`); other sizes use scipy per
    block. Exact for any chunking (halo ``size // 2``).

    Parameters
    ----------
    vol : volume (z, y, x) or (t, z, y, x), any real dtype
    size : int or (z, y, x) ints > 0, window edge in voxels
    nan_policy : 'raise' (default: a block holding NaN/inf makes the computation fail with an
        ``InputError`` stating how many it holds and where; :func:`count_nonfinite` counts them
        all) or 'propagate' (filter anyway; blocks with NaN use scipy, so the result still equals
        scipy's)

    Returns
    -------
    lazy volume, same shape and dtype as ``vol``

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.ndimage as ndi
    >>> from bigseg import filters, synth
    >>> image = synth.xct(synth.electrode((32, 32, 32), radius=(5, 1), chunks=16))
    >>> smooth = filters.median(image, size=3)  # lazy: computed when asked for
    >>> smooth.shape, smooth.dtype, smooth.data.chunksize
    ((32, 32, 32), dtype('float32'), (16, 16, 16))
    >>> bool(np.array_equal(smooth.values, ndi.median_filter(image.values, size=3)))  # as SciPy on the whole array
    True
    """
    v = _volume(vol)
    size = parse_tuple("size", size, 3, parse_positive_int)
    if math.prod(size) > _MAX_MEDIAN_WINDOW:  # scipy's rank filter holds a window per voxel: MemoryError
        # (math.prod: NumPy's int64 product of size=10**12 wrapped round to 0 and passed this check)
        raise InputError(f"Expected `size` a window of at most {_MAX_MEDIAN_WINDOW:,} voxels (e.g. 45 per axis). Got "
                         f"{size}: {math.prod(size):,} voxels.")
    nan_policy = parse_choice("nan_policy", nan_policy, NAN_POLICIES)
    depth = tuple(s // 2 for s in size)
    return _apply(v, K.median, depth, v.dtype, nan_policy, "median", size=size)


def gaussian(vol: Any, *, sigma: float | tuple[float, float, float] = 1.1, truncate: float = 4.0,
             nan_policy: str = "raise") -> xr.DataArray:
    """Gaussian smoothing, equal to ``scipy.ndimage.gaussian_filter(vol.astype(float32), sigma)``.

    Default sigma 1.1 voxels as in the ML-vs-threshold study. The kernel is truncated at
    ``truncate * sigma`` (scipy's rule), which is also the halo. A sigma of 0 on an axis skips
    it (e.g. ``sigma=(0, 1.1, 1.1)`` smooths each z slice in 2D).

    Parameters
    ----------
    vol : volume (z, y, x) or (t, z, y, x), any real dtype
    sigma : float or (z, y, x) floats >= 0 (not all 0), standard deviation in voxels
    truncate : float > 0, kernel radius in standard deviations
    nan_policy : 'raise' (as :func:`median`) or 'propagate'

    Returns
    -------
    lazy volume, float32 (float64 for float64 input)

    Examples
    --------
    A simulated scan of 24 × 32 × 32 voxels in 16³ blocks, smoothed as SciPy smooths it whole:

    >>> import numpy as np
    >>> import scipy.ndimage as ndi
    >>> from bigseg import filters, synth
    >>> image = synth.xct(synth.electrode((24, 32, 32), radius=(5, 1), chunks=16), seed=1)
    >>> smooth = filters.gaussian(image, sigma=1.1)
    >>> smooth.shape, smooth.dtype
    ((24, 32, 32), dtype('float32'))
    >>> bool(np.allclose(smooth.values, ndi.gaussian_filter(image.values, sigma=1.1), atol=1e-6))
    True
    """
    v = _volume(vol)
    sigma = _parse_sigma("sigma", sigma)
    truncate = parse_positive_float("truncate", truncate)
    nan_policy = parse_choice("nan_policy", nan_policy, NAN_POLICIES)
    depth = _gaussian_depth("sigma", sigma, truncate)
    return _apply(v, K.gaussian, depth, K.float_dtype(v.dtype), nan_policy, "gaussian", sigma=sigma,
                  truncate=truncate)


def unsharp(vol: Any, *, radius: float | tuple[float, float, float] = 6.0, amount: float = 0.6,
            axes: str = "3d", truncate: float = 4.0, nan_policy: str = "raise") -> xr.DataArray:
    """Unsharp mask ``f + amount * (f - G_radius * f)``, as ``skimage.filters.unsharp_mask``.

    Equals ``skimage.filters.unsharp_mask(vol, radius, amount, preserve_range=True)`` (a
    Gaussian of standard deviation ``radius``, mode 'reflect', truncate 4). The LRCS-Net paper
    sharpens each slice in 2D with radius 6 and weight 0.6: ``axes="2d"`` (radius 0 along z).

    Output dtype: float32 for integer and float32 input (float64 for float64): values are not
    clipped, so an integer image never overflows or wraps; overshoots beyond the input range
    are kept (that is what an unsharp mask does at edges).

    Parameters
    ----------
    vol : volume (z, y, x) or (t, z, y, x)
    radius : float or (z, y, x) floats >= 0, Gaussian standard deviation in voxels
    amount : float, weight of the detail layer (may be negative: blurring)
    axes : '3d' or '2d' (each z slice on its own)
    truncate : float > 0, kernel radius in standard deviations (default 4, as :func:`gaussian`)
    nan_policy : 'raise' (as :func:`median`) or 'propagate'
    """
    v = _volume(vol)
    radius = _parse_sigma("radius", radius)
    amount = parse_finite_float("amount", amount)
    axes = parse_choice("axes", axes, ("3d", "2d"))
    if axes == "2d":
        if radius[1] == 0 and radius[2] == 0:  # (the radius as given, not as 2d reads it: (0, 0, 0))
            raise InputError(f"Expected `radius` > 0 along y or x for axes='2d' (which reads y and x only). Got "
                             f"{radius} instead.")
        radius = (0.0, radius[1], radius[2])
    truncate = parse_positive_float("truncate", truncate)
    nan_policy = parse_choice("nan_policy", nan_policy, NAN_POLICIES)
    depth = _gaussian_depth("radius", radius, truncate)
    return _apply(v, K.unsharp, depth, K.float_dtype(v.dtype), nan_policy, "unsharp", radius=radius,
                  amount=amount, truncate=truncate)


def check_contrast(vol: xr.DataArray, *, low: float, high: float, where: str = "") -> None:
    """Refuse a volume :func:`normalize` mapped to zeros: one grey value at both of its
    percentiles ``low`` and ``high`` (``attrs["normalize"]``), a blank or saturated scan that
    every later step would take for data; ``where``: e.g. "inside the field of view "."""
    lo, hi = vol.attrs["normalize"]
    if not hi > lo:
        raise InputError(f"Expected `vol` to hold more than one grey value {where}between its {low:g} and {high:g} "
                         f"percentiles (the normalisation window). Got {lo:g} at both (a blank or saturated scan?).")


def normalize(vol: Any, *, low: float = 0.5, high: float = 99.5, nan_policy: str = "raise", mask: Any = None,
              progress: bool = False) -> xr.DataArray:
    """Map the global ``low``/``high`` percentiles to 0 and 1, clip to [0, 1], float32.

    The percentiles (numpy's 'linear' method) come from a distributed histogram
    (:func:`bigseg.ops.percentiles`): exact for integer volumes; for float volumes a two-pass
    refinement that is exact unless more than 4 M voxels fall in one 1/65536 of the value
    range, where the error is at most ``(max - min) / 2**32``. The percentiles are computed now
    (two or three passes over the data); the mapping is lazy. They are stored in
    ``attrs["normalize"] = (value_at_low, value_at_high)``. A constant volume maps to 0.

    Parameters
    ----------
    vol : volume (z, y, x) or (t, z, y, x)
    low, high : percentiles in [0, 100], ``low < high``
    nan_policy : 'raise' (InputError stating the number of NaN/inf voxels) or 'propagate' (the
        percentiles ignore non-finite voxels; NaN stays NaN, +-inf map to 1/0)
    mask : the voxels the percentiles come from: a boolean array over the trailing axes, e.g.
        the (y, x) field of view of :func:`bigseg.io.fov_mask` (broadcast along z and t), or
        (z, y, x). Voxels outside are mapped too, but neither count nor are checked for NaN.
    progress : a progress bar on stderr for each pass over the data (default off)

    Examples
    --------
    >>> from bigseg import filters, synth
    >>> image = synth.xct(synth.electrode((32, 32, 32), radius=(5, 1), chunks=16))
    >>> x = filters.normalize(image, low=0.5, high=99.5)  # the 0.5 and 99.5 percentiles -> 0 and 1
    >>> x.dtype, round(float(x.min()), 2), round(float(x.max()), 2)
    (dtype('float32'), 0.0, 1.0)
    """
    v = _volume(vol)
    low = parse_in_range("low", low, 0.0, 100.0, closed="both")
    high = parse_in_range("high", high, 0.0, 100.0, closed="both")
    if not low < high:
        raise InputError(f"Expected `low` < `high`. Got low={low}, high={high} instead.")
    if high <= 1:  # fractions meant (0.005, 0.995)? all but the darkest percent would be white
        from ..errors import warn_caller

        warn_caller(f"`low`={low:g}, `high`={high:g} are percentiles in [0, 100]: the grey value at the {high:g}th "
                    f"percentile and above maps to 1 (white). Fractions meant? Then low={low * 100:g}, "
                    f"high={high * 100:g}.")
    nan_policy = parse_choice("nan_policy", nan_policy, NAN_POLICIES)
    arr = v.data
    sample = arr if mask is None else masked_values(arr, _parse_mask(mask, tuple(arr.shape)))
    if np.issubdtype(arr.dtype, np.floating):
        nan, inf = count_nonfinite(v, mask=mask, progress=progress)
        if nan + inf:
            if nan_policy == "raise":
                raise InputError(_nonfinite_message(nan, inf, int(sample.size)))
            if nan + inf == int(sample.size):  # nothing left to take the percentiles from
                raise InputError(f"Expected `vol` to hold some finite values{'' if mask is None else ' inside `mask`'}. "
                                 f"Got {nan} NaN and {inf} infinite voxels of {int(sample.size)} instead.")
            flat = sample.ravel()
            finite = flat[da.isfinite(flat)]
            finite.compute_chunk_sizes()
            sample = finite
    lo, hi = percentiles(sample, [low, high], progress=progress)
    out = arr.map_blocks(K.rescale, lo, hi, dtype=np.float32, token="normalize")
    res = like_volume(out, v, name="normalized")
    res.attrs["normalize"] = (float(lo), float(hi))
    return res


def _parse_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean NumPy mask over the trailing axes of ``shape`` that selects some voxels."""
    m = np.asarray(mask.values if isinstance(mask, xr.DataArray) else mask)
    if m.dtype != np.bool_ or not 1 <= m.ndim <= len(shape) or tuple(m.shape) != tuple(shape[len(shape) - m.ndim:]):
        raise InputError(f"Expected `mask` to be a boolean array over the trailing axes of the volume's shape "
                         f"{shape}, e.g. (y, x) {shape[-2:]}. Got {m.dtype} of shape {m.shape} instead.")
    if not m.any():
        raise InputError("Expected `mask` to select some voxels. Got an all-False mask.")
    return m


def _parse_sigma(name: str, value: Any) -> tuple[float, float, float]:
    def item(n: str, x: Any) -> float:
        f = parse_in_range(n, x, 0.0, float("inf"), closed="left")
        return f

    try:
        sig = parse_tuple(name, value, 3, item)
    except InputError:
        raise InputError(f"Expected `{name}` to be a positive number or 3 numbers >= 0. Got {value!r} instead.") from None
    if all(s == 0 for s in sig):
        raise InputError(f"Expected `{name}` > 0 (on at least one axis). Got {value!r} instead.")
    return sig
