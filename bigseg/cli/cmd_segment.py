"""``bigseg segment``: a label image from a classical method (and, later, a trained model)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ._common import add_cluster_args, cluster_from_args

METHODS = ("threshold", "kmeans", "watershed", "random-forest")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment", help="segment a volume into phases (classical baselines)",
        description="Segment an OME-Zarr image into phases, block by block, and write the labels into "
                    "IMAGE/labels/NAME (or a separate OME-Zarr with --out). Methods: multi-Otsu threshold, "
                    "k-means on grey level + Sobel, seeded watershed, random forest on sparse labels.")
    p.add_argument("source", help="input OME-Zarr image")
    p.add_argument("--method", required=True, choices=METHODS, help="segmentation method")
    # A later option --model default|PATH will segment with a trained network through
    # bigseg.predict; see `_segment_model` below (the two are mutually exclusive).
    p.add_argument("--classes", type=int, default=3, help="number of phases by grey level (default 3: pore, cbd, active)")
    p.add_argument("--phases", default=None, help="phase names by label value, comma separated")
    p.add_argument("--window", default="conservative",
                   help="watershed: undecided band width, 'conservative', 'generous' or a fraction in (0, 1]")
    p.add_argument("--labels", default=None,
                   help="random-forest: sparse training labels (OME-Zarr label image, 255 = unlabelled)")
    p.add_argument("--sigmas", default="0.7,1,1.6,3.5", help="random-forest: feature scales in voxels")
    p.add_argument("--trees", type=int, default=100, help="random-forest: number of trees")
    p.add_argument("--seed", type=int, default=0, help="random seed (k-means, random forest)")
    p.add_argument("--name", default="segmentation", help="label image name inside the source (default segmentation)")
    p.add_argument("--out", default=None, help="write a separate OME-Zarr label volume here instead")
    p.add_argument("--overwrite", action="store_true", help="replace an existing label image")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    add_cluster_args(p)
    p.set_defaults(func=run)


def _open_labels(path: str):
    from ..io import open_volume

    p = Path(path)
    return open_volume(p / "labels") if (p / "labels").is_dir() else open_volume(p)


def _segment_baseline(vol, args: argparse.Namespace):
    from .. import baselines

    phases = args.phases.split(",") if args.phases else None
    if args.method == "threshold":
        return baselines.threshold(vol, classes=args.classes, phases=phases, progress=args.progress)
    if args.method == "kmeans":
        return baselines.kmeans(vol, classes=args.classes, phases=phases, seed=args.seed, progress=args.progress)
    if args.method == "watershed":
        try:
            window = float(args.window)
        except ValueError:
            window = args.window
        return baselines.watershed(vol, classes=args.classes, window=window, phases=phases, progress=args.progress)
    if args.labels is None:
        raise InputError("Expected `--labels` (sparse training labels) for --method random-forest. Got None instead.")
    sigmas = tuple(float(s) for s in args.sigmas.split(","))
    return baselines.random_forest(vol, _open_labels(args.labels), sigmas=sigmas, n_estimators=args.trees,
                                   seed=args.seed, phases=phases, progress=args.progress)


def _segment_model(vol, args: argparse.Namespace):  # pragma: no cover - filled in with --model
    """Placeholder for ``--model default|PATH``: ``bigseg.predict(vol, models.load(args.model))``."""
    raise NotImplementedError("segmentation with a trained model is not wired into this command yet")


def run(args: argparse.Namespace) -> int:
    from ..io import open_volume, save_labels, save_volume

    vol = open_volume(args.source)
    with cluster_from_args(args):
        labels = _segment_model(vol, args) if getattr(args, "model", None) else _segment_baseline(vol, args)
        if args.out:
            save_volume(labels, args.out, phases=labels.attrs["phases"], overwrite=args.overwrite,
                        progress=args.progress)
            dest = args.out
        else:
            dest = save_labels(labels, args.source, name=args.name, overwrite=args.overwrite, progress=args.progress)
    from ..measure import volume_fractions

    fr = volume_fractions(open_volume(dest))
    summary = ", ".join(f"{p} {float(f):.3f}" for p, f in zip(fr.phase.values, fr.values))
    print(f"wrote {dest} ({args.method}): volume fractions {summary}")
    return 0

