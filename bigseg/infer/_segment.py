"""A trained model applied to a raw volume: load by name or path, normalise the way the model
was trained, predict. The one place that pairs a model's normalisation metadata with its input
(used by :class:`bigseg.Pipeline`, ``bigseg segment --model`` and the benchmarks)."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["segment"]


def segment(vol: Any, model: Any = "default", *, normalize: bool = True, fov: Any = None, fov_margin: float = 0.0,
            progress: bool = False, **predict_kwargs: Any) -> xr.Dataset:
    """Segment ``vol`` with ``model``: normalise it with the model's recorded percentile window,
    then :func:`bigseg.predict`. Each frame of a (t, z, y, x) series is normalised and segmented
    on its own, as the scan it is.

    With a field of view, the percentiles come from the voxels inside, the voxels outside (NaN
    fill included) are replaced by noise of the inside's mean and spread
    (:func:`bigseg.io.fill_outside_like_inside`: a flat fill would bias the model's per-patch
    normalisation near the edge) and labelled 255 (unlabelled), which every measurement leaves
    out; the probabilities and uncertainty outside are NaN (no data, as the labels' 255; were
    the model's guesses on the noise).

    Parameters
    ----------
    vol : grey volume (z, y, x) or series (t, z, y, x): DataArray, dask or NumPy array, real
        dtype (a boolean mask is refused).
    model : a :class:`bigseg.models.Model`, a model name (default ``"default"``) or a checkpoint
        path, as :func:`bigseg.models.load` takes.
    normalize : True (default): scale ``vol`` by the model's ``normalization`` (percentiles
        ``low``/``high``, default 0.5/99.5, :func:`bigseg.filters.normalize`) first; False for an
        input already normalised.
    fov : the reconstruction's field of view (:func:`bigseg.io.fov_mask`: ``"auto"``,
        ``"cylinder"``, a circle ``(cy, cx, r)`` in voxels or a (y, x) boolean mask); default
        None: the whole volume. ``attrs["fov"]`` says which mask was used.
    fov_margin : voxels by which the field of view is shrunk (>= 0, default 0; as
        :func:`bigseg.io.fov_mask`'s ``margin``).
    progress : progress bars on stderr for the passes over the data that run now (field of
        view, percentiles; default off); the prediction itself stays lazy.
    **predict_kwargs : the keywords of :func:`bigseg.predict` (``patch``, ``overlap``, ``tta``,
        ``probabilities``, ``device``, ...; None: its default), and ``temporal`` (an int >= 0,
        default 0; a series of aligned scans only): each scan's probabilities averaged with those
        of the ``temporal`` scans before and after it before the argmax
        (:func:`bigseg.infer.smooth_over_time`); the field of view stays 255.

    Returns
    -------
    The Dataset of :func:`bigseg.predict` (``labels`` uint8, 255 outside the field of view;
    ``probabilities``, ``uncertainty`` when asked for).

    Examples
    --------
    The bundled model on a small simulated scan (one 32³ window):

    >>> from bigseg import infer, measure, synth
    >>> truth = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
    >>> image = synth.xct(truth, seed=0)
    >>> ds = infer.segment(image, "default")
    >>> ds["labels"].dims, ds["labels"].dtype, ds.attrs["phases"]
    (('z', 'y', 'x'), dtype('uint8'), ['pore', 'cbd', 'active'])
    >>> float(measure.scores(truth, ds["labels"]).accuracy) > 0.7
    True
    """
    from ..filters import normalize as normalize_volume
    from ..filters._filters import check_contrast
    from ..io import as_volume, fill_outside, fill_outside_like_inside, fov_mask
    from ..io._volume import UNLABELLED, check_grey, is_series
    from ._model import load_model
    from ._predict import check_predict_kwargs, predict, predict_series
    from ._temporal import parse_temporal
    from .._parse import parse_flag, parse_in_range

    normalize = parse_flag("normalize", normalize)  # ("no" was truthy)
    # checked without a field of view too (fov_margin=-1 or "1" was silently ignored), as fov_mask's `margin`
    parse_in_range("fov_margin", fov_margin, 0.0, float("inf"), closed="left")
    temporal = parse_temporal(predict_kwargs.pop("temporal", 0), series=is_series(vol))
    check_predict_kwargs(predict_kwargs)  # before the normalisation's passes over the data
    net = load_model(model, predict_kwargs.get("device"))
    if is_series(vol):  # each scan normalised and segmented on its own
        return predict_series(segment, vol, net, temporal=temporal, normalize=normalize, fov=fov,
                              fov_margin=fov_margin, progress=progress, **predict_kwargs)
    mask = None
    check_grey(as_volume(vol, name="vol"))  # a boolean mask is no scan: refused before the normalisation's passes
    if fov is not None:
        vol = as_volume(vol, name="vol")
        mask = fov_mask(vol, fov, margin=fov_margin, progress=progress)
    norm = getattr(net, "normalization", None) or {}
    if normalize and norm.get("method", "percentile") == "percentile":
        vol = normalize_volume(vol, low=norm.get("low", 0.5), high=norm.get("high", 99.5),
                               mask=None if mask is None else mask.values, progress=progress)
        # a blank or saturated scan: every window would be noise to the model
        check_contrast(vol, low=norm.get("low", 0.5), high=norm.get("high", 99.5),
                       where="inside the field of view " if mask is not None else "")
    if mask is not None:  # noise of the inside's moments: the model's per-patch normalisation stays unbiased
        vol = fill_outside_like_inside(as_volume(vol, name="vol"), mask, progress=progress)
    ds = predict(vol, net, **{k: v for k, v in predict_kwargs.items() if v is not None})
    if mask is not None:
        ds["labels"] = fill_outside(ds["labels"], mask, UNLABELLED)
        for name in ("probabilities", "uncertainty"):
            if name in ds:
                ds[name] = fill_outside(ds[name], mask, np.nan)
        ds.attrs.update(fov=str(mask.attrs["fov"]), fov_inside_fraction=mask.attrs["inside_fraction"])
    return ds
