"""``bigseg.export``: a volume out of OME-Zarr into the files other tools read.

Avizo, Dragonfly, GeoDict, ParaView, Fiji and TauFactor read TIFF stacks, (Big)TIFF files,
HDF5 or NumPy files, not OME-Zarr. The volume is computed one slab of z planes at a time (one
row of its chunks along z, fewer planes when such a row is large), so its size is not bounded by
memory; the voxel size goes where those tools look for it, and :func:`bigseg.ingest` reads it
back (a round trip gives the same array and voxel size). As every bigseg write, the file or
folder appears under its name only once complete.

Formats, by the destination's suffix:

* no suffix: a folder of 2D TIFF slices ``<name>_00000.tif``, ... (Fiji's "Image Sequence"),
  each with the ImageJ calibration (pixel size and z spacing) for uint8, uint16 and float32
  (float16 written as float32: ImageJ opens no half floats),
  and for a box cut from a scan ImageJ's ``xorigin``/``yorigin``/``zorigin`` (each slice its own);
* ``.tif`` / ``.tiff``: one BigTIFF with OME-XML metadata (``PhysicalSizeX/Y/Z``; axes ZYX, or
  TZYX for a series with its times as each plane's ``DeltaT`` and its axes in bigseg's
  annotation, so that a series of one step reads back as one; (T)CZYX for probabilities; a box cut
  from a scan: each plane's ``PositionX/Y/Z``), zlib-compressed; float16 (stored probabilities)
  as float32, which OME-TIFF holds; the pixel size also in the TIFF resolution tags (per cm) for
  readers of plain TIFF;
* ``.h5`` / ``.hdf5``: dataset ``/exchange/data`` (DXchange layout), chunked and compressed,
  with ``element_size_um`` (z, y, x in µm) when the unit is a length, and ``origin_voxels``
  for a box cut from a scan (where it lies; ``ingest`` puts it back there);
* ``.npy``: a NumPy array file (memory-mappable; it holds no voxel size).

Probabilities (``phase``, z, y, x; e.g. ``labels/segmentation_probabilities``; a series'
(t, ``phase``, z, y, x) with its times) go to one ``.tif`` (axes CZYX or TCZYX, each channel
named after its phase), ``.h5`` (``dims`` and ``channel_names`` attributes) or ``.npy`` (phase
first, after t), for other tools: ``ingest`` reads
volumes and series, not them. A boolean mask carrying phase names (``labels == 2`` keeps the
labels') is written as uint8 labels 0, 1 named ``background``, ``foreground``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._parse import parse_choice, parse_path
from ..errors import InputError
from ..ops._dispatch import to_numpy
from ..runtime._lock import held, make_folder
from ..runtime._progress import compute
from ._calibration import OME_TIME_UNITS, convert_length, imagej_unit, normalise_unit, ome_tiff_unit
from ._omezarr import _check_dest, _remove_stale_partials, writing
from ._volume import as_volume, mask_as_labels, numeric_times, origin_voxels, time_unit

__all__ = ["export"]

FORMATS = ("tiff-slices", "tiff", "hdf5", "npy")
_SUFFIXES = {".tif": "tiff", ".tiff": "tiff", ".h5": "hdf5", ".hdf5": "hdf5", ".npy": "npy"}
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
SLAB_BYTES = 256 * 2**20  # a slab larger than this is cut into fewer planes
#: the Namespace of the OME-TIFF MapAnnotation holding what OME has no place for (a series' time unit
#: as given, label images' phase names as JSON)
OME_TIFF_NAMESPACE = "bigseg"


def _format(dest: Path, fmt: str | None) -> str:
    suffix = dest.suffix.lower()
    if fmt is not None:
        fmt = parse_choice("format", fmt, FORMATS)
        if _SUFFIXES.get(suffix, fmt) != fmt:  # an .npy holding HDF5 would be refused by every reader
            raise InputError(f"Expected `format` to agree with the suffix of `dest` {str(dest)!r} ({suffix}: "
                             f"{_SUFFIXES[suffix]}). Got {fmt!r} instead: rename the file or leave `format` out.")
        return fmt
    if suffix == ".zarr":
        raise InputError(f"Expected `dest` to be a TIFF, HDF5 or NumPy file, or a folder of TIFF slices. Got "
                         f"{str(dest)!r}: to write OME-Zarr use `save_volume`.")
    if suffix and suffix not in _SUFFIXES:
        raise InputError(f"Expected `dest` to end in .tif, .tiff, .h5, .hdf5, .npy or to name a folder of TIFF "
                         f"slices. Got {str(dest)!r} (suffix {suffix!r}); or pass `format` (one of {', '.join(FORMATS)}).")
    return _SUFFIXES.get(suffix, "tiff-slices")


def _probabilities(data: Any) -> xr.DataArray | None:
    """``data`` as a (phase, z, y, x) volume, or a (t, phase, z, y, x) series, when it is one
    (e.g. :func:`bigseg.open_volume` of ``labels/NAME_probabilities``): its spatial part (and
    times) checked as any volume's, its phase names kept in ``attrs["channel_names"]``; None for
    anything else."""
    import dask.array as da

    lead = next((d for d in getattr(data, "dims", ()) if d in ("phase", "c")), None)
    if not (isinstance(data, xr.DataArray) and data.ndim in (4, 5) and lead is not None):
        return None
    # (t,) z, y, x in order, voxel size and times
    spatial = numeric_times(as_volume(data.isel({lead: 0}, drop=True), name="data", allow_series=data.ndim == 5))
    dims = (*spatial.dims[:-3], lead, *spatial.dims[-3:])
    arr = data.transpose(*dims).data
    arr = arr if isinstance(arr, da.Array) else da.asarray(arr)
    names = [str(v) for v in data.coords[lead].values] if lead in data.coords else \
        [f"channel{i}" for i in range(data.sizes[lead])]
    attrs = {**spatial.attrs, "channel_names": names}
    attrs.pop("phases", None)  # the phases are the channels here, not label values
    return xr.DataArray(arr, dims=tuple("phase" if d == lead else d for d in dims),
                        coords={"phase": names, **spatial.coords}, attrs=attrs)


def _slabs(vol: xr.DataArray) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """(leading index, block) of consecutive z planes of ``vol``, computed one slab at a time
    (per time step for a series)."""
    arr = vol.data
    lead = arr.shape[:-3]
    nz, ny, nx = arr.shape[-3:]
    plane = ny * nx * arr.dtype.itemsize
    step = max(1, min(max(arr.chunks[-3]), SLAB_BYTES // max(plane, 1)))
    for t in np.ndindex(*lead):
        z_edges = np.cumsum((0, *arr.chunks[-3]))
        for z0, z1 in zip(z_edges[:-1], z_edges[1:]):
            for a in range(int(z0), int(z1), step):
                b = min(a + step, int(z1))
                (block,) = compute(arr[t + (slice(a, b),)], progress=False)
                yield t + (a,), to_numpy(block)  # CuPy blocks too (np.asarray refuses them)


def _planes(vol: xr.DataArray, bar: Any) -> Iterator[np.ndarray]:
    for _, block in _slabs(vol):
        for plane in block:
            bar.update(1)  # before: a writer that takes as many planes as it needs never resumes after the last
            yield plane


#: the ImageJ property of TIFF slices that holds a label image's phase names (JSON)
PHASES_PROPERTY = "bigseg.phases"


def label_phases(vol: xr.DataArray) -> str:
    """A label image's phase names as the exported files state them (JSON text); "" for an image."""
    if vol.attrs.get("phases") is None or not np.issubdtype(vol.dtype, np.integer):
        return ""
    return json.dumps([str(p) for p in vol.attrs["phases"]])


def _tiff_rational(x: float) -> tuple[int, int]:
    """``x`` as a TIFF RATIONAL (two uint32): the nearest fraction, so that 1/25 is stored as 1/25
    (tifffile < 2026.2.20 scales the float's binary ratio, 171798692/4294967295: 24.99999997 nm read back)."""
    f = Fraction(float(x)).limit_denominator(max(1, int(4294967295 // max(1.0, float(x)))))
    return f.numerator, f.denominator


def _tiff_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype TIFF files of ``dtype`` hold: float16 (stored probabilities, uncertainty) as
    float32, which OME-TIFF and ImageJ/Fiji read (half floats open in neither)."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def _write_slices(vol: xr.DataArray, tmp: Path, name: str, vs: tuple[float, ...] | None, unit: str | None,
                  bar: Any) -> None:
    import tifffile

    tmp.mkdir()
    nz = vol.shape[-3]
    width = max(5, len(str(nz - 1)))
    dtype = _tiff_dtype(vol.dtype)
    imagej = vs is not None and dtype in _IMAGEJ_DTYPES
    first = origin_voxels(vol)
    phases = label_phases(vol)
    for z, plane in enumerate(_planes(vol, bar)):
        kwargs: dict[str, Any] = {}
        if imagej:  # a box cut from a scan: ImageJ's origins (pixels, negative), each slice its own z
            at = {k: -o for k, o in zip(("zorigin", "yorigin", "xorigin"), (first[0] + z, first[1], first[2])) if o}
            # labels: their names as an ImageJ property (Image > Show Info), read back by ingest
            named = {"Properties": {PHASES_PROPERTY: phases}} if phases else {}
            kwargs = {"imagej": True, "resolution": (_tiff_rational(1.0 / vs[2]), _tiff_rational(1.0 / vs[1])),
                      "metadata": {"spacing": vs[0], "unit": imagej_unit(unit), **at, **named}}
        elif phases:  # tifffile's JSON description
            kwargs = {"metadata": {"phases": json.loads(phases)}}
        tifffile.imwrite(tmp / f"{name}_{z:0{width}d}.tif", plane.astype(dtype, copy=False), **kwargs)


def _write_tiff(vol: xr.DataArray, tmp: Path, vs: tuple[float, ...] | None, unit: str | None, bar: Any) -> None:
    import tifffile

    dims = "".join("C" if d == "phase" else str(d).upper() for d in vol.dims)
    meta: dict[str, Any] = {"axes": dims if len(dims) == vol.ndim and set(dims) <= set("TCZYX") else "TZYX"[-vol.ndim:]}
    if "channel_names" in vol.attrs:  # probabilities: each channel named after its phase
        meta["Channel"] = {"Name": list(vol.attrs["channel_names"])}
    if vs is not None:
        for ax, v in zip("ZYX", vs):
            meta[f"PhysicalSize{ax}"] = v
            meta[f"PhysicalSize{ax}Unit"] = ome_tiff_unit(unit)
    planes = int(np.prod(vol.shape[:-2]))
    per_t = int(np.prod([n for d, n in vol.sizes.items() if d not in ("t", "y", "x")]))
    if "t" in vol.dims and "t" in vol.coords:  # a series' times: each plane's OME DeltaT (pages in t, z order)
        meta["Plane"] = {"DeltaT": np.repeat(np.asarray(vol.coords["t"].values, np.float64), per_t).tolist()}
        t_unit = OME_TIME_UNITS.get(time_unit(vol.coords["t"]))
        if t_unit:  # a unit OME knows (else none: OME readers would take seconds)
            meta["Plane"]["DeltaTUnit"] = [t_unit] * planes
    annotation: dict[str, str] = {}  # what OME has no place for, read back by ingest
    if "t" in vol.dims:  # a series, also of one time step (OME states a T axis of length 1 for any volume)
        annotation["axes"] = meta["axes"]
    if "t" in vol.dims and "t" in vol.coords and time_unit(vol.coords["t"]):
        annotation["time_unit"] = time_unit(vol.coords["t"])  # as given ("cycle", "minute"), before DeltaTUnit
    phases = label_phases(vol)
    if phases:  # labels: their names
        annotation["phases"] = phases
    if annotation:
        meta["MapAnnotation"] = {"Namespace": OME_TIFF_NAMESPACE, "Value": annotation}
    first = origin_voxels(vol)
    if vs is not None and any(first):  # a box cut from a scan: each plane's position in it
        z = (first[0] + np.arange(planes) % vol.sizes["z"]) * vs[0]
        meta.setdefault("Plane", {}).update(
            {"PositionZ": z.tolist(), "PositionY": [first[1] * vs[1]] * planes, "PositionX": [first[2] * vs[2]] * planes,
             **{f"Position{ax}Unit": [ome_tiff_unit(unit)] * planes for ax in "ZYX"}})
    # the pixel size in the TIFF resolution tags too (pixels per cm), for readers of TIFF that do
    # not parse OME-XML (ParaView's, MATLAB's imfinfo, Avizo, Dragonfly): else 1 pixel per no unit
    cm = convert_length(vs[1:], unit, "cm") if vs is not None and unit else None
    per_cm = (1.0 / cm[1], 1.0 / cm[0]) if cm and all(c > 0 for c in cm) else (0.0,)  # x, y
    fits = all(2.0**-31 < r < 2.0**31 for r in per_cm)  # a TIFF rational (not for picometre pixels)
    res = {"resolution": tuple(_tiff_rational(r) for r in per_cm), "resolutionunit": "CENTIMETER"} if fits else {}
    dtype = _tiff_dtype(vol.dtype)  # OME-TIFF has no float16
    planes_out = (p.astype(dtype, copy=False) for p in _planes(vol, bar))
    with tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tif:
        tif.write(planes_out, shape=vol.shape, dtype=dtype, photometric="minisblack",
                  compression="zlib", metadata=meta, **res)


def _write_hdf5(vol: xr.DataArray, tmp: Path, vs: tuple[float, ...] | None, unit: str | None, bar: Any) -> None:
    import h5py

    chunks = tuple(min(64, n) for n in vol.shape[-3:])
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset("exchange/data", shape=vol.shape, dtype=vol.dtype,
                              chunks=(1,) * (vol.ndim - 3) + chunks, compression="gzip", compression_opts=4)
        um = convert_length(vs, unit, "um") if vs is not None and unit else None
        if um is not None:
            ds.attrs["element_size_um"] = np.asarray(um, np.float64)
        ds.attrs["voxel_size"] = np.asarray(vol.attrs.get("voxel_size", (1.0, 1.0, 1.0)), np.float64)
        ds.attrs["unit"] = str(vol.attrs.get("unit", "voxel"))
        if vol.attrs.get("phases"):
            ds.attrs["phases"] = [str(p) for p in vol.attrs["phases"]]
        if "channel_names" in vol.attrs:  # probabilities: an axis is the phase, `dims` says which (ingest refuses them)
            ds.attrs["dims"] = ",".join(str(d) for d in vol.dims)
            ds.attrs["channel_names"] = list(vol.attrs["channel_names"])
        first = origin_voxels(vol)
        if any(first):  # a box cut from a scan: where it lies, in voxels (ingest puts it back there)
            ds.attrs["origin_voxels"] = np.asarray(first, np.float64)
        if "t" in vol.dims and "t" in vol.coords:  # a series' times (and their unit), read back by ingest
            ds.attrs["times"] = np.asarray(vol.coords["t"].values, np.float64)
            if time_unit(vol.coords["t"]):
                ds.attrs["time_unit"] = time_unit(vol.coords["t"])
        for index, block in _slabs(vol):
            t, z = index[:-1], index[-1]
            ds[t + (slice(z, z + len(block)),)] = block
            bar.update(len(block))


def _write_npy(vol: xr.DataArray, tmp: Path, bar: Any) -> None:
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=vol.dtype, shape=vol.shape)
    for index, block in _slabs(vol):
        t, z = index[:-1], index[-1]
        out[t + (slice(z, z + len(block)),)] = block
        bar.update(len(block))
    out.flush()
    del out


def export(
    data: Any,
    dest: str | os.PathLike,
    *,
    format: str | None = None,  # noqa: A002 - the word users know
    overwrite: bool = False,
    progress: bool = True,
) -> str:
    """Write a volume (image or labels, 3D or a (t, z, y, x) series) as TIFF slices, one
    BigTIFF, HDF5 or ``.npy``, slab by slab, with its voxel size.

    Parameters
    ----------
    data : DataArray (e.g. :func:`bigseg.open_volume` of an image or ``labels/NAME``), dask or
        NumPy array
    dest : file (``.tif``, ``.tiff``, ``.h5``, ``.hdf5``, ``.npy``) or folder of TIFF slices
        (no suffix); see the module docstring for what each holds
    format : ``"tiff-slices"``, ``"tiff"``, ``"hdf5"`` or ``"npy"`` instead of the suffix
    overwrite : replace an existing ``dest``
    progress : a progress bar on stderr (on a terminal drawn in place, in a log a line every 30 s); False: none

    Returns
    -------
    ``dest`` as a string. Memory: one slab of z planes (at most one chunk row along z, and
    about 256 MiB), never the volume.
    """
    from tqdm.auto import tqdm

    from ..runtime._progress import bar_stream, showing

    dest_p = parse_path("dest", dest)
    fmt = _format(dest_p, format)
    vol = _probabilities(data)
    if vol is None:
        vol = numeric_times(as_volume(data, name="data", allow_series=True))
        if vol.dtype == np.bool_ and vol.attrs.get("phases") is not None:  # a mask with names: labels 0, 1
            vol = mask_as_labels(vol)
    elif fmt == "tiff-slices":
        raise InputError(f"Expected one .tif (axes CZYX), .h5 or .npy for probabilities (one channel per phase). Got "
                         f"a folder of TIFF slices {str(dest_p)!r}: export one phase as slices with "
                         f"data.sel(phase=NAME).")
    if fmt == "tiff-slices" and vol.ndim == 4:
        raise InputError(f"Expected a 3D volume for a folder of TIFF slices. Got a series of shape {vol.shape}: "
                         "export it to one .tif (axes TZYX), .h5 or .npy, or one time step at a time (vol.isel(t=i)).")
    if fmt == "tiff" and vol.dtype in (np.int64, np.uint64):  # OME-XML has no 64-bit integers (tifffile: OmeXmlError)
        raise InputError(f"Expected `data` of a dtype an OME-TIFF holds (8-32-bit integers, float32/64) for "
                         f"{dest_p.name}. Got {vol.dtype}: export to .h5, .npy or TIFF slices, or cast the values "
                         f"first (e.g. data.astype('int32') where they fit).")
    _check_dest(dest_p, overwrite, "dest", kind="tiff-slices" if fmt == "tiff-slices" else "file")
    unit = normalise_unit(vol.attrs.get("unit"))
    vs = tuple(float(v) for v in vol.attrs["voxel_size"]) if unit else None
    if vs is None and fmt in ("tiff-slices", "tiff", "hdf5"):
        warnings.warn(f"`data` has no physical voxel size (unit {vol.attrs.get('unit')!r}): {dest_p.name} "
                      "is written without one.", stacklevel=2)
    if fmt == "tiff-slices" and vs is not None and _tiff_dtype(vol.dtype) not in _IMAGEJ_DTYPES:
        warnings.warn(f"TIFF slices of dtype {vol.dtype} cannot carry the ImageJ calibration (uint8, uint16, "
                      f"float32 can): the voxel size {vs} {unit} is not stored in them.", stacklevel=2)
    make_folder(dest_p.parent, target=dest_p, argument="dest")  # its folder, as for every other output
    n_planes = int(np.prod(vol.shape[:-2]))
    stream, leave = bar_stream()  # into a log file: a line each 30 s
    bar = tqdm(total=n_planes, desc=f"writing {dest_p.name}", unit="plane", disable=not showing(progress),
               file=stream, leave=leave)
    with held(dest_p, argument="dest"), bar:  # one export of dest at a time
        _remove_stale_partials(dest_p, resumable=False)  # the hidden file or folder a killed export left
        with writing(dest_p) as tmp:
            if fmt == "tiff-slices":
                _write_slices(vol, tmp, dest_p.name, vs, unit, bar)
            elif fmt == "tiff":
                _write_tiff(vol, tmp, vs, unit, bar)
            elif fmt == "hdf5":
                _write_hdf5(vol, tmp, vs, unit, bar)
            else:
                _write_npy(vol, tmp, bar)
    return str(dest_p)
