"""Random forest on sparse labels with ilastik-like multiscale features, predicted blockwise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_phases, parse_positive_float, parse_positive_int, parse_tuple
from ..errors import InputError
from ..io._volume import (DEFAULT_PHASES, UNLABELLED, as_volume, frame_arrays, given_values, label_values_error,
                          sparse_labels, warn_other_grid, warn_unmarked)
from ..kernels.features import feature_halo, feature_names, multiscale_features
from ..kernels.filters import exact_float_dtype
from ..kernels.synth import hash_uniform
from ..ops import map_overlap_exact, to_numpy
from ..ops._blocks import per_block
from ..ops._overlap import min_chunks
from ..runtime import compute
from ._common import FOV_DOC, check_volume, labels_volume, parse_seed

__all__ = ["random_forest", "DEFAULT_SIGMAS", "MAX_ESTIMATORS"]

#: the most trees of a forest: its accuracy stops improving after a few hundred (Oshiro et al. 2012,
#: no significant gain past 128), while each tree adds to the fitted forest every block is sent
#: (100 trees: tens of MB)
MAX_ESTIMATORS = 1000

#: ilastik's default scales (voxels) minus the largest ones, enough for CT phase contrast.
DEFAULT_SIGMAS = (0.7, 1.0, 1.6, 3.5)


def _label_counts(b: np.ndarray) -> np.ndarray:
    return np.bincount(np.asarray(b, np.uint8).ravel(), minlength=256).reshape((1,) * b.ndim + (256,))


def _interior(idx: tuple, numblocks: tuple, depth: int) -> tuple[slice, ...]:
    return tuple(slice(depth if i > 0 else 0, -depth if i < n - 1 else None) for i, n in zip(idx, numblocks))


def _reference(imgs: list[da.Array]) -> float:
    """A grey value taken from every voxel before its (float32) features: 0 for the dtypes float32
    holds exactly, else the least of the first block (offset-binary uint32 2**31 + k, int64 or
    float64 far from 0 were moved by up to 128 in float32, and told apart no longer)."""
    first = imgs[0]
    if exact_float_dtype(first.dtype) == np.float32:
        return 0.0
    (least,) = compute(da.nanmin(first.blocks[(0,) * first.ndim]), progress=False)
    return float(least) if np.isfinite(least) else 0.0


def _shifted(block: Any, reference: float) -> Any:
    """``block`` less ``reference`` (:func:`_reference`), in a float that holds its values."""
    return block if not reference else block.astype(exact_float_dtype(block.dtype), copy=False) - reference


def _train_block(block: np.ndarray, lab: np.ndarray, idx: tuple, numblocks: tuple, depth: int,
                 sigmas: tuple, p: float, seed: int, start: tuple, shape: tuple, reference: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features and labels of the labelled voxels of one block (each kept with probability
    ``p``, by a hash of its global position: the same voxels for any chunking), with their
    global linear indices; ``start`` = (time step, z0, y0, x0) of the block, ``shape`` = (t, z, y, x)."""
    feats = to_numpy(multiscale_features(_shifted(block, reference), sigmas))  # CuPy blocks: features on the GPU
    sl = _interior(idx, numblocks, depth)
    feats = feats[(slice(None),) + sl]
    lab = to_numpy(lab)
    keep = np.flatnonzero(lab.ravel() != UNLABELLED)
    if p < 1:
        u = hash_uniform(np.array(start[1:], np.int64), np.array(lab.shape, np.int64), seed * 1_000_003 + start[0])
        keep = keep[u.ravel()[keep] < p]
    x = feats.reshape(feats.shape[0], -1)[:, keep].T
    local = np.unravel_index(keep, lab.shape)
    flat = np.ravel_multi_index((np.full(keep.size, start[0]),) + tuple(c + s0 for c, s0 in zip(local, start[1:])), shape)
    return x, lab.ravel()[keep], flat


def _predict_block(block: Any, model: Any, sigmas: tuple, reference: float) -> Any:
    feats = to_numpy(multiscale_features(_shifted(block, reference), sigmas))
    x = feats.reshape(feats.shape[0], -1).T
    return model.predict(x).astype(np.uint8).reshape(block.shape)


def _parse_sigmas(sigmas: Any) -> tuple[float, ...]:
    """Feature scales: positive numbers, at least one; a single number is one scale."""
    if isinstance(sigmas, (int, float, np.number)) and not isinstance(sigmas, bool):
        sigmas = (sigmas,)
    if isinstance(sigmas, (str, bytes)) or not isinstance(sigmas, Sequence | np.ndarray):
        raise InputError(f"Expected `sigmas` to be feature scales in voxels, e.g. (1, 2, 4). Got {sigmas!r} instead.")
    sigmas = tuple(sigmas)
    if not sigmas:
        raise InputError("Expected `sigmas` to hold at least one positive scale. Got () instead.")
    return parse_tuple("sigmas", sigmas, len(sigmas), parse_positive_float)


def random_forest(vol: Any, labels: Any, *, sigmas: Sequence[float] = DEFAULT_SIGMAS, n_estimators: int = 100,
                  max_samples: int = 200_000, seed: int = 0, phases: Any = None, unlabelled: int = 255,
                  fov: Any = None, progress: bool = False) -> xr.DataArray:
    """Random forest pixel classifier trained on sparse labels, as in ilastik (Sommer et al. 2011).

    Features (:func:`bigseg.kernels.features.multiscale_features`): grey level and, per sigma,
    Gaussian, gradient magnitude, Laplacian of Gaussian and Hessian eigenvalues; computed blockwise
    with a halo of ``4 * max(sigmas)`` voxels, so they equal the whole-array features exactly.
    ``sklearn.ensemble.RandomForestClassifier`` is trained on the labelled voxels (about
    ``max_samples`` of them where there are more, drawn by their position: the same training set,
    and so the same labels, for any chunking), then predicts every block.

    Parameters
    ----------
    vol : volume (z, y, x), no NaN/inf; or a series (t, z, y, x): one forest is trained on the
        labelled voxels of all frames (frames without labels are allowed) and segments every frame
    labels : integer label volume of the same shape; ``255`` = unlabelled; values index ``phases``
    sigmas : feature scales in voxels (> 0); one number: one scale
    n_estimators : trees of the forest, in [1, ``MAX_ESTIMATORS``]
    max_samples : at most about this many labelled voxels train the forest (default 200 000)
    seed : an int in [0, 2**32): the training subsample and the forest's ``random_state`` (default 0)
    phases : class names (default ``labels.attrs['phases']``, else pore/cbd/active; name more classes here)
    unlabelled : the value of unannotated voxels: 255, or 0 for napari/ilastik/Fiji exports whose
        classes count from 1 (see :func:`bigseg.io.sparse_labels`)
    {fov} One volume (z, y, x) only.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    lazy uint8 label volume (z, y, x) with ``attrs['phases']``

    Raises
    ------
    InputError : labels of another shape, non-integer labels, values beyond the phases, or a
        phase without any labelled voxel.
    """
    from sklearn.ensemble import RandomForestClassifier

    sigmas = _parse_sigmas(sigmas)  # the options before the volume's passes
    n_estimators = parse_positive_int("n_estimators", n_estimators, most=MAX_ESTIMATORS)
    max_samples = parse_positive_int("max_samples", max_samples)
    seed = parse_seed(seed)
    lab = as_volume(sparse_labels(labels, unlabelled), name="labels", allow_series=True)
    grey = as_volume(vol, name="vol", allow_series=True)  # lazy: the labels are refused before any pass
    shape = grey.shape
    if lab.shape != shape:
        raise InputError(f"Expected `labels` to have the shape of `vol` {shape}. Got {lab.shape} instead.")
    warn_other_grid(vol, grey, "vol", labels, lab, "labels", stacklevel=3,
                    then="Voxels are paired with their labels index by index.")
    if not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"Expected `labels` to hold integers (255 = unlabelled). Got dtype {lab.dtype} instead.")
    v, mask = check_volume(vol, progress=progress, fov=fov)
    if phases is None:
        phases = lab.attrs.get("phases")
    ldata = lab.data
    if ldata.dtype != np.uint8:
        lmin, lmax = compute(ldata.min(), ldata.max(), progress=False)
        if lmin < 0 or (lmax > 254 and lmax != UNLABELLED):
            raise InputError(f"Expected `labels` values in [0, 254] or 255 (unlabelled). Got values in "
                             f"[{given_values([lmin], lab)[0]}, {given_values([lmax], lab)[0]}] instead.")
        ldata = ldata.astype(np.uint8)
    depth = feature_halo(sigmas)
    # one (image, labels) pair per frame: a series trains one forest on the labels of all frames
    series = v.ndim == 4
    imgs = frame_arrays(v)
    labs = frame_arrays(lab.copy(data=ldata))
    imgs = [a.rechunk(tuple(min_chunks(c, depth) for c in a.chunks)) for a in imgs]
    labs = [lb.rechunk(a.chunks) for lb, a in zip(labs, imgs)]
    pers = [lb.map_blocks(_label_counts, token="count-labels", chunks=(1, 1, 1, 256), new_axis=3, dtype=np.int64,
                          meta=np.empty((0, 0, 0, 0), np.int64)) for lb in labs]
    pers = list(compute(*pers, desc="counting labels", progress=progress))
    counts = sum(per.sum(axis=(0, 1, 2)) for per in pers)
    present = np.flatnonzero(counts[:UNLABELLED])
    if present.size == 0:
        raise InputError("Expected `labels` to hold labelled voxels (values other than 255). Got none instead.")
    n_classes = int(present.max()) + 1
    warn_unmarked(counts, unlabelled=lab.attrs.get("unlabelled_value", UNLABELLED))
    defaulted = phases is None
    if phases is None:  # as train: more classes need their names (a value too many: likely classes from 1)
        phases = list(DEFAULT_PHASES)
    phases = parse_phases(phases)
    if n_classes > len(phases):
        raise label_values_error(present[present >= len(phases)].tolist(), len(phases), lab, phases=phases,
                                 marked=bool(counts[UNLABELLED]), present=given_values(present.tolist(), lab))
    missing = [phases[i] for i in range(len(phases)) if counts[i] == 0]
    if missing:
        hint = ""
        if defaulted and n_classes < len(phases):  # fewer classes labelled than the default three: name them
            hint = (f" The default phases are {phases}: if only the {n_classes} classes labelled 0..{n_classes - 1} "
                    f"are meant, name them, e.g. phases={[f'phase{i}' for i in range(n_classes)]}.")
        raise InputError(f"Expected every phase to have labelled voxels. Got none for {missing} "
                         f"(counts {dict(zip(phases, counts[:len(phases)].tolist()))}) instead.{hint}")
    labelled = [per[..., :UNLABELLED].sum(-1) for per in pers]
    total = int(sum(int(n.sum()) for n in labelled))
    spatial = tuple(v.shape[-3:])
    parts = []
    reference = _reference(imgs)
    for t, (arr, lb, nlab) in enumerate(zip(imgs, labs, labelled)):
        ov = da.overlap.overlap(arr, depth=depth, boundary="none") if arr.npartitions > 1 else arr
        starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in arr.chunks]
        parts.append(per_block(  # the blocks with labelled voxels, one task each
            _train_block, ov, lb, blocks=[idx for idx in np.ndindex(*arr.numblocks) if int(nlab[idx])],
            args=lambda idx, t=t, starts=starts, nb=arr.numblocks: (
                idx, nb, depth, sigmas, min(1.0, max_samples / total), seed,
                (t,) + tuple(int(st[j]) for st, j in zip(starts, idx)), (len(imgs),) + spatial, reference)))
    got = [g for frame in compute(*parts, desc="training features", progress=progress) for g in frame]
    # training set in global voxel order: the forest does not depend on the chunking
    order = np.argsort(np.concatenate([g[2] for g in got]), kind="stable")
    x = np.concatenate([g[0] for g in got])[order]
    y = np.concatenate([g[1] for g in got])[order]
    rf = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=-1, min_samples_leaf=2)
    rf.fit(x, y)
    rf.n_jobs = 1  # prediction runs inside dask tasks: no nested thread pools
    # one key of the graph, not a copy in every block's task (a fitted forest is tens of MB: on a
    # cluster each task's copy travelled to its worker, 2.8 GB for the 64 blocks of a 64^3 volume)
    shared = dask.delayed(rf, name=f"random-forest-model-{dask.base.tokenize(x, y, n_estimators, seed)}",
                          traverse=False)
    outs = [map_overlap_exact(_predict_block, arr, depth, dtype=np.uint8, model=shared, sigmas=sigmas,
                              reference=reference, token="random-forest", meta=np.empty((0,) * arr.ndim, np.uint8)) for arr in imgs]
    data = da.stack(outs) if series else outs[0]
    return labels_volume(data, v, phases, mask=mask, method="random_forest", sigmas=list(sigmas),
                         features=feature_names(sigmas), n_training_voxels=int(len(y)))


random_forest.__doc__ = random_forest.__doc__.replace("{fov}", FOV_DOC)
