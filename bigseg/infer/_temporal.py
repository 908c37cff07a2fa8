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
from ..kernels import blend as K

__all__ = ["smooth_over_time", "staged", "windowed", "parse_temporal"]


def parse_temporal(temporal: Any, *, series: bool) -> int:
    """``temporal`` as a non-negative int; refused (naming it) for a single volume."""
    r = parse_nonnegative_int("temporal", temporal)
    if r and not series:
        raise InputError(f"Expected `temporal` 0 for a single (z, y, x) volume (it averages the probabilities of "
                         f"neighbouring scans of a (t, z, y, x) series). Got {temporal!r} instead.")
    return r


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
    the window's radius."""
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
    else:
        out = out.drop_vars("probabilities")
    if uncertainty is not None:
        unc = da.blockwise(K.uncertainty_over_phases, "tzyx", smooth, "tczyx", method=uncertainty, dtype=np.float32,
                           concatenate=True, token="temporal-uncertainty")
        out["uncertainty"] = xr.DataArray(
            unc, dims=ds["labels"].dims, coords=ds["labels"].coords,
            attrs={**{k: v for k, v in ds["labels"].attrs.items() if k in ("voxel_size", "unit")},
                   "method": uncertainty, "unit_of_value": "nats" if uncertainty == "entropy" else "1"})
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
