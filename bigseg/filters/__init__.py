"""Blockwise filters, exact for any chunking, on NumPy or CuPy blocks.

``median`` (3D, kernel 3 by default: compiled selection network), ``gaussian`` (sigma 1.1),
``unsharp`` (radius 6, amount 0.6, optionally 2D per slice) and ``normalize`` (global
percentiles to [0, 1]). Each equals scipy.ndimage / scikit-image on the whole array.
``align`` moves the scans of an operando series onto one another (rigid translation).
"""

from ._align import align, estimate_shifts
from ._filters import count_nonfinite, gaussian, median, normalize, unsharp

__all__ = ["median", "gaussian", "unsharp", "normalize", "count_nonfinite", "align", "estimate_shifts"]
