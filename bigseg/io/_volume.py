"""The in-memory model of a volume: an ``xarray.DataArray`` over a dask array.

Dims are ``("z", "y", "x")`` or ``("t", "z", "y", "x")``; coordinates are physical positions of
voxel centres (``index * voxel_size``); ``attrs`` hold ``voxel_size`` (z, y, x), ``unit`` (their
length unit), ``units`` (the unit of the values: :func:`state_values`) and, for label volumes,
``phases`` (names indexed by label value).
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._parse import parse_chunks, parse_phases, parse_region, parse_voxel_size
from ..errors import InputError, outside_caller, warn_caller
from ..runtime._files import is_zarr_store
from ._calibration import convert_length, parse_unit

__all__ = [
    "as_volume",
    "check_grey",
    "make_volume",
    "unit_for",
    "origin_of",
    "like_volume",
    "is_series",
    "frame_arrays",
    "for_each_frame",
    "frame_by_frame",
    "DEFAULT_PHASES",
    "PHASE_COLOURS",
    "phase_colour",
    "UNLABELLED",
    "zarr_source",
    "crop_box",
    "is_zarr_store",
    "sparse_labels",
    "warn_unmarked",
]

SPATIAL_DIMS = ("z", "y", "x")
SERIES_DIMS = ("t", "z", "y", "x")
DEFAULT_PHASES = ["pore", "cbd", "active"]
MASK_PHASES = ["background", "foreground"]  # the phases of a boolean mask given as labels (False, True)
UNLABELLED = 255


def mask_as_labels(vol: xr.DataArray, phases: Any = None) -> xr.DataArray:
    """A boolean mask as uint8 labels 0, 1 named ``phases`` (default :data:`MASK_PHASES`, as the
    measurements name a mask's): for writers, where ``labels == 2`` kept the labels' phase
    names, which do not name its False and True."""
    return vol.astype(np.uint8).assign_attrs(phases=list(MASK_PHASES) if phases is None else list(phases))


#: Fixed RGBA colours (0-255) per phase name, used in every figure and in OME-Zarr label metadata.
#: Near-black, blue and orange: apart for every common colour-vision deficiency (blue and orange
#: are the pair deuteranopes, protanopes and tritanopes all tell apart), and of three lightnesses
#: (CIE L* 7, 46, 67) so that a grey-scale print tells them apart too.
PHASE_COLOURS: dict[str, tuple[int, int, int, int]] = {
    "pore": (20, 20, 30, 255),
    "cbd": (35, 110, 190, 255),
    "active": (235, 140, 40, 255),
    "background": (0, 0, 0, 0),
    "particle": (235, 140, 40, 255),
    "unlabelled": (128, 128, 128, 0),
}
#: Colours of phases of other names, by label value: eight (were four: the fifth unknown phase took
#: the first's colour), none a fixed phase's, so that up to eight phases of other names stay apart.
_EXTRA = [(200, 60, 90, 255), (90, 200, 90, 255), (170, 90, 210, 255), (230, 220, 60, 255),
          (0, 158, 115, 255), (120, 200, 240, 255), (140, 86, 60, 255), (240, 150, 200, 255)]


def phase_named(phases: Any, name: str) -> str | None:
    """The phase of ``phases`` that ``name`` means: itself, else the one phase that differs from it
    in case only (``"Pore"``, ``"PORE"`` for ``"pore"``: where bigseg looks for a phase by its own
    name, as the pore of detachment and tortuosity, or a fixed colour); None if none or several do."""
    names = [str(p) for p in phases]
    if name in names:
        return name
    folded = [p for p in names if p.casefold() == str(name).casefold()]
    return folded[0] if len(folded) == 1 else None


def phase_colour(name: str, index: int) -> tuple[int, int, int, int]:
    """RGBA colour of a phase: fixed for known names (in any case: ``"Pore"``, ``"CBD"``), else a
    stable colour from the index.

    Parameters
    ----------
    name : the phase's name (``PHASE_COLOURS`` holds the known ones).
    index : its label value, for names not known.

    Returns
    -------
    ``(r, g, b, a)``, ints in [0, 255].
    """
    known = phase_named(PHASE_COLOURS, str(name))
    return PHASE_COLOURS[known] if known is not None else _EXTRA[index % len(_EXTRA)]


#: The unit of a volume's VALUES (``attrs["units"]``) and the name they are given where the volume has
#: none (``attrs["long_name"]``), by what they are (:func:`value_kind`). xarray's plots label the
#: values by ``units``, falling back to ``attrs["unit"]``, the voxels' LENGTH unit: without it a
#: slice's colour bar read "image [nm]" and a segmentation's "segmentation [nm]".
VALUE_UNITS: dict[str, tuple[str, str | None]] = {
    "grey": ("a.u.", None),  # grey values in arbitrary units (a volume stating its own, e.g. "HU", keeps it)
    "labels": ("1", "phase label"),  # values named by attrs["phases"]
    "instances": ("1", "instance id"),  # one value per object (particle ids: a label image without names)
    "probabilities": ("1", "probability"),  # one per phase (the "phase" axis)
    "uncertainty": ("1", "uncertainty"),  # entropy ("nats") or margin ("1"): attrs["unit_of_value"]
}


def value_kind(vol: xr.DataArray) -> str:
    """What a volume's values are (a key of :data:`VALUE_UNITS`): labels (``attrs["phases"]``),
    probabilities (a ``phase`` axis, or opened from ``labels/NAME_probabilities``), uncertainty
    (predict's, or opened from ``labels/NAME_uncertainty``), else grey values."""
    attrs = vol.attrs
    if attrs.get("phases") is not None:
        return "labels"
    if "phase" in vol.dims or "probabilities_of" in attrs:
        return "probabilities"
    if "uncertainty_of" in attrs or "unit_of_value" in attrs:
        return "uncertainty"
    return "grey"


def state_values(vol: xr.DataArray, kind: str | None = None) -> xr.DataArray:
    """``vol``, a volume being built (its attrs set here, in place), stating the unit of its
    values in ``attrs["units"]`` (CF's name, what xarray's plots and netCDF readers read), by
    ``kind`` (default :func:`value_kind`; see :data:`VALUE_UNITS`): grey values "a.u." unless the
    volume states a unit of its own; labels, instance ids, probabilities "1" (whatever grey
    volume's unit they were computed from), with a ``long_name`` where they have none.
    ``attrs["unit"]`` stays the voxels' length unit; no store holds ``units``."""
    kind = value_kind(vol) if kind is None else kind
    units, long_name = VALUE_UNITS[kind]
    if kind == "grey":
        if not vol.attrs.get("units"):  # (an empty one too: xarray then labels by `unit`)
            vol.attrs["units"] = units
        return vol
    if kind == "uncertainty":
        method = vol.attrs.get("method")
        units = str(vol.attrs.get("unit_of_value") or ("nats" if method == "entropy" else units))
    vol.attrs["units"] = units
    if long_name and not vol.attrs.get("long_name"):
        vol.attrs["long_name"] = long_name
    return vol


def own_units(vol: Any) -> str:
    """The unit of a grey volume's values as its data state it (e.g. "HU"): ``attrs["units"]``,
    ``""`` where there is none or bigseg's "a.u." stands in for none (:func:`state_values`), so
    that tables of grey values (a particle's mean intensity) name no unit nobody gave."""
    units = str(getattr(vol, "attrs", {}).get("units") or "")
    return "" if units == VALUE_UNITS["grey"][0] else units


def unit_for(unit: Any, voxel_size: Any, current: str = "voxel") -> str:
    """The length unit of a volume given ``unit`` and ``voxel_size`` (``None``: not given):
    ``unit`` when given; else the volume's ``current`` one, unless that is ``"voxel"`` (no
    physical size) and a voxel size is given: then nm, API.md's default (a size of 50 is not
    "50 voxels")."""
    if unit is not None:
        return str(unit)
    return "nm" if voxel_size is not None and current == "voxel" else str(current)


def make_volume(
    data: Any,
    *,
    voxel_size: Any = None,
    unit: str | None = None,
    phases: list[str] | None = None,
    name: str | None = None,
    dims: tuple[str, ...] | None = None,
    origin: Any = None,
) -> xr.DataArray:
    """Wrap a NumPy/dask array as a bigseg volume with physical coordinates, the unit of its
    values in ``attrs["units"]`` ("1" for labels, else "a.u.": :func:`state_values`).

    Parameters
    ----------
    data : array of shape (z, y, x) or (t, z, y, x)
    voxel_size : float or 3 floats, (z, y, x) edge lengths in ``unit`` (default 1 voxel)
    unit : str, length unit of ``voxel_size`` (e.g. "nm", "um", "voxel"; default nm with a
        ``voxel_size``, else "voxel": see :func:`unit_for`)
    phases : list of str, optional, phase names indexed by label value (label volumes only)
    name : the DataArray's name (default None)
    dims : the axes' names (default (z, y, x), or (t, z, y, x) for 4D data)
    origin : (z, y, x) position of the first voxel in ``unit`` (default 0: e.g. a box cut from a
        scan keeps its place in the scan, see :func:`origin_of`)
    """
    arr = data if isinstance(data, da.Array) else da.asarray(data)
    if dims is None:
        if arr.ndim == 3:
            dims = SPATIAL_DIMS
        elif arr.ndim == 4:
            dims = SERIES_DIMS
        else:
            raise InputError(
                f"Expected `data` to be 3D (z, y, x) or 4D (t, z, y, x). Got shape {arr.shape} instead."
            )
    vs = parse_voxel_size(1.0 if voxel_size is None else voxel_size)
    unit = unit_for(unit, voxel_size)
    at = (0.0, 0.0, 0.0) if origin is None else tuple(float(o) for o in origin)
    coords = {}
    for dim, n in zip(dims, arr.shape):
        if dim in SPATIAL_DIMS:
            a = SPATIAL_DIMS.index(dim)
            # in its unit, stated on the coordinate too (CF's `units`: a plot's axis, a to_netcdf)
            coords[dim] = (dim, at[a] + np.arange(n, dtype=np.float64) * vs[a], {"units": str(unit)})
        else:
            coords[dim] = np.arange(n)
    attrs: dict[str, Any] = {"voxel_size": vs, "unit": str(unit)}
    if phases is not None:
        attrs["phases"] = parse_phases(phases)
    return state_values(xr.DataArray(arr, dims=dims, coords=coords, attrs=attrs, name=name))


def origin_of(vol: xr.DataArray) -> tuple[float, float, float]:
    """(z, y, x) position of a volume's first voxel in its ``unit``: where a box cut from a scan
    (``crop``) lies in the scan. 0 without coordinates.

    Parameters
    ----------
    vol : a volume (DataArray) with z, y, x coordinates in its ``attrs["unit"]``.
    """
    return tuple(float(vol.coords[d].values[0]) if d in vol.coords and vol.sizes[d] else 0.0
                 for d in SPATIAL_DIMS)


def origin_voxels(vol: xr.DataArray) -> list[float]:
    """(z, y, x) index, on the volume's own grid, of its first voxel in the scan it was cut from
    (:func:`origin_of` over the voxel size; 0 for a whole scan)."""
    return [o / v for o, v in zip(origin_of(vol), vol.attrs.get("voxel_size", (1.0, 1.0, 1.0)))]


def warn_other_grid(a: Any, va: xr.DataArray, name_a: str, b: Any, vb: xr.DataArray, name_b: str, *,
                     stacklevel: int = 4, then: str = "Voxels are compared index by index.") -> None:
    """Two volumes of one shape (``a``, ``b`` as given; ``va``, ``vb`` as read by
    :func:`as_volume`) whose stated voxel sizes differ (in one unit, or in two length units once
    converted: 50 nm is 0.05 um), or that both state where they lie (z, y, x coordinates) and
    lie at different places (boxes cut from other parts of a scan): warned about (of the same
    scan, the same box? ``then`` says what is done with them: compared index by index). A stack
    read from a file that states neither (:func:`bigseg.io.open_source` of a napari, ilastik or
    Fiji TIFF: 1 nm voxels, first voxel at 0) is taken to be of the other's grid and box, as the
    commands take it."""
    import warnings

    ua, ub = (str(v.attrs.get("unit", "voxel")) for v in (va, vb))
    plain = [_stack_stating_nothing(x) for x in (a, b)]
    stated = [None if p else getattr(x, "attrs", {}).get("voxel_size") for x, p in zip((a, b), plain)]
    if None not in stated and "voxel" not in (ua, ub):
        sa, sb = (np.broadcast_to(np.asarray(s, float), 3) for s in stated)
        if ua != ub:
            sb = convert_length(tuple(sb), ub, ua)
        if sb is not None and not np.allclose(sa, sb, rtol=1e-6):  # (None: not both length units, not comparable)
            warnings.warn(f"`{name_a}` and `{name_b}` have the same shape but different voxel sizes "
                          f"({tuple(stated[0])} {ua} against {tuple(stated[1])} {ub}): are they of the "
                          f"same scan? {then}", stacklevel=stacklevel)
            return
    # boxes cut from different places of a scan (crops of one shape): both state where they lie
    placed = all(isinstance(x, xr.DataArray) and all(d in x.coords for d in SPATIAL_DIMS) for x in (a, b))
    if placed and (ua == ub or "voxel" not in (ua, ub)):
        at_a, at_b = (np.round(origin_voxels(v), 2) for v in (va, vb))
        unplaced = any(p and not np.any(at) for p, at in zip(plain, (at_a, at_b)))
        if np.any(np.abs(at_a - at_b) >= 0.5) and not unplaced:
            warnings.warn(f"`{name_a}` and `{name_b}` have the same shape but lie at different places of the scan "
                          f"(first voxel at z, y, x = {_said_voxels(at_a)} against {_said_voxels(at_b)}): are they "
                          f"the same box? {then}", stacklevel=stacklevel)


def _stack_stating_nothing(x: Any) -> bool:
    """Whether ``x`` was read from a file that is no zarr store and states no voxel size (1 nm
    voxels, bigseg's default for such a source) in nm: a label stack from another tool."""
    attrs = getattr(x, "attrs", {})
    return bool(attrs.get("source")) and attrs.get("unit") == "nm" \
        and tuple(attrs.get("voxel_size", ())) == (1.0, 1.0, 1.0) and not is_zarr_store(attrs["source"])


def _said_voxels(at: np.ndarray) -> str:
    return ", ".join(f"{v:g}" for v in at) + " voxels"


def placed_like(vol: Any, like: xr.DataArray) -> Any:
    """``vol`` put where ``like`` lies in the scan, when it has ``like``'s shape and states no
    place of its own (its first voxel at 0: an array, a file cut elsewhere): a reference taken
    to be of that box. Anything else comes back as it is."""
    if not isinstance(vol, xr.DataArray) or tuple(vol.shape[-3:]) != tuple(like.shape[-3:]) \
            or any(origin_voxels(vol)) or not any(origin_voxels(like)):
        return vol
    return vol.assign_coords({d: like.coords[d].variable for d in SPATIAL_DIMS if d in vol.dims and d in like.coords})


def recalibrated(vol: xr.DataArray, voxel_size: Any, unit: str) -> xr.DataArray:
    """``vol`` with another voxel size (and unit): the attrs and the z/y/x coordinates together,
    the first voxel's index in the scan it was cut from (:func:`origin_voxels`) kept. The way
    to correct a volume's calibration (setting ``attrs["voxel_size"]`` alone leaves its
    coordinates, hence where a crop lies, in the old size).

    Parameters
    ----------
    vol : a volume (z, y, x) or series (t, z, y, x) DataArray.
    voxel_size : the new voxel edge length(s) in ``unit``: one number or (z, y, x).
    unit : the length unit of ``voxel_size`` (e.g. ``"nm"``, ``"um"``).
    """
    vs = parse_voxel_size(voxel_size)
    unit = parse_unit(unit) if str(unit) != "voxel" else unit
    at = origin_voxels(vol)
    coords = {d: (d, (at[a] + np.arange(vol.sizes[d], dtype=np.float64)) * vs[a], {"units": str(unit)})
              for a, d in enumerate(SPATIAL_DIMS) if d in vol.dims}
    return vol.assign_coords(coords).assign_attrs(voxel_size=vs, unit=str(unit))


def as_volume(
    data: Any,
    *,
    name: str = "vol",
    ndim: int | tuple[int, ...] = 3,
    chunks: Any = None,
    allow_series: bool = False,
) -> xr.DataArray:
    """Normalise a DataArray, dask or NumPy array to a dask-backed volume.

    Plain arrays get voxel size 1 and unit ``"voxel"``; a DataArray's ``attrs["voxel_size"]``
    without ``attrs["unit"]`` is in nm (:func:`unit_for`). A DataArray's axes are taken by name:
    z, y, x (t first for a series) in any order come back transposed to that order (its
    ``attrs["voxel_size"]`` is always (z, y, x)); unnamed ``dim_0, ...`` are taken in order;
    other names are refused. Raises ``InputError`` naming ``name`` when the array is not 3D (or
    4D with ``allow_series``), its dims have other names, or its ``voxel_size`` attribute is not
    one or three positive numbers. Big-endian data come back in native byte order (lazily).
    The input is never modified.

    Parameters
    ----------
    data : DataArray, dask or NumPy array.
    name : the argument's name in the errors (default ``"vol"``).
    ndim : the number of axes accepted, one int or several (default 3: (z, y, x)).
    chunks : rechunk to these (an int or one per axis, in voxels); default None: as it is.
    allow_series : also accept a (t, z, y, x) series (default False).

    Returns
    -------
    A dask-backed DataArray with ``attrs["voxel_size"]`` (z, y, x) and ``attrs["unit"]``.
    """
    allowed = {3, 4} if allow_series else ({ndim} if isinstance(ndim, int) else set(ndim))
    named = [f"{n}D" for n in sorted(allowed)]
    want = (", ".join(named[:-1]) + " or " if len(named) > 1 else "") + named[-1] \
        + (" (z, y, x) or (t, z, y, x)" if allowed == {3, 4} else "")
    if isinstance(data, xr.DataArray):
        _check_array(data.data, name)
        channels = "c" in data.dims and 5 not in allowed and set(data.dims) - {"c"} <= set(SERIES_DIMS)
        hint = (f": pick one channel first, e.g. {name}.isel(c=0) (command line: bigseg ingest SOURCE DEST "
                "--channel 0)") if channels else " instead"
        lost = [d for d in ("z", "y", "x") if d not in data.dims and d in data.coords]  # a slice picked by .isel
        if 3 in allowed and data.ndim == 2 and set(data.dims) <= set(SPATIAL_DIMS) and lost:
            hint = (f" instead, one slice: pick it with a list to keep its axis, .isel({lost[0]}=[k]) rather than "
                    f".isel({lost[0]}=k), and it is taken as a volume one voxel thick")
        if data.ndim not in allowed:
            raise InputError(
                f"Expected `{name}` to be a {want} volume. "
                f"Got dims {data.dims} with shape {data.shape}{hint}."
            )
        vol = _named_dims(data, name)
        if 5 not in allowed and vol.ndim == 4 and vol.dims[0] != "t":  # channels only where a writer takes them
            raise InputError(f"Expected `{name}` to be a (z, y, x) volume or a (t, z, y, x) series. "
                             f"Got dims {data.dims}{hint}.")
        vol = vol.copy(deep=False, data=vol.data if isinstance(vol.data, da.Array) else da.asarray(vol.data))
        given = vol.attrs.get("voxel_size")
        vol.attrs["voxel_size"] = (1.0, 1.0, 1.0) if given is None else parse_voxel_size(
            given, name=f"{name}.attrs['voxel_size']")
        vol.attrs.setdefault("unit", unit_for(None, given))  # a voxel_size of 50 without a unit: nm, not voxels
        _check_unit_attr(vol.attrs["unit"], name)
        _warn_coords_disagree(vol, name, given is not None)
    else:
        if isinstance(data, (str, os.PathLike)):
            raise InputError(f"Expected `{name}` to be an array or volume. Got the path {os.fspath(data)!r}: open it "
                             f"first, bigseg.open_volume(path) (OME-Zarr) or bigseg.io.open_source(path) (TIFF, "
                             f"HDF5, .npy).")
        if not hasattr(data, "shape") or not hasattr(data, "dtype"):
            raise InputError(f"Expected `{name}` to be an array or volume. Got {type(data).__name__} instead.")
        _check_array(data, name)
        if data.ndim not in allowed:
            one = (f": a slice is a volume one voxel thick as {name}[None] (shape (1, {data.shape[0]}, "
                   f"{data.shape[1]}))") if data.ndim == 2 and 3 in allowed else ""
            raise InputError(
                f"Expected `{name}` to be a {want} array. "
                f"Got shape {tuple(data.shape)} instead{one}."
            )
        vol = make_volume(data)
    if vol.size == 0:
        raise InputError(f"Expected `{name}` to be non-empty. Got shape {vol.shape} instead.")
    if not vol.dtype.isnative:  # big-endian data (HDF5, raw files) read lazily in native order: dtype checks hold
        vol = vol.copy(deep=False, data=vol.data.astype(vol.dtype.newbyteorder("=")))
    if chunks is not None:
        vol = vol.chunk(dict(zip(vol.dims, parse_chunks(chunks, vol.ndim))))
    return vol


def check_grey(vol: xr.DataArray, name: str = "vol") -> xr.DataArray:
    """``vol`` (from :func:`as_volume`) if it holds grey values (integers or floats): a boolean
    mask is no scan to segment."""
    if not (np.issubdtype(vol.dtype, np.integer) or np.issubdtype(vol.dtype, np.floating)):
        raise InputError(f"Expected `{name}` to hold grey values (integers or floats). Got dtype {vol.dtype} instead.")
    return vol


def _check_unit_attr(unit: Any, name: str) -> None:
    """Refuse a volume's ``attrs["unit"]`` that is no length unit (a typo such as ``"parsec?"`` went
    on into areas and tables); ``"voxel"`` and another writer's ``"pixel"`` (sizes in voxels) pass."""
    if str(unit).strip().lower() in ("voxel", "voxels", "pixel", "pixels", "px"):
        return
    try:
        parse_unit(unit, name=f"{name}.attrs['unit']")
    except InputError as exc:
        raise InputError(f"{exc} Give it the voxel size and unit it has with bigseg.io.recalibrated({name}, "
                         "voxel_size, unit).") from None


def _check_array(arr: Any, name: str) -> None:
    """Refuse by name what no volume can be: data that are not numbers (object, strings, dates)
    and a dask array whose chunk sizes are unknown (NaN, e.g. after boolean indexing)."""
    kind = np.dtype(arr.dtype).kind
    if kind not in "biuf":
        raise InputError(f"Expected `{name}` to hold numbers (integers, floats or booleans). Got dtype "
                         f"{np.dtype(arr.dtype)} instead.")
    chunks = getattr(arr, "chunks", None)
    if isinstance(arr, da.Array) and any(np.isnan(c) for axis in chunks for c in axis):
        raise InputError(f"Expected `{name}` with known chunk sizes. Got a dask array of shape {arr.shape} whose "
                         f"chunk sizes are unknown (NaN); call .compute_chunk_sizes() on it first.")


_last_coords_warning: list = [None, None]  # the coordinates last warned about (a weak reference to their
# index) and the call they came from: a call's nested steps re-check the same volume (shallow copies share
# the index), and dask's catch_warnings resets Python's own once-per-line registry


def _warn_coords_disagree(vol: xr.DataArray, name: str, stated: bool) -> None:
    """Warn when a DataArray's z/y/x coordinates step by other than its voxel size (a strided
    slice such as ``vol[:, ::2, ::2]`` keeps ``attrs["voxel_size"]`` but doubles the step;
    coordinates of one's own without the attribute): sizes, areas and distances use the
    attribute. Coordinates that are plain indices (0, 1, 2, ...) say nothing."""

    for axis, dim in enumerate(SPATIAL_DIMS):
        if dim not in vol.coords or vol.sizes[dim] < 2:
            continue
        c = np.asarray(vol.coords[dim].values)
        if c.dtype.kind not in "iuf" or np.array_equal(c, np.arange(c.size)):
            continue
        step = np.diff(c.astype(np.float64))
        vs = vol.attrs["voxel_size"][axis]
        if np.allclose(step, vs, rtol=1e-6, atol=0):
            continue
        index, (frame, _) = vol.indexes.get(dim), outside_caller(1)
        call = (id(frame), id(frame.f_code), frame.f_lasti) if frame is not None else None
        seen, seen_call = _last_coords_warning
        if index is not None and seen is not None and seen() is index and seen_call == call:
            return  # said once in this call
        said = (f"attrs['voxel_size'] says {vs:g} {vol.attrs['unit']}" if stated
                else "it has no attrs['voxel_size'] (taken as 1 voxel)")
        spacing = f"step by {step[0]:g}" if np.allclose(step, step[0], rtol=1e-6) else "are not evenly spaced"
        warn_caller(f"`{name}`'s {dim} coordinates {spacing}, but {said}: sizes, areas and distances use the "
                    f"attribute. Sliced with a step (e.g. vol[:, ::2])? Give it the (z, y, x) voxel size of the "
                    f"data as it is with bigseg.io.recalibrated({name}, voxel_size, unit), which moves the "
                    f"coordinates with the attribute.")
        if index is not None:
            _last_coords_warning[:] = [weakref.ref(index), call]
        return


_KNOWN_DIMS = ("t", "c", "phase", *SPATIAL_DIMS)  # OME-Zarr's order ("phase": a channel per phase, as predict gives)


def _named_dims(data: xr.DataArray, name: str) -> xr.DataArray:
    """A DataArray's axes put in bigseg's order by name: (t,) (c,) z, y, x in any order are
    transposed (lazily); xarray's unnamed ``dim_0, dim_1, ...`` are taken in that order; other
    names are refused (a profile along "z" must not run along another axis)."""
    dims = tuple(str(d) for d in data.dims)
    if all(d.startswith("dim_") for d in dims) and data.ndim in (3, 4):
        return data.rename(dict(zip(data.dims, SPATIAL_DIMS if data.ndim == 3 else SERIES_DIMS)))
    if set(SPATIAL_DIMS) <= set(dims) <= set(_KNOWN_DIMS) and len(set(dims)) == len(dims) and not {"c", "phase"} <= set(dims):
        order = tuple(d for d in _KNOWN_DIMS if d in dims)
        return data if dims == order else data.transpose(*order)
    unknown = [d for d in dims if d not in SERIES_DIMS]
    missing = [d for d in (SERIES_DIMS if data.ndim == 4 else SPATIAL_DIMS) if d not in dims]
    mapping = ", ".join(f"{a!r}: {b!r}" for a, b in zip(unknown, missing)) if len(unknown) == len(missing) else "old: new, ..."
    raise InputError(f"Expected `{name}`'s dims to be named z, y, x (with t first for a series), in any order. "
                     f"Got dims {data.dims} instead: rename them, e.g. {name}.rename({{{mapping}}}).")


def like_volume(data: Any, like: xr.DataArray, *, phases: list[str] | None = None, name: str | None = None,
                units: str | None = None) -> xr.DataArray:
    """A new volume with ``like``'s dims, coordinates, voxel size and unit around ``data``: labels
    named ``phases``, else grey values in ``units`` (default "a.u."; e.g. ``like``'s own for a
    filter, whose values are in the unit of its input), stated in ``attrs["units"]``
    (:func:`state_values`).

    Parameters
    ----------
    data : array of ``like``'s shape.
    like : the volume whose dims, coordinates, voxel size and unit are taken.
    phases : phase names by label value (for labels); default None: grey values.
    name : the DataArray's name; default None.
    units : the unit of the values (default None: "a.u." for grey values, "1" for labels).
    """
    attrs = {"voxel_size": like.attrs.get("voxel_size", (1.0, 1.0, 1.0)), "unit": like.attrs.get("unit", "voxel")}
    if phases is not None:
        attrs["phases"] = parse_phases(phases)
    if units:
        attrs["units"] = str(units)
    return state_values(xr.DataArray(data, dims=like.dims, coords=like.coords, attrs=attrs, name=name))


def is_series(data: Any) -> bool:
    """Whether ``data`` (DataArray, dask or NumPy array) is a (t, z, y, x) series."""
    return getattr(data, "ndim", None) == 4


def is_step_index(t: Any, unit: str = "") -> bool:
    """Whether a series' ``t`` is the plain step index 0, 1, ... (no ``times`` were given). Times
    with a unit (``unit``, or ``t``'s ``units`` attribute) are times, 0, 1, 2 min included."""
    if unit or time_unit(t):
        return False
    t = np.asarray(t)
    return t.dtype.kind in "iuf" and np.array_equal(t, np.arange(len(t)))


def time_unit(t: Any) -> str:
    """The unit of a series' ``t`` coordinate (its ``units`` attribute, e.g. ``"min"``, as
    ``ingest(..., time_unit=)`` gives it); ``""`` when it states none."""
    return str(getattr(t, "attrs", {}).get("units") or "")


def numeric_times(vol: xr.DataArray, name: str = "data") -> xr.DataArray:
    """``vol`` with a series' ``t`` coordinate as numbers a writer stores with their unit:
    durations (timedelta64, e.g. ``xr.concat(scans, dim=pd.Index(pd.to_timedelta(...), name="t"))``)
    in seconds, ``units`` "s"; dates (datetime64) and other values that are no numbers are
    refused, saying how to make them numbers (OME-Zarr, OME-TIFF and HDF5 hold times as numbers
    in a unit)."""
    if "t" not in vol.dims or "t" not in vol.coords:
        return vol
    t = vol.coords["t"]
    if t.dtype.kind == "m":
        seconds = np.asarray(t.values / np.timedelta64(1, "s"), np.float64)
        vol = vol.assign_coords(t=xr.DataArray(seconds, dims="t", attrs={**t.attrs, "units": "s"}))
        t = vol.coords["t"]
    if t.dtype.kind in "iuf":  # NaN (NaT) or inf are no time a writer can store (zarr.json: no JSON; OME-TIFF)
        if not np.all(np.isfinite(t.values)):
            raise InputError(f"Expected `{name}`'s t coordinate to hold finite times. Got {t.values.tolist()} instead: "
                             f"give each scan its time, {name}.assign_coords(t=[...]), or number the scans from 0 "
                             f"with {name}.drop_vars('t').")
        return vol
    fix = (f"the time since the first scan, {name}.assign_coords(t={name}.t - {name}.t[0]) (durations are stored "
           f"in seconds)" if t.dtype.kind == "M" else
           f"the time (or cycle) of each scan as a number, {name}.assign_coords(t=[...]), or number the scans from 0 "
           f"with {name}.drop_vars('t')")
    raise InputError(f"Expected `{name}`'s t coordinate to hold times as numbers (their unit in t.attrs['units']). "
                     f"Got dtype {t.dtype} ({t.values[0]!r}, ...) instead: store {fix}.")


def frame_arrays(vol: xr.DataArray) -> list[da.Array]:
    """The 3D dask arrays of a volume: one, or one per time step of a (t, z, y, x) series."""
    arr = vol.data
    if vol.ndim == 4:
        return [arr[i] for i in range(arr.shape[0])]
    return [arr]


def _merge_frame_attrs(frames: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in frames[0].items():
        values = [f.get(key) for f in frames]
        same = all(_same(value, v) for v in values[1:])
        out[key] = value if same else values
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
    except Exception:  # noqa: BLE001 - incomparable values differ
        return False


def for_each_frame(fn: Callable[..., Any], vol: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(frame, *args, **kwargs)`` for every (z, y, x) frame of a (t, z, y, x) series,
    stacked along ``t`` (lazily: each frame's result is a lazy DataArray or Dataset).

    Every frame is processed exactly as if it were a volume on its own (its own histogram,
    percentiles, thresholds), which is what a scan of an operando series is. The result keeps
    the series' ``t`` coordinate; an attribute that differs between frames becomes the list of
    its per-frame values. A 3D ``vol`` is passed to ``fn`` unchanged.
    """
    if not is_series(vol):
        return fn(vol, *args, **kwargs)
    v = as_volume(vol, name="vol", allow_series=True)
    results = [fn(v.isel(t=i), *args, **kwargs) for i in range(v.shape[0])]
    results = [r.drop_vars("t", errors="ignore") for r in results]
    out = xr.concat(results, dim=v["t"], combine_attrs="drop")
    out.attrs = _merge_frame_attrs([r.attrs for r in results])
    if isinstance(out, xr.Dataset):
        for var in out.data_vars:
            out[var].attrs = _merge_frame_attrs([r[var].attrs for r in results])
    return out


def frame_by_frame(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a function of a (z, y, x) volume so that it also takes a (t, z, y, x) series,
    through :func:`for_each_frame`."""

    @functools.wraps(fn)
    def wrapper(vol: Any, *args: Any, **kwargs: Any) -> Any:
        return for_each_frame(fn, vol, *args, **kwargs)

    return wrapper


def zarr_source(arr: da.Array) -> Any:
    """The ``zarr.Array`` behind ``arr`` when ``arr`` is a plain ``da.from_zarr`` (as
    ``open_volume`` returns), else ``None``. Blockwise work with a halo can then read each
    block's extended region straight from the store instead of holding shared input chunks
    (and the slices cut from them) in memory until every neighbour has used them."""
    import zarr

    layers = dict(arr.dask.layers)
    orig = "original-" + arr.name
    if not arr.name.startswith("from-zarr-") or set(layers) != {arr.name, orig}:
        return None
    value = dict(layers[orig]).get(orig)
    return value if isinstance(value, zarr.Array) and tuple(value.shape) == tuple(arr.shape) else None


def crop_box(arr: Any, crop: Any, *, name: str = "crop") -> tuple[Any, tuple[slice, ...]]:
    """``arr`` (volume or series; any leading axes kept whole) cut to the (z, y, x) box ``crop``
    (see :func:`bigseg._parse.parse_region`), and the box as slices."""
    box = parse_region(name, crop, arr.shape[-3:])
    return arr[(slice(None),) * (arr.ndim - 3) + box], box


def same_place(a: Any, b: Any) -> bool:
    """Whether paths ``a`` and ``b`` name one file or folder: equal, or both there and the same
    on disk, which the resolved names do not always tell: ``Scan.ome.zarr`` and
    ``scan.ome.zarr`` on a case-insensitive file system (macOS, Windows), a name typed in
    another Unicode normalisation (macOS), one folder reached through two mounts."""
    if os.fspath(a) == os.fspath(b):
        return True
    try:  # (a share that numbers no file, st_ino 0, would make every two files the same)
        return os.path.samefile(a, b) and os.stat(a).st_ino != 0
    except OSError:  # (either not there)
        return False


def refuse_replacing(dest: Any, sources: Any, option: str) -> None:
    """Refuse, before any work, an output that is one of the inputs or holds one: writing it
    (with --overwrite) would replace the input, and with it the label images stored in it."""
    from pathlib import Path

    d = Path(dest).resolve()
    for s in [sources] if isinstance(sources, (str, Path)) else sources:
        s = Path(s).resolve()
        if same_place(s, d) or any(same_place(d, q) for q in s.parents):
            raise InputError(f"Expected `{option}` to be another place than the input {str(s)!r}: writing it would "
                             f"replace the input (and every label image stored in it). Got {str(dest)!r} instead.")
        # a file dropped into a zarr store (a folder of slices reads the same)
        if any(same_place(s, q) for q in d.parents) and is_zarr_store(s):
            raise InputError(f"Expected `{option}` to be outside the input {str(s)!r}: writing into it would change "
                             f"the input. Got {str(dest)!r} instead.")


#: What to say when sparse labels hold one value too many: likely annotations whose classes count from 1.
UNLABELLED_HINT = ("; if 0 marks the unannotated voxels and the classes count from 1 (napari, ilastik and Fiji "
                   "label exports), pass `unlabelled=0` (command line: --unlabelled 0)")


def warn_unmarked(counts: np.ndarray, *, name: str = "labels", unlabelled: int = UNLABELLED) -> None:
    """Warn when training labels (``counts``: voxels per value 0..255) hold no unlabelled voxel
    (255) while value 0 fills most of the volume: likely annotations whose 0 means "not
    annotated", which would otherwise train silently as phase 0; or when the value given as
    ``unlabelled`` (:func:`sparse_labels`) marks no voxel at all (every voxel then trains, its
    classes shifted down by one)."""
    import warnings

    total = int(counts.sum())
    if total and unlabelled != UNLABELLED and int(counts[UNLABELLED]) == 0:
        warnings.warn(f"`unlabelled`={unlabelled} marks no voxel of `{name}`: every voxel trains, and the values above "
                      f"{unlabelled} are taken as phases one lower. Leave `unlabelled` out if {UNLABELLED} marks the "
                      "unannotated voxels.", UserWarning, stacklevel=3)
        return
    if total and int(counts[UNLABELLED]) == 0 and int(counts[0]) > total // 2:
        warnings.warn(f"`{name}` hold no unlabelled voxel (255) and value 0 fills {100 * int(counts[0]) / total:.0f} % of "
                      f"them: each of those voxels trains as phase 0{UNLABELLED_HINT}.", UserWarning, stacklevel=3)


def reorder_lut(names: list[str], order: list[str]) -> np.ndarray:
    """256-entry table taking label value i (phase ``names[i]``) to that phase's value in
    ``order``; other values (unlabelled 255, values past the phases) kept as they are. Applied
    block by block with :func:`_relabel_block`."""
    lut = np.arange(256, dtype=np.uint8)
    lut[:len(names)] = [order.index(n) for n in names]
    return lut


def _relabel_block(block: np.ndarray, lut: np.ndarray, dtype: np.dtype) -> np.ndarray:
    inside = (block >= 0) & (block <= 255)
    return np.where(inside, lut[np.clip(block, 0, 255)], block).astype(dtype, copy=False)


def sparse_labels(labels: Any, unlabelled: Any = UNLABELLED, *, name: str = "labels") -> Any:
    """Sparse annotations in bigseg's convention (255 = unlabelled, phases 0, 1, ...), from
    annotations that mark unlabelled voxels with ``unlabelled`` instead.

    napari, ilastik and Fiji's label exports use 0 for "not annotated" and number the classes
    from 1: ``sparse_labels(labels, 0)`` maps 0 to 255 and 1, 2, 3 to 0, 1, 2. In general the
    value ``unlabelled`` becomes 255 and the values above it move down by one (their order is
    kept); ``unlabelled=255`` returns ``labels`` as they are. Lazy; attributes (``phases``,
    voxel size) are kept; values outside 0..255 are left for the caller's checks.

    Parameters
    ----------
    labels : integer label volume (z, y, x) or series (t, z, y, x).
    unlabelled : the value marking unannotated voxels, in [0, 255] (default 255).
    name : the argument's name in the errors (default ``"labels"``).
    """
    if isinstance(unlabelled, bool) or not isinstance(unlabelled, (int, np.integer)) or not 0 <= int(unlabelled) <= 255:
        raise InputError(f"Expected `unlabelled` to be a label value in [0, 255]. Got {unlabelled!r} instead.")
    u = int(unlabelled)
    if u == UNLABELLED:
        return labels
    vol = as_volume(labels, name=name, allow_series=True)
    if not np.issubdtype(vol.dtype, np.integer):
        raise InputError(f"Expected `{name}` to hold integer labels. Got dtype {vol.dtype} instead.")
    lut = np.arange(256, dtype=np.int64)
    lut[u + 1:] -= 1
    lut[u] = UNLABELLED
    dtype = np.promote_types(vol.dtype, np.uint8)
    data = vol.data.map_blocks(_relabel_block, lut, dtype, dtype=dtype, token="relabel")
    out = vol.copy(data=data)
    out.attrs["unlabelled_value"] = u  # what the values were: see given_values
    return out


def given_values(values: Any, labels: Any) -> list[int]:
    """Label values as the user gave them, before :func:`sparse_labels` moved the values above
    ``unlabelled`` down by one (for messages about out-of-range values)."""
    u = getattr(labels, "attrs", {}).get("unlabelled_value", UNLABELLED)
    return [int(v) + 1 if u != UNLABELLED and 0 <= int(v) < UNLABELLED and int(v) >= u else int(v) for v in values]


def grey_levels_hint(present: Any, k: int, unlabelled: bool = False) -> str:
    """A hint for label values that look like a mask saved as a grey image (``present``: the
    distinct labelled values, e.g. 0 / 128 / 192, one grey level per phase): how to map them to
    the phases' values 0..k-1 first. Empty where they do not look so (a few values, far apart).
    ``unlabelled``: the labels also hold 255, which in steps such as 0 / 128 / 255 is the last
    grey level, a phase (a third of a three-phase mask), not unlabelled voxels: mapped too."""
    vals = sorted(int(v) for v in present)
    if not 2 <= len(vals) <= 8 or vals[-1] < k or min(b - a for a, b in zip(vals, vals[1:])) < 8:
        return ""
    steps = [b - a for a, b in zip(vals, vals[1:])]
    top = unlabelled and UNLABELLED not in vals and all(abs(d - steps[0]) <= 2 for d in steps) \
        and abs((UNLABELLED - vals[-1]) - steps[0]) <= 2  # 255 goes on with the levels' steps
    if top:
        vals = vals + [UNLABELLED]
    named = "" if len(vals) <= k else f" and pass `phases` naming all {len(vals)}"
    said = (f"{UNLABELLED} continues their steps, so it is likely a phase too, not unlabelled: " if top else "")
    rest = "" if top else " (255 stays unlabelled)"
    return (f"; {', '.join(map(str, vals))} look like one grey level per phase (a mask saved as an image): {said}map "
            f"them to 0..{len(vals) - 1} first{named}, e.g. lut = np.full(256, 255, np.uint8); lut[{vals}] = "
            f"{list(range(len(vals)))}; labels = lut[mask]{rest}")


def label_values_error(bad: Any, n_classes: int, labels: Any, *, phases: Any = None,
                       marked: bool = False, present: Any = None) -> InputError:
    """The refusal of sparse training labels holding ``bad`` values (as stored, after
    :func:`sparse_labels`) beyond ``n_classes`` phases, stated in the values the user gave.
    ``marked``: the labels hold unlabelled (255) voxels, so their 0 is a phase, not "not
    annotated": the values beyond are phases without a name (not classes counted from 1).
    ``present``: every distinct labelled value (as given), where known: grey levels are told."""
    u = getattr(labels, "attrs", {}).get("unlabelled_value", UNLABELLED)
    allowed = given_values(range(n_classes), labels)
    shown = given_values(list(bad)[:5], labels)
    named = f" (phases {list(phases)})" if phases is not None else ""
    hint = grey_levels_hint(present, n_classes, unlabelled=marked and u == UNLABELLED) if present is not None else ""
    # grey levels are neither more phases nor classes counted from 1
    if not hint and u == UNLABELLED and marked:  # the unlabelled=0 hint would be wrong there: 0 is a phase
        if sorted(shown) == list(range(n_classes, max(shown) + 1)):  # the values go on past the phases: more phases
            hint = (f"; the labels mark unannotated voxels {u}, so each value is a phase: pass `phases` with a name "
                    f"for each of the {max(shown) + 1} values 0..{max(shown)}")
    elif not hint and u == UNLABELLED and n_classes in shown:
        hint = UNLABELLED_HINT
    elif not hint and u != UNLABELLED and shown and sorted(shown) == list(range(max(allowed) + 1, max(shown) + 1)):
        # classes counted from 1 (0 unannotated) going on past the phases: more phases, unnamed
        hint = (f"; with {u} unannotated, each of the values {min(allowed)}..{max(shown)} is a phase: pass `phases` "
                f"with a name for each of the {max(shown) - min(allowed) + 1}")
    return InputError(f"Expected `labels` values {', '.join(map(str, allowed))}{named} or {u} (unlabelled). "
                      f"Got {shown} instead{hint}.")
