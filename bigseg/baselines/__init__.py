"""Classical segmenters for comparison with the learned models.

``threshold`` (multi-Otsu on a global histogram), ``kmeans`` (grey level + Sobel magnitude),
``watershed`` (confident-threshold seeds flooding the gradient) and ``random_forest`` (sparse
labels, ilastik-like multiscale features). Each returns a lazy uint8 label volume with
``attrs['phases']``; for 3 classes ordered by grey level: 0 pore, 1 cbd, 2 active.
"""

from ._forest import DEFAULT_SIGMAS, random_forest
from ._kmeans import kmeans
from ._threshold import multiotsu_thresholds, threshold
from ._watershed import WINDOWS, watershed

__all__ = ["threshold", "multiotsu_thresholds", "kmeans", "watershed", "WINDOWS", "random_forest", "DEFAULT_SIGMAS"]
