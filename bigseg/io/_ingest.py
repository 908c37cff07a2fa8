"""Ingest tomograms from TIFF stacks, HDF5, raw binary, ``.npy`` and zarr into OME-Zarr.

Each source is wrapped in a small picklable *reader* (an object with ``shape``, ``dtype`` and
``__getitem__``) that opens the file inside the task and reads only the requested block, so
``dask.array.from_array`` reads in parallel on any scheduler and no task ever holds more than
its block. Everything about the source is checked before the first byte is written.
"""

from __future__ import annotations

import glob as globmod
import logging
import math
import os
import re
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from .._parse import parse_chunks, parse_dtype, parse_nonnegative_int, parse_path, parse_positive_int, parse_tuple, parse_voxel_size
from ..errors import BigsegError, InputError, SourceNotFoundError, VolumeFormatError
from ..runtime._budget import check_stored_chunk
from ._calibration import (convert_length, hdf5_calibration, normalise_unit, parse_unit, tiff_calibration,
                           tiff_origin)
from ._omezarr import _check_dest, open_named, open_volume, write_volume
from ._volume import crop_box, is_zarr_store, make_volume, recalibrated, refuse_replacing, state_values

__all__ = ["ingest", "read_source", "open_source", "TIFF_SUFFIXES", "HDF5_SUFFIXES"]

TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".cxi")
RAW_SUFFIXES = (".raw", ".bin", ".dat", ".vol")
DEFAULT_HDF5_DATASET = "/exchange/data"  # APS Data Exchange layout


def natural_key(path: str | os.PathLike) -> list:
    """Sort key of a name or path with its numbers as numbers, part by part (s_2 before s_10,
    cycle_2/recon.h5 before cycle_10/recon.h5)."""
    return [[int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", part)] for part in Path(path).parts]


def _index_to_slices(index: Any, shape: tuple[int, ...]) -> tuple[slice, ...]:
    if not isinstance(index, tuple):
        index = (index,)
    index = index + (slice(None),) * (len(shape) - len(index))
    out = []
    for idx, n in zip(index, shape):
        if not isinstance(idx, slice):
            raise TypeError("readers support only slice indexing")
        out.append(slice(*idx.indices(n)))
    return tuple(out)


@contextmanager
def _reading(kind: str, path: str, index: Any, shape: tuple[int, ...]):
    """Name the file (and the z range) a reader's block could not be read from: a compressed
    chunk or slice damaged in the middle of a file passes every check at opening and failed only
    in a worker, deep in zlib / h5py ("Error -3 while decompressing data", "filter returned
    failure during read"), without the file's name."""
    try:
        yield
    except (BigsegError, MemoryError):
        raise
    except Exception as exc:  # zlib.error, OSError, ValueError, tifffile's and imagecodecs' own, ...
        z = _index_to_slices(index, shape)[-3] if len(shape) >= 3 else None
        at = f" (z {z.start}:{z.stop})" if z is not None else ""
        kind_of = type(exc).__name__ if type(exc).__module__ == "builtins" else \
            f"{type(exc).__module__.split('.')[0]}.{type(exc).__name__}"  # zlib.error, not a bare "error"
        raise VolumeFormatError(f"Cannot read {kind} file {path!r}{at}: {kind_of}: {exc}. A damaged file "
                                f"(cut short or overwritten): copy it again from its source.") from exc


@dataclass(frozen=True)
class TiffStackReader:
    """One 2D TIFF file per z slice (a folder or a glob).

    ``offsets[z]`` is the byte offset of slice z's pixels when they are stored uncompressed and
    contiguous (the usual beamline output): such slices are memory-mapped directly and only the
    requested rows are read. Compressed slices are decoded whole and cropped.
    """

    files: tuple[str, ...]
    shape: tuple[int, int, int]
    dtype: np.dtype
    offsets: tuple[int | None, ...] = ()
    file_dtype: np.dtype | None = None  # with the file's byte order
    first_pages: tuple[int, ...] = ()  # per file, the page after a reduced-resolution preview (thumbnail)

    @property
    def ndim(self) -> int:
        return 3

    def __getitem__(self, index: Any) -> np.ndarray:
        import tifffile

        zs, ys, xs = _index_to_slices(index, self.shape)
        zr = range(*zs.indices(self.shape[0]))
        out = np.empty((len(zr), ys.stop - ys.start, xs.stop - xs.start), self.dtype)
        for k, z in enumerate(zr):
            off = self.offsets[z] if self.offsets else None
            if off is not None:
                mm = np.memmap(self.files[z], dtype=self.file_dtype, mode="r", offset=off, shape=self.shape[1:])
                out[k] = mm[ys, xs]
                del mm
            else:
                with _reading("TIFF", self.files[z], (slice(z, z + 1), ys, xs), self.shape):
                    out[k] = tifffile.imread(self.files[z], key=self.first_pages[z] if self.first_pages else 0)[ys, xs]
        return out


def _canonical(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``block`` as ``dtype``, also under its canonical name: tifffile gives int64 as numpy's
    longlong ('q'), which zarr does not map (same bytes: a view)."""
    block = block.astype(dtype, copy=False)
    return block.view(dtype) if block.dtype.char != dtype.char else block


@dataclass(frozen=True)
class MultiPageTiffReader:
    """A multi-page (Big)TIFF file, one page per z slice (pages in t, z order for a TZYX
    series, as an OME-TIFF states); ``first_page``: the first of them, after reduced-resolution
    previews (thumbnails) that some writers put first."""

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    first_page: int = 0

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        import tifffile

        sl = _index_to_slices(index, self.shape)
        if not self.first_page:  # (tifffile maps the file's first series: with a preview first, that one)
            try:
                mm = tifffile.memmap(self.path, mode="r")
                offset, file_dtype = mm.offset, mm.dtype
                c_order = mm.flags.c_contiguous and mm.size == math.prod(self.shape)
                del mm  # (read, not mapped: :func:`_read_box`)
            except ValueError:  # compressed or scattered pixels: page by page
                c_order = False
            if c_order and all(s.step == 1 for s in sl):
                with _reading("TIFF", self.path, index, self.shape):
                    block = _read_box(self.path, offset, self.shape, file_dtype, sl)
                return _canonical(block.astype(file_dtype.newbyteorder("="), copy=False), self.dtype)
        with _reading("TIFF", self.path, index, self.shape), tifffile.TiffFile(self.path) as tif:
            if len(tif.pages) - self.first_page == 1:  # one 3D (volumetric) page: read whole, then cut
                return _canonical(tif.pages[self.first_page].asarray().reshape(self.shape)[sl], self.dtype)
            lead = [range(*s.indices(n)) for s, n in zip(sl[:-2], self.shape[:-2])]
            pages = [tif.pages[self.first_page + int(np.ravel_multi_index(ix, self.shape[:-2]))].asarray()[sl[-2:]]
                     for ix in product(*lead)]
        return _canonical(np.stack(pages).reshape([len(r) for r in lead] + list(pages[0].shape)), self.dtype)


@dataclass(frozen=True)
class Hdf5Reader:
    path: str
    dataset: str
    shape: tuple[int, ...]
    dtype: np.dtype
    stored: tuple[int, ...] | None = None  # its chunks (each read decodes whole ones), None: contiguous

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        import h5py

        with _reading("HDF5", self.path, index, self.shape), h5py.File(self.path, "r") as f:
            return _hdf5_dataset(f, self.dataset)[_index_to_slices(index, self.shape)]


@dataclass(frozen=True)
class MemmapReader:
    """Raw binary (``offset`` header bytes skipped) or ``.npy``, read through a memory map."""

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int = 0
    npy: bool = False

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        sl = _index_to_slices(index, self.shape)
        mm = np.load(self.path, mmap_mode="r") if self.npy else None
        offset = self.offset if mm is None else mm.offset
        if len(sl) < 2 or any(s.step != 1 for s in sl) or (mm is not None and not mm.flags.c_contiguous):
            if mm is None:  # (steps, a Fortran-ordered .npy: not whole rows; ingest never asks those)
                mm = np.memmap(self.path, dtype=self.dtype, mode="r", shape=self.shape, offset=self.offset)
            block = np.array(mm[sl])
            del mm
            return block.astype(self.dtype.newbyteorder("="), copy=False)
        del mm
        with _reading("raw binary" if not self.npy else "NumPy .npy", self.path, index, self.shape):
            block = _read_box(self.path, offset, self.shape, self.dtype, sl)
        return block.astype(self.dtype.newbyteorder("="), copy=False)


def _read_box(path: str, offset: int, shape: tuple[int, ...], dtype: np.dtype, sl: tuple[slice, ...]) -> np.ndarray:
    """The box ``sl`` (slices of step 1) of a C-ordered array of ``shape`` and ``dtype`` stored
    from byte ``offset`` of ``path``, read plane by plane: each plane's rows ``sl[-2]`` in one read
    (whole rows, then cut to ``sl[-1]``). At most the box and one plane's rows are in memory: a
    memory map of the whole file kept every page the box's rows touch resident until it was
    closed (a 128³ float32 block of 512² planes raised the resident memory by 111–134 MiB, 14-17×
    the block), and a dask worker counts those pages against its memory limit."""
    *lead, ys, xs = sl
    Y, X = shape[-2:]
    ny, nx = ys.stop - ys.start, xs.stop - xs.start
    planes = [range(s.start, s.stop) for s in lead]
    out = np.empty([len(r) for r in planes] + [max(ny, 0), max(nx, 0)], dtype)
    if out.size == 0:
        return out
    flat = out.reshape(-1, ny, nx)
    rows = np.empty((ny, X), dtype) if nx < X else None
    with open(path, "rb") as f:
        for k, ix in enumerate(product(*planes)):
            plane = int(np.ravel_multi_index(ix, shape[:-2])) if ix else 0
            buf = flat[k] if rows is None else rows
            f.seek(offset + (plane * Y + ys.start) * X * dtype.itemsize)
            if f.readinto(memoryview(buf).cast("B")) != buf.nbytes:
                raise OSError(f"the file ends before plane {plane} of shape {tuple(shape)} ({dtype})")
            if rows is not None:
                flat[k] = rows[:, xs]
    return out


class _PageListErrors(logging.Handler):
    """Collects tifffile's errors about a TIFF's chain of pages (an offset past the end of the
    file, a corrupted tag list): tifffile logs them and goes on with the pages read so far."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("<tifffile.TiffPages"):
            self.messages.append(msg.split("> ", 1)[-1])


@contextmanager
def _page_list_errors():
    """The messages of :class:`_PageListErrors` logged inside the ``with`` block."""
    handler = _PageListErrors()
    log = logging.getLogger("tifffile")
    log.addHandler(handler)
    try:
        yield handler.messages
    finally:
        log.removeHandler(handler)


def _tiff_page_info(path: str) -> tuple[tuple[int, ...], np.dtype, int, int | None, np.dtype, int]:
    """(page shape, dtype, page count, offset, file dtype, first page) of a TIFF, checking for
    truncation.

    Leading reduced-resolution pages (a preview or thumbnail, NewSubfileType bit 0) are not
    counted: ``first page`` is the first full-resolution one. ``offset`` is the byte offset of
    its pixels if they can be memory-mapped (uncompressed, contiguous), else ``None``; ``file
    dtype`` carries the file's byte order.
    """
    import tifffile

    try:
        size = os.path.getsize(path)
        with tifffile.TiffFile(path) as tif, _page_list_errors() as broken:
            pages = tif.pages
            n = len(pages)
            if n == 0:
                raise VolumeFormatError(f"TIFF file {path!r} has no pages.")
            if broken:  # tifffile stops at the break and reads the pages before it as the whole file
                raise VolumeFormatError(f"TIFF file {path!r} is truncated or damaged: its list of pages breaks after "
                                        f"page {n - 1} ({broken[0]}), so {n} of its pages could be read. Copy the "
                                        "file again from its source.")
            skip = 0
            while skip < n - 1 and pages[skip] is not None and int(getattr(pages[skip], "subfiletype", 0)) & 1:
                skip += 1  # a preview before the planes
            first = pages[skip]
            if getattr(first, "samplesperpixel", 1) > 1:  # colour: (y, x, 3) would read as a volume 3 voxels deep
                raise InputError(f"Expected `source` to hold grey values. Got {path!r}, a colour TIFF ("
                                 f"{first.samplesperpixel} samples per pixel, {first.photometric.name}): convert it "
                                 "to greyscale or save the channel that holds the scan.")
            # numpy's longlong ('q') is int64 under another name, which zarr does not map: the canonical one
            shape, dtype = tuple(first.shape), np.dtype(np.dtype(first.dtype).str)
            offset = int(first.dataoffsets[0]) if first.is_memmappable and first.dataoffsets else None
            file_dtype = dtype.newbyteorder(tif.byteorder)
            for i in range(skip, n):
                page = pages[i]
                if page is None:
                    raise VolumeFormatError(f"TIFF file {path!r}: page {i} cannot be read.")
                if tuple(page.shape) != shape or np.dtype(np.dtype(page.dtype).str) != dtype:
                    raise VolumeFormatError(
                        f"TIFF file {path!r}: page {i} has shape {tuple(page.shape)} and dtype {page.dtype}, "
                        f"page {skip} has {shape} and {dtype}."
                    )
                end = max((o + c for o, c in zip(page.dataoffsets, page.databytecounts)), default=0)
                if end > size:
                    raise VolumeFormatError(
                        f"TIFF file {path!r} is truncated: page {i} needs {end} bytes, the file has {size}."
                    )
    except (VolumeFormatError, InputError):
        raise
    except Exception as exc:  # tifffile raises TiffFileError, struct.error, ValueError, ...
        raise VolumeFormatError(f"Cannot read TIFF file {path!r}: {exc}") from None
    return shape, dtype, n - skip, offset, file_dtype, skip


def _tiff_series_shape(path: str, n: int, page_shape: tuple[int, ...]) -> tuple[int, ...]:
    """(t, z, y, x) when the file states TZYX axes for its ``n`` pages (an OME-TIFF series, as
    :func:`bigseg.export` writes), else (n, y, x)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, tuple(series.shape)
            if series.kind in ("ome", "imagej"):  # their T, Z and C axes, also those of length 1
                axes, shape = series.get_axes(False), tuple(series.get_shape(False))
    except Exception:  # the pages were checked already; unreadable series metadata is no series
        return (n, *page_shape)
    sizes = dict(zip(axes, shape))
    # a series bigseg exported states its axes: its T axis counts also of length 1 (one time step)
    root = _ome_tiff_root(path) if series.kind == "ome" else None
    series_axis = "T" if root is not None and "T" in _bigseg_annotation(root, "axes") else ""
    lead = "".join(a for a in axes if a in "TZC" and (sizes[a] > 1 or a == series_axis))  # the page axes, in file order
    if lead == "C" and series.kind == "imagej":  # tifffile's ImageJ axes of a 3D array written without `axes`
        return (n, *page_shape)
    if sizes.get("C", 1) > 1:  # would read as one volume of the channels stacked along z
        raise InputError(f"Expected `source` to hold one volume or a series. Got {path!r} with {sizes['C']} "
                         f"channels (axes {series.axes}; e.g. probabilities as bigseg export writes them, or a "
                         "multi-channel image): ingest the image or the labels instead, or one channel saved on its own.")
    if lead == "ZT":  # z outer, t inner: read in page order, each volume would mix the times
        raise InputError(f"Expected `source` to store a series' pages time point by time point (axes TZYX). Got "
                         f"{path!r} with axes {series.axes} (each time point's planes spread through the file): save it "
                         "as TZYX (Fiji: Hyperstacks > Re-order Hyperstack), or each time point on its own.")
    if "T" in lead and sizes["T"] * sizes.get("Z", 1) == n and (sizes.get("Y"), sizes.get("X")) == tuple(page_shape):
        return (sizes["T"], sizes.get("Z", 1), *page_shape)  # a series, as the file states (also of one plane each)
    return (n, *page_shape)


def tiff_slices(folder: Path) -> list[Path]:
    """The TIFF files in ``folder``, but hidden ones: macOS writes ``._NAME`` beside each file it
    copies to a disk or share of another file system (exFAT, SMB, NFS), its metadata, no TIFF
    (was: a folder of slices copied from a Mac could not be read, "not a TIFF file")."""
    return [f for f in folder.iterdir() if f.suffix.lower() in TIFF_SUFFIXES and not f.name.startswith(".")
            and f.is_file()]


def _tiff_stack(files: list[str], what: str) -> TiffStackReader:
    if not files:
        raise SourceNotFoundError(f"Expected `source` to contain TIFF slices. Got {what!r}, which has none.")
    files = sorted(files, key=natural_key)
    shape0, dtype0, n0, off0, fdt0, first0 = _tiff_page_info(files[0])
    if len(shape0) != 2:
        raise VolumeFormatError(f"Expected 2D TIFF slices. Got shape {shape0} in {files[0]!r}.")
    _one_page(n0, files[0], what)
    offsets, firsts = [off0], [first0]
    for f in files[1:]:
        shape, dtype, n, off, fdt, first = _tiff_page_info(f)
        _one_page(n, f, what)
        offsets.append(off if fdt == fdt0 else None)
        firsts.append(first)
        if shape != shape0 or dtype != dtype0:
            raise VolumeFormatError(
                f"Expected every TIFF slice to have shape {shape0} and dtype {dtype0} (as {files[0]!r}). "
                f"Got shape {shape} and dtype {dtype} in {f!r}."
            )
    _warn_patterns(files, what)
    _warn_gaps(files, what)
    files = [os.path.abspath(f) for f in files]  # read by workers that may run in another working directory
    return TiffStackReader(tuple(files), (len(files), *shape0), dtype0, tuple(offsets), fdt0,  # type: ignore[arg-type]
                           tuple(firsts) if any(firsts) else ())


def _one_page(n: int, f: str, what: str) -> None:
    if n != 1:  # a slice of the stack would be its first page only
        raise VolumeFormatError(f"Expected TIFF slices of one page each in {what!r}. Got {n} pages in {f!r}: a "
                                "folder of whole scans? Give one file, or a glob of them for a series.")


def _warn_patterns(files: list[str], what: str) -> None:
    """Warn when the slices' names follow more than one pattern (their numbers aside): two scans,
    or a scan and copies or previews of some of its slices, in one folder (recon_0000.tif ... beside
    recon_old_0000.tif ..., or slice_0007 (copy).tif) would be stacked as one volume."""
    import re

    groups: dict[str, list[str]] = {}
    for f in files:
        groups.setdefault(re.sub(r"\d+", "#", Path(f).name), []).append(Path(f).name)
    if len(groups) < 2:
        return
    said = ", ".join(f"{p!r} ({len(n)} file{'s' if len(n) > 1 else ''}{', ' + repr(n[0]) if len(n) <= 2 else ''})"
                     for p, n in sorted(groups.items(), key=lambda g: -len(g[1]))[:4])
    warnings.warn(f"The TIFF slices of {what!r} are named in {len(groups)} patterns (# a number): {said}"
                  f"{' ...' if len(groups) > 4 else ''}. They are stacked as one volume of {len(files)} planes in "
                  "name order: if the folder holds more than one scan, or copies of slices, pass a quoted glob that "
                  "matches one scan's slices only.", stacklevel=4)


def _warn_gaps(files: list[str], what: str) -> None:
    """Warn when the slices' numbers (``name_0001.tif``, ``name_0002.tif``, ...; one prefix)
    skip some: the stack would close the gap, and everything below it would sit too high."""
    import re

    parts = [re.fullmatch(r"(.*?)(\d+)(\D*)", Path(f).name) for f in files]
    if len(files) < 3 or any(m is None for m in parts) or len({(m[1], m[3]) for m in parts}) != 1:
        return
    numbers = np.array([int(m[2]) for m in parts])
    steps = np.diff(numbers)
    step = int(np.bincount(steps[steps > 0]).argmax()) if (steps > 0).any() else 0
    jumps = np.flatnonzero(steps != step)
    if step and jumps.size:
        said = ", ".join(f"{numbers[i]} to {numbers[i + 1]}" for i in jumps[:3]) + (" ..." if jumps.size > 3 else "")
        warnings.warn(f"The TIFF slices of {what!r} are numbered in steps of {step} but jump from {said}: slices "
                      f"missing there are not filled in (the volume has {len(files)} planes: those after a gap come "
                      "as many planes early). Check the folder.", stacklevel=4)


def _hdf5_objects(f: Any, kind: type) -> dict[str, Any]:
    """The objects of ``kind`` (``h5py.Dataset``, ``h5py.Group``) in an open HDF5 file by path,
    each once: also those reached through a soft or external link (NeXus links its detector
    data, /entry/data/data, that way), under the first path that reaches them; a link to
    nothing is left out."""
    import h5py

    found: dict[str, Any] = {}
    seen: set = set()

    folder = _hdf5_folder(f.filename)

    def visit(name: str, link: Any) -> None:
        if isinstance(link, h5py.ExternalLink) and _outside(folder, os.path.dirname(f.filename), link.filename):
            return  # a file elsewhere on this machine is not opened (:func:`_check_hdf5_reads`)
        try:
            obj = f.get(name)
        except (KeyError, OSError, ValueError):  # a dangling soft link, an external file not there
            return
        if obj is not None and _outside(folder, "", obj.file.filename):  # (reached through a soft link)
            return
        if isinstance(obj, kind) and obj.id not in seen:
            seen.add(obj.id)
            found["/" + name] = obj

    f.visititems_links(visit)
    return found


def _hdf5_datasets(f: Any) -> dict[str, Any]:
    """The datasets of an open HDF5 file by path, each once (:func:`_hdf5_objects`)."""
    import h5py

    return _hdf5_objects(f, h5py.Dataset)


def _nexus_signal(f: Any) -> str | None:
    """The 3D/4D dataset a NeXus file names as its plottable data: the ``signal`` of the NXdata
    group its ``default`` attributes lead to (root -> NXentry -> NXdata), else of its only NXdata
    group that names one; None when it names none (or several)."""
    import h5py

    def text(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    def signal(group: Any) -> str | None:
        sig = group.attrs.get("signal")
        obj = group.get(text(sig)) if sig is not None else None
        return obj.name if isinstance(obj, h5py.Dataset) and obj.ndim in (3, 4) and 0 not in obj.shape else None

    group = f
    for _ in range(2):  # root -> entry -> data, by their `default` attributes
        step = group.attrs.get("default")
        nxt = group.get(text(step)) if step is not None else None
        if not isinstance(nxt, h5py.Group):
            break
        group = nxt
    if text(group.attrs.get("NX_class", "")) == "NXdata" and (found := signal(group)):
        return found
    named = {sig for g in _hdf5_objects(f, h5py.Group).values()
             if text(g.attrs.get("NX_class", "")) == "NXdata" and (sig := signal(g))}
    return named.pop() if len(named) == 1 else None


def _hdf5(path: str, dataset: str | None) -> Hdf5Reader:
    import h5py

    name = dataset or DEFAULT_HDF5_DATASET
    try:
        with h5py.File(path, "r") as f:
            _check_hdf5_reads(f, name, path)  # (before `name in f` follows its links)
            if name not in f or not isinstance(f[name], h5py.Dataset):
                present = {n: o.shape for n, o in _hdf5_datasets(f).items()}
                volumes = [n for n, shp in present.items() if len(shp) in (3, 4) and 0 not in shp]
                nexus = _nexus_signal(f) if dataset is None else None
                if nexus is not None:  # a NeXus file's plottable data (its NXdata group's `signal`)
                    name = nexus
                elif dataset is None and len(volumes) == 1:  # e.g. NeXus /entry/data/data: the file's only volume
                    name = volumes[0]
                else:
                    listed = ", ".join(f"{n} {shp}" for n, shp in present.items()) or "none"
                    raise VolumeFormatError(
                        f"Expected `dataset` {name!r} in HDF5 file {path!r}"
                        + (" (without it: the NeXus NXdata `signal`, else the file's only 3D/4D dataset)"
                           if dataset is None else "")
                        + f". Datasets present: {listed}."
                    )
            if name != (dataset or DEFAULT_HDF5_DATASET):  # another one found: checked too, before any read
                _check_hdf5_reads(f, name, path)
            ds = _hdf5_dataset(f, name)
            if ds.chunks:  # each read decodes whole chunks: a few KB stating a huge one asked for all memory
                check_stored_chunk(ds.chunks, ds.dtype, name="source", value=path)
            return Hdf5Reader(os.path.abspath(path), name, tuple(ds.shape), np.dtype(ds.dtype),  # (for workers)
                              tuple(ds.chunks) if ds.chunks else None)
    except OSError as exc:
        raise VolumeFormatError(f"Cannot read HDF5 file {path!r}: {exc}") from None


def _hdf5_dataset(f: Any, name: str) -> Any:
    """The dataset ``name`` of the open HDF5 file ``f``, its external raw files and virtual sources named
    relative to the file that holds it (``${ORIGIN}``) wherever the reading process runs, as
    :func:`_check_hdf5_reads` checked them (HDF5's default is the working directory)."""
    import h5py

    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    dapl.set_efile_prefix(b"${ORIGIN}")
    dapl.set_virtual_prefix(b"${ORIGIN}")
    return h5py.Dataset(h5py.h5d.open(f.id, name.encode(), dapl=dapl))


def _hdf5_folder(path: str) -> str:
    """The folder of the HDF5 file ``path`` (as named: HDF5 follows its relative links from there), its links
    followed: the files it may read lie in it or below."""
    return os.path.realpath(os.path.dirname(os.path.abspath(path)))


def _outside(folder: str, origin: str, name: str) -> str | None:
    """The file that HDF5 opens for ``name`` (an external link's file, an external raw file, a virtual
    dataset's source), stated in a file in the folder ``origin``, once links are followed, when that lies
    outside ``folder``; else None. An absolute name is taken as it is (one not there: its base name, as
    HDF5 tries next); a relative one in ``origin``, else, where none is there, in the working directory
    (HDF5's last try)."""
    if os.path.isabs(name) and not os.path.exists(name) and origin:
        name = os.path.basename(name)
    if not os.path.isabs(name):
        there = os.path.join(origin, name)
        name = there if os.path.exists(there) or not os.path.exists(name) else os.path.abspath(name)
    target = os.path.realpath(name)
    return None if target.startswith(folder.rstrip(os.sep) + os.sep) else target


def _check_hdf5_reads(f: Any, name: str, source: str, *, folder: str | None = None, depth: int = 0,
                      shown: str | None = None) -> None:
    """Refuse the dataset ``name`` of the open HDF5 file ``f`` (from ``source``) when reading it would read
    a file outside the folder of ``source`` (or below): an external link on its path, its external raw
    storage, a virtual dataset's source (and theirs in turn). Beamline files link their data files in
    the same folder (NeXus masters); one received from elsewhere stating ``/etc/passwd`` as its raw
    storage was ingested as voxels. Checked before any data is read; nothing outside is opened
    (``shown``: the dataset as the caller named it, where ``name`` is a link's target)."""
    import h5py

    folder = folder or _hdf5_folder(source)
    shown = shown or name

    def refuse(what: str, target: str) -> None:
        raise VolumeFormatError(
            f"Expected `source` {source!r} to read only files in its own folder {folder!r} or below. Got its "
            f"dataset {shown!r}: {what} {target!r}, outside it: not read. Copy the files it links to beside it (or "
            f"below), or ingest the file that holds the data itself.")

    if depth > 16:  # links leading round in a circle
        raise VolumeFormatError(f"Expected `source` {source!r} to reach its dataset {shown!r} in at most 16 links. "
                                "Got more (links leading round in a circle?).")
    group = f["/"]
    for part in [p for p in name.split("/") if p]:
        if not isinstance(group, h5py.Group):
            return  # a path through a dataset: h5py says so when it opens it
        link = group.get(part, getlink=True)
        if isinstance(link, h5py.SoftLink):  # its path may pass external links
            _check_hdf5_reads(group.file, link.path if link.path.startswith("/") else f"{group.name}/{link.path}",
                              source, folder=folder, depth=depth + 1, shown=shown)
        elif isinstance(link, h5py.ExternalLink):
            target = _outside(folder, os.path.dirname(group.file.filename), link.filename)
            if target:
                refuse("reached through an external link to", target)
        try:
            group = group.get(part)
        except (KeyError, OSError, ValueError):  # nothing there: h5py says so when it opens it
            return
        if group is None:
            return
        target = _outside(folder, "", group.file.filename)  # where HDF5 did find an external link's file
        if target:
            refuse("reached through an external link to", target)
    if not isinstance(group, h5py.Dataset):
        return
    origin = os.path.dirname(group.file.filename)
    for raw, _, _ in group.external or []:
        target = _outside(folder, origin, raw)
        if target:
            refuse("stored in the external raw file", target)
    if group.is_virtual:  # (an Eiger master maps thousands of pieces to a few files: each file checked once)
        for src in {(v.file_name, v.dset_name): v for v in group.virtual_sources()}.values():
            if src.file_name == ".":  # a dataset of the same file
                _check_hdf5_reads(group.file, src.dset_name, source, folder=folder, depth=depth + 1, shown=shown)
                continue
            target = _outside(folder, origin, src.file_name)
            if target:
                refuse("a virtual dataset of", target)
            there = os.path.join(origin, src.file_name)
            if os.path.isfile(there):  # the source's own external files and sources, in turn
                with h5py.File(there, "r") as g:
                    _check_hdf5_reads(g, src.dset_name, source, folder=folder, depth=depth + 1, shown=shown)


def _raw(path: str, shape: Any, dtype: Any, offset: int) -> MemmapReader:
    if shape is None or dtype is None:
        raise InputError(
            f"Expected `shape` and `dtype` for raw binary {path!r} (command line: --shape Z,Y,X --dtype '<u2', "
            f"--offset for a header, with ingest or info; a raw file states neither). Got shape={shape!r}, "
            f"dtype={dtype!r} instead."
        )
    shape_t = parse_tuple("shape", shape, len(shape) if hasattr(shape, "__len__") else 3, parse_positive_int)
    if len(shape_t) not in (3, 4):
        raise InputError(f"Expected `shape` to be (z, y, x) or (t, z, y, x) for raw binary {path!r}. Got {shape!r} "
                         f"instead.")
    dt = parse_dtype("dtype", dtype)
    if dt.kind not in "biuf":  # objects, bytes, records: no grey values (and a byte order makes no sense)
        raise InputError(f"Expected `dtype` to be a numeric dtype such as '<u2' or '<f4' for raw binary {path!r}. "
                         f"Got {dtype!r} instead.")
    if dt.itemsize > 1 and isinstance(dtype, str) and dtype.strip()[:1] not in ("<", ">", "=", "|"):
        import sys

        order = "little" if sys.byteorder == "little" else "big"
        warnings.warn(f"raw file {path!r}: `dtype` {dtype!r} states no byte order, so it is read {order}-endian (this "
                      f"machine's order). A file written big-endian would come out byte-swapped: pass "
                      f"'<{dt.kind}{dt.itemsize}' (little) or '>{dt.kind}{dt.itemsize}' (big) to say which.",
                      stacklevel=3)
    expected = int(np.prod(shape_t)) * dt.itemsize + offset
    size = os.path.getsize(path)
    if size != expected:
        raise VolumeFormatError(
            f"Raw file {path!r} has {size} bytes, but `shape`={shape_t} x `dtype`={dt.str} "
            f"(+ {offset} header bytes) needs {expected}."
        )
    return MemmapReader(os.path.abspath(path), shape_t, dt, offset)  # (for workers)


def read_source(
    source: str | os.PathLike,
    *,
    dataset: str | None = None,
    dtype: Any = None,
    shape: Any = None,
    offset: int = 0,
) -> Any:
    """Open ``source`` lazily: a reader (shape, dtype, ``__getitem__``) or a volume (zarr).

    Detects the format from the path: a folder of TIFFs, a glob, a multi-page TIFF, HDF5,
    ``.npy``, raw binary (``shape`` and ``dtype`` required) or zarr/OME-Zarr.

    Parameters
    ----------
    source : a path or glob, as :func:`ingest` reads it (one scan).
    dataset : the HDF5 dataset (default: as :func:`ingest` finds it; HDF5 only).
    dtype, shape : a raw binary file's dtype (with endianness, e.g. ``">u2"``) and (z, y, x) shape.
    offset : a raw binary file's header bytes to skip (default 0).
    """
    src = os.fspath(source)
    offset = parse_nonnegative_int("offset", offset)  # a memory map starts at a byte >= 0
    if _is_glob(src):
        scans = scans_of_glob(src)
        if scans is not None and len(scans) == 1:
            return read_source(scans[0], dataset=dataset, dtype=dtype, shape=shape, offset=offset)
        if scans is not None:
            raise InputError(f"Expected `source` to be one scan here. Got {src!r}, which matches {len(scans)} whole "
                             f"scans (a series: bigseg ingest reads it as one).")
        _refuse_file_options(src, dataset=dataset, shape=shape, hdf5=False, what="TIFF slices")
        return _tiff_stack(globmod.glob(src), src)
    p = Path(src)
    if not p.exists():
        raise SourceNotFoundError(f"Expected `source` to be an existing file or folder. Got {src!r}, which does not exist.")
    _refuse_file_options(src, dataset=dataset, shape=shape, hdf5=not p.is_dir() and p.suffix.lower() in HDF5_SUFFIXES,
                         what="a folder or store" if p.is_dir() else None)
    if offset and shape is None and (p.is_dir() or p.suffix.lower() not in RAW_SUFFIXES):
        raise InputError(f"Expected `offset` only for a raw binary file (header bytes to skip). Got offset={offset!r} "
                         f"for {src!r}.")
    if p.is_dir():
        if is_zarr_store(p):
            return open_named(p, name="source")
        files = [str(f) for f in tiff_slices(p)]
        if len(files) == 1:  # one file: a multi-page TIFF is a whole scan (a single slice reads the same)
            return read_source(files[0], dataset=dataset, dtype=dtype, shape=shape, offset=offset)
        return _tiff_stack(files, src)
    suffix = p.suffix.lower()
    if shape is not None and suffix in (*TIFF_SUFFIXES, *HDF5_SUFFIXES, ".npy"):
        raise InputError(f"Expected `shape` only for a raw binary file (its layout is not in it). Got shape={shape!r} "
                         f"for {src!r}, whose own header gives its shape: leave `shape` out.")
    if shape is not None or suffix in RAW_SUFFIXES:
        return _raw(src, shape, dtype, offset)
    if suffix in TIFF_SUFFIXES:
        page_shape, dt, n, _, _, first = _tiff_page_info(src)
        if len(page_shape) == 3 and n == 1:  # a single 3D page (e.g. ImageJ hyperstack)
            return MultiPageTiffReader(os.path.abspath(src), page_shape, dt, first)  # type: ignore[arg-type]
        if len(page_shape) != 2:
            raise VolumeFormatError(f"Expected 2D pages in {src!r}. Got page shape {page_shape}.")
        shape = _tiff_series_shape(src, n, page_shape) if not first else (n, *page_shape)  # its series: the preview's
        return MultiPageTiffReader(os.path.abspath(src), shape, dt, first)  # type: ignore[arg-type]  # (for workers)
    if suffix in HDF5_SUFFIXES:
        return _hdf5(src, dataset)
    if suffix == ".npy":
        with open(src, "rb") as fh:
            magic = fh.read(6)
        if magic != b"\x93NUMPY":  # numpy would call it "pickled data" and suggest allow_pickle: it is no array
            raise VolumeFormatError(f"Expected `source` {src!r} to be a NumPy .npy array file. Got a file that does "
                                    f"not start as one ({magic[:6]!r}): another format named .npy, or one cut short?")
        try:
            mm = np.load(src, mmap_mode="r")
        except Exception as exc:
            raise VolumeFormatError(f"Cannot read .npy file {src!r}: {exc}") from None
        return MemmapReader(os.path.abspath(src), tuple(mm.shape), np.dtype(mm.dtype), npy=True)  # (for workers)
    raise InputError(
        f"Expected `source` to be a TIFF folder/glob/file, HDF5 ({', '.join(HDF5_SUFFIXES)}), .npy, "
        f"raw binary (with `shape` and `dtype`) or zarr. Got {src!r} instead."
    )


def _refuse_file_options(src: str, *, dataset: Any, shape: Any, hdf5: bool, what: str | None) -> None:
    """``dataset`` (HDF5 only) and ``shape`` (raw binary files only) given for a source they do not
    apply to (``what`` it is, when a folder or TIFF slices), refused rather than ignored."""
    if dataset is not None and not hdf5:
        raise InputError(f"Expected `dataset` only for an HDF5 file ({', '.join(HDF5_SUFFIXES)}). Got "
                         f"dataset={dataset!r} for {src!r}{', ' + what if what else ''}: leave `dataset` out.")
    if shape is not None and what is not None:
        raise InputError(f"Expected `shape` only for a raw binary file (its layout is not in it). Got shape={shape!r} "
                         f"for {src!r}, {what}: leave `shape` out.")


def _is_glob(src: str) -> bool:
    """Whether ``src`` is a pattern to match: it has ``*``, ``?`` or ``[`` and names nothing as it
    stands (a folder "scan [2]" or a file "q?.npy" is that folder or file)."""
    return any(ch in src for ch in "*?[") and not os.path.exists(src)


def scans_of_glob(source: Any) -> list[str] | None:
    """The scans a glob names, in the order of the numbers in their names, when it matches whole
    scans (HDF5, .npy, raw, zarr stores, 3D TIFF files); ``None`` for anything else (a glob of
    2D TIFF slices is one scan, read by :func:`read_source`)."""
    if isinstance(source, (list, tuple)):
        return None
    src = os.fspath(source)
    if not _is_glob(src):
        return None
    matches = sorted(globmod.glob(src), key=natural_key)
    tiffs = [m for m in matches if Path(m).suffix.lower() in TIFF_SUFFIXES and Path(m).is_file()]
    if not matches or (tiffs and len(tiffs) < len(matches)):
        return None  # nothing (or a mix): read_source says what is wrong
    if tiffs:
        page_shape, _, n, _, _, _ = _tiff_page_info(tiffs[0])
        if len(page_shape) == 2 and n == 1:
            return None  # slices of one scan
    return matches


def _warn_text_order(sources: Sequence[Any]) -> None:
    names = [os.fspath(s) for s in sources]
    natural = sorted(names, key=natural_key)
    if len(names) > 2 and names == sorted(names) and names != natural:
        first = next(i for i, (a, b) in enumerate(zip(names, natural)) if a != b)
        warnings.warn(f"The scans in `source` are taken in the order given, where {names[first]!r} comes before "
                      f"{natural[first]!r} (names sorted as text, as a shell glob sorts them). If time runs with "
                      f"the numbers, pass the scans in that order, or the glob quoted (bigseg orders its matches "
                      f"by number).", UserWarning, stacklevel=3)


def source_calibration(source: str | os.PathLike, **read: Any) -> Any:
    """((z, y, x) voxel size, unit) that ``source`` states about itself, else ``None``
    (``read``: the options of :func:`read_source`); of the first scan of a glob of scans."""
    return _calibration(read_source((scans_of_glob(source) or [source])[0], **read))


def source_info(source: str | os.PathLike, *, dataset: str | None = None, dtype: Any = None, shape: Any = None,
                offset: int = 0) -> dict[str, Any]:
    """What ``ingest`` would read from a source that is not OME-Zarr: its kind, shape, dtype and
    the voxel size it states (``None`` when it states none), the ``origin`` of a box cut from a
    scan when it states one (in ``unit``, else in voxels), the ``dims`` ingest gives it, a
    series' ``times`` (and ``time_unit``) and label images' ``phases`` when it states them; for
    HDF5 also every dataset in the file (path -> shape, dtype), to pick ``dataset`` from."""
    reader = read_source(source, dataset=dataset, dtype=dtype, shape=shape, offset=offset)
    kinds = {TiffStackReader: "TIFF slices", MultiPageTiffReader: "multi-page TIFF", Hdf5Reader: "HDF5",
             MemmapReader: "raw binary"}
    kind = "zarr" if isinstance(reader, xr.DataArray) else kinds[type(reader)]
    if isinstance(reader, MemmapReader) and reader.npy:
        kind = "NumPy .npy"
    cal = _calibration(reader)
    info: dict[str, Any] = {"path": os.fspath(source), "format": kind, "shape": [int(n) for n in reader.shape],
                            "dtype": str(np.dtype(reader.dtype)),
                            "voxel_size": list(cal[0]) if cal else None, "unit": cal[1] if cal else None}
    if isinstance(reader, TiffStackReader):
        info["files"] = len(reader.files)
    if len(reader.shape) in (3, 4):  # as ingest reads it
        info["dims"] = ["t", "z", "y", "x"][-len(reader.shape):]
    times, t_unit = _stated_times(reader) if len(reader.shape) == 4 else (None, "")
    if times is not None and len(times) == reader.shape[0]:  # a series' times, as ingest keeps them
        info["times"] = [float(t) for t in times]
        if t_unit:
            info["time_unit"] = t_unit
    phases = _stated_phases(reader)
    if phases is not None:
        info["phases"] = phases
    at = _stated_origin(reader)
    if at is not None and any(at):  # a box cut from a scan: where ingest will put it
        vs = cal[0] if cal else (1.0, 1.0, 1.0)
        info["origin"] = [float(o) * v for o, v in zip(at, vs)]
    if isinstance(reader, Hdf5Reader):
        import h5py

        with h5py.File(reader.path, "r") as f:
            found = {n: [list(o.shape), str(o.dtype)] for n, o in _hdf5_datasets(f).items()}
        info["dataset"] = reader.dataset
        info["datasets"] = found
    return info


def _calibration(reader: Any) -> Any:
    if isinstance(reader, xr.DataArray):  # a store of unit "voxel" (a plain zarr array) states no physical size
        return None if reader.attrs["unit"] == "voxel" else (tuple(reader.attrs["voxel_size"]), reader.attrs["unit"])
    if isinstance(reader, TiffStackReader):
        return tiff_calibration(reader.files[0])
    if isinstance(reader, MultiPageTiffReader):
        return tiff_calibration(reader.path)
    if isinstance(reader, Hdf5Reader):
        return hdf5_calibration(reader.path, reader.dataset)
    return None


def _stated_origin(reader: Any) -> Any:
    """Where the file says its first voxel lies in the scan, in voxels (z, y, x): a box cut from
    a scan and exported by :func:`bigseg.export` (HDF5 ``origin_voxels``, OME-TIFF plane
    positions, ImageJ origins), or by Fiji; None when it says nothing."""
    if isinstance(reader, Hdf5Reader):
        return _hdf5_attr(reader, "origin_voxels")
    if isinstance(reader, TiffStackReader):
        return tiff_origin(reader.files[0])
    if isinstance(reader, MultiPageTiffReader):
        return tiff_origin(reader.path)
    return None


def _stated_times(reader: Any) -> tuple[np.ndarray | None, str]:
    """The times a series file states and their unit, as :func:`bigseg.export` writes them: an
    HDF5 dataset's ``times`` and ``time_unit`` attributes, an OME-TIFF's per-plane ``DeltaT``
    and ``DeltaTUnit`` (those of each time point's first plane), an ImageJ hyperstack's frame
    interval (``finterval``, in ``tunit``, ImageJ's default seconds); None and "" when it states
    none."""
    if isinstance(reader, Hdf5Reader):
        t, u = _hdf5_attr(reader, "times"), _hdf5_attr(reader, "time_unit")
        return (None if t is None else np.asarray(t, np.float64)), ("" if u is None else str(u))
    if isinstance(reader, MultiPageTiffReader):
        times, unit = _ome_tiff_times(reader.path)
        return (times, unit) if times is not None else _imagej_times(reader.path)
    return None, ""


def _imagej_times(path: str) -> tuple[np.ndarray | None, str]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata or {}
    try:
        interval, frames = float(meta.get("finterval", 0)), int(meta.get("frames", 0))
    except (TypeError, ValueError):
        return None, ""
    if frames < 2 or not (math.isfinite(interval) and interval > 0):
        return None, ""
    from ._calibration import OME_TIME_UNITS

    unit = str(meta.get("tunit", "sec")).strip()  # ImageJ writes tunit only where it is not "sec"
    unit = OME_TIME_UNITS.get(unit, unit)  # its "sec" as the symbol the OME-TIFF path reads
    return np.arange(frames, dtype=np.float64) * interval, unit


def _hdf5_attr(reader: Hdf5Reader, key: str) -> Any:
    """An attribute of the HDF5 dataset ``reader`` reads (None when it has none)."""
    import h5py

    with h5py.File(reader.path, "r") as f:
        return f[reader.dataset].attrs.get(key)


def _ome_tiff_root(path: str) -> Any:
    """The OME-XML of a TIFF, parsed (None when it has none or it does not parse)."""
    import xml.etree.ElementTree as ET

    import tifffile

    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    if not xml:
        return None
    try:
        return ET.fromstring(xml)
    except ET.ParseError:
        return None


def _bigseg_annotation(root: Any, key: str) -> str:
    """A value of the MapAnnotation bigseg writes into an OME-TIFF for what OME has no place for
    (a series' time unit as given, label images' phase names); "" when it has none."""
    from ._export import OME_TIFF_NAMESPACE

    for ann in root.iter():
        if ann.tag.rsplit("}", 1)[-1] == "MapAnnotation" and ann.attrib.get("Namespace") == OME_TIFF_NAMESPACE:
            for m in ann.iter():
                if m.tag.rsplit("}", 1)[-1] == "M" and m.attrib.get("K") == key:
                    return m.text or ""
    return ""


def _stated_phases(reader: Any) -> list[str] | None:
    """The phase names a label file states, as :func:`bigseg.export` writes them: an HDF5
    dataset's ``phases`` attribute, an OME-TIFF's bigseg annotation (JSON), TIFF slices' ImageJ
    property or JSON description (the first slice's); None when none."""
    import json

    if isinstance(reader, Hdf5Reader):
        phases = _hdf5_attr(reader, "phases")
    elif isinstance(reader, MultiPageTiffReader):
        root = _ome_tiff_root(reader.path)
        text = _bigseg_annotation(root, "phases") if root is not None else ""
        try:
            phases = json.loads(text) if text else None
        except ValueError:
            phases = None
    elif isinstance(reader, TiffStackReader) and reader.files:
        phases = _slice_phases(reader.files[0])
    else:
        return None
    if phases is None or isinstance(phases, (str, bytes)) or not len(phases):
        return None
    return [p.decode() if isinstance(p, bytes) else str(p) for p in phases]


def _slice_phases(path: str) -> Any:
    """The phase names a TIFF slice of :func:`bigseg.export` states: its ImageJ property
    (:data:`PHASES_PROPERTY`, JSON) or tifffile's JSON description; None when it states none."""
    import json

    import tifffile

    from ._export import PHASES_PROPERTY

    try:
        with tifffile.TiffFile(path) as tif:
            props = (tif.imagej_metadata or {}).get("Properties") or {}
            if PHASES_PROPERTY in props:
                return json.loads(props[PHASES_PROPERTY])
            shaped = tif.shaped_metadata
            return shaped[0].get("phases") if shaped else None
    except (ValueError, TypeError, OSError):  # a description that is no JSON: no names stated
        return None


def _ome_tiff_times(path: str) -> tuple[np.ndarray | None, str]:
    root = _ome_tiff_root(path)
    if root is None:
        return None, ""
    by_t: dict[int, float] = {}
    unit = ""  # only as the file says it (bigseg wrote none before; OME would read seconds)
    for plane in root.iter():
        if plane.tag.rsplit("}", 1)[-1] != "Plane" or "DeltaT" not in plane.attrib:
            continue
        if plane.attrib.get("TheZ", "0") == "0" and plane.attrib.get("TheC", "0") == "0":
            try:
                by_t[int(plane.attrib.get("TheT", "0"))] = float(plane.attrib["DeltaT"])
            except ValueError:
                return None, ""
            unit = unit or plane.attrib.get("DeltaTUnit", "")
    if not by_t or sorted(by_t) != list(range(len(by_t))):
        return None, ""
    unit = _bigseg_annotation(root, "time_unit") or unit  # as bigseg was given it ("cycle": no OME symbol)
    return np.asarray([by_t[i] for i in range(len(by_t))], np.float64), unit


def open_source(source: str | os.PathLike, *, chunks: Any = 128, dataset: str | None = None,
                voxel_size: Any = None, unit: str | None = None) -> xr.DataArray:
    """A source ``ingest`` reads (TIFF slices or file, HDF5, ``.npy``, zarr), opened lazily as a
    volume without writing it anywhere: with the voxel size and unit it states (else 1 nm), or
    ``voxel_size`` (in ``unit``) as :func:`ingest` takes them, and an HDF5's phase names (as
    :func:`bigseg.export` writes them) in ``attrs["phases"]``. For a reference or annotation
    made in another tool (a TIFF label stack) read once.

    Parameters
    ----------
    source : a path as :func:`ingest` reads it (one scan).
    chunks : chunk edge (int) or (z, y, x), in voxels (default 128).
    dataset : the HDF5 dataset (default: as :func:`ingest` finds it).
    voxel_size : voxel edge length(s) in ``unit``; default: the source's, else 1.
    unit : length unit of ``voxel_size``; default: the source's, else ``"nm"``.
    """
    reader = read_source(source, dataset=dataset)
    vs = None if voxel_size is None else parse_voxel_size(voxel_size)
    vol = _read_volume(source, chunks=chunks, vs=vs, unit=None if unit is None else parse_unit(unit), dataset=dataset,
                       dtype=None, shape=None, offset=0, reader=reader, say_assumed=False)  # (taken on a grid)
    vol.attrs.setdefault("source", os.fspath(source))
    return vol


#: the most blocks a source is cut into (each a task of the graph, held in memory; 2048³ in 32³
#: chunks is 262,144)
MAX_BLOCKS = 4_000_000

#: a voxel size given without unit this many times larger or smaller than the source's own is
#: said (a unit slip: nm for um is 1000); a correction of the stated size is not
UNIT_SLIP = 5.0


def _sizes(vs: Any) -> str:
    v = [f"{float(x):g}" for x in np.broadcast_to(np.asarray(vs, float), 3)]
    return v[0] if len(set(v)) == 1 else ", ".join(v)


def _resolved_calibration(reader: Any, vs: Any, unit: str | None, *, say_assumed: bool = False) -> tuple[Any, str]:
    """(voxel size, unit) of a source opened by :func:`read_source` (or an in-memory volume):
    ``vs`` (in ``unit``, default the source's unit, else nm) when given, else the source's own
    expressed in ``unit`` when that is given, else its own; an uncalibrated one: 1 (a store in
    voxels keeps its sizes, the axes' ratios) in ``unit``, else nm, that one said by an
    ``UncalibratedWarning`` where ``say_assumed`` (a scan ingested; not an array in memory, nor
    an annotation stack read to be taken on an image's grid)."""
    if vs is not None and unit is not None:  # the source's own is not asked (nor its faults said)
        return vs, unit
    own = _calibration(reader)
    if vs is not None:
        ratio = np.broadcast_to(np.asarray(vs, float), 3) / np.broadcast_to(np.asarray(own[0], float), 3) \
            if own is not None else np.ones(3)
        if np.any(ratio >= UNIT_SLIP) or np.any(ratio <= 1 / UNIT_SLIP):
            # in the source's unit, which the number may not have been meant in (50 meant as nm, read as 50 um);
            # a correction of the stated size (0.65 -> 0.7 um) is no slip and goes without a word
            warnings.warn(f"`voxel_size`={_sizes(vs)} is taken in the source's unit, {own[1]}, replacing the "
                          f"{_sizes(own[0])} {own[1]} the source states ({_sizes(ratio)} times): another unit "
                          f"meant? Pass `unit` with it to give it in another unit.", UserWarning, stacklevel=3)
        return vs, unit or (own[1] if own else "nm")
    if own is not None:
        converted = convert_length(own[0], own[1], unit) if unit else own[0]
        if converted is None and normalise_unit(own[1]) is None:
            raise InputError(f"Expected `voxel_size` with `unit`={unit!r}: the source's voxel size is in "
                             f"{own[1]!r}, which is no length to convert. Got voxel_size=None.")
        if converted is None:
            raise InputError(f"Expected `unit` to be a length unit such as 'nm' or 'um' that the source's "
                             f"{own[1]!r} converts to. Got {unit!r} instead.")
        return converted, unit or own[1]
    if unit is not None and unit != "voxel":  # a unit asked for lengths the source does not give
        from ..errors import UncalibratedWarning

        warnings.warn(f"`unit`={unit!r} without `voxel_size`, and the source states no voxel size: a voxel is taken "
                      f"as 1 {unit}. Pass `voxel_size` (in {unit}) to give the scan's.", UncalibratedWarning,
                      stacklevel=3)
    elif unit is None and say_assumed:  # said, as the command line and run.json say it
        from ..errors import UncalibratedWarning, warn_caller

        warn_caller("The source states no voxel size and neither `voxel_size` nor `unit` was given: a voxel is taken "
                    "as 1 nm, so every length, area and volume measured counts voxels under the name nm. Pass "
                    "`voxel_size` (and `unit`) to give the scan's.", UncalibratedWarning)
    return (tuple(reader.attrs["voxel_size"]) if isinstance(reader, xr.DataArray) else (1.0, 1.0, 1.0)), unit or "nm"


def calibrated(vol: xr.DataArray, *, voxel_size: Any = None, unit: str | None = None) -> xr.DataArray:
    """An in-memory volume with the voxel size and unit :func:`ingest` would give it for
    ``voxel_size`` and ``unit`` (its own converted to ``unit``, or ``voxel_size`` in ``unit``;
    one in voxels: 1 ``unit``, else nm)."""
    vs = None if voxel_size is None else parse_voxel_size(voxel_size)
    return recalibrated(vol, *_resolved_calibration(vol, vs, None if unit is None else parse_unit(unit)))


def _read_volume(source: Any, *, chunks: Any, vs: Any, unit: str | None, dataset: str | None, dtype: Any,
                 shape: Any, offset: int, channel: int | None = None, reader: Any = None,
                 say_assumed: bool = True) -> xr.DataArray:
    """One source as a lazy volume (3D or 4D), cast to ``dtype`` when asked; ``reader``: the
    source already opened by :func:`read_source` (else it is opened here), calibrated by
    :func:`_resolved_calibration` (its own from zarr metadata, OME-TIFF, ImageJ TIFF, HDF5
    ``element_size_um``)."""
    if reader is None:
        reader = read_source(source, dataset=dataset, dtype=dtype, shape=shape, offset=offset)
    if isinstance(reader, Hdf5Reader) and str(_hdf5_attr(reader, "dims") or "").startswith("phase"):
        raise InputError(f"Expected `source` to hold a volume or a series. Got {os.fspath(source)!r}, probabilities "
                         "(phase, z, y, x) as bigseg export writes them, which would read as a series of "
                         f"{reader.shape[0]} scans: ingest the image or the labels instead.")
    cal = _resolved_calibration(reader, vs, unit, say_assumed=say_assumed)
    if isinstance(reader, xr.DataArray):
        vol = recalibrated(_one_channel(reader, channel, source), cal[0], cal[1])  # coordinates with the attrs
    else:
        _one_channel(None, channel, source)  # a file of no channels: `channel` refused
        if len(reader.shape) not in (3, 4):
            hint = (" (one 2D slice: to read TIFF slices as one stack, pass their folder or a quoted glob "
                    "such as 'scan/*.tif')") if len(reader.shape) == 2 and isinstance(
                        reader, (MultiPageTiffReader, TiffStackReader)) else ""
            raise InputError(f"Expected `source` to hold a 3D (z, y, x) or 4D (t, z, y, x) array. "
                             f"Got shape {reader.shape} for {os.fspath(source)!r}{hint}.")
        if 0 in reader.shape:
            raise InputError(f"Expected `source` to be non-empty. Got shape {reader.shape}.")
        if np.dtype(reader.dtype).kind not in "biuf":  # strings, records, objects: named here, not as save's `data`
            raise InputError(f"Expected `source` to hold numbers (integers, floats or booleans). Got dtype "
                             f"{np.dtype(reader.dtype)} in {os.fspath(source)!r}.")
        c = parse_chunks(chunks, 3)  # (z, y, x); a series one scan per chunk
        if len(reader.shape) == 4:
            c = (1, *c)
        blocks = math.prod(-(-n // k) for n, k in zip(reader.shape, c))
        if blocks > MAX_BLOCKS:  # each block a task held in memory: a 2 KB file stating 100000³ filled a node's
            # memory building the graph, before anything was read
            raise InputError(f"Expected `chunks` to cut `source` into at most {MAX_BLOCKS:,} blocks. Got shape "
                             f"{tuple(reader.shape)} in {os.fspath(source)!r} in chunks {c}: {blocks:,} blocks. Larger "
                             f"chunks, or is the shape the file states its data's?")
        # the chunks too: the same file read in two chunkings (one graph) must not share keys, whose
        # blocks would then be taken for each other's
        token = tokenize(os.path.abspath(os.fspath(source)), dataset, dtype, shape, offset, c)
        arr = da.from_array(reader, chunks=c, asarray=True, lock=False, fancy=False,
                            name=f"ingest-{Path(os.fspath(source)).name}-{token}")
        at = _stated_origin(reader)
        vs3 = parse_voxel_size(cal[0])
        vol = make_volume(arr, voxel_size=vs3, unit=cal[1],
                          origin=None if at is None else [float(o) * v for o, v in zip(at, vs3)])
        if getattr(reader, "stored", None):  # a chunked HDF5 dataset's chunks, as xarray states a store's
            vol.encoding["chunks"] = reader.stored
        times, t_unit = _stated_times(reader) if len(reader.shape) == 4 else (None, "")
        if times is not None and len(times) == vol.sizes["t"] and np.all(np.diff(times) > 0):  # as bigseg exports
            vol = vol.assign_coords(t=("t", times, {"units": t_unit} if t_unit else {}))
    is_raw = isinstance(reader, MemmapReader) and not reader.npy
    if dtype is not None and not is_raw:  # for raw files `dtype` describes the file itself
        target = parse_dtype("dtype", dtype)
        src_dt = vol.dtype
        if target.kind not in "biuf" or not (_lossless(src_dt, target) or (src_dt.kind == "f" and target.kind == "f")):
            raise InputError(
                f"Expected `dtype` to be a lossless cast of the source dtype {src_dt}. Got {dtype!r} instead."
            )
        if src_dt.kind == "f" and np.finfo(target).max < np.finfo(src_dt).max:  # float to a narrower float
            vol = vol.copy(data=vol.data.map_blocks(_narrowed, target, dtype=target))
        else:
            vol = vol.astype(target)
    phases = _stated_phases(reader)
    if phases is not None and "phases" not in vol.attrs and np.issubdtype(vol.dtype, np.integer):
        vol.attrs["phases"] = phases  # labels as bigseg export writes them: ingest stores a label image
        state_values(vol)  # label values ("1"), not grey ones
    return vol


def _lossless(src: np.dtype, target: np.dtype) -> bool:
    """Whether every value of ``src`` is one of ``target``: NumPy's "safe" casts, less integers
    wider than a float's significand (int64 and uint64 to float64 are "safe" to NumPy, but
    2**53 + 1 became 2**53 without a word)."""
    if src.kind in "iu" and target.kind == "f" and src.itemsize * 8 - (src.kind == "i") > np.finfo(target).nmant + 1:
        return False
    return bool(np.can_cast(src, target, "safe"))


def _narrowed(block: np.ndarray, target: np.dtype) -> np.ndarray:
    """``block`` cast to the narrower float ``target``; finite values beyond its range are refused
    (they became inf without a word)."""
    with np.errstate(over="ignore"):
        out = block.astype(target)
    lost = np.isinf(out) & np.isfinite(block)
    if lost.any():
        big = float(np.abs(block[lost]).max())
        raise InputError(f"Expected `dtype` {target} to hold the source's values (at most {float(np.finfo(target).max):.6g} "
                         f"in magnitude). Got values up to {big:.6g} ({int(lost.sum())} in one block): ingest as "
                         f"{block.dtype} (leave `dtype` out) or rescale the values first.")
    return out


def _one_channel(vol: xr.DataArray | None, channel: int | None, source: Any) -> Any:
    """The ``channel``-th channel of a zarr image with a ``c`` axis (other writers' multi-channel
    OME-Zarr); an image of several channels without ``channel`` is refused, listing them, and so is
    ``channel`` for a source without channels (``vol`` None: not a zarr image)."""
    if vol is None or "c" not in vol.dims:
        if channel is not None:
            raise InputError(f"Expected `channel` only for an OME-Zarr source with channels. Got channel={channel!r} "
                             f"for {os.fspath(source)!r}, which has none.")
        return vol
    n = vol.sizes["c"]
    if channel is None:
        raise InputError(f"Expected `source` to hold one channel, or `channel` to pick one. Got {n} channels in "
                         f"{os.fspath(source)!r}: pass channel=N for N in 0..{n - 1}.")
    if not isinstance(channel, (int, np.integer)) or isinstance(channel, bool) or not 0 <= channel < n:
        raise InputError(f"Expected `channel` in 0..{n - 1} (the source's {n} channels). Got {channel!r} instead.")
    return vol.isel(c=int(channel), drop=True)


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"Expected `{name}` to hold numbers. Got {value!r} instead.") from None


def _states_none(source: Any) -> bool:
    """Whether a file scan states no voxel size (read as 1 nm); False where that cannot be told."""
    try:
        return _calibration(read_source(source)) is None
    except Exception:  # noqa: BLE001  (another kind of source: said as read)
        return False


def _stack_scans(vols: list[xr.DataArray], sources: list[Any], times: Any) -> xr.DataArray:
    """Scans of one operando experiment, in order, as a (t, z, y, x) series."""
    if len(vols) > 1 and all(v.ndim == 3 and v.shape[0] == 1 for v in vols):
        raise InputError(f"Expected every scan in `source` to be a volume. Got {len(vols)} single slices "
                         f"(shape {vols[0].shape}) instead: to read TIFF slices as one stack, pass their folder "
                         "or a quoted glob such as 'scan/*.tif'.")
    for src, v in zip(sources, vols):
        if v.ndim != 3:
            raise InputError(f"Expected every scan in `source` to be a 3D (z, y, x) volume. Got shape {v.shape} "
                             f"for {os.fspath(src)!r} instead.")
        if v.shape != vols[0].shape or v.dtype != vols[0].dtype:
            raise InputError(f"Expected every scan in `source` to have the first one's shape {vols[0].shape} and dtype "
                             f"{vols[0].dtype}. Got {v.shape} {v.dtype} for {os.fspath(src)!r} instead.")
        calib, first = (tuple(v.attrs.get("voxel_size", ())), v.attrs.get("unit")), \
            (tuple(vols[0].attrs.get("voxel_size", ())), vols[0].attrs.get("unit"))
        same = convert_length(calib[0], str(calib[1]), str(first[1])) if calib[1] != first[1] else calib[0]
        if same is None or not np.allclose(same, first[0], rtol=1e-9):  # one grid: other voxel sizes are refused
            got = ("none" if calib[0] == (1.0, 1.0, 1.0) and _states_none(src) else f"{calib[0]} {calib[1]}")
            raise InputError(f"Expected every scan in `source` to state the first one's voxel size {first[0]} {first[1]}. "
                             f"Got {got} for {os.fspath(src)!r} instead: pass `voxel_size` (command "
                             "line: --voxel-size) if they are one grid.")
    if times is None:
        t = np.arange(len(vols))
    else:
        if len(times) != len(vols):
            raise InputError(f"Expected `times` to have {len(vols)} values, one per scan. Got {len(times)}: "
                             f"{list(times)!r}.")
        t = np.asarray([float(v) for v in parse_tuple("times", tuple(times), len(vols), _number, what="numbers")])
        if not np.all(np.isfinite(t)):  # inf would be written to the store's JSON (not JSON)
            raise InputError(f"Expected `times` to be finite numbers. Got {list(times)!r} instead.")
        if not np.all(np.diff(t) > 0):
            raise InputError(f"Expected `times` to increase from scan to scan. Got {list(times)!r} instead.")
    out = xr.concat([v.drop_vars([c for c in v.coords if c not in v.dims]) for v in vols],
                    dim=xr.DataArray(t, dims="t", name="t"), combine_attrs="override", join="override")
    return out.transpose("t", "z", "y", "x")


#: bytes per voxel that writing a block holds beside the block itself: its cast, zarr's and
#: zstd's buffers (a worker's peak resident memory, less its own, was 4.5-5.3x the block for
#: uint16 blocks of 256³, ~7x at 128³, 1.6-1.9x for float32 at 256³: up to 10 bytes per voxel)
_WRITE_BYTES_PER_VOXEL = 10


def stored_chunks(vol: Any, default: tuple[int, ...]) -> tuple[int, ...]:
    """The blocks each read of ``vol`` (a volume or a source's reader, :func:`read_source`)
    decodes whole: a chunked HDF5 dataset's (a volume's ``encoding["chunks"]``, a reader's
    ``stored``), a zarr store's (its dask chunks), else ``default``."""
    if not isinstance(vol, xr.DataArray):
        return tuple(getattr(vol, "stored", None) or default)
    given = vol.encoding.get("chunks") or ()
    if len(given) == vol.ndim:
        return tuple(int(c) for c in given)
    return tuple(max(c) for c in vol.data.chunks) if isinstance(vol.data, da.Array) else tuple(default)


def _check_memory(vol: xr.DataArray, chunks: tuple[int, ...]) -> None:
    """Refuse, before anything is read, chunks whose task would not fit a worker
    (:func:`~bigseg.runtime._budget.check_budget`): a block read and its cast, the buffers zarr
    and its compressor encode it in (:data:`_WRITE_BYTES_PER_VOXEL`), and one whole plane of the
    source (a TIFF page is read whole, then cut; raw and .npy files: one plane's rows); a source
    read in larger blocks than ``chunks`` (a zarr store's stored chunks, ``vol``'s own, a chunked
    HDF5 dataset's, ``vol.encoding["chunks"]``: each read decodes a whole one) holds one of those too."""
    from ..errors import MemoryBudgetError
    from ..runtime._budget import check_budget, chunks_lever, fitting_edge, format_bytes, worker_memory_limit

    block = [min(k, n) for k, n in zip(chunks, vol.shape)]
    item = vol.dtype.itemsize
    per_voxel = item + _WRITE_BYTES_PER_VOXEL
    stored = stored_chunks(vol, tuple(block))
    held = math.prod(stored) * item if math.prod(stored) > math.prod(block) else 0  # a larger stored chunk, decoded
    foot = math.prod(block) * per_voxel + vol.shape[-2] * vol.shape[-1] * item + held
    tasks = math.prod(-(-n // k) for n, k in zip(vol.shape, block))
    try:
        check_budget(foot, what=f"ingest with chunks {tuple(block)}", tasks=tasks)
    except MemoryError as exc:
        limit, conc, _ = worker_memory_limit()
        edge = fitting_edge(max(limit // min(conc, tasks) - held, 0), per_voxel)
        if held and edge < 16:  # the source's own chunks leave no room: smaller chunks of ours would not help
            raise MemoryBudgetError(
                f"{exc} The source is stored in chunks of {stored} ({format_bytes(held)} each, decoded whole by "
                "every read): rechunk it with another tool first (e.g. to 256³ blocks or single slices), or use "
                "workers with more memory.") from None
        edge = max(edge, 16)
        lever = chunks_lever(edge, f"chunks={edge}; command line: --chunks {edge}")
        raise MemoryBudgetError(f"{exc} Use chunks of at most {edge} voxels along z, y and x ({lever}), or workers "
                                "with more memory.") from None


def ingest(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    dest: str | os.PathLike,
    *,
    chunks: Any = 128,
    voxel_size: Any = None,
    unit: str | None = None,
    dataset: str | None = None,
    dtype: Any = None,
    shape: Any = None,
    offset: int = 0,
    levels: int = 1,
    crop: Any = None,
    times: Any = None,
    time_unit: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    resume_key: str | None = None,
    channel: int | None = None,
) -> xr.DataArray:
    """Convert a tomogram into a chunked OME-Zarr volume, block by block and in parallel.

    Parameters
    ----------
    source : folder of TIFF slices, glob (``"scan/*.tif"``), multi-page (Big)TIFF, HDF5 file
        (``dataset``; default ``/exchange/data``, else the 3D/4D dataset a NeXus file's
        NXdata group names as its ``signal`` (found through the ``default`` attributes, or the
        only such group), else the file's only 3D/4D dataset, e.g. ``/entry/data/data``), ``.npy``, raw binary (``shape``, ``dtype``
        with endianness, e.g. ``">u2"``, and ``offset`` header bytes) or zarr/OME-Zarr; or a
        list of such sources, the scans of an operando experiment in time order, written as one
        (t, z, y, x) series (every scan the same shape and dtype); or a glob matching whole
        scans (``"cycle_*/recon.h5"``: HDF5, .npy, zarr, 3D TIFF files), read as such a list in
        the order of the numbers in their names (cycle_2 before cycle_10). A list whose names
        read as text order but not number order (what a shell glob gives) is warned about
    dest : OME-Zarr folder to create
    chunks : chunk edge (int) or (z, y, x), in voxels (default 128)
    voxel_size : voxel edge length(s) in ``unit``; default: the one the source states (OME-Zarr
        metadata, OME-TIFF ``PhysicalSize*``, ImageJ TIFF calibration, HDF5 ``element_size_um``),
        else 1
    unit : length unit of ``voxel_size``; without ``voxel_size``, the unit the source's voxel size
        is converted to. Default: the source's unit, else ``"nm"``
    dtype : for raw files the file's dtype; for other formats an optional cast of the output
        (only lossless casts, or float to float)
    dataset, shape, offset : the HDF5 dataset; a raw file's shape (z, y, x) and header bytes
        (default 0), see ``source``
    levels : pyramid levels (each halves z, y and x)
    crop : keep only this box of every scan, e.g. ``"100:900,64:960,64:960"`` or
        ``[(100, 900), (64, 960), None]`` (z, y, x voxel index ranges of the source, ``[start,
        stop)``): only the box is read. Its start is kept in the metadata (``bigseg info``)
    times : with a list of scans, the time (or cycle, or state of charge) of each, increasing;
        default 0, 1, 2, ...
    time_unit : the unit of a series' times (``"s"``, ``"min"``, ``"h"``, ``"cycle"``...), kept as
        the ``t`` coordinate's ``units`` (and in the store): tables, figures and the report say it
    overwrite : False (default): an existing ``dest`` is refused; True: an earlier output there is
        replaced (never a folder of other data)
    channel : a zarr/OME-Zarr source with several channels (another writer's ``t, c, z, y, x``):
        the one to read (0-based); required there, refused for sources without channels
    resume_key : a string naming what is ingested (e.g. the sources as they stand and these
        arguments): an interrupted ingest is kept and the same key later reads only the blocks
        not yet on disk (:func:`bigseg.save_volume`)
    progress : a progress bar on stderr (on a terminal drawn in place, in a log a line every 30 s); False: none

    Returns
    -------
    The written volume, opened lazily.

    Peak memory is a few blocks per worker, never the volume. Nothing is written until the
    source, destination and parameters are checked; a failed ingest leaves no volume at
    ``dest``.

    Examples
    --------
    A ``.npy`` file ingested into a temporary folder (a TIFF folder, HDF5 or raw file works the
    same way):

    >>> import os, shutil, tempfile
    >>> import numpy as np
    >>> import bigseg
    >>> from bigseg import synth
    >>> tmp = tempfile.mkdtemp()
    >>> scan = synth.xct(synth.electrode((32, 32, 32), radius=(5, 1), chunks=16))
    >>> np.save(os.path.join(tmp, "scan.npy"), scan.values)
    >>> vol = bigseg.ingest(os.path.join(tmp, "scan.npy"), os.path.join(tmp, "scan.ome.zarr"),
    ...                     chunks=16, voxel_size=50, unit="nm", progress=False)
    >>> vol.dims, vol.shape, vol.dtype.name, vol.data.chunksize
    (('z', 'y', 'x'), (32, 32, 32), 'float32', (16, 16, 16))
    >>> vol.attrs["voxel_size"], vol.attrs["unit"]
    ((50.0, 50.0, 50.0), 'nm')
    >>> shutil.rmtree(tmp)
    """
    dest_p = parse_path("dest", dest)
    named = [source] if isinstance(source, (str, os.PathLike)) else list(source) if isinstance(source, (list, tuple)) else []
    listed = isinstance(source, (list, tuple))
    arrays = [s for s in (named if listed else [source]) if not isinstance(s, (str, os.PathLike))]
    if arrays:  # an array in memory (NumPy, dask, DataArray) is no file to read: save_volume writes it
        got = type(arrays[0]).__name__ + (" in the list" if listed else "")
        hint = (": an array in memory is written by bigseg.save_volume(data, dest, voxel_size=..., unit=...) "
                "(a series: stack the scans into one (t, z, y, x) array first, e.g. xarray.concat(scans, dim='t'))"
                if hasattr(arrays[0], "shape") else " instead")
        raise InputError(f"Expected `source` to be the path of a scan (TIFF, HDF5, .npy, raw, zarr), a glob or a list "
                         f"of paths. Got {got}{hint}.")
    # never into or over a source (a zarr store given a group inside it, the scan itself): inputs stay as they are
    refuse_replacing(dest_p, [p for p in named if isinstance(p, (str, os.PathLike))], "dest")
    _check_dest(dest_p, overwrite, "dest", make_parent=False)  # before reading anything
    vs = parse_voxel_size(voxel_size) if voxel_size is not None else None
    unit = None if unit is None else parse_unit(unit)
    if time_unit is not None and (not isinstance(time_unit, str) or not time_unit.strip()):
        raise InputError(f"Expected `time_unit` to be the unit of the times, such as 's', 'min' or 'h'. "
                         f"Got {time_unit!r} instead.")
    opts = dict(chunks=chunks, vs=vs, unit=unit, dataset=dataset, dtype=dtype, shape=shape, offset=offset,
                channel=channel)
    scans = scans_of_glob(source)
    if scans is not None and len(scans) == 1:  # one scan: a volume, not a series of one step
        source, scans = scans[0], None
    if isinstance(source, (list, tuple)) or scans is not None:
        if not (scans or source):
            raise InputError("Expected `source` to name at least one scan. Got an empty list instead.")
        sources = list(scans or source)
        vol = _stack_scans([_read_volume(s, **opts) for s in sources], sources, times)
        if scans is None:
            _warn_text_order(source)
    else:
        if times is not None:
            raise InputError(f"Expected `times` only with a list of scans as `source`. Got times={times!r} instead.")
        vol = _read_volume(source, **opts)
    if time_unit is not None:
        if vol.ndim != 4:
            raise InputError(f"Expected `time_unit` only for a series (a list of scans, or a (t, z, y, x) source). "
                             f"Got time_unit={time_unit!r} for {os.fspath(source)!r}, a single volume.")
        vol = vol.assign_coords(t=vol.coords["t"].assign_attrs(units=time_unit.strip()))
    if crop is not None:
        vol, box = crop_box(vol, crop)
        vol.attrs["source_region"] = [[s.start, s.stop] for s in box]
    c = parse_chunks(chunks, vol.ndim) if vol.ndim == 3 else (1, *parse_chunks(chunks, 3))
    _check_memory(vol, c)
    # a read-only, locked, full or part-way unwritable `dest` named as such (save_volume's own is `path`)
    write_volume(vol, dest_p, chunks=c, levels=levels, overwrite=overwrite, progress=progress, resume_key=resume_key,
                 argument="dest")
    return open_volume(dest_p)
