"""Pure block kernels of the filters: NumPy or CuPy block in, block of the same shape out.

Each function equals its ``scipy.ndimage`` / scikit-image counterpart applied to the block with
``mode="reflect"`` (scipy's default: ``d c b a | a b c d | d c b a``). The dask wrappers in
:mod:`bigseg.filters` hand them blocks extended by the halo of their neighbours, so the
blockwise result equals the whole-array one. CuPy blocks run through ``cupyx.scipy.ndimage``.
No dask here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..ops._dispatch import is_cupy, ndimage_module

__all__ = [
    "median",
    "gaussian",
    "unsharp",
    "rescale",
    "translate",
    "count_nonfinite",
    "gaussian_radius",
    "float_dtype",
    "exact_float_dtype",
]


def float_dtype(dtype: Any) -> np.dtype:
    """Output dtype of the smoothing filters: float64 stays float64, everything else is float32."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def exact_float_dtype(dtype: Any) -> np.dtype:
    """The narrowest float dtype that holds every value of ``dtype`` exactly: float32 for bool,
    integers of up to 16 bits, float16 and float32; float64 otherwise (a 32/64-bit integer beyond
    2**24, e.g. 2**30 + 7, or a float64 beyond float32's range, 1e300, would be rounded or become
    inf in float32)."""
    dt = np.dtype(dtype)
    if dt == np.bool_ or (dt.kind in "iu" and dt.itemsize <= 2) or (dt.kind == "f" and dt.itemsize <= 4):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def rounded_into(values: np.ndarray, dtype: Any) -> np.ndarray:
    """Float ``values`` rounded to the integer ``dtype``, those beyond its range at its ends (no
    wrap-around): the ends set as integers, as float64 (for int32 in float32, for int64 even
    in float64) rounds the dtype's largest value up to one past it, which a cast wrapped to the
    smallest (uint64's 2**64 - 1 became 0)."""
    info = np.iinfo(dtype)
    values = np.rint(values)
    top, bottom = values >= float(info.max), values <= float(info.min)
    out = np.where(top | bottom, 0, values).astype(dtype)
    out[top], out[bottom] = info.max, info.min
    return out


def gaussian_radius(sigma: Sequence[float], truncate: float = 4.0) -> tuple[int, ...]:
    """Kernel radius per axis, as ``scipy.ndimage.gaussian_filter``: ``int(truncate * sigma + 0.5)``."""
    return tuple(int(truncate * float(s) + 0.5) for s in sigma)


def count_nonfinite(block: Any) -> tuple[int, int]:
    """(number of NaN, number of +-inf) voxels in a block; (0, 0) for integer blocks."""
    if not np.issubdtype(block.dtype, np.floating):
        return 0, 0
    nan = int((block != block).sum())
    inf = int(abs(block).__eq__(np.inf).sum())
    return nan, inf


def median(block: Any, size: Sequence[int] = (3, 3, 3)) -> Any:
    """``scipy.ndimage.median_filter(block, size=size, mode="reflect")``, same dtype.

    A 3D NumPy block with ``size == (3, 3, 3)`` and no NaN runs through the compiled selection
    network of :mod:`bigseg.kernels._median` (identical output, ~30x faster than scipy); NaN
    blocks, other sizes and other dimensions use scipy; CuPy blocks use cupyx.
    """
    size = tuple(int(s) for s in size)
    if block.dtype == np.float16:  # scipy has no float16 kernels: the median is one of the values, exact in float32
        return median(block.astype(np.float32), size).astype(np.float16)  # (CuPy's too: one rule on either)
    if is_cupy(block):
        return ndimage_module(block).median_filter(block, size=size, mode="reflect")
    block = np.asarray(block)
    if (
        block.ndim == 3
        and size == (3, 3, 3)
        and (block.dtype.kind in "biuf" and block.dtype.itemsize <= 4 or block.dtype == np.float64)
        and not (block.dtype.kind == "f" and np.isnan(block).any())
    ):
        from ._median import median3

        return median3(block)
    import scipy.ndimage as ndi

    return ndi.median_filter(block, size=size, mode="reflect")


def gaussian(
    block: Any, sigma: Sequence[float], *, truncate: float = 4.0, mode: str = "reflect", dtype: Any = None
) -> Any:
    """``scipy.ndimage.gaussian_filter(block.astype(dtype), sigma, mode=mode, truncate=truncate)``.

    ``dtype`` defaults to :func:`float_dtype` of the block (float32 unless float64). A sigma of
    0 leaves that axis unfiltered (2D per-slice smoothing: ``sigma=(0, s, s)``).
    """
    ndi = ndimage_module(block)
    dtype = float_dtype(block.dtype) if dtype is None else np.dtype(dtype)
    sigma = tuple(float(s) for s in sigma)
    if not is_cupy(block) and block.ndim == 3 and dtype == np.float32 and mode in _MODES:
        return _gaussian_numba(np.asarray(block), sigma, truncate, mode)
    x = block.astype(dtype, copy=False)
    return ndi.gaussian_filter(x, sigma=sigma, mode=mode, truncate=truncate, output=dtype)


# ------------------------------------------------------------- compiled separable Gaussian (float32)
_MODES = ("reflect", "nearest")


def _edge_index(n: int, r: int, mode: str) -> np.ndarray:
    """Source index of positions -r .. n+r-1 under scipy's boundary ``mode``."""
    i = np.arange(-r, n + r)
    if mode == "nearest":
        return np.clip(i, 0, n - 1)
    i = np.mod(i, 2 * n)  # 'reflect': d c b a | a b c d | d c b a, period 2n
    return np.where(i >= n, 2 * n - 1 - i, i)


def _gaussian_numba(block: np.ndarray, sigma: tuple, truncate: float, mode: str) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(block, sigma, output=float32)`` with scipy's arithmetic.

    Same weights (``_gaussian_kernel1d``), same per-axis passes rounded to float32, and each
    output sums ``(left + right) * w`` in float64 from the outermost tap inwards, as scipy's
    ``NI_Correlate1D`` does for symmetric kernels: the results agree to the last bit in practice
    (tests allow float32 rounding). Vectorised along x, no padding copies.
    """
    from scipy.ndimage._filters import _gaussian_kernel1d

    from ._median import _gauss_pass

    x = np.ascontiguousarray(block, dtype=np.float32)
    for axis, s in enumerate(sigma):
        if s <= 1e-15:
            continue
        r = int(truncate * s + 0.5)
        if r == 0:
            continue
        w = np.ascontiguousarray(_gaussian_kernel1d(s, 0, r)[::-1])
        out = np.empty_like(x)
        _gauss_pass(x, w, axis, _edge_index(x.shape[axis], r, mode).astype(np.int64), out)
        x = out
    return x if x is not block else x.copy()


def unsharp(block: Any, radius: Sequence[float], amount: float, *, truncate: float = 4.0) -> Any:
    """Unsharp mask ``f + amount * (f - G_radius * f)`` as ``skimage.filters.unsharp_mask``.

    Same as ``unsharp_mask(block, radius, amount, preserve_range=True)`` (Gaussian of standard
    deviation ``radius``, ``mode="reflect"``, ``truncate=4``), computed in :func:`float_dtype`
    (integer input gives float32: no clipping, no overflow). ``radius`` is per axis; 0 skips an
    axis (the LRCS-Net paper's 2D unsharp mask of radius 6, weight 0.6: ``(0, 6, 6)``).
    """
    dtype = float_dtype(block.dtype)
    f = block.astype(dtype, copy=False)
    blurred = gaussian(f, radius, truncate=truncate, mode="reflect", dtype=dtype)
    return f + (f - blurred) * dtype.type(amount)


def rescale(block: Any, low: float, high: float) -> Any:
    """Map ``[low, high]`` linearly to [0, 1], clip, float32 (``low == high`` gives zeros; NaN stays
    NaN, +-inf give 1/0 either way). Computed in :func:`exact_float_dtype` of the block, so that
    int32/int64 values beyond 2**24 are not rounded before ``low`` is taken off."""
    x = block.astype(exact_float_dtype(block.dtype), copy=False)
    xp = np if not is_cupy(block) else __import__("cupy")
    if high <= low:  # (x * 0 made NaN of an inf voxel)
        return xp.where(x != x, x, x == np.inf).astype(np.float32)
    out = (x - low) * (1.0 / (high - low))
    return xp.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def translate(block: Any, shift: Sequence[float], *, order: int = 1) -> Any:
    """``scipy.ndimage.shift(block, shift, order=order, mode="nearest")``: the block moved by
    ``shift`` voxels (output(x) = input(x − shift)), linear (``order=1``) or nearest-voxel
    (``order=0``, for labels) interpolation, the edge voxels repeated beyond the array. Exact
    blockwise with a halo of ``ceil(|shift|) + 1`` voxels per axis. float16 (no scipy kernel) is
    interpolated in float32 and rounded back to float16."""
    if block.dtype == np.float16:
        return translate(block.astype(np.float32), shift, order=order).astype(np.float16)
    return ndimage_module(block).shift(block, tuple(float(s) for s in shift), order=order, mode="nearest",
                                       prefilter=False)
