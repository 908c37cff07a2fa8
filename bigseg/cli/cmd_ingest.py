from __future__ import annotations

import argparse

from ._common import (add_cluster_args, add_progress_args, cluster_from_args, command_key, parse_triple,
                      refuse_existing, refuse_replacing, say_if_uncalibrated, voxel_size_text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="convert a TIFF stack / HDF5 / raw / npy / zarr into OME-Zarr",
                       description="Convert a tomogram into a chunked, physically scaled OME-Zarr volume, block by block.")
    p.add_argument("source", nargs="+",
                   help="folder of TIFFs, glob ('scan/*.tif'), multi-page TIFF, .h5, .npy, raw file or zarr; several "
                        "sources: the scans of an operando experiment in time order, written as one (t, z, y, x) series")
    p.add_argument("dest", help="OME-Zarr folder to create (e.g. scan.ome.zarr)")
    p.add_argument("--times", default=None,
                   help="several scans: the time (cycle, state of charge...) of each, comma separated (default 0,1,2...)")
    p.add_argument("--time-unit", default=None,
                   help="the unit of --times (or of a series source's own times), e.g. s, min, h or cycle")
    p.add_argument("--chunks", default="128", help="chunk edge in voxels, or z,y,x (default 128)")
    p.add_argument("--voxel-size", default=None, help="voxel edge, or z,y,x, in --unit")
    p.add_argument("--unit", default=None,
                   help="length unit of --voxel-size; without it, the unit the source's own voxel size is given in "
                        "(default: the source's unit, else nm)")
    p.add_argument("--dataset", default=None,
                   help="HDF5 dataset (default /exchange/data, else a NeXus file's NXdata signal, else the file's only 3D/4D dataset)")
    p.add_argument("--shape", default=None, help="raw files: z,y,x")
    p.add_argument("--dtype", default=None, help="raw files: dtype with endianness, e.g. '>u2'; else an output cast")
    p.add_argument("--offset", type=int, default=0, help="raw files: header bytes to skip")
    p.add_argument("--crop", default=None,
                   help="keep only this box of the source: z0:z1,y0:y1,x0:x1 voxel ranges (':' = whole axis), "
                        "e.g. 100:900,:,64:960")
    p.add_argument("--levels", type=int, default=1, help="pyramid levels (default 1)")
    p.add_argument("--channel", type=int, default=None,
                   help="an OME-Zarr source with several channels (t, c, z, y, x): the channel to read, from 0")
    p.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    add_progress_args(p)
    add_cluster_args(p)
    p.set_defaults(func=run, api_aliases={"path": "dest"})  # save_volume(vol, path): the dest argument


def run(args: argparse.Namespace) -> int:
    from ..io import ingest
    from ..runtime._manifest import path_stamp

    refuse_replacing(args.dest, args.source, "dest")
    refuse_existing(args.dest, args.overwrite, "dest")
    # an interrupted run of the same command (same files as they stand) reads only the blocks not on disk
    key = command_key(args, "ingest", paths=(), extra={"sources": [path_stamp(s) for s in args.source]})
    with cluster_from_args(args):
        vol = ingest(
            args.source if len(args.source) > 1 else args.source[0], args.dest,
            times=args.times.split(",") if args.times is not None else None, time_unit=args.time_unit,
            chunks=parse_triple(args.chunks, int, option="--chunks"),
            voxel_size=parse_triple(args.voxel_size, option="--voxel-size"),
            unit=args.unit, dataset=args.dataset, dtype=args.dtype, shape=parse_triple(args.shape, int, option="--shape"),
            offset=args.offset, levels=args.levels, crop=args.crop, overwrite=args.overwrite, progress=args.progress,
            resume_key=key, channel=args.channel,
        )
    print(f"wrote {args.dest}: shape {vol.shape}, dtype {vol.dtype}, voxel size {voxel_size_text(vol.attrs['voxel_size'], vol.attrs['unit'])}")
    if args.voxel_size is None:
        say_if_uncalibrated(args.source, vol, dataset=args.dataset, dtype=args.dtype,
                            shape=parse_triple(args.shape, int, option="--shape"), offset=args.offset)
    return 0
