"""OME-Zarr v0.5 (zarr v3) images and label images, written block by block and atomically.

Layout written by :func:`save_volume`::

    volume.ome.zarr/            group, attrs["ome"] = {version: "0.5", multiscales: [...]}
        0/ 1/ ...               pyramid levels (level k downsampled by 2**k isotropically)
        labels/                 group, attrs["ome"]["labels"] = ["segmentation", ...]
            segmentation/       label image: multiscales + "image-label" (phase names, colours)

A volume is written into a hidden sibling folder and renamed into place only when every
block is on disk, so a failed or interrupted write never leaves anything at the destination
that :func:`open_volume` accepts.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import glob
import math
import os
import re
import shutil
import stat
import uuid
from pathlib import Path
from typing import Any, Iterator

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from zarr.storage import LocalStore

from .._parse import (parse_chunks, parse_flag, parse_nonnegative_int, parse_path, parse_phases, parse_positive_int,
                      parse_voxel_size)
from ..errors import (BigsegError, InputError, LabelsReplacedWarning, OutputExistsError, OutputNotWritableError,
                      SourceNotFoundError, VolumeFormatError, warn_caller)
from ..ops._dispatch import on_host
from ..runtime._budget import MAX_CHOSEN_CHUNK, MAX_STORED_CHUNK, check_stored_chunk, format_bytes
from ..runtime._files import FULL, SYSTEM_FILES, folded, move_into_place, no_room, remove as _remove, replacing
from ..runtime._lock import held
from ..runtime._manifest import key_digest, resumable_array, store_resumable, stored_named
from ..runtime._progress import compute
from ._calibration import convert_length, ome_time_unit, ome_unit, parse_unit, unit_from_ome
from ._volume import (UNLABELLED, as_volume, is_step_index, is_zarr_store, make_volume, mask_as_labels, numeric_times,
                      origin_of, origin_voxels, phase_colour, state_values, time_unit, unit_for, warn_other_grid)

__all__ = ["save_volume", "save_labels", "open_volume", "volume_info", "OME_VERSION"]

#: whether a write that replaces an image says which label images went with it
#: (:class:`~bigseg.errors.LabelsReplacedWarning`); off in :func:`labels_replaced_quietly`
_SAY_LABELS_REPLACED: contextvars.ContextVar[bool] = contextvars.ContextVar("bigseg_say_labels_replaced", default=True)


@contextlib.contextmanager
def labels_replaced_quietly() -> Iterator[None]:
    """No :class:`~bigseg.errors.LabelsReplacedWarning` from the writes in the block (a run that
    remakes the labels of the image it replaces). A context variable, not a warnings filter: a
    filter is the whole process's, and silenced the writes of other threads (a GUI saving over a
    labelled image while a run ingested) and, left by an overlapping ``catch_warnings``, stayed."""
    token = _SAY_LABELS_REPLACED.set(False)
    try:
        yield
    finally:
        _SAY_LABELS_REPLACED.reset(token)

OME_VERSION = "0.5"


def _partial_path(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"


def shown_name(path: Path) -> str:
    """The name a person knows ``path`` by: a hidden partial write's (:func:`_partial_path`,
    :func:`_resumable_path`) is its destination's (``.s.ome.zarr.partial-1a2b3c4d``: ``s.ome.zarr``)."""
    import re

    found = re.fullmatch(r"\.(.+)\.partial-r?[0-9a-f]+", path.name)
    return found.group(1) if found else path.name


def _resumable_path(dest: Path, key: str) -> Path:
    """The hidden folder of a resumable write of ``dest`` from the inputs named by ``key``."""
    return dest.parent / f".{dest.name}.partial-r{key_digest(key)}"


def _check_dest(dest: Path, overwrite: bool, name: str = "path", *, kind: str = "zarr", make_parent: bool = True) -> None:
    """Refuse an existing ``dest`` unless ``overwrite``, and even then anything but what the
    write makes (``kind``: ``"zarr"`` a zarr store, ``"tiff-slices"`` a folder of TIFF files,
    ``"file"`` a file): ``overwrite`` replaces an earlier output, never a folder of other data
    nor the source file of another format (a typo must not delete a user's data)."""
    if not parse_flag("overwrite", overwrite) and dest.exists():
        raise OutputExistsError(
            f"Expected `{name}` to be a new location or `overwrite=True`. Got {str(dest)!r}, which exists."
        )
    if dest.exists():
        what = _replaceable(dest, kind)
        if what:
            raise OutputExistsError(f"Expected `{name}` to be a new location or an earlier output to replace. Got "
                                    f"{str(dest)!r}, {what}: `overwrite` does not delete it. Remove it yourself if "
                                    "that is meant, or write elsewhere.")
    if make_parent and not dest.parent.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)


def _replaceable(dest: Path, kind: str) -> str:
    """Why ``dest`` is not an output of ``kind`` to replace (``""``: it is one)."""
    if kind == "file":
        return "a folder" if dest.is_dir() else ""
    if not dest.is_dir():
        return "a file" + (" (a zarr store is a folder)" if kind == "zarr" else "")
    entries = [f for f in dest.iterdir() if f.name not in SYSTEM_FILES]  # a file browser's .DS_Store is no data
    if not entries:
        return ""  # an empty folder holds nothing to lose
    if kind == "zarr":
        return "" if is_zarr_store(dest) else "a folder that is no zarr store"
    others = [f.name for f in entries if f.suffix.lower() not in (".tif", ".tiff")]
    if others:
        return f"a folder holding other files than TIFF slices ({', '.join(sorted(others)[:3])})"
    # an earlier export's slices are named DEST_00000.tif, ...: a folder of other TIFFs (a scan's
    # reconstructed slices, recon_0000.tif) is the user's data, never deleted by a slip of DEST
    ours = re.compile(re.escape(dest.name) + r"_\d+\.tif")
    foreign = sorted(f.name for f in entries if not (f.is_file() and ours.fullmatch(f.name)))
    return (f"a folder of TIFF files that no export to it wrote ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}; an export names its slices {dest.name}_00000.tif, ...)"
            if foreign else "")


def writing(dest: Path, *, what: str | None = None) -> contextlib.AbstractContextManager[Path]:
    """A hidden path beside ``dest`` (:func:`_partial_path`) to write a store, folder or file to:
    moved into place (replacing ``dest``) when the block ends without an error, removed
    otherwise, so that an interrupted write never leaves something that looks finished at
    ``dest`` (:func:`bigseg.runtime._files.replacing`; ``what``: how a full disk names it)."""
    return replacing(dest, tmp=_partial_path(dest), what=what)


def partial_writes(dest: Path) -> list[Path]:
    """The hidden folders interrupted writes of ``dest`` left beside it (:func:`_partial_path`,
    :func:`_resumable_path`: a resumable one's name ends ``-r<key>``)."""
    return sorted(dest.parent.glob(f".{glob.escape(dest.name)}.partial-*"))  # (a name may hold "[": "scan [2]")


def is_resumable(partial: Path) -> bool:
    """Whether a hidden folder of :func:`partial_writes` is a resumable write's (the same
    command takes it up) rather than one started anew."""
    return partial.name.rsplit("-", 1)[-1].startswith("r")


def _remove_stale_partials(dest: Path, *, keep: Path | None = None, resumable: bool = True) -> None:
    """Remove the hidden folders interrupted writes of ``dest`` left (call it holding ``dest``'s
    lock: no write of it runs then), but ``keep``; with ``resumable=False`` only those of
    writes without a resume key (:func:`_partial_path`; a resumable one's name is ``-r<key>``)."""
    for stale in partial_writes(dest):
        if stale != keep and (resumable or not is_resumable(stale)):
            _remove(stale)


def _axes(dims: tuple[str, ...], unit: str, t_unit: str = "") -> list[dict[str, Any]]:
    axes = []
    for d in dims:
        if d == "t":
            named = ome_time_unit(t_unit)  # OME-Zarr's name of the times' unit (none for "cycle")
            axes.append({"name": "t", "type": "time", **({"unit": named} if named else {})})
        elif d == "c":
            axes.append({"name": "c", "type": "channel"})
        else:
            ax: dict[str, Any] = {"name": d, "type": "space"}
            if ome_unit(unit):
                ax["unit"] = ome_unit(unit)
            axes.append(ax)
    return axes


def _level_scale(dims: tuple[str, ...], voxel_size: tuple[float, ...], level: int, t_step: float = 1.0) -> list[float]:
    spatial = dict(zip(("z", "y", "x"), voxel_size))
    return [spatial[d] * 2**level if d in spatial else t_step if d == "t" else 1.0 for d in dims]


def _time_axis(vol: xr.DataArray) -> tuple[float, float, bool]:
    """A series' time step and first time as OME-Zarr's ``t`` scale and translation state them
    (other readers' times): those of evenly spaced times, else (1, 0): steps 0, 1, 2, ... (the
    times themselves are kept in bigseg's metadata, :func:`_times`); and whether they state the
    times (False for uneven ones: the axis then states no unit, its steps 0, 1, 2 being no times)."""
    if "t" not in vol.dims or "t" not in vol.coords or vol.coords["t"].dtype.kind not in "iuf":
        return 1.0, 0.0, True
    t = np.asarray(vol.coords["t"].values, np.float64)
    if t.size == 1:
        return 1.0, float(t[0]), True
    step = float((t[-1] - t[0]) / (t.size - 1))
    if not step > 0 or not np.allclose(np.diff(t), step, rtol=1e-9, atol=0):
        return 1.0, 0.0, False
    return step, float(t[0]), True


def _level_origin(origin: tuple[float, ...], voxel_size: tuple[float, ...], level: int,
                  labels: bool) -> tuple[float, ...]:
    """Where the first voxel centre of pyramid ``level`` lies: an image level averages blocks of
    2**level voxels, so its first voxel sits (2**level - 1) / 2 voxels in (each level's voxels
    over the voxels they average, as a viewer overlays them); a label level keeps every
    2**level-th voxel from the first, so it starts where level 0 does (a box of a scan: its
    ``origin``)."""
    shift = 0.0 if labels else (2**level - 1) / 2.0
    return tuple(o + shift * v for o, v in zip(origin, voxel_size))


def _downsample(arr: da.Array, dims: tuple[str, ...], labels: bool) -> da.Array:
    factors = {i: (2 if d in ("z", "y", "x") else 1) for i, d in enumerate(dims)}
    if labels:  # nearest: keep label values valid; trimmed as the image's mean is, so level k has its shape
        return arr[tuple(slice(0, (n // factors[i]) * factors[i], factors[i]) for i, n in enumerate(arr.shape))]
    from ..kernels.filters import exact_float_dtype, rounded_into  # (float32 made inf of 1e300 and moved 2**30 + 7 by up to 64)

    # float input averaged in float64: float32 sums of 8 voxels rounded by the block's memory layout, so a
    # level's values hung on the chunking by an ulp (integers of up to 16 bits sum exactly in float32)
    work = np.float64 if arr.dtype.kind == "f" else exact_float_dtype(arr.dtype)
    smaller = da.coarsen(np.mean, arr.astype(work), factors, trim_excess=True)
    if np.issubdtype(arr.dtype, np.integer):
        # (a 64-bit integer's largest values average to one past it in float64: kept, not wrapped)
        return smaller.map_blocks(rounded_into, arr.dtype, dtype=arr.dtype, token="coarsen")
    return smaller.astype(arr.dtype)


def _most_levels(vol: xr.DataArray) -> int:
    """The most pyramid levels that keep at least one voxel per spatial axis (level k: 2**k smaller)."""
    return 1 + int(np.floor(np.log2(min(vol.sizes[d] for d in ("z", "y", "x") if d in vol.dims))))


def _check_levels(levels: int, vol: xr.DataArray) -> int:
    """``levels`` when every level keeps at least one voxel per spatial axis (level k: 2**k smaller)."""
    smallest = min(vol.sizes[d] for d in ("z", "y", "x") if d in vol.dims)
    most = _most_levels(vol)
    if levels > most:
        raise InputError(f"Expected `levels` at most {most} for shape {tuple(vol.shape)} (level k is 2**k times "
                         f"smaller; the shortest axis has {smallest} voxels). Got {levels} instead.")
    return levels


def _write_multiscale(
    group: zarr.Group,
    vol: xr.DataArray,
    *,
    chunks: tuple[int, ...],
    levels: int,
    labels: bool,
    desc: str,
    progress: bool,
    manifest: Path | None = None,
    of_image: bool = False,
) -> None:
    """Write ``vol`` and its pyramid into ``group``. With ``manifest`` (a folder) level 0 is
    stored block by block with a marker per finished block (:func:`store_resumable`): blocks
    already marked there, from an interrupted write of the same array, are not computed again;
    the pyramid is then made from the stored level 0. ``of_image``: a label image inside an
    image's ``labels/`` (its ``image-label`` names the image two levels up; one saved alone names none)."""
    dims = tuple(vol.dims)
    arr = on_host(vol.data)  # blocks on a GPU (CuPy) go to the store through the host
    v2 = group.metadata.zarr_format == 2  # a label image in another writer's OME-Zarr v0.4 image
    named = {**_checked_chunks(v2), **({} if v2 else {"dimension_names": list(dims)})}  # (v2 has no dimension names)
    targets, sources, datasets = [], [], []
    t_step, t0, timed = _time_axis(vol)
    for level in range(levels):
        if level:
            arr = _downsample(arr, dims, labels)
            if 0 in arr.shape:
                break
        lvl_chunks = tuple(min(c, s) for c, s in zip(chunks, arr.shape))
        arr = arr.rechunk(lvl_chunks)
        if manifest is not None and level == 0:  # an interrupted write of the same array: its marked blocks stay
            target = resumable_array(group, "0", shape=arr.shape, chunks=lvl_chunks, dtype=arr.dtype,
                                     manifest=manifest, **named)
        else:
            target = group.create_array(
                str(level),
                shape=arr.shape,
                chunks=lvl_chunks,
                dtype=arr.dtype,
                **named,
                fill_value=0,
                overwrite=True,
            )
        if manifest is not None and level == 0:
            store_resumable(arr, target, manifest, desc=desc, progress=progress)
            arr = da.from_zarr(target)  # the pyramid from what is on disk
        else:
            targets.append(target)
            sources.append(arr)
        transforms: list[dict[str, Any]] = [
            {"type": "scale", "scale": _level_scale(dims, vol.attrs["voxel_size"], level, t_step)}]
        at = dict(zip(("z", "y", "x"), _level_origin(origin_of(vol), vol.attrs["voxel_size"], level, labels)), t=t0)
        if any(at.values()):  # where the level's first voxel centre (and first time) lies (OME-Zarr translation)
            transforms.append({"type": "translation", "translation": [at.get(d, 0.0) for d in dims]})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    if sources:  # (in one graph, each level's tasks named by the stages that make it)
        compute(*stored_named(sources, targets), desc=desc if manifest is None else f"{desc} (pyramid)",
                progress=progress)
    meta: dict[str, Any] = {
        "version": OME_VERSION,
        "multiscales": [
            {
                "name": vol.name or "volume",
                "axes": _axes(dims, vol.attrs["unit"],
                              time_unit(vol.coords["t"]) if "t" in vol.coords and timed else ""),
                "datasets": datasets,
                "type": "nearest" if labels else "mean",
            }
        ],
    }
    phases = vol.attrs.get("phases")
    if phases is not None:
        meta["image-label"] = {
            "colors": [{"label-value": i, "rgba": list(phase_colour(p, i))} for i, p in enumerate(phases)],
            "properties": [{"label-value": i, "name": p} for i, p in enumerate(phases)],
            **({"source": {"image": "../../"}} if of_image else {}),
        }
    elif labels:  # instance labels (e.g. particle ids): no names, viewers pick the colours
        meta["image-label"] = {"source": {"image": "../../"}} if of_image else {}
    channels = vol.attrs.get("channels") if "c" in dims else None
    if channels is not None and len(channels) == vol.sizes["c"]:  # probabilities: each channel named and
        # coloured by its phase for other viewers (napari, Fiji/MoBIE read OME's "omero" block), 0..1 shown
        meta["omero"] = {"channels": [
            {"label": str(n), "color": "".join(f"{v:02X}" for v in phase_colour(str(n), i)[:3]), "active": True,
             "window": {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0}} for i, n in enumerate(channels)],
            "rdefs": {"model": "color"}}
    if v2:  # OME-Zarr v0.4: its metadata at the top, each with its version
        group.attrs["multiscales"] = [{**ms, "version": "0.4"} for ms in meta["multiscales"]]
        if "image-label" in meta:
            group.attrs["image-label"] = {**meta["image-label"], "version": "0.4"}
        if "omero" in meta:
            group.attrs["omero"] = meta["omero"]
    else:
        group.attrs["ome"] = meta
    times = _times(vol)
    group.attrs["bigseg"] = {
        "voxel_size": list(vol.attrs["voxel_size"]),
        "unit": vol.attrs["unit"],
        **({"phases": list(phases)} if phases is not None else {}),
        **({"times": times} if times is not None else {}),
        **({"time_unit": time_unit(vol.coords["t"])} if "t" in vol.coords and time_unit(vol.coords["t"]) else {}),
        **({"source_region": vol.attrs["source_region"]} if "source_region" in vol.attrs else {}),
        **({"channels": list(vol.attrs["channels"])} if "channels" in vol.attrs and "c" in dims else {}),
    }


#: a stored array's attribute saying that every one of its chunks was written (by :func:`_checked_chunks`)
EVERY_CHUNK_STORED = "every_chunk_stored"


def _checked_chunks(v2: bool) -> dict[str, Any]:
    """``create_array`` keywords for every array bigseg stores, so that a damaged copy is found when read,
    not measured. Each chunk's zstd frame carries a checksum of its content (xxhash64, 4 bytes a chunk):
    without one a bit flipped in a chunk file (bit rot, a copy damaged on its way) decoded to other voxel
    values without a word. Every chunk is written, one of fill values too (a few bytes compressed), and the
    array says so (``attrs["bigseg"]["every_chunk_stored"]``): zarr reads a chunk file missing from such an
    array (a copy that stopped part-way) as zeros, which :class:`_StoredArray` refuses instead."""
    import numcodecs
    from zarr.codecs import ZstdCodec

    return {"compressors": numcodecs.Zstd(level=0, checksum=True) if v2 else ZstdCodec(level=0, checksum=True),
            # OME-Zarr v0.4 (zarr v2) chunk keys are paths, 0/1/2: "/" is the only separator it allows
            **({"chunk_key_encoding": {"name": "v2", "separator": "/"}} if v2 else {}),
            "config": {"write_empty_chunks": True}, "attributes": {"bigseg": {EVERY_CHUNK_STORED: True}}}


def _times(vol: xr.DataArray) -> list[float] | None:
    """A series' ``t`` coordinate when it is not just 0, 1, 2, ... (kept in bigseg's metadata:
    OME-Zarr's ``scale`` can only say a constant time step)."""
    if "t" not in vol.dims or "t" not in vol.coords:
        return None
    t = np.asarray(vol.coords["t"].values)
    if t.dtype.kind not in "iuf" or is_step_index(t):
        return None
    return [float(v) for v in t]


def _values_named(block: Any, names: tuple[str, ...], argument: str) -> Any:
    """``block`` as it is, once each of its values is a phase's index or 255 (unlabelled)."""
    if block.size == 0 or (block.min() >= 0 and block.max() < len(names)):  # the common case: two reductions
        return block
    bad = ((block >= len(names)) & (block != UNLABELLED)) | (block < 0)
    if bad.any():
        raise InputError(f"Expected `{argument}` to name every label value (0..{len(names) - 1}; 255: unlabelled). "
                         f"Got {len(names)} names {list(names)} and the value {int(block[bad][0])} in the data.")
    return block


def _prepare(
    data: Any, *, chunks: Any, voxel_size: Any, phases: Any, unit: str | None, check_values: bool = True,
    argument: str = "data", label_image: bool = False,
) -> tuple[xr.DataArray, tuple[int, ...]]:
    vol = numeric_times(as_volume(data, name=argument, ndim=(3, 4, 5)), argument)  # (t,) (c,) z, y, x
    if "phase" in vol.dims:  # probabilities: one channel per phase, their names kept (open_volume gives them back)
        names = [str(v) for v in vol.coords["phase"].values] if "phase" in vol.coords else None
        vol = vol.drop_vars("phase", errors="ignore").rename(phase="c")
        if vol.dtype.kind == "f" and vol.dtype.itemsize > 2:  # stored as float16 (API: half the disk)
            vol = vol.astype(np.float16)
        if names is not None:
            vol.attrs["channels"] = names
    attrs = dict(vol.attrs)
    # where the first voxel lies, in voxels of the grid it is given on (a box cut from a scan)
    first = origin_voxels(vol)
    if not np.all(np.isfinite(first)):  # (NaN in zarr.json: no JSON, a web viewer's JSON.parse refused the store)
        raise InputError(f"Expected `{argument}`'s z, y, x coordinates to be finite numbers (where its voxels lie). "
                         f"Got its first voxel at {origin_of(vol)} instead.")
    if voxel_size is not None:
        attrs["voxel_size"] = parse_voxel_size(voxel_size)
    attrs["unit"] = unit_for(unit, voxel_size, attrs.get("unit", "voxel"))
    if phases is not None:
        attrs["phases"] = parse_phases(phases)
    if vol.dtype == np.bool_ and (label_image or attrs.get("phases") is not None):  # a mask, as labels
        vol = mask_as_labels(vol, attrs["phases"] if phases is not None else None)
        attrs["phases"] = vol.attrs["phases"]
    if attrs.get("phases") is not None and not np.issubdtype(vol.dtype, np.integer):
        why = ("`phases` names its values" if phases is not None else
               f"its attrs['phases'] {list(attrs['phases'])} name its values, e.g. kept from the labels it was "
               f"computed from")
        fix = "round and cast it to an integer dtype (e.g. .astype('uint8'))" + (
            "" if label_image or phases is not None else
            f", or to store grey values drop the names first ({argument}.attrs.pop('phases'))")
        raise InputError(f"Expected `{argument}` to have an integer dtype for a label volume ({why}). "
                         f"Got {vol.dtype} instead: {fix}.")
    vol = vol.assign_attrs(attrs)
    if attrs.get("phases") is not None and check_values:  # checked as each block is written (a pass of its own
        # would read the data twice); an error leaves nothing that looks written
        vol = vol.copy(data=vol.data.map_blocks(_values_named, names=tuple(attrs["phases"]), dtype=vol.dtype,
                                                argument="phases" if phases is not None else "data.attrs['phases']"))
    vs = attrs.get("voxel_size", (1.0, 1.0, 1.0))
    vol = vol.assign_coords({d: (i0 + np.arange(vol.sizes[d])) * v
                             for d, i0, v in zip(("z", "y", "x"), first, vs) if d in vol.dims})
    given = chunks is not None
    if chunks is None:
        chunks = tuple(max(c) for c in vol.data.chunks)
        if vol.dims[0] == "t":
            chunks = (1, *chunks[1:])
    elif vol.dims[0] == "t" and (np.ndim(chunks) == 0 or len(chunks) == 3):
        chunks = (1, *parse_chunks(chunks, 3))  # spatial chunks (e.g. a run configuration's): one scan per chunk
    chunks = list(parse_chunks(chunks, vol.ndim))
    # no chunk bigger than a reader takes (MAX_STORED_CHUNK: bigseg refuses larger ones when opening a store),
    # nor, where bigseg chooses them, than a viewer decodes at ease (MAX_CHOSEN_CHUNK)
    most = MAX_STORED_CHUNK if given else min(MAX_STORED_CHUNK, MAX_CHOSEN_CHUNK)
    while math.prod(min(c, n) for c, n in zip(chunks, vol.shape)) * vol.dtype.itemsize > most:
        if given:
            raise InputError(f"Expected `chunks` whose blocks of {vol.dtype} take at most "
                             f"{format_bytes(MAX_STORED_CHUNK)} each (a reader decodes a whole block; bigseg refuses "
                             f"larger ones when it opens a store). Got {tuple(chunks)} instead: smaller chunks.")
        i = int(np.argmax([min(c, n) for c, n in zip(chunks, vol.shape)]))  # an array's own, too big: halved
        chunks[i] = -(-min(chunks[i], vol.shape[i]) // 2)
    return vol, tuple(chunks)


def _write(dest: Path, vol: xr.DataArray, *, chunks: tuple[int, ...], levels: int, labels: bool, desc: str,
           progress: bool, resume_key: str | None, argument: str, zarr_format: int = 3, of_image: bool = False) -> None:
    """Write ``vol`` (and its pyramid) into a hidden sibling of ``dest``, renamed into place when
    complete. Without ``resume_key`` the hidden folder is removed on any error; with it, it is
    named by the key and kept, and a later write of the same key computes only the level-0
    blocks its manifest does not mark as on disk (folders of other keys are removed). One
    process at a time writes ``dest`` (another is refused, naming ``argument``)."""
    what = f"`{argument}` {str(dest)!r} ({format_bytes(vol.nbytes)} before compression)"  # (a full disk's error)
    with held(dest, argument=argument, resumes=resume_key is not None):
        try:
            _write_held(dest, vol, chunks=chunks, levels=levels, labels=labels, desc=desc, progress=progress,
                        resume_key=resume_key, zarr_format=zarr_format, of_image=of_image, what=what)
        except OSError as exc:
            full = exc.errno in FULL
            # a destination that stopped taking writes part-way (made read-only, its mount gone stale or
            # remounted read-only, its permissions changed): said as such, not as a traceback of zarr's
            # store; only for files of this output (an input file that cannot be read is another error)
            ours = str(exc.filename or "").startswith((str(dest), str(dest.parent / f".{dest.name}.")))
            if not full and not (ours and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO,
                                                         errno.ESTALE)):
                raise
            again = "once there is room" if full else "once it can write there again"
            kept = (f" The blocks already written are kept: the same command resumes {again}."
                    if resume_key is not None else " Nothing that looks finished was left.")
            if full:
                raise no_room(exc, what, kept=kept) from None
            raise OutputNotWritableError(
                f"Expected `{argument}` {str(dest)!r} to stay writable until it is written. Got: {exc.strerror} "
                f"writing {str(exc.filename)!r} part-way through.{kept} Make the destination writable again, or "
                "write it elsewhere.") from None


def _write_held(dest: Path, vol: xr.DataArray, *, chunks: tuple[int, ...], levels: int, labels: bool, desc: str,
                progress: bool, resume_key: str | None, zarr_format: int = 3, of_image: bool = False,
                what: str | None = None) -> None:
    if resume_key is None:
        _remove_stale_partials(dest, resumable=False)  # a killed write's (a resumable one's blocks are kept)
        with writing(dest, what=what) as tmp:
            group = zarr.open_group(_store(tmp, "w"), mode="w", zarr_format=zarr_format)
            _write_multiscale(group, vol, chunks=chunks, levels=levels, labels=labels, desc=desc, progress=progress,
                              of_image=of_image)
        return
    tmp = _resumable_path(dest, str(resume_key))
    _remove_stale_partials(dest, keep=tmp)  # interrupted writes of other inputs
    started = (tmp / ("zarr.json" if zarr_format == 3 else ".zgroup")).exists()
    group = zarr.open_group(_store(tmp, "a"), mode="a" if started else "w", zarr_format=zarr_format)
    _write_multiscale(group, vol, chunks=chunks, levels=levels, labels=labels, desc=desc, progress=progress,
                      manifest=tmp / ".blocks-done", of_image=of_image)
    shutil.rmtree(tmp / ".blocks-done", ignore_errors=True)
    move_into_place(tmp, dest)


def save_volume(
    data: Any,
    path: str | os.PathLike,
    *,
    chunks: Any = None,
    voxel_size: Any = None,
    phases: list[str] | None = None,
    unit: str | None = None,
    levels: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    resume_key: str | None = None,
) -> str:
    """Write a volume as an OME-Zarr v0.5 image (zarr v3), block by block.

    Parameters
    ----------
    data : DataArray, dask or NumPy array, (z, y, x) or (t, z, y, x); probabilities (a
        ``phase`` dim, as :func:`bigseg.predict` gives them) are stored as float16, one channel
        per phase
    path : destination folder (conventionally ``*.ome.zarr``)
    chunks : int or one int per axis; default: the input's chunking, each halved along its
        longest edge until it holds at most 64 MiB (256³ float32). For a (t, z, y, x) series
        an int or 3 ints are the spatial chunks, with one time step per chunk
    voxel_size : float or (z, y, x) in ``unit``; default: ``data.attrs["voxel_size"]`` or 1
    phases : phase names indexed by label value; marks the volume as a label image (default
        ``data.attrs["phases"]``). A boolean mask with phase names (``labels == 2`` keeps the
        labels') is stored as uint8 labels named ``["background", "foreground"]`` unless
        ``phases`` names them
    levels : number of pyramid levels (level k is downsampled by 2**k in z, y, x)
    overwrite : replace an existing destination (only once the new volume is complete); label
        images saved into it go with it (:class:`~bigseg.errors.LabelsReplacedWarning` names them)
    resume_key : a string naming what ``data`` is made from: an interrupted write is kept and
        the same key later computes only the blocks not yet on disk (see :func:`save_labels`)
    progress : a progress bar on stderr (on a terminal drawn in place, in a log a line every 30 s); False: none

    Returns
    -------
    str, the path written.

    Examples
    --------
    >>> import os, shutil, tempfile
    >>> import numpy as np
    >>> import bigseg
    >>> tmp = tempfile.mkdtemp()
    >>> data = np.random.default_rng(0).random((32, 32, 32), dtype=np.float32)
    >>> path = bigseg.save_volume(data, os.path.join(tmp, "scan.ome.zarr"), chunks=16,
    ...                           voxel_size=(100, 50, 50), unit="nm", progress=False)
    >>> os.path.basename(path)
    'scan.ome.zarr'
    >>> vol = bigseg.open_volume(path)
    >>> vol.shape, vol.data.chunksize, vol.attrs["voxel_size"]
    ((32, 32, 32), (16, 16, 16), (100.0, 50.0, 50.0))
    >>> bool((vol.values == data).all())
    True
    >>> shutil.rmtree(tmp)
    """
    return write_volume(data, path, chunks=chunks, voxel_size=voxel_size, phases=phases, unit=unit, levels=levels,
                        overwrite=overwrite, progress=progress, resume_key=resume_key, argument="path")


def write_volume(data: Any, path: str | os.PathLike, *, chunks: Any = None, voxel_size: Any = None,
                 phases: list[str] | None = None, unit: str | None = None, levels: int = 1, overwrite: bool = False,
                 progress: bool = True, resume_key: str | None = None, argument: str = "path",
                 zarr_format: int = 3) -> str:
    """:func:`save_volume`, its destination named ``argument`` in what it says (an unwritable,
    full or locked destination of ``ingest`` is its `dest`); ``zarr_format=2``: OME-Zarr v0.4
    (an image written inside another writer's v0.4 store, as its label images are)."""
    dest = parse_path(argument, path).absolute()  # workers elsewhere (another working directory) write where the caller means
    levels = parse_positive_int("levels", levels)  # 0 was taken as 1
    if unit is not None:  # the caller's (a volume's own unit, from any writer, is kept as it is)
        parse_unit(unit)
    vol, chunks = _prepare(data, chunks=chunks, voxel_size=voxel_size, phases=phases, unit=unit)
    _check_levels(levels, vol)
    _check_dest(dest, overwrite, argument)
    replaced = label_names(dest / "labels") if dest.is_dir() else []
    _write(dest, vol, chunks=chunks, levels=levels, labels="phases" in vol.attrs, desc=f"writing {shown_name(dest)}",
           progress=progress, resume_key=resume_key, argument=argument, zarr_format=zarr_format)
    if replaced and _SAY_LABELS_REPLACED.get():  # an image is replaced whole: its labels described the old one (a filtered copy saved over
        # its own source lost a segmentation without a word)
        warn_caller(f"{str(dest)!r} was replaced, and with it the label images saved into it "
                    f"({', '.join(replaced)}): they described the image that was there. Save them again with "
                    "bigseg.save_labels if they still apply, or write the new image elsewhere.", LabelsReplacedWarning)
    return str(dest)


def save_labels(
    labels: Any,
    image_path: str | os.PathLike,
    *,
    name: str = "segmentation",
    phases: list[str] | None = None,
    chunks: Any = None,
    levels: int | None = None,
    instances: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    resume_key: str | None = None,
) -> str:
    """Write a label volume into ``image_path/labels/name`` (OME-Zarr label image).

    The image's voxel size and unit are used; phases come from ``phases`` or
    ``labels.attrs["phases"]``, except for ``instances=True`` (one value per object, e.g.
    :func:`bigseg.measure.particle_labels`: no phase names). A boolean mask is stored as uint8
    labels named ``["background", "foreground"]`` unless ``phases`` names them.

    Parameters
    ----------
    labels : integer label volume (z, y, x) or series (t, z, y, x) on the image's grid
        (DataArray, dask or NumPy; a boolean mask too).
    image_path : the OME-Zarr image (e.g. written by :func:`save_volume` or :func:`bigseg.ingest`).
    name : the label image's name under ``labels/`` (default ``"segmentation"``).
    phases : phase names by label value; default ``labels.attrs["phases"]``.
    chunks : the label image's chunks (an int or one per axis, in voxels; default those of
        ``labels``, as :func:`save_volume`).
    levels : pyramid levels (each halves z, y and x, keeping every other voxel, so that level k
        has the image's level-k shape); default None: as many as the image has, as far as the
        shape allows, so that a viewer browses both at every level.
    instances : True: one value per object (e.g. :func:`bigseg.measure.particle_labels`), no
        phase names and no check of the values against them (default False).
    overwrite : replace an existing label image of that ``name`` (default False: refused,
        :class:`~bigseg.errors.OutputExistsError`).
    progress : a progress bar on stderr (default on; False: none).
    resume_key : a string that names what ``labels`` are computed from (e.g. the source and
        every setting). The write then goes block by block into a hidden folder named by the key,
        each finished block marked in a manifest, and the folder is kept if the write fails or is
        killed: writing the same key again computes only the blocks not yet on disk (a folder left
        by another key is removed). Default None: a failed write leaves nothing.

    Returns
    -------
    The label image's path (str).

    Examples
    --------
    Labels stored beside their image, as ``labels/truth``:

    >>> import os, shutil, tempfile
    >>> import bigseg
    >>> from bigseg import synth
    >>> tmp = tempfile.mkdtemp()
    >>> labels = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
    >>> image = bigseg.save_volume(synth.xct(labels), os.path.join(tmp, "scan.ome.zarr"), progress=False)
    >>> path = bigseg.save_labels(labels, image, name="truth", progress=False)
    >>> os.path.relpath(path, tmp).split(os.sep)
    ['scan.ome.zarr', 'labels', 'truth']
    >>> bigseg.open_volume(path).attrs["phases"]
    ['pore', 'cbd', 'active']
    >>> shutil.rmtree(tmp)
    """
    check_label_name(name)  # before anything: "" or "../x" would name the labels group or a place outside it
    instances = parse_flag("instances", instances)  # ("no" was truthy: the phases check skipped)
    image_path = image_of(parse_path("image_path", image_path).absolute())  # (workers elsewhere; a bioformats2raw store: its image)
    check_label_name(name, label_names(image_path / "labels"))
    image = open_volume(image_path)
    vol, chunks = _prepare(labels, chunks=chunks, voxel_size=image.attrs["voxel_size"], phases=phases,
                           unit=image.attrs["unit"], check_values=not instances, argument="labels",
                           label_image=not instances)
    if "phases" not in vol.attrs and not instances:
        raise InputError("Expected `phases` (or `labels.attrs['phases']`) for a label image. Got None instead.")
    if instances and not np.issubdtype(vol.dtype, np.integer):
        raise InputError(f"Expected integer instance labels. Got dtype {vol.dtype} instead.")
    if vol.shape != image.shape:
        raise InputError(
            f"Expected `labels` to have the image's shape {image.shape}. Got {vol.shape} instead."
        )
    if isinstance(labels, xr.DataArray):  # stored on the image's grid: one stated otherwise is said
        warn_other_grid(image, image, "image_path", labels, as_volume(labels, name="labels", allow_series=True),
                        "labels", stacklevel=3, then="The labels are stored on the image's grid.")
    vol = vol.assign_coords({d: image.coords[d].values for d in ("z", "y", "x")})  # the image's grid and place
    if "t" in image.coords:  # and times (in their unit): OME-Zarr's t axis the same as the image's
        vol = vol.assign_coords(t=image.coords["t"])
    vol.name = name
    if levels is None:
        levels = max(1, min(len(_ome_meta(zarr.open_group(_store(image_path), mode="r"))["multiscales"][0]["datasets"]),
                            _most_levels(vol)))
    levels = _check_levels(parse_positive_int("levels", levels), vol)
    dest = _member(image_path, f"labels/{name}", "the label image `name`", refused="not written")
    _check_dest(dest, overwrite, "name")
    lgroup = labels_group(image_path)
    replaced = dest.exists()
    _write(dest, vol, chunks=chunks, levels=levels, labels=True, desc=f"writing labels/{name}", progress=progress,
           resume_key=resume_key, argument="name", zarr_format=lgroup.metadata.zarr_format, of_image=True)
    _relist(lgroup, image_path / "labels")  # this one, and any a killed write left unlisted
    if replaced:  # what was stored beside the labels replaced (a model's probabilities) no longer matches them
        _drop_companions(image_path / "labels", name)
    return str(dest)


def check_label_name(name: Any, among: Any = ()) -> str:
    """A label image's name: one plain folder name inside ``labels`` (not empty, no path, not
    hidden) that every file system takes, so the store can be copied anywhere: none of the
    characters Windows forbids (``<>:"|?*``, control characters), no dot or space at the end
    (Windows drops them: a store made on Linux with ``run:2`` could not be copied there), nor
    one of the label images ``among`` in other case (``Seg`` beside ``seg``: one folder on
    macOS and Windows, where the one replaced the other)."""
    if not isinstance(name, str) or not name or any(c in name for c in '/\\<>:"|?*') or name.startswith(".") \
            or name.endswith((".", " ")) or not name.isprintable():
        raise InputError(f"Expected `name` to be a plain folder name (e.g. 'segmentation'; none of < > : \" | ? *, "
                         f"not ending in '.' or ' '). Got {name!r} instead.")
    other = next((n for n in among if n != name and folded(n) == folded(name)), None)
    if other is not None:
        raise InputError(f"Expected `name` to differ from the label image {other!r} in more than case (one folder on "
                         f"macOS and Windows). Got {name!r} instead.")
    return name


def _drop_companions(ldir: Path, name: str) -> None:
    """Remove ``NAME_probabilities`` / ``NAME_uncertainty`` stored for an earlier ``labels/NAME``
    (their ``probabilities_of`` / ``uncertainty_of`` says so) and its prediction record."""
    for suffix, key in (("_probabilities", "probabilities_of"), ("_uncertainty", "uncertainty_of")):
        path = ldir / f"{name}{suffix}"
        try:
            of = dict(zarr.open_group(_store(path), mode="r").attrs).get("bigseg", {}).get(key)
        except Exception:  # nothing there (zarr raises several types)
            continue
        if of == name:
            shutil.rmtree(path, ignore_errors=True)
    group = labels_group(ldir.parent)
    meta = dict(group.attrs.get("bigseg", {}))
    if name in meta.get("predictions", {}):
        meta["predictions"] = {k: v for k, v in meta["predictions"].items() if k != name}
        group.attrs["bigseg"] = meta


def add_bigseg_attrs(path: Any, **items: Any) -> None:
    """``items`` into the ``bigseg`` attributes of the zarr group at ``path`` (a run's stamp, a
    generated store's seed and physics, whose labels a probability image holds), the others
    kept; written only where something changes (a resumed run leaves the store as it is)."""
    group = zarr.open_group(_store(path, "r+"), mode="r+")
    meta = dict(group.attrs.get("bigseg", {}))
    if any(meta.get(k) != v for k, v in items.items()):
        group.attrs["bigseg"] = {**meta, **items}


def _ome_meta(group: zarr.Group) -> dict[str, Any]:
    attrs = dict(group.attrs)
    return attrs.get("ome", attrs)  # v0.5 nests under "ome"; v0.4 (zarr v2) does not


def _set_ome(group: zarr.Group, **items: Any) -> None:
    """Set OME-Zarr metadata of ``group`` where its version keeps it (v0.5: under "ome")."""
    if group.metadata.zarr_format == 2:
        group.attrs.update(items)
    else:
        group.attrs["ome"] = {"version": OME_VERSION, **dict(group.attrs.get("ome", {})), **items}


def labels_group(image_path: str | os.PathLike) -> zarr.Group:
    """The ``labels`` group of an OME-Zarr image, made if needed, in the image's zarr format: in
    another writer's v0.4 image (zarr v2) labels stay v0.4 (a zarr v3 ``labels`` beside its
    ``.zgroup`` hid that writer's label list, and its readers saw no label bigseg wrote)."""
    image_path = Path(image_path)
    zarr_format = zarr.open_group(_store(image_path), mode="r").metadata.zarr_format
    return zarr.open_group(_store(image_path / "labels", "a"), mode="a", zarr_format=zarr_format)


def remove_label(image_path: str | os.PathLike, name: str) -> bool:
    """Remove the label image ``image_path/labels/name`` and its entry in the labels group's
    list (e.g. a run's particle labels that a later run of the same folder no longer makes);
    False when there is none."""
    check_label_name(name)
    ldir = Path(image_path) / "labels"
    if not (ldir / name).exists():
        return False
    _remove(ldir / name)
    _relist(labels_group(image_path), ldir)
    return True


def label_names(group: str | os.PathLike) -> list[str]:
    """The label images of an OME-Zarr ``labels`` group (``[]`` when it has none): those its list
    names that are there, then, by name, any complete label image it does not list. A process
    killed between moving a label image into place and listing it (:func:`save_labels`), or
    between removing one and unlisting it (:func:`remove_label`), left the list short or naming
    nothing: read as what is on disk, and the list mended by the next write (:func:`_relist`)."""
    ldir = Path(group)
    try:
        listed = list(_ome_meta(zarr.open_group(_store(ldir), mode="r")).get("labels", []))
    except Exception:  # not a zarr group (zarr raises several types)
        return []
    there = [n for n in listed if isinstance(n, str) and (ldir / n).is_dir()]
    unlisted = sorted(p.name for p in ldir.iterdir()
                      if p.name not in listed and not p.name.startswith(".") and is_label_image(p))
    return there + unlisted


def is_label_image(path: Path) -> bool:
    """Whether ``path`` is a complete OME-Zarr label image (its metadata, written last, names
    its levels and says it holds labels: a NAME_probabilities image beside it is none)."""
    try:
        meta = _ome_meta(zarr.open_group(_store(path), mode="r"))
    except Exception:  # no zarr group (zarr raises several types)
        return False
    return "multiscales" in meta and "image-label" in meta


def _relist(lgroup: zarr.Group, ldir: Path) -> None:
    """The OME list of the labels group ``lgroup`` (at ``ldir``) made to name the label images
    there (:func:`label_names`), what viewers (napari-ome-zarr) read; written only if it differs."""
    names = label_names(ldir)
    if names != list(_ome_meta(lgroup).get("labels", [])):
        _set_ome(lgroup, labels=names)


#: what a store entry that is no regular file is, by its ``stat`` type (:class:`_Store`)
_NOT_A_FILE = {stat.S_IFIFO: "a FIFO (named pipe): reading it waits for a writer forever",
               stat.S_IFCHR: "a character device (such as /dev/zero: reading it never ends)",
               stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


class _Store(LocalStore):
    """zarr's local store, whose every read (metadata, chunk, a shard's part) is of a regular file inside
    its folder once links are followed, else refused naming the store and the entry: zarr read whatever a
    key named, so a store received from elsewhere with a chunk linked to /dev/zero read without end (all
    memory), and a FIFO in place of a chunk or zarr.json waited for a writer forever, deaf to SIGTERM.
    One ``lstat`` and one ``realpath`` a file read; a file missing stays zarr's (the fill value)."""

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        self._check_entry(key)
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(self, prototype: Any, key_ranges: Any) -> Any:
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._check_entry(key)
        return await super().get_partial_values(prototype, key_ranges)

    def _real_root(self) -> str:
        """The store's folder, links followed (once a store and process: a metadata operation less per chunk
        read; kept apart from the store's attributes, which its dask token is made of)."""
        return _real_folder(str(self.root))

    def _check_entry(self, key: str) -> None:
        path = os.path.join(self.root, key)
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # none there (zarr reads the fill value), or a parent that is no folder
            return
        base = self._real_root()
        real = os.path.realpath(path)  # (a folder of the key linked out of the store too)
        if not real.startswith(base.rstrip(os.sep) + os.sep):
            what = f"a link out of the store, to {real!r}"
        else:
            if stat.S_ISLNK(mode):
                try:
                    mode = os.stat(real).st_mode
                except OSError:  # a link to nothing: zarr's (the fill value)
                    return
            if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
                return
            what = _NOT_A_FILE.get(stat.S_IFMT(mode), "no regular file")
        raise VolumeFormatError(
            f"Expected the zarr store {str(self.root)!r} to hold its chunks and metadata as regular files inside it. "
            f"Got {key!r}, {what}, not a chunk or metadata file: not read. A store received from elsewhere may hold "
            f"anything; copy it again from its source (as files: cp -L, rsync -L).")


@functools.lru_cache(maxsize=256)
def _real_folder(root: str) -> str:
    return os.path.realpath(root)


#: the metadata files zarr reads to open a store (v3, v2, consolidated)
_METADATA_FILES = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")


def _store(path: Any, mode: str = "r") -> _Store:
    """The zarr store at ``path`` as every open of this module takes it (:class:`_Store`), its metadata
    files checked now: zarr reads them all at once, and one refused among the others left their reads'
    errors unretrieved (asyncio's "Future exception was never retrieved" on stderr)."""
    store = _Store(str(path), read_only=mode == "r")
    for name in _METADATA_FILES:
        store._check_entry(name)
    return store


class _StoredArray(zarr.Array):
    """A stored array opened for reading whose reads name what they could not read: a damaged
    chunk file (cut short, overwritten, zeroed) or metadata that states another dtype, shape or codec
    than the chunks were written with failed deep inside zarr/numcodecs ("Zstd decompression error",
    "cannot reshape array of size 8192") without a word of which store, let alone which chunk.
    Tokenized as the plain array, so resumable writes keep their keys."""

    def __dask_tokenize__(self) -> Any:
        import copy

        from dask.base import normalize_token
        from zarr.storage import StorePath

        plain = self._async_array
        store = plain.store_path.store
        if isinstance(store, _Store):  # as zarr's own store in the same state: the checks change no key
            own = LocalStore.__new__(LocalStore)
            own.__dict__.update(store.__dict__)
            # a copy with the other store (not dataclasses.replace: zarr < 3.1.x names a field
            # ``_config`` that __init__ takes as ``config``, and replace fails on it)
            plain = copy.copy(plain)
            object.__setattr__(plain, "store_path", StorePath(own, plain.store_path.path))
        return normalize_token(zarr.Array(plain))

    def __getitem__(self, selection: Any) -> Any:
        try:
            block = super().__getitem__(selection)
        except (BigsegError, MemoryError):
            raise
        except Exception as exc:  # zarr and its codecs raise many types (RuntimeError, ValueError, OSError, ...)
            raise VolumeFormatError(_unreadable(self, selection, exc)) from exc
        if dict(self.attrs).get("bigseg", {}).get(EVERY_CHUNK_STORED):
            _check_stored(self, selection)
        return block


def _stored_path(arr: zarr.Array) -> str:
    root = getattr(arr.store_path.store, "root", None)
    return str(Path(root) / arr.path) if root is not None else str(arr.store_path)


def _chunks_of(arr: zarr.Array, selection: Any) -> Any:
    """The grid coordinates of the chunks that ``selection`` (a box of slices) touches; none for another
    selection."""
    import itertools

    sel = selection if isinstance(selection, tuple) else (selection,)
    if sel == (Ellipsis,):
        sel = (slice(None),) * arr.ndim
    if len(sel) != arr.ndim or not all(isinstance(s, slice) and s.step in (None, 1) for s in sel):
        return iter(())
    ranges = []
    for s, n, c in zip(sel, arr.shape, arr.chunks):
        start, stop, _ = s.indices(n)
        ranges.append(range(start // c, -(-stop // c)))
    return itertools.product(*ranges)


def _check_stored(arr: zarr.Array, selection: Any) -> None:
    """Refuse a read of ``selection`` that zarr filled from a chunk missing on disk, in an array that states
    every chunk was written (one stat a chunk)."""
    from zarr.core.sync import sync

    for coords in _chunks_of(arr, selection):
        key = arr.metadata.encode_chunk_key(coords)
        if not sync((arr.store_path / key).exists()):
            raise VolumeFormatError(
                f"Expected every chunk of the stored array {_stored_path(arr)!r} on disk (it was written with every "
                f"chunk). Got no chunk {key!r}, which would read as zeros: a copy that stopped part-way (rsync, "
                f"Globus, a disk that filled), a file removed since, or metadata (zarr.json / .zarray) stating a "
                f"larger shape than was written. Copy the store again from its source.")


def _bad_chunk(arr: zarr.Array, selection: Any) -> str | None:
    """The key of the first chunk within ``selection`` (a box of slices) that cannot be read."""
    import itertools

    for coords in itertools.islice(_chunks_of(arr, selection), 4096):
        try:
            zarr.Array.__getitem__(arr, tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, arr.chunks)))
        except Exception:
            return arr.metadata.encode_chunk_key(coords)
    return None


def _unreadable(arr: zarr.Array, selection: Any, exc: Exception) -> str:
    key = _bad_chunk(arr, selection)
    what = f"its chunk {key!r}" if key else f"the region {selection!r}"
    return (f"Expected every chunk of the stored array {_stored_path(arr)!r} to be readable. Could not read {what} "
            f"({type(exc).__name__}: {exc}): a damaged chunk file (cut short, overwritten, a bit flipped that its "
            f"checksum caught), or metadata (zarr.json / .zarray) stating another dtype, shape or codec than its "
            f"chunks were written with. Copy the store again from its source.")


def _open_stored(path: Path, *, name: str = "path") -> _StoredArray:
    """The array at ``path`` for reading (see :class:`_StoredArray`); unreadable metadata named."""
    try:
        arr = _StoredArray(zarr.open_array(_store(path), mode="r")._async_array)
    except BigsegError:  # a metadata file that is no file (:class:`_Store`)
        raise
    except Exception as exc:
        raise VolumeFormatError(f"Expected `{name}` to hold a readable zarr array at {str(path)!r}. Got metadata "
                                f"that cannot be read ({type(exc).__name__}: {exc}).") from None
    # before any read: a few KB stating a huge chunk asked for all memory at the first one
    check_stored_chunk(arr.chunks, arr.dtype, name=name, value=path)
    return arr


def _member(root: Path, rel: Any, what: str, error: type[BigsegError] = VolumeFormatError, *,
            refused: str = "not read") -> Path:
    """``root / rel``, a path that a store's metadata (or ``label=``) names inside the store (a
    pyramid level, a label image, a bioformats2raw series), refused unless it stays inside
    ``root`` once links are followed: a store received from elsewhere stating ``"../other.ome.zarr/0"``,
    an absolute path or a link out of it read another store on this machine as its own."""
    target = root / str(rel)
    base = root.resolve()
    if not target.resolve().is_relative_to(base):
        raise error(f"Expected {what} to name a path inside {str(root)!r}. Got {str(rel)!r}, which leads to "
                    f"{str(target.resolve())!r}, outside it (a '..', an absolute path or a link out of the store): "
                    f"{refused}.")
    return target


def open_volume(path: str | os.PathLike, *, level: int = 0, label: str | None = None) -> xr.DataArray:
    """Lazily open an OME-Zarr image, label image or labels group as a volume.

    Parameters
    ----------
    path : an OME-Zarr image (``*.ome.zarr``), one of its label images
        (``*.ome.zarr/labels/NAME``) or its ``labels`` group (the first label is opened)
    level : pyramid level (0 = full resolution)
    label : with an image path, open ``labels/label`` instead of the image

    Never loads voxel data; the returned DataArray is backed by ``dask.array.from_zarr``.

    Examples
    --------
    A scan and its labels written into a temporary folder, then opened:

    >>> import os, shutil, tempfile
    >>> import bigseg
    >>> from bigseg import synth
    >>> labels = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
    >>> tmp = tempfile.mkdtemp()
    >>> path = os.path.join(tmp, "scan.ome.zarr")
    >>> _ = bigseg.save_volume(synth.xct(labels), path, progress=False)
    >>> _ = bigseg.save_labels(labels, path, name="truth", progress=False)
    >>> vol = bigseg.open_volume(path)  # lazy: nothing is read yet
    >>> vol.dims, vol.shape, vol.dtype.name, vol.attrs["voxel_size"], vol.attrs["unit"]
    (('z', 'y', 'x'), (32, 32, 32), 'float32', (50.0, 50.0, 50.0), 'nm')
    >>> truth = bigseg.open_volume(path, label="truth")  # or os.path.join(path, "labels", "truth")
    >>> truth.dtype.name, truth.attrs["phases"]
    ('uint8', ['pore', 'cbd', 'active'])
    >>> shutil.rmtree(tmp)
    """
    return open_named(path, level=level, label=label, name="path")


def open_named(path: str | os.PathLike, *, level: int = 0, label: str | None = None, name: str = "path") -> xr.DataArray:
    """:func:`open_volume`, its errors naming the argument ``name`` (``ingest``'s zarr `source`)."""
    p = parse_path(name, path).absolute()  # read by workers that may run in another working directory
    level = parse_nonnegative_int("level", level)  # (level=None or "3" was Python's TypeError from a comparison)
    if not p.exists():
        raise SourceNotFoundError(f"Expected `{name}` to be an existing OME-Zarr volume. Got {str(p)!r}, which does not exist.")
    p = image_of(p)  # a bioformats2raw store: its image
    if label is not None:
        p = _member(p / "labels", label, "`label`", InputError)
        if not p.exists():
            raise SourceNotFoundError(f"Expected `label` to name a label image. Got {label!r}; {str(p)!r} does not exist.")
    try:
        node = zarr.open(_store(p), mode="r")
    except BigsegError:  # a metadata file that is no file (:class:`_Store`)
        raise
    except Exception as exc:  # zarr raises several types for "not a zarr store"
        meta = next((p / f for f in ("zarr.json", ".zarray", ".zgroup") if (p / f).is_file()), None)
        if meta is not None:  # a zarr store whose own metadata is damaged: not "convert it first"
            raise VolumeFormatError(f"Expected `{name}` to be an OME-Zarr store with readable metadata. Got {str(p)!r}, "
                                    f"whose {meta.name} cannot be read ({type(exc).__name__}: {exc}).") from None
        raise VolumeFormatError(f"Expected `{name}` to be an OME-Zarr store. Got {str(p)!r}, which is not a zarr store "
                                f"(a TIFF, HDF5, raw or .npy source: convert it with bigseg.ingest / `bigseg "
                                f"ingest` first).") from None
    if isinstance(node, zarr.Array):
        level_of = _level_in_parent(p)
        if level_of is not None:  # one level of an OME-Zarr image (scan.ome.zarr/0): that image's, calibrated
            return open_named(p.parent, level=level_of, name=name)
        arr = da.from_zarr(_open_stored(p, name=name))
        if arr.ndim not in (3, 4):
            raise VolumeFormatError(f"Expected `{name}` to hold a 3D or 4D array. Got shape {arr.shape} in {str(p)!r}.")
        return make_volume(arr, name=p.name)
    meta = _ome_meta(node)
    if "labels" in meta and "multiscales" not in meta:
        names = label_names(p)  # (one listed but not there passed over)
        if not names:
            raise VolumeFormatError(f"Expected `{name}` to list at least one label image. Got none in {str(p)!r}.")
        return open_named(_member(p, names[0], f"the labels of {str(p)!r}"), level=level, name=name)
    if "multiscales" not in meta:
        raise VolumeFormatError(
            f"Expected `{name}` to be a complete OME-Zarr image (with 'multiscales' metadata). Got {str(p)!r}, "
            "which has none (an unfinished write, or not an OME-Zarr image)."
        )
    ms = meta["multiscales"][0]
    datasets = ms["datasets"]
    if not 0 <= level < len(datasets):
        raise InputError(f"Expected `level` in [0, {len(datasets)}). Got {level!r} instead.")
    ds = datasets[level]
    arr = da.from_zarr(_open_stored(_member(p, ds.get("path"), f"level {level}'s dataset path of {str(p)!r}"), name=name))
    dims = tuple(ax["name"] if isinstance(ax, dict) else ax for ax in ms["axes"])
    scale, shift = _level_transform(ms, ds, len(dims))
    spatial = [(d, s) for d, s in zip(dims, scale) if d in ("z", "y", "x")]
    if [d for d, _ in spatial] != ["z", "y", "x"]:
        raise VolumeFormatError(f"Expected spatial axes z, y, x. Got axes {dims} in {str(p)!r}.")
    bs = dict(node.attrs).get("bigseg", {})
    units = {ax.get("name"): ax.get("unit") for ax in ms["axes"]
             if isinstance(ax, dict) and ax.get("name") in ("z", "y", "x")}
    unit = bs.get("unit") or unit_from_ome(units.get("x")) or units.get("x") or "voxel"
    if not bs and len({units.get(d) for d in ("z", "y", "x")}) > 1:  # e.g. z in micrometer, y and x in nanometer
        converted = _in_unit_of_x(dims, units, scale, shift)
        if converted is None:  # said, not taken for "no voxel size stated" (as a TIFF's)
            warn_caller(f"{str(p)!r}: its axes z in {units.get('z')!r}, y in {units.get('y')!r}, x in "
                        f"{units.get('x')!r} are no voxel size in one length unit: ignored; pass the voxel size "
                        "(--voxel-size)")
            scale = [1.0 if d in ("z", "y", "x") else v for d, v in zip(dims, scale)]
            shift = [0.0 if d in ("z", "y", "x") else v for d, v in zip(dims, shift)]
            unit = "voxel"
        else:
            scale, shift = converted
        spatial = [(d, s) for d, s in zip(dims, scale) if d in ("z", "y", "x")]
    phases = bs.get("phases")
    if phases is None and "image-label" in meta:
        props = meta["image-label"].get("properties", [])
        if props:
            by_value = {int(pr["label-value"]): pr.get("name", str(pr["label-value"])) for pr in props}
            phases = [by_value.get(i, f"phase{i}") for i in range(max(by_value) + 1)]
    vol = make_volume(
        arr, voxel_size=[s for _, s in spatial], unit=unit, phases=phases, name=ms.get("name"), dims=dims,
        origin=[float(o) for d, o in zip(dims, shift) if d in ("z", "y", "x")],
    )
    times = bs.get("times")
    if "t" in vol.dims and times is not None and len(times) == vol.sizes["t"]:
        vol = vol.assign_coords(t=np.asarray(times, np.float64))
    elif "t" in vol.dims and not bs and (scale[dims.index("t")], shift[dims.index("t")]) != (1.0, 0.0):
        # another writer's time step (and first time), as OME-Zarr states them
        vol = vol.assign_coords(t=shift[dims.index("t")] + scale[dims.index("t")] * np.arange(vol.sizes["t"]))
    t_unit = bs.get("time_unit") or (None if bs else next(
        (ax.get("unit") for ax in ms["axes"] if isinstance(ax, dict) and ax.get("name") == "t"), None))
    if "t" in vol.dims and t_unit:  # the times' unit (minutes, seconds...) as the t coordinate's units
        vol.coords["t"].attrs["units"] = str(t_unit)
    channels = bs.get("channels")
    if "c" in vol.dims and channels is not None and len(channels) == vol.sizes["c"]:  # probabilities per phase
        vol = vol.rename(c="phase").assign_coords(phase=list(channels))
    if "c" in vol.dims and vol.sizes["c"] == 1:  # one channel (other writers' TCZYX): a volume
        vol = vol.isel(c=0, drop=True)
    if "t" in vol.dims and vol.sizes["t"] == 1 and not bs:  # another writer's single time point
        vol = vol.isel(t=0, drop=True)
    vol.attrs.update({k: bs[k] for k in ("probabilities_of", "uncertainty_of", "method") if bs.get(k) is not None})
    vol.attrs["source"] = str(p)
    # what its values are, now that it says (probabilities, uncertainty): a label image naming no phases holds ids
    return state_values(vol, "instances" if phases is None and "image-label" in meta else None)


def _level_transform(ms: dict[str, Any], ds: dict[str, Any], n: int) -> tuple[list[float], list[float]]:
    """The scale and translation from a level's voxel indices to physical coordinates: its
    dataset's ``coordinateTransformations``, then the multiscale's own (OME-Zarr applies those
    to every level after the level's: e.g. the voxel size there, each level's factor 1, 2, 4)."""
    scale, shift = [1.0] * n, [0.0] * n
    for tr in [*ds.get("coordinateTransformations", []), *ms.get("coordinateTransformations", [])]:
        if tr.get("type") == "scale":
            factor = [float(v) for v in tr["scale"]]
            scale = [a * f for a, f in zip(scale, factor)]
            shift = [a * f for a, f in zip(shift, factor)]
        elif tr.get("type") == "translation":
            shift = [a + float(b) for a, b in zip(shift, tr["translation"])]
    return scale, shift


def _in_unit_of_x(dims: tuple[str, ...], units: dict[str, Any], scale: list[float],
                  shift: list[float]) -> tuple[list[float], list[float]] | None:
    """``scale`` and ``shift`` of spatial axes stated in different units, all in the unit of x
    (as for an OME-TIFF's PhysicalSize: a volume has one unit); None when one is no length unit."""
    scale, shift = list(scale), list(shift)
    for i, d in enumerate(dims):
        if d not in ("z", "y", "x") or units.get(d) in (None, units.get("x")):  # one stating none: as x
            continue
        both = convert_length((scale[i], shift[i]), str(units.get(d)), str(units.get("x")))
        if both is None:
            return None
        scale[i], shift[i] = both
    return scale, shift


def image_of(p: Path) -> Path:
    """The OME-Zarr image at ``p``: for a bioformats2raw store (a root group stating only
    "bioformats2raw.layout", its images in 0/, 1/, ...) its one image; else ``p``."""
    try:
        meta = _ome_meta(zarr.open_group(_store(p), mode="r"))
    except Exception:  # no group there (an array, no zarr store: zarr raises several types)
        return p
    if "bioformats2raw.layout" not in meta or "multiscales" in meta:
        return p
    return _member(p, _bioformats2raw_image(p), f"the image of the bioformats2raw store {str(p)!r}")


def _bioformats2raw_image(p: Path) -> str:
    """The one image of a bioformats2raw store (``0``, or the one its ``OME`` group lists)."""
    try:
        series = [str(s) for s in dict(zarr.open_group(_store(p / "OME"), mode="r").attrs).get("series", [])]
    except Exception:  # no OME group (zarr raises several types): its images are 0/, 1/, ...
        series = []
    series = series or sorted((c.name for c in p.iterdir() if c.is_dir() and c.name.isdigit()), key=int)
    if len(series) != 1:
        raise VolumeFormatError(f"Expected `path` to hold one image. Got a bioformats2raw store {str(p)!r} with "
                                f"{len(series)} ({', '.join(series[:4])}{', ...' if len(series) > 4 else ''}): open "
                                f"one of them, e.g. {str(p / (series[0] if series else '0'))!r}.")
    return series[0]


def _level_in_parent(p: Path) -> int | None:
    """The pyramid level that the array ``p`` is of the OME-Zarr image around it (None if none)."""
    try:
        meta = _ome_meta(zarr.open_group(_store(p.parent), mode="r"))
    except Exception:  # no group there: a plain array
        return None
    for ms in meta.get("multiscales", [])[:1]:
        paths = [str(d.get("path")) for d in ms.get("datasets", [])]
        if p.name in paths:
            return paths.index(p.name)
    return None


def _bytes_on_disk(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def _check_chunk_files(p: Path) -> None:
    """Refuse a store in which an array stating every chunk stored (:func:`_checked_chunks`) has fewer
    chunk files than its chunk grid: one listing of the store, no chunk read (a copy that stopped part-way
    is found by ``bigseg info``, not only by the read that reaches the missing chunk)."""
    files: dict[str, int] = {}
    arrays = []
    for root, dirs, names in os.walk(p):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # (a write's hidden folder: not part of the store)
        files[root] = sum(n not in ("zarr.json", ".zarray", ".zattrs", ".zgroup") for n in names)
        if "zarr.json" in names or ".zarray" in names:
            arrays.append(root)
    for root in arrays:
        try:
            arr = zarr.open_array(_store(root), mode="r")
        except Exception:  # a group (zarr raises several types); unreadable metadata is said when read
            continue
        if not dict(arr.attrs).get("bigseg", {}).get(EVERY_CHUNK_STORED):
            continue
        n = sum(c for d, c in files.items() if d == root or d.startswith(root + os.sep))
        if n < arr.nchunks:
            raise VolumeFormatError(
                f"Expected {arr.nchunks} chunk files in the stored array {root!r} (it was written with every chunk). "
                f"Got {n}: {arr.nchunks - n} missing, which would read as zeros: a copy that stopped part-way (rsync, "
                f"Globus, a disk that filled), files removed since, or metadata (zarr.json / .zarray) stating a larger "
                f"shape than was written. Copy the store again from its source.")


def volume_info(path: str | os.PathLike, *, stats: bool = True, progress: bool = False) -> dict[str, Any]:
    """Shape, dtype, chunks, voxel size, bytes on disk, levels, labels and an intensity summary.

    ``bytes_on_disk`` is the whole store (pyramid levels, label images, probabilities);
    ``bytes_on_disk_level0`` the full-resolution image alone, to set against
    ``bytes_uncompressed`` (that image's size in memory).

    The intensity summary (min, max, mean, std, 1st/99th percentile) is computed on the
    coarsest pyramid level (named in ``from_level``) so that it stays cheap on huge volumes,
    over its finite values (``not_finite`` counts the others: NaN is no data); for
    a label image (with phase names) the share of each phase in the labelled voxels (as
    :func:`bigseg.measure.volume_fractions` gives it) and the share of all voxels that carry
    no phase (255, e.g. outside the field of view) instead, from the same level (``fractions``).

    A store bigseg wrote is refused when a chunk file of one of its arrays is missing (counted from a
    listing of the store, no chunk read), as a read of that chunk would be.

    Parameters
    ----------
    path : an OME-Zarr image or zarr array (a bioformats2raw store: its image).
    stats : True (default): add the intensity summary or the phase fractions (a pass over the
        coarsest level); False: the metadata alone, nothing read.
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    A dict: ``path``, ``dims``, ``shape``, ``dtype``, ``chunks``, ``voxel_size``, ``unit``,
    ``levels``, the sizes and the summary above.
    """
    stats = parse_flag("stats", stats)
    p = image_of(parse_path("path", path))  # (a bioformats2raw store: its image; path=5 was Python's TypeError)
    vol = open_volume(p)
    _check_chunk_files(p)
    group = zarr.open(_store(p), mode="r")
    meta = _ome_meta(group) if isinstance(group, zarr.Group) else {}
    levels = len(meta.get("multiscales", [{"datasets": [0]}])[0]["datasets"])
    info: dict[str, Any] = {
        "path": str(p),
        "dims": list(vol.dims),
        "shape": list(vol.shape),
        "dtype": str(vol.dtype),
        "chunks": [max(c) for c in vol.data.chunks],
        "voxel_size": list(vol.attrs["voxel_size"]),
        "unit": vol.attrs["unit"],
        "levels": levels,
        "bytes_on_disk": _bytes_on_disk(p),
        "bytes_uncompressed": int(vol.nbytes),
    }
    level0 = p / str(meta["multiscales"][0]["datasets"][0]["path"]) if meta.get("multiscales") else None
    if level0 is not None and level0.is_dir() and level0 != p:  # the image's full resolution alone, like with like
        info["bytes_on_disk_level0"] = _bytes_on_disk(level0)
    if "phases" in vol.attrs:
        info["phases"] = vol.attrs["phases"]
    if "t" in vol.dims:
        info["times"] = [float(t) for t in vol.coords["t"].values]
        if time_unit(vol.coords["t"]):
            info["time_unit"] = time_unit(vol.coords["t"])
    bs = dict(group.attrs).get("bigseg", {}) if isinstance(group, zarr.Group) else {}
    if bs.get("source_region"):
        info["source_region"] = bs["source_region"]
    if bs.get("synth"):  # how `bigseg synth` made it (seed, sizes, physics): enough to make it again
        info["synth"] = bs["synth"]
    if any(origin_of(vol)):
        info["origin"] = list(origin_of(vol))
    if (p / "labels").exists():
        info["labels"] = label_names(p / "labels")
    if stats and np.dtype(vol.dtype).kind in "biuf":  # (no grey values to sum up in text or complex numbers)
        small = open_volume(p, level=levels - 1).data
        if small.size > 64**3 * 8:
            step = max(1, int(round((small.size / 64**3) ** (1 / 3))))
            small = small[..., ::step, ::step, ::step]
        if "phases" in vol.attrs:  # a label image: how much of each phase, not grey-value statistics
            (values,) = compute(small, desc="statistics", progress=progress)
            k = len(vol.attrs["phases"])
            # counted by value, not bincount: another writer's -1 or uint64 id past 2**63 raised ValueError,
            # an id of 2**40 asked for terabytes
            found, found_n = np.unique(np.asarray(values).ravel(), return_counts=True)
            named = (found >= 0) & (found < k)
            counts = np.zeros(k, np.int64)
            counts[found[named].astype(np.int64)] = found_n[named]
            n = int(found_n.sum())
            labelled = int(counts.sum())  # as every measurement: 255 (e.g. outside the field of view) no sample
            fractions = {name: float(counts[i] / labelled) if labelled else float("nan")
                         for i, name in enumerate(vol.attrs["phases"])}
            info["fractions"] = {"of_labelled": fractions, "unlabelled": float((n - labelled) / n),
                                 "from_level": levels - 1, "sampled_voxels": n}
            return info
        (values,) = compute(small, desc="statistics", progress=progress)
        sample = np.asarray(values, np.float64).ravel()
        finite = sample[np.isfinite(sample)]  # NaN: no data (e.g. probabilities outside a field of view)
        stats = ((finite.min(), finite.max(), finite.mean(), finite.std(), *np.percentile(finite, [1, 99]))
                 if finite.size else (np.nan,) * 6)
        info["intensity"] = {
            **{k: float(v) for k, v in zip(("min", "max", "mean", "std", "p1", "p99"), stats)},
            "from_level": levels - 1, "sampled_voxels": int(sample.size), "not_finite": int(sample.size - finite.size),
        }
    return info
