"""NumPy / CuPy dispatch for block kernels: pick the array module and the ndimage module."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["is_cupy", "array_module", "ndimage_module", "to_numpy", "on_host"]


def is_cupy(x: Any) -> bool:
    """True when ``x`` is a CuPy array (without importing CuPy when it is not installed)."""
    return type(x).__module__.split(".")[0] == "cupy"


def array_module(x: Any) -> ModuleType:
    """``cupy`` for CuPy arrays, else ``numpy``.

    Parameters
    ----------
    x : an array (or any object: only CuPy arrays are told apart).
    """
    if is_cupy(x):
        import cupy

        return cupy
    return np


def ndimage_module(x: Any) -> ModuleType:
    """``cupyx.scipy.ndimage`` for CuPy arrays, else ``scipy.ndimage``.

    Parameters
    ----------
    x : an array (or any object: only CuPy arrays are told apart).
    """
    if is_cupy(x):
        import cupyx.scipy.ndimage as cndi

        return cndi
    import scipy.ndimage as ndi

    return ndi


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of a CuPy array; NumPy arrays are returned as they are (other objects as
    ``np.asarray`` makes them).

    Parameters
    ----------
    x : a NumPy or CuPy array, or anything ``np.asarray`` takes.
    """
    return x.get() if is_cupy(x) else np.asarray(x)


def on_host(arr: Any) -> Any:
    """A dask array with ``arr``'s blocks as NumPy arrays (CuPy blocks copied to the host, block
    by block); ``arr`` itself when its blocks are NumPy already."""
    if not is_cupy(getattr(arr, "_meta", None)):
        return arr
    return arr.map_blocks(to_numpy, dtype=arr.dtype, meta=np.empty((0,) * arr.ndim, arr.dtype))
