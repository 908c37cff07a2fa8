"""Multi-Otsu thresholding on a global, distributed histogram."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..io._volume import frame_by_frame
from ._common import check_volume, global_histogram, labels_volume, parse_classes, phase_names

__all__ = ["threshold", "multiotsu_thresholds"]


def multiotsu_thresholds(vol: Any, *, classes: int = 3, nbins: int = 256, progress: bool = False) -> np.ndarray:
    """``skimage.filters.threshold_multiotsu(vol, classes, nbins)`` from a distributed histogram.

    Equal to scikit-image on the whole array: the same histogram (one bin per integer value for
    integer volumes; ``nbins`` bins over [min, max] for floats) is fed to its ``hist=`` argument.
    """
    from skimage.filters import threshold_multiotsu

    v = check_volume(vol, progress=progress)
    classes = parse_classes(classes)
    counts, centres = global_histogram(v, nbins=nbins, progress=progress)
    return np.asarray(threshold_multiotsu(classes=classes, hist=(counts, centres)))  # dtype of the centres


def _digitize(b: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return np.digitize(b, bins=thresholds).astype(np.uint8)


@frame_by_frame
def threshold(vol: Any, *, classes: int = 3, nbins: int = 256, phases: Any = None,
              progress: bool = False) -> xr.DataArray:
    """Multi-Otsu segmentation into ``classes`` grey-level classes (Liao et al., J. Inf. Sci. Eng. 2001).

    The thresholds are computed now from a global histogram (one distributed pass); labelling is
    lazy: ``label = number of thresholds below the grey level`` (``numpy.digitize``), so classes
    are ordered by grey level (for 3 classes: 0 pore, 1 cbd, 2 active).

    Parameters
    ----------
    vol : volume (z, y, x), integer or float, no NaN/inf; or a series (t, z, y, x), each frame
        segmented on its own (its own histogram and thresholds, listed per frame in the attrs)
    classes : int in [2, 254]
    nbins : histogram bins for float volumes (integer volumes use one bin per value)
    phases : names of the classes by grey level (default ``DEFAULT_PHASES`` for 3 classes)

    Returns
    -------
    lazy uint8 label volume (z, y, x) with ``attrs['phases']`` and ``attrs['thresholds']``
    """
    v = check_volume(vol, progress=progress)
    classes = parse_classes(classes)
    names = phase_names(classes, phases)
    th = multiotsu_thresholds(v, classes=classes, nbins=nbins, progress=progress)
    data = v.data.map_blocks(_digitize, th, dtype=np.uint8)
    return labels_volume(data, v, names, thresholds=[float(t) for t in th], method="threshold")
