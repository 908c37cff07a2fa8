"""Write a prediction into an OME-Zarr image's ``labels/`` group.

Layout (next to the image written by ``bigseg.save_volume``)::

    image.ome.zarr/labels/
        segmentation/                 label image (uint8, phase names + colours), listed in
                                      labels/.attrs["ome"]["labels"]
        segmentation_probabilities/   OME-Zarr image (c, z, y, x) float16, c = phase (names in
                                      .attrs["bigseg"]["channels"]); NOT listed as a label image
        segmentation_uncertainty/     OME-Zarr image (z, y, x) float16 (entropy or margin)

``labels/.attrs["bigseg"]["predictions"][name]`` names the sibling images. Everything is
computed in ONE pass (the model runs once): with probabilities or uncertainty the outputs are
first stored block by block into a hidden scratch store (``_scratch.stored_once``: one float16
array, resumable with ``resume_key``), then moved into their OME-Zarr images by the foundation
writers; labels alone go straight into their label image (no second copy).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError, OutputExistsError
from ..io import open_volume, save_labels
from ..io._omezarr import add_bigseg_attrs, check_label_name, image_of, label_names, labels_group, write_volume
from ._scratch import keyed_scratch, stored_once

__all__ = ["write_prediction"]


def write_prediction(
    ds: xr.Dataset,
    image_path: str | os.PathLike,
    *,
    name: str = "segmentation",
    probabilities: bool = True,
    uncertainty: bool = True,
    levels: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    resume_key: str | None = None,
) -> dict[str, str]:
    """Store ``predict``'s Dataset under ``image_path/labels/`` (see the module docstring).

    Parameters
    ----------
    ds : Dataset from :func:`bigseg.predict` (``labels`` required; ``probabilities`` and
        ``uncertainty`` written when present and asked for)
    image_path : the OME-Zarr image the prediction was made on (same shape)
    name : label image name; siblings are ``{name}_probabilities`` and ``{name}_uncertainty``
    probabilities : write ``probabilities`` as float16 (c, z, y, x) if ``ds`` has them
        ((t, c, z, y, x) for a series)
    uncertainty : write ``uncertainty`` as float16 (z, y, x) if ``ds`` has it
    levels : pyramid levels of the label image (default: as many as the image has)
    overwrite : replace existing outputs of the same name
    resume_key : a string naming what ``ds`` is made from: an interrupted write resumes block
        by block under the same key (the model does not run again for blocks on disk)
    progress : a progress bar on stderr (on a terminal drawn in place, in a log a line every 30 s); False: none

    Returns
    -------
    dict ``{"labels": path, "probabilities": path, "uncertainty": path}`` of what was written.
    """
    if not isinstance(ds, xr.Dataset) or "labels" not in ds:
        raise InputError(f"Expected `ds` to be the Dataset returned by bigseg.predict. Got {type(ds).__name__} instead.")
    check_label_name(name)
    # absolute: written by workers that may run in another working directory; a bioformats2raw store: its image
    image_path = image_of(Path(image_path).absolute())
    check_label_name(name, label_names(image_path / "labels"))
    image = open_volume(image_path)
    if tuple(ds["labels"].shape) != tuple(image.shape):
        raise InputError(f"Expected `ds` to have the image's shape {image.shape}. Got {ds['labels'].shape} instead.")
    phases = list(ds["labels"].attrs.get("phases") or ds.attrs["phases"])
    wanted = {"labels": ds["labels"].data}
    if probabilities and "probabilities" in ds:
        wanted["probabilities"] = ds["probabilities"].data.astype(np.float16)
    if uncertainty and "uncertainty" in ds:
        wanted["uncertainty"] = ds["uncertainty"].data.astype(np.float16)
    ldir = image_path / "labels"
    dests = {"labels": ldir / name, "probabilities": ldir / f"{name}_probabilities", "uncertainty": ldir / f"{name}_uncertainty"}
    # the siblings are written before the labels, which come last (their label image there: all of it is):
    # siblings beside a scratch this key left are an interrupted write's of the same inputs, to take up; and
    # labels beside all of them too, a run killed after placing the labels but before saying whose the
    # siblings are (refused, the siblings stayed nobody's and the scratch was never removed)
    interrupted = is_interrupted(ldir, name, resume_key)
    placed = interrupted and all(dests[k].exists() for k in wanted)
    for key in wanted:
        if dests[key].exists() and not overwrite and not (interrupted and (key != "labels" or placed)):
            raise OutputExistsError(
                f"Expected `name` to be new or `overwrite=True`. Got {name!r}; {str(dests[key])!r} exists."
            )
    ldir.mkdir(exist_ok=True)
    if set(wanted) == {"labels"}:  # nothing to store beside them: straight into the label image
        lab = xr.DataArray(wanted["labels"], dims=ds["labels"].dims, attrs={"phases": phases})
        chunks = tuple(int(max(c)) for c in wanted["labels"].chunks)
        path = save_labels(lab, image_path, name=name, phases=phases, chunks=chunks, levels=levels,
                           overwrite=overwrite, progress=progress, resume_key=resume_key)
        _record(ldir, name, ds, {})
        return {"labels": path}
    keep = [v for v in ("labels", "probabilities", "uncertainty") if v in wanted]
    with stored_once(ds[keep], ldir, prefix=f"{name}.scratch", key=resume_key, desc=f"predicting labels/{name}",
                     progress=progress) as st:
        out: dict[str, str] = {}
        again = overwrite or interrupted
        # in the labels group's zarr format: v0.4 inside another writer's v0.4 image, as the label images are
        fmt = labels_group(image_path).metadata.zarr_format
        # on the image's grid, place and times (in their unit), as save_labels stores the labels
        grid = {d: image.coords[d] for d in image.dims if d in image.coords}
        if "probabilities" in st:
            # (t,) phase, z, y, x: stored as OME-Zarr's channel axis c, the phase names kept
            prob = xr.DataArray(st["probabilities"].data, dims=ds["probabilities"].dims,
                                coords={"phase": phases, **grid}, name=f"{name}_probabilities",
                                attrs={"voxel_size": image.attrs["voxel_size"], "unit": image.attrs["unit"]})
            out["probabilities"] = write_volume(prob, dests["probabilities"], overwrite=again, progress=False,
                                                zarr_format=fmt)
        if "uncertainty" in st:
            unc = xr.DataArray(st["uncertainty"].data, dims=ds["uncertainty"].dims, coords=grid,
                               name=f"{name}_uncertainty",
                               attrs={"voxel_size": image.attrs["voxel_size"], "unit": image.attrs["unit"]})
            out["uncertainty"] = write_volume(unc, dests["uncertainty"], overwrite=again, progress=False,
                                              zarr_format=fmt)
        # the labels last: a process killed before leaves no label image (the same command takes up from the
        # scratch), not labels that look finished without the probabilities asked for (a rerun refused them,
        # a pipeline run skipped the segmentation); the siblings say whose they are once the labels are
        # there (save_labels replacing earlier labels drops the siblings that say so)
        lab = xr.DataArray(st["labels"].data, dims=ds["labels"].dims, attrs={"phases": phases})
        out["labels"] = save_labels(lab, image_path, name=name, phases=phases, levels=levels, overwrite=again,
                                    progress=False)
        extra: dict[str, Any] = {}
        if "probabilities" in out:
            add_bigseg_attrs(out["probabilities"], probabilities_of=name)
            extra["probabilities"] = dests["probabilities"].name
        if "uncertainty" in out:
            add_bigseg_attrs(out["uncertainty"], uncertainty_of=name, method=ds["uncertainty"].attrs.get("method"))
            extra["uncertainty"] = dests["uncertainty"].name
        _record(ldir, name, ds, extra)
        return out


def is_interrupted(ldir: Path, name: str, resume_key: str | None) -> bool:
    """Whether a :func:`write_prediction` of ``labels/name`` under ``resume_key`` was interrupted
    (its scratch is kept), which the same call takes up."""
    return resume_key is not None and keyed_scratch(ldir, f"{name}.scratch", resume_key).is_dir()


def _record(ldir: Path, name: str, ds: xr.Dataset, extra: dict[str, Any]) -> None:
    """``labels/.attrs["bigseg"]["predictions"][name]``: the sibling images and the window count."""
    lgroup = labels_group(ldir.parent)
    meta = dict(lgroup.attrs.get("bigseg", {}))
    preds = dict(meta.get("predictions", {}))
    preds[name] = {**extra, "n_patches": int(ds.attrs.get("n_patches", 0)), "patch": list(ds.attrs.get("patch", []))}
    meta["predictions"] = preds
    lgroup.attrs["bigseg"] = meta
