from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe an OME-Zarr volume (or a TIFF / HDF5 / npy source before ingest)",
                       description="Shape, dtype, chunks, voxel size, bytes on disk, labels and an intensity summary "
                                   "of an OME-Zarr volume; for a source ingest reads (TIFF slices or file, HDF5, .npy, "
                                   "raw), its shape, dtype, the voxel size it states and, for HDF5, its datasets.")
    p.add_argument("path", help="OME-Zarr image or label image, or a source for `bigseg ingest`")
    p.add_argument("--dataset", default=None, help="HDF5 source: the dataset to describe (default /exchange/data)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-stats", action="store_true", help="skip the intensity summary")
    p.set_defaults(func=run)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def _is_zarr(path: str) -> bool:
    from pathlib import Path

    p = Path(path)
    return p.is_dir() and any((p / f).exists() for f in ("zarr.json", ".zgroup", ".zarray"))


def _source(args: argparse.Namespace) -> int:
    from ..io._ingest import source_info

    info = source_info(args.path, dataset=args.dataset)  # an HDF5 file without the dataset: the error lists them
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"path        {info['path']}  ({info['format']}{', %d files' % info['files'] if 'files' in info else ''})")
    print(f"shape       {' x '.join(map(str, info['shape']))}")
    print(f"dtype       {info['dtype']}")
    vs = info["voxel_size"]
    print(f"voxel size  {' x '.join(f'{v:g}' for v in vs) + ' ' + info['unit'] if vs else 'not stated (pass --voxel-size to ingest)'}")
    for name, (shape, dt) in info.get("datasets", {}).items():
        mark = "*" if name == info["dataset"] else " "
        print(f"dataset   {mark} {name}  {' x '.join(map(str, shape))}  {dt}")
    print(f"not OME-Zarr: `bigseg ingest {args.path} DEST.ome.zarr` converts it")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..io import volume_info

    if not _is_zarr(args.path):
        return _source(args)
    info = volume_info(args.path, stats=not args.no_stats)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"path        {info['path']}")
    print(f"shape       {' x '.join(map(str, info['shape']))}  ({', '.join(info['dims'])})")
    print(f"dtype       {info['dtype']}")
    print(f"chunks      {' x '.join(map(str, info['chunks']))}")
    print(f"voxel size  {' x '.join(f'{v:g}' for v in info['voxel_size'])} {info['unit']}")
    if "source_region" in info:
        print(f"cropped     {', '.join(f'{d} {a}:{b}' for d, (a, b) in zip('zyx', info['source_region']))} of the source")
    if "times" in info:
        print(f"times       {', '.join(f'{t:g}' for t in info['times'])}")
    print(f"levels      {info['levels']}")
    print(f"on disk     {_size(info['bytes_on_disk'])} ({_size(info['bytes_uncompressed'])} uncompressed)")
    if "phases" in info:
        print(f"phases      {', '.join(f'{i} {p}' for i, p in enumerate(info['phases']))}")
    if info.get("labels"):
        print(f"labels      {', '.join(info['labels'])}")
    if "intensity" in info:
        s = info["intensity"]
        print(f"intensity   min {s['min']:.4g}  max {s['max']:.4g}  mean {s['mean']:.4g}  std {s['std']:.4g}  "
              f"p1 {s['p1']:.4g}  p99 {s['p99']:.4g}  (level {s['from_level']}, {s['sampled_voxels']} voxels)")
    return 0
