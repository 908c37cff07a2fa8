"""A trained model applied to a raw volume: load by name or path, normalise the way the model
was trained, predict. The one place that pairs a model's normalisation metadata with its input
(used by :class:`bigseg.Pipeline`, ``bigseg segment --model`` and the benchmarks)."""

from __future__ import annotations

from typing import Any

import xarray as xr

__all__ = ["segment"]


def segment(vol: Any, model: Any = "default", *, normalize: bool = True, **predict_kwargs: Any) -> xr.Dataset:
    """Segment ``vol`` with ``model`` (a :class:`bigseg.models.Model`, ``"default"`` or a
    checkpoint path), normalising the input with the model's recorded percentile window first
    (``normalize=False`` when the input is already normalised). Other keyword arguments go to
    :func:`bigseg.predict`; returns its Dataset. Each frame of a (t, z, y, x) series is
    normalised and segmented on its own, as the scan it is."""
    from ..filters import normalize as normalize_volume
    from ..io._volume import is_series
    from ..models import load
    from ._predict import predict, predict_frames

    net = load(model) if isinstance(model, str) else model
    if is_series(vol):  # each scan normalised and segmented on its own
        return predict_frames(segment, vol, net, normalize=normalize, **predict_kwargs)
    norm = getattr(net, "normalization", None) or {}
    if normalize and norm.get("method", "percentile") == "percentile":
        vol = normalize_volume(vol, low=norm.get("low", 0.5), high=norm.get("high", 99.5))
    return predict(vol, net, **{k: v for k, v in predict_kwargs.items() if v is not None})
