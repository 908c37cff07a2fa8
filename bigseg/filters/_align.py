"""Rigid alignment of the scans of an operando series: translation estimated by (upsampled)
cross-correlation of central sub-volumes, applied blockwise."""

from __future__ import annotations

import math
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_flag, parse_positive_int
from ..errors import InputError
from ..io._volume import as_volume
from ..kernels import filters as K
from ..ops import map_overlap_exact, to_numpy
from ..runtime import compute
from ..runtime._progress import in_groups

__all__ = ["align", "estimate_shifts"]

#: at most this many refinements of each estimate (each on the sub-volumes its whole-voxel part
#: aligns; repeated only while that part changes)
REFINE_PASSES = 3
#: correlations of each refinement on the moving sub-volume moved by the estimate so far (Fourier
#: shift): the Hann taper of both sub-volumes biases a sub-voxel estimate towards whole voxels
#: (0.5 read as 0.42); what is left after the move is small, and so is its bias
SUBVOXEL_PASSES = 1
#: a scan whose sub-volume correlates less than this with the reference's at its estimate does
#: not match there: estimated again on a wider region, else warned (measured on 48 x 112 x 112
#: windows of synthetic scans, each its own noise, sample 32: 0.72 (lab-micro-ct) and 0.91
#: (synchrotron-micro-ct) at the true shift, -0.21..0.24 at wrong ones)
MATCH_MIN = 0.4
#: scans whose sub-volumes are read in one compute: the client holds these (and the reference's),
#: not every scan's (8 MiB per float32 128³ sub-volume, and twice that for the pairs refined: 3 GiB
#: for 128 scans)
SCANS_AT_ONCE = 8


def _groups(scans: Any) -> list[list[int]]:
    """``scans`` in groups of :data:`SCANS_AT_ONCE`, in order."""
    scans = list(scans)
    return [scans[i:i + SCANS_AT_ONCE] for i in range(0, len(scans), SCANS_AT_ONCE)]


def _reference(reference: Any, nt: int) -> int:
    if isinstance(reference, bool) or not isinstance(reference, (int, np.integer)) or not -nt <= reference < nt:
        raise InputError(f"Expected `reference` to be a time step index in [{-nt}, {nt}). Got {reference!r} instead.")
    return int(reference) % nt


def _central(shape: tuple[int, ...], sample: int) -> tuple[slice, ...]:
    return tuple(slice((n - min(n, sample)) // 2, (n - min(n, sample)) // 2 + min(n, sample)) for n in shape)


def estimate_shifts(vol: Any, *, reference: int = 0, upsample: int = 10, sample: int = 128,
                    progress: bool = False) -> np.ndarray:
    """(t, 3) float64 translation (z, y, x voxels) that moves each scan of a (t, z, y, x) series
    onto scan ``reference``: ``skimage.registration.phase_cross_correlation`` (to 1/``upsample``
    voxel, Guizar-Sicairos et al. 2008; plain cross-correlation of mean-free, Hann-tapered
    sub-volumes) of the central ``sample``³ sub-volume of each scan against the reference's,
    then once more on the sub-volumes that show the same part of the sample after the
    whole-voxel part of that first estimate (and again, at most ``REFINE_PASSES`` times, while
    that whole-voxel part changes), each refinement correlated once more after moving the scan's
    sub-volume by its estimate (``SUBVOXEL_PASSES``: the taper pulls fractions towards whole
    voxels). Only those sub-volumes are read. A drift of more than half the sub-volume's edge
    along an axis reads as a small, wrong one (the correlation wraps around): a scan whose
    sub-volume then correlates less than ``MATCH_MIN`` with the reference's is estimated again on
    a central region twice, four, ... times as large (up to the whole volume), binned to about
    ``sample``³, and refined as above; one that still does not match is warned about with its
    correlation. A scan whose sub-volume holds no structure (blank, or all outside a field of
    view) is warned about and given the shift 0.

    Parameters
    ----------
    vol : (t, z, y, x) series of scans (DataArray, dask or NumPy array).
    reference : the scan the others are moved onto, an index into ``t`` (negative counts from the
        end; default 0).
    upsample : the shifts' precision, 1/``upsample`` voxel (a positive int, default 10).
    sample : edge of the central sub-volume correlated, in voxels (at least 8, default 128).
    progress : a progress bar on stderr for each pass over the data (default off)
    """
    v = as_volume(vol, name="vol", ndim=4)
    ref = _reference(reference, v.shape[0])
    upsample = parse_positive_int("upsample", upsample)
    sample = parse_positive_int("sample", sample)
    if sample < 8:
        raise InputError(f"Expected `sample` of at least 8 voxels. Got {sample} instead.")
    shape = tuple(v.shape[1:])
    region = _central(shape, sample)
    fixed = compute(v.data[(ref, *region)], desc="sub-volumes for alignment", progress=progress)[0]
    flat, coarse = [], np.zeros((v.shape[0], 3))
    for group, own in in_groups(_groups(range(v.shape[0])), "sub-volumes for alignment", progress):
        # a few scans at a time (each correlated with the reference)
        crops = compute(*[v.data[(t, *region)] for t in group], desc="sub-volumes for alignment", progress=own)
        for t, c in zip(group, crops):
            if _flat(c):
                flat.append(t)
            coarse[t] = _correlate(fixed, c, upsample) if t != ref else np.zeros(3)
        del crops
    if flat:
        import warnings

        warnings.warn(f"`vol`'s scan(s) {flat} hold no structure in the central sub-volume the shifts are estimated "
                      f"on (one grey value, or no finite one: blank, or outside the field of view): "
                      f"{'every scan is' if ref in flat else 'they are'} given the shift 0. Align the others "
                      f"without them, or give `shifts`.", UserWarning, stacklevel=2)
    todo = [] if ref in flat else [t for t in range(v.shape[0]) if t != ref and t not in flat]
    out, seen = _refine(v, ref, region, coarse, todo, upsample, progress)
    # a drift larger than half the sub-volume reads as a small, wrong one (the correlation wraps
    # around): where the scan does not match the reference at its estimate, estimate again on a
    # central region twice (four, ... times) as large, binned to the same size, and refine that
    match = _match(v, ref, region, out, todo, progress, seen)
    level = 1
    while True:
        poor = [t for t in todo if match[t] < MATCH_MIN]
        bins = [min(2 ** level, -(-n // sample)) for n in shape]  # ceil(n / sample): the whole volume at most
        if not poor or bins == [min(2 ** (level - 1), -(-n // sample)) for n in shape]:
            break
        wide = _central(shape, sample * 2 ** level)
        wide_fixed = _binned(compute(v.data[(ref, *wide)], desc="wider sub-volumes for alignment",
                                     progress=progress)[0], bins)
        guess = out.copy()
        for group, own in in_groups(_groups(poor), "wider sub-volumes for alignment", progress):
            got = compute(*[v.data[(t, *wide)] for t in group], desc="wider sub-volumes for alignment",
                          progress=own)
            for t, c in zip(group, got):
                guess[t] = _correlate(wide_fixed, _binned(c, bins), upsample) * bins
            del got
        again, seen = _refine(v, ref, region, guess, poor, upsample, progress)
        better = _match(v, ref, region, again, poor, progress, seen)
        for t in poor:
            if better[t] > match[t]:
                out[t], match[t] = again[t], better[t]
        level += 1
    poor = [t for t in todo if match[t] < MATCH_MIN]
    if poor:
        import warnings

        said = ", ".join(f"{t} ({match[t]:.2f})" for t in poor)
        warnings.warn(f"`vol`'s scan(s) {poor} do not match scan {ref} at their estimated shifts "
                      f"{[np.round(out[t], 2).tolist() for t in poor]} (correlation of the matched sub-volumes: "
                      f"{said}; under {MATCH_MIN}): the shifts may be wrong (a drift of more than half the "
                      f"volume, scans of another place or sample, or mostly noise). Check them, or give "
                      f"`shifts`.", UserWarning, stacklevel=2)
    return out


def _common(region: tuple[slice, ...], shape: tuple[int, ...], k: Any,
            least: int) -> tuple[list[int], list[int]] | None:
    """The part [lo, hi) of the reference's ``region`` that the scan moved by the whole voxels
    ``k`` also covers; None where that is under ``least`` voxels along an axis."""
    lo = [max(r.start, kk) for r, kk in zip(region, k)]
    hi = [min(r.stop, n + kk) for r, n, kk in zip(region, shape, k)]
    return None if any(b - a < least for a, b in zip(lo, hi)) else (lo, hi)


def _pairs(v: xr.DataArray, ref: int, region: tuple[slice, ...], est: np.ndarray, scans: list[int],
           progress: bool, least: int = 8) -> list[tuple[int, np.ndarray, Any, Any]]:
    """(scan, whole voxels k, reference part, scan part moved by k) for each scan whose moved
    sub-volume shares at least ``least`` voxels per axis with the reference's (read together)."""
    shape = tuple(v.shape[1:])
    boxes = []
    for t in scans:
        k = np.round(est[t]).astype(int)
        box = _common(region, shape, k, least)
        if box is not None:
            lo, hi = box
            boxes.append((t, k, v.data[(ref, *[slice(a, b) for a, b in zip(lo, hi)])],
                          v.data[(t, *[slice(a - kk, b - kk) for a, b, kk in zip(lo, hi, k)])]))
    got = compute(*[(a, b) for _, _, a, b in boxes], desc="aligned sub-volumes", progress=progress)
    return [(t, k, a, b) for (t, k, _, _), (a, b) in zip(boxes, got)]


def _refine(v: xr.DataArray, ref: int, region: tuple[slice, ...], first: np.ndarray, scans: list[int],
            upsample: int, progress: bool) -> tuple[np.ndarray, dict[int, float]]:
    """Each of ``scans``' estimate ``first`` refined on the sub-volumes that show the same part of
    the sample: the reference's central ``region`` and the scan's region moved by the whole-voxel
    part of the estimate; again while that whole-voxel part changes (the first estimate, on
    crops that share less, can be off by more than half a voxel along a short axis: a residual
    that large is itself biased). Also the correlation of each scan's sub-volumes where its
    whole-voxel part settled (what :func:`_match` measures; read once)."""
    out = first.copy()
    todo = list(scans)
    settled: dict[int, float] = {}
    for _ in range(REFINE_PASSES):
        again = []
        for group, own in in_groups(_groups(todo), "aligned sub-volumes", progress):
            # a few scans' pairs at a time; too little in common: the estimate kept
            for t, k, a, b in _pairs(v, ref, region, out, group, own):
                est = _correlate(a, b, upsample)
                for _ in range(SUBVOXEL_PASSES):  # the taper pulls a fraction towards 0: correlate what is left
                    est = _correlate(a, b, upsample, pre_shift=est)
                out[t] = k + est
                if (np.round(out[t]).astype(int) != k).any():
                    again.append(t)
                else:
                    settled[t] = pearson(a, b)
        todo = again
        if not todo:
            break
    return out, settled


def _match(v: xr.DataArray, ref: int, region: tuple[slice, ...], est: np.ndarray, scans: list[int],
           progress: bool, seen: dict[int, float]) -> dict[int, float]:
    """How well each of ``scans`` matches the reference at its estimate: the correlation of the
    sub-volumes :func:`_refine` ends on (``seen``: those it measured; 0 where they share under 4
    voxels along an axis)."""
    rest = [t for t in scans if t not in seen]
    got = {t: pearson(a, b) for group, own in in_groups(_groups(rest), "aligned sub-volumes", progress)
           for t, _, a, b in _pairs(v, ref, region, est, group, own, least=4)}  # (a few scans' pairs at a time)
    return {t: seen.get(t, got.get(t, 0.0)) for t in scans}


def _binned(crop: Any, bins: list[int]) -> np.ndarray:
    """``crop`` averaged over ``bins`` voxels per axis (the rest at the far edge dropped); voxels
    without data (NaN) left out of their bin's mean."""
    c = np.asarray(to_numpy(crop), np.float64)
    c = c[tuple(slice(0, n - n % b) for n, b in zip(c.shape, bins))]
    shaped = c.reshape([x for n, b in zip(c.shape, bins) for x in (n // b, b)])
    import warnings

    with warnings.catch_warnings():  # a bin all without data stays NaN (the correlation fills it)
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(shaped, axis=tuple(range(1, 2 * len(bins), 2)))


def pearson(a: Any, b: Any) -> float:
    """Pearson correlation of two arrays of one shape over the voxels with data (finite) in both;
    0 where either is flat there or none has."""
    a, b = np.asarray(to_numpy(a), np.float64), np.asarray(to_numpy(b), np.float64)
    ok = np.isfinite(a) & np.isfinite(b)  # voxels with data in both (NaN outside a field of view)
    if not ok.all():
        a, b = a[ok], b[ok]
        if a.size == 0:
            return 0.0
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def _flat(crop: Any) -> bool:
    """A sub-volume with nothing to match: one grey value, or none finite."""
    c = np.asarray(to_numpy(crop), np.float64)
    c = c[np.isfinite(c)]
    return c.size == 0 or c.min() == c.max()


def _correlate(fixed: Any, moving: Any, upsample: int, pre_shift: Any = None) -> np.ndarray:
    """Translation that moves ``moving`` onto ``fixed``: cross-correlation of the mean-free,
    Hann-tapered arrays (no wrap-around edges; steadier than phase-only correlation here).
    Voxels without data (NaN or inf, e.g. outside a reconstruction's field of view) count as
    the mean of the others: they add nothing to the correlation. ``pre_shift``: a first
    estimate; ``moving`` is moved by it (Fourier shift) and what is left is added to it."""
    from scipy import ndimage
    from skimage.filters import window
    from skimage.registration import phase_cross_correlation

    w = window("hann", np.shape(fixed))

    def filled(c: Any) -> np.ndarray:
        c = np.asarray(to_numpy(c), np.float64)  # CuPy blocks too: the crops are small
        ok = np.isfinite(c)
        return c if ok.all() else np.where(ok, c, c[ok].mean() if ok.any() else 0.0)

    def tapered(c: np.ndarray) -> np.ndarray | None:
        return None if _flat(c) else (c - c.mean()) * w

    a, b = filled(fixed), filled(moving)
    start = np.zeros(len(w.shape)) if pre_shift is None else np.asarray(pre_shift, np.float64)
    if start.any():  # band-limited; what wraps around lands where the taper is ~0
        b = np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(b), start)).real
    a, b = tapered(a), tapered(b)
    if a is None or b is None:  # a flat crop (blank scan, all outside the field of view): nothing to match
        return start
    return start + phase_cross_correlation(a, b, upsample_factor=upsample, normalization=None)[0]


def align(vol: Any, *, reference: int = 0, shifts: Any = None, upsample: int = 10, sample: int = 128,
          crop: bool = True, progress: bool = False) -> xr.DataArray:
    """Move every scan of a (t, z, y, x) series onto one reference scan (rigid translation), so
    that voxel (z, y, x) is the same place in the sample at every time step.

    Parameters
    ----------
    vol : (t, z, y, x) series (grey values, or labels: integer volumes move by whole voxels)
    reference : the scan the others are moved onto (index along t)
    shifts : (t, 3) translations in voxels to apply instead of estimating them, e.g. the
        ``attrs["shifts"]`` of the aligned tomogram, to move its labels the same way
    upsample, sample : see :func:`estimate_shifts`
    crop : keep only the region every scan covers after its move (default), so that no voxel
        is made up; ``False`` keeps the shape and repeats the edge voxels over the margin
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    Lazy volume with ``attrs["shifts"]`` ((t, 3) voxels applied: output(x) = scan(x − shift),
    ``scipy.ndimage.shift`` with linear interpolation, nearest for integers) and
    ``attrs["crop"]`` ((z, y, x) [start, stop) kept). Blockwise and exact for any chunking
    (halo ``ceil(|shift|) + 1``), to float rounding.
    """
    v = as_volume(vol, name="vol", ndim=4)
    nt = v.shape[0]
    parse_flag("crop", crop)
    if shifts is None:
        s = estimate_shifts(v, reference=reference, upsample=upsample, sample=sample, progress=progress)
    else:
        # what only the estimate takes: refused by name rather than ignored
        given = {"reference": reference, "upsample": upsample, "sample": sample}
        unused = [f"{k}={val!r}" for k, val in given.items() if val != align.__kwdefaults__[k]]
        if unused:
            raise InputError(f"Expected `{unused[0].split('=')[0]}` only without `shifts` (it is for estimating "
                             f"them). Got {', '.join(unused)} with shifts given.")
        try:
            s = np.asarray(shifts, np.float64)
        except (TypeError, ValueError):
            s = None
        if s is None or s.shape != (nt, 3) or not np.isfinite(s).all():
            raise InputError(f"Expected `shifts` to be {nt} finite (z, y, x) translations, shape ({nt}, 3). "
                             f"Got {shifts!r} instead.")
    order = 0 if v.dtype.kind in "biu" else 1
    frames = []
    for t in range(nt):
        arr = v.data[t]
        if not s[t].any():
            frames.append(arr)
            continue
        depth = tuple(math.ceil(abs(x)) + 1 for x in s[t])
        frames.append(map_overlap_exact(K.translate, arr, depth, dtype=arr.dtype, shift=tuple(s[t]), order=order,
                                        token="align"))
    out = v.copy(data=da.stack(frames))
    window = [(0, n) for n in v.shape[1:]]
    if crop:
        window = [(math.ceil(max(0.0, s[:, a].max())), n + math.floor(min(0.0, s[:, a].min())))
                  for a, n in enumerate(v.shape[1:])]
        if any(hi - lo < 1 for lo, hi in window):
            raise InputError(f"Expected shifts smaller than the volume {tuple(v.shape[1:])}. Got {s.tolist()} "
                             "instead: no region is covered by every scan.")
        out = out.isel({d: slice(lo, hi) for d, (lo, hi) in zip(("z", "y", "x"), window)})
    out.attrs.update(shifts=s.tolist(), crop=[list(w) for w in window])
    return out
