"""Per-block features of the classical segmenters (NumPy or CuPy blocks; no dask).

* :func:`grey_classes`: the multi-Otsu class of each voxel from its thresholds.
* :func:`sobel_magnitude`: |Sobel gradient| (3x3x3 Sobel along each axis, mode 'reflect'), the
  edge feature of the k-means comparison in the LRCS-Net paper.
* :func:`multiscale_features`: ilastik-like pixel features at several scales (Sommer et al.,
  "ilastik: interactive learning and segmentation toolkit", ISBI 2011): Gaussian smoothing,
  Gaussian gradient magnitude, Laplacian of Gaussian and the three Hessian-of-Gaussian
  eigenvalues per sigma, plus the raw grey level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..ops._dispatch import array_module, ndimage_module
from .filters import exact_float_dtype

__all__ = ["sobel_magnitude", "hessian_eigenvalues", "multiscale_features", "feature_names", "feature_halo",
           "nearest_centre", "grey_classes"]


def sobel_magnitude(block: Any) -> Any:
    """sqrt(sum over axes of ``scipy.ndimage.sobel(block, axis)**2``), same shape, float32, or
    float64 for a block float32 would round (:func:`exact_float_dtype`: uint32 2**31 + k moved by
    up to 128, float64 1e-300 became 0)."""
    ndi = ndimage_module(block)
    xp = array_module(block)
    dt = exact_float_dtype(block.dtype)
    f = block.astype(dt, copy=False)
    acc = xp.zeros(f.shape, dt)
    for ax in range(f.ndim):
        g = ndi.sobel(f, axis=ax, mode="reflect", output=dt)
        acc += g * g
    return xp.sqrt(acc)


def hessian_eigenvalues(hzz, hzy, hzx, hyy, hyx, hxx):
    """Eigenvalues (ascending) of symmetric 3x3 matrices given elementwise (closed form).

    Smith's trigonometric method (O. K. Smith, Comm. ACM 4(4), 1961), vectorised; float64
    internally. Returns three arrays l1 <= l2 <= l3 of the input shape.
    """
    xp = array_module(hzz)
    a, b, c = (x.astype(np.float64) for x in (hzz, hyy, hxx))
    d, e, f = (x.astype(np.float64) for x in (hzy, hzx, hyx))
    q = (a + b + c) / 3.0
    p1 = d * d + e * e + f * f
    p2 = (a - q) ** 2 + (b - q) ** 2 + (c - q) ** 2 + 2.0 * p1
    p = xp.sqrt(p2 / 6.0)
    safe = xp.where(p > 0, p, 1.0)
    ba, bb, bc = (a - q) / safe, (b - q) / safe, (c - q) / safe
    bd, be, bf = d / safe, e / safe, f / safe
    det = ba * (bb * bc - bf * bf) - bd * (bd * bc - bf * be) + be * (bd * bf - bb * be)
    r = xp.clip(det / 2.0, -1.0, 1.0)
    phi = xp.arccos(r) / 3.0
    l3 = q + 2.0 * p * xp.cos(phi)
    l1 = q + 2.0 * p * xp.cos(phi + 2.0 * np.pi / 3.0)
    l2 = 3.0 * q - l1 - l3
    return l1, l2, l3


def feature_names(sigmas: Sequence[float]) -> list[str]:
    """Names of :func:`multiscale_features`' channels, in order."""
    names = ["intensity"]
    for s in sigmas:
        names += [f"gaussian_{s:g}", f"gradient_magnitude_{s:g}", f"log_{s:g}",
                  f"hessian_l1_{s:g}", f"hessian_l2_{s:g}", f"hessian_l3_{s:g}"]
    return names


def feature_halo(sigmas: Sequence[float], truncate: float = 4.0) -> int:
    """Halo (voxels) that makes :func:`multiscale_features` exact blockwise."""
    return int(truncate * max(sigmas) + 0.5)


def multiscale_features(block: Any, sigmas: Sequence[float], *, truncate: float = 4.0) -> Any:
    """ilastik-like features of a 3D block: array (feature, z, y, x) float32.

    Channels (see :func:`feature_names`): raw grey level, then per sigma (voxels) the Gaussian,
    the Gaussian gradient magnitude, the Laplacian of Gaussian and the Hessian eigenvalues
    (ascending), all with scipy's 'reflect' mode.
    """
    ndi = ndimage_module(block)
    xp = array_module(block)
    f = block.astype(np.float32, copy=False)
    out = [f]
    for s in sigmas:
        kw = dict(sigma=float(s), mode="reflect", truncate=truncate, output=np.float32)
        out.append(ndi.gaussian_filter(f, **kw))
        out.append(ndi.gaussian_gradient_magnitude(f, **kw))
        h = {}
        for i in range(3):
            for j in range(i, 3):
                order = [0, 0, 0]
                order[i] += 1
                order[j] += 1
                h[i, j] = ndi.gaussian_filter(f, order=order, **kw)
        out.append(h[0, 0] + h[1, 1] + h[2, 2])
        for ev in hessian_eigenvalues(h[0, 0], h[0, 1], h[0, 2], h[1, 1], h[1, 2], h[2, 2]):
            out.append(ev.astype(np.float32))
    return xp.stack(out)


def nearest_centre(features: Any, centres: Any) -> Any:
    """Index of the nearest centre for each row of ``features`` (n, f) given ``centres`` (k, f)."""
    xp = array_module(features)
    d = ((features[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return xp.argmin(d, axis=1)


def grey_classes(grey: Any, thresholds: Any) -> Any:
    """The grey-level class of each voxel: the number of thresholds strictly below its value.

    A scikit-image threshold is the last grey value of the class below it (``image > t`` is the
    class above; multi-Otsu of an image of the values 10, 120, 230 gives 10 and 120), so a voxel
    exactly at a threshold stays below it: ``numpy.digitize(..., right=True)``. (The plain
    ``digitize`` of scikit-image's example moves it up, which empties the lowest class of an
    image with few grey values, e.g. 8-bit data.)
    """
    xp = array_module(grey)
    return xp.digitize(grey, xp.asarray(thresholds), right=True).astype(np.uint8)
