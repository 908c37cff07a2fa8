"""``bigseg filter``: normalize -> median -> gaussian -> unsharp, block by block, into a new OME-Zarr."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ..runtime._lock import held
from ._common import (FIGURE_SUFFIXES, add_cluster_args, add_progress_args, cluster_from_args, command_key,
                      output_file, parse_triple, refuse_existing, refuse_label_image, refuse_replacing)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "filter", help="align / normalize / median / gaussian / unsharp a volume into a new OME-Zarr",
        description="Filter a volume block by block (exact: equal to scipy/scikit-image on the whole array). "
                    "Steps run in the order align -> normalize -> median -> gaussian -> unsharp; give at least one. "
                    "LRCS-Net preprocessing: --median 3 --unsharp 6,0.6 --unsharp-2d. An interrupted run of the same "
                    "command resumes: only the blocks not yet on disk are computed.")
    p.add_argument("source", help="input OME-Zarr image")
    p.add_argument("dest", help="output OME-Zarr folder")
    p.add_argument("--align", nargs="?", type=int, const=0, default=None, metavar="REF",
                   help="a (t, z, y, x) series: first move every scan onto scan REF (default 0) by the translation "
                        "phase correlation finds, keeping the region all scans cover")
    p.add_argument("--normalize", nargs="?", const="0.5,99.5", default=None, metavar="LOW,HIGH",
                   help="map the global LOW/HIGH percentiles to [0, 1] (default 0.5,99.5)")
    p.add_argument("--median", default=None, metavar="SIZE", help="median window edge, or z,y,x (e.g. 3)")
    p.add_argument("--gaussian", default=None, metavar="SIGMA", help="Gaussian sigma in voxels, or z,y,x (e.g. 1.1)")
    p.add_argument("--unsharp", default=None, metavar="RADIUS,AMOUNT", help="unsharp mask radius and amount (e.g. 6,0.6)")
    p.add_argument("--unsharp-2d", action="store_true", help="unsharp each z slice in 2D (LRCS-Net)")
    p.add_argument("--nan-policy", default="raise", choices=["raise", "propagate"],
                   help="NaN/inf voxels: fail with their count (default) or filter anyway")
    p.add_argument("--chunks", default=None, help="output chunk edge in voxels, or z,y,x (default: the input's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    p.add_argument("--plot", default=None, help="also draw the central slices before and after, in one grey window "
                                                "(each its own where the units differ, e.g. raw counts through "
                                                "--normalize; PNG; a series: its last scan)")
    add_progress_args(p)
    add_cluster_args(p)
    p.set_defaults(func=run, api_aliases={"size": "median", "sigma": "gaussian", "radius": "unsharp",
                                          "amount": "unsharp", "reference": "align"})  # the options' API names


def _pair(text: str, name: str) -> tuple[float, float]:
    try:
        a, b = (float(t) for t in text.split(","))
    except ValueError:
        raise InputError(f"Expected `--{name}` as two numbers 'A,B'. Got {text!r} instead.") from None
    return a, b


def build(vol, args: argparse.Namespace):
    """The lazy filter chain the arguments describe (also used by the pipeline's tests)."""
    from .. import filters
    from ..filters._filters import check_contrast

    steps = []
    crop = None  # align's region every moved scan covers: kept on the result (the filters after drop attrs)
    if args.align is not None:
        vol = filters.align(vol, reference=args.align, progress=args.progress)
        crop = vol.attrs["crop"]
        shifts = "; ".join(",".join(f"{x:+.2f}" for x in sh) for sh in vol.attrs["shifts"])
        steps.append(f"align(onto t = {args.align}; shifts z,y,x: {shifts})")
    if args.normalize is not None:
        low, high = _pair(args.normalize, "normalize")
        vol = filters.normalize(vol, low=low, high=high, nan_policy=args.nan_policy, progress=args.progress)
        check_contrast(vol, low=low, high=high)  # a blank scan would be written as zeros
        steps.append(f"normalize({low}, {high})")
    if args.median is not None:
        vol = filters.median(vol, size=parse_triple(args.median, int, option="--median"), nan_policy=args.nan_policy)
        steps.append(f"median({args.median})")
    if args.gaussian is not None:
        vol = filters.gaussian(vol, sigma=parse_triple(args.gaussian, float, option="--gaussian"), nan_policy=args.nan_policy)
        steps.append(f"gaussian({args.gaussian})")
    if args.unsharp is not None:
        radius, amount = _pair(args.unsharp, "unsharp")
        vol = filters.unsharp(vol, radius=radius, amount=amount, axes="2d" if args.unsharp_2d else "3d",
                              nan_policy=args.nan_policy)
        steps.append(f"unsharp({radius}, {amount}{', 2d' if args.unsharp_2d else ''})")
    if not steps:
        raise InputError("Expected at least one of --align, --normalize, --median, --gaussian, --unsharp. "
                         "Got none instead.")
    return (vol if crop is None else vol.assign_attrs(crop=crop)), steps


def _check_lazy_steps(args: argparse.Namespace, vol) -> None:
    """The median, Gaussian and unsharp options checked before align's and normalize's passes over
    the data: their filters are built (lazily, nothing computed) on a stand-in of the volume's
    shape and chunks."""
    import dask.array as da
    import numpy as np

    lazy = argparse.Namespace(**{**vars(args), "align": None, "normalize": None})
    if any(getattr(lazy, name) is not None for name in ("median", "gaussian", "unsharp")):
        build(da.zeros(vol.shape, dtype=np.float32, chunks=vol.data.chunks), lazy)


def run(args: argparse.Namespace) -> int:
    from ..io import open_volume, save_volume

    refuse_replacing(args.dest, args.source, "dest")
    refuse_existing(args.dest, args.overwrite, "dest")
    output_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES, overwrite=args.overwrite)
    if args.unsharp_2d and args.unsharp is None:  # a switch of --unsharp's, meaningless alone
        raise InputError("Expected --unsharp-2d with --unsharp RADIUS,AMOUNT (it makes that unsharp mask 2D). "
                         "Got --unsharp-2d alone.")
    vol = open_volume(args.source)
    refuse_label_image(args.source, "source", instead="filter the image it labels", vol=vol)
    for name in ("normalize", "unsharp"):  # the options, before a cluster starts
        if getattr(args, name) is not None:
            _pair(getattr(args, name), name)
    if args.normalize is not None and not 0 <= _pair(args.normalize, "normalize")[0] < _pair(args.normalize, "normalize")[1] <= 100:
        raise InputError(f"Expected --normalize LOW,HIGH percentiles with 0 <= LOW < HIGH <= 100 (e.g. 0.5,99.5). "
                         f"Got {args.normalize!r} instead.")
    for name in ("median", "gaussian", "chunks"):
        parse_triple(getattr(args, name), option=f"--{name}")
    _check_lazy_steps(args, vol)
    # held (and checked writable) before the cluster and align's and normalize's passes: a read-only or busy
    # `dest` is said first, by the command's name for it; resumable: the same command again writes only the
    # blocks not on disk
    with held(args.dest, argument="dest"), cluster_from_args(args):
        out, steps = build(vol, args)  # align's and normalize's passes run on the cluster too
        save_volume(out, args.dest, chunks=parse_triple(args.chunks, int, option="--chunks"), overwrite=args.overwrite,
                    progress=args.progress, resume_key=command_key(args, "filter"))
    print(f"wrote {args.dest}: {' -> '.join(steps)}, shape {out.shape}, dtype {out.dtype}")
    if args.plot:  # what the filter did, seen: the same slices before and after (six of each read)
        from pathlib import Path

        from ..report import orthoslices

        before = vol
        if "crop" in out.attrs:  # aligned: the region every moved scan covers, as it was before
            before = vol[(slice(None), *(slice(lo, hi) for lo, hi in out.attrs["crop"]))]
        orthoslices(open_volume(args.dest), before=before.data, path=args.plot,
                    title=f"{Path(args.source).name}: {' -> '.join(steps)}")
        print(f"figure {args.plot}")
    return 0
