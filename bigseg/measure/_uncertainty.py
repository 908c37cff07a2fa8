"""Uncertainty of the metrics: spread over samples (perturbed truths, several segmentations)
and uncertain voxels from the softmax probabilities."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from scipy import ndimage as ndi

from .._parse import parse_in_range, parse_nonnegative_int, parse_positive_int
from ..errors import InputError
from ..io import UNLABELLED
from ..kernels.metrics import interface_mask
from ..runtime._progress import compute
from ._blockwise import BlockGeometry, block_partials, crop_halo
from ._inputs import as_labels
from ._metrics import _check, _stats_graph, interfaces, parse_method, volume_fractions
from ._scores import _pair, scores

__all__ = ["spread", "over_samples", "perturbation_spread", "probability_uncertainty", "MAX_NEAR_DISTANCE",
           "MAX_SAMPLES"]


def spread(results: Sequence[xr.Dataset | xr.DataArray], *, dim: str = "sample") -> xr.Dataset:
    """Mean ± standard deviation of metrics computed on several samples.

    Parameters
    ----------
    results : two or more Datasets/DataArrays of the same metrics (e.g. :func:`scores` against
        perturbed ground truths, or :func:`volume_fractions` of several segmentations).
    dim : name of the stacking dimension.

    Returns
    -------
    Dataset with ``<name>_mean`` and ``<name>_std`` (sample standard deviation, n - 1) for
    every numeric variable, same dims and units as the inputs; ``attrs["samples"]`` = n. A value
    that is NaN (or absent) in some samples is left out of its mean and std, and
    ``<name>_samples`` then says how many samples each mean is over.
    Coordinates that differ between the samples (other than the dimensions' own, e.g. a
    profile's ``bin_voxels``) are left out.
    """
    if isinstance(results, (xr.Dataset, xr.DataArray)) or len(results) < 2:
        length = "" if isinstance(results, (xr.Dataset, xr.DataArray)) else f" of length {len(results)}"
        raise InputError(f"Expected `results` to be a list of at least two metric Datasets. Got {type(results).__name__}"
                         f"{length} instead.")
    items = []
    for i, r in enumerate(results):
        if isinstance(r, xr.DataArray):  # its voxel_size/unit/shape describe the whole result
            r = r.to_dataset(name=r.name or "value").assign_attrs(
                {k: v for k, v in r.attrs.items() if k not in ("units", "long_name")})
        if not isinstance(r, xr.Dataset):
            raise InputError(f"Expected `results[{i}]` to be an xarray Dataset or DataArray. Got {type(r).__name__} instead.")
        items.append(r)
    taken = sorted({str(d) for r in items for d in r.dims})
    if not isinstance(dim, str) or not dim or dim in taken:  # "phase" averaged the phases together, unsaid
        raise InputError(f"Expected `dim` to name a new dimension to stack the samples along (not one of the "
                         f"results' own {taken}). Got {dim!r} instead.")
    # a coordinate that is not the samples' own (e.g. a profile's labelled voxels per bin, the
    # voxels of each shell) but differs between them describes none of the means: dropped, where
    # it would be the first sample's alone
    differ = {c for r in items for c in r.coords if c not in r.indexes and c != dim
              and not all(c in o.coords and o[c].variable.equals(r[c].variable) for o in items)}
    items = [r.drop_vars([c for c in differ if c in r.coords]) for r in items]
    stacked = xr.concat(items, dim=dim, data_vars="all", coords="minimal", compat="override",
                        combine_attrs="drop_conflicts", join="outer")
    out = xr.Dataset(coords={k: v for k, v in stacked.coords.items() if dim not in v.dims})
    for name, var in stacked.data_vars.items():
        if not np.issubdtype(var.dtype, np.number):
            continue
        v = var.astype(np.float64)
        what = var.attrs.get("long_name", name)
        out[f"{name}_mean"] = v.mean(dim).assign_attrs({**var.attrs, "long_name": f"mean of {what} over {dim}s"})
        out[f"{name}_std"] = v.std(dim, ddof=1).assign_attrs(
            {**var.attrs, "long_name": f"sample standard deviation (n - 1) of {what} over {dim}s"})
        counted = v.notnull().sum(dim)
        if int(counted.min()) < len(items):  # NaN (or absent) in some samples: left out of those means
            out[f"{name}_samples"] = counted.assign_attrs(units="1", long_name=f"{dim}s with a value of {what}")
    out.attrs.update({k: v for k, v in stacked.attrs.items() if k != "note"}, samples=len(items))
    return out


def over_samples(metric: Callable[..., xr.Dataset | xr.DataArray], samples: Sequence[Any], **kwargs: Any) -> xr.Dataset:
    """``spread([metric(s, **kwargs) for s in samples])``: a metric as mean ± std over several
    segmentations of the same image (e.g. by different users or models). ``samples``: a list of
    two or more segmentations, or an array of them along its first axis; ``metric``: a function
    of one, e.g. :func:`volume_fractions` (both refused by name before any is measured)."""
    if not callable(metric):  # e.g. "volume_fraction": 'str' object is not callable, after the first sample
        raise InputError(f"Expected `metric` to be a function such as bigseg.measure.volume_fractions. Got {metric!r} instead.")
    ndim = getattr(samples, "ndim", None)  # an array: its first axis (one volume's would be its slices)
    listed = isinstance(samples, (list, tuple)) or ndim == 4
    if not listed or len(samples) < 2:
        what = f"{type(samples).__name__} of {'shape ' + str(tuple(samples.shape)) if ndim else 'length ' + str(len(samples))}" \
            if listed else f"{type(samples).__name__}" + (f" of {ndim} dimensions" if ndim is not None else "")
        raise InputError(f"Expected `samples` to be a list of at least two segmentations (or an array of them along its "
                         f"first axis). Got {what} instead.")
    return spread([metric(s, **kwargs) for s in samples])


#: the most samples of :func:`perturbation_spread`: each is a whole perturbed volume measured (the
#: paper's spread is over a few; 10**12 were accepted, then looped building their graphs)
MAX_SAMPLES = 1000


def perturbation_spread(
    truth: Any,
    pred: Any = None,
    *,
    n: int = 5,
    ratio: float = 0.1,
    iterations: int = 5,
    seed: int = 0,
    method: str = "faces",
    perturb: Callable[..., Any] | None = None,
    phases: Any = None,
    progress: bool = False,
) -> xr.Dataset:
    """Every metric as mean ± std over ``n`` perturbed ground truths (LRCS-Net paper, Su et al. 2022).

    Each sample is ``perturb(truth, ratio=ratio, iterations=iterations, seed=seed + i)``
    (default :func:`bigseg.synth.perturb`: 10 % of interface voxels pushed or pulled by
    dilation, 5 iterations); on it the volume fractions, the interfaces (``method``) and, if
    ``pred`` is given, the scores of ``pred`` against it are measured.

    Parameters
    ----------
    truth : the ground-truth label volume perturbed.
    pred : a segmentation scored against each perturbed truth (default None: no scores).
    n : the number of perturbed truths, at least 2 (default 5).
    ratio, iterations : passed to ``perturb``: the share of interface voxels moved (default 0.1)
        and the dilation iterations (default 5).
    seed : sample ``i`` uses ``seed + i`` (default 0).
    method : the area estimate of :func:`interfaces` (default ``"faces"``).
    perturb : the perturbation, called as above (default :func:`bigseg.synth.perturb`).
    phases : names by label value for both, as for :func:`scores` (default: the names they state).
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    Dataset of ``<metric>_mean`` / ``<metric>_std`` as :func:`spread`.
    """
    n = parse_positive_int("n", n, most=MAX_SAMPLES)
    if n < 2:
        raise InputError(f"Expected `n` to be at least 2 (a standard deviation needs two samples). Got {n} instead.")
    # the arguments the measures check, checked before the first perturbation and pass over the data
    parse_method(method, as_labels(truth, name="truth", phases=phases))
    if pred is not None:
        _pair(truth, pred, phases)
    if perturb is None:
        from ..synth import perturb as perturb  # noqa: PLC0415 - optional stage, imported on use
    samples = []
    for i in range(n):
        gt = perturb(truth, ratio=ratio, iterations=iterations, seed=seed + i)
        parts: list[xr.Dataset] = [volume_fractions(gt, phases=phases, progress=progress).to_dataset(),
                                   interfaces(gt, method=method, phases=phases, progress=progress)]  # type: ignore[arg-type]
        if pred is not None:
            parts.append(scores(gt, pred, phases=phases, progress=progress))
        samples.append(xr.merge(parts, compat="override", combine_attrs="drop_conflicts"))
    out = spread(samples)
    out.attrs.update(perturbation_ratio=ratio, perturbation_iterations=iterations, seed=seed)
    return out


# --------------------------------------------------------------------------------------------
# probabilities
# --------------------------------------------------------------------------------------------
#: the most ``distance`` of :func:`probability_uncertainty`: "near an interface" is its partial-volume
#: and blur zone, a few voxels (default 2); each block reads a halo of ``distance + 1`` voxels
MAX_NEAR_DISTANCE = 32
#: up to this ``distance`` the zone is a dilation by a ball, beyond it a threshold of the Euclidean
#: distance transform (the same voxels; the ball's time grows as about distance**4, the transform's
#: not: per 72³ block 0.01 / 0.07 s at 2, 0.07 / 0.08 s at 6, 1.0 / 0.12 s at 10)
_BALL_UP_TO = 6


def _ball(r: int) -> np.ndarray:
    g = np.arange(-r, r + 1)
    return (g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) <= r * r


def near_interface(iface: np.ndarray, distance: int) -> np.ndarray:
    """The voxels within Euclidean ``distance`` (voxels) of a voxel of ``iface`` (a boolean mask)."""
    if distance <= 0 or not iface.any():  # (the transform of a mask without a zero measures from a corner)
        return iface.copy()
    if distance <= _BALL_UP_TO:
        return ndi.binary_dilation(iface, structure=_ball(distance), border_value=0)
    return ndi.distance_transform_edt(~iface) <= distance  # (sqrt of whole squares: exact against an int)


def _prob_block(*args, threshold: float, distance: int) -> np.ndarray:
    *blocks, geom = args
    geom: BlockGeometry
    probs = blocks[0]
    known = np.isfinite(probs).all(axis=0)  # NaN: no data (outside a field of view)
    if len(blocks) == 1:
        labels = np.where(known, np.argmax(probs, axis=0), UNLABELLED)
    else:
        labels = blocks[1]
        known &= labels != UNLABELLED
    iface = interface_mask(labels, ignore=UNLABELLED)  # a field of view's rim is no interface
    near = near_interface(iface, distance)
    core = (slice(None),) + tuple(slice(lo, lo + n) for lo, n in zip(geom.halo_lo, geom.shape))
    near_core, _, _ = crop_halo(near & known, geom, 0)
    known_core, _, _ = crop_halo(known, geom, 0)
    with np.errstate(invalid="ignore"):
        unc = (probs[core].max(axis=0) < threshold) & known_core
    return np.array([np.count_nonzero(known_core), np.count_nonzero(unc), np.count_nonzero(unc & near_core),
                     np.count_nonzero(near_core)], np.int64)


def probability_uncertainty(
    probabilities: Any,
    *,
    threshold: float = 0.5,
    distance: int = 2,
    labels: Any = None,
    progress: bool = False,
) -> xr.Dataset:
    """Fraction of uncertain voxels and how many of them lie near an interface.

    Parameters
    ----------
    probabilities : (phase, z, y, x) or (t, phase, z, y, x) float softmax probabilities (e.g.
        ``predict(..., probabilities=True)["probabilities"]``).
    threshold : a voxel is uncertain when its largest class probability is below this.
    distance : "near an interface" = within this Euclidean distance (voxels) of an interface
        voxel (a voxel with a 6-neighbour of another label); at most ``MAX_NEAR_DISTANCE``.
    labels : the segmentation defining the interfaces (default: argmax of the probabilities).
    progress : a progress bar on stderr for each pass over the data (default off)

    Voxels of no data are left out (counted nowhere, and next to them is no interface): NaN
    probabilities (outside a field of view, as :func:`bigseg.infer.segment` leaves them) and
    voxels ``labels`` marks 255 (unlabelled).

    Returns
    -------
    Dataset (over ``t`` for a series): ``uncertain_fraction`` (uncertain / all voxels of data),
    ``uncertain_near_interface`` (share of the uncertain voxels within ``distance`` of an
    interface), ``near_interface_fraction`` (all voxels within ``distance``), and the counts;
    ``attrs["voxels"]`` the voxels of data (a series: the variable ``voxels`` over ``t``, and
    the probabilities' ``t`` coordinate).
    Exact for any chunking (halo of ``distance + 1``).
    """
    threshold = parse_in_range("threshold", threshold, 0.0, 1.0, closed="right")
    distance = parse_nonnegative_int("distance", distance, most=MAX_NEAR_DISTANCE)
    p = probabilities
    times = None  # a series' t coordinate (its times, with their units), kept on the results
    if isinstance(p, xr.DataArray):
        if "phase" in p.dims and p.ndim in (4, 5) and p.dims.index("phase") != p.ndim - 4:
            raise InputError(f"Expected `probabilities` with dims (phase, z, y, x) or (t, phase, z, y, x). Got "
                             f"{p.dims} instead: transpose it first.")
        if p.ndim == 5 and "t" in p.coords:
            times = p.coords["t"].variable.copy()
        p = p.data
    if not hasattr(p, "ndim") or p.ndim not in (4, 5):
        raise InputError("Expected `probabilities` to be (phase, z, y, x) or (t, phase, z, y, x). "
                         f"Got {getattr(p, 'shape', type(p).__name__)} instead.")
    if not np.issubdtype(np.dtype(p.dtype), np.floating):
        raise InputError(f"Expected `probabilities` to be floating point. Got dtype {p.dtype} instead.")
    if p.size == 0:
        raise InputError(f"Expected `probabilities` to be non-empty. Got shape {tuple(p.shape)} instead.")
    p = p if isinstance(p, da.Array) else da.from_array(p, chunks="auto")
    series = p.ndim == 5
    lab = labels.data if isinstance(labels, xr.DataArray) else labels
    if lab is not None:
        lab = lab if isinstance(lab, da.Array) else da.asarray(lab)
        want = (p.shape[0],) + p.shape[2:] if series else p.shape[1:]
        if tuple(lab.shape) != tuple(want):
            raise InputError(f"Expected `labels` to have shape {tuple(want)}. Got {tuple(lab.shape)} instead.")
    fn = functools.partial(_prob_block, threshold=threshold, distance=distance)
    steps = range(p.shape[0]) if series else [None]
    parts = []
    for t in steps:
        pt = p[t] if t is not None else p
        arrs = [pt] if lab is None else [pt, lab[t] if t is not None else lab]
        parts.append(block_partials(fn, *arrs, depth=distance + 1, nout=4, dtype=np.int64))
    # the labels' values, from the same pass: 0..phases-1 or 255 (a 7 would count as a phase of its own)
    checked = None
    if lab is not None:
        k = p.shape[-4]
        given = probabilities.coords["phase"].values if isinstance(probabilities, xr.DataArray) \
            and "phase" in probabilities.coords else range(k)
        checked = as_labels(lab, name="labels", phases=[str(v) for v in given])
    hists = [] if checked is None else _stats_graph(checked, hist_only=True)
    out = compute(*hists, *parts, desc="uncertainty", progress=progress)
    if checked is not None:
        _check(checked, out[:len(hists)], allow_unlabelled=True)
    res = [np.asarray(r) for r in out[len(hists):]]
    tot, unc, unc_near, near = (np.array([r[i] for r in res]) for i in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(unc > 0, unc_near / np.where(unc > 0, unc, 1), np.nan)
        unc_share, near_share = unc / tot, near / tot  # NaN for a scan with no voxel of data

    def pick(a):
        return ("t", a) if series else ((), a[0])

    ds = xr.Dataset({
        "uncertain_fraction": pick(unc_share),
        "uncertain_near_interface": pick(share),
        "near_interface_fraction": pick(near_share),
        "uncertain_voxels": pick(unc),
        "uncertain_near_interface_voxels": pick(unc_near),
    })
    for v in ds.data_vars.values():
        v.attrs["units"] = "voxel" if v.name.endswith("voxels") else "1"
    if series:  # the voxels of data of each scan (a field of view, NaN, can differ between scans)
        ds["voxels"] = xr.Variable("t", tot, {"units": "voxel", "long_name": "voxels of data"})
        ds.attrs.update(threshold=threshold, distance=distance)
        return ds if times is None else ds.assign_coords(t=times)
    ds.attrs.update(threshold=threshold, distance=distance, voxels=int(tot[0]))
    return ds
