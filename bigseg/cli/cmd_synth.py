"""``bigseg synth``: write a synthetic electrode tomogram with its exact labels as OME-Zarr."""

from __future__ import annotations

import argparse
import json
import math

from ._common import (FIGURE_SUFFIXES, add_cluster_args, add_progress_args, cluster_from_args, output_file, parse_triple,
                      refuse_existing)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="generate a synthetic electrode tomogram with exact labels (OME-Zarr)",
        description="Generate a three-phase electrode microstructure (0 pore, 1 cbd, 2 active) and its simulated "
                    "X-ray tomogram, block by block, into an OME-Zarr image with the exact labels in "
                    "labels/truth (so that `bigseg segment` can write labels/segmentation beside them).",
    )
    p.add_argument("dest", help="OME-Zarr folder to create (e.g. synth.ome.zarr)")
    p.add_argument("--shape", default="128", help="edge, or z,y,x voxels (default 128)")
    p.add_argument("--steps", type=int, default=None, help="write an operando series of this many time steps (t,z,y,x)")
    p.add_argument("--fractions", default="0.35,0.15,0.5", help="pore,cbd,active volume fractions summing to 1 "
                                                                    "(default 0.35,0.15,0.5)")
    p.add_argument("--radius", default="8,2", help="particle radius mean[,std] in voxels (default 8,2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--chunks", default="128", help="chunk edge in voxels, or z,y,x (default 128)")
    p.add_argument("--preset", default="nano-ct-phase",
                   help="imaging preset: nano-ct-phase, nano-ct-absorption, lab-micro-ct, synchrotron-micro-ct, ideal "
                        "(default nano-ct-phase)")
    g = p.add_argument_group("physics (override the preset)")
    g.add_argument("--snr", type=float, default=None, help="contrast-to-noise ratio (inf: no noise)")
    g.add_argument("--noise", default=None, help="gaussian or poisson")
    g.add_argument("--psf-sigma", type=float, default=None, help="Gaussian PSF sigma, voxels")
    g.add_argument("--phase-contrast", type=float, default=None, help="edge-enhancement strength")
    g.add_argument("--rings", type=float, default=None, help="ring artefact amplitude (relative to contrast)")
    g.add_argument("--drift", type=float, default=None, help="illumination drift along z (relative)")
    g.add_argument("--cupping", type=float, default=None,
                   help="beam-hardening cupping: the cylinder's centre this much darker than its rim (e.g. 0.2)")
    g.add_argument("--bits", type=int, default=None, choices=[8, 16], help="quantise to 8 or 16 bits")
    p.add_argument("--cylinder", action="store_true",
                   help="image a cylinder, as a reconstruction does: 0 outside the circle inscribed in y-x, the "
                        "truth 255 (unlabelled) there (segment it with --fov auto)")
    p.add_argument("--perturb", action="store_true",
                   help="also write labels/perturbed (LRCS-Net ground-truth perturbation, 10%% x 5)")
    p.add_argument("--voxel-size", default=None, help="voxel edge, or z,y,x, in --unit (default 1 voxel: sizes in voxels)")
    p.add_argument("--unit", default=None, help="length unit of --voxel-size, e.g. um (default nm)")
    p.add_argument("--png", default=None, help="also write a PNG of orthogonal slices (tomogram beside labels)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    add_progress_args(p)
    add_cluster_args(p)
    p.set_defaults(func=run)


def _numbers(name: str, text: str) -> list[float]:
    from ..errors import InputError

    try:
        return [float(t) for t in str(text).split(",")]
    except ValueError:
        raise InputError(f"Expected `{name}` to be comma-separated numbers. Got {text!r} instead.") from None


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .._version import version
    from ..io import UNLABELLED, fill_outside, fov_mask, open_volume, save_labels, save_volume
    from ..io._omezarr import add_bigseg_attrs, writing
    from ..runtime._lock import held
    from ..synth import electrode, perturb, series, xct

    refuse_existing(args.dest, args.overwrite, "dest")  # before any work
    if args.unit is not None and args.voxel_size is None:  # was: a voxel of 1 of that unit, without a word
        from ..errors import InputError

        raise InputError(f"Expected `--unit` only with --voxel-size (without it sizes are in voxels). Got --unit "
                         f"{args.unit} without it: pass --voxel-size 1 --unit {args.unit} for voxels of 1 {args.unit}.")
    output_file(args.png, "--png", suffixes=FIGURE_SUFFIXES)
    fractions = _numbers("fractions", args.fractions)
    radius = _numbers("radius", args.radius)
    radius_arg = radius[0] if len(radius) == 1 else tuple(radius)
    shape = parse_triple(args.shape, int, option="--shape", example="96 or 48,96,96")
    chunks = parse_triple(args.chunks, int, option="--chunks", example="64 or 32,64,64")
    voxel_size = None if args.voxel_size is None else parse_triple(args.voxel_size, option="--voxel-size")
    phys = {"snr": args.snr, "noise": args.noise, "psf_sigma": args.psf_sigma, "phase_contrast": args.phase_contrast,
            "rings": args.rings, "drift": args.drift, "cupping": args.cupping, "bits": args.bits}
    if args.snr is not None and math.isinf(args.snr):
        phys["snr"] = math.inf
    progress = args.progress
    with cluster_from_args(args):
        if args.steps is not None:
            labels = series(shape, steps=args.steps, fractions=fractions, radius=radius_arg, seed=args.seed,
                            chunks=chunks, voxel_size=voxel_size, unit=args.unit)
        else:
            labels = electrode(shape, fractions=fractions, radius=radius_arg, seed=args.seed, chunks=chunks,
                               voxel_size=voxel_size, unit=args.unit)
        image = xct(labels, seed=args.seed, preset=args.preset, **phys)
        perturbed = perturb(labels, seed=args.seed) if args.perturb else None
        # what makes this store again (recorded in it): the generator's and the simulator's every setting
        made = {"bigseg": version(), "shape": list(labels.shape[-3:]), "steps": args.steps, "electrode": json.loads(labels.attrs["synth"]),
                "xct": json.loads(image.attrs["xct"]), "cylinder": bool(args.cylinder),
                **({"perturb": {"seed": args.seed}} if args.perturb else {})}
        if args.cylinder:  # a masked reconstruction: no sample beyond the circle
            inside = fov_mask(image, "cylinder")
            image, labels = fill_outside(image, inside, 0), fill_outside(labels, inside, UNLABELLED)
            perturbed = None if perturbed is None else fill_outside(perturbed, inside, UNLABELLED)
        out_chunks = chunks if labels.ndim == 3 else ((1,) + (tuple(chunks) if isinstance(chunks, tuple) else (chunks,) * 3))
        # the image and its labels into a hidden folder, moved into place once all are written: a run
        # stopped between them leaves no image without its truth under DEST
        with held(Path(args.dest), argument="dest"), writing(Path(args.dest)) as tmp:
            save_volume(image, tmp, chunks=out_chunks, progress=progress)
            save_labels(labels, tmp, name="truth", chunks=out_chunks, progress=progress)
            if perturbed is not None:
                save_labels(perturbed, tmp, name="perturbed", chunks=out_chunks, progress=progress)
            add_bigseg_attrs(tmp, synth=made)
    if args.png:
        from ..report import orthoslices, timeslices

        draw = timeslices if args.steps is not None else orthoslices  # a series: the same slice at every step
        draw(open_volume(args.dest), open_volume(args.dest, label="truth"), path=args.png,
             title=f"bigseg synth: {args.preset}, seed {args.seed}")
    fr = json.loads(labels.attrs.get("synth", "{}")).get("n_particles")
    print(f"wrote {args.dest}: image {image.shape} {image.dtype} + labels/truth"
          + (" + labels/perturbed" if args.perturb else "")
          + (f", {fr} particles" if fr else "") + (f"; figure {args.png}" if args.png else ""))
    return 0
