"""``bigseg train``: train (or fine-tune) a model on sparse labels, or on synthetic electrodes."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from typing import Any

from ._common import (add_fov_args, add_progress_args, nonnegative_int, open_label_image, positive_int,
                      refuse_label_image, refuse_unused)

#: the generator's options: refused without --synthetic (by name, rather than ignored)
_SYNTHETIC = {"presets": (("synthetic",), None), "shape": (("synthetic",), None),
              "batches_per_volume": (("synthetic",), 6), "data_workers": (("synthetic",), 0),
              "radius_range": (("synthetic",), None)}

#: options of training on labels: refused with --synthetic (by name, rather than ignored)
_LABELS_ONLY = ("axis", "val_fraction", "unlabelled", "fov_margin")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train or fine-tune a segmentation model (sparse labels or --synthetic)",
        description="Train an LRCS-Net-style 2D network or a 3D U-Net on an image and a sparse label volume "
                    "(255 = unlabelled), or on synthetic electrodes generated on the fly (--synthetic). "
                    "Writes a safe checkpoint (load it with bigseg.models.load or `bigseg segment --model`).",
    )
    p.add_argument("image", nargs="?", help="image: OME-Zarr, TIFF stack/file, HDF5, .npy (not with --synthetic)")
    p.add_argument("labels", nargs="?", help="sparse labels of the same shape (255 = unlabelled); an OME-Zarr label image too")
    p.add_argument("--unlabelled", type=int, default=None, metavar="VALUE",
                   help="value of the unannotated voxels in LABELS (default 255); 0 for napari/ilastik/Fiji exports, "
                        "whose classes 1, 2, 3 become phases 0, 1, 2")
    p.add_argument("--phases", default=None, metavar="NAMES",
                   help="phase names by label value, comma separated (default: the names LABELS state, else the "
                        "--init model's, else pore,cbd,active); with --init, labels of its phases in another order "
                        "are re-indexed to its order, e.g. active,pore,cbd")
    add_fov_args(p, "to train inside only: IMAGE prepared as `segment --fov` prepares it, LABELS outside ignored")
    p.add_argument("-o", "--output", required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--synthetic", action="store_true", help="train on generated electrodes + XCT physics")
    p.add_argument("--arch", default=None, help="lrcsnet (2D, default) or unet3d")
    p.add_argument("--init", default=None, help="model to fine-tune: 'default' or a checkpoint path")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training data (default 10)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="batches per epoch (default: enough to see each labelled voxel ~8 times, 20-1000; "
                        "100 with --synthetic)")
    p.add_argument("--lr", type=float, default=None, help="initial learning rate (default 1e-4; 1e-3 with --synthetic)")
    p.add_argument("--lr-decay", type=float, default=None,
                   help="factor applied to the learning rate after each epoch (default 0.3 as Su et al. 2022; 0.8 with --synthetic)")
    p.add_argument("--batch-size", type=int, default=8, help="patches per training step (default 8)")
    p.add_argument("--patch", default=None, help="patch edge or y,x (2D) / z,y,x (3D), in voxels (default 128,128 / 48,48,48 or --init's, cut to the image)")
    p.add_argument("--kernels", type=int, default=None, help="lrcsnet: kernels of the first level (default 32)")
    p.add_argument("--kernel-size", type=int, default=None, help="lrcsnet: kernel size (default 5)")
    p.add_argument("--growth", type=float, default=None, help="lrcsnet: channel multiplier per level (default 2)")
    p.add_argument("--channels", default=None, help="unet3d: channels per level, e.g. 16,32,64")
    p.add_argument("--axis", type=int, default=None, help="axis of the annotated slices (default 0 = z)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="fraction of labelled slices held back for validation (default 0.15; 0: none)")
    p.add_argument("--patience", type=nonnegative_int, default=None,
                   help="stop after this many epochs without a better validation IoU (a lower training loss with "
                        "--val-fraction 0); 0: never (default 3 with labels, never with --synthetic)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this wall time (best epoch kept)")
    p.add_argument("--presets", default=None, help="--synthetic: comma-separated XCT presets (default all realistic)")
    p.add_argument("--shape", default=None, help="--synthetic: z,y,x of each generated volume")
    p.add_argument("--batches-per-volume", type=int, default=None,
                   help="--synthetic: batches per generated volume (default 6)")
    p.add_argument("--data-workers", type=int, default=None, metavar="N",
                   help="--synthetic: processes making the volumes ahead (same volumes, same model; on a GPU give "
                        "it most of the cores: the simulator sets the pace); default 0, in turn")
    p.add_argument("--radius-range", default=None,
                   help="--synthetic: low,high mean particle radius in voxels, log-uniform (default 5,20)")
    p.add_argument("--checkpoint-dir", default=None, help="write per-epoch and best checkpoints here (and the state "
                                                          "to resume the run from)")
    p.add_argument("--resume", action="store_true",
                   help="go on with the run in --checkpoint-dir that stopped (wall time, --max-minutes, a crash): "
                        "the same command with --resume and --epochs the total to reach gives the model of the "
                        "whole run (replacing the -o, --report and --plot the stopped run wrote)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA if available)")
    p.add_argument("--amp", "--autocast", dest="amp", default="auto", choices=["auto", "bf16", "fp16", "off"],
                   help="reduced precision (--autocast, as segment and bench call it; default auto: bf16/fp16 on a "
                        "GPU, float32 on the CPU)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's own)")
    p.add_argument("--half", action="store_true", help="store float16 weights (half the file size)")
    p.add_argument("--report", default=None, help="also write the provenance (history, scores) as JSON here")
    p.add_argument("--plot", default=None, help="also draw the training curves (loss, learning rate, validation IoU "
                                                "per phase, per epoch) here, e.g. training.png")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_progress_args(p)
    p.set_defaults(func=run, stopped_note=_stopped_note, api_aliases={"name_or_path": "init", "workers": "data_workers"})  # models.load(name_or_path): --init


def run(args: argparse.Namespace) -> int:
    import torch

    from ..cli._common import FIGURE_SUFFIXES, output_file, parse_triple
    from ..errors import InputError, OutputExistsError
    from ..models import save

    refuse_unused(args, _SYNTHETIC)
    replace = args.overwrite or args.resume  # a resumed run replaces what it wrote when it stopped
    output_file(args.output, "--output", suffixes=(".pt",))  # before any work: a file, its folder made
    output_file(args.report, "--report", suffixes=(".json",), overwrite=replace)
    output_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES, overwrite=replace)
    if os.path.exists(args.output) and not replace:
        raise OutputExistsError(f"Expected `output` {args.output!r} not to exist (pass --overwrite). It exists.")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    arch_kwargs = {}
    for key in ("kernels", "kernel_size", "growth"):
        if getattr(args, key) is not None:
            arch_kwargs[key] = getattr(args, key)
    if args.channels:
        try:
            arch_kwargs["channels"] = tuple(int(c) for c in args.channels.split(","))
        except ValueError:
            raise InputError(f"Expected `channels` to be comma-separated ints. Got {args.channels!r} instead.") from None
    patch = (parse_triple(args.patch, int, option="--patch", count="two or three",
                          example="96,96 for a 2D model, 32,32,32 for a 3D one")
             if args.patch else None)
    if args.patience is not None:  # else the default of train (3) or of synthetic (never), as from Python
        common_patience = {"patience": args.patience or None}
    else:
        common_patience = {"patience": None} if args.synthetic else {}
    common = dict(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, init=args.init, patch=patch,
                  **common_patience, steps_per_epoch=args.steps_per_epoch, checkpoint_dir=args.checkpoint_dir,
                  resume=args.resume,
                  seed=args.seed, device=args.device, amp=args.amp, progress=args.progress,
                  max_minutes=args.max_minutes, arch_kwargs=arch_kwargs)
    with _epoch_lines(not args.progress):  # a batch job's log has each epoch as it ends
        model = _fit(args, common)
    save(model, args.output, half=args.half, overwrite=True)  # (an existing output: refused above without --overwrite)
    if args.report:
        from ..runtime._files import write_text

        write_text(args.report, json.dumps({
            "output": args.output, "arch": model.arch, "arch_kwargs": model.arch_kwargs, "patch": list(model.patch),
            "phases": model.phases, "normalization": model.normalization, "provenance": model.provenance}, indent=1))
    prov = model.provenance
    if args.plot:
        from ..train._report import plot_history

        init = f", fine-tuned from {args.init}" if args.init else ""
        data = (f"synthetic electrodes ({args.presets or 'every realistic preset'})" if args.synthetic
                else f"{os.path.basename(os.path.normpath(args.image))} with {os.path.basename(os.path.normpath(args.labels))}")
        plot_history(prov.get("history") or [], model.phases, args.plot,
                     title=f"{data}: {model.arch}{' ' + str(model.arch_kwargs) if model.arch_kwargs else ''}, "
                           f"{prov.get('epochs')} epoch(s) ({prov.get('steps')} steps) "
                           f"in {prov.get('duration_s')} s{init}")
    stop = (f" (of {args.epochs} asked: --max-minutes {args.max_minutes:g} reached)" if prov.get("timed_out") else
            f" (of {args.epochs} asked: stopped early, no better validation IoU for {prov.get('patience')} epochs)"
            if prov.get("stopped_early") else "")
    options = f" {model.arch_kwargs}" if model.arch_kwargs else " (default options)"
    resumed = prov.get("resumed_after_epochs")
    stop += f", resumed after epoch {', '.join(map(str, resumed))}" if resumed else ""
    print(f"wrote {args.output}: {model.arch}{options}, {prov.get('epochs')} epochs{stop} "
          f"({prov.get('steps')} steps) in {prov.get('duration_s')} s on {prov.get('hardware')}; best epoch "
          f"{prov.get('best_epoch')}, scores {json.dumps(prov.get('scores'))}")
    if args.plot:
        print(f"training curves: {args.plot}")
    if args.report:
        print(f"provenance (history, scores): {args.report}")
    return 0


def _fit(args: argparse.Namespace, common: dict) -> Any:
    """The model trained as ``args`` say (``common``: the options both kinds of training take)."""
    from ..cli._common import parse_triple
    from ..errors import InputError
    from ..train import synthetic as train_synthetic
    from ..train import train

    if args.synthetic:
        if args.image or args.labels or args.fov:
            raise InputError("Expected no image/labels/--fov with --synthetic. Got some.")
        for dest in _LABELS_ONLY:  # options of training on labels: refused by name, rather than ignored
            if getattr(args, dest) is not None:
                option = "--" + dest.replace("_", "-")
                raise InputError(f"Expected `{option}` only when training on IMAGE and LABELS, not with --synthetic "
                                 f"(its validation volumes are generated). Got {option} {getattr(args, dest)} with it.")
        kw = {}
        if args.presets:
            kw["presets"] = [s.strip() for s in args.presets.split(",")]
        if args.shape:
            shape = parse_triple(args.shape, int, option="--shape")
            kw["shape"] = (shape,) * 3 if isinstance(shape, int) else shape  # one number: a cube
        if args.radius_range:
            try:
                kw["radius_range"] = parse_triple(args.radius_range, float, option="--radius-range")
            except ValueError:
                raise InputError(f"Expected `--radius-range` to be low,high in voxels. Got {args.radius_range!r} instead.") from None
        if args.phases:
            kw["phases"] = _phases(args)
        return train_synthetic(lr=args.lr if args.lr is not None else 1e-3,
                               lr_decay=args.lr_decay if args.lr_decay is not None else 0.8,
                               batches_per_volume=args.batches_per_volume, workers=args.data_workers, **common, **kw)
    if not args.image or not args.labels:
        raise InputError("Expected `image` and `labels` paths (or --synthetic). Got too few.")
    from ..io import open_source

    refuse_label_image(args.image, "image", instead="train on the image it labels")
    image = open_source(args.image)
    # a stack from another tool (napari, ilastik, Fiji) that states no voxel size or place is of the image's grid
    labels = open_label_image(args.labels, None, None, "labels", say="training labels", hint="", like=image)
    return train(image, labels, lr=args.lr if args.lr is not None else 1e-4,
                 lr_decay=args.lr_decay if args.lr_decay is not None else 0.3,
                 axis=args.axis if args.axis is not None else 0,
                 val_fraction=args.val_fraction if args.val_fraction is not None else 0.15,
                 unlabelled=args.unlabelled if args.unlabelled is not None else 255, fov=args.fov,
                 fov_margin=args.fov_margin or 0.0, phases=_phases(args), **common)


#: bigseg.train._resume.STATE_FILE, named here without importing bigseg.train (torch): see _stopped_note
STATE_FILE = "resume.pt"


def _stopped_note(args: argparse.Namespace) -> str:
    """What a run stopped part-way kept, and how to go on with it (the same command again starts
    over: it goes on only with --resume). Imports nothing: a stop that landed while torch was
    being imported left it half made, and importing it again here (``bigseg.train``) crashed
    Python (SIGSEGV) instead of saying "terminated"."""
    if args.checkpoint_dir is None:
        return "nothing of the run is kept (give --checkpoint-dir to be able to go on with a stopped run)"
    state = os.path.join(args.checkpoint_dir, STATE_FILE)  # (the name bigseg.train._resume writes)
    if not os.path.isfile(state):
        return f"no epoch had finished ({state!r} not written): the same command starts over"
    return (f"the epochs it finished are kept in {state!r}: the same command with --resume goes on from there "
            "(without --resume it starts over)")


def _phases(args: argparse.Namespace) -> list[str] | None:
    """``--phases`` as a list of names (None: not given)."""
    return [s.strip() for s in args.phases.split(",")] if args.phases else None


@contextlib.contextmanager
def _epoch_lines(enabled: bool):
    """Each epoch's line (logged by the training loop when it shows no progress bar) printed on
    stdout as it ends, inside the ``with`` block."""
    if not enabled:
        yield
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("bigseg.train")
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)  # (setLevel, not the attribute: the logger caches what it lets through)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
