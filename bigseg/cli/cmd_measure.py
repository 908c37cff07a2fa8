"""``bigseg measure``: volume fractions, interfaces and (with a truth) scores of a label image."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from .._parse import parse_shells_spec
from ..errors import InputError
from ..runtime._files import replacing
from ._common import (FIGURE_SUFFIXES, add_cluster_args, column_widths, add_progress_args, add_stack_calibration_args,
                      cluster_from_args, distinct_files, open_label_image, output_file, positive_float,
                      positive_int, refuse_label_image, refuse_unused, sparse_truth_note, stack_calibration)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "measure", help="fractions, interfaces, scores, profiles, particles, shells, tortuosity, connectivity, thickness, "
             "RVE of a label image",
        description="Measure a label image exactly, block by block: volume fractions, phase-pair interfaces "
                    "(shared faces, % of voxels, area) and, given a reference, IoU/Dice/precision/recall. "
                    "Prints a table; optionally writes netCDF, CSV and a bar chart.")
    p.add_argument("labels", help="OME-Zarr label image (image.ome.zarr/labels/NAME), or an image (or its labels "
                                  "group): its label image 'segmentation', or its only one; or a TIFF/HDF5/.npy "
                                  "label stack")
    p.add_argument("--label", default=None, help="with an image path: the label image to open (labels/LABEL)")
    p.add_argument("--method", default="faces", choices=["faces", "marching_cubes", "crofton"],
                   help="interface area: voxel faces (default; fast, +50%% on spheres), smoothed marching cubes (loses "
                        "1-voxel films) or crofton (13 directions, within a few %% on any shape)")
    p.add_argument("--truth", default=None, help="reference label image, or a TIFF/HDF5/.npy label stack: adds IoU, "
                                                 "Dice, precision, recall, accuracy")
    p.add_argument("--phases", default=None, help="phase names by label value, comma separated (default: metadata)")
    p.add_argument("--netcdf", default=None, help="write all metrics to this netCDF file")
    p.add_argument("--csv", default=None, help="write all metrics as a long table (quantity, phases, value, units)")
    p.add_argument("--plot", default=None, help="write a bar chart of fractions and interface areas (PNG); for a "
                   "(t, z, y, x) series, curves of every measurement over time (with --particles: particle counts, "
                   "sizes and contacts too); with --profile / --shells / --rve also NAME_profile.png / NAME_shells.png / "
                   "NAME_rve.png")
    p.add_argument("--particles", default=None, metavar="CSV",
                   help="write one row per particle of --particle-phase (size, shape, contacts, detachment) to CSV, "
                        "and its histograms beside it (same name, .png)")
    p.add_argument("--particle-phase", default=None, help="phase of the particles (default active)")
    p.add_argument("--particle-area", default=None, choices=["marching_cubes", "crofton"],
                   help="particles' surface area: smoothed marching cubes (default; NaN for particles under ~5 "
                        "voxels in radius) or crofton (13 directions, within a few %% from a radius of 3)")
    p.add_argument("--particle-labels", default=None, metavar="NAME",
                   help="also write the particles' instance labels into the image as labels/NAME (value = the id "
                        "of the --particles table; for a series its track), e.g. to check the split in napari")
    p.add_argument("--no-split", action="store_true",
                   help="particles are connected components (default: touching particles split by a watershed)")
    p.add_argument("--min-voxels", type=positive_int, default=None, metavar="N",
                   help="smallest particle listed, in voxels (default 1: every one); smaller ones, e.g. specks of "
                        "noise, have no row and no instance label (with --particles, the count left out is printed)")
    p.add_argument("--max-diameter", type=positive_int, default=None,
                   help="widest particle in voxels, the halo of the split, and the largest --thickness resolved "
                        "(default 40)")
    p.add_argument("--intensity", default=None, help="grey image for the particles' mean intensity (OME-Zarr, or a TIFF, "
                                                       "HDF5 or .npy stack)")
    p.add_argument("--shells", default=None, metavar="AROUND:OF:MAX",
                   help="fraction of phase OF in 1-voxel shells up to MAX voxels from phase AROUND, e.g. active:cbd:10")
    p.add_argument("--tortuosity", default=None, choices=["z", "y", "x"],
                   help="tortuosity factor of the pore phase (or --tortuosity-phase) along this axis (TauFactor, "
                        "sub-volumes of 256³)")
    p.add_argument("--tortuosity-phase", default=None, metavar="NAME",
                   help="the conducting phase of --tortuosity (default pore: the electrolyte; active or cbd for "
                        "transport in the solid)")
    p.add_argument("--connectivity", default=None, choices=["z", "y", "x"],
                   help="each phase's share in components spanning the volume along this axis (percolating), cut "
                        "off inside it (isolated) or reaching its edge only (unknown)")
    p.add_argument("--thickness", default=None, metavar="PHASE[,PHASE]",
                   help="local thickness distribution of these phases (the pore size distribution of pore): "
                        "d10 / median / d90 / mean printed, all diameters in --netcdf/--csv, drawn beside --plot "
                        "(NAME_thickness.png); up to --max-diameter voxels")
    p.add_argument("--fov", default=None,
                   help="--tortuosity of labels with a field of view: solve in the largest square inside it, "
                        "'auto' (the 255 fill around the sample), 'cylinder' or CY,CX,R (other measurements leave "
                        "255 out by themselves)")
    p.add_argument("--radial", type=positive_float, default=None, metavar="STEP",
                   help="volume fractions in coaxial shells of STEP voxels around the z axis (a cylinder's radial "
                        "artefacts: cupping, rim), centred on --fov's axis if given, else on the cross-section; "
                        "printed in ten groups, all shells in --netcdf, drawn beside --plot (NAME_radial.png)")
    p.add_argument("--profile", default=None, choices=["z", "y", "x"],
                   help="volume fractions slice by slice along this axis (e.g. the electrode's thickness): printed "
                        "in ten bins, all slices in --netcdf/--csv, drawn beside --plot (NAME_profile.png)")
    p.add_argument("--profile-step", type=int, default=None, metavar="N", help="slices per bin of --profile (default 1)")
    p.add_argument("--rve", action="store_true",
                   help="representative volume element: scatter of each phase's fraction over sub-cubes of growing "
                        "edge, and the smallest edge within 5 %% (drawn beside --plot as NAME_rve.png)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_stack_calibration_args(p)
    add_progress_args(p)
    add_cluster_args(p)
    p.set_defaults(func=run)


def _table(ds) -> str:
    lines = []
    series = "t" in ds.dims
    steps = list(range(ds.sizes["t"])) if series else [None]
    from ..measure import evolution
    from ..report._units import readable, time_at

    phases = [str(p) for p in ds.phase.values]
    pairs = list(itertools.combinations(range(len(phases)), 2))
    pw = max([12] + [len(p) + 2 for p in phases])  # long names keep the columns aligned
    iw = max([22] + [len(phases[i]) + len(phases[j]) + 3 for i, j in pairs])
    scale, unit = readable(ds.area.values, ds.area.attrs.get("units", ""))  # one unit for every step
    per_volume = evolution(ds)  # area / each step's volume: the specific interface area
    spec = {(i, j): per_volume[f"specific_area_{phases[i]}_{phases[j]}"].to_numpy() for i, j in pairs}
    spec_scale, spec_unit = readable(list(spec.values()), f"1/{ds.attrs.get('unit', '')}")
    for t in steps:
        d = ds.isel(t=t) if t is not None else ds
        if t is not None:
            lines.append(f"t = {time_at(ds.t, t)}")
        head = f"{'phase':<{pw}}{'fraction':>10}"
        if "iou" in d:
            head += f"{'IoU':>8}{'Dice':>8}{'prec.':>8}{'recall':>8}"
        lines.append(head)
        for i, ph in enumerate(phases):
            row = f"{ph:<{pw}}{float(d.volume_fraction.values[i]):>10.4f}"
            if "iou" in d:
                row += "".join(f"{float(d[v].values[i]):>8.4f}" for v in ("iou", "dice", "precision", "recall"))
            lines.append(row)
        if "accuracy" in d:
            line = f"accuracy {float(d.accuracy.values):.4f}"
            if "support" in d and not series and (sparse := sparse_truth_note(d.support.values,
                                                                               int(ds.attrs.get("voxels", 0)))):
                line += f" ({sparse})"  # sparse annotations: their labelled voxels only
            lines.append(line)
        cover = "coverage" in d
        lines.append(f"{'interface':<{iw}}{'faces':>12}{'% voxels':>10}{'area [' + unit + ']':>14}"
                     f"{'per volume [' + spec_unit + ']':>22}" + (f"{'% of a':>9}{'% of b':>9}" if cover else ""))
        for i, j in pairs:
            lines.append(f"{phases[i] + '-' + phases[j]:<{iw}}{int(d.faces.values[i, j]):>12d}"
                         f"{100 * float(d.voxel_fraction.values[i, j]):>10.3f}"
                         f"{float(d.area.values[i, j]) * scale:>#14.6g}{spec[i, j][t or 0] * spec_scale:>#22.4g}"
                         + (f"{100 * float(d.coverage.values[i, j]):>9.1f}{100 * float(d.coverage.values[j, i]):>9.1f}"
                            if cover else ""))
        if cover:
            lines.append("(% of a / % of b: share of that phase's interface area on this interface, its surface coverage)")
        if ds.attrs.get("method") == "faces":
            from ..measure._metrics import FACES_CAVEAT

            lines.append(f"(areas: {FACES_CAVEAT}, --method crofton)")
        else:
            lines.append(f"(areas: {ds.attrs.get('method')})")
        lines.append("")
    return "\n".join(lines).rstrip()


def _rve_table(rve) -> str:
    from ..report._units import along_z, readable

    scale, unit = readable(rve["size_physical"].values, rve["size_physical"].attrs.get("units", ""))
    phases = [str(p) for p in rve.phase.values]
    wide = column_widths(phases)
    lines = [f"representative volume element: std / mean of each fraction over sub-cubes (tolerance "
             f"{rve.attrs['tolerance']:g})", f"{'cube edge' + along_z(rve.attrs.get('voxel_size')) + ' [' + unit + ']':<20}{'cubes':>8}" + "".join(f"{p:>{w}}" for p, w in zip(phases, wide))]
    for i, edge in enumerate(rve["size_physical"].values):
        lines.append(f"{edge * scale:<20.4g}{int(rve.cubes.values[i]):>8}"
                     + "".join(f"{v:>{w}.3f}" for v, w in zip(rve.relative_std.values[i], wide)))
    found = ", ".join(f"{p} {v * rve.attrs['voxel_size'][0] * scale:.4g} {unit}" if v == v else f"{p} not reached in this volume"
                      for p, v in zip(phases, rve.rve_size.values))
    lines.append(f"first edge within the tolerance: {found}")
    return "\n".join(lines)


def _text_table(title: str, head: list[str], rows: list[list], note: str | None = None, fmt: str = ".4g") -> str:
    """A report table (:mod:`bigseg.report`'s header and rows) as text: numbers in ``fmt``, the
    first column to the left."""
    cells = [[r[0]] + [format(v, fmt) if isinstance(v, float) else str(v) for v in r[1:]] for r in rows]
    widths = [max(len(str(h)), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    lines = [title, "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    return "\n".join(lines + ([f"({note})"] if note else []))


def _connectivity_table(conn) -> str:
    """The connectivity of each phase (the last scan of a series), as the report shows it."""
    from ..report import connectivity_table
    from ..report._units import at_last_step

    last = at_last_step(conn)
    head, rows, note = connectivity_table(conn.isel(t=-1) if "t" in conn.dims else conn, conn.attrs["axis"])
    return _text_table(f"connectivity along {conn.attrs['axis']}{last}:", head, rows, note, fmt=".1f")


def _thickness_table(thick) -> str:
    """Each phase's local thickness d10 / median / d90 / mean (the last scan of a series), as the report shows it."""
    from ..report import thickness_table
    from ..report._units import at_last_step

    last = at_last_step(thick)
    d = thick.isel(t=-1) if "t" in thick.dims else thick
    return _text_table(f"local thickness{last}:", *thickness_table(d, d.diameter.attrs.get("units", "")))


#: what the particle line says where no phase is named "pore" (detachment is the pore contact)
NO_DETACHMENT = "no detachment (the share of a particle's surface on the phase named 'pore': none is named so)"


def _size_groups_lines(table, at: str = "") -> str:
    """Small vs big particles (split at the median diameter): detachment and its spread, as the
    detachment study compares them; a series shows its last step, which ``at`` says (``" (t = 2)"``)."""
    from ..measure import size_groups
    from ..measure._groups import contact_median
    from ..report._units import quantity_text

    g = size_groups(table)
    unit = g.attrs["unit"]
    if "t" in g.index.names:
        g = g.xs(g.index.get_level_values("t")[-1], level="t")
    median = "the median over every time step" if "t" in table else "the median"
    cbd = contact_median(g, "cbd")  # ("contact_CBD_median"; CBD particles have none: no column of NaN)
    lines = [f"by size{at} (split at {quantity_text(g.attrs['threshold'], unit)}, {median}): particles, "
             "detachment median [10-90 %]" + (", CBD contact median" if cbd else "")]
    for name, r in g.iterrows():
        if r["particles"]:
            lines.append(f"  {name:<6}{int(r['particles']):>6}   {r['detachment_median']:.3f} "
                         f"[{r['detachment_p10']:.3f}-{r['detachment_p90']:.3f}]"
                         + (f"   {r[cbd]:.3f}" if cbd else ""))
    return "\n".join(lines)


#: the figures drawn beside ``--plot NAME`` (``NAME_rve.png`` ...) for the measurements asked for
_BESIDE_PLOT = ("_rve", "_thickness", "_shells", "_profile", "_radial")


def _beside(plot: str, suffix: str) -> Path:
    """``NAME<suffix>.png`` beside ``--plot NAME.EXT``."""
    return Path(plot).with_name(Path(plot).stem + suffix + ".png")


def _radial_table(radial, rows: int = 10) -> str:
    """The radial profile in about ``rows`` groups of its shells (voxel-weighted means)."""
    import numpy as np

    from ..report._units import at_last_step, readable

    last = at_last_step(radial)
    p = radial.isel(t=-1) if "t" in radial.dims else radial
    w = p["bin_voxels"].values.astype(np.float64)
    n = int(np.flatnonzero(w > 0).max()) + 1 if (w > 0).any() else 0
    edges = np.unique(np.linspace(0, n, min(rows, n) + 1).round().astype(int))
    scale, unit = readable(p.r.values, p.r.attrs.get("units", ""))
    step = float(p.attrs["step"]) * (float(p.r.values[0]) / float(p.r_voxels.values[0])) * scale
    phases = [str(x) for x in p.phase.values]
    wide = column_widths(phases)
    cy, cx = p.attrs["centre"]
    lines = [f"volume fractions by distance from the axis at voxel y {cy:g}, x {cx:g}{last}:",
             f"{'r [' + unit + ']':<20}" + "".join(f"{x:>{wd}}" for x, wd in zip(phases, wide))]
    for a, b in zip(edges[:-1], edges[1:]):
        ww = w[a:b]
        vals = [np.nansum(p.values[i, a:b] * ww) / ww.sum() if ww.sum() else np.nan for i in range(len(phases))]
        lines.append(f"{f'{a * step:.4g} - {b * step:.4g}':<20}" + "".join(f"{v:>{wd}.3f}" for v, wd in zip(vals, wide)))
    return "\n".join(lines)


def _profile_table(prof, rows: int = 10) -> str:
    """The profile in about ``rows`` equal groups of its bins (voxel-weighted means): a glance at
    the gradient; every bin is in --netcdf/--csv. A series shows its last time step."""
    import numpy as np

    from ..report._units import at_last_step, readable

    axis = prof.attrs["axis"]
    last = at_last_step(prof)
    p = prof.isel(t=-1) if "t" in prof.dims else prof
    w = p["bin_voxels"].values.astype(np.float64)
    first = p[f"{axis}_index"].values
    n_slices = int(prof.attrs["shape"][("z", "y", "x").index(axis)])
    n = p.sizes[axis]
    edges = np.unique(np.linspace(0, n, min(rows, n) + 1).round().astype(int))
    scale, unit = readable(p[axis].values, p[axis].attrs.get("units", ""))
    phases = [str(x) for x in p.phase.values]
    wide = column_widths(phases)
    lines = [f"volume fractions along {axis}{last}:",
             f"{'slices':<14}{'centre [' + unit + ']':>16}" + "".join(f"{ph:>{wd}}" for ph, wd in zip(phases, wide))]
    for a, b in zip(edges[:-1], edges[1:]):
        ww = w[a:b]
        frac = ((np.nan_to_num(p.values[:, a:b]) * ww).sum(axis=1) / ww.sum() if ww.sum() > 0
                else np.full(len(phases), np.nan))
        end = int(first[b]) if b < n else n_slices
        centre = float(np.average(p[axis].values[a:b], weights=np.diff(np.append(first, n_slices))[a:b])) * scale
        lines.append(f"{f'{int(first[a])}-{end - 1}':<14}{centre:>16.4g}"
                     + "".join(f"{v:>{wd}.4f}" for v, wd in zip(frac, wide)))
    return "\n".join(lines)


def _long_table(ds):
    """One row per value: quantity, its dimensions' coordinates (t, phase, pair, position, shell,
    sub-volume; a coordinate with a unit names it in its column, ``y [nm]``), value, units."""
    import pandas as pd

    rows = []
    for name, var in ds.data_vars.items():
        if var.ndim == 0:
            df = pd.DataFrame({"value": [var.item()]})
        else:
            df = var.to_dataframe(name="value").reset_index()
            df = df[[c for c in df.columns if c in var.dims or c == "value"]]
            df = df.rename(columns={c: f"{c} [{u}]" for c in var.dims  # a position says its unit: "y [nm]"
                                    if c in var.coords and (u := str(var[c].attrs.get("units", ""))) not in ("", "1")})
        df.insert(0, "quantity", name)
        df["units"] = var.attrs.get("units", "")
        if "phase_a" in df:
            df = df[df["phase_a"] != df["phase_b"]]
        rows.append(df)
    out = pd.concat(rows, ignore_index=True)
    t = next((c for c in out.columns if c == "t" or str(c).startswith("t [")), "t")  # "t [min]": times with a unit
    first = [c for c in ("quantity", t, "phase", "phase_a", "phase_b") if c in out]
    return out[first + [c for c in out.columns if c not in first + ["value", "units"]] + ["value", "units"]]


def _particle_labels_target(labels, args: argparse.Namespace) -> Path:
    """IMAGE/labels/NAME beside the measured label image (in the image that holds it)."""
    from ..io._volume import is_zarr_store

    src = Path(labels.attrs["source"])
    if not is_zarr_store(src):
        raise InputError(f"Expected `--particle-labels` with an OME-Zarr label image as LABELS (the particle ids "
                         f"are written beside it, into its image). Got the label stack {str(src)!r}: ingest it "
                         f"first, or write the table alone with --particles.")
    image = src.parent.parent if src.parent.name == "labels" else src
    return image / "labels" / args.particle_labels


def _write_particle_labels(labels, args: argparse.Namespace, phases) -> Path:
    """The instance labels alone (no --particles table asked for)."""
    import xarray as xr

    from .. import measure
    from ..io import save_labels

    target = _particle_labels_target(labels, args)
    ids = measure.particle_labels(labels, phase=args.particle_phase, split=not args.no_split,
                                  max_diameter=args.max_diameter, phases=phases, progress=args.progress,
                                  min_voxels=args.min_voxels)
    return Path(save_labels(xr.DataArray(ids, dims=labels.dims), target.parent.parent, name=target.name,
                            instances=True, overwrite=args.overwrite, progress=args.progress))


def _phase_option(value: str, option: str, known: list[str]) -> str:
    """The phase an option names among the labels' phases ``known``: by name (in other case too,
    "Active"), or by label value ("2"); refused by name otherwise, before any work."""
    from ..io._volume import phase_named

    if value not in known and str(value).isdigit():  # a label value: its name
        if int(value) >= len(known):
            raise InputError(f"Expected `{option}` to be one of the phases {known} or a label value "
                             f"below {len(known)}. Got {value!r} instead.")
        value = known[int(value)]
    value = phase_named(known, value) or value
    if value not in known:
        raise InputError(f"Expected `{option}` to be one of the phases {known}. Got {value!r} instead.")
    return value


#: options that act only with one of others (given without, refused by name rather than ignored),
#: and their values when not given
_NEEDS = {"profile_step": (("profile",), 1), "particle_phase": (("particles", "particle_labels"), "active"),
          "no_split": (("particles", "particle_labels"), False), "min_voxels": (("particles", "particle_labels"), 1),
          "intensity": (("particles",), None),
          "particle_area": (("particles",), "marching_cubes"),
          "fov": (("tortuosity", "radial"), None), "tortuosity_phase": (("tortuosity",), "pore"),
          "max_diameter": (("particles", "particle_labels", "thickness"), 40)}


def run(args: argparse.Namespace) -> int:
    from .. import measure
    from ..io import open_source
    from ..io._volume import same_place
    # here, not at the top: the report package brings the measure kernels (numba, scikit-image), which
    # every command's start (`bigseg --help`) would load
    from ..report._units import at_last_step, time_at

    refuse_unused(args, _NEEDS)

    cal = stack_calibration(args, [args.labels, args.truth])
    labels = open_label_image(args.labels, args.label, "segmentation", "labels", say="measuring", sizes=True, **cal)
    # a stack of the labels' grid and box (a run's crop) stating neither: taken to be there
    truth = open_label_image(args.truth, None, "truth", "--truth", say="truth    ", sizes=True, like=labels,
                             **cal) if args.truth else None
    named = []  # every file this run writes, with the option that names it
    for option, suffixes in (("particles", (".csv",)), ("netcdf", (".nc",)), ("csv", (".csv",)),
                             ("plot", FIGURE_SUFFIXES)):  # before any work
        named.append((output_file(getattr(args, option), f"--{option}", suffixes=suffixes,
                                  overwrite=args.overwrite), f"--{option}"))
    if args.particles:  # its histograms beside it
        named.append((output_file(str(Path(args.particles).with_suffix(".png")), "--particles",
                                  overwrite=args.overwrite), "--particles", "the histograms drawn beside its table"))
    if args.plot:  # the figures drawn beside --plot, for the measurements asked for
        for wanted, suffix in zip((args.rve, args.thickness, args.shells, args.profile, args.radial), _BESIDE_PLOT):
            if wanted:
                named.append((output_file(str(_beside(args.plot, suffix)), "--plot", overwrite=args.overwrite),
                              "--plot", f"the {suffix[1:]} figure"))
    distinct_files(named)
    phases = [s.strip() for s in args.phases.split(",")] if args.phases else None
    shells = parse_shells_spec("--shells", args.shells) if args.shells else None
    if args.fov is not None:
        from ..io._fov import parse_fov

        parse_fov(args.fov)  # before any work
    from ..io._volume import phase_named
    from ..measure._inputs import as_labels

    known = as_labels(labels, phases=phases).phases  # (the names the checks below hold options against)
    if shells or args.thickness:  # the phases they name, before any work (were refused after the summary's pass)
        asked = ([("--shells", shells[0]), ("--shells", shells[1])] if shells else []) + \
            ([("--thickness", s.strip()) for s in args.thickness.split(",")] if args.thickness else [])
        for option, name in asked:
            if phase_named(known, name) is None:  # (in other case too: "Pore", as measure takes it)
                raise InputError(f"Expected `{option}` to name phases of `labels` {known}. Got {name!r} in "
                                 f"{getattr(args, option[2:])!r} instead.")
        if shells and phase_named(known, shells[0]) == phase_named(known, shells[1]):  # every shell would read 0
            raise InputError(f"Expected `--shells` AROUND:OF:MAX to name two phases (the voxels of AROUND lie at "
                             f"distance 0 from it, in no shell). Got {args.shells!r} instead.")
    # --tortuosity: of the phase named "pore" (in any case) or --tortuosity-phase, before any work (was
    # refused after the summary's pass, as `phase`, an argument the command does not have)
    if args.tortuosity and args.tortuosity_phase != "pore":  # a name or a label value, as --particle-phase
        args.tortuosity_phase = _phase_option(args.tortuosity_phase, "--tortuosity-phase", known)
    if args.tortuosity and phase_named(known, args.tortuosity_phase) is None:
        at = next((i for i, p in enumerate(known) if "pore" in p.lower()), 0)  # "Pores": that one
        raise InputError(f"Expected `--tortuosity` (the tortuosity of the phase named 'pore') with labels that "
                         f"name a phase 'pore'. Got the phases {known}: name the conducting phase with "
                         f"--tortuosity-phase (e.g. --tortuosity-phase {known[at]}) or name it 'pore' with --phases "
                         f"(e.g. --phases {','.join('pore' if i == at else p for i, p in enumerate(known))}).")
    if args.particles or args.particle_labels:  # checked before any work, against the names measure uses
        args.particle_phase = _phase_option(args.particle_phase, "--particle-phase", known)
    if args.rve and "t" in labels.dims:
        raise InputError(f"Expected `--rve` with one volume (z, y, x). Got a series of {labels.sizes['t']} scans: "
                         f"measure one scan's label image for its representative volume element.")
    if args.intensity:
        refuse_label_image(args.intensity, "--intensity", instead="pass the grey image it labels")
    intensity = open_source(args.intensity) if args.intensity else None
    if args.particle_labels:  # before any work
        target = _particle_labels_target(labels, args)
        if same_place(target.resolve(), Path(labels.attrs["source"]).resolve()):  # the labels being measured
            raise InputError(f"Expected `--particle-labels` to name another label image than LABELS (the phases "
                             f"measured). Got {args.particle_labels!r}: {str(target)!r} is LABELS.")
        if target.exists() and not args.overwrite:
            from ..errors import OutputExistsError

            raise OutputExistsError(f"Expected `--particle-labels` to name a new label image, or --overwrite. Got "
                                    f"{args.particle_labels!r}: {str(target)!r} exists.")
    with cluster_from_args(args):
        ds = measure.summary(labels, method=args.method, truth=truth, phases=phases, progress=args.progress,
                             profile=args.profile, profile_step=args.profile_step)
        changes = (measure.transitions(labels, phases=phases, progress=args.progress)
                   if "t" in labels.dims and labels.sizes["t"] > 1 else None)  # a series: phase changes per step
        sh = (measure.shells(labels, around=shells[0], of=shells[1], max_distance=shells[2], phases=phases,
                             progress=args.progress) if shells else None)
        tau = (measure.tortuosity(labels, phase=args.tortuosity_phase, axis=args.tortuosity, phases=phases,
                                  fov=args.fov, progress=args.progress)
               if args.tortuosity else None)
        rve = measure.rve(labels, phases=phases, progress=args.progress) if args.rve else None
        conn = (measure.connectivity(labels, axis=args.connectivity, phases=phases, progress=args.progress)
                if args.connectivity else None)
        thick = (measure.thickness(labels, phase=[s.strip() for s in args.thickness.split(",")],
                                   max_diameter=args.max_diameter, phases=phases, progress=args.progress)
                 if args.thickness else None)
        radial = None
        if args.radial is not None:
            from ..io import fov_centre, fov_mask

            centre = fov_centre(fov_mask(labels, args.fov, progress=args.progress)) if args.fov else None
            radial = measure.radial_profile(labels, centre=centre, step=args.radial, phases=phases,
                                            progress=args.progress)
        # last: the one stage that writes into the labels' image (a failure before leaves nothing)
        target = _particle_labels_target(labels, args) if args.particle_labels else None
        table = (measure.particles(labels, phase=args.particle_phase, intensity=intensity, split=not args.no_split,
                                   max_diameter=args.max_diameter, phases=phases, progress=args.progress,
                                   labels_to=target, overwrite=args.overwrite, min_voxels=args.min_voxels,
                                   area_method=args.particle_area)  # ids from the same split
                 if args.particles else None)
        if args.particle_labels and table is None:
            _write_particle_labels(labels, args, phases)
    if args.particle_labels:
        print(f"wrote {target}: particle instance labels ({args.particle_phase}; values = particle ids"
              f"{', tracks through time' if 't' in labels.dims else ''})")
    ds.attrs["labels"] = str(args.labels)
    print(_table(ds))
    if table is not None:
        from ..report import particle_figure

        from ..measure import write_table

        with replacing(args.particles) as tmp:  # whole or not at all (as every output below); units in the header
            write_table(table, tmp)
        png = str(Path(args.particles).with_suffix(".png"))
        last = f" (t = {time_at(labels.t)})" if "t" in labels.dims and len(table) else ""  # with the times' unit
        particle_figure(table, path=png, title=f"{args.labels}: {args.particle_phase} particles{last}")
        inside = table[~table.touches_border]
        from ..report._units import quantity_text, size_distribution_text, small_particles_text

        if "t" in table:
            print(f"{len(table)} {args.particle_phase} particles over {table['t'].nunique()} time steps (surface "
                  f"areas and sphericity by {args.particle_area}); wrote {args.particles} and {png} (histograms{last})")
        else:
            detached = inside.detachment.median()  # (NaN: no phase named "pore", whose contact it is)
            said = (f"median detachment {detached:.3f}" if detached == detached
                    else NO_DETACHMENT if len(inside) else "no detachment (no particle inside the volume)")
            print(f"{len(table)} {args.particle_phase} particles ({len(inside)} inside the volume): median equivalent "
                  f"diameter {quantity_text(inside.equivalent_diameter.median(), table.attrs['unit'])}, {said}; "
                  f"surface areas and sphericity by {args.particle_area}; wrote {args.particles} and {png}")
        if table.attrs.get("small_particles"):
            print(small_particles_text(table.attrs))
        if len(inside):
            # a series: of its last step, said (as the histograms', the shells' and the tortuosity's)
            print(size_distribution_text(measure.size_distribution(table), table.attrs["unit"], at=last))
        if len(inside) and inside.detachment.notna().any():  # (was "nan [nan-nan]" without a phase named pore)
            print(_size_groups_lines(table, last))
    if "t" in ds.dims:
        from ..report._units import readable_evolution

        ev = measure.evolution(ds, table, changes)
        print(f"over time (interface areas by {ev.attrs.get('area_method', args.method)}; particle medians over those "
              "inside the volume):")
        if "time_unit" in ev.attrs:  # the times' unit over the steps' columns
            ev.index.name = f"t [{ev.attrs['time_unit']}]"
        print(readable_evolution(ev, ev.attrs["unit"]).T.to_string(float_format=lambda v: f"{v:.4g}"))
    if "volume_fraction_profile" in ds:
        print(_profile_table(ds.volume_fraction_profile))
    if sh is not None:
        from ..report._units import readable

        scale, unit = readable(sh.distance.values, sh.attrs["distance_units"])
        print(f"fraction of {sh.attrs['of']} by distance from {sh.attrs['around']} [{unit}]"
              f"{at_last_step(sh)}:")
        d = sh.isel(t=-1) if "t" in sh.dims else sh
        print("  " + "  ".join(f"{float(r) * scale:.4g}: {float(v):.3f}" for r, v in zip(d.distance.values, d.values)))
    if tau is not None:
        t = tau.isel(t=-1) if "t" in tau.dims else tau
        print(f"tortuosity factor of {tau.attrs['phase']} along {tau.attrs['axis']}"
              f"{at_last_step(tau)}: "
              + ", ".join(f"{float(v):.3f}" for v in t.tau.values)
              + f" ({t.sizes['subvolume']} sub-volume(s)), D_eff/D_0 " + ", ".join(f"{float(v):.4f}" for v in t.D_eff.values)
              + ("" if "box_yx" not in tau.attrs else " in the box y {}:{}, x {}:{} inside the field of view".format(
                  *tau.attrs["box_yx"][0], *tau.attrs["box_yx"][1])))
    if rve is not None:
        print(_rve_table(rve))
    if conn is not None:
        print(_connectivity_table(conn))
    if thick is not None:
        print(_thickness_table(thick))
    if radial is not None:
        print(_radial_table(radial))
    ds = measure.add_to_metrics(ds, shells=sh, tortuosity=tau, rve=rve, radial=radial, connectivity=conn,
                                thickness=thick)
    if args.netcdf:
        with replacing(args.netcdf) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")
        print(f"wrote {args.netcdf}")
    if args.csv:
        with replacing(args.csv) as tmp:
            _long_table(ds).to_csv(tmp, index=False)
        print(f"wrote {args.csv}")
    if args.plot:
        from ..report import (metrics_figure, profile_figure, rve_figure, series_figure, shells_figure,
                              thickness_figure)

        title = str(args.labels)
        if "t" in ds.dims:  # a series: every measurement over time
            series_figure(ds, table, transitions=changes, path=args.plot, title=title)
        else:
            metrics_figure(ds, path=args.plot, title=title)
        print(f"wrote {args.plot}")
        beside = {"_rve": (rve_figure, rve, {}),  # (figure, what it draws or None, its own options)
                  "_thickness": (thickness_figure, thick, {"title": f"{title}: local thickness"}),
                  "_shells": (shells_figure, sh, {"overall": ds.volume_fraction}),
                  "_profile": (profile_figure, ds if "volume_fraction_profile" in ds else None, {}),
                  "_radial": (profile_figure, radial, {})}
        for suffix in _BESIDE_PLOT:
            draw, data, options = beside[suffix]
            png = _beside(args.plot, suffix)
            if data is not None:
                draw(data, path=png, **{"title": title, **options})
                print(f"wrote {png}")
            elif args.overwrite and png.is_file():  # an earlier call's, of what this one did not measure
                png.unlink()
                print(f"removed {png} (an earlier call's figure of what was not measured now)")
    return 0
