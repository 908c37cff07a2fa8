"""Training on synthetic electrodes with the generator in the loop.

Every few batches a fresh electrode is drawn (random fractions, particle sizes, cracks,
irregularity) and imaged with random XCT physics (a random preset with jittered noise level,
blur, phase contrast, rings and drift), so the network never sees the same volume twice and
learns to generalise across contrasts and artefacts (Müller et al. 2021 train their 3D U-Net on
artificial electrodes with simulated tomography).
"""

from __future__ import annotations

import warnings
from collections import deque
from typing import Any

import dask
import numpy as np
import torch

from .._parse import parse_in_range, parse_nonnegative_int, parse_phases, parse_positive_int, parse_tuple
from ..errors import InputError
from ..io import DEFAULT_PHASES
from ..models import DEFAULT_NORMALIZATION, Model
from ..runtime._signals import children_ignore_ctrl_c
from ._data import PatchSampler, normalize_image
from ._loop import fit
from ._loss import confusion, iou_from_confusion
from ._train import (_checkpointer, check_init_phases, check_norm_sizes, finish_model, parse_common, prepare_model,
                     run_settings_key, start_or_resume)

__all__ = ["synthetic", "random_electrode", "random_physics", "make_pair", "TRAIN_PRESETS", "evaluate"]

#: The realistic presets of :data:`bigseg.synth.PRESETS` (all but "ideal").
TRAIN_PRESETS = ("nano-ct-phase", "nano-ct-absorption", "lab-micro-ct", "synchrotron-micro-ct")


#: Range of the mean particle radius (voxels) the generator in the loop draws from, log-uniform:
#: lab micro-CT sees NMC particles a few voxels wide, nano-CT tens of voxels.
RADIUS_RANGE = (5.0, 20.0)


def random_electrode(rng: np.random.Generator, radius_range: tuple[float, float] = RADIUS_RANGE) -> dict[str, Any]:
    """Random keyword arguments of :func:`bigseg.synth.electrode`; the mean particle radius is
    log-uniform in ``radius_range`` (voxels).

    Parameters
    ----------
    rng : the NumPy ``Generator`` drawn from.
    radius_range : (low, high) mean particle radius in voxels (default :data:`RADIUS_RANGE`).
    """
    pore = rng.uniform(0.25, 0.45)
    cbd = rng.uniform(0.08, 0.22)
    mean = float(np.exp(rng.uniform(np.log(radius_range[0]), np.log(radius_range[1]))))
    return {
        "fractions": (pore, cbd, 1.0 - pore - cbd),
        "radius": (mean, mean * rng.uniform(0.15, 0.3)),
        "cracked": rng.uniform(0.0, 0.4),
        "irregularity": rng.uniform(0.5, 1.5),
        "seed": int(rng.integers(0, 2**31 - 1)),
    }


def random_physics(rng: np.random.Generator, preset: str) -> dict[str, Any]:
    """A preset's physics with jittered noise level, blur, phase contrast, rings, drift and
    CBD contrast (keyword overrides for :func:`bigseg.synth.xct`).

    Parameters
    ----------
    rng : the NumPy ``Generator`` drawn from.
    preset : the preset name (:data:`bigseg.synth.PRESETS`).
    """
    from ..synth import PRESETS

    p = PRESETS[preset]
    a_pore, a_cbd, a_act = p["attenuation"]
    a_pore2 = a_pore * rng.uniform(0.8, 1.2)
    a_cbd2 = max(a_pore2 + 0.03, a_pore2 + (a_cbd - a_pore) * rng.uniform(0.7, 1.3))
    out = {
        "attenuation": (a_pore2, a_cbd2, a_act),
        "snr": p["snr"] * rng.uniform(0.7, 1.5),
        "psf_sigma": p["psf_sigma"] * rng.uniform(0.7, 1.3),
        "noise_correlation": p["noise_correlation"] * rng.uniform(0.7, 1.3),
        "rings": p["rings"] * rng.uniform(0.0, 2.0),
        "drift": p["drift"] * rng.uniform(0.0, 2.0),
    }
    if p.get("phase_contrast", 0):
        out["phase_contrast"] = p["phase_contrast"] * rng.uniform(0.6, 1.4)
    return out


def _parse_radius_range(value: Any) -> tuple[float, float]:
    lo, hi = parse_tuple("radius_range", value, 2, lambda n, v: parse_in_range(n, v, 1.0, 1e4),
                         what="values in [1, 10000]")
    if lo > hi:
        raise InputError(f"Expected `radius_range` to be (low, high) with low <= high. Got {value!r} instead.")
    return lo, hi


def make_pair(shape: tuple[int, int, int], *, electrode: dict[str, Any], preset: str, physics: dict[str, Any], seed: int,
              normalization: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic (normalised float32 image, uint8 labels) pair in memory, (z, y, x).

    Parameters
    ----------
    shape : (z, y, x) voxels.
    electrode : keywords of :func:`bigseg.synth.electrode` (e.g. :func:`random_electrode`'s).
    preset : an XCT preset name of :data:`bigseg.synth.PRESETS`.
    physics : keyword overrides of :func:`bigseg.synth.xct` (e.g. :func:`random_physics`'s).
    seed : the noise's seed for :func:`bigseg.synth.xct`.
    normalization : the percentile window the image is scaled by (``low``, ``high``; default
        :data:`~bigseg.models.DEFAULT_NORMALIZATION`).
    """
    from .. import synth

    norm = normalization or DEFAULT_NORMALIZATION
    with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
        # pieces of particles wider than a training slab are what the model is to learn too: no warning
        warnings.filterwarnings("ignore", message=".*makes particles .* voxels across", category=UserWarning)
        lab = synth.electrode(shape, chunks=shape, **electrode)
        img = synth.xct(lab, seed=seed, preset=preset, **physics)
        lab_np, img_np = dask.compute(lab.data, img.data)
    img_n, _, _ = normalize_image(img_np, low=norm.get("low", 0.5), high=norm.get("high", 99.5))
    return img_n, np.asarray(lab_np, dtype=np.uint8)


class _Generator:
    """Patch source that draws a fresh electrode + physics every ``batches_per_volume`` calls.

    With ``workers`` > 0 the volumes are made ahead in that many processes (the simulator, on
    the CPU, is what keeps a GPU waiting); each volume's recipe is still drawn here, in order,
    from the one seeded generator, so the volumes, and the training, are those of ``workers=0``.
    """

    def __init__(self, shape, patch, presets, batches_per_volume, n_classes, seed, normalization, radius_range,
                 workers=0):
        self.shape, self.patch, self.presets = shape, patch, presets
        self.radius_range = radius_range
        self.every = batches_per_volume
        self.n_classes = n_classes
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E]))
        self.norm = normalization
        self.calls = 0
        self.volumes = 0
        self.sampler: PatchSampler | None = None
        self.workers = workers
        self.pool: Any = None
        self.ahead: deque = deque()  # (the recipes' generator state before it, the volume being made)
        self.current: dict | None = None  # the generator's state before the recipe of the volume in use

    def _recipe(self) -> dict[str, Any]:
        preset = self.presets[int(self.rng.integers(len(self.presets)))]
        return dict(electrode=random_electrode(self.rng, self.radius_range), preset=preset,
                    physics=random_physics(self.rng, preset), seed=int(self.rng.integers(0, 2**31 - 1)),
                    normalization=self.norm)

    def _next_pair(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.workers:
            self.current = self.rng.bit_generator.state
            return make_pair(self.shape, **self._recipe())
        from concurrent.futures.process import BrokenProcessPool

        first = self.pool is None
        if first:  # spawned: no copy of this process's torch / dask threads
            import multiprocessing
            import os
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_setup, initargs=(os.getpid(),))
        try:
            with children_ignore_ctrl_c(first):  # the workers start ignoring Ctrl-C (the trainer handles it)
                while len(self.ahead) < 2 * self.workers:
                    before = self.rng.bit_generator.state
                    self.ahead.append((before, self.pool.submit(make_pair, self.shape, **self._recipe())))
            self.current, made = self.ahead.popleft()
            return made.result()
        except BrokenProcessPool:
            raise RuntimeError(
                f"A data worker (one of `workers`={self.workers} processes making the training volumes) ended "
                f"abruptly: out of memory (use fewer workers or a smaller `shape` {self.shape}), or, from a script, "
                "the training was not started under `if __name__ == \"__main__\":` (the workers import the script)."
            ) from None

    def _new(self) -> None:
        img, lab = self._next_pair()
        self.sampler = PatchSampler(img, lab, self.patch, axis=0, n_classes=self.n_classes)
        self.volumes += 1

    def __call__(self, n: int, rng: np.random.Generator):
        if self.sampler is None or self.calls % self.every == 0:
            self._new()
        self.calls += 1
        assert self.sampler is not None
        return self.sampler.sample(n, rng)

    def getstate(self) -> dict[str, Any]:
        """Where the source is: enough for :meth:`setstate` to go on with the same volumes."""
        return {"recipe_rng": self.current, "calls": self.calls, "volumes": self.volumes}

    def setstate(self, state: dict[str, Any]) -> None:
        """Go on from :meth:`getstate`'s ``state``: the volume in use made again from its recipe
        (the recipes drawn ahead of it are drawn again, in order)."""
        self.close()
        self.calls, self.volumes = int(state["calls"]), int(state["volumes"])
        if state["recipe_rng"] is None:  # no volume made yet
            return
        self.rng.bit_generator.state = self.current = state["recipe_rng"]
        if self.calls % self.every:  # half used: made again (not counted twice), its remaining batches come from it
            self.volumes -= 1
            self._new()
        else:  # used up: the next call makes the next one; its recipe is drawn past
            self._recipe()

    def close(self) -> None:
        """Stop the worker processes at once: volumes made ahead and not used are dropped, and
        those being made are not waited for (seconds each, past a ``max_minutes`` deadline or a
        Ctrl-C)."""
        if self.pool is not None:
            procs = list((getattr(self.pool, "_processes", None) or {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            procs += [p for p in (getattr(self.pool, "_processes", None) or {}).values() if p not in procs]
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
            for proc in procs:
                proc.join(timeout=5)
                if proc.is_alive():  # SIGTERM not yet acted on (a busy machine): no orphan left behind
                    proc.kill()
                    proc.join(timeout=5)
            self.pool, self.ahead = None, deque()


def _worker_setup(parent: int) -> None:
    """A data worker ignores Ctrl-C (it reaches the whole process group: the trainer stops and
    shuts the workers down, without a traceback from each) and ends with the trainer, should
    that be killed outright (Linux: the parent-death signal)."""
    import os
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):  # (Windows: ctypes.CDLL(None) raises TypeError; macOS: no prctl)
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # another libc
            pass
    if os.getppid() != parent:  # the trainer was gone before the signal was asked for
        os._exit(0)


@torch.no_grad()
def evaluate(model: torch.nn.Module, image: np.ndarray, labels: np.ndarray, *, n_classes: int, device: Any = "cpu",
             amp: Any = None) -> np.ndarray:
    """Confusion matrix of ``model`` on a whole (z, y, x) volume: a 2D model slice by slice
    along z, a 3D model in one pass. ``image`` must be normalised already.

    Parameters
    ----------
    model : a 2D (``ndim`` 2) or 3D torch module mapping (N, 1, ...) to (N, C, ...) logits.
    image : normalised float32 (z, y, x) NumPy volume.
    labels : integer (z, y, x) labels of ``image``; voxels valued 255 are left out.
    n_classes : C, the number of classes.
    device : the torch device to run on (default ``"cpu"``).
    amp : a torch dtype to autocast to (e.g. ``torch.bfloat16``); default None: float32.

    Returns
    -------
    (C, C) int64 counts, rows the truth, columns the prediction.
    """
    import contextlib

    dev = torch.device(device)
    was = model.training
    model.eval().to(dev)
    ctx = torch.autocast(device_type=dev.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    cm = np.zeros((n_classes, n_classes), np.int64)
    with ctx:
        if getattr(model, "ndim", 2) == 2:
            for z0 in range(0, image.shape[0], 8):
                t = torch.from_numpy(np.ascontiguousarray(image[z0:z0 + 8]))[:, None].to(dev)
                pred = model(t).argmax(1).cpu().numpy()
                cm += confusion(labels[z0:z0 + 8], pred, n_classes)
        else:
            t = torch.from_numpy(np.ascontiguousarray(image))[None, None].to(dev)
            pred = model(t).argmax(1)[0].cpu().numpy()
            cm += confusion(labels, pred, n_classes)
    model.train(was)
    return cm


def synthetic(
    *,
    arch: str | None = None,
    epochs: int = 10,
    lr: float = 1e-3,
    lr_decay: float = 0.8,
    batch_size: int = 8,
    init: Any = None,
    patch: Any = None,
    patience: int | None = None,
    steps_per_epoch: int | None = 100,
    augment: Any = True,
    checkpoint_dir: str | None = None,
    seed: int = 0,
    device: Any = None,
    amp: Any = "auto",
    progress: bool = True,
    max_minutes: float | None = None,
    arch_kwargs: dict | None = None,
    presets: Any = None,
    shape: Any = None,
    batches_per_volume: int = 6,
    val_presets: Any = None,
    val_shape: Any = None,
    val_seed: int = 10_000,
    phases: Any = None,
    radius_range: Any = RADIUS_RANGE,
    workers: int = 0,
    resume: bool = False,
) -> Model:
    """Train on synthetic electrodes generated on the fly (:mod:`bigseg.synth`).

    Parameters (besides those of :func:`bigseg.train`)
    ----------
    arch, epochs, lr, lr_decay, batch_size, init, patch, patience, augment, checkpoint_dir, seed,
        device, amp, progress, max_minutes, arch_kwargs, resume : as for :func:`bigseg.train`,
        with the defaults of this signature (here ``lr`` 1e-3, ``lr_decay`` 0.8 and ``patience``
        None: no early stop)
    phases : the three names of the generated labels 0, 1, 2 (default pore, cbd, active)
    presets : XCT presets drawn from per volume (default :data:`TRAIN_PRESETS`)
    shape : (z, y, x) of each generated volume; default (24, 128, 128) for 2D models,
        (patch_z, 2 × patch_y, 2 × patch_x) for 3D
    batches_per_volume : batches drawn from one volume before a new one is generated
    val_presets, val_shape, val_seed : fixed validation volumes, one per preset (preset physics
        without jitter, electrode seeds ``val_seed + i``), default shape (8, 128, 128) for 2D
    steps_per_epoch : batches per epoch (the learning rate decays by ``lr_decay`` after each)
    radius_range : (low, high) voxels, range of the generated electrodes' mean particle radius
        (log-uniform); default :data:`RADIUS_RANGE`
    workers : processes that make the volumes ahead of the training (0: in this process, in
        turn). The same volumes in the same order either way, so the same model for a given
        number of steps (with ``max_minutes`` more workers reach more steps); on a GPU the
        simulator, not the network, sets the pace (an H200 did 433 steps a minute of the default
        recipe in turn, 2 torch threads on this project's 2-core CPU 301), so give it most of
        the node's cores. The workers are started with ``spawn``, which imports the calling
        script: from a script, train under ``if __name__ == "__main__":``.

    Returns
    -------
    Model with ``provenance["scores"]`` = per-preset per-phase IoU on the validation volumes.
    """
    from .. import synth  # noqa: F401  (fail early if the simulator is missing)

    opts = parse_common(arch=arch, init=init, epochs=epochs, lr=lr, lr_decay=lr_decay, batch_size=batch_size, patch=patch,
                        patience=patience, seed=seed, device=device, amp=amp, augment=augment, max_minutes=max_minutes,
                        steps_per_epoch=steps_per_epoch, arch_kwargs=arch_kwargs, checkpoint_dir=checkpoint_dir,
                        resume=resume, progress=progress)
    check_norm_sizes(opts, arch_kwargs)
    phases = parse_phases(phases if phases is not None else DEFAULT_PHASES)
    if len(phases) != 3:
        raise InputError(f"Expected 3 phases (pore, cbd, active) for synthetic training. Got {phases} instead.")
    phases = check_init_phases(opts["init"], phases, reindex=False)  # the generated labels are 0 pore, 1 cbd, 2 active
    presets = list(TRAIN_PRESETS if presets is None else ([presets] if isinstance(presets, str) else presets))
    val_presets = list(presets if val_presets is None else ([val_presets] if isinstance(val_presets, str) else val_presets))
    for name in presets + val_presets:
        if name not in synth.PRESETS:
            raise InputError(f"Expected presets among {sorted(synth.PRESETS)}. Got {name!r} instead.")
    p = opts["patch"]
    if shape is None:
        shape = (24, max(128, p[0]), max(128, p[1])) if opts["ndim"] == 2 else (p[0], 2 * p[1], 2 * p[2])
    if val_shape is None:
        val_shape = (8, 128, 128) if opts["ndim"] == 2 else tuple(max(s, 48) for s in p)
    shape = tuple(parse_positive_int("shape", s) for s in shape)
    val_shape = tuple(parse_positive_int("val_shape", s) for s in val_shape)
    if len(shape) != 3 or len(val_shape) != 3:
        raise InputError(f"Expected `shape` and `val_shape` to be (z, y, x). Got {shape} and {val_shape} instead.")
    batches_per_volume = parse_positive_int("batches_per_volume", batches_per_volume)
    radius_range = _parse_radius_range(radius_range)
    workers = parse_nonnegative_int("workers", workers)
    norm = dict(opts["init"].normalization) if opts["init"] is not None else dict(DEFAULT_NORMALIZATION)
    n_classes = 3

    # fixed validation volumes, one per preset (preset physics, default electrode settings)
    val = []
    for i, name in enumerate(val_presets):
        img, lab = make_pair(val_shape, electrode={"seed": val_seed + i}, preset=name, physics={}, seed=val_seed + i,
                             normalization=norm)
        val.append((name, img, lab))
    dev, amp_dt = opts["device"], opts["amp"]

    def validate(m: torch.nn.Module) -> np.ndarray:
        total = np.zeros((n_classes, n_classes), np.int64)
        for _name, img, lab in val:
            total += evaluate(m, img, lab, n_classes=n_classes, device=dev, amp=amp_dt)
        return total

    source = _Generator(shape, p, presets, batches_per_volume, n_classes, opts["seed"], norm, radius_range, workers)
    model = prepare_model(opts, phases, dict(arch_kwargs or {}), norm)
    settings = run_settings_key(opts, model, kind="synthetic", presets=presets, shape=list(shape),
                                batches_per_volume=batches_per_volume, radius_range=list(radius_range),
                                val_presets=val_presets, val_shape=list(val_shape), val_seed=val_seed,
                                steps_per_epoch=opts["steps_per_epoch"] or 100)
    resume_from = start_or_resume(opts, settings)
    try:
        hist = fit(
            model, batches=source, validate=validate, phases=phases, epochs=opts["epochs"],
            steps_per_epoch=opts["steps_per_epoch"] or 100, lr=opts["lr"], lr_decay=opts["lr_decay"],
            batch_size=opts["batch_size"], augment=opts["augment"], patience=opts["patience"],
            checkpoint_dir=checkpoint_dir, seed=opts["seed"], device=dev, amp=amp_dt, progress=progress,
            max_minutes=opts["max_minutes"], on_checkpoint=_checkpointer(model, opts),
            resume=resume_from, settings=settings,
        )
    finally:
        source.close()
    scores = {}
    for name, img, lab in val:
        iou = iou_from_confusion(evaluate(model, img, lab, n_classes=n_classes, device="cpu"))
        scores[name] = {ph: round(float(v), 5) for ph, v in zip(phases, iou)}
    data = {"kind": "synthetic", "presets": presets, "shape": list(shape), "volumes_generated": source.volumes,
            "batches_per_volume": batches_per_volume, "workers": workers, "radius_range": list(radius_range), "validation": {"presets": val_presets, "shape": list(val_shape), "seed": val_seed},
            "steps_per_epoch": opts["steps_per_epoch"]}
    model = finish_model(model, hist, opts, data, {"validation_iou_by_preset": scores})
    return model
