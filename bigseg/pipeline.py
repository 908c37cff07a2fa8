"""The end-to-end pipeline: ingest → filters → segmentation → labels in the OME-Zarr → metrics → figures.

``Pipeline(**config)`` / ``Pipeline.from_yaml(path)`` take the run configuration
(:class:`bigseg.RunConfig`); ``.run(source, dest)`` returns a :class:`Result`. Every stage is
lazy until written; every output goes to zarr block by block. With ``resume=True`` a stage
whose output is already complete on disk (written atomically, so "present" means "finished")
and was made from the same inputs (source and the configuration keys the stage depends on,
recorded in ``dest/stages.json``) is not recomputed; one made from other inputs is redone.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ._parse import parse_choice, parse_chunks, parse_flag, parse_in_range, parse_path, parse_positive_float, parse_region, parse_shells_spec
from ._version import environment, utc_now, version
from .config import CLASSICAL_MODELS, WHERE_KEYS, RunConfig
from .errors import BigsegError, ConfigError, InputError, OutputInUseError, OutputNotWritableError, SourceNotFoundError
from .io._fov import fill_outside_like_inside, fov_centre
from .io._ingest import natural_key, tiff_slices
from .io._volume import crop_box, is_series, phase_named, placed_like, same_place
from .runtime._files import SYSTEM_FILES, folded, json_text, replacing, write_text
from .runtime._cluster import computed_on
from .runtime._lock import held
from .runtime._progress import bars
from .runtime._manifest import key_digest, path_stamp
from .runtime._signals import stops_not_lost

__all__ = ["Pipeline", "Result", "run_state"]


@dataclass
class Result:
    """What a pipeline run produced.

    Attributes
    ----------
    image : path of the OME-Zarr image (labels are in ``image/labels/``)
    labels : path of the segmentation label image
    metrics : xarray.Dataset (volume fractions, interfaces, and scores when a truth was given)
    figures : paths of the PNG figures
    timings : seconds per stage
    particles : pandas.DataFrame, one row per particle (``config.measure.particles``), also
        written to ``particles.csv``; None when not asked for
    """

    image: str
    labels: str
    metrics: xr.Dataset
    figures: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    particles: Any = None

    def __repr__(self) -> str:
        """A run at a glance (the metrics and the particle table are in their attributes)."""
        m = self.metrics.isel(t=-1) if "t" in self.metrics.dims else self.metrics
        when = f" (last of {self.metrics.sizes['t']} scans)" if "t" in self.metrics.dims else ""
        lines = [f"Result{when}", f"  image      {self.image}", f"  labels     {self.labels}"]
        if "volume_fraction" in m:
            lines.append("  fractions  " + ", ".join(f"{p} {float(v):.3f}" for p, v in
                                                     zip(m.phase.values, m.volume_fraction.values)))
        if "iou" in m:
            lines.append("  IoU        " + ", ".join(f"{p} {float(v):.3f}" for p, v in zip(m.phase.values, m.iou.values)))
        if self.particles is not None:
            lines.append(f"  particles  {len(self.particles)} rows (.particles)")
        lines.append(f"  figures    {len(self.figures)}; metrics: .metrics ({', '.join(list(self.metrics.data_vars)[:4])}"
                     f"{', ...' if len(self.metrics.data_vars) > 4 else ''})")
        if self.timings:
            lines.append("  timings    " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))
        return "\n".join(lines)


class Pipeline:
    """Run the whole segmentation on a volume, with parameters from a :class:`RunConfig`.

    ``Pipeline(**overrides)`` takes the configuration's keys (a section as a mapping of the keys
    it changes), over the YAML of ``$BIGSEG_CONFIG`` and ``BIGSEG_*`` variables when set;
    ``Pipeline.from_yaml(path)`` a run configuration file; ``Pipeline(config, **overrides)``
    ``config``, a :class:`RunConfig` (or a mapping of keys, the rest default), with the overrides
    put over it. :meth:`run`
    segments and measures a scan into a folder; :meth:`watch` every scan that arrives in a folder. For example::

        pipe = Pipeline(chunks=96, predict={"model": "default", "overlap": 0.5},
                        measure={"particles": True, "tortuosity": "z"})
        result = pipe.run("scan.ome.zarr", "runs/scan")

    The keys and their defaults (:data:`bigseg.config.DEFAULTS`; the README's "Configuration"
    says what each does):
    """

    if __doc__:  # (python -OO strips it) the keys as they stand, never a second list to keep in step
        from .config import DEFAULTS as _DEFAULTS

        __doc__ += "".join(f"\n    {key}: " + (", ".join(f"{k}={v!r}" for k, v in value.items())
                                               if isinstance(value, dict) else repr(value))
                           for key, value in _DEFAULTS.items()) + "\n"
        del _DEFAULTS

    def __init__(self, config: RunConfig | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        if config is None:
            self.config = RunConfig.load(**overrides)
        elif isinstance(config, (RunConfig, Mapping)):  # (overrides given with a config were dropped unsaid)
            self.config = (config if isinstance(config, RunConfig) else RunConfig(config)).updated(**overrides)
        else:
            raise ConfigError(f"Expected `config` to be a RunConfig, a mapping of configuration keys or None. "
                              f"Got {type(config).__name__} {config!r:.80} instead.")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> Pipeline:
        return cls(RunConfig.from_yaml(path, **overrides))

    def __repr__(self) -> str:
        """What differs from the defaults, as it would be given: ``Pipeline(predict={'model': 'threshold'})``."""
        from .config import DEFAULTS

        def changed(values: dict, defaults: dict) -> dict:
            out = {}
            for key, value in values.items():
                if isinstance(value, dict) and isinstance(defaults.get(key), dict):
                    value = changed(value, defaults[key])
                    if value:
                        out[key] = value
                elif key not in defaults or value != defaults[key]:
                    out[key] = value
            return out

        return "Pipeline(" + ", ".join(f"{k}={v!r}" for k, v in changed(self.config.to_dict(), DEFAULTS).items()) + ")"

    # -- stages ---------------------------------------------------------------------------------
    def _ingest(self, source: Any, image: Path, resume: bool, key: str) -> xr.DataArray:
        """The source written to ``image`` (kept when ``resume`` and it exists); resumable block
        by block under ``key`` if the write is interrupted."""
        from .io import ingest, open_volume, save_volume

        if resume and image.exists():
            return open_volume(image)
        cfg = self.config
        if isinstance(source, (str, os.PathLike, list, tuple)):  # a list: the scans of an operando series
            return ingest(source, image, chunks=cfg.chunks, voxel_size=cfg.voxel_size, unit=cfg.unit,
                          crop=cfg.crop, levels=cfg.levels, overwrite=True, resume_key=key,
                          times=cfg.times, time_unit=cfg.time_unit)
        if cfg.crop is not None or cfg.voxel_size is not None or cfg.unit is not None:
            from .io import as_volume
            from .io._ingest import calibrated

            source = as_volume(source, name="source", ndim=(3, 4))
            if cfg.voxel_size is not None or cfg.unit is not None:  # as ingest calibrates a path
                source = calibrated(source, voxel_size=cfg.voxel_size, unit=cfg.unit)
            if cfg.crop is not None:  # (the box keeps its place, see io.origin_of)
                source = crop_box(source, cfg.crop)[0]
        save_volume(source, image, chunks=cfg.chunks, levels=cfg.levels, overwrite=True, resume_key=key)
        return open_volume(image)

    def _voxel_size_assumed(self, source: Any, vol: xr.DataArray) -> bool:
        """Whether ``vol``'s voxels are 1 unit only because the source (a file; a series: its first
        scan) states no voxel size and none was given: every length, area and volume then counts
        voxels under the unit's name."""
        if self.config.voxel_size is not None or tuple(float(v) for v in vol.attrs.get("voxel_size", ())) != (1.0,) * 3:
            return False
        first = source[0] if isinstance(source, (list, tuple)) and source else source
        if not isinstance(first, (str, os.PathLike)):
            return False
        from .io._ingest import _states_none

        return _states_none(first)

    def _stage_keys(self, source: Any) -> dict[str, str]:
        """A fingerprint of what the ingest and the segmentation are made from (source and the
        configuration keys each depends on)."""
        from dask.base import tokenize

        cfg = self.config
        # the source as it stands (resolved path, time written, size): one replaced at the same
        # path, or the same relative path from another folder, is another source
        src = (path_stamp(source) if isinstance(source, (str, os.PathLike))
               else [path_stamp(x) for x in source] if isinstance(source, (list, tuple)) else tokenize(source))
        ingest = json.dumps({"source": src, "chunks": cfg.chunks, "voxel_size": cfg.voxel_size, "unit": cfg.unit,
                             "crop": cfg.crop, "align": cfg.filters["align"],
                             **({"levels": cfg.levels} if cfg.levels != 1 else {}),
                             **({"times": list(cfg.times)} if cfg.times is not None else {}),
                             **({"time_unit": cfg.time_unit} if cfg.time_unit is not None else {})},
                            sort_keys=True, default=str)
        predict = {k: v for k, v in cfg.predict.items() if k != "temporal" or v}  # keys of runs made before it
        weights = getattr(self, "_model_key", None)  # a model's weights (set by _check_model; none: a baseline's)
        segment = json.dumps({"ingest": ingest, "filters": cfg.filters, "predict": predict,
                              **({"weights": weights} if weights is not None else {}),
                              **({"fov": cfg.fov, "fov_margin": cfg.fov_margin} if cfg.fov is not None else {})},
                             sort_keys=True, default=str)
        return {"ingest": ingest, "segment": segment}

    def _cropped_truth(self, truth: xr.DataArray | None, ingested: xr.DataArray) -> xr.DataArray | None:
        """With ``crop``, a truth on the source's whole grid is cut to the same box; one of the box's
        shape that states no place (its first voxel at 0: an array, a file cut elsewhere) is put
        there, as it is taken to be."""
        crop = self.config.crop
        if truth is None or crop is None:
            return truth
        if tuple(truth.shape[-3:]) != tuple(ingested.shape[-3:]):
            return crop_box(truth, crop)[0]
        return placed_like(truth, ingested)

    def _aligned(self, source: Any, out: Path, resume: bool, key: str) -> tuple[xr.DataArray, list]:
        """The scans ingested as they are into ``out/raw.ome.zarr``, then moved onto the first
        (``filters.align``) into ``out/image.ome.zarr``; the shifts go to ``out/alignment.json``."""
        from . import filters
        from .io import open_volume, save_volume

        image, record = out / "image.ome.zarr", out / "alignment.json"
        if resume and image.exists() and record.exists():
            return open_volume(image), json.loads(record.read_text())["shifts"]
        raw = self._ingest(source, out / "raw.ome.zarr", resume, key)
        if not is_series(raw):
            raise InputError(f"Expected a (t, z, y, x) series with `filters.align: true`. Got dims {raw.dims} instead.")
        aligned = filters.align(raw, progress=True)
        save_volume(aligned, image, chunks=self.config.chunks, levels=self.config.levels, overwrite=True,
                    resume_key=json.dumps({"aligned": key, "shifts": aligned.attrs["shifts"]}, default=str))
        shifts = aligned.attrs["shifts"]
        write_text(record, json.dumps({
            "reference": 0, "shifts": shifts, "drift": [[-v + 0.0 for v in s] for s in shifts],
            "crop": aligned.attrs["crop"],
            # which way: the drift and the correction differ in sign, and a reader of this file cannot tell which
            "meaning": "(z, y, x) voxels of scan t: `drift` its offset from scan `reference`, `shifts` the move that "
                       "undid it (aligned(x) = scan(x - shift)); `crop` the [start, stop) box every scan covers"},
            indent=1))
        return open_volume(image), aligned.attrs["shifts"]

    def _filter(self, vol: xr.DataArray) -> xr.DataArray:
        for _, func, kwargs in _filter_calls(self.config):
            vol = func(vol, **kwargs)
        return vol

    @contextlib.contextmanager
    def _segmented(self, vol: xr.DataArray, fov: xr.DataArray | None, out: Path, key: str) -> Iterator[xr.Dataset]:
        """The (lazy) ``labels`` of ``vol`` (and its ``probabilities`` with ``predict.probabilities``);
        with ``predict.temporal`` each scan's probabilities are first stored under ``out``
        (removed after; kept for a resume, named by the stage ``key``, if the run is interrupted)
        and averaged over the time window from there."""
        p = dict(self.config.predict)
        model = p.pop("model")
        temporal = p.pop("temporal", 0)
        mask = None if fov is None else fov.values
        if model in CLASSICAL_MODELS:
            from . import baselines

            yield xr.Dataset({"labels": getattr(baselines, model)(vol, fov=mask)})
            return
        from .infer import segment

        model = self._model_in_use()
        normalize = bool(self.config.filters["normalize"])
        if not temporal:
            yield segment(vol, model, normalize=normalize, fov=mask, **p)
            return
        from .infer._temporal import warn_if_misaligned, windowed

        if not self.config.filters["align"]:
            warn_if_misaligned(vol, temporal)
        keep, p["probabilities"] = p["probabilities"], True
        with windowed(segment(vol, model, normalize=normalize, fov=mask, **p), temporal, out, key=key,
                      probabilities=keep) as ds:
            yield ds

    def _fov(self, vol: xr.DataArray, out: Path, title: str) -> xr.DataArray | None:
        """The field of view (``fov``) of the ingested image, drawn over its middle slice into
        ``out/fov.png`` (``title``: the run's name, as on its other figures); None without ``fov``."""
        if self.config.fov is None:
            return None
        from .io import fov_mask
        from .report import fov_figure

        mask = fov_mask(vol, self.config.fov, margin=self.config.fov_margin, progress=True)
        if not mask.attrs["found"]:
            warnings.warn(f"fov {self.config.fov!r}: no constant fill found around the sample; the whole cross-section "
                          "is used (give the circle, e.g. fov: cylinder or 'cy,cx,r')", UserWarning, stacklevel=2)
        fov_figure(vol, mask, path=out / "fov.png", title=f"{title}: field of view ({self.config.fov})")
        return mask

    # -- run --------------------------------------------------------------------------------------
    def run(
        self,
        source: Any,
        dest: str | os.PathLike,
        *,
        client: Any = None,
        resume: bool = True,
        truth: xr.DataArray | None = None,
        progress: bool = True,
    ) -> Result:
        """Segment ``source`` (a path any reader accepts, or an array) into ``dest``.

        ``dest`` is a folder: ``dest/image.ome.zarr`` (with ``labels/segmentation``),
        ``dest/metrics.nc``, ``dest/metrics.json``, ``dest/particles.csv``, ``dest/run.json``
        (source, configuration, where it computed, timings), figures and ``dest/report.html`` (all of it on one
        page). A (t, z, y, x) series is segmented scan by scan (each normalised on its own) and
        also gets ``dest/evolution.csv`` and ``evolution.png`` (:func:`bigseg.measure.evolution`:
        fractions, interfaces, scores and particle statistics per time step) and
        ``slices_over_time.png`` (the central slice at each step). With ``filters.align: true``
        the scans are first ingested as they are into ``dest/raw.ome.zarr`` and moved onto the
        first one (:func:`bigseg.filters.align`, shifts in ``dest/alignment.json``);
        ``image.ome.zarr`` holds the aligned series (cropped to the region all scans cover) and
        a ``truth`` series on the raw scans' grid is moved the same way. With
        ``measure.particle_labels: true`` the particles' instance labels go to
        ``image.ome.zarr/labels/particles`` (value = ``id`` of ``particles.csv``; for a series
        its ``track``), e.g. to look at the split in napari.

        Parameters
        ----------
        source : a path any reader accepts, a list of them (the scans of a series, see
            :func:`bigseg.ingest`) or an array: a (z, y, x) volume or a (t, z, y, x) series.
        dest : the output folder (made if missing; one run at a time into it).
        client : a ``distributed.Client`` to run on, or a cluster spec for :func:`bigseg.connect`
            (``"local"``, an address, ``"slurm"``, e.g. ``config.cluster``; ``"threads"``: the
            current scheduler, as None) started for this run and closed after; default None: the
            current scheduler (an active client, else threads in this process).
        resume : True or False (default True): keep each stage already complete in ``dest`` that
            was made from the same inputs (recorded in ``dest/stages.json``); False recomputes
            every stage and removes what an interrupted run left.
        truth : an integer label volume on the source's grid (whole, or as cropped by ``crop``) to
            score against: adds IoU/Dice scores to the metrics; default None.
        progress : progress bars on stderr (every stage's; default on).

        Returns
        -------
        :class:`Result`: the paths written, the metrics, the particle table and the timings.

        Examples
        --------
        A simulated scan through the whole pipeline (multi-Otsu here; the default is the bundled
        model), into a temporary folder:

        >>> import os, shutil, tempfile
        >>> import bigseg
        >>> from bigseg import synth
        >>> tmp = tempfile.mkdtemp()
        >>> truth = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
        >>> pipe = bigseg.Pipeline(chunks=16, predict={"model": "threshold"})
        >>> res = pipe.run(synth.xct(truth, seed=0), os.path.join(tmp, "run"), truth=truth, progress=False)
        >>> os.path.relpath(res.labels, tmp).split(os.sep)
        ['run', 'image.ome.zarr', 'labels', 'segmentation']
        >>> res.metrics.phase.values.tolist(), "iou" in res.metrics, len(res.particles) > 0
        (['pore', 'cbd', 'active'], True, True)
        >>> sorted(f for f in os.listdir(os.path.join(tmp, "run")) if not f.endswith(".png"))
        ['image.ome.zarr', 'metrics.json', 'metrics.nc', 'particles.csv', 'report.html', 'run.json', 'stages.json']
        >>> shutil.rmtree(tmp)
        """
        parse_path("dest", dest)
        resume = parse_flag("resume", resume)  # ("no" was truthy: the earlier stages kept)
        if isinstance(source, (list, tuple)) and not source:  # (an IndexError from inside)
            raise InputError(f"Expected `source` to be a volume, a path or a list of scans. Got {source!r} instead.")
        self._check_model()  # before any work
        shape = _source_shape(source)
        if shape is not None and len(shape) not in (3, 4):
            raise InputError(f"Expected `source` to be a (z, y, x) volume or a (t, z, y, x) series. "
                             f"Got shape {shape} instead.")
        if not isinstance(source, (str, os.PathLike, list, tuple)):  # an array's dtype and chunks, now and as
            from .io import as_volume  # `source` (were save_volume's `data`, once `dest` was held and the cluster up)

            as_volume(source, name="source", ndim=(3, 4))
        self._check_temporal(shape)
        self._check_crop_and_truth(shape, truth)
        self._check_times(source)
        _check_dest(source, dest)
        if truth is not None:  # its values (one pass), not only its shape: before the hours of segmentation
            from .measure._metrics import check_labels

            check_labels(truth, name="truth", progress=progress)
        made = not Path(dest).exists()
        try:  # one run at a time into dest (held before a cluster is started for it)
            with bars(progress), held(dest, argument="dest", inside=True, resumes=True), \
                    _client_context(client, self.config), self._model_checked_once():
                return self._run(source, dest, resume=resume, truth=truth)
        except BaseException:
            if made and Path(dest).is_dir() and _holds_no_stage(Path(dest)):  # e.g. a cluster that cannot start
                (Path(dest) / "stages.json").unlink(missing_ok=True)
                Path(dest).rmdir()
            elif Path(dest).is_dir():  # (a report of this run too: written just before run.json, which marks it done)
                _flag_earlier_report(Path(dest))
            raise
        finally:
            self._loaded_model = None  # (not held between runs: the next run loads the checkpoint as it is then)

    def _check_times(self, source: Any) -> None:
        """``times``/``time_unit`` name what paths of scans do not say; an array says its own."""
        cfg = self.config
        if (cfg.times is not None or cfg.time_unit is not None) and not isinstance(source, (str, os.PathLike, list, tuple)):
            raise ConfigError(f"Expected `times` and `time_unit` only for paths of scans (an array's t coordinate "
                              f"holds its times, its attrs['units'] their unit). Got times={cfg.times!r}, "
                              f"time_unit={cfg.time_unit!r} with an array.")

    def _check_temporal(self, shape: tuple[int, ...] | None) -> None:
        """``predict.temporal`` needs a series: refused for a single scan before any work."""
        temporal = self.config.predict.get("temporal")
        if temporal and shape is not None and len(shape) < 4:
            raise ConfigError(f"Expected `predict.temporal` 0 for a single scan (it averages the probabilities of "
                              f"neighbouring scans of a series). Got {temporal!r} instead.")

    def _check_crop_and_truth(self, shape: tuple[int, ...] | None, truth: Any) -> None:
        """``crop`` inside the source and ``truth`` on the source's grid (whole or cropped),
        before any work (with ``filters.align`` the grid is known only after the alignment)."""
        if isinstance(truth, (str, bytes, os.PathLike)):  # (read as an array of text: "a grey image?")
            raise InputError(f"Expected `truth` to be a label array, e.g. bigseg.open_volume(path, label='truth') "
                             f"(a path is for bigseg run --truth). Got the path {os.fsdecode(truth)!r} instead.")
        if truth is not None:  # labels to score against: whole numbers (a grey image given by mistake)
            dt = np.dtype(truth.dtype) if hasattr(truth, "dtype") else np.asarray(truth).dtype
            if not (np.issubdtype(dt, np.integer) or dt == np.bool_):
                raise InputError(f"Expected `truth` to hold integer labels (e.g. uint8). Got dtype {dt} instead: "
                                 "a grey image? Give the reference label image.")
        model = getattr(self, "_model_phases", None)
        named = None
        if truth is not None and model is not None:  # the names the scores will match by (a mask's too)
            from .measure._inputs import as_labels
            from .measure._scores import _stated_phases, same_phases

            named = _stated_phases(as_labels(truth, name="truth"))
        if named is not None and same_phases(named, model) is None:
            # scored by phase name (bigseg.measure.scores): refused now, not after the segmentation
            raise InputError(f"Expected `truth` to name the phases the segmentation will have, {model} (in any "
                             f"order: matched by name). Got {list(named)} instead.")
        if shape is None:
            return
        grid = tuple(shape)
        if self.config.crop is not None:
            box = parse_region("crop", self.config.crop, grid[-3:])
            grid = grid[:-3] + tuple(len(range(*b.indices(n))) for b, n in zip(box, grid[-3:]))
        self._check_measure_grid(grid)
        if truth is None or self.config.filters["align"]:
            return
        if tuple(np.shape(truth)) not in (tuple(shape), grid):
            raise InputError(f"Expected `truth` to have the source's shape {grid}"
                             f"{f' (or {tuple(shape)} before the crop)' if grid != tuple(shape) else ''}. "
                             f"Got {tuple(np.shape(truth))} instead.")

    def _check_measure_grid(self, grid: tuple[int, ...]) -> None:
        """The measurements asked for that cannot work on a scan of this (cropped) shape, e.g. a
        few slices thick: refused before any work, not after the segmentation. (With
        ``filters.align`` the grid shrinks to what every scan covers: checked after.)"""
        zyx, m = tuple(int(n) for n in grid[-3:]), self.config.measure
        needs = [("measure.tortuosity", m["tortuosity"], 3, "a diffusion solve"),
                 ("measure.rve", m["rve"], 8, "cubes of 4 voxels and more, at most half the shortest axis"),
                 ("measure.interfaces", m["interfaces"] if m["interfaces"] == "marching_cubes" else None, 2,
                  "a marching-cubes mesh")]
        for key, value, least, what in needs:
            if value and min(zyx) < least:
                raise ConfigError(f"Expected `{key}` off (null/false{', crofton or faces' if key == 'measure.interfaces' else ''}) "
                                  f"for a scan of shape {zyx}: {what} needs at least {least} voxels along every "
                                  f"axis. Got {value!r} instead.")

    def _check_memory(self, source: Any) -> None:
        """Every stage's memory budget (ingest, the filters, predict), on the workers this run
        computes on, before any stage writes: a later stage that could not fit is refused now, not
        after the ingest and a pass over the filtered data (the stages' own checks, on a lazy
        stand-in of the shape, chunks and dtype each stage will be given; nothing is computed).
        The chunks a refusal suggests are said as the run's own setting (:func:`run_chunks`)."""
        from .runtime._budget import run_chunks

        with run_chunks():
            self._check_stage_memory(source)

    def _check_stage_memory(self, source: Any) -> None:
        import dask.array as da

        from .infer._predict import check_memory_for
        from .io._ingest import _check_memory as check_ingest
        from .io._ingest import read_source, stored_chunks
        from .io._volume import make_volume

        cfg = self.config
        try:
            first = source[0] if isinstance(source, (list, tuple)) else source
            ref = read_source(first) if isinstance(first, (str, os.PathLike)) else first
            grid, dtype = tuple(int(n) for n in np.shape(ref))[-3:], np.dtype(ref.dtype)
        except (BigsegError, AttributeError, TypeError, IndexError):
            return  # the ingest says what is wrong with the source
        if len(grid) < 3 or dtype.kind not in "biuf":
            return
        if cfg.crop is not None:
            grid = tuple(len(range(*b.indices(n))) for b, n in zip(parse_region("crop", cfg.crop, grid), grid))
        chunks = parse_chunks(cfg.chunks, 3)
        # the ingest reads the source in its stored chunks (a zarr store's, a chunked HDF5 dataset's), else in the run's
        stored = stored_chunks(ref, (1,) * (len(np.shape(ref)) - 3) + chunks)[-3:]
        check_ingest(make_volume(da.zeros(grid, dtype=dtype, chunks=tuple(min(c, n) for c, n in zip(stored, grid)))),
                     chunks)
        vol = make_volume(da.zeros(grid, dtype=dtype, chunks=tuple(min(c, n) for c, n in zip(chunks, grid))))
        vol = self._filter(vol)
        model = cfg.predict["model"]
        if model in CLASSICAL_MODELS:
            return
        if cfg.filters["normalize"]:  # filters.normalize: float32 in [0, 1]
            vol = vol.astype(np.float32)
        check_memory_for(vol, self._model_in_use(), **{k: v for k, v in cfg.predict.items() if k != "model"})

    def _check_model(self) -> None:
        """``predict.model`` loads (a checkpoint is read now, never executed) and has the phases
        ``measure`` names (``phase`` for particles, ``shells``, ``pore`` for tortuosity), before
        any work."""
        from .io._volume import DEFAULT_PHASES
        from .errors import ModelError

        model = self.config.predict["model"]
        self._model_key = self._model_training = self._loaded_model = None
        if model in CLASSICAL_MODELS:
            phases = list(DEFAULT_PHASES)
        elif isinstance(model, (str, os.PathLike)):
            from .models import load

            if model != "default" and not Path(model).is_file():
                raise ConfigError(f"Expected `predict.model` to be 'default', 'threshold', 'kmeans', 'watershed' or "
                                  f"an existing checkpoint file. Got {str(model)!r} instead.")
            try:
                loaded = load(model)
            except ModelError as exc:
                raise ConfigError(f"Expected `predict.model` to be a bigseg checkpoint. Got {str(model)!r}: {exc}") from None
            phases = list(loaded.phases)
            self._loaded_model = loaded  # the very weights hashed below predict (loaded and checked once a run)
            # what the segmentation is made from: the checkpoint's weights as they are now (one
            # retrained into the same file is another model), not only its path
            self._model_key = loaded.checkpoint_key()
            self._model_training = loaded.training_summary()
        else:
            phases = list(getattr(model, "phases", None) or DEFAULT_PHASES)
            self._model_key = _module_key(model)
            summary = getattr(model, "training_summary", None)  # a bigseg Model given as an object
            self._model_training = summary() if callable(summary) else None
        self._model_phases = phases
        m = self.config.measure
        wanted = [("measure.phase", m["phase"])] if m["particles"] else []
        if m["shells"]:
            around, of, _ = parse_shells_spec("measure.shells", m["shells"])
            wanted += [("measure.shells", around), ("measure.shells", of)]
        if m["tortuosity"]:
            wanted.append(("measure.tortuosity_phase", m["tortuosity_phase"]))
        wanted += [("measure.thickness", p) for p in m["thickness"] or []]
        for key, name in wanted:
            if phase_named(phases, name) is None:  # (in other case too: "Pore", as measure takes it)
                said = repr(str(model)) if isinstance(model, (str, os.PathLike)) else \
                    f"given ({getattr(model, 'arch', type(model).__name__)})"  # (not its repr: lines)
                raise ConfigError(f"Expected `{key}` to name a phase of the model {said}: one of {phases}. "
                                  f"Got {name!r} instead.")

    def _model_in_use(self) -> Any:
        """``predict.model`` as the run predicts with it: a name or path as loaded by
        :meth:`_check_model` (whose weights the run's ``model_key`` hashes), else as configured."""
        loaded = getattr(self, "_loaded_model", None)
        return loaded if loaded is not None else self.config.predict["model"]

    def _model_checked_once(self) -> Any:
        """Within it the model is checked (a forward pass of a zero patch, 0.4-0.8 s for the default
        model on a CPU, its first there) once: by the memory check before any stage, not again
        by the prediction (:func:`bigseg.infer._model.resolved_once`). Nothing for a classical
        segmenter (no torch import)."""
        if self.config.predict["model"] in CLASSICAL_MODELS:
            return contextlib.nullcontext()
        from .infer._model import resolved_once

        return resolved_once()

    def watch(self, inbox: str | os.PathLike, out: str | os.PathLike, *, interval: float = 30.0,
              settle: float | None = None, once: bool = False, clock: str = "order", client: Any = None,
              progress: bool = True) -> dict[str, dict[str, Any]]:
        """Process scans as they appear in ``inbox``: each into ``out/<scan name>``.

        A scan is a TIFF file or a folder of TIFF slices, an HDF5 (``.h5``, ``.hdf5``, ``.nxs``),
        ``.npy`` or zarr/OME-Zarr; it is taken once its size and modification time have not
        changed for ``settle`` seconds (a beamline still writing it is left alone). Scans of one
        name (``x.npy`` and ``x.tif``: both would be ``out/x``), and a scan named as the watch's own outputs
        (``evolution.png.npy``: ``out/evolution.png``), are left alone, with a message; a scan that is or
        holds a FIFO, a device or a socket fails unread (its read could wait, or go on, for ever). Each scan runs
        :meth:`run` (resuming a scan whose run was interrupted; starting again for a scan that
        was replaced since it was done or failed; processing again, resumed, a scan done or failed
        with other settings: a new model redoes its segmentation). ``out/watch.json`` records
        every scan's state (``done`` with its timings, or ``failed`` with the error); a failed
        scan is retried only when its files change, and one scan's failure never stops the watch;
        but a scan whose output could not be written (a full disk, a folder made read-only) is
        tried again, resuming, two looks later, then four, eight, ... (at most every
        10 minutes, or each look if ``interval`` is longer), and at once by a
        watch started again or ``once``.
        Once two scans are done, ``out/evolution.csv`` and ``out/evolution.png`` follow them as
        the steps of one experiment (:func:`bigseg.measure.evolution`): with ``clock="order"`` in
        name order with numbers as numbers (scan_2 before scan_10), ``t`` their step; with
        ``clock="mtime"`` in the order their files were last written, ``t`` the minutes since the
        first one was (a detector writing each scan as it is taken: its time in the experiment).
        A scan holding a series (t, z, y, x) is left out of it (its run has its own); a done scan
        whose folder in ``out`` was removed is processed again.

        Parameters
        ----------
        interval : seconds between looks at ``inbox``.
        settle : seconds a scan must stay unchanged before it is taken; default 10, with ``once``
            0 (everything there now).
        once : process what is in ``inbox`` now and return; with ``settle``, a scan changed less
            than that many seconds ago (perhaps still being written) is left for the next watch,
            with a message.
        clock : ``"order"`` or ``"mtime"``: the scans' times in ``evolution.csv`` (see above).
        client : where the scans compute, as for :meth:`run`; one cluster, started once, for the
            whole watch.
        progress : progress bars on stderr (off: only the watch's lines).

        Returns
        -------
        The ledger: scan name -> state (also ``out/watch.json``).
        """
        interval = parse_positive_float("interval", interval)
        settle = (0.0 if once else 10.0) if settle is None else parse_in_range("settle", settle, 0.0, float("inf"))
        clock = parse_choice("clock", clock, ("order", "mtime"))
        if self.config.predict.get("temporal"):
            raise ConfigError(f"Expected `predict.temporal` 0 for watch (each scan is segmented alone). "
                              f"Got {self.config.predict['temporal']!r} instead.")
        if self.config.times is not None or self.config.time_unit is not None:  # each scan would be refused
            raise ConfigError(f"Expected `times` and `time_unit` null for watch (each scan is one volume; their "
                              f"times in evolution.csv: clock='mtime', --clock mtime). Got times="
                              f"{self.config.times!r}, time_unit={self.config.time_unit!r}.")
        inbox, out = parse_path("inbox", inbox), parse_path("out", out)
        if not inbox.is_dir():
            raise InputError(f"Expected `inbox` to be an existing folder. Got {str(inbox)!r} instead.")
        if same_place(out.resolve(), inbox.resolve()):  # each scan's results among the scans
            raise InputError(f"Expected `out` to be another folder than `inbox`: the results would be written among "
                             f"the scans (a folder of TIFF slices and its results would be one folder). Got "
                             f"{str(out)!r} for the inbox {str(inbox)!r}.")
        self._check_model()  # a configuration no scan could run with: refused now, not once per scan
        _check_folder(out, "out", _WATCH_FILES, "of an earlier watch", runs_inside=True)
        out.mkdir(parents=True, exist_ok=True)
        ledger_path = out / "watch.json"
        ledger: dict[str, dict[str, Any]] = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
        how = "once: the scans there now" if once else f"every {interval:g} s; Ctrl-C stops"
        print(f"[watch] {inbox} -> {out} ({how})", file=sys.stderr, flush=True)
        # one watch at a time into out (a run into one of its scans' folders is refused too, by that run)
        # one cluster; a Ctrl-C that lands in a finalizer between scans still stops it (stops_not_lost)
        with bars(progress), held(out, argument="out", inside=True, resumes=True), _client_context(client, self.config), \
                stops_not_lost():
            token = _IN_WATCH.set(True)  # each scan's run computes where the watch does (said above, once)
            try:
                return self._watch(inbox, out, ledger, interval, settle, once, clock)
            finally:
                _IN_WATCH.reset(token)

    def _watch(self, inbox: Path, out: Path, ledger: dict[str, dict[str, Any]], interval: float, settle: float,
               once: bool, clock: str) -> dict[str, dict[str, Any]]:
        ledger_path = out / "watch.json"
        first_seen: dict[str, tuple[tuple[int, float], float]] = {}
        said: set[tuple[str, ...]] = set()  # what was said of clashing or unsettled scans (once each)
        # what the results are made from (not where they run: cluster, workers, memory, SLURM)
        made_from = {k: v for k, v in self.config.values.items() if k not in WHERE_KEYS}
        if getattr(self, "_model_key", None) is not None:  # the model's weights (a checkpoint retrained in place)
            made_from["weights"] = self._model_key
        settings = key_digest(json.dumps(made_from, sort_keys=True, default=str))
        read: dict[Any, Any] = {}  # the done scans' metrics and particle rows, each read once while unchanged
        # scans whose output could not be written (a full disk): how often in a row, and when next tried; the
        # wait doubles from two looks to at most _RETRY_WAIT_MOST seconds (a watch started again tries at once)
        waits: dict[str, tuple[int, float]] = {}

        def evolution() -> None:  # a summary over the scans: never what stops the watch
            try:  # (e.g. a done scan's metrics removed)
                _watch_evolution(out, ledger, clock, read)
            except Exception as exc:
                print(f"[watch] evolution.csv not written: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

        if any(st.get("state") == "done" for st in ledger.values()):
            evolution()  # the scans of an earlier watch by this watch's clock (--clock mtime after name order)
        while True:
            now = time.time()
            for name, paths in sorted(_scans(inbox).items(), key=lambda item: natural_key(item[0])):
                if len(paths) > 1:  # x.npy and x.tif would both be out/x: neither is guessed at
                    if (name, *map(str, paths)) not in said:
                        said.add((name, *map(str, paths)))
                        print(f"[watch] {name}: {', '.join(p.name for p in paths)} would all write to "
                              f"{out / name}: left alone; rename all but one", file=sys.stderr, flush=True)
                    continue
                if folded(name) in _WATCH_OUTPUT_NAMES:  # out/evolution.csv a run folder: replaced by the watch's own
                    if (name,) not in said:
                        said.add((name,))
                        print(f"[watch] {name}: {paths[0].name} would write to {out / name}, the watch's own "
                              f"{name}: left alone; rename it", file=sys.stderr, flush=True)
                    continue
                path = paths[0]
                sig = _signature(path)
                if sig is None:  # gone since the listing (renamed by its writer, removed): not a scan now
                    continue
                state = ledger.get(name)
                same_settings = state is None or state.get("settings", settings) == settings  # (older ledgers: kept)
                # a done scan whose run folder was removed (or left unfinished) since is done again
                kept = state is None or state.get("state") != "done" or run_state(out / name)["state"] == "done"
                if state is not None and state.get("signature") == list(sig) and same_settings and kept and \
                        (not state.get("retry") or now < waits.get(name, (0, now))[1]):
                    continue  # done, or failed and unchanged (or failing for want of room, tried again later)
                seen = first_seen.get(name)
                if seen is None or seen[0] != sig:
                    first_seen[name] = (sig, now)
                    seen = first_seen[name]
                if once and settle > 0 and now - sig[1] < settle:  # changed a moment ago: perhaps being written
                    if (name, str(sig)) not in said:
                        said.add((name, str(sig)))
                        print(f"[watch] {name}: changed {now - sig[1]:.0f} s ago (less than settle, {settle:g} s): "
                              "left for the next watch (settle 0 takes it now)", file=sys.stderr, flush=True)
                    continue
                # a modification time ahead of this clock (a file server's) says nothing of when it changed:
                # the same files look after look do
                if not once and (now - seen[1] < settle or 0 <= now - sig[1] < settle):
                    continue  # still being written
                if state is None:  # a done scan renamed (scan_10 -> scan_010): one step, not two in evolution.csv
                    for old, st in ledger.items():
                        if st.get("state") == "done" and st.get("signature") == list(sig) and \
                                not Path(st.get("source", "")).exists():
                            st.update(state="renamed", renamed_to=name)
                            print(f"[watch] {name}: the scan {old} renamed (same bytes and time, {old} gone): "
                                  f"{out / old} is left out of evolution.csv", file=sys.stderr, flush=True)
                print(f"[watch] {name}: processing" + ("" if same_settings else " again: the settings changed since "
                                                        "(what they leave as it was is kept)"), file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                try:
                    _refuse_special_files(path)
                    # a scan seen before with other files was replaced: start again, else resume
                    res = self.run(path, out / name, resume=state is None or state.get("signature") == list(sig))
                    ledger[name] = {"state": "done", "signature": list(sig), "settings": settings, "source": os.path.abspath(path),
                                    "report": str(out / name / "report.html"),
                                    "seconds": round(time.perf_counter() - t0, 2),
                                    "volume_fraction": _fractions(res.metrics)}
                    print(f"[watch] {name}: done in {ledger[name]['seconds']} s -> {out / name / 'report.html'}",
                          file=sys.stderr, flush=True)
                    waits.pop(name, None)
                except OutputInUseError as exc:  # another run writes its folder now (one started by hand): no failure
                    # of the scan's, which would be retried only once its files change; taken up at a later look
                    print(f"[watch] {name}: left for the next look: {exc}", file=sys.stderr, flush=True)
                except Exception as exc:  # one bad scan must not stop a beamline's watch
                    ledger[name] = {"state": "failed", "signature": list(sig), "settings": settings,
                                    "source": os.path.abspath(path),
                                    "error": f"{type(exc).__name__}: {exc}",
                                    # its output could not be written (a disk full, a folder made read-only):
                                    # no fault of the scan's, tried again at each look, resuming, until done
                                    **({"retry": True} if isinstance(exc, OutputNotWritableError) else {})}
                    again = ""
                    if not ledger[name].get("retry"):  # failed for another reason: a later want of room waits anew
                        waits.pop(name, None)
                    elif not once:
                        times = waits.get(name, (0, now))[0] + 1
                        wait = min(interval * 2 ** min(times, 40), max(interval, _RETRY_WAIT_MOST))
                        waits[name] = (times, time.time() + wait)
                        again = f" (tried again, resuming, in {wait:g} s" + (f"; failed {times} times in a row)"
                                                                             if times > 1 else ")")
                    print(f"[watch] {name}: FAILED: {ledger[name]['error']}{again}", file=sys.stderr, flush=True)
                    with contextlib.suppress(OSError):  # refused before any write: no folder that looks like a run
                        (out / name).rmdir()
                write_text(ledger_path, json.dumps(ledger, indent=1, default=str))
                evolution()
            if once:
                return ledger
            time.sleep(interval)

    def _run(self, source: Any, dest: str | os.PathLike, *, resume: bool, truth: xr.DataArray | None) -> Result:
        from . import filters, measure
        from .io import open_volume, save_labels
        from .io._omezarr import add_bigseg_attrs, labels_replaced_quietly, remove_label
        from .report import (metrics_figure, orthoslices, particle_figure, profile_figure, rve_figure, series_figure,
                             shells_figure, thickness_figure, timeslices, write_report)
        from .report._units import at_last_step, time_at

        out = Path(dest)
        self._check_memory(source)  # every stage's budget, on this run's workers, before any stage writes
        # what the scores are against (a path given to bigseg run --truth, or an array's own source)
        reference = None if truth is None else str(getattr(truth, "attrs", {}).get("source", "an array"))
        if reference is not None and os.path.exists(reference):  # a file: found from anywhere, as run.json's source
            reference = os.path.abspath(reference)
        out.mkdir(parents=True, exist_ok=True)
        if (out / "stages.json").exists():  # run again: not done (run_state) until this run writes run.json
            (out / "stages.json").touch()
            # and the earlier report says so now: a run killed before its own (no handler runs) left it as
            # finished over the labels it had replaced
            _flag_earlier_report(out, ours=True)
        image = out / "image.ome.zarr"
        timings: dict[str, float] = {}
        # what each resumable stage was made from: a stage made from other inputs is redone
        keys = self._stage_keys(source)
        done = _read_stages(out) if resume else {}
        keep_image = resume and done.get("ingest", keys["ingest"]) == keys["ingest"]
        keep_labels = keep_image and done.get("segment", keys["segment"]) == keys["segment"]
        write_key = keys["ingest"]  # an interrupted write resumes for the same inputs (its key: the sources as they stand)
        if not resume:  # what an interrupted run left is not to be taken up
            for stale in [*out.glob(".temporal-*.zarr"), *out.glob(".image.ome.zarr.partial-*"),
                          *out.glob(".raw.ome.zarr.partial-*"), *out.glob("image.ome.zarr/labels/.*.partial-*")]:
                shutil.rmtree(stale, ignore_errors=True)

        if not (keep_image and image.exists()):  # made or replaced below: until stages.json says what the image
            # is made from, none is known (a run killed in between would keep it, a first run's too, as another's)
            _write_stage(out, "ingest", None, reset=True)
        t = time.perf_counter()
        shifts = None
        with labels_replaced_quietly():  # a changed source replaces the run's image with the labels this run remakes
            if self.config.filters["align"]:  # an operando series whose sample drifts: image = the aligned scans
                vol, shifts = self._aligned(source, out, keep_image, write_key)
                truth = self._cropped_truth(truth, open_volume(out / "raw.ome.zarr"))
                if truth is not None and is_series(truth) and tuple(truth.shape[1:]) != tuple(vol.shape[1:]):
                    truth = filters.align(truth, shifts=shifts)  # truth on the raw scans' grid moves with them
            else:
                vol = self._ingest(source, image, keep_image, write_key)
                truth = self._cropped_truth(truth, vol)
        _write_stage(out, "ingest", keys["ingest"], reset=not keep_image)
        timings["ingest"] = time.perf_counter() - t

        seg_path = image / "labels" / "segmentation"
        t = time.perf_counter()
        fov = self._fov(vol, out, title=_run_name(source))
        if not (keep_labels and seg_path.exists()):
            if _read_stages(out).get("segment", "") is not None:  # (likewise: made or replaced below, then recorded)
                _write_stage(out, "segment", None)
            # the filters must not smear a fill (NaN, 0) into the sample: the outside looks like the inside
            src = vol if fov is None else fill_outside_like_inside(vol, fov, progress=True)
            # block by block, resumable: a run that is interrupted here computes only the blocks
            # not yet on disk when it is run again (same inputs: the segmentation stage's key)
            with self._segmented(self._filter(src), fov, out, keys["segment"]) as ds:
                if "probabilities" in ds:  # predict.probabilities: beside the labels, as `bigseg segment` stores them
                    from .infer import write_prediction

                    write_prediction(ds, image, name="segmentation", levels=self.config.levels, overwrite=True,
                                     resume_key=keys["segment"])
                else:
                    save_labels(ds["labels"], image, name="segmentation", levels=self.config.levels, overwrite=True,
                                resume_key=keys["segment"])
        _write_stage(out, "segment", keys["segment"])  # a kept run of before stages.json: taken as made from these
        # the labels, copied out of the run, still say what made them (attrs["bigseg"]["made_by"]; the
        # particles' labels too, below)
        made_by = {"run": os.path.abspath(out), "model": str(self.config.predict["model"]),
                   **({"model_key": self._model_key} if getattr(self, "_model_key", None) else {}),
                   "bigseg": version()}
        add_bigseg_attrs(seg_path, made_by=made_by)
        labels = open_volume(seg_path)
        timings["segment"] = time.perf_counter() - t

        t = time.perf_counter()
        if truth is not None and tuple(truth.shape) != tuple(labels.shape):
            raise InputError(f"Expected `truth` to have shape {labels.shape}. Got {truth.shape} instead.")
        m = self.config.measure
        step = m["profile_step"] if m["profile"] is None else min(m["profile_step"], labels.sizes[m["profile"]])
        metrics = measure.summary(labels, truth=truth, method=m["interfaces"], progress=True,
                                  profile=m["profile"], profile_step=step)
        sh = tau = None
        if m["shells"]:  # e.g. CBD around the active particles (Müller et al. 2021)
            around, of, top = parse_shells_spec("measure.shells", m["shells"])
            sh = measure.shells(labels, around=around, of=of, max_distance=top, progress=True)
        if m["tortuosity"]:  # a phase's transport along an axis (TauFactor, sub-volumes): the pore's by default
            # solved in whole boxes: with a field of view, the largest square inside it
            tau = measure.tortuosity(labels, phase=m["tortuosity_phase"], axis=m["tortuosity"],
                                     fov=None if fov is None else fov.values, progress=True)
        # a series' representative volume element: that of its last scan
        rve = measure.rve(labels.isel(t=-1) if is_series(labels) else labels, progress=True) if m["rve"] else None
        # a cylinder's artefacts are radial (cupping, rim): the fractions by distance from its axis
        radial = (measure.radial_profile(labels, centre=fov_centre(fov), step=m["radial_step"], progress=True)
                  if fov is not None else None)
        # each phase's share spanning the electrode, cut off in it, or reaching the volume's edge
        # (on by default: a scan one slice thick along its axis, where both faces are one plane, goes without)
        conn = None
        if m["connectivity"] and labels.sizes[m["connectivity"]] < 2:
            warnings.warn(f"measure.connectivity {m['connectivity']!r}: the scan is {labels.sizes[m['connectivity']]} "
                          f"voxel thick along it, so no phase can span it; connectivity not measured (set "
                          f"measure.connectivity to another axis, or null)", UserWarning, stacklevel=2)
        elif m["connectivity"]:
            conn = measure.connectivity(labels, axis=m["connectivity"], progress=True)
        # e.g. the pore size distribution (the particle split's max_diameter: the widest structure)
        thick = (measure.thickness(labels, phase=m["thickness"], max_diameter=m["max_diameter"], progress=True)
                 if m["thickness"] else None)
        metrics = measure.add_to_metrics(metrics, shells=sh, tortuosity=tau, rve=rve, radial=radial,
                                         connectivity=conn, thickness=thick)
        # what an earlier run of this folder wrote and this one will not (another configuration:
        # no particles, no profile...) must not be shown as this run's: the outputs go, and are
        # written again below where this run makes them
        for name in _RUN_OUTPUTS:
            if name != "fov.png" or fov is None:
                (out / name).unlink(missing_ok=True)
        if not m["particle_labels"]:
            remove_label(image, "particles")
        table = None
        if m["particles"]:
            # with particle_labels, labels/particles (value = the table's id; a series: its track)
            # comes from the same split
            table = measure.particles(labels, **_particle_options(m), intensity=vol, progress=True, overwrite=True,
                                      labels_to=image / "labels" / "particles" if m["particle_labels"] else None)
            if m["particle_labels"]:
                add_bigseg_attrs(image / "labels" / "particles", made_by=made_by)
            with replacing(out / "particles.csv") as tmp:  # whole or not at all, as every output of a run
                measure.write_table(table, tmp)  # each column with its unit: "volume [nm^3]"
        timings["measure"] = time.perf_counter() - t

        t = time.perf_counter()
        slices = out / "slices.png"
        run_title = f"{_run_name(source)}: segmentation ({self.config.predict['model']})"  # on every figure: which run
        orthoslices(vol, labels, path=slices, title=run_title)
        figures = [str(slices)]
        last = f" (t = {time_at(labels.t)})" if table is not None and "t" in table and len(table) else ""
        if table is not None and len(table):
            particle_figure(table, path=out / "particles.png", title=f"{run_title}\n{table.attrs['phase']} particles{last}")
            figures.append(str(out / "particles.png"))
        metrics_figure(metrics, path=out / "metrics.png", title=run_title)
        figures.append(str(out / "metrics.png"))
        if "volume_fraction_profile" in metrics:
            profile_figure(metrics, path=out / "profile.png", title=run_title)
            figures.append(str(out / "profile.png"))
        if rve is not None:
            rve_figure(rve, path=out / "rve.png",  # a series': of its last scan (said, as the particles' are)
                       title=run_title + (f"\nthe last scan (t = {time_at(labels.t)})" if is_series(labels) else ""))
            figures.append(str(out / "rve.png"))
        if fov is not None:
            figures.append(str(out / "fov.png"))
            profile_figure(radial, path=out / "radial.png", title=run_title)
            figures.append(str(out / "radial.png"))
        if sh is not None:
            shells_figure(sh, overall=metrics.volume_fraction, path=out / "shells.png", title=run_title)
            figures.append(str(out / "shells.png"))
        if thick is not None:
            thickness_figure(thick, path=out / "thickness.png", title=f"{run_title}\nlocal thickness{at_last_step(thick)}")
            figures.append(str(out / "thickness.png"))
        if "t" in metrics.dims:  # an operando series: every measurement over time, as a table and curves
            changes = measure.transitions(labels, progress=True) if labels.sizes["t"] > 1 else None
            with replacing(out / "evolution.csv") as tmp:  # units in the headers, as particles.csv
                measure.write_table(measure.evolution(metrics, table, changes), tmp)
            series_figure(metrics, table, transitions=changes, path=out / "evolution.png", title=f"{run_title}: over time")
            figures.append(str(out / "evolution.png"))
            timeslices(vol, labels, path=out / "slices_over_time.png", title=run_title)
            figures.append(str(out / "slices_over_time.png"))
        timings["figures"] = time.perf_counter() - t
        assumed = self._voxel_size_assumed(source, vol)
        voxel_from = "given" if self.config.voxel_size is not None else "assumed" if assumed else "source"
        recorded = (os.path.abspath(source) if isinstance(source, (str, os.PathLike))  # found from anywhere
                    else [os.path.abspath(x) for x in source] if isinstance(source, (list, tuple)) else "array")
        # what made these numbers, in the metrics themselves (metrics.nc/json travel without run.json):
        # the scan, and what the scores are against
        metrics.attrs.update({"source": recorded, "image": str(image), "labels": str(seg_path), "bigseg": version(),
                              "model": str(self.config.predict["model"]),
                              **({"model_key": self._model_key} if getattr(self, "_model_key", None) else {}),
                              **({"truth": reference} if reference is not None else {}),
                              "voxel_size_from": voxel_from,
                              # the settings, defaults included (JSON): run.json's "config", here too
                              "config": json.dumps(self.config.values, default=str)})
        _write_metrics(metrics, out)
        record = {
            "source": recorded,
            "bigseg": version(), "model": str(self.config.predict["model"]),
            # the model's identity: a hash of its weights and metadata (a path or "default" alone is not one)
            **({"model_key": self._model_key} if getattr(self, "_model_key", None) is not None else {}),
            # how the model was made (its checkpoint's provenance, the epochs' rows left out): kept
            # with the run, as the checkpoint may be retrained, moved or lost
            **({"model_training": self._model_training} if getattr(self, "_model_training", None) else {}),
            "config": self.config.values, "parameters": _parameters_in_force(self.config),
            "computed_on": computed_on(),
            # the source as it stood (resolved path, modification time in ns, size; a folder of slices:
            # their number, total size, latest time): the same path re-reconstructed is another scan
            "source_stamp": (path_stamp(source) if isinstance(source, (str, os.PathLike))
                             else [path_stamp(x) for x in source] if isinstance(source, (list, tuple)) else None),
            # what every length, area and volume is in, and where that came from
            "voxel_size": [float(v) for v in vol.attrs.get("voxel_size", (1.0, 1.0, 1.0))],
            "unit": str(vol.attrs.get("unit", "voxel")), "voxel_size_from": voxel_from,
            # when and with what (versions, commit, machine): what a reader needs to reproduce and cite it
            "date": utc_now(), "environment": environment(),
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            **({"truth": reference} if reference is not None else {}),
            # 1-unit voxels in name only (said on the report, which a reader gets without the command's note)
            **({"voxel_size_assumed": True} if assumed else {}),
            **({"alignment_shifts": shifts} if shifts is not None else {}),
            # the particles measure.min_voxels left out of particles.csv (said by the report; a series: all steps')
            **({"particles_left_out": {"particles": int(table.attrs["small_particles"]),
                                       "voxels": int(table.attrs["small_voxels"])}}
               if table is not None and m["min_voxels"] > 1 else {}),
            **({"fov": {k: fov.attrs[k] for k in ("fov", "found", "inside_fraction", "margin")}}
               if fov is not None else {}),
        }
        # the report before run.json, which marks the run done (run_state): a run stopped between them
        # (Ctrl-C, SIGTERM, a kill) is not taken for a finished one without its report
        write_report(out, finished=True, record=json.loads(json.dumps(record, default=str)))
        write_text(out / "run.json", json.dumps(record, indent=1, default=str))
        return Result(str(image), str(seg_path), metrics, figures, timings, particles=table)


def _module_key(model: Any) -> str | None:
    """A content hash of a model given as an object (a bigseg ``Model``: its checkpoint key; a
    ``torch.nn.Module``: its class and weights), for the segmentation stage's key; None for
    anything else."""
    if hasattr(model, "checkpoint_key"):
        return str(model.checkpoint_key())
    if not hasattr(model, "state_dict"):
        return None
    import hashlib

    from .models._model import hash_weights

    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    hash_weights(h, model)
    return "module:" + h.hexdigest()[:32]


def _source_shape(source: Any) -> tuple[int, ...] | None:
    """The shape a source will have once ingested (a list of scans: a series), read from the
    files' headers; ``None`` when it cannot be read (the ingest then says what is wrong)."""
    from .io._ingest import read_source

    try:
        if isinstance(source, (list, tuple)):
            for scan in source[1:]:  # each scan there (the first is read next)
                if isinstance(scan, (str, os.PathLike)) and not any(c in os.fspath(scan) for c in "*?[") \
                        and not Path(scan).exists():
                    raise SourceNotFoundError(f"Expected `source` to be existing scans. Got {os.fspath(scan)!r} "
                                              "among them, which does not exist.")
            return (len(source), *read_source(source[0]).shape[-3:])
        if isinstance(source, (str, os.PathLike)):
            return tuple(read_source(source).shape)
        return tuple(np.shape(source))
    except SourceNotFoundError:  # said now, not after `dest` was made
        raise
    except BigsegError:
        return None


def _run_name(source: Any) -> str:
    """What a run's figures call it: its source's name, a series' scans, or "volume" (an array)."""
    from .report._html import scans_title

    return (Path(str(source)).name if isinstance(source, (str, os.PathLike)) else
            scans_title(source) if isinstance(source, (list, tuple)) and len(source) > 1 else "volume")


#: the files a run writes after its segmentation (fov.png: with it, at the field of view's stage)
_RUN_OUTPUTS = ("particles.csv", "particles.png", "slices.png", "metrics.png", "profile.png", "rve.png", "fov.png",
                "radial.png", "shells.png", "thickness.png", "evolution.csv", "evolution.png", "slices_over_time.png",
                "metrics.nc", "metrics.json", "report.html")
_RUN_FILES = ("run.json", "stages.json", "image.ome.zarr", "raw.ome.zarr", ".bigseg.lock", ".image.ome.zarr.",
              ".raw.ome.zarr.", ".temporal-")  # what a run folder holds, even one killed at its start
_WATCH_FILES = ("watch.json", ".bigseg.lock")
_RETRY_WAIT_MOST = 600.0  # seconds: the longest a watch waits to try again a scan it had no room to write
#: what a watch writes into its ``out`` beside the scans' folders (folded: a scan of such a name is left alone)
_WATCH_OUTPUT_NAMES = frozenset(folded(n) for n in ("watch.json", "evolution.csv", "evolution.png"))
#: set by :meth:`Pipeline.watch` while its scans run inside its own client context: the sizing it
#: was given (n_workers, memory_limit) was used, or said unused, once by the watch, not again by each scan's run
_IN_WATCH: contextvars.ContextVar[bool] = contextvars.ContextVar("bigseg_in_watch", default=False)


def _holds(folder: Path, own: tuple[str, ...]) -> bool:
    """Whether an entry of ``folder`` is one of the ``own`` names (or starts with one ending in
    "." or "-")."""
    return any(n == o or (o[-1] in ".-" and n.startswith(o)) for n in os.listdir(folder) for o in own)


def _check_folder(dest: str | os.PathLike, argument: str, own: tuple[str, ...], what: str, *,
                  runs_inside: bool = False) -> None:
    """Refuse, before any work, a ``dest`` that is a file or a folder of other data: none of its
    entries is one of the ``own`` names (see :func:`_holds`), nor, with ``runs_inside`` (a watch
    stopped during its first scan), a run's folder."""
    d = Path(dest)
    if d.exists() and not d.is_dir():
        raise InputError(f"Expected `{argument}` to be a folder (new or {what}). Got {str(dest)!r}, a file.")
    names = sorted(p.name for p in d.iterdir() if p.name not in SYSTEM_FILES) if d.is_dir() else []
    if names and not _holds(d, own) and not (runs_inside and any(
            (d / n).is_dir() and _holds(d / n, _RUN_FILES) for n in names)):
        raise InputError(f"Expected `{argument}` to be a new or empty folder, or {what}. Got {str(dest)!r}, which "
                         f"holds other data ({len(names)} entries, such as {names[0]!r}); nothing was written.")


def _check_dest(source: Any, dest: str | os.PathLike) -> None:
    """Refuse, before any work, a ``dest`` that is a file or a folder of other data, inside the
    source's zarr store, or whose outputs would replace the source (the source is ``dest`` itself
    or its ``image.ome.zarr`` / ``raw.ome.zarr``)."""
    from .io._volume import refuse_replacing

    _check_folder(dest, "dest", _RUN_FILES, "of an earlier run")
    paths = [s for s in (source if isinstance(source, (list, tuple)) else [source]) if isinstance(s, (str, os.PathLike))]
    d = Path(dest).resolve()
    for s in paths:
        s = Path(s).resolve()
        if any(same_place(s, q) for q in (d, d / "image.ome.zarr", d / "raw.ome.zarr")):
            raise InputError(f"Expected `dest` to be a folder whose outputs do not replace the source. Got "
                             f"{str(dest)!r}, where the run would write over {str(s)!r}.")
    refuse_replacing(dest, paths, "dest")  # a folder inside the source's zarr store, or holding the source


def run_state(out: str | os.PathLike) -> dict[str, Any]:
    """Where a run folder stands: ``state`` is ``"running"`` (``holder``: process, host, command,
    since when), ``"interrupted"`` (the process running it was killed: its lock file is left),
    ``"incomplete"`` (a run stopped with an error, or is not finished, after the stages in
    ``stages``) or ``"done"``. A run that is not done resumes when it is run again."""
    from .runtime._lock import holder, lock_path, recorded

    out = Path(out)
    stages = [k for k, v in _read_stages(out).items() if v is not None]  # (damaged: none known)
    who = holder(out, inside=True)
    if who is not None:
        return {"state": "running", "holder": who, "stages": stages}
    if lock_path(out, inside=True).exists():
        return {"state": "interrupted", "holder": recorded(out, inside=True), "stages": stages}
    finished = out / "run.json"
    later = (out / "stages.json").exists() and finished.exists() and \
        (out / "stages.json").stat().st_mtime > finished.stat().st_mtime
    if not finished.exists() or later:
        return {"state": "incomplete", "stages": stages}
    return {"state": "done", "stages": stages}


def _flag_earlier_report(out: Path, *, ours: bool = False) -> None:
    """After a run into ``out`` stopped (an error, Ctrl-C), a ``report.html`` an earlier run
    wrote there, or this run just before it stopped (before ``run.json``), is written again with
    the banner of an unfinished run (it read as finished, over results this run may have
    replaced in part), or removed where it cannot be; ``ours``: as a run again into ``out``
    starts (it holds the folder: running), for a kill, after which nothing is written."""
    report = out / "report.html"
    if not report.exists() or run_state(out)["state"] not in (("incomplete", "running") if ours else ("incomplete",)):
        return  # (running, not ours: another process's)
    from .report import write_report

    try:
        write_report(out)
    except Exception:  # e.g. its metrics are gone: no page is better than one that looks finished
        with contextlib.suppress(OSError):
            report.unlink()


def _read_stages(out: Path) -> dict[str, str | None]:
    """What each stage in ``out`` was made from: none recorded in a run of before stages.json (its stages
    are kept); each unknown (``None``: redone) when stages.json is damaged (cut short in a copy, edited),
    where keeping them took a segmentation of another model or filters as made from this run's."""
    p = out / "stages.json"
    if not p.exists():
        return {}
    try:
        stages = json.loads(p.read_text())
    except (ValueError, OSError):
        stages = None
    return stages if isinstance(stages, dict) else {"ingest": None, "segment": None}


def _holds_no_stage(out: Path) -> bool:
    """Whether ``out`` holds nothing but, at most, a ``stages.json`` that records no stage done (a first run
    stopped before its ingest was)."""
    return {p.name for p in out.iterdir()} <= {"stages.json"} and not any(_read_stages(out).values())


def _write_stage(out: Path, stage: str, key: str | None, *, reset: bool = False) -> None:
    """Record in ``out/stages.json`` what ``stage`` was made from (``reset``: forget the later ones;
    ``None``: not known, redone, as its output is about to be replaced)."""
    stages = {} if reset else _read_stages(out)
    stages[stage] = key
    write_text(out / "stages.json", json.dumps(stages, indent=1))


def _watch_evolution(out: Path, ledger: dict[str, dict[str, Any]], clock: str = "order",
                     cache: dict[Any, Any] | None = None) -> None:
    """``out/evolution.csv`` and ``out/evolution.png``: the scans a watch has done as the steps of
    one experiment (:func:`bigseg.measure.evolution`, a ``scan`` column added): in name order
    (numbers as numbers: scan_2 before scan_10), or with ``clock="mtime"`` in the order their
    files were last written, ``t`` in minutes since the first. Where they cannot be made now
    (fewer than two scans done, scans in several units, an error), earlier ones are removed: they
    would show the scans as they no longer are."""
    made = False
    try:
        made = _write_watch_evolution(out, ledger, clock, cache)
    finally:
        if not made:
            for name in ("evolution.csv", "evolution.png"):
                (out / name).unlink(missing_ok=True)


def _watch_metrics(run: Path, cache: dict[Any, Any] | None) -> tuple[bool, xr.Dataset]:
    """A done scan's metrics for the watch's evolution: whether it is a series, and its per-phase and
    per-pair measurements (profiles, shells, sub-volumes dropped: small). Read once per watch while
    its files stay as they are (``cache``: run folder -> (their stamps, this)): the evolution is
    made again after every scan, and reading every done scan's metrics.nc each time made each
    scan's turn grow with the scans done (0.1-0.25 s per done scan: 30 s after 300 scans)."""
    from .report import read_metrics

    stamp = [path_stamp(run / name) for name in ("metrics.nc", "metrics.json")]
    hit = None if cache is None else cache.get(str(run))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    m = read_metrics(run)
    got = ("t" in m.dims, m.drop_dims([d for d in m.dims if d not in ("phase", "phase_a", "phase_b")]))
    if cache is not None:
        cache[str(run)] = (stamp, got)
    return got


def _watch_particles(run: Path, metrics: xr.Dataset, cache: dict[Any, Any] | None) -> Any:
    """A done scan's particle columns of the watch's evolution (its counts and medians,
    :func:`bigseg.measure.evolution`): a one-row DataFrame with their units in ``attrs["units"]``,
    None without ``particles.csv``. Read once per watch while the file stays as it is (``cache``:
    (run folder, "particles") -> (its stamp, this)): the evolution is made again after every
    scan, and the table of a scan of a million particles is ~0.2 GB of text; the rows kept are
    a few numbers each."""
    from . import measure

    path = run / "particles.csv"
    stamp = path_stamp(path) if path.exists() else None
    hit = None if cache is None else cache.get((str(run), "particles"))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    got = None
    if stamp is not None:
        whole = measure.evolution(metrics, measure.read_table(path))
        without = set(measure.evolution(metrics).columns)  # (once: in the condition it ran once per column)
        cols = [c for c in whole.columns if c not in without]
        got = whole[cols]
        got.attrs = {"units": {c: whole.attrs["units"][c] for c in cols}}
    if cache is not None:
        cache[(str(run), "particles")] = (stamp, got)
    return got


def _write_watch_evolution(out: Path, ledger: dict[str, dict[str, Any]], clock: str,
                           cache: dict[Any, Any] | None = None) -> bool:
    """:func:`_watch_evolution`'s files; whether they were written."""
    import pandas as pd

    from . import measure
    from .report import series_figure

    done = sorted((name for name, st in ledger.items() if st.get("state") == "done" and (out / name).is_dir()),
                  key=natural_key)
    read = {name: _watch_metrics(out / name, cache) for name in done}
    metrics = {name: m for name, (_, m) in read.items()}
    series = [name for name in done if read[name][0]]
    if series:  # a series among the scans: not one step (its own run folder has its evolution over time)
        print(f"[watch] evolution.csv leaves out {', '.join(series)}: a series of several time steps, not one "
              f"step (see {out / series[0] / 'evolution.csv'})", file=sys.stderr, flush=True)
        done = [name for name in done if name not in series]
    if len(done) < 2:
        return False
    written = {name: float(ledger[name]["signature"][1]) for name in done}  # (size, latest modification time)
    if clock == "mtime":
        done.sort(key=lambda name: written[name])
        same = sorted({n for n in done for m in done if n != m and written[n] == written[m]}, key=natural_key)
        if same:  # one time for two steps: neither their order nor their times are known
            print(f"[watch] evolution.csv not written: {', '.join(same)} were last written at the same time, so "
                  "--clock mtime cannot order them (--clock order: by name)", file=sys.stderr, flush=True)
            return False
    # (profiles, shells, sub-volumes and RVE cubes of scans of other sizes do not line up: the evolution
    # is of the per-phase and per-pair measurements, which _watch_metrics keeps)
    metrics = [metrics[name] for name in done]
    from .io._calibration import normalise_unit

    units = {normalise_unit(u) or u for u in (str(m.attrs.get("unit")) for m in metrics)}  # um, µm: one unit
    if len(units) > 1:  # areas and sizes in other units: not one line (the runs have them each)
        print(f"[watch] evolution.csv not written: the scans state voxel sizes in several units "
              f"({', '.join(sorted(units))}); run them with one voxel size (--voxel-size, --unit)",
              file=sys.stderr, flush=True)
        return False
    sizes = [tuple(float(v) for v in m.attrs.get("voxel_size", (1.0, 1.0, 1.0))) for m in metrics]
    if len(set(sizes)) > 1:
        print(f"[watch] the scans state other voxel sizes ({', '.join(f'{n}: {s}' for n, s in zip(done, sizes))} "
              f"{units.pop()}): evolution.csv compares them in physical units", file=sys.stderr, flush=True)
    steps = (pd.Index([(written[name] - written[done[0]]) / 60.0 for name in done], name="t") if clock == "mtime"
             else pd.Index(range(len(done)), name="t"))
    ds = xr.concat(metrics, dim=steps, combine_attrs="override")
    if clock == "mtime":
        ds.coords["t"].attrs["units"] = "min"
    ds = ds.assign_coords(voxel_volume=("t", [float(np.prod(v)) for v in sizes]))  # each scan's own
    ev = measure.evolution(ds)
    # each scan's particle counts and medians, as the evolution of all their tables together has them
    # (a scan is one step: no track goes on from one to the next); without every scan's, none
    rows = [_watch_particles(out / name, metrics[i], cache) for i, name in enumerate(done)]
    if all(r is not None for r in rows):  # (every scan's columns: NaN where a scan's table lacks one, e.g. an
        # older bigseg's, as the evolution of all the tables together gives)
        got = pd.concat(rows, ignore_index=True)
        for col in got.columns:
            ev[col] = got[col].to_numpy()
        ev.attrs["units"] = {**ev.attrs["units"], **{k: u for r in rows for k, u in r.attrs["units"].items()}}
    order = "in the order they were written" if clock == "mtime" else "in name order"
    series_figure(ev, path=out / "evolution.png", title=f"{len(done)} scans {order}")
    ev.insert(0, "scan", done)
    with replacing(out / "evolution.csv") as tmp:
        measure.write_table(ev, tmp)
    return True


def _in_force(func: Any, given: dict[str, Any]) -> dict[str, Any]:
    """``func``'s keyword options as a call with ``given`` ran it: its defaults included (a
    later version's other default is then seen, not silently taken by a re-run)."""
    import inspect

    skip = ("fov", "phases", "progress", "intensity", "labels_to", "overwrite", "nan_policy")
    out = {n: p.default for n, p in inspect.signature(func).parameters.items()
           if p.kind is p.KEYWORD_ONLY and p.default is not p.empty and n not in skip}
    return {**out, **given}


def _particle_options(m: dict[str, Any]) -> dict[str, Any]:
    """The options of a run's particle table (its configuration's ``measure``)."""
    return {"phase": m["phase"], "split": m["split"], "max_diameter": m["max_diameter"],
            "area_method": m["particle_area"], "min_voxels": m["min_voxels"]}


def _filter_calls(cfg: RunConfig) -> list[tuple[str, Any, dict[str, Any]]]:
    """The filters a run applies, in order: (name, function, its keyword arguments)."""
    from . import filters

    f = cfg.filters
    calls: list[tuple[str, Any, dict[str, Any]]] = []
    if f["median"]:
        calls.append(("median", filters.median, {"size": f["median"]}))
    if f["gaussian"]:
        calls.append(("gaussian", filters.gaussian, {"sigma": f["gaussian"]}))
    if f["unsharp"]:
        calls.append(("unsharp", filters.unsharp, dict(f["unsharp"]) if isinstance(f["unsharp"], dict) else {}))
    return calls


def _parameters_in_force(cfg: RunConfig) -> dict[str, Any]:
    """What the configuration's short forms meant for run.json: each filter's, a classical
    segmenter's (k-means' ``seed`` and ``sample``) and the particle split's options, defaults
    included."""
    from . import baselines, measure

    m, model = cfg.measure, cfg.predict["model"]
    used: dict[str, Any] = {name: _in_force(func, kwargs) for name, func, kwargs in _filter_calls(cfg)}
    if model in CLASSICAL_MODELS:  # (run with their defaults: _segmented)
        used[model] = _in_force(getattr(baselines, model), {})
    if m["particles"]:
        used["particles"] = _in_force(measure.particles, _particle_options(m))
    return used


def _client_context(client: Any, config: RunConfig):
    """Where a run computes: the current scheduler (None), a given ``distributed.Client``, or a
    cluster spec for :func:`bigseg.connect` started here, sized by the configuration
    (``n_workers``, ``threads_per_worker``, ``memory_limit``; for ``"slurm"`` its ``slurm``
    section over ``deploy/slurm.yaml``), and closed on exit."""
    import contextlib

    from .runtime._cluster import is_address

    starts = isinstance(client, str) and client != "threads" and not is_address(client)
    unused = {k: config.values[k] for k in ("n_workers", "memory_limit") if config.values[k] is not None
              and not (starts and (k != "memory_limit" or client != "slurm"))}
    if unused and not (client is None and _IN_WATCH.get()):  # set for a cluster this run does not start: said,
        # not silently dropped (a watch's scan runs on the watch's cluster: said, where unused, once by the watch)
        import warnings

        where = ("a SLURM job's memory is `slurm.memory`" if starts else
                 "a running scheduler has the workers it was started with" if isinstance(client, str)
                 and is_address(client) else "the run computes on the current scheduler (threads in this process "
                                             "without a client), which bigseg does not size")
        got = ", ".join(f"{k}={v!r}" for k, v in unused.items())
        warnings.warn(f"{got} not used: {where}", UserWarning, stacklevel=4)
    if client is None or client == "threads":  # the current scheduler / threads in this process
        return contextlib.nullcontext()
    if isinstance(client, str):
        from .runtime import connect

        sizing = {"n_workers": config.n_workers, "threads_per_worker": config.threads_per_worker,
                  "memory_limit": config.memory_limit}
        if client == "slurm":  # the slurm keys the configuration sets (to any value), over deploy/slurm.yaml's
            sizing = {"n_workers": config.n_workers, **{k: v for k, v in config.slurm.items() if v is not None}}
        ctx = contextlib.ExitStack()
        ctx.enter_context(ctx.enter_context(connect(client, **sizing)).as_current())
        return ctx
    if hasattr(client, "as_current"):
        return client.as_current()
    raise InputError(f"Expected `client` to be a distributed.Client or a cluster spec string. Got {client!r} instead.")


_SCAN_SUFFIXES = (".ome.zarr", ".zarr", ".tif", ".tiff", ".h5", ".hdf5", ".nxs", ".npy")


def _scans(inbox: Path) -> dict[str, list[Path]]:
    """Scans in a folder by name (file name without its scan suffix): files and zarr stores with
    a known suffix, and sub-folders holding TIFF slices. Hidden and partial (``.tmp``,
    ``.part``) entries are skipped. Scan name -> its paths (two or more: scans that would write
    to the same folder, also names that differ only in case or Unicode normalisation, ``Scan``
    and ``scan``: one folder on macOS and Windows, and wherever the results are copied to)."""
    found: dict[str, list[Path]] = {}
    named: dict[str, str] = {}  # the folded name -> the scan name of the first scan found with it
    for p in sorted(inbox.iterdir()):
        low = p.name.lower()
        if low.startswith(".") or low.endswith((".tmp", ".part")):
            continue
        suffix = next((s for s in _SCAN_SUFFIXES if low.endswith(s)), None)
        if suffix is not None:
            name = p.name[: -len(suffix)]
        elif p.is_dir():
            try:
                slices = bool(tiff_slices(p))
            except OSError:  # removed (or made unreadable) since the listing
                continue
            if not slices:
                continue
            name = p.name
        else:
            continue
        found.setdefault(named.setdefault(folded(name), name), []).append(p)
    return found


def _signature(path: Path) -> tuple[int, float] | None:
    """(total bytes, latest modification time) of a file or of everything under a folder; None
    when it is gone (a file of a folder removed while it is read is left out: the folder is
    still being written, and the next look sees it changed)."""
    try:
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    except OSError:  # the folder removed while it is listed
        return None
    stats = []
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            stats.append(f.stat())
    if not path.exists():
        return None
    return sum(st.st_size for st in stats), max((st.st_mtime for st in stats), default=0.0)


def _refuse_special_files(path: Path) -> None:
    """Refuse a scan that is, or holds, an entry that is neither a file nor a folder once links
    are followed: a FIFO (a read of it waits for a writer: the watch hung, its later scans never
    processed, SIGTERM unheard), a device (a link to /dev/zero: read without end) or a socket."""
    import stat

    for f in [path, *(path.rglob("*") if path.is_dir() else ())]:
        try:
            mode = f.stat().st_mode
        except OSError:  # gone since, or a link to nothing: its read says so
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise InputError(f"Expected the scan {str(path)!r} to hold files and folders only. Got {str(f)!r}, which "
                             "is a FIFO, a device or a socket (a read of it could wait, or go on, for ever): not read.")


def _fractions(metrics: xr.Dataset) -> dict[str, Any]:
    """A run's volume fractions for the watch's ledger (JSON): phase -> fraction, or for a
    series (a scan holding several time steps) phase -> its fractions over time."""
    vf = metrics["volume_fraction"]
    return {str(p): vf.sel(phase=p).values.tolist() for p in vf["phase"].values}


#: attributes CF reads as text naming other variables (xarray decodes them so): never arrays
_CF_TEXT = frozenset({"bounds", "coordinates", "ancillary_variables", "cell_measures", "grid_mapping", "climatology",
                      "formula_terms", "cell_methods", "units", "calendar"})


def _write_metrics(metrics: xr.Dataset, out: Path) -> None:
    """``metrics.nc`` and ``metrics.json``: attributes netCDF cannot hold (lists of text, mappings,
    None, booleans, which h5netcdf refuses) as JSON text, on the Dataset, its variables and its
    coordinates; lists of numbers (``voxel_size``, ``shape``) as netCDF arrays, as ``bigseg measure
    --netcdf`` and ``to_netcdf`` write them (were JSON text, which ``xr.open_dataset`` gives as a
    string: ``measure.evolution`` of the file failed on it), but a list of one number as JSON text
    (a netCDF array of one reads back as a bare number: a one-scan series' ``voxels`` [n] came back
    as n); the JSON strict (NaN and infinities as null, see :func:`json_text`), which
    :func:`bigseg.report.read_metrics` reads back as NaN."""
    clean = metrics.copy()
    for attrs in [clean.attrs] + [var.attrs for var in clean.variables.values()]:
        for key, value in list(attrs.items()):
            if key not in _CF_TEXT and isinstance(value, (list, tuple)) and len(value) > 1 and all(
                    isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                    for v in value):
                attrs[key] = [v.item() if isinstance(v, np.generic) else v for v in value]
            elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
                attrs[key] = json.dumps(value, default=str)
    try:
        with replacing(out / "metrics.nc") as tmp:
            clean.to_netcdf(tmp, engine="h5netcdf")
    except (ValueError, ImportError):  # no netCDF engine: the JSON below still holds everything
        pass
    write_text(out / "metrics.json", json_text(clean.to_dict(data="list"), indent=1, default=str))
