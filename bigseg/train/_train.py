"""``train``: fit a model to an image and sparse labels (255 = unlabelled)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import warnings
from typing import Any

import numpy as np
import torch

from .._parse import parse_axis, parse_flag, parse_in_range, parse_nonnegative_int, parse_phases, parse_positive_float, parse_positive_int, whole_numbers
from .._version import environment, utc_now
from ..errors import InputError, ModelError
from ..io import DEFAULT_PHASES, UNLABELLED, as_volume, fov_mask, sparse_labels
from ..io._volume import phase_named
from ..models import DEFAULT_NORMALIZATION, Model, available, create, save
from ._augment import Augment
from ._data import PatchSampler, load_pair, normalize_image, patch_windows, score_windows, split_validation
from ._loop import fit, hardware, resolve_amp, resolve_device
from ._resume import check_same_run, load_state

__all__ = ["train", "parse_common", "prepare_model", "finish_model"]

#: the most ``epochs`` of a run: LRCS-Net trains for tens, and a million epochs of even one step each
#: outlast any beamtime (more was accepted, then trained until ``patience`` or for ever)
MAX_EPOCHS = 10**6
#: the most ``steps_per_epoch``: the default is 20-1000 (250 for the synthetic recipe); a million
#: steps, each a batch, make one epoch outlast any beamtime (more was accepted, then never validated)
MAX_STEPS_PER_EPOCH = 10**6

# labelled voxels of a phase below which training warns (a 10 x 10 stroke; the papers annotate
# 10-25 % of several slices: thousands)
FEW_LABELLED = 100


def parse_common(
    *, arch: Any, init: Any, epochs: Any, lr: Any, lr_decay: Any, batch_size: Any, patch: Any, patience: Any,
    seed: Any, device: Any, amp: Any, augment: Any, max_minutes: Any, steps_per_epoch: Any, arch_kwargs: Any = None,
    checkpoint_dir: Any = None, resume: Any = False, progress: Any = True,
) -> dict[str, Any]:
    """Validate the options shared by :func:`train` and :func:`synthetic` (before any work; the
    ``checkpoint_dir`` is made now, so that one that cannot be is said before the training;
    ``resume``: its run's state read now, as ``opts["resume"]``)."""
    parse_flag("resume", resume)
    parse_flag("progress", progress)  # ("no" drew the bars: any truthy value was on)
    state = load_state(checkpoint_dir) if resume else None
    if checkpoint_dir is not None:
        from ..runtime._lock import make_folder

        make_folder(checkpoint_dir, target=checkpoint_dir, argument="checkpoint_dir")
        if not resume:
            _warn_earlier_checkpoints(str(checkpoint_dir))
    if init is not None and not isinstance(init, Model):
        if isinstance(init, str):
            from ..models import load

            try:
                init = load(init)
            except ModelError as exc:  # (said as load's `name_or_path`)
                raise ModelError(str(exc).replace("`name_or_path`", "`init`")) from None
        else:
            raise ModelError(f"Expected `init` to be a bigseg Model, 'default' or a checkpoint path. Got {type(init).__name__} instead.")
    if init is not None and init.normalization.get("method", "percentile") != "percentile":
        # the image is prepared by percentiles whatever it says, and segment() would prepare it as it says
        raise ModelError(f"Expected the `init` model's normalization to be percentile-based (training prepares the "
                         f"image with bigseg.filters.normalize). Got {init.normalization} instead.")
    if arch is None:
        arch = init.arch if init is not None else "lrcsnet"
    if arch not in available():
        raise InputError(f"Expected `arch` in {available()}. Got {arch!r} instead.")
    if init is not None and arch != init.arch:
        raise InputError(f"Expected `arch` to match the `init` model's {init.arch!r} when fine-tuning. Got {arch!r} instead.")
    if init is not None and arch_kwargs:  # the copy keeps init's layers: other ones would be ignored
        from ..models._model import arch_defaults

        def same(a: Any) -> Any:  # a checkpoint's lists are the command line's tuples
            return list(a) if isinstance(a, (list, tuple)) else a

        kept = {**arch_defaults(init.arch), **init.arch_kwargs}
        differ = {k: v for k, v in dict(arch_kwargs).items() if same(kept.get(k)) != same(v)}
        if differ:
            raise InputError(f"Expected no `arch_kwargs` other than the `init` model's {init.arch_kwargs} when "
                             f"fine-tuning (its layers are copied). Got {differ} instead.")
    if init is None and arch_kwargs:  # the layers' options checked now, not after the data are loaded
        try:
            Model(arch, phases=["a", "b"], patch=None, arch_kwargs=dict(arch_kwargs))
        except TypeError:
            raise InputError(f"Expected `arch_kwargs` to be a dict of {arch!r}'s options. Got {arch_kwargs!r} instead.") from None
    out: dict[str, Any] = {"arch": arch, "init": init, "resume": state}
    out["epochs"] = parse_positive_int("epochs", epochs, most=MAX_EPOCHS)
    out["lr"] = parse_positive_float("lr", lr)
    out["lr_decay"] = parse_in_range("lr_decay", lr_decay, 0.0, 1.0, closed="right")
    out["batch_size"] = parse_positive_int("batch_size", batch_size)
    out["patience"] = None if patience is None else parse_positive_int("patience", patience)
    out["seed"] = parse_nonnegative_int("seed", seed)
    out["steps_per_epoch"] = (None if steps_per_epoch is None
                              else parse_positive_int("steps_per_epoch", steps_per_epoch, most=MAX_STEPS_PER_EPOCH))
    out["max_minutes"] = None if max_minutes is None else parse_positive_float("max_minutes", max_minutes)
    out["device"] = resolve_device(device)
    out["amp"] = resolve_amp(amp, out["device"])
    if augment is True:
        augment = Augment()
    elif augment is False or augment is None:
        augment = Augment.none()
    elif not isinstance(augment, Augment):
        raise InputError(f"Expected `augment` to be True, False or an Augment. Got {type(augment).__name__} instead.")
    out["augment"] = augment
    ndim = 2 if arch == "lrcsnet" else 3
    if init is not None:
        ndim = init.ndim
    if patch is None:
        patch = init.patch if init is not None else ((128, 128) if ndim == 2 else (48, 48, 48))
    parsed = whole_numbers(patch, ndim)
    if parsed is None:
        raise InputError(f"Expected `patch` to be {ndim} positive ints. Got {patch!r} instead.")
    patch = parsed
    if len(patch) != ndim or not all(p >= 8 for p in patch):
        raise InputError(f"Expected `patch` to be {ndim} ints of at least 8 for {arch!r}. Got {patch!r} instead.")
    out["patch"] = patch
    out["ndim"] = ndim
    return out


def run_settings_key(opts: dict[str, Any], model: Model, **data: Any) -> dict[str, Any]:
    """What makes a training run the one it is, for resuming it (:mod:`._resume`): the model,
    the schedule, the seed, the augmentation and ``data`` (the kind of data and its own
    settings). The device, precision, patience, ``epochs`` and ``max_minutes`` may change."""
    import dataclasses

    run = _run_settings(opts)  # as the provenance spells them
    return {"arch": opts["arch"], "arch_kwargs": dict(model.arch_kwargs), "phases": list(model.phases),
            "patch": list(opts["patch"]), **{k: run[k] for k in ("batch_size", "lr", "lr_decay", "seed", "init")},
            "augment": dataclasses.asdict(opts["augment"]), **data}


def start_or_resume(opts: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any] | None:
    """The state to go on from (``resume``), checked to be this run's; None for a new run."""
    state = opts["resume"]
    if state is not None:
        check_same_run(state, settings, epochs=opts["epochs"])
    return state


def _warn_earlier_checkpoints(folder: str) -> None:
    """Say when ``folder`` already holds an earlier run's checkpoints: this run replaces those of
    the epochs it reaches, and those past its last epoch would stay beside its own, as if this
    run had written them."""
    import glob

    earlier = sorted(os.path.basename(f) for f in glob.glob(os.path.join(glob.escape(folder), "epoch_*.pt")))
    earlier += ["best.pt"] if os.path.exists(os.path.join(folder, "best.pt")) else []
    if earlier:
        shown = ", ".join(earlier) if len(earlier) <= 3 else f"{earlier[0]} … {earlier[-1]}"
        warnings.warn(f"`checkpoint_dir` {folder!r} already holds {len(earlier)} checkpoint(s) of an earlier run "
                      f"({shown}): this run replaces those of the epochs it reaches and leaves the others; "
                      "give an empty folder to keep runs apart.", UserWarning, stacklevel=3)


def check_norm_sizes(opts: dict[str, Any], arch_kwargs: dict | None) -> None:
    """Refuse, before any work, a ``patch`` and ``batch_size`` whose deepest level leaves a
    normalisation layer a single value per channel: batch normalisation (lrcsnet's decoder,
    unet3d ``norm="batch"``) over batch × the deepest level's voxels, instance normalisation
    (unet3d's default) over the deepest level's voxels of one patch. Torch stops such a training
    at its first step ("Expected more than 1 value per channel when training")."""
    from ..models._model import arch_defaults

    arch, init, patch, batch = opts["arch"], opts["init"], opts["patch"], opts["batch_size"]
    if arch not in ("lrcsnet", "unet3d"):
        return
    kw = {**arch_defaults(arch), **(dict(init.arch_kwargs) if init is not None else dict(arch_kwargs or {}))}
    if arch == "lrcsnet":
        poolings, norm = 3, "batch"
    else:
        try:
            poolings, norm = len(kw["channels"]) - 1, kw["norm"]
        except TypeError:  # malformed channels: refused, by name, where the network is made
            return
    factor = 2 ** max(0, poolings)
    deepest = tuple(-(-int(p) // factor) for p in patch)  # the input is padded to a multiple of the factor
    voxels = int(np.prod(deepest))
    larger = tuple(max(int(p), 2 * factor) for p in patch)
    if norm == "instance" and voxels < 2:
        raise InputError(f"Expected `patch` larger than {factor} voxels along at least one axis for {arch!r} with "
                         f"{poolings} poolings and instance normalisation (its deepest level would be one voxel, "
                         f"which it cannot normalise). Got {patch} instead: pass e.g. patch={larger}.")
    if norm == "batch" and voxels * batch < 2:
        raise InputError(f"Expected `batch_size` of at least 2 with `patch` {patch} for {arch!r} (its deepest level, "
                         f"after {poolings} poolings, is one voxel: batch normalisation needs more than one value "
                         f"per channel). Got batch_size={batch} instead: pass batch_size=2 or a patch larger than "
                         f"{factor} along an axis, e.g. patch={larger}.")


def square_rotations(augment: Augment, voxel_size: Any, normal: int) -> Augment:
    """``augment`` without its 90° rotations where the patches' plane (normal to axis
    ``normal``) has voxels longer along one of its axes than the other: a rotation would teach
    the model shapes stretched the other way (e.g. planes across z of a scan with thicker
    slices)."""
    a, b = (float(voxel_size[i]) for i in range(3) if i != normal)
    if augment.rot90 and abs(a / b - 1.0) > 0.05:
        return dataclasses.replace(augment, rot90=0.0)
    return augment


def check_init_phases(init: Model | None, phases: list[str], *, reindex: bool = True) -> list[str]:
    """Refuse, before any work, labels of ``phases`` that ``init``'s output channels cannot be
    trained on as the phases they mean: another number of phases, or some of its names at other
    values (its 'cbd' channel would train as 'active'). Its names in another order are fine where
    the labels are re-indexed to its order (``reindex``, :func:`_init_order`); names of their
    own are given to its channels in order.

    A name differing from one of ``init``'s in case only is that phase
    (:func:`bigseg.io._volume.phase_named`; the whole set as
    :func:`bigseg.measure._scores.same_phases` matches two label volumes' names): labels naming
    "Pore", "CBD", "Active" fine-tune a model of "pore", "cbd", "active" as those phases.

    Returns
    -------
    ``phases`` as the fine-tuned model names them: ``init``'s names for its phases (the labels'
    other spelling dropped), the labels' own for the others; ``phases`` as given without ``init``.
    """
    if init is None:
        return list(phases)
    from ..measure._scores import same_phases  # (measure is imported where a fine-tune needs it)

    have = list(init.phases)
    if len(have) != len(phases):
        raise ModelError(f"Expected the `init` model's {len(have)} phases {have} to match the labels' {phases}.")
    same = same_phases(phases, have) if reindex else None
    if same is not None:
        return same
    named = [phase_named(have, name) or name for name in phases]
    moved = [(name, at, have.index(own)) for at, (name, own) in enumerate(zip(phases, named))
             if own in have and have.index(own) != at]
    if moved:
        name, at, there = moved[0]
        order = "in any order (re-indexed to its own)" if reindex else "at its values"
        own = "it" if name in have else repr(have[there])
        raise ModelError(f"Expected the labels' phases to be the `init` model's phases {have} {order}, or names of "
                         f"their own (given to its channels in order). Got {phases}: {name!r} at value {at} where "
                         f"the `init` model has {own} at {there}.")
    return named


def prepare_model(opts: dict[str, Any], phases: list[str], arch_kwargs: dict, normalization: dict) -> Model:
    """A fresh model, or a copy of ``init`` (all weights transferred) for fine-tuning (its phases
    checked by :func:`check_init_phases`)."""
    init = opts["init"]
    if init is not None:
        model = init.clone()
        model.phases = list(phases)
        model.provenance = {}  # this run's, once it is done (finish_model); the init's is its parent
        model.patch = opts["patch"]
        model.normalization = dict(normalization)
        return model
    torch.manual_seed(opts["seed"])
    return create(opts["arch"], phases=phases, patch=opts["patch"], normalization=normalization, **arch_kwargs)


def _init_order(init: Model | None, phases: list[str]) -> np.ndarray | None:
    """For labels whose phases are ``init``'s in another order: the look-up table (256 values,
    255 kept) from the labels' values to ``init``'s, so that fine-tuning trains each of
    ``init``'s output channels on the phase it already means. None otherwise (the same order,
    or other names: then the labels' names are given to ``init``'s channels in order)."""
    if init is None or list(init.phases) == list(phases) or sorted(init.phases) != sorted(phases):
        return None
    lut = np.arange(256, dtype=np.uint8)
    for value, name in enumerate(phases):
        lut[value] = list(init.phases).index(name)
    return lut


def _run_settings(opts: dict[str, Any]) -> dict[str, Any]:
    """What a training run is (seed, schedule, hardware, the model it started from and that
    model's own provenance: the lineage), for its provenance and its checkpoints'."""
    init = opts["init"]
    return {
        "seed": opts["seed"],
        "hardware": hardware(opts["device"]),
        "lr": opts["lr"],
        "lr_decay": opts["lr_decay"],
        "batch_size": opts["batch_size"],
        "patience": opts["patience"],
        "amp": None if opts["amp"] is None else str(opts["amp"]).replace("torch.", ""),
        "init": None if init is None else init.checkpoint_key(),
        # the lineage: how the model this one started from was trained (itself with its parent)
        "parent": None if init is None else (dict(init.provenance) or None),
        "bigseg_train": "bigseg.train",
        "environment": environment(),  # bigseg version (and commit), library versions, machine
    }


def finish_model(model: Model, hist: Any, opts: dict[str, Any], data: Any, scores: Any) -> Model:
    """Attach provenance (data, seed, epochs, scores, hardware, duration) to the trained model."""
    model.cpu().eval()
    model.provenance = {
        "data": data,
        "epochs": len(hist.epochs),
        "best_epoch": hist.best_epoch,
        "steps": hist.steps,
        "stopped_early": hist.stopped_early,
        "timed_out": hist.timed_out,
        "scores": scores,
        "history": hist.epochs,
        "duration_s": hist.duration_s,
        **({"resumed_after_epochs": hist.resumed_after} if hist.resumed_after else {}),
        **_run_settings(opts),
        "date": utc_now(),
    }
    return model


def _patch_inside(patch: tuple[int, ...], shape: tuple[int, ...], axis: int, *, given: bool) -> tuple[int, ...]:
    """A training patch inside the image: (y, x) of the planes across ``axis`` for a 2D model,
    (z, y, x) for a 3D one (a larger patch would train mostly on padding). The default patch
    (or ``init``'s) is cut to the image (multiples of 8); a ``patch`` given that does not fit is
    refused, before any work."""
    extent = tuple(n for a, n in enumerate(shape) if a != axis) if len(patch) == 2 else tuple(shape)
    if len(extent) != len(patch) or all(p <= n for p, n in zip(patch, extent)):
        return patch
    fits = tuple(min(p, n // 8 * 8) for p, n in zip(patch, extent))
    if min(fits) >= 8 and not given:
        return fits
    what = "the planes across `axis`" if len(patch) == 2 else "the image"
    if not given:  # the image is what is wrong: the default patch would be cut to it
        raise InputError(f"Expected `image` of at least 8 voxels along each axis of the training patch ({what}). "
                         f"Got {extent}: too small to train on.")
    advice = (f"pass patch={fits}" if min(fits) >= 8 else
              "the image is too small to train on (each patch axis needs at least 8 voxels)")
    raise InputError(f"Expected `patch` to fit inside {what}, {extent}. Got {patch} instead: {advice}.")


def _checkpointer(model: Model, opts: dict[str, Any]):
    """Writes the model as it is after an epoch, with the provenance of this run so far (in
    progress; for a fine-tune its ``init`` and ``parent``, not the initial model's own)."""
    settings = _run_settings(opts)

    def write(path: str, epoch: int) -> None:
        done = model.provenance
        model.provenance = {"in_progress": True, "epoch": epoch, **settings, "date": utc_now()}
        try:
            save(model, path, overwrite=True)  # each epoch replaces the last; tensors copied to the CPU
        finally:
            model.provenance = done

    return write


class _DefaultFloat(float):
    """A float default of :func:`train` (reads as its value): with ``synthetic``, a schedule value
    left at it takes synthetic()'s own, while the same value passed is kept."""


class _DefaultInt(int):
    """An int default of :func:`train`, as :class:`_DefaultFloat`."""


def train(
    image: Any = None,
    labels: Any = None,
    *,
    arch: str | None = None,
    epochs: int = 10,
    lr: float = _DefaultFloat(1e-4),
    lr_decay: float = _DefaultFloat(0.3),
    batch_size: int = 8,
    init: Any = None,
    patch: Any = None,
    phases: Any = None,
    axis: Any = 0,
    val_fraction: float = 0.15,
    validation: Any = None,
    patience: int | None = _DefaultInt(3),
    steps_per_epoch: int | None = None,
    augment: Any = True,
    checkpoint_dir: str | None = None,
    seed: int = 0,
    device: Any = None,
    amp: Any = "auto",
    progress: bool = True,
    max_minutes: float | None = None,
    synthetic: Any = False,
    arch_kwargs: dict | None = None,
    unlabelled: int = 255,
    fov: Any = None,
    fov_margin: float = 0.0,
    resume: bool = False,
) -> Model:
    """Train a segmentation model on an image and sparse labels.

    Parameters
    ----------
    image : (z, y, x) volume (DataArray, NumPy or dask), any real dtype; loaded into memory
        (crop a training region around the annotations for very large scans)
    labels : (z, y, x) integer volume of the same shape: phase index per voxel, 255 where
        unlabelled (e.g. 7 slices with 10-25 % of each annotated, as in the ML-vs-threshold
        study)
    arch : "lrcsnet" (2D, slice by slice, default) or "unet3d"; default ``init``'s
    epochs : maximum number of epochs, at most ``MAX_EPOCHS``
    lr, lr_decay : Adam learning rate ``lr * lr_decay**epoch``: multiplied by ``lr_decay`` at
        the end of every epoch (Su et al. 2022: initial 1e-4, "decay ratio 0.3", i.e.
        1e-4 × 0.3^N after epoch N); ``lr_decay=1`` keeps it constant
    batch_size : patches per step (the paper favours small batches)
    init : Model / "default" / path to fine-tune: all its weights are copied (transfer
        learning), its architecture is kept
    patch : (y, x) for 2D, (z, y, x) for 3D; default 128² / 48³ or ``init.patch``, cut to the image
        (multiples of 8); a patch given must fit inside the image
    phases : names of the label values; default the labels' ``attrs["phases"]`` or
        pore, cbd, active
    axis : ``"z"``, ``"y"`` or ``"x"`` (or 0, 1, 2): the axis of the annotated slices (2D models see
        planes perpendicular to it, as ``plane`` of :func:`bigseg.predict`)
    val_fraction : fraction of the labelled slices held back for validation (per-phase IoU
        each epoch, early stopping, best-epoch selection); 0: no validation, and the epoch of
        the lowest training loss is the one kept (``patience`` then counts epochs without a
        lower training loss)
    validation : optional (image, labels) pair used for validation instead
    patience : stop after this many epochs without a better validation mean IoU (without
        validation: a lower training loss); None: never
    steps_per_epoch : default: enough patches to see each labelled voxel ~8 times (20-1000); at most
        ``MAX_STEPS_PER_EPOCH``
    augment : True (flips, rot90, contrast/brightness/gamma, blur, noise, rings, drift), False,
        or an :class:`Augment`
    checkpoint_dir : write ``epoch_NNN.pt`` each epoch and ``best.pt`` (safe format), and
        ``resume.pt``, the state to go on from (see ``resume``)
    resume : go on with the run whose ``checkpoint_dir`` this is, stopped after some epoch (a
        job's wall time, ``max_minutes``, a crash): the weights, optimiser moments, learning
        rate, history, best weights, early-stopping count and random generators are taken up,
        so the model is the one the run would have made without stopping (bit for bit on the
        CPU; on a GPU up to its nondeterministic kernels). Needs the same data and settings (refused, naming the
        first that differs; ``epochs`` is the total to reach; ``patience``, ``max_minutes``,
        ``device`` and ``amp`` may change)
    seed : seeds patch sampling, augmentation and initialisation
    device : None (CUDA if available, else CPU), "cpu", "cuda", "cuda:1"
    amp : "auto" (bf16/fp16 autocast on CUDA, GradScaler for fp16), "bf16", "fp16", "off"
    max_minutes : stop training after this wall time (the best epoch so far is kept)
    progress : a bar per epoch and a line after each (loss, learning rate, validation IoU);
        off, each line goes to the ``bigseg.train`` logger (INFO) instead, for a job's log
    synthetic : True or a dict of options: train on generated electrodes instead
        (see :func:`bigseg.train.synthetic`); ``image``/``labels`` must then be None, and the
        options of labels (``axis``, ``val_fraction``, ``validation``, ``unlabelled``, ``fov``,
        ``fov_margin``) are refused; ``phases`` is passed on. ``lr``,
        ``lr_decay``, ``patience`` and ``steps_per_epoch`` left at their defaults (those for
        sparse labels) take ``synthetic``'s (1e-3, 0.8, no early stopping, 100 steps)
    arch_kwargs : architecture options (``kernels``, ``kernel_size``, ``growth`` for
        lrcsnet; ``channels``, ``norm``, ``up`` for unet3d)
    unlabelled : the value of unannotated voxels in ``labels`` (and the validation labels):
        255 (bigseg's convention), or 0 for napari/ilastik/Fiji exports whose classes count
        from 1 (see :func:`bigseg.io.sparse_labels`)
    fov, fov_margin : the reconstruction's field of view (:func:`bigseg.io.fov_mask`: ``"auto"``,
        ``"cylinder"``, a circle or a (y, x) mask; of a separate ``validation`` image too): the
        image is prepared as :func:`bigseg.infer.segment` prepares it with ``fov`` (percentiles
        from the inside, the outside filled with noise of the inside's moments), and labels
        outside count as unlabelled, so a model tuned on a masked reconstruction meets at
        inference what it saw in training.

    Returns
    -------
    Model, on the CPU, in eval mode, with the best-validation weights, ``normalization`` (the
    input must be the volume mapped linearly so that its global 0.5/99.5 percentiles become
    0/1, clipped: ``bigseg.filters.normalize``) and ``provenance`` (data, seed, epochs, scores,
    history, hardware, duration).

    Notes
    -----
    Loss: soft Dice + cross-entropy over labelled voxels only (unlabelled voxels get zero
    gradient). Patches are centred on labelled voxels with classes drawn uniformly (so minority
    phases are not ignored: the paper's "major class pitfall").

    Examples
    --------
    The call on a few annotated slices (255: not annotated); one short epoch only to show it, where
    a real fine-tune runs several (``epochs=4``) on the annotations of the scan:

    >>> import numpy as np
    >>> import bigseg
    >>> from bigseg import synth
    >>> truth = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
    >>> image = synth.xct(truth, seed=0)
    >>> sparse = np.full(truth.shape, 255, dtype=np.uint8)
    >>> sparse[::8] = truth.values[::8]  # every 8th z slice annotated
    >>> tuned = bigseg.train(image, sparse, init="default", epochs=1, steps_per_epoch=1,
    ...                      batch_size=1, val_fraction=0, progress=False)  # no validation slices
    >>> tuned.phases, tuned.patch
    (['pore', 'cbd', 'active'], (32, 32, 32))
    """
    if synthetic:
        if image is not None or labels is not None:
            raise InputError("Expected `image` and `labels` to be None with `synthetic`. Got data as well.")
        from ._synthetic import synthetic as _synthetic

        # the options of training on labels were silently ignored here: refused by name (phases passed on)
        given = {"axis": axis not in (0, "z"), "val_fraction": val_fraction != 0.15, "validation": validation is not None,
                 "unlabelled": unlabelled != 255, "fov": fov is not None, "fov_margin": bool(fov_margin)}
        for name, value in (("axis", axis), ("val_fraction", val_fraction), ("validation", validation),
                            ("unlabelled", unlabelled), ("fov", fov), ("fov_margin", fov_margin)):
            if given[name]:
                shown = "a pair" if name == "validation" else repr(value)
                raise InputError(f"Expected `{name}` only when training on `image` and `labels`, not with `synthetic` "
                                 f"(its validation volumes are generated). Got {name}={shown} with it.")
        kw = dict(synthetic) if isinstance(synthetic, dict) else {}
        if phases is not None:
            kw.setdefault("phases", phases)
        # the schedule left at train's defaults (those of sparse labels) takes synthetic()'s own; a value
        # passed is kept, also one equal to the default
        own = {"lr": lr, "lr_decay": lr_decay, "patience": patience, "steps_per_epoch": steps_per_epoch}
        kw.update({k: v for k, v in own.items()
                   if not isinstance(v, (_DefaultFloat, _DefaultInt)) and not (k == "steps_per_epoch" and v is None)
                   and k not in kw})
        return _synthetic(arch=arch, epochs=epochs, batch_size=batch_size, init=init, patch=patch, augment=augment,
                          checkpoint_dir=checkpoint_dir, seed=seed, device=device, amp=amp, progress=progress,
                          max_minutes=max_minutes, arch_kwargs=arch_kwargs, resume=resume, **kw)
    if image is None or labels is None:
        raise InputError("Expected `image` and `labels` volumes (or synthetic=True). Got None.")
    if fov is None and fov_margin:
        raise InputError(f"Expected `fov_margin` only with `fov`. Got fov_margin={fov_margin!r} without it.")
    labels = sparse_labels(labels, unlabelled)
    opts = parse_common(arch=arch, init=init, epochs=epochs, lr=lr, lr_decay=lr_decay, batch_size=batch_size, patch=patch,
                        patience=patience, seed=seed, device=device, amp=amp, augment=augment, max_minutes=max_minutes,
                        steps_per_epoch=steps_per_epoch, arch_kwargs=arch_kwargs, checkpoint_dir=checkpoint_dir,
                        resume=resume, progress=progress)
    axis = parse_axis("axis", axis, what="the axis of the annotated slices")  # 1.5 was taken as 1
    val_fraction = parse_in_range("val_fraction", val_fraction, 0.0, 1.0, closed="left")
    opts["patch"] = _patch_inside(opts["patch"], tuple(np.shape(image))[-3:], axis, given=patch is not None)
    check_norm_sizes(opts, arch_kwargs)
    named = getattr(labels, "attrs", {}).get("phases")
    if phases is None:
        phases = named or (opts["init"].phases if opts["init"] is not None else DEFAULT_PHASES)
    phases = parse_phases(phases)
    if named and list(named) != phases:  # the values' names as the labels state them, renamed by the caller
        warnings.warn(f"The labels name their values {list(named)}; `phases` {phases} renames them (value i is "
                      f"phases[i]): drop `phases` to keep the labels' own names.", stacklevel=2)
    n_classes = len(phases)
    phases = check_init_phases(opts["init"], phases)  # (the init's names: "pore" for the labels' "Pore")
    if validation is not None:
        try:
            vimg, vlab = validation
        except (TypeError, ValueError):
            raise InputError("Expected `validation` to be an (image, labels) pair. Got something else.") from None
        named, given = getattr(vlab, "attrs", {}).get("phases"), getattr(labels, "attrs", {}).get("phases") or phases
        # scored as the training labels' values: the same names in order, each or its case variant ("Pore")
        if named is not None and [phase_named(list(given), str(n)) for n in named] != list(given):
            raise InputError(f"Expected the `validation` labels' phases {list(named)} to be the training labels' "
                             f"{list(given)}. Got other phases or another order: relabel one of them.")
    img, lab = load_pair(image, labels, n_classes)
    order = _init_order(opts["init"], phases)
    if order is not None:  # the init's phases in another order: the labels take the init's (channels mean names)
        lab, phases = order[lab], list(opts["init"].phases)
    if img.ndim != 3:
        raise InputError(f"Expected (z, y, x) volumes. Got {img.ndim} dimensions instead.")

    norm = dict(opts["init"].normalization) if opts["init"] is not None else dict(DEFAULT_NORMALIZATION)
    mask = None
    if fov is not None:  # prepared as segment(fov=) prepares its input; no training signal outside
        found = fov_mask(img, fov, margin=fov_margin)
        if not found.attrs["found"]:
            warnings.warn(f"fov {fov!r}: no constant fill found around the sample; the whole cross-section is used "
                          "(give the circle, e.g. fov='cylinder' or (cy, cx, r))", UserWarning, stacklevel=2)
        mask = found.values
        lab = np.where(mask[None], lab, UNLABELLED).astype(np.uint8)
        if not (lab != UNLABELLED).any():  # was an IndexError from the validation split
            spec = repr(fov) if isinstance(fov, (str, tuple, list)) else "(a mask)"
            raise InputError(f"Expected `labels` inside the field of view `fov`={spec} (`fov_margin`={fov_margin:g}). "
                             f"Got every labelled voxel outside it ({float(mask.mean()):.0%} of each slice is inside): "
                             "annotate inside the sample, or give the field of view that holds the annotations.")
    absent = [p for i, p in enumerate(phases) if not (lab == i).any()]  # (after `fov`: what trains)
    if absent:  # e.g. one annotated slice of pore only: nothing teaches the others
        warnings.warn(f"The labels hold no voxel of {', '.join(absent)}"
                      f"{' inside the field of view' if mask is not None else ''}: the model learns nothing of "
                      f"{'it' if len(absent) == 1 else 'them'}"
                      f"{' beyond what the initial model knew' if opts['init'] is not None else ''}; "
                      "annotate some of each phase.", stacklevel=2)
    few = {p: int((lab == i).sum()) for i, p in enumerate(phases) if p not in absent}
    few = {p: n for p, n in few.items() if n < FEW_LABELLED}
    if few:  # a few clicks: the loss falls on them alone and the phase is guessed everywhere else
        warnings.warn(f"The labels hold few voxels of {', '.join(f'{p} ({n})' for p, n in few.items())}, fewer than "
                      f"{FEW_LABELLED}: the model learns little of {'it' if len(few) == 1 else 'them'}; annotate more "
                      "of each phase (strokes across several slices).", stacklevel=2)
    img, lo, hi = normalize_image(img, low=norm.get("low", 0.5), high=norm.get("high", 99.5), fov=mask)
    if not hi > lo:  # the network saw one value everywhere and "learnt" the phases' frequencies
        where = " inside the field of view" if mask is not None else ""
        raise InputError(f"Expected `image` with contrast{where}: its {norm.get('low', 0.5):g} and "
                         f"{norm.get('high', 99.5):g} percentiles are both {lo:g} (a blank or saturated scan?). "
                         "Got nothing to learn the phases from.")

    if validation is not None:
        try:  # said as the `validation` pair's, not as the training `image`/`labels`
            vimg, vlab = load_pair(vimg, sparse_labels(vlab, unlabelled, name="validation labels"), n_classes)
            if order is not None:
                vlab = order[vlab]
            vmask = None if fov is None else fov_mask(vimg, fov, margin=fov_margin).values
            if vmask is not None:
                vlab = np.where(vmask[None], vlab, UNLABELLED).astype(np.uint8)
            vimg, _, _ = normalize_image(vimg, low=norm.get("low", 0.5), high=norm.get("high", 99.5), fov=vmask)
        except InputError as exc:
            raise type(exc)(f"In `validation` (image, labels): {exc}") from None
        tlab = lab
    elif val_fraction > 0:
        tlab, vlab = split_validation(lab, axis=axis, val_fraction=val_fraction, seed=opts["seed"])
        vimg = img
        if not (vlab != UNLABELLED).any():  # one labelled row of one slice: nothing could be held back
            warnings.warn(f"No labelled voxel could be held back for validation (`val_fraction`={val_fraction:g}; the "
                          "labels lie in one row of one slice): the model is not validated and early stopping "
                          "follows the training loss; annotate more slices or rows, or pass `validation`.",
                          stacklevel=2)
        held = [p for i, p in enumerate(phases) if p not in absent and not (tlab == i).any()]
        if held:  # annotated on the held-back slices only: nothing trains them
            warnings.warn(f"The labels of {', '.join(held)} lie only in the slices held back for validation: the model "
                          f"learns nothing of {'it' if len(held) == 1 else 'them'}; annotate "
                          f"{'it' if len(held) == 1 else 'them'} on more slices, or pass `validation` (a pair of "
                          "its own) or val_fraction=0.", stacklevel=2)
    else:
        tlab, vlab, vimg = lab, None, None

    sampler = PatchSampler(img, tlab, opts["patch"], axis=axis, n_classes=n_classes)
    n_lab = int((tlab != UNLABELLED).sum())
    spe = opts["steps_per_epoch"] or int(np.clip(math.ceil(8 * n_lab / (np.prod(opts["patch"]) * opts["batch_size"])), 20, 1000))

    validate = None
    if vlab is not None and (vlab != UNLABELLED).any():
        windows = patch_windows(vlab, opts["patch"], axis=axis, seed=opts["seed"])
        dev, ndim = opts["device"], opts["ndim"]

        def validate(m: torch.nn.Module) -> np.ndarray:
            return score_windows(m, vimg, vlab, windows, axis=axis, n_classes=n_classes, device=dev, ndim=ndim)

    grid = as_volume(image, name="image", allow_series=True).attrs  # the voxels it learns shapes at (e.g. anisotropic)
    opts["augment"] = square_rotations(opts["augment"], grid["voxel_size"], axis if opts["ndim"] == 2 else 0)
    model = prepare_model(opts, phases, dict(arch_kwargs or {}), norm)
    digest = [hashlib.sha256(np.ascontiguousarray(a)).hexdigest()[:16] for a in (img, tlab, vimg if vimg is not img else None, vlab) if a is not None]
    settings = run_settings_key(opts, model, kind="sparse labels", axis=axis, steps_per_epoch=spe, data=digest)
    resume_from = start_or_resume(opts, settings)
    hist = fit(
        model, batches=sampler.sample, validate=validate, phases=phases, epochs=opts["epochs"], steps_per_epoch=spe,
        lr=opts["lr"], lr_decay=opts["lr_decay"], batch_size=opts["batch_size"], augment=opts["augment"],
        patience=opts["patience"], checkpoint_dir=checkpoint_dir, seed=opts["seed"], device=opts["device"], amp=opts["amp"],
        progress=progress, max_minutes=opts["max_minutes"], on_checkpoint=_checkpointer(model, opts),
        resume=resume_from, settings=settings,
    )
    scores = None
    if hist.best_epoch is not None and hist.epochs and "val_iou" in hist.epochs[hist.best_epoch - 1]:
        scores = {"validation_iou": hist.epochs[hist.best_epoch - 1]["val_iou"]}
    labelled_slices = int((np.moveaxis(lab, axis, 0) != UNLABELLED).reshape(lab.shape[axis], -1).any(1).sum())
    data = {"kind": "sparse labels", "shape": list(img.shape), "voxel_size": [float(v) for v in grid["voxel_size"]],
            "unit": grid["unit"], "labelled_voxels": int((lab != UNLABELLED).sum()),
            "labelled_slices": labelled_slices, "axis": axis, "percentiles": [lo, hi],
            "validation": "explicit" if validation is not None else f"held-back slices ({val_fraction:g})"}
    if validation is None and vlab is not None:  # which slices (along `axis`) were held back: the validation set
        held = (np.moveaxis(vlab, axis, 0) != UNLABELLED).reshape(vlab.shape[axis], -1).any(1)
        data["validation_slices"] = np.flatnonzero(held).tolist()
    if mask is not None:
        data["fov"] = {"spec": fov if isinstance(fov, str) else "mask/circle", "margin": float(fov_margin),
                       "inside_fraction": round(float(mask.mean()), 4)}
    return finish_model(model, hist, opts, data, scores)
