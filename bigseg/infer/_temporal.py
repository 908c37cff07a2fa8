"""Time-regularised segmentation of an operando series: each scan's softmax probabilities
averaged with those of its neighbouring scans before the argmax.

Independent scans of a slowly changing sample carry independent noise; a voxel near an
interface flips phase from scan to scan on noise alone, and ``measure.transitions`` of such
labels counts the flicker as change. Averaging the probabilities of the ``temporal`` scans
before and after each one (a uniform window, shortened at the ends of the series) trades time
resolution for noise: changes slower than the window are kept, flicker is not. The scans must
be aligned (:func:`bigseg.filters.align`).

Lazy and blockwise: output block (t, z, y, x) reads the same spatial block of the window's
scans (one task per output block, the window's sum in a fixed order, so the result does not
depend on the chunking). Computed as it stands, the graph holds about ``temporal + 1`` scans'
probabilities (C float32 per voxel each) while it runs; :func:`staged` first stores every
scan's probabilities on disk (float16) so that memory stays at a few blocks whatever the scans'
size (the pipeline and ``bigseg segment --temporal`` do)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_choice, parse_nonnegative_int
from ..errors import InputError
from ..io._volume import state_values
from ..kernels import blend as K

__all__ = ["smooth_over_time", "staged", "windowed", "parse_temporal", "warn_if_misaligned"]

#: the largest movement (voxels) between scans of one time window said nothing about
ALIGNED_WITHIN = 1.0


def parse_temporal(temporal: Any, *, series: bool) -> int:
    """``temporal`` as a non-negative int; refused (naming it) for a single volume."""
    r = parse_nonnegative_int("temporal", temporal)
    if r and not series:
        raise InputError(f"Expected `temporal` 0 for a single (z, y, x) volume (it averages the probabilities of "
                         f"neighbouring scans of a (t, z, y, x) series). Got {temporal!r} instead.")
    return r


def warn_if_misaligned(vol: Any, temporal: int, *, sample: int = 64) -> np.ndarray | None:
    """Warn when scans of the (t, z, y, x) series ``vol`` that one time window of radius
    ``temporal`` averages together are moved against each other by ``ALIGNED_WITHIN`` voxels or
    more (the window would average misaligned scans: interfaces blurred, thin CBD lost).

    Reads the central ``sample``³ of each scan only. Each scan's whole-voxel shift onto the one
    before is the peak of their cross-correlation (as :func:`bigseg.filters.estimate_shifts`),
    counted only where it explains the pair clearly better than no shift (their correlation
    over the shifted overlap at least 0.1 above that of the unshifted crops: scans that share
    nothing, e.g. noise, are not said to drift). Returns the (t, 3) drift onto scan 0 in
    voxels, None for ``temporal`` 0 or a single scan."""
    import warnings

    from ..filters._align import _central, _correlate, _groups
    from ..io._volume import as_volume
    from ..ops import to_numpy
    from ..runtime import compute

    if not temporal:
        return None
    v = as_volume(vol, name="vol", ndim=4)
    if v.shape[0] < 2:
        return None
    region = _central(tuple(v.shape[1:]), sample)
    n = v.shape[0]
    steps, before = [np.zeros(3)], None
    # a few scans at a time (filters._align.SCANS_AT_ONCE), not every scan's crop at once (3 MiB per
    # 64³ crop: 1.5 GiB for 500 scans): each pair needs only the one before
    for group in _groups(range(n)):
        got = compute(*[v.data[(t, *region)] for t in group], progress=False)
        for crop in got:
            now = np.asarray(to_numpy(crop), np.float64)
            if before is not None:
                k = np.round(_correlate(before, now, 1)).astype(int)
                gain = _overlap_correlation(before, now, k) - _overlap_correlation(before, now, np.zeros(3, int))
                steps.append(k if gain >= 0.1 else np.zeros(3))
            before = now
    drift = np.cumsum(steps, axis=0)
    worst, pair = 0.0, (0, 0)
    for t in range(n):
        for u in range(t + 1, min(n, t + 2 * temporal + 1)):  # scans that share a window
            d = float(np.abs(drift[u] - drift[t]).max())
            if d > worst:
                worst, pair = d, (t, u)
    if worst >= ALIGNED_WITHIN:
        warnings.warn(f"scans {pair[0]} and {pair[1]} of the series, averaged in one time window (`temporal`="
                      f"{temporal}), are moved {worst:.0f} voxels against each other: the window averages "
                      f"misaligned scans (interfaces blurred, thin CBD lost); align them first "
                      f"(filters.align: true, bigseg.filters.align)", UserWarning, stacklevel=2)
    return drift


def _overlap_correlation(fixed: np.ndarray, moving: np.ndarray, k: np.ndarray) -> float:
    """Pearson correlation of ``fixed`` with ``moving`` moved by the whole voxels ``k`` over
    their overlap (0 where it is under 4 voxels along an axis or flat), over the voxels with
    data (finite) in both."""
    lo = [max(0, kk) for kk in k]
    hi = [min(n, n + kk) for n, kk in zip(fixed.shape, k)]
    if any(b - a < 4 for a, b in zip(lo, hi)):
        return 0.0
    from ..filters._align import pearson

    return pearson(fixed[tuple(slice(x, y) for x, y in zip(lo, hi))],
                   moving[tuple(slice(x - kk, y - kk) for x, y, kk in zip(lo, hi, k))])


def _window(t: int, n: int, radius: int) -> range:
    return range(max(0, t - radius), min(n, t + radius + 1))


def smooth_over_time(ds: xr.Dataset, temporal: int, *, probabilities: bool = False,
                     uncertainty: str | None = None) -> xr.Dataset:
    """The series Dataset ``ds`` (``labels`` (t, z, y, x), ``probabilities`` (t, phase, z, y, x),
    as :func:`bigseg.predict` returns for a series with ``probabilities=True``) with the
    probabilities of each scan replaced by their mean over the scans ``t - temporal .. t +
    temporal`` that exist, the labels the argmax of that mean (voxels labelled 255 in ``ds``,
    outside a field of view, stay 255) and ``uncertainty`` (``"entropy"``/``"margin"``) from
    it; the probabilities are kept only with ``probabilities=True``. ``attrs["temporal"]`` says
    the window's radius.

    Parameters
    ----------
    ds : the series Dataset above.
    temporal : the window's radius in scans, an int >= 0 (0: each scan alone).
    probabilities : keep the averaged ``probabilities`` (default False).
    uncertainty : None (default), ``"entropy"`` (nats) or ``"margin"`` (1 − max probability).
    """
    temporal = parse_nonnegative_int("temporal", temporal)
    uncertainty = parse_choice("uncertainty", uncertainty, [None, "entropy", "margin"])
    if "probabilities" not in ds or ds["probabilities"].dims[:2] != ("t", "phase"):
        raise InputError("Expected `ds` to hold the probabilities (t, phase, z, y, x) of a series.")
    p = ds["probabilities"]
    arr = p.data if isinstance(p.data, da.Array) else da.from_array(p.data, chunks=(1, -1, "auto", "auto", "auto"))
    arr = arr.rechunk({0: 1, 1: -1})
    n = arr.shape[0]
    frames = [da.map_blocks(K.mean_in_order, *[arr[s] for s in _window(t, n, temporal)], dtype=np.float32,
                            token="temporal-mean")
              for t in range(n)]
    smooth = da.stack(frames)
    before = ds["labels"].data
    before = before if isinstance(before, da.Array) else da.from_array(before)
    before = before.rechunk((1, *smooth.chunks[2:]))
    labels = da.blockwise(K.labels_keeping, "tzyx", smooth, "tczyx", before, "tzyx", dtype=np.uint8, concatenate=True,
                          token="temporal-labels")
    out = ds.copy()
    out["labels"] = ds["labels"].copy(data=labels)
    if probabilities:
        out["probabilities"] = p.copy(data=smooth)
        if temporal:  # what they are now: say so where they say what they are
            what = p.attrs.get("description", "softmax probabilities")
            out["probabilities"].attrs["description"] = f"{what}, each scan's averaged with {temporal} scan(s) " \
                "before and after"
    else:
        out = out.drop_vars("probabilities")
    if uncertainty is not None:
        unc = da.blockwise(K.uncertainty_over_phases, "tzyx", smooth, "tczyx", method=uncertainty, dtype=np.float32,
                           concatenate=True, token="temporal-uncertainty")
        out["uncertainty"] = state_values(xr.DataArray(
            unc, dims=ds["labels"].dims, coords=ds["labels"].coords,
            attrs={**{k: v for k, v in ds["labels"].attrs.items() if k in ("voxel_size", "unit")},
                   "method": uncertainty, "unit_of_value": "nats" if uncertainty == "entropy" else "1"}))
    elif "uncertainty" in out:
        out = out.drop_vars("uncertainty")
    out.attrs["temporal"] = temporal
    return out


def staged(ds: xr.Dataset, folder: str | Path, *, key: str | None = None, progress: bool = True,
           prefix: str = "temporal"):
    """A context manager: ``ds`` (a series' ``labels`` and ``probabilities``) computed once into
    a scratch store under ``folder`` and read back lazily from there
    (:func:`bigseg.infer._scratch.stored_once`, probabilities as float16), for
    :func:`smooth_over_time` to read each scan's blocks as many times as windows hold it without
    keeping whole scans in memory. Removed on leaving the block; with ``key`` resumable (kept
    when interrupted, the same key computes only the blocks not yet on disk). ``prefix`` names
    the scratch (``folder/.{prefix}-*.zarr``): one per output when several share ``folder``."""
    from ._scratch import stored_once

    return stored_once(ds[["labels", "probabilities"]], folder, prefix=prefix, key=key, progress=progress,
                       desc="predicting each scan (probabilities, for the time window)")


@contextmanager
def windowed(ds: xr.Dataset, temporal: int, folder: str | Path, *, key: str | None = None,
             probabilities: bool = False, uncertainty: str | None = None,
             progress: bool = True, prefix: str = "temporal") -> Iterator[xr.Dataset]:
    """:func:`smooth_over_time` of ``ds`` read from its :func:`staged` copy under ``folder``: the
    time window as the pipeline and ``bigseg segment --temporal`` run it (memory a few blocks,
    resumable under ``key``; ``prefix`` as for :func:`staged`)."""
    with staged(ds, folder, key=key, progress=progress, prefix=prefix) as st:
        yield smooth_over_time(st, temporal, probabilities=probabilities, uncertainty=uncertainty)
