"""``bigseg segment``: a label image from a trained model (``--model``) or a classical method."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ..config import CLASSICAL_MODELS
from ..errors import InputError
from ..runtime._lock import held
from ._common import (FIGURE_SUFFIXES, add_cluster_args, add_fov_args, add_progress_args, check_fov_margin,
                      cluster_from_args, command_key, distinct_files, open_label_image, output_file, positive_int,
                      refuse_existing, refuse_label_image, refuse_replacing, set_unset)

METHODS = (*CLASSICAL_MODELS, "random-forest")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment", help="segment a volume into phases (trained model or classical baselines)",
        description="Segment an OME-Zarr image into phases, block by block, and write the labels into "
                    "IMAGE/labels/NAME (or a separate OME-Zarr with --out). --model: a trained network "
                    "('default' = the bundled model, or a checkpoint path) through bigseg.predict, blended "
                    "seam-free across blocks, input normalised as the model was trained. --method: multi-Otsu "
                    "threshold, k-means on grey level + Sobel, seeded watershed, random forest on sparse labels. "
                    "A (t, z, y, x) series is segmented scan by scan, each as if it were alone (labels (t, z, y, x)); "
                    "--temporal N averages each scan's probabilities with its neighbours' first. Resumable: the same "
                    "command run again after an interruption computes only the blocks not yet on disk.")
    p.add_argument("source", help="input OME-Zarr image")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--model", default=None, help="'default' (bundled model) or a checkpoint path (.pt)")
    how.add_argument("--method", choices=METHODS, help="classical segmentation method")
    m = p.add_argument_group("model options")
    m.add_argument("--overlap", type=float, default=None, help="window overlap fraction in [0, 1) (default 0.5)")
    m.add_argument("--tta", action="store_true", help="test-time augmentation (flips), averaged probabilities")
    m.add_argument("--triplanar", action="store_true", help="2D models: average z, y and x planes")
    m.add_argument("--plane", choices=["z", "y", "x"], default=None,
                   help="2D models: the axis normal to the planes the model sees (default: the axis it was "
                        "trained across, `bigseg train --axis`, else z)")
    m.add_argument("--batch-size", type=int, default=None, help="windows per forward pass (default 4 on the CPU, sized to free memory on a GPU)")
    m.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available)")
    m.add_argument("--autocast", default=None, choices=["auto", "bf16", "fp16", "off"],
                   help="reduced precision for the model: auto = bf16/fp16 on a GPU, float32 on the CPU (default); "
                        "bf16 on a CPU with bf16 instructions is ~1.7x faster for the default model, same IoU")
    m.add_argument("--temporal", type=int, default=0, metavar="N",
                   help="a series of aligned scans: average each scan's probabilities with those of the N scans "
                        "before and after it before labelling (less flicker between scans, changes faster than "
                        "2N+1 scans smoothed; default 0: each scan alone)")
    m.add_argument("--probabilities", action="store_true",
                   help="also store per-phase probabilities (float16) and the entropy uncertainty next to the labels")
    p.add_argument("--classes", type=int, default=None, help="number of phases by grey level (default 3: pore, cbd, active)")
    p.add_argument("--phases", default=None, help="phase names by label value, comma separated")
    p.add_argument("--window", default=None,
                   help="watershed: undecided band width, 'conservative', 'generous' or a fraction in (0, 1]")
    p.add_argument("--labels", default=None,
                   help="random-forest: sparse training labels (OME-Zarr label image, or a TIFF/HDF5/.npy "
                        "label stack; 255 = unlabelled)")
    p.add_argument("--unlabelled", type=int, default=None, metavar="VALUE",
                   help="random-forest: value of the unannotated voxels in --labels (default 255; 0 for "
                        "napari/ilastik/Fiji exports, whose classes 1, 2, 3 become phases 0, 1, 2)")
    p.add_argument("--sigmas", default=None, help="random-forest: feature scales in voxels, comma-separated (default "
                   "0.7,1.0,1.6,3.5)")  # baselines' DEFAULT_SIGMAS (a test holds them equal; importing it loads numba)
    p.add_argument("--trees", type=positive_int, default=None, help="random-forest: number of trees (default 100)")
    p.add_argument("--seed", type=int, default=None, help="random seed (k-means, random forest)")
    p.add_argument("--name", default=None, help="label image name inside the source (default segmentation; not with "
                                                "--out)")
    p.add_argument("--out", default=None, help="write a separate OME-Zarr label volume here instead")
    p.add_argument("--overwrite", action="store_true", help="replace an existing label image (or --out store)")
    p.add_argument("--plot", default=None, help="also draw the image's three central slices with the labels beside "
                                                "them (PNG; a series: its last scan)")
    add_fov_args(p)
    add_progress_args(p)
    add_cluster_args(p)
    p.set_defaults(func=run, api_aliases={"n_estimators": "trees"})  # random_forest(n_estimators): --trees
    _DEFAULTS.update({a.dest: a.default for a in p._actions})


_DEFAULTS: dict = {}  # the parser's defaults: an option left at its default was not given
#: the values of options not given (the parser's default is None, so that one given as its
#: default value, e.g. --classes 3 with --model, is still seen as given)
_UNSET = {"overlap": 0.5, "autocast": "auto", "classes": 3, "window": "conservative", "unlabelled": 255,
          "sigmas": "0.7,1,1.6,3.5", "trees": 100, "seed": 0}
#: which segmentation each option acts on (an option given to another is refused, not ignored)
_FOR = {"overlap": "model", "tta": "model", "triplanar": "model", "plane": "model", "batch_size": "model", "device": "model",
        "autocast": "model", "classes": CLASSICAL_MODELS, "window": ("watershed",),
        "labels": ("random-forest",), "unlabelled": ("random-forest",), "sigmas": ("random-forest",),
        "trees": ("random-forest",), "seed": ("kmeans", "random-forest")}


def _refuse_unused(args: argparse.Namespace) -> None:
    """Options that the chosen model or method would not use, named before any work."""
    def named(u: str) -> str:
        return "--model" if u == "model" else f"--method {u}"

    how = "model" if args.model is not None else args.method
    for dest, users in _FOR.items():
        users = (users,) if isinstance(users, str) else users
        if getattr(args, dest) != _DEFAULTS.get(dest) and how not in users:
            option = "--" + dest.replace("_", "-")
            given = option if getattr(args, dest) is True else f"{option} {getattr(args, dest)}"
            raise InputError(f"Expected `{option}` only with {' or '.join(map(named, users))}. "
                             f"Got {given} with {named(how)} instead.")
    check_fov_margin(args)


def _segment_baseline(vol, args: argparse.Namespace, fov):
    from .. import baselines

    phases = args.phases.split(",") if args.phases else None
    common = {"phases": phases, "progress": args.progress, "fov": fov}
    if args.method == "threshold":
        return baselines.threshold(vol, classes=args.classes, **common)
    if args.method == "kmeans":
        return baselines.kmeans(vol, classes=args.classes, seed=args.seed, **common)
    if args.method == "watershed":
        try:
            window = float(args.window)
        except ValueError:
            window = args.window
        return baselines.watershed(vol, classes=args.classes, window=window, **common)
    # a stack from another tool that states no voxel size or place: of the image's grid
    labels = open_label_image(args.labels, None, None, "--labels", say="training labels", like=vol)
    return baselines.random_forest(vol, labels,
                                   sigmas=_forest_sigmas(args), n_estimators=args.trees, seed=args.seed,
                                   unlabelled=args.unlabelled, **common)


def _forest_sigmas(args: argparse.Namespace) -> tuple[float, ...]:
    """The random forest's --labels given and its --sigmas read (before any pass over the data)."""
    if args.labels is None:
        raise InputError("Expected `--labels` (sparse training labels) for --method random-forest. Got None instead.")
    try:
        return tuple(float(s) for s in args.sigmas.split(","))
    except ValueError:
        raise InputError(f"Expected `--sigmas` to be comma-separated numbers (voxels), e.g. 0.7,1,1.6. "
                         f"Got {args.sigmas!r} instead.") from None


@contextlib.contextmanager
def _segment_model(vol, model, args: argparse.Namespace, fov, key: str):
    """``segment``'s Dataset; with --temporal each scan's probabilities are first stored next to
    the output (removed after; kept for a resume under ``key`` if interrupted) and averaged over
    the time window from there."""
    from ..infer import segment
    from ..infer._temporal import parse_temporal, warn_if_misaligned, windowed
    from ..io._volume import is_series

    temporal = parse_temporal(args.temporal, series=is_series(vol))
    warn_if_misaligned(vol, temporal)
    uncertainty = "entropy" if args.probabilities else None
    ds = segment(vol, model, phases=args.phases.split(",") if args.phases else None, overlap=args.overlap, tta=args.tta, triplanar=args.triplanar,
                 plane=args.plane,
                 batch_size=args.batch_size, device=args.device, probabilities=args.probabilities or bool(temporal),
                 uncertainty=None if temporal else uncertainty, autocast=args.autocast, fov=fov,
                 progress=args.progress)
    if not temporal:
        yield ds
        return
    # the scratch beside the output, named by it: other outputs in the same folder keep theirs
    dest = _destination(args)
    with windowed(ds, temporal, dest.parent, key=key, prefix=f"temporal.{dest.name}",
                  probabilities=args.probabilities, uncertainty=uncertainty, progress=args.progress) as out:
        yield out


def _refuse_existing(args: argparse.Namespace, named: bool, option: str) -> None:
    """An existing output refused without --overwrite; with --plot, said to be complete (written
    whole or not at all) with how to draw its figure: a run stopped while drawing it (or killed)
    was refused again, and only --overwrite, which segments anew, seemed to help."""
    from ..errors import OutputExistsError
    from ..io._omezarr import is_label_image

    dest = _destination(args)
    try:
        if not (args.out or named or args.overwrite) and dest.exists():  # no option to name
            raise OutputExistsError(f"Expected the source to hold no label image {args.name!r} yet (the default "
                                    f"--name), or --overwrite. Got {str(dest)!r}, which exists: --overwrite replaces "
                                    f"it, --name NAME writes another beside it.")
        refuse_existing(dest, args.overwrite, option)
    except OutputExistsError as exc:
        if not args.plot or args.overwrite or not is_label_image(dest):
            raise
        draw = (f"bigseg.report.orthoslices(bigseg.open_volume({str(Path(args.source).resolve())!r}), "
                f"bigseg.open_volume({str(dest)!r}), path={str(Path(args.plot).resolve())!r})")
        raise OutputExistsError(f"{exc} It is complete (an output is written whole or not at all): if a run of this "
                                f"command stopped while drawing --plot, only the figure is missing; draw it without "
                                f"segmenting again with python -c \"import bigseg; {draw}\".") from None


def _destination(args: argparse.Namespace) -> Path:
    """Where the labels go: ``--out``, else ``SOURCE/labels/NAME`` (of a bioformats2raw store's image, where
    save_labels puts them: its check of an existing output and its lock were of another folder)."""
    from ..io._omezarr import image_of

    return Path(args.out).resolve() if args.out else image_of(Path(args.source).resolve()) / "labels" / args.name


def run(args: argparse.Namespace) -> int:
    from ..infer import write_prediction
    from ..infer._write import is_interrupted
    from ..io import fov_mask, open_volume, save_labels, save_volume
    from ..io._fov import parse_fov
    from ..infer._model import load_model

    if args.probabilities and args.model is None:
        raise InputError("Expected `--probabilities` only with --model (a model's softmax per phase). "
                         f"Got --probabilities with --method {args.method} instead.")
    if args.probabilities and args.out:
        raise InputError("Expected `--probabilities` without --out (they are written beside the labels in the "
                         f"image's store). Got --out {args.out!r} instead.")
    if args.temporal and args.model is None:
        raise InputError(f"Expected `--temporal` only with --model (it averages a model's probabilities). "
                         f"Got --temporal {args.temporal} with --method {args.method} instead.")
    _refuse_unused(args)
    if args.out and args.name is not None:  # the labels go to --out, not into the source: the name would be ignored
        raise InputError(f"Expected `--name` only without --out (it names the label image inside the source). Got "
                         f"--name {args.name} with --out {args.out!r}.")
    named = args.name is not None  # typed, or the default
    set_unset(args, {**_UNSET, "name": "segmentation"})
    if args.fov is not None:
        parse_fov(args.fov)  # before any work
    if args.method == "random-forest":
        _forest_sigmas(args)  # before the field of view's pass
    if args.model is not None and args.model != "default" and not Path(args.model).is_file():
        raise InputError(f"Expected `--model` to be 'default' or an existing checkpoint file. Got {args.model!r} instead.")
    # a bad checkpoint (or --device cuda without a GPU) fails before any work; on the device asked for
    model = load_model(args.model, args.device) if args.model is not None else None
    if args.out:
        refuse_replacing(args.out, args.source, "--out")
    output_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES, overwrite=args.overwrite)  # before any work
    distinct_files([(args.plot, "--plot"), (args.out, "--out")])
    vol = open_volume(args.source)
    refuse_label_image(args.source, "source", instead="segment the image it labels", vol=vol)
    # an interrupted run of this same command takes up where it stopped
    key = command_key(args, "segment", paths=("source", "labels"),
                      extra={"model": model.checkpoint_key() if model is not None else None})
    option = "--out" if args.out else "--name"
    if not args.out:  # "" or "../x" named the labels group itself (--overwrite deleted every label image) or outside it
        from ..io._omezarr import check_label_name

        check_label_name(args.name)
    # a run of this command killed after its labels were placed but before their probabilities said whose they
    # are: taken up (and finished) by write_prediction, from the scratch it kept
    if not (model is not None and not args.out and is_interrupted(_destination(args).parent, args.name, key)):
        _refuse_existing(args, named, option)  # before the passes over the data
    # one run at a time writes this output (a second is refused before any work)
    hint = "" if args.out else "write a separate OME-Zarr with --out OUT.ome.zarr"  # labels go into the image
    with held(_destination(args), argument=option, hint=hint), cluster_from_args(args):
        fov = None
        if args.fov is not None:  # one field of view for every scan of a series
            fov = fov_mask(vol, args.fov, margin=args.fov_margin or 0.0, progress=args.progress)
            print(f"field of view {args.fov}: {100 * fov.attrs['inside_fraction']:.1f} % of the cross-section"
                  + ("" if fov.attrs["found"] else " (no constant fill found: all of it; give a circle instead)"))
            fov = fov.values
        with contextlib.ExitStack() as stack:
            if model is not None:
                ds = stack.enter_context(_segment_model(vol, model, args, fov, key))
                labels = ds["labels"]
            else:
                labels = _segment_baseline(vol, args, fov)
            if args.out:
                save_volume(labels, args.out, phases=labels.attrs["phases"], overwrite=args.overwrite,
                            progress=args.progress, resume_key=key)
                dest = args.out
            elif model is not None:
                dest = write_prediction(ds, args.source, name=args.name, overwrite=args.overwrite,
                                        progress=args.progress, resume_key=key)["labels"]
            else:
                dest = save_labels(labels, args.source, name=args.name, overwrite=args.overwrite,
                                   progress=args.progress, resume_key=key)
    from ..measure import volume_fractions

    fr = volume_fractions(open_volume(dest))
    how = f"model {args.model} ({model.arch})" if model is not None else args.method
    steps = [(f"t = {t}: ", fr.sel(t=t)) for t in fr.t.values] if "t" in fr.dims else [("", fr)]
    print(f"wrote {dest} ({how}): volume fractions")
    for head, f in steps:
        print("  " + head + ", ".join(f"{p} {float(v):.3f}" for p, v in zip(f.phase.values, f.values)))
    if args.plot:  # what a person checks first: the labels beside the grey values (six slices read)
        from ..report import orthoslices

        orthoslices(vol, open_volume(dest), path=args.plot, title=f"{Path(args.source).name}: segmentation ({how})")
        print(f"figure {args.plot}")
    return 0

