"""Multi-Otsu thresholding on a global, distributed histogram."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..io._volume import frame_by_frame
from ..kernels.features import grey_classes
from ..ops import to_numpy
from ._common import (FOV_DOC, check_volume, global_histogram, labels_volume, multiotsu, parse_classes, parse_nbins,
                      phase_names)

__all__ = ["threshold", "multiotsu_thresholds"]


def multiotsu_thresholds(vol: Any, *, classes: int = 3, nbins: int = 256, progress: bool = False) -> np.ndarray:
    """``skimage.filters.threshold_multiotsu(vol, classes, nbins)`` from a distributed histogram.

    Equal to scikit-image on the whole array for floats (``nbins`` bins over [min, max]) and for
    integer volumes spanning fewer than ``nbins`` values (one bin per value): the same histogram
    is fed to its ``hist=`` argument. Integer volumes of a wider range (e.g. uint16 CT) get
    ``nbins`` equal bins over [min, max] too, where scikit-image takes one bin per value (and
    minutes: multi-Otsu is O(bins**2) for 3 classes); their thresholds then fall between
    integers and may differ from scikit-image's by up to one bin width.

    Parameters
    ----------
    vol : volume (z, y, x), integer or float, no NaN/inf (a (t, z, y, x) series: one histogram
        over all of it)
    classes : int in [2, 254] (default 3)
    nbins : histogram bins, as for :func:`threshold` (default 256)
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    float array of the ``classes - 1`` thresholds, increasing
    """
    classes = parse_classes(classes)
    nbins = parse_nbins(nbins, classes)
    v, _ = check_volume(vol, progress=progress)
    return _multiotsu(v, classes, nbins, None, progress)


def _multiotsu(v: xr.DataArray, classes: int, nbins: int, mask: np.ndarray | None, progress: bool) -> np.ndarray:
    counts, centres = global_histogram(v, nbins=nbins, mask=mask, progress=progress)
    return multiotsu(counts, centres, classes)


def _host_classes(block: Any, thresholds: np.ndarray) -> np.ndarray:
    """The classes of a block (classified on its device, NumPy or CuPy), as host labels."""
    return to_numpy(grey_classes(block, thresholds))


@frame_by_frame
def threshold(vol: Any, *, classes: int = 3, nbins: int = 256, phases: Any = None, fov: Any = None,
              progress: bool = False) -> xr.DataArray:
    """Multi-Otsu segmentation into ``classes`` grey-level classes (Liao et al., J. Inf. Sci. Eng. 2001).

    The thresholds are computed now from a global histogram (one distributed pass); labelling is
    lazy: ``label = number of thresholds below the grey level`` (:func:`grey_classes`: a voxel at
    a threshold belongs to the class below, as in scikit-image), so classes
    are ordered by grey level (for 3 classes: 0 pore, 1 cbd, 2 active).

    Parameters
    ----------
    vol : volume (z, y, x), integer or float, no NaN/inf; or a series (t, z, y, x), each frame
        segmented on its own (its own histogram and thresholds, listed per frame in the attrs)
    classes : int in [2, 254]
    nbins : histogram bins for float volumes and for integer volumes spanning ``nbins`` values or
        more (those spanning fewer use one bin per value); at most ``MAX_NBINS``, and at most
        ``MAX_PLACEMENTS`` placements of the thresholds among them for the search (C(nbins,
        classes - 1): 256 bins up to 5 classes, 23 170 for 3)
    phases : names of the classes by grey level (default ``DEFAULT_PHASES`` for 3 classes)
    {fov}
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    lazy uint8 label volume (z, y, x) with ``attrs['phases']`` and ``attrs['thresholds']``

    Examples
    --------
    >>> from bigseg import baselines, filters, measure, synth
    >>> labels = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
    >>> image = synth.xct(labels, preset="nano-ct-phase", seed=0)
    >>> otsu = baselines.threshold(filters.median(image), classes=3)
    >>> otsu.dtype, otsu.attrs["phases"], len(otsu.attrs["thresholds"])
    (dtype('uint8'), ['pore', 'cbd', 'active'], 2)
    >>> round(float(measure.scores(labels, otsu).accuracy), 2)  # share of voxels right
    0.71
    """
    classes = parse_classes(classes)
    names = phase_names(classes, phases)
    nbins = parse_nbins(nbins, classes)  # the options before the volume's passes
    v, mask = check_volume(vol, progress=progress, fov=fov)
    th = _multiotsu(v, classes, nbins, mask, progress)
    data = v.data.map_blocks(_host_classes, th, dtype=np.uint8, token="threshold",
                             meta=np.empty((0,) * v.data.ndim, np.uint8))
    return labels_volume(data, v, names, mask=mask, thresholds=[float(t) for t in th], method="threshold")


threshold.__doc__ = threshold.__doc__.replace("{fov}", FOV_DOC)
