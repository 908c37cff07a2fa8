"""Validation of label volumes at the public boundary of :mod:`bigseg.measure`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_phases
from ..errors import InputError
from ..io._volume import DEFAULT_PHASES, MASK_PHASES, UNLABELLED, as_volume, frame_arrays, grey_levels_hint
from ..ops._dispatch import is_cupy, on_host

__all__ = ["Labels", "as_labels", "check_values"]


@dataclass
class Labels:
    """A validated label volume: the DataArray, its phase names, voxel size and unit."""

    vol: xr.DataArray
    phases: list[str]
    voxel_size: tuple[float, float, float]
    unit: str
    name: str
    named: bool = False  #: phases given by the caller (``phases=``): what its values are is said

    @property
    def series(self) -> bool:
        return self.vol.ndim == 4

    @property
    def k(self) -> int:
        return len(self.phases)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.vol.shape[-3:])  # type: ignore[return-value]

    def frames(self) -> list[da.Array]:
        return frame_arrays(self.vol)


def as_labels(x: Any, *, name: str = "labels", phases: Any = None) -> Labels:
    """Check that ``x`` is a non-empty 3D/4D integer label volume; resolve its phase names.

    Phase names come from ``phases``, else ``attrs["phases"]``, else ``["background",
    "foreground"]`` for a boolean mask and the default electrode ``["pore", "cbd", "active"]``
    for integers. Value checks (labels beyond the phases) happen during the
    first pass over the data (see :func:`check_values`).
    """
    vol = as_volume(x, name=name, allow_series=True)
    if is_cupy(getattr(vol.data, "_meta", None)):  # labels made on a GPU: the measurements' kernels run on the host
        vol = vol.copy(data=on_host(vol.data))
    dt = np.dtype(vol.dtype)
    if not (np.issubdtype(dt, np.integer) or dt == np.bool_):
        nan = (f" (NaN marking unlabelled voxels, as .where() leaves: {name}.fillna(255).astype('uint8'), 255 = "
               f"unlabelled)") if dt.kind == "f" else ""
        raise InputError(
            f"Expected `{name}` to hold integer labels (e.g. uint8). Got dtype {dt} instead; "
            f"round or threshold the values first{nan}."
        )
    if phases is not None:
        names = parse_phases(phases)
    elif dt == np.bool_:  # a mask (e.g. labels == 2, whose attrs xarray keeps): two phases, not pore and cbd
        names = list(MASK_PHASES)
    elif vol.attrs.get("phases") is not None:
        names = parse_phases(vol.attrs["phases"], name=f"{name}.attrs['phases']")
    else:
        names = list(DEFAULT_PHASES)
    vs = tuple(float(v) for v in vol.attrs.get("voxel_size", (1.0, 1.0, 1.0)))
    return Labels(vol, names, vs, str(vol.attrs.get("unit", "voxel")), name,  # type: ignore[arg-type]
                  named=phases is not None)


def from_stack(lab: Any) -> bool:
    """Labels read from a file that names no phases (a TIFF, .npy or raw label stack: ``source``
    set, no ``phases``), where a 0 / 255 binary mask is common (:func:`_warn_binary_255`), and
    given no ``phases`` by the caller either (one who names them says what the values are)."""
    attrs = getattr(getattr(lab, "vol", None), "attrs", {})
    return "source" in attrs and attrs.get("phases") is None and not getattr(lab, "named", False)


def _warn_binary_255(hist: np.ndarray, name: str, phases: list[str], allow_unlabelled: bool, t: int | None) -> bool:
    """Labels of a stack holding 0 and 255 only: a two-phase mask saved as 0 / 255 (ImageJ, Fiji,
    OpenCV binary masks) read as phase 0 and unlabelled voxels measured nothing of the second phase
    without a word (every fraction of the first 1.0). Said, with the mapping that makes them two phases,
    at the caller's line; True when said."""
    total = int(hist.sum())
    if not allow_unlabelled or not total or np.count_nonzero(hist[:UNLABELLED]) != 1 or not hist[0] \
            or hist[UNLABELLED] < 0.01 * total:
        return False
    from ..errors import warn_caller

    where = f" at t={t}" if t is not None else ""
    warn_caller(f"`{name}` holds only the values 0 ({phases[0]}) and 255{where}, which is left out as unlabelled "
                f"({100 * hist[UNLABELLED] / total:.1f} % of the voxels): if it is a two-phase mask saved as "
                "0 / 255, map 255 to 1 first (labels.where(labels != 255, 1), np.where(mask == 255, 1, mask)) "
                "and pass `phases` naming both.")
    return True


def check_values(hist: np.ndarray, k: int, phases: list[str], name: str, *,
                 allow_unlabelled: bool, out_of_range: int = 0, t: int | None = None, stack: bool = False) -> bool:
    """Raise ``InputError`` if a histogram shows values outside ``0..k-1`` (and 255 if allowed).
    ``stack``: labels read from a file naming no phases, whose 0 / 255 mask is warned about; the
    return value says whether it was (a series' caller asks once, not once per step)."""
    bad = hist.copy()
    bad[:k] = 0
    if allow_unlabelled:
        bad[UNLABELLED] = 0
    nbad = int(bad.sum()) + int(out_of_range)
    if nbad == 0:
        # a label stack from a file, naming no phases
        return stack and _warn_binary_255(hist, name, phases, allow_unlabelled, t)
    values = np.flatnonzero(bad).tolist()
    where = f" at t={t}" if t is not None else ""
    shown = ", ".join(str(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
    what = [f"{len(values)} distinct: {shown}"] if values else []
    what += [f"{out_of_range} voxels outside 0..255"] if out_of_range else []
    allowed = f"0..{k - 1}" + (" or 255 (unlabelled)" if allow_unlabelled else "")
    present = [v for v in np.flatnonzero(hist).tolist() if not (allow_unlabelled and v == UNLABELLED)]
    hint = ("a grey-value image is no labels (measure a label image, IMAGE/labels/NAME); negative values marking "
            "unlabelled voxels (e.g. -1) are set to 255 first"
            if out_of_range else grey_levels_hint(present, k, unlabelled=allow_unlabelled and bool(hist[UNLABELLED]))[2:] or "pass `phases` naming every label value")
    if not out_of_range and values == [k] and not hist[UNLABELLED] and hint.startswith("pass"):
        # one value past the phases and no 255: classes counted from 1, as napari, ilastik and Fiji export them
        hint = ("if 0 marks unannotated voxels and the classes count from 1 (napari, ilastik and Fiji label "
                f"exports), map them first with bigseg.io.sparse_labels({name}, 0); else {hint}")
    raise InputError(
        f"Expected `{name}` to hold values {allowed}, one per phase {phases}. "
        f"Got {nbad} voxels{where} with other values ({'; '.join(what)}): {hint}."
    )
