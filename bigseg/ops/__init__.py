"""Generic dask helpers shared by the stages: exact halo-aware ``map_overlap``, NumPy/CuPy
dispatch, distributed histograms and exact global percentiles."""

from ._dispatch import array_module, is_cupy, ndimage_module, on_host, to_numpy
from ._histogram import bincount_offset, histogram, masked_values, percentiles, value_range
from ._overlap import block_slices, map_overlap_exact, min_chunks

__all__ = [
    "array_module",
    "is_cupy",
    "ndimage_module",
    "to_numpy",
    "on_host",
    "bincount_offset",
    "histogram",
    "masked_values",
    "percentiles",
    "value_range",
    "block_slices",
    "map_overlap_exact",
    "min_chunks",
]
