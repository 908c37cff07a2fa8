"""Shared pieces of the classical segmenters: input checks, phase names, global histogram."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_nonnegative_int, parse_phases, parse_positive_int
from ..errors import InputError
from ..filters import count_nonfinite
from ..io._volume import DEFAULT_PHASES, UNLABELLED, as_volume, check_grey, like_volume
from ..ops import bincount_offset, masked_values, on_host, to_numpy, value_range
from ..runtime import compute

__all__ = ["check_volume", "phase_names", "global_histogram", "labels_volume", "parse_classes", "MAX_NBINS", "MAX_PLACEMENTS"]

FOV_DOC = """fov : the reconstruction's field of view (:func:`bigseg.io.fov_mask`: ``"auto"``,
        ``"cylinder"``, a circle ``(cy, cx, r)`` or a (y, x) boolean mask): the statistics come
        from the voxels inside only (NaN outside allowed), the outside is filled with noise of
        the inside's moments for the filters and labelled 255 (unlabelled)."""


def check_volume(vol: Any, *, progress: bool = False, fov: Any = None) -> tuple[xr.DataArray, np.ndarray | None]:
    """A (z, y, x) or (t, z, y, x) real-valued volume without NaN/inf (InputError stating how
    many otherwise) and its (y, x) field of view mask (None without ``fov``). With ``fov`` (one
    volume only) just the voxels inside are checked, and the volume comes back with the outside
    filled with noise of the inside's moments (:func:`bigseg.io.fill_outside_like_inside`).
    The segmenters take series frame by frame (``frame_by_frame``)."""
    from ..io import fill_outside_like_inside, fov_mask

    v = check_grey(as_volume(vol, name="vol", allow_series=fov is None))
    mask = None if fov is None else fov_mask(v, fov, progress=progress).values
    nan, inf = count_nonfinite(v, mask=mask, progress=progress)
    if nan + inf:
        hint = (" A NaN fill outside a reconstruction's field of view? Segment inside it (fov='auto', --fov auto): "
                "the statistics then come from the voxels inside, and the outside is labelled 255 (unlabelled)."
                if mask is None and nan and v.ndim == 3 else "")
        raise InputError(f"Expected `vol` to hold finite values only{'' if mask is None else ' in `fov`'}. Got {nan} "
                         f"NaN and {inf} infinite voxels (of {v.size}) instead.{hint}")
    if mask is not None:
        v = fill_outside_like_inside(v, mask, progress=progress)
    return v, mask


def parse_classes(classes: Any) -> int:
    n = parse_positive_int("classes", classes)
    if not 2 <= n <= 254:
        raise InputError(f"Expected `classes` in [2, 254]. Got {classes!r} instead.")
    return n


def parse_seed(seed: Any) -> int:
    """A seed that reaches scikit-learn's ``random_state``: an int in [0, 2**32) (its own refusal
    of a larger one came after the passes over the data, as a scikit-learn traceback)."""
    n = parse_nonnegative_int("seed", seed)
    if n >= 2**32:
        raise InputError(f"Expected `seed` in [0, 2**32) (scikit-learn's random_state). Got {seed!r} instead.")
    return n


#: the most histogram bins for multi-Otsu: one per value of 16-bit CT; its search is O(nbins**(classes - 1))
#: (8 minutes for 3 classes at this many, 5 s at 2**14), and the histogram's edges are held by every block's task
MAX_NBINS = 1 << 16


MAX_PLACEMENTS = 1 << 28  # multi-Otsu's search: ~7 s at ~4·10⁷ placements per second (2-core Xeon)


def parse_nbins(nbins: Any, classes: int) -> int:
    """Histogram bins for multi-Otsu: an integer, at least one per class, at most ``MAX_NBINS``,
    and few enough for the search: scikit-image tries every placement of the ``classes - 1``
    thresholds among the bins, C(nbins, classes - 1) of them, at most ``MAX_PLACEMENTS`` (10
    classes over 256 bins would be ~10¹⁶: years)."""
    from math import comb

    n = parse_positive_int("nbins", nbins, most=MAX_NBINS)
    if n < classes:
        raise InputError(f"Expected `nbins` to be at least `classes` ({classes}): one histogram bin per class or more. "
                         f"Got {nbins!r} instead.")
    if comb(n, classes - 1) > MAX_PLACEMENTS:
        most = classes
        while comb(most + 1, classes - 1) <= MAX_PLACEMENTS:
            most += 1
        raise InputError(f"Expected `nbins` and `classes` with at most {MAX_PLACEMENTS:,} placements of the thresholds "
                         f"for multi-Otsu to try (C(nbins, classes - 1)): for {classes} classes at most {most:,} bins. "
                         f"Got nbins={nbins!r} for {classes} classes ({float(comb(n, classes - 1)):.3g} placements) "
                         f"instead.")
    return n


def phase_names(classes: int, phases: Any = None) -> list[str]:
    """Phase names ordered by grey level: DEFAULT_PHASES (pore, cbd, active) for 3 classes."""
    if phases is not None:
        names = parse_phases(phases)
        if len(names) != classes:
            raise InputError(f"Expected `phases` to name {classes} classes. Got {names!r} instead.")
        return names
    return list(DEFAULT_PHASES) if classes == len(DEFAULT_PHASES) else [f"phase{i}" for i in range(classes)]


def global_histogram(v: xr.DataArray, *, nbins: int = 256, mask: np.ndarray | None = None,
                     progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(counts, bin centres) of the whole volume, as ``skimage.exposure.histogram`` computes them.

    Integer volumes spanning fewer than ``nbins`` values: one bin per integer value (as
    scikit-image does); floats, and integers of a wider range (e.g. uint16 CT, where scikit-image's
    one bin per value makes multi-Otsu take minutes): ``nbins`` equal bins over [min, max]
    (``numpy.histogram``'s edges, in the image's float dtype), centres midway. With a (y, x)
    ``mask``, of the voxels inside it only.
    """
    arr = v.data if mask is None else masked_values(v.data, mask)
    lo, hi = value_range(arr, progress=progress)
    if np.issubdtype(arr.dtype, np.integer) and int(hi) - int(lo) < nbins:
        (counts,) = compute(bincount_offset(arr, int(lo), int(hi)), desc="histogram", progress=progress)
        return counts, np.arange(int(lo), int(hi) + 1)
    if np.issubdtype(arr.dtype, np.integer):  # wide integer range: nbins float bins (multi-Otsu is O(bins**2))
        arr = arr.astype(np.float64)
    arr = on_host(arr)  # numpy.histogram's own binning, on the host
    # the edges exactly as numpy.histogram / scikit-image build them (dtype of the image)
    lo, hi = np.asarray(to_numpy(lo), arr.dtype)[()], np.asarray(to_numpy(hi), arr.dtype)[()]
    edges = np.linspace(lo, hi, nbins + 1, endpoint=True, dtype=np.result_type(lo, hi, arr.dtype))
    counts, _ = da.histogram(arr, bins=edges)
    (counts,) = compute(counts, desc="histogram", progress=progress)
    return counts, (edges[:-1] + edges[1:]) / 2.0


def multiotsu(counts: np.ndarray, centres: np.ndarray, classes: int) -> np.ndarray:
    """scikit-image's multi-Otsu thresholds of a global histogram; an image with fewer distinct
    grey values than ``classes`` (a blank or saturated scan) is refused by name."""
    from skimage.filters import threshold_multiotsu

    filled = int(np.count_nonzero(counts))
    if filled < classes and filled > 1 and not np.issubdtype(np.asarray(centres).dtype, np.integer):
        # equal bins over [min, max] (floats, wide integer ranges): occupied bins, not grey values
        raise InputError(f"Expected `vol`'s grey values to fall in at least {classes} of the {len(counts)} equal "
                         f"histogram bins between its minimum and maximum for {classes} classes. Got {filled} "
                         f"(a few outliers stretching the range? Clip the volume to the sample's grey levels).")
    if filled < classes:
        raise InputError(f"Expected `vol` to hold at least {classes} distinct grey values for {classes} classes. "
                         f"Got {filled} (a blank or saturated scan?).")
    return np.asarray(threshold_multiotsu(classes=classes, hist=(counts, centres)))  # dtype of the centres


def labels_volume(data: da.Array, like: xr.DataArray, phases: list[str], *, mask: np.ndarray | None = None,
                  **attrs: Any) -> xr.DataArray:
    """A lazy uint8 label volume with ``like``'s coordinates and ``attrs['phases']``; 255
    (unlabelled) outside a (y, x) field of view ``mask``."""
    from ..io import fill_outside

    out = like_volume(data.astype(np.uint8, copy=False), like, phases=phases, name="labels")
    out.attrs.update(attrs)
    if mask is not None:
        out = fill_outside(out, mask, UNLABELLED)
        out.attrs["fov_inside_fraction"] = float(mask.mean())
    return out
