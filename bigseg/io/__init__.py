"""Volumes: OME-Zarr reading/writing, ingest of TIFF/HDF5/raw/npy/zarr, export to TIFF/HDF5/npy,
xarray views."""

from ._export import export
from ._fov import fill_outside, fill_outside_like_inside, fov_centre, fov_mask, inscribed_box
from ._ingest import ingest, open_source, read_source
from ._omezarr import open_volume, save_labels, save_volume, volume_info
from ._volume import (DEFAULT_PHASES, PHASE_COLOURS, UNLABELLED, as_volume, like_volume, make_volume, origin_of, phase_colour,
                      recalibrated, sparse_labels, unit_for)

__all__ = [
    "ingest",
    "export",
    "fov_mask",
    "fov_centre",
    "fill_outside",
    "fill_outside_like_inside",
    "inscribed_box",
    "read_source",
    "open_source",
    "open_volume",
    "save_volume",
    "save_labels",
    "volume_info",
    "as_volume",
    "like_volume",
    "make_volume",
    "unit_for",
    "origin_of",
    "recalibrated",
    "phase_colour",
    "sparse_labels",
    "DEFAULT_PHASES",
    "PHASE_COLOURS",
    "UNLABELLED",
]
