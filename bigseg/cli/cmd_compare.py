"""``bigseg compare``: how much several segmentations of one image agree (and, given a reference,
how good each is)."""

from __future__ import annotations

import argparse
import re
import os
from pathlib import Path

from ..runtime._files import replacing
from ._common import (FIGURE_SUFFIXES, add_cluster_args, column_widths, add_progress_args, add_stack_calibration_args,
                      cluster_from_args, open_label_image, output_file, sparse_truth_note,
                      stack_calibration)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="agreement of several segmentations of one image (user or method variance)",
        description="Compare two or more label images of the same image, as the ML-vs-threshold study compares "
                    "users and methods: each one's volume fractions, their mean and standard deviation, the "
                    "percentage of voxels that differ between every pair and, given --truth, each one's IoU. "
                    "Exact, block by block.")
    p.add_argument("labels", nargs="+", help="label images (image.ome.zarr/labels/NAME, or TIFF/HDF5/.npy label "
                                             "stacks); with --image, names of label images inside it")
    p.add_argument("--image", default=None, help="the OME-Zarr image holding the label images named in LABELS")
    p.add_argument("--truth", default=None, help="reference label image (or label stack; with --image, also the name "
                                                   "of one inside it): adds each segmentation's IoU per phase")
    p.add_argument("--phases", default=None, help="phase names by label value, comma separated (default: metadata)")
    p.add_argument("--csv", default=None, help="write the table (one row per segmentation) to CSV")
    p.add_argument("--netcdf", default=None, help="write the agreement Dataset to netCDF")
    p.add_argument("--plot", default=None, help="write the fractions and the differing-voxel matrix (PNG)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_stack_calibration_args(p)
    add_progress_args(p)
    add_cluster_args(p)
    p.set_defaults(func=run)


def _names(paths: list[Path]) -> list[str]:
    """The label images' names: as many of their last folders as it takes to tell them all apart
    (``labels/`` left out), less the folders they all share there: ``segmentation``, else
    ``scan.ome.zarr/segmentation``; two pipeline runs' ``run1/image.ome.zarr/segmentation`` and
    ``run2/image.ome.zarr/segmentation`` are ``run1`` and ``run2``."""
    parts = [[q for q in Path(os.path.abspath(p)).parts if q != "labels"] for p in paths]
    for k in range(1, min(len(q) for q in parts) + 1):
        tails = [q[-k:] for q in parts]
        if len({tuple(t) for t in tails}) == len(tails):
            keep = [i for i in range(k) if len({t[i] for t in tails}) > 1]
            return ["/".join(t[i] for i in keep) for t in tails]
    return [str(p) for p in paths]  # the same label image given twice, or one path a folder of another


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from .. import measure
    from ..errors import InputError
    from ..io._omezarr import image_of
    from ..measure._scores import segmentation_coord

    output_file(args.csv, "--csv", suffixes=(".csv",), overwrite=args.overwrite)  # before any work
    output_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES, overwrite=args.overwrite)
    output_file(args.netcdf, "--netcdf", suffixes=(".nc",), overwrite=args.overwrite)
    if len(args.labels) < 2:
        raise InputError(f"Expected at least two label images to compare. Got {len(args.labels)}: {args.labels}.")
    # (the labels of a bioformats2raw store's image, in 0/, where save_labels puts them)
    ldir = image_of(Path(args.image)) / "labels" if args.image else None
    paths = [ldir / name if ldir else Path(name) for name in args.labels]
    if args.truth and ldir and not Path(args.truth).exists() and (ldir / args.truth).is_dir():
        args.truth = str(ldir / args.truth)  # a name inside the image, as LABELS are
    resolved = [p.resolve() for p in paths]
    twice = sorted({str(p) for p, r in zip(paths, resolved) if resolved.count(r) > 1})
    if twice:  # a pair of one image with itself would read as perfect agreement
        raise InputError(f"Expected each label image once in `labels`. Got {twice} more than once.")
    cal = stack_calibration(args, [*paths, args.truth])
    segs = [open_label_image(str(paths[0]), None, None, "labels", say=None, hint=" or NAME with --image IMAGE",
                             sizes=True, **cal)]
    # stacks stating no voxel size or place are of the first one's scan and box (as a truth is)
    segs += [open_label_image(str(p), None, None, "labels", say=None, hint=" or NAME with --image IMAGE",
                              sizes=True, like=segs[0], **cal) for p in paths[1:]]
    truth = open_label_image(args.truth, None, "truth", "--truth", say=None, sizes=True, like=segs[0],
                             **cal) if args.truth else None
    phases = [s.strip() for s in args.phases.split(",")] if args.phases else None
    names = _names(paths)
    with cluster_from_args(args):
        # with a truth, every segmentation's scores come from the same pass
        try:
            ds = measure.agreement(segs, truth=truth, phases=phases, progress=args.progress).assign_coords(
                segmentation=segmentation_coord(names))
        except InputError as exc:  # in the command's terms: the label images by path, the option by name
            said = re.sub(r"`segmentations\[(\d+)\]`|segmentations\[(\d+)\]",
                          lambda m: repr(str(paths[int(m[1] or m[2])])), str(exc))
            raise InputError(re.sub(r"pass `?phases=?`?", "pass --phases", said)) from None
    scores = "iou" in ds
    last = f" (t = {ds.t.values[-1]})" if "t" in ds.dims else ""
    d = ds.isel(t=-1) if "t" in ds.dims else ds
    ph = [str(x) for x in d.phase.values]
    table = pd.DataFrame(d.volume_fraction.values, index=names, columns=[f"fraction_{x}" for x in ph])
    if scores:
        for x in ph:
            table[f"iou_{x}"] = d.iou.sel(phase=x).values
    table.index.name = "segmentation"
    width = max(14, *(len(n) + 2 for n in names))
    if [str(p) for p in paths] != names:  # short names: which label image each one is
        print("segmentations:")
        for name, path in zip(names, paths):
            print(f"  {name:<{width}}{path}")
    heads = [c.replace("fraction_", "") if c.startswith("fraction_") else c.replace("_", " ") for c in table.columns]
    print(f"volume fractions{last}" + (" and IoU against the reference" if scores else "") + ":")
    cols = column_widths(heads, 11)
    print(f"{'':<{width}}" + "".join(f"{h:>{w}}" for h, w in zip(heads, cols)))
    for name, row in table.iterrows():
        print(f"{name:<{width}}" + "".join(f"{v:>{w}.4f}" for v, w in zip(row.values, cols)))
    print(f"{'mean':<{width}}" + "".join(f"{v:>{w}.4f}" for v, w in zip(d.fraction_mean.values, cols)))
    print(f"{'std (n - 1)':<{width}}" + "".join(f"{v:>{w}.4f}" for v, w in zip(d.fraction_std.values, cols)))
    if scores and (sparse := sparse_truth_note(d.support.values, int(np.prod(ds.attrs["shape"])))):
        print(f"(IoU: {sparse})")  # a sparse reference scores its labelled voxels only
    from ..report._agreement import differing_matrix

    mat = differing_matrix(ds)
    print(f"voxels differing between two segmentations (%){last}:")
    print(pd.DataFrame(np.round(mat, 2), index=names, columns=names).to_string())
    n_common = int(np.isfinite(d.differing_fraction.values).sum())
    apart = f" ({d.sizes['pair'] - n_common} pair(s) without a labelled voxel in common left out)" \
        if n_common < d.sizes["pair"] else ""
    print(f"mean over the {n_common} pair(s){apart}: {100 * float(d.mean_differing_fraction):.2f} %")
    if args.csv:
        with replacing(args.csv) as tmp:  # whole or not at all
            table.to_csv(tmp)
        print(f"wrote {args.csv}")
    if args.netcdf:
        with replacing(args.netcdf) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")
        print(f"wrote {args.netcdf}")
    if args.plot:
        from ..report import agreement_figure

        agreement_figure(ds, path=args.plot, title=f"{len(names)} segmentations")
        print(f"wrote {args.plot}")
    return 0
