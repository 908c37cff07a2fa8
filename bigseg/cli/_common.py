"""Shared CLI helpers: cluster options and the client context."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

import numpy as np

from ..errors import InputError
from ..io._volume import refuse_replacing  # noqa: F401 (the commands import it from here)
from ..runtime._files import json_text  # noqa: F401 (the commands import it from here)
from ..runtime._terminal import PrintableStream, printable  # noqa: F401 (the commands import them from here)


def column_widths(names: list[str], least: int = 10) -> list[int]:
    """Widths of a printed table's columns headed by ``names`` (phases): ``least``, wider for a
    longer name, a space before each (long names such as "binder+carbon" ran into the next)."""
    return [max(least, len(str(n)) + 2) for n in names]


def add_cluster_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster")
    g.add_argument("--cluster", default=None,
                   help="'local' (LocalCluster), 'local-cuda', 'slurm', tcp://host:port or 'threads'; default: threads "
                        "in this process")
    g.add_argument("--workers", type=positive_int, default=None, help="number of workers (local clusters)")
    g.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="memory of each worker of the cluster the command starts, e.g. 4GiB (default: 90 %% of the "
                        "machine's memory split evenly)")


def add_progress_args(p: argparse.ArgumentParser) -> None:
    """Progress bars on by default (on stderr); --no-progress turns them off (``args.progress``)."""
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.add_argument("--progress", dest="progress", action="store_true", help=argparse.SUPPRESS)  # the default; kept


def add_pipeline_args(p: argparse.ArgumentParser, kept: str = "") -> None:
    """--config, --model and --cluster of the commands that run the whole pipeline."""
    p.add_argument("--config", default=None, help="run configuration YAML (filters, model, chunks, voxel size, "
                                                  "cluster, ...; see deploy/*.yaml), or a shipped one by name: "
                                                  "local, local-cuda, slurm")
    p.add_argument("--model", default=None,
                   help="override the configuration's model: 'default', a checkpoint path, or threshold, kmeans, watershed")
    p.add_argument("--cluster", default=None,
                   help=f"'local', 'local-cuda', 'slurm', tcp://host:port or 'threads' (in this process){kept} "
                        "(default: the configuration's cluster when --config, $BIGSEG_CONFIG or $BIGSEG_CLUSTER is "
                        "given, else threads in this process)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="workers of the cluster the command starts (local: processes; slurm: jobs); default: the "
                        "configuration's n_workers")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="memory of each worker of a local cluster the command starts, e.g. 4GiB; default: the "
                        "configuration's memory_limit, else 90 %% of the machine's memory split evenly")
    add_fov_args(p)


def _number_type(cast, test, what: str):
    """An argparse ``type`` for numbers that must satisfy ``test`` (argparse then names the option)."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    parse.__name__ = what  # argparse's "invalid <name> value" wording
    return parse


positive_int = _number_type(int, lambda v: v > 0, "a positive whole number")
positive_float = _number_type(float, lambda v: v > 0 and v < float("inf"), "a positive number")
nonnegative_int = _number_type(int, lambda v: v >= 0, "a whole number >= 0")
nonnegative_float = _number_type(float, lambda v: 0 <= v < float("inf"), "a number >= 0")


def add_fov_args(p: argparse.ArgumentParser,
                 purpose: str = "to segment and measure inside only; outside is labelled 255 and left out of "
                                "every measurement") -> None:
    """--fov and --fov-margin: work only inside a reconstruction's field of view."""
    p.add_argument("--fov", default=None,
                   help="the reconstruction's field of view: 'auto' (the constant fill around the sample, 0 or NaN), "
                        f"'cylinder' (the inscribed circle) or CY,CX,R (a circle in voxels), {purpose}")
    p.add_argument("--fov-margin", type=nonnegative_float, default=None, metavar="VOXELS",
                   help="shrink the field of view by this many voxels (a rim of ring artefacts)")


def check_fov_margin(args: argparse.Namespace) -> None:
    """--fov-margin typed without --fov (nor a --config file, which may name the field of view)."""
    if getattr(args, "fov_margin", None) is not None and getattr(args, "fov", None) is None \
            and not getattr(args, "config", None):
        raise InputError(f"Expected `--fov-margin` only with --fov. Got --fov-margin {args.fov_margin:g} without it.")


def pipeline_config(args: argparse.Namespace, **overrides: Any) -> tuple[Any, Any]:
    """The run configuration (--config, then ``overrides``, --model and --fov) and the cluster to run on."""
    from ..config import RunConfig

    check_fov_margin(args)
    if args.model:
        overrides["predict"] = {**overrides.get("predict", {}), "model": args.model}
    overrides.update(fov=getattr(args, "fov", None), fov_margin=getattr(args, "fov_margin", None),
                     n_workers=getattr(args, "workers", None),  # --workers over the configuration's n_workers
                     memory_limit=getattr(args, "memory_limit", None))
    cfg = RunConfig.load(args.config, **overrides)
    # the configuration's cluster where one was given: --config, or the environment's BIGSEG_CONFIG /
    # BIGSEG_CLUSTER (a site's module file; were ignored without --config: the run went to threads here)
    given = args.config or os.environ.get("BIGSEG_CONFIG") or os.environ.get("BIGSEG_CLUSTER")
    cluster = args.cluster or (cfg.cluster if given else None)
    check_cluster_name(cluster)
    cluster = None if cluster == "threads" else cluster  # a configuration's way to say "in this process"
    _workers_need_a_cluster(args, cluster)
    if (cluster or "threads") != cfg.cluster:  # the configuration recorded (run.json) says where it ran
        cfg = RunConfig.load(args.config, **overrides, cluster=cluster or "threads")  # (was "local" for threads)
    return cfg, cluster


def check_cluster_name(cluster: Any) -> None:
    """--cluster: a name the commands take, or a scheduler's address (checked further where it is
    reached). The error lists ``threads`` too (``connect``'s, said before, did not: a command takes it)."""
    from ..runtime._cluster import is_cluster_spec

    if cluster is None or is_cluster_spec(cluster):
        return
    raise InputError(f"Expected `--cluster` to be 'threads' (in this process), 'local', 'local-cuda', 'slurm' or a "
                     f"scheduler address such as 'tcp://host:8786'. Got {cluster!r} instead.")


def _workers_need_a_cluster(args: argparse.Namespace, cluster: Any) -> None:
    """--workers and --memory-limit size a cluster the command starts: refused without one (the
    command runs in this process) and with a running scheduler's address (its workers are as
    they were started)."""
    from ..runtime._cluster import is_address

    for dest, option in (("workers", "--workers"), ("memory_limit", "--memory-limit")):
        value = getattr(args, dest, None)
        if value is None:
            continue
        if not cluster:
            raise InputError(f"Expected `{option}` only with --cluster (or a --config naming one): without it the "
                             f"command runs in this process. Got {option} {value} without a cluster.")
        if isinstance(cluster, str) and is_address(cluster):
            raise InputError(f"Expected `{option}` only with a cluster bigseg starts (local, local-cuda, slurm): a "
                             f"running scheduler has the workers it has. Got {option} {value} with {cluster!r}.")
        if dest == "memory_limit" and cluster == "slurm":
            raise InputError(f"Expected `{option}` only with a local cluster: a SLURM job's memory is `slurm.memory` "
                             f"(split between its `slurm.processes`) in the --config file. Got {option} {value} "
                             f"with slurm.")


def command_key(args: argparse.Namespace, command: str, *, paths: tuple[str, ...] = ("source",),
                extra: dict[str, Any] | None = None) -> str:
    """What a command's output is made from, for a resumable write: the input files named by
    ``paths`` (resolved, with the time they were written), every option that is not about how
    or where it runs, and ``extra`` (e.g. the model's content hash). An interrupted run of the
    same command resumes; a change to any of these starts over."""
    import json

    from ..runtime._manifest import path_stamp as stamp

    skip = {"func", "api_aliases", "progress", "cluster", "workers", "overwrite", "out", "dest", "plot", *paths,
            *(extra or {})}  # (api_aliases: how its errors name the options, not what it is made from)
    options = {k: v for k, v in sorted(vars(args).items()) if k not in skip}
    return json.dumps({"command": command, "inputs": {k: stamp(getattr(args, k, None)) for k in paths},
                       "options": options, **(extra or {})}, sort_keys=True, default=str)


def refuse_label_image(path: Any, option: str, *, instead: str, vol: Any = None) -> None:
    """Refuse, before any work, a label image (its values phases, not grey levels) named where
    a grey-value image is expected; ``instead``: what to do (e.g. "segment the image it
    labels"). ``vol``: the volume ``path`` names, when the command has opened it already."""
    from ..io._volume import is_zarr_store

    if vol is None:
        if not is_zarr_store(path):  # a TIFF, HDF5, .npy or raw source states no phases
            return
        from ..io import open_volume

        try:
            vol = open_volume(path)
        except Exception:  # said by the command itself when it reads it
            return
    if "phases" in vol.attrs:
        raise InputError(f"Expected `{option}` to be a grey-value image, not a label image. Got {str(path)!r}, "
                         f"which holds the phases {list(vol.attrs['phases'])}: {instead}.")


def refuse_existing(dest: Any, overwrite: bool, option: str, *, kind: str = "zarr") -> None:
    """An output that exists without --overwrite, refused naming the command's own argument;
    with --overwrite, anything but an earlier output of the ``kind`` written (a zarr store, a
    folder of TIFF slices, a file: see :func:`bigseg.io._omezarr._check_dest`)."""
    from pathlib import Path

    from ..errors import OutputExistsError
    from ..io._omezarr import _replaceable

    if Path(dest).exists() and not overwrite:
        raise OutputExistsError(f"Expected `{option}` to be a new location, or --overwrite. Got {str(dest)!r}, "
                                f"which exists.")
    what = _replaceable(Path(dest), kind) if Path(dest).exists() else ""
    if what:
        raise OutputExistsError(f"Expected `{option}` to be a new location or an earlier output to replace. Got "
                                f"{str(dest)!r}, {what}: --overwrite does not delete it. Remove it yourself if that "
                                "is meant, or write elsewhere.")


FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff")


def output_file(path: str | None, option: str, *, suffixes: tuple[str, ...] | None = None,
                overwrite: bool | None = None) -> str | None:
    """An output file named on the command line, checked before any work: not an existing
    folder, one of ``suffixes`` when given, not an existing file unless ``overwrite`` (``None``:
    the command replaces it by design); its folder is created (as for every other output)."""
    from pathlib import Path

    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        raise InputError(f"Expected `{option}` to name a file. Got {path!r}, which is a folder.")
    if overwrite is False and p.exists():
        from ..errors import OutputExistsError

        raise OutputExistsError(f"Expected `{option}` to name a new file or --overwrite. Got {path!r}, which exists.")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise InputError(f"Expected `{option}` to end in {', '.join(suffixes)}. Got {path!r} instead.")
    from ..runtime._lock import make_folder

    make_folder(p.parent, target=path, argument=option)
    return path


def distinct_files(named: list[tuple[str | None, str] | tuple[str | None, str, str]]) -> None:
    """``named``: (path, option[, what it is]) of every file one command is about to write. Two
    options naming the same file (one would silently replace the other's output) are refused by
    name before any work."""
    import os

    seen: dict[str, tuple[str, str, str]] = {}
    for path, option, *what in named:
        if path is None:
            continue
        key = os.path.normcase(os.path.abspath(path))
        entry = (path, option, f" ({option}: {what[0]})" if what else "")
        if key in seen and seen[key][1] != option:
            first = seen[key]
            raise InputError(f"Expected `{first[1]}` and `{option}` to write different files. Got {path!r} for "
                             f"both{first[2]}{entry[2]}: one would replace the other.")
        seen.setdefault(key, entry)


def set_unset(args: argparse.Namespace, values: dict[str, Any]) -> None:
    """Options not given (the parser's default is None, so that one given as its default value
    is still seen as given, and refused where it acts on nothing) set to their ``values``."""
    for dest, value in values.items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)


def refuse_unused(args: argparse.Namespace, needs: dict[str, tuple[tuple[str, ...], Any]]) -> None:
    """``needs``: option -> (the options it acts with, its value when not given). An option
    given without any of those is refused by name before any work (not ignored); then every
    option not given is set (:func:`set_unset`)."""
    for dest, (users, _) in needs.items():
        value = getattr(args, dest)
        if value is not None and value is not False and not any(getattr(args, u) for u in users):
            option = "--" + dest.replace("_", "-")
            given = option if value is True else f"{option} {value}"
            raise InputError(f"Expected `{option}` only with {' or '.join('--' + u.replace('_', '-') for u in users)}. "
                             f"Got {given} without.")
    set_unset(args, {dest: unset for dest, (_, unset) in needs.items()})


def sparse_truth_note(support: Any, total: int) -> str:
    """``scores over the truth's N labelled voxels, x % of the volume; ...`` where a sparse truth
    (unlabelled voxels, 255) scores only part of the volume; empty where it labels all."""
    scored = int(np.asarray(support).sum())
    if not 0 < scored < total:
        return ""
    return (f"scores over the truth's {scored} labelled voxels, {100 * scored / total:.3g} % of the volume; its "
            "unlabelled voxels, 255, are left out")


def voxel_size_text(voxel_size: Any, unit: str) -> str:
    """``50 x 50 x 50 nm``: a voxel size as every command prints it."""
    return " x ".join(f"{float(v):g}" for v in voxel_size) + f" {unit}"


def parse_triple(text: str | None, cast=float, *, option: str, count: str = "one or three",
                 example: str = "5 or 5,4,4") -> Any:
    """'5' -> 5, '5,4,4' -> (5, 4, 4); ``option`` (e.g. ``"--voxel-size"``) named when ``text`` is
    not numbers of type ``cast``, with how many (``count``) and an ``example`` of what it takes."""
    if text is None:
        return None
    try:
        parts = [cast(t) for t in str(text).split(",")]
    except ValueError:
        kind = "whole numbers" if cast is int else "numbers"
        raise InputError(f"Expected `{option}` to be {count} comma-separated {kind} (e.g. {example}). "
                         f"Got {text!r} instead.") from None
    return parts[0] if len(parts) == 1 else tuple(parts)


@contextlib.contextmanager
def cluster_from_args(args: argparse.Namespace):
    cluster = getattr(args, "cluster", None)
    check_cluster_name(cluster)
    cluster = None if cluster == "threads" else cluster
    _workers_need_a_cluster(args, cluster)
    if cluster:
        from ..runtime import connect

        with connect(cluster, n_workers=args.workers, memory_limit=getattr(args, "memory_limit", None)) as client:
            yield client
    else:
        yield None


def add_stack_calibration_args(p: argparse.ArgumentParser) -> None:
    """``--voxel-size`` / ``--unit`` for label stacks (TIFF, HDF5, .npy) that state none."""
    p.add_argument("--voxel-size", default=None,
                   help="voxel edge, or z,y,x, in --unit, of TIFF/HDF5/.npy label stacks (replacing any they state; "
                        "an OME-Zarr image keeps its own)")
    p.add_argument("--unit", default=None, help="length unit of --voxel-size (default nm)")


def is_label_stack(path: Any) -> bool:
    """Whether ``path`` names a label stack from another tool (TIFF, HDF5, .npy), not an
    OME-Zarr image or label image."""
    from pathlib import Path

    from ..io._volume import is_zarr_store

    p = Path(path)
    return not is_zarr_store(p) and not (p if p.name == "labels" else p / "labels").is_dir()


def stack_calibration(args: argparse.Namespace, paths: list[Any]) -> dict[str, Any]:
    """The ``--voxel-size`` / ``--unit`` of :func:`add_stack_calibration_args`, checked before
    any work, as keywords of :func:`open_label_image`; refused when none of ``paths`` (the
    command's label inputs) is a label stack."""
    if args.voxel_size is None:
        if args.unit is not None:
            raise InputError(f"Expected `--unit` only with --voxel-size. Got --unit {args.unit} without it.")
        return {}
    if not any(is_label_stack(p) for p in paths if p is not None):
        raise InputError(f"Expected `--voxel-size` only with a TIFF, HDF5 or .npy label stack. Got --voxel-size "
                         f"{args.voxel_size} with OME-Zarr images only, which state their own (`bigseg ingest IMAGE "
                         "NEW.ome.zarr --voxel-size ...` writes a copy with another).")
    from .._parse import parse_voxel_size
    from ..io._calibration import parse_unit

    return {"voxel_size": parse_voxel_size(parse_triple(args.voxel_size, option="--voxel-size")),
            "unit": parse_unit(args.unit or "nm")}


def open_label_image(path: str, label: str | None, prefer: str | None, option: str, *, say: str | None,
                     hint: str | None = None, voxel_size: Any = None, unit: str | None = None,
                     sizes: bool = False, grid: tuple[Any, str] | None = None, like: Any = None) -> Any:
    """The label image ``path`` names; for an image (or its labels group) its ``label``, else
    the one named ``prefer``, else its only one (several are refused: which one is used must
    not be a guess). A TIFF, HDF5 or ``.npy`` label stack (from another tool) is read as it is,
    with ``voxel_size`` (in ``unit``) when given; with ``sizes`` (the command measures sizes),
    one that states no voxel size is said so on stderr (its sizes are in voxels, labelled nm).
    Prints ``say`` and the path it opened (unless ``say`` is None); ``hint``: how else the
    command names one of several label images (default: ``--label NAME`` for ``labels``).
    ``grid``: (voxel size, unit) that a stack stating none takes (a truth of the scan it
    scores: the same grid). ``like``: the volume the labels go with (the image trained on, the
    segmentation scored): a stack stating no voxel size takes its grid, one stating no place
    its place (:func:`bigseg.io._volume.placed_like`; a crop's box)."""
    from pathlib import Path

    from ..io import open_source, open_volume
    from ..io._omezarr import label_names

    p = Path(path)
    group = p if p.name == "labels" else p / "labels"
    if is_label_stack(p):  # a label stack from another tool: TIFF, HDF5, .npy
        if not (p.exists() or any(ch in str(path) for ch in "*?[")):
            raise InputError(f"Expected `{option}` to be an existing label image (OME-Zarr IMAGE/labels/NAME) or a "
                             f"TIFF, HDF5 or .npy label stack. Got {str(path)!r}, which does not exist.")
        if label is not None:
            raise InputError(f"Expected --label only with an OME-Zarr image. Got --label {label} with {str(path)!r}.")
        if like is not None:
            grid = (like.attrs["voxel_size"], like.attrs["unit"])
        if voxel_size is None and grid is not None and not _states_calibration(path):
            voxel_size, unit = grid
        vol = open_source(path, voxel_size=voxel_size, unit=unit)
        if say is not None:
            print(f"{say} {path}")
        if sizes and voxel_size is None:
            say_if_uncalibrated(path, vol)
        return _placed(vol, like)
    if label is not None:
        vol = open_volume(group / label if p.name == "labels" else p, label=None if p.name == "labels" else label)
    else:
        names = label_names(group) if group.is_dir() else []
        if not names:
            vol = open_volume(p)
        elif prefer in names or len(names) == 1:
            vol = open_volume(group / (prefer if prefer in names else names[0]))
        else:
            also = f" and none is called {prefer!r}" if prefer else ""
            raise InputError(f"Expected `{option}` to name one label image: {str(p)!r} holds {len(names)} "
                             f"({', '.join(names)}){also}. Pass IMAGE/labels/NAME"
                             f"{hint if hint is not None else ' or --label NAME' if option == 'labels' else ''}.")
    if say is not None:
        print(f"{say} {vol.attrs.get('source', path)}")
    return _placed(vol, like)


def _placed(vol: Any, like: Any) -> Any:
    from ..io._volume import placed_like

    return vol if like is None else placed_like(vol, like)


def _states_calibration(source: Any, **read: Any) -> bool:
    """Whether a file source states its voxel size (a zarr store, or what ingest cannot read:
    taken as stating one, nothing is said or changed)."""
    from ..io._ingest import source_calibration

    try:
        return source_calibration(source, **read) is not None
    except Exception:  # not a file source ingest reads (an OME-Zarr states its own)
        return True


def say_if_uncalibrated(source: Any, vol: Any, **read: Any) -> None:
    """When ``vol`` (ingested from ``source`` with no voxel size given) has 1-unit voxels because
    the source states none, say so on stderr: every size and area is then in voxels, labelled as
    that unit (``read``: the options the source was read with)."""
    import sys

    if tuple(vol.attrs.get("voxel_size", ())) != (1.0, 1.0, 1.0):
        return
    first = source[0] if isinstance(source, (list, tuple)) else source
    if _states_calibration(first, **read):
        return
    print(f"note: {str(first)!r} states no voxel size and --voxel-size was not passed, so a voxel is taken as "
          f"1 {vol.attrs['unit']}: sizes and areas will be in those units (run again with --voxel-size "
          "to fix)", file=sys.stderr)
