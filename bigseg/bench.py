"""``bigseg bench``: throughput of every stage on a generated electrode, on whatever scheduler is current.

Top-level orchestration beside :mod:`bigseg.demo` and :mod:`bigseg.pipeline`: it runs the public API
of every layer, so it lives above them."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from ._parse import parse_positive_int
from .errors import InputError

__all__ = ["benchmark", "STAGES"]

#: Stages :func:`benchmark` can time, in pipeline order.
STAGES = ("write", "filter", "segment", "measure", "particles")


def _environment() -> dict[str, Any]:
    import torch

    from ._version import environment, utc_now
    from .runtime._cluster import computed_on

    env: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                           "cpus": os.cpu_count(), "torch": torch.__version__,
                           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    # what made the figures, as a run's run.json records it (was: no bigseg version, commit or dask's)
    recorded = environment()
    env.update(bigseg=recorded["bigseg"], git_commit=recorded["git_commit"], packages=recorded["packages"],
               host=recorded["machine"]["host"], date=utc_now())
    env.update(computed_on())  # as run.json: scheduler, workers, threads, their memory limit, the cluster's kind
    return env


MAX_REPEAT = 100  # timed runs of the stages (each a whole pass over the volume)


def benchmark(*, size: int = 128, chunks: int = 64, model: str = "default", stages: Any = STAGES, seed: int = 0,
              workdir: str | os.PathLike | None = None, predict: dict[str, Any] | None = None,
              progress: bool = True, warmup: bool = True, repeat: int = 1) -> dict[str, Any]:
    """Time each stage on a generated ``size``³ electrode and return seconds and Mvox/s.

    The scan (simulated nano-CT of :func:`bigseg.synth.electrode`) is written as an OME-Zarr in
    ``chunks``³ chunks under ``workdir`` (a temporary folder by default, removed after), then each
    stage reads it from disk and writes or reduces its result, as in a real run:

    * ``write``: copy the scan (simulated first, untimed: ``simulate_s``) to a new OME-Zarr, i.e.
      read and write it as an ingest does; ``filter``: 3³ median to a new OME-Zarr;
    * ``segment``: ``model`` (normalised input; ``predict`` holds :func:`bigseg.predict` options
      such as ``overlap``, ``autocast="bf16"``, ``device="cuda"``, ``batch_size``) to a label
      OME-Zarr;
    * ``measure``: volume fractions and interfaces (faces) of the labels;
    * ``particles``: the per-particle table of the active phase (split touching particles).

    Runs on the current scheduler: call it inside ``with bigseg.connect(...)`` to benchmark a
    cluster (each stage's tasks then run on the workers). Returns a dict with ``environment``,
    ``size``, ``chunks``, the ``predict`` options, per stage ``seconds`` and ``mvox_per_s``
    (million voxels per second) and ``peak_rss_mib`` (this process's peak resident memory,
    whose workers are its threads unless a cluster runs the stages). ``progress``: each stage's
    bars (the stage lines on stderr stay). ``warmup``: first run the same stages once, untimed, on a
    small volume of several blocks (``warmup_s``), so that compiling the numba kernels and loading
    the model and libraries in this process and on the workers is not timed as throughput (on a
    fresh install or fresh workers it was: the median read ~150× slower than it runs).
    ``repeat``: run the timed stages that many times (at most ``MAX_REPEAT``), each on a fresh copy:
    ``seconds`` and ``mvox_per_s`` are then the median run's, ``seconds_each`` every run's and
    ``spread`` (max − min) / median, so that a figure from a shared machine or cluster says how far
    it can be trusted (two 32³ runs on a busy 2-core machine differed 3.8×).
    """
    from .infer import segment

    size = parse_positive_int("size", size)
    repeat = parse_positive_int("repeat", repeat, most=MAX_REPEAT)
    chunks = min(parse_positive_int("chunks", chunks), size)  # the chunks used (one chunk at most the volume)
    wanted = [stages] if isinstance(stages, str) else list(stages)
    bad = [s for s in wanted if s not in STAGES]
    if bad or not wanted:
        raise InputError(f"Expected `stages` to be some of {list(STAGES)}. Got {stages!r} instead.")
    if workdir is not None and Path(workdir).exists() and not Path(workdir).is_dir():
        raise InputError(f"Expected `workdir` to be a folder. Got {str(workdir)!r}, a file, instead.")
    need = set(wanted)  # a stage needs the outputs of the ones before it
    if need & {"filter", "segment", "measure", "particles"}:
        need.add("write")
    if need & {"measure", "particles"}:
        need.add("segment")
    run = [s for s in STAGES if s in need]
    opts = dict(predict or {})
    net = model
    if "segment" in run:  # the model (loaded once) and its options are checked before any work (the graph is not run)
        import numpy as np

        from .infer._model import load_model

        net = load_model(model, opts.get("device"))
        segment(np.linspace(0, 1, 32 ** 3, dtype=np.float32).reshape(32, 32, 32), net, **opts)
    if workdir is not None:  # created where missing (a scratch folder named for the run)
        from .runtime._lock import make_folder

        make_folder(workdir, target=workdir, argument="workdir")
    n = size ** 3
    need_bytes = n * (4 + 4 + 4 + 1)  # simulated scan, its copy, the median (float32) and the labels (uint8)
    free = shutil.disk_usage(workdir if workdir is not None else tempfile.gettempdir()).free
    if need_bytes > free:  # e.g. --size 100000 (10^15 voxels): was a MemoryError deep in the simulator
        from .runtime._budget import format_bytes

        raise InputError(f"Expected `size` whose volumes fit in the free space of the work folder "
                         f"({format_bytes(free)}; {size}³ needs up to {format_bytes(need_bytes)} uncompressed). "
                         f"Got {size} instead: a smaller --size, or a --workdir with room.")
    tmp = Path(tempfile.mkdtemp(prefix="bigseg-bench-", dir=workdir))
    result: dict[str, Any] = {"environment": _environment(), "size": size, "chunks": chunks, "model": model,
                              "predict": opts, "stages": {}}
    try:
        if warmup:  # compile, import and load once (here and on the workers), untimed
            small = min(chunks, 16)
            print(f"[bench warm-up] {', '.join(run)} ({2 * small}³ in {small}³ chunks, untimed)", file=sys.stderr,
                  flush=True)
            t0 = time.perf_counter()
            _run_stages(tmp / "warmup", run, 2 * small, small, seed, net, opts, progress=False)
            result["warmup_s"] = float(f"{time.perf_counter() - t0:.4g}")
            shutil.rmtree(tmp / "warmup", ignore_errors=True)
        runs = []
        for k in range(repeat):  # each on a fresh copy (a stage reads what the one before it wrote)
            if repeat > 1:
                print(f"[bench run {k + 1}/{repeat}]", file=sys.stderr, flush=True)
            runs.append(_run_stages(tmp / f"run{k}", run, size, chunks, seed, net, opts, progress=progress, say=True))
            shutil.rmtree(tmp / f"run{k}", ignore_errors=True)
        if "write" in run:  # the median run's too (was the last run's), untimed
            made = sorted(r["simulate"] for r in runs)
            result["simulate_s"] = float(f"{made[(len(made) - 1) // 2]:.4g}")
        for stage in run:
            if stage in wanted:
                each = sorted(r[stage] for r in runs)
                dt = each[(len(each) - 1) // 2]  # the median run's (the lower of the middle two)
                result["stages"][stage] = {"seconds": float(f"{dt:.4g}"), "mvox_per_s": float(f"{n / dt / 1e6:.4g}")}
                if repeat > 1:
                    result["stages"][stage].update(seconds_each=[float(f"{r[stage]:.4g}") for r in runs],
                                                   spread=float(f"{(each[-1] - each[0]) / dt:.3g}"))
        result["repeat"] = repeat
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


def _run_stages(tmp: Path, run: list[str], size: int, chunks: int, seed: int, net: Any, opts: dict[str, Any], *,
                progress: bool, say: bool = False) -> dict[str, float]:
    """Run ``run`` (stages in pipeline order) on a generated ``size``³ electrode under ``tmp``;
    seconds per stage (the simulation before ``write``: ``"simulate"``)."""
    from . import filters, measure, synth
    from .infer import segment
    from .io import open_volume, save_volume

    tmp.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    for i, stage in enumerate(run):
        if say:
            print(f"[bench {i + 1}/{len(run)}] {stage} ({size}³ in {chunks}³ chunks)", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        if stage == "write":  # the simulator's time is no write time: the scan is made first, then copied
            labels = synth.electrode((size,) * 3, seed=seed, chunks=chunks)
            save_volume(synth.xct(labels, seed=seed), tmp / "simulated.ome.zarr", voxel_size=50.0, unit="nm",
                        progress=progress)
            seconds["simulate"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            save_volume(open_volume(tmp / "simulated.ome.zarr"), tmp / "scan.ome.zarr", progress=progress)
        elif stage == "filter":
            save_volume(filters.median(open_volume(tmp / "scan.ome.zarr"), size=3), tmp / "median.ome.zarr",
                        progress=progress)
        elif stage == "segment":
            seg = segment(open_volume(tmp / "scan.ome.zarr"), net, **opts)["labels"]
            save_volume(seg, tmp / "labels.ome.zarr", phases=["pore", "cbd", "active"], progress=progress)
        elif stage == "measure":
            measure.summary(open_volume(tmp / "labels.ome.zarr"), progress=progress)
        elif stage == "particles":
            with warnings.catch_warnings():  # the default halo is what is timed; wide particles don't matter here
                warnings.simplefilter("ignore", UserWarning)
                measure.particles(open_volume(tmp / "labels.ome.zarr"), progress=progress)
        seconds[stage] = time.perf_counter() - t0
    return seconds


def _peak_rss_mib() -> float | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(kib / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
