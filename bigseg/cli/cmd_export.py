from __future__ import annotations

import argparse
from pathlib import Path

from ._common import (add_cluster_args, add_progress_args, cluster_from_args, refuse_existing, refuse_replacing,
                      voxel_size_text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write an OME-Zarr image or label image as TIFF slices, BigTIFF, HDF5 or .npy",
                       description="Write a volume for tools that do not read OME-Zarr (Avizo, Dragonfly, GeoDict, "
                                   "ParaView, Fiji, TauFactor), slab by slab, with its voxel size: a folder of TIFF "
                                   "slices (no suffix; ImageJ calibration), one OME BigTIFF (.tif), HDF5 "
                                   "(.h5: /exchange/data, element_size_um) or .npy. A box cut from a scan keeps its place "
                                   "in it (not in .npy). `bigseg ingest` reads each back. Probabilities "
                                   "(labels/NAME_probabilities): one .tif (CZYX, channels named by phase), .h5 or .npy.")
    p.add_argument("source", help="OME-Zarr image (scan.ome.zarr) or label image (scan.ome.zarr/labels/NAME)")
    p.add_argument("dest", help="folder of TIFF slices, or a .tif, .h5 or .npy file")
    p.add_argument("--label", default=None, help="with an image path: export labels/LABEL instead of the image")
    p.add_argument("--level", type=int, default=0, help="pyramid level (default 0, full resolution)")
    p.add_argument("--format", default=None, choices=["tiff-slices", "tiff", "hdf5", "npy"],
                   help="instead of the suffix of DEST")
    p.add_argument("--step", type=int, default=None, metavar="T",
                   help="an operando series (t, z, y, x): only its time step T (0 = the first; -1 the last)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    add_progress_args(p)
    add_cluster_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..io import export, open_volume

    refuse_replacing(args.dest, args.source, "dest")
    from ..io._export import _format

    fmt = _format(Path(args.dest), args.format)
    refuse_existing(args.dest, args.overwrite, "dest", kind="tiff-slices" if fmt == "tiff-slices" else "file")
    vol = open_volume(args.source, level=args.level, label=args.label)
    if args.step is not None:
        from ..errors import InputError

        n = vol.sizes.get("t", 0)
        if not -n <= args.step < n:
            raise InputError(f"Expected `--step` to be a time step of a series{f' (0 to {n - 1})' if n else ''}. Got "
                             f"{args.step} for {f'a series of {n} steps' if n else 'one volume'}.")
        vol = vol.isel(t=args.step)
    elif "t" in vol.dims and fmt == "tiff-slices":
        from ..errors import InputError

        raise InputError(f"Expected one volume for a folder of TIFF slices. Got a series of {vol.sizes['t']} steps: "
                         "export it to one .tif (axes TZYX), .h5 or .npy, or one step with --step T.")
    with cluster_from_args(args):
        out = export(vol, args.dest, format=args.format, overwrite=args.overwrite, progress=args.progress)
    from ..io._export import _IMAGEJ_DTYPES, _tiff_dtype

    kept = " (not stored: a .npy keeps no voxel size)" if str(out).endswith(".npy") else ""
    if fmt == "tiff-slices" and _tiff_dtype(vol.dtype) not in _IMAGEJ_DTYPES:  # as export warned
        kept = f" (not stored: TIFF slices of {vol.dtype} carry no calibration; a .tif or .h5 keeps it)"
    dtype = "float32 (TIFF readers open no float16)" if vol.dtype == "float16" and fmt in ("tiff", "tiff-slices") \
        else vol.dtype
    print(f"wrote {out}: shape {tuple(vol.shape)}, dtype {dtype}, voxel size {voxel_size_text(vol.attrs['voxel_size'], vol.attrs['unit'])}{kept}")
    return 0
