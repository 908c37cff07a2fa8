"""Length units and the voxel size a source file states about itself.

One home for unit names: bigseg keeps short names (``"nm"``, ``"um"``, ...); OME-Zarr axes
carry the UDUNITS names (``"nanometer"``, ``"micrometer"``, ...); files spell micrometres in
many ways (``"µm"``, ``"micron"``, ImageJ's ``"\\u00B5m"``).

Calibrations read from files (never guessed):

* OME-TIFF: ``PhysicalSizeX/Y/Z`` of the first ``Pixels`` element (unit attributes default to
  µm, as in the OME schema; axes in different units are expressed in the unit of x);
* ImageJ TIFF (Fiji "Save as TIFF"): the ``XResolution``/``YResolution`` tags (pixels per unit),
  ``spacing`` (z) and ``unit`` in the ImageJ description (a stack without ``spacing``: 1 unit, which
  ImageJ leaves unwritten; a single slice states no z spacing);
* HDF5: the dataset attribute ``element_size_um`` (z, y, x in µm; Fiji's HDF5 plugin, ilastik;
  one value: isotropic).

A calibration with any axis missing, or a unit that is not a length, is not used.

Where a box cut from a scan lies in it (its first voxel, :func:`tiff_origin`): the OME-TIFF
first plane's ``PositionX/Y/Z`` (a length unit), ImageJ's ``xorigin``/``yorigin``/``zorigin``
(pixels, ImageJ's sign: a box from voxel 5 on has origin -5), HDF5 ``origin_voxels``
(bigseg's export).
"""

from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

__all__ = ["normalise_unit", "ome_unit", "ome_tiff_unit", "ome_time_unit", "imagej_unit", "unit_from_ome",
           "convert_length", "tiff_calibration", "tiff_origin", "hdf5_calibration"]

# short name -> (OME-Zarr/UDUNITS name, metres, OME-TIFF symbol, ImageJ name)
_LENGTHS = {
    "pm": ("picometer", 1e-12, "pm", "pm"),
    "angstrom": ("angstrom", 1e-10, "Å", "angstrom"),
    "nm": ("nanometer", 1e-9, "nm", "nm"),
    "um": ("micrometer", 1e-6, "µm", "micron"),
    "mm": ("millimeter", 1e-3, "mm", "mm"),
    "cm": ("centimeter", 1e-2, "cm", "cm"),
    "m": ("meter", 1.0, "m", "m"),
}
_ALIASES = {
    "µm": "um", "μm": "um", "\\u00B5m": "um", "micron": "um", "microns": "um", "micrometre": "um", "micrometres": "um",
    "micrometers": "um", "A": "angstrom", "Å": "angstrom", "ångström": "angstrom",
    **{ome: short for short, (ome, *_) in _LENGTHS.items()},
    **{ome + "s": short for short, (ome, *_) in _LENGTHS.items()},
    **{ome.replace("meter", "metre"): short for short, (ome, *_) in _LENGTHS.items()},
}

Calibration = tuple[tuple[float, float, float], str]

#: a series' time unit as OME-TIFF's DeltaTUnit spells it (units OME has no symbol for: none written)
OME_TIME_UNITS = {**{u: u for u in ("s", "ms", "µs", "ns", "min", "h", "d")}, "sec": "s", "second": "s",
                  "seconds": "s", "minute": "min", "minutes": "min", "hour": "h", "hours": "h", "hr": "h",
                  "day": "d", "days": "d", "us": "µs"}
#: OME-Zarr's (UDUNITS) name of each of those symbols, for a time axis' ``unit``
_OME_ZARR_TIMES = {"s": "second", "ms": "millisecond", "µs": "microsecond", "ns": "nanosecond", "min": "minute",
                   "h": "hour", "d": "day"}


def normalise_unit(unit: Any) -> str | None:
    """bigseg's short name of a length unit (``"µm"``, ``"micron"``, ``"micrometer"`` -> ``"um"``),
    or ``None`` when ``unit`` is not a length unit it knows."""
    if unit is None:
        return None
    text = str(unit).strip()
    if text in _LENGTHS:
        return text
    return _ALIASES.get(text, _ALIASES.get(text.lower()))


def parse_unit(unit: Any, name: str = "unit") -> str:
    """``unit`` as given, once it is a length unit bigseg knows (or ``"voxel"``: no physical
    size); else :class:`InputError` naming ``name`` (an unknown one would be written with no OME
    unit and read back as a word)."""
    if str(unit) == "voxel" or normalise_unit(unit) is not None:
        return str(unit)
    from ..errors import InputError

    raise InputError(f"Expected `{name}` to be a length unit such as 'nm', 'um' or 'mm' (or 'voxel': sizes in "
                     f"voxels). Got {unit!r} instead.")


def ome_unit(unit: str) -> str | None:
    """The OME-Zarr axis unit of ``unit`` (``"um"`` -> ``"micrometer"``), or ``None``."""
    short = normalise_unit(unit)
    return _LENGTHS[short][0] if short else None


def ome_tiff_unit(unit: str) -> str | None:
    """The OME-TIFF ``PhysicalSize*Unit`` symbol of ``unit`` (``"um"`` -> ``"µm"``), or ``None``."""
    short = normalise_unit(unit)
    return _LENGTHS[short][2] if short else None


def ome_time_unit(unit: str) -> str | None:
    """The OME-Zarr time axis unit of a series' time unit (``"min"`` -> ``"minute"``), or ``None``
    for one OME-Zarr has no name for (``"cycle"``)."""
    symbol = OME_TIME_UNITS.get(str(unit).strip())
    return _OME_ZARR_TIMES[symbol] if symbol else None


def imagej_unit(unit: str) -> str | None:
    """The unit name ImageJ writes for ``unit`` (``"um"`` -> ``"micron"``), or ``None``."""
    short = normalise_unit(unit)
    return _LENGTHS[short][3] if short else None


def unit_from_ome(name: str | None) -> str | None:
    """bigseg's short name of an OME-Zarr axis unit, or ``None``."""
    return normalise_unit(name) if name else None


def convert_length(values: tuple[float, ...], src: str, dest: str) -> tuple[float, ...] | None:
    """``values`` in ``src`` expressed in ``dest`` (both length units), or ``None``."""
    a, b = normalise_unit(src), normalise_unit(dest)
    if a is None or b is None:
        return None
    f = _LENGTHS[a][1] / _LENGTHS[b][1]
    return tuple(float(f"{v * f:.12g}") for v in values)  # 0.65 um -> 650.0 nm, not 650.0000000000001


def _valid(sizes: list[Any], unit: Any) -> Calibration | None:
    short = normalise_unit(unit)
    try:  # a float32 as its shortest text (an HDF5's element_size_um 0.3, not 0.30000001192092896)
        vs = tuple(float(str(s)) if isinstance(s, np.floating) and s.dtype.itemsize < 8 else float(s) for s in sizes)
    except (TypeError, ValueError):
        return None
    if short is None or len(vs) != 3 or not all(math.isfinite(v) and v > 0 for v in vs):
        return None
    return (vs[0], vs[1], vs[2]), short


def _ome_calibration(xml: str, said: list[str] | None = None) -> Calibration | None:
    try:
        return _pixels_calibration(ET.fromstring(xml), said)
    except ET.ParseError:
        return None


def _pixels_calibration(root: ET.Element, said: list[str] | None = None) -> Calibration | None:
    """The voxel size of the first ``Pixels`` element; what it states but cannot be used (some
    axes only, a size that is no positive length) is appended to ``said``."""
    said = [] if said is None else said
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    a = pixels.attrib
    sizes = [a.get(f"PhysicalSize{ax}") for ax in "ZYX"]
    units = [a.get(f"PhysicalSize{ax}Unit", "µm") for ax in "ZYX"]
    stated = ", ".join(f"PhysicalSize{ax} {v} {u}" for ax, v, u in zip("ZYX", sizes, units) if v is not None)
    if None in sizes:
        if stated:
            said.append(f"its OME-XML states {stated} but no PhysicalSize"
                        + "/".join(ax for ax, v in zip("ZYX", sizes) if v is None))
        return None
    if len(set(units)) > 1:  # e.g. z in nm, y and x in µm: all in the unit of x
        try:
            conv = [convert_length((float(v),), u, units[2]) for v, u in zip(sizes, units)]
        except (TypeError, ValueError):
            conv = [None]
        if None in conv:
            said.append(f"its OME-XML {stated} is no voxel size (three positive lengths)")
            return None
        sizes = [c[0] for c in conv]  # type: ignore[index]
    cal = _valid(sizes, units[2])
    if cal is None:
        said.append(f"its OME-XML {stated} is no voxel size (three positive lengths)")
    return cal


def _imagej_calibration(tif: Any, said: list[str] | None = None) -> Calibration | None:
    """The voxel size an ImageJ TIFF states; one stated (a ``unit`` other than ImageJ's
    ``pixel``) but not usable is appended to ``said``."""
    said = [] if said is None else said
    md = tif.imagej_metadata or {}
    page = tif.pages[0]
    unit = md.get("unit")
    calibrated = unit is not None and str(unit).strip().lower() not in ("", "pixel", "pixels")
    res = []
    for tag in ("YResolution", "XResolution"):
        value = page.tags.get(tag)
        num, den = value.value if value is not None else (0, 0)
        if not num:
            if calibrated:
                said.append(f"its ImageJ calibration (unit {unit!r}) has no {tag}")
            return None
        res.append(den / num)  # pixels per unit -> unit per pixel
    spacing = md.get("spacing")
    if spacing is None:
        # ImageJ writes `spacing` only for a stack, and only when it is not 1 (FileSaver.
        # getDescriptionString: `if (fi.nImages>1) { if (fi.pixelDepth!=0.0 && fi.pixelDepth!=1.0)`):
        # a stack without it has z spacing 1 unit. A single image (a slice) never states its depth.
        if int(md.get("images", 1) or 1) <= 1:
            if calibrated:
                said.append(f"its ImageJ calibration gives pixels of {res[1]:g} x {res[0]:g} {unit} but no z spacing "
                            "(ImageJ writes none for a single slice)")
            return None
        spacing = 1.0
    cal = _valid([spacing, *res], unit)
    if cal is None and calibrated:
        said.append(f"its ImageJ calibration (pixel {res[1]:g} x {res[0]:g}, spacing {spacing}, unit {unit!r}) "
                    "is no voxel size (three positive lengths)")
    return cal


def tiff_calibration(path: str) -> Calibration | None:
    """(z, y, x) voxel size and unit stated by an OME-TIFF or ImageJ TIFF, else ``None``."""
    import tifffile

    said: list[str] = []
    cal = None
    try:
        with tifffile.TiffFile(path) as tif:
            if tif.is_ome and tif.ome_metadata:
                cal = _ome_calibration(tif.ome_metadata, said)
            elif tif.is_imagej:
                cal = _imagej_calibration(tif, said)
    except Exception:  # unreadable metadata is no calibration; the pixels were checked elsewhere
        return None
    if said:  # said, not taken for "no voxel size stated" (as for HDF5's element_size_um)
        warnings.warn(f"{path!r}: {said[0]}: ignored; pass the voxel size (--voxel-size)", UserWarning, stacklevel=2)
    return cal


def _ome_origin(xml: str) -> tuple[float, float, float] | None:
    """The first plane's PositionZ/Y/X in voxels of the image's PhysicalSize (None when the file
    states no position, or one in no length unit)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    cal = _pixels_calibration(root)
    plane = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Plane"
                  and all(el.attrib.get(k, "0") == "0" for k in ("TheZ", "TheT", "TheC"))), None)
    if cal is None or plane is None or not any(f"Position{ax}" in plane.attrib for ax in "ZYX"):
        return None
    out = []
    for ax, size in zip("ZYX", cal[0]):
        try:
            at = float(plane.attrib.get(f"Position{ax}", 0.0))
        except ValueError:
            return None
        here = convert_length((at,), plane.attrib.get(f"Position{ax}Unit", "µm"), cal[1])
        if here is None or not math.isfinite(here[0]):
            return None
        out.append(here[0] / size)
    return out[0], out[1], out[2]


def _imagej_origin(md: dict[str, Any]) -> tuple[float, float, float] | None:
    keys = ("zorigin", "yorigin", "xorigin")
    if not any(k in md for k in keys):
        return None
    try:
        out = [0.0 - float(md.get(k, 0.0)) for k in keys]  # ImageJ: calibrated = (pixel - origin) * size; no -0
    except (TypeError, ValueError):
        return None
    return (out[0], out[1], out[2]) if all(math.isfinite(v) for v in out) else None


def tiff_origin(path: str) -> tuple[float, float, float] | None:
    """(z, y, x) index in the scan of the first voxel of an OME-TIFF or ImageJ TIFF, as the file
    states it (a box cut from a scan), else ``None``."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if tif.is_ome and tif.ome_metadata:
                return _ome_origin(tif.ome_metadata)
            if tif.is_imagej:
                return _imagej_origin(tif.imagej_metadata or {})
    except Exception:  # unreadable metadata states no origin; the pixels were checked elsewhere
        return None
    return None


def hdf5_calibration(path: str, dataset: str) -> Calibration | None:
    """(z, y, x) voxel size from the dataset attributes ``voxel_size`` and ``unit`` that
    :func:`bigseg.export` writes (in their unit), else ``element_size_um`` (µm), else ``None``."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = f[dataset].attrs
            value = attrs.get("element_size_um")
            own, own_unit = attrs.get("voxel_size"), attrs.get("unit")
    except (OSError, KeyError):
        return None
    if own is not None and own_unit is not None:
        unit = own_unit.decode() if isinstance(own_unit, bytes) else str(own_unit)
        try:
            mine = _valid(list(np.atleast_1d(own)), unit)
        except TypeError:
            mine = None
        if mine is not None:
            return mine
        if value is None and unit != "voxel":  # said, not taken for "no voxel size stated" (export's "voxel": none)
            warnings.warn(f"{path!r}: the dataset's voxel_size {np.atleast_1d(own).tolist()} {unit} is no (z, y, x) "
                          "voxel size (three positive numbers in a length unit): ignored; pass the voxel size "
                          "(--voxel-size)", UserWarning, stacklevel=2)
    if value is None:
        return None
    sizes = list(np.atleast_1d(value))
    cal = _valid(sizes * 3 if len(sizes) == 1 else sizes, "um")  # one value: isotropic voxels
    if cal is None:  # said, not taken for "no voxel size stated"
        warnings.warn(f"{path!r}: the dataset's element_size_um {sizes} is no (z, y, x) voxel size (three positive "
                      f"numbers in um): ignored; pass the voxel size (--voxel-size)", UserWarning, stacklevel=2)
    return cal
