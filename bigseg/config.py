"""The run configuration: one validated object, loadable from YAML, overridable from the environment.

Precedence (lowest to highest): defaults < YAML file < environment (``BIGSEG_*``) < keywords.
Environment variables address nested keys with a double underscore and are parsed as YAML
scalars: ``BIGSEG_CHUNKS=64``, ``BIGSEG_CLUSTER=tcp://10.0.0.5:8786``,
``BIGSEG_PREDICT__OVERLAP=0.25``, ``BIGSEG_FILTERS__MEDIAN=null``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._parse import parse_shells_spec
from .errors import ConfigError, InputError, SourceNotFoundError

__all__ = ["RunConfig", "DEFAULTS", "load_deploy", "DEPLOY_DIR"]

#: The deployment YAMLs (``deploy/`` of the repository, shipped inside the package as
#: ``bigseg/deploy``): ``local``, ``local-cuda`` and ``slurm`` name them wherever bigseg is installed.
DEPLOY_DIR = Path(__file__).resolve().parent / "deploy"

#: the values of ``predict.model`` that name a classical segmenter (no model, no probabilities)
CLASSICAL_MODELS = ("threshold", "kmeans", "watershed")

#: Every key the configuration knows, with its default. Unknown keys are errors (typos).
DEFAULTS: dict[str, Any] = {
    "cluster": "local",
    "n_workers": None,
    "threads_per_worker": 1,
    "memory_limit": None,  # per worker, e.g. "4GiB"
    "chunks": 128,
    "voxel_size": None,
    "unit": None,  # the source's (OME-Zarr, OME-TIFF, ImageJ TIFF, HDF5), else nm
    "crop": None,  # a box of the source to keep, "z0:z1,y0:y1,x0:x1" (see bigseg.ingest)
    "times": None,  # a list of scans: the time of each (see bigseg.ingest), default 0, 1, 2, ...
    "time_unit": None,  # a series' times' unit, e.g. min (see bigseg.ingest)
    "fov": None,  # the reconstruction's field of view: auto, cylinder or "cy,cx,r" (see bigseg.io.fov_mask)
    "fov_margin": 0,  # voxels to shrink the field of view by (a rim of ring artefacts)
    "levels": 1,  # OME-Zarr pyramid levels of the image and the segmentation (level k: 2**k smaller), for viewers
    "filters": {"align": False, "normalize": True, "median": 3, "gaussian": None, "unsharp": None},
    "predict": {"model": "default", "patch": None, "overlap": 0.5, "blend": "gaussian",
                "sigma_scale": 0.125, "tta": False, "probabilities": False, "batch_size": None,
                "autocast": "auto", "temporal": 0},
    "measure": {"interfaces": "crofton", "particles": True, "phase": "active", "split": True, "max_diameter": 40,
                "particle_area": "crofton", "min_voxels": 1,
                "particle_labels": False, "profile": "z", "profile_step": 1, "shells": None, "tortuosity": None,
                "tortuosity_phase": "pore", "connectivity": "z", "thickness": None, "rve": False, "radial_step": 4},
    # null: deploy/slurm.yaml's value (a key set here, to any value, overrides it; queue/account "": none)
    "slurm": {"queue": None, "account": None, "cores": None, "memory": None, "walltime": None,
              "jobs": None, "processes": None},
}

#: dask-jobqueue keywords a site may also set in the ``slurm`` section (absent unless set; handed
#: to ``SLURMCluster`` unchanged), by the kind of value each takes.
SLURM_SITE_KEYS: dict[str, str] = {
    **dict.fromkeys(("job_script_prologue", "job_extra_directives", "job_directives_skip", "worker_extra_args"),
                    "a list of text lines"),
    **dict.fromkeys(("interface", "local_directory", "log_directory", "shared_temp_directory", "python", "shebang",
                     "job_name", "job_mem", "protocol", "project"), "text"),  # (one line: see _one_line)
    "job_cpu": "a positive integer",
    "death_timeout": "a number of seconds",
    "nanny": "true or false",
    "scheduler_options": "a mapping (e.g. {dashboard_address: ':8787'})",
}

#: where a run computes, not what its results are made from: not taken from a run record (``run.json`` as a
#: configuration: a received one could point a run at anyone's scheduler, or add lines to a job script), nor part
#: of what a watch compares
WHERE_KEYS = ("cluster", "n_workers", "threads_per_worker", "memory_limit", "slurm")

#: sections that also take keys their defaults do not list (name -> those keys)
_OPEN_SECTIONS = {"slurm": SLURM_SITE_KEYS}


def _check(name: str, ok: bool, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"Expected `{name}` {expected}. Got {value!r} instead.")


def _is_length(unit: str) -> bool:
    from .io._calibration import normalise_unit

    return normalise_unit(unit) is not None


def _is_pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _is_pos_number(v: Any) -> bool:
    """A finite number > 0 (not a YAML ``true``, which Python counts as 1)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf")


def _one_line(text: str) -> bool:
    """Text without control characters: a newline in a SLURM value added a line to the job script."""
    return not any(ord(c) < 32 or ord(c) == 127 for c in text)


def _is_kind(v: Any, kind: str) -> bool:
    """Whether a value is of a kind SLURM_SITE_KEYS names (text: one line each)."""
    if kind.startswith("a list"):
        return isinstance(v, (list, tuple)) and all(isinstance(x, str) and _one_line(x) for x in v)
    if kind == "text":
        return isinstance(v, str) and _one_line(v)
    if kind.startswith("a mapping"):
        return isinstance(v, Mapping)
    if kind == "true or false":
        return isinstance(v, bool)
    if kind == "a positive integer":
        return _is_pos_int(v)
    return _is_pos_number(v)


def _given(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides as the API takes them: a keyword given as ``None`` is one not given."""
    return {k: v for k, v in overrides.items() if v is not None}


def _objects(values: Any, memo: dict[int, Any] | None = None) -> dict[int, Any]:
    """``copy.deepcopy``'s memo keeping the objects among ``values`` that are no plain data (a
    ``predict.model`` torch.nn.Module) as they are: a configuration names them, it does not own
    them (copied, a model on a GPU took its memory twice, and the caller's model was not the run's)."""
    memo = {} if memo is None else memo
    if isinstance(values, Mapping):
        for v in values.values():
            _objects(v, memo)
    elif isinstance(values, (list, tuple)):
        for v in values:
            _objects(v, memo)
    elif not isinstance(values, (str, bytes, int, float, bool, type(None))):
        memo[id(values)] = values
    return memo


def _merge(base: dict[str, Any], update: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = copy.deepcopy(base, _objects(base))
    extra = _OPEN_SECTIONS.get(prefix[:-1], {})
    for key, value in update.items():
        name = f"{prefix}{key}"
        if key not in out and key not in extra:
            import difflib

            close = difflib.get_close_matches(str(key), [str(k) for k in {*out, *extra}], n=1, cutoff=0.7)
            meant = f" (did you mean `{prefix}{close[0]}`?)" if close else ""
            raise ConfigError(f"Unknown configuration key `{name}`{meant}. Known keys: {sorted({*out, *extra})}.")
        if key in extra:
            out[key] = copy.deepcopy(value)
        elif isinstance(out[key], dict):
            _check(name, isinstance(value, Mapping), "to be a mapping", value)
            out[key] = _merge(out[key], value, prefix=f"{name}.")
        else:
            out[key] = value
    return out


def _validate(cfg: dict[str, Any]) -> None:
    from .runtime._cluster import is_cluster_spec

    _check("cluster", is_cluster_spec(cfg["cluster"]),  # a typo: said here, not when the run starts its cluster
           "to be 'local', 'local-cuda', 'slurm', 'threads' (in the process) or a scheduler address", cfg["cluster"])
    _check("n_workers", cfg["n_workers"] is None or _is_pos_int(cfg["n_workers"]), "to be a positive integer or null", cfg["n_workers"])
    _check("threads_per_worker", _is_pos_int(cfg["threads_per_worker"]), "to be a positive integer", cfg["threads_per_worker"])
    mem = cfg["memory_limit"]
    if mem is not None:
        from dask.utils import parse_bytes

        try:
            ok = not isinstance(mem, bool) and parse_bytes(mem) > 0
        except (ValueError, TypeError, OverflowError):
            ok = False
        _check("memory_limit", ok, "to be a size such as '4GiB' or null", mem)
    ch = cfg["chunks"]
    _check("chunks", _is_pos_int(ch) or (isinstance(ch, (list, tuple)) and len(ch) == 3 and all(map(_is_pos_int, ch))),
           "to be a positive integer or 3 positive integers", ch)
    vs = cfg["voxel_size"]
    if vs is not None:
        vals = vs if isinstance(vs, (list, tuple)) else [vs]
        _check("voxel_size", len(vals) in (1, 3) and all(map(_is_pos_number, vals)),
               "to be a positive number or 3 positive numbers", vs)
    _check("unit", cfg["unit"] is None or (isinstance(cfg["unit"], str) and _is_length(cfg["unit"])),
           "to be a length unit such as nm or um, or null (the source's)", cfg["unit"])
    _check("crop", cfg["crop"] is None or isinstance(cfg["crop"], (str, list, tuple)),
           "to be ranges such as '100:900,:,64:960', or null", cfg["crop"])
    ti = cfg["times"]
    _check("times", ti is None or (isinstance(ti, (list, tuple)) and len(ti) > 0 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < float("inf") for v in ti)),
        "to be a list of numbers, one per scan (or null)", ti)
    tu = cfg["time_unit"]
    _check("time_unit", tu is None or (isinstance(tu, str) and bool(tu.strip())), "to be a unit such as 'min' (or null)", tu)
    if cfg["fov"] is not None:
        from .io._fov import FOV_HELP, parse_fov

        try:
            spec = parse_fov(cfg["fov"])
        except InputError:
            spec = None
        _check("fov", isinstance(spec, (str, tuple)), f"to be {FOV_HELP}, or null (the whole cross-section)", cfg["fov"])
    fm = cfg["fov_margin"]
    _check("fov_margin", isinstance(fm, (int, float)) and not isinstance(fm, bool) and fm >= 0,
           "to be a number of voxels >= 0", fm)
    _check("fov_margin", not fm or cfg["fov"] is not None, "0 without `fov` (it shrinks the field of view)", fm)
    _check("levels", _is_pos_int(cfg["levels"]) and cfg["levels"] <= 12, "to be a positive integer (pyramid levels, <= 12)",
           cfg["levels"])
    f = cfg["filters"]
    _check("filters.align", isinstance(f["align"], bool), "to be true or false", f["align"])
    for key in ("median",):
        _check(f"filters.{key}", f[key] is None or _is_pos_int(f[key]), "to be a positive integer or null", f[key])
    for key in ("gaussian",):
        _check(f"filters.{key}", f[key] is None or _is_pos_number(f[key]), "to be a positive number or null", f[key])
    _check("filters.normalize", isinstance(f["normalize"], bool), "to be true or false", f["normalize"])
    un = f["unsharp"]
    _check("filters.unsharp", un is None or un is True or un is False or (
        isinstance(un, dict) and set(un) <= {"radius", "amount", "axes"}),
        "to be true (radius 6, amount 0.6), false/null, or a mapping of radius, amount, axes", un)
    if isinstance(un, dict):  # its values as the filter reads them, before any work
        if "radius" in un:
            from .filters._filters import _parse_sigma  # the filter's own reading of it

            try:
                ok = bool(_parse_sigma("radius", un["radius"]))
            except InputError:
                ok = False
            _check("filters.unsharp.radius", ok, "to be a positive number of voxels or 3 numbers >= 0 (z, y, x)",
                   un["radius"])
        if "amount" in un:
            a = un["amount"]
            _check("filters.unsharp.amount", isinstance(a, (int, float)) and not isinstance(a, bool)
                   and abs(a) < float("inf"), "to be a finite number", a)
        if "axes" in un:
            _check("filters.unsharp.axes", un["axes"] in ("3d", "2d"), "to be '3d' or '2d'", un["axes"])
    p = cfg["predict"]
    mo = p["model"]
    _check("predict.model", (isinstance(mo, (str, os.PathLike)) and bool(os.fspath(mo)))
           or (not isinstance(mo, (str, bytes, os.PathLike)) and callable(mo)),
           "to be 'default', 'threshold', 'kmeans', 'watershed', a checkpoint path or a torch.nn.Module", mo)
    for key in ("tta", "probabilities"):
        _check(f"predict.{key}", isinstance(p[key], bool), "to be true or false", p[key])
    pa = p["patch"]
    _check("predict.patch", pa is None or _is_pos_int(pa) or (
        isinstance(pa, (list, tuple)) and len(pa) in (2, 3) and all(map(_is_pos_int, pa))),
        "to be null (the model's), a positive integer or 2/3 positive integers", pa)
    sl = cfg["slurm"]
    for key in ("cores", "jobs", "processes"):
        _check(f"slurm.{key}", sl[key] is None or _is_pos_int(sl[key]), "to be a positive integer", sl[key])
    for key in ("queue", "account", "memory", "walltime"):
        _check(f"slurm.{key}", sl[key] is None or isinstance(sl[key], str) and _one_line(sl[key]),
               "to be one line of text (or null)", sl[key])
    if sl["memory"] is not None:  # as dask reads it, before a job is submitted with it
        from dask.utils import parse_bytes

        try:
            ok = parse_bytes(sl["memory"]) > 0
        except ValueError:
            ok = False
        _check("slurm.memory", ok, "to be a memory size such as '64GiB'", sl["memory"])
    if sl["walltime"] is not None:
        _check("slurm.walltime", bool(re.fullmatch(r"(\d+-)?\d+(:\d{2}){0,2}", sl["walltime"].strip())),
               "to be SLURM time such as '02:00:00' or '1-00:00:00'", sl["walltime"])
    for key, kind in SLURM_SITE_KEYS.items():
        if sl.get(key) is not None:
            _check(f"slurm.{key}", _is_kind(sl[key], kind), f"to be {kind}", sl[key])
    if sl["cores"] is not None and sl["processes"] is not None:
        _check("slurm.processes", sl["processes"] <= sl["cores"],
               f"at most slurm.cores ({sl['cores']}: each worker process needs a core)", sl["processes"])
    _check("predict.overlap", isinstance(p["overlap"], (int, float)) and 0 <= p["overlap"] < 1, "in [0, 1)", p["overlap"])
    _check("predict.blend", p["blend"] in ("gaussian", "constant"), "to be 'gaussian' or 'constant'", p["blend"])
    _check("predict.sigma_scale", _is_pos_number(p["sigma_scale"]), "to be a positive number", p["sigma_scale"])
    if p["autocast"] in (None, False):  # YAML reads a bare `off` as false
        p["autocast"] = "off"
    _check("predict.autocast", p["autocast"] in ("auto", "bf16", "fp16", "off"),
           "to be 'auto', 'bf16', 'fp16' or 'off'", p["autocast"])
    _check("predict.batch_size", p["batch_size"] is None or _is_pos_int(p["batch_size"]), "to be a positive integer or null", p["batch_size"])
    _check("predict.temporal", p["temporal"] == 0 or _is_pos_int(p["temporal"]),
           "to be 0 or a positive integer (scans before and after each scan whose probabilities are averaged)",
           p["temporal"])
    _check("predict.temporal", not p["temporal"] or p["model"] not in CLASSICAL_MODELS,
           f"0 with predict.model {p['model']!r} (a time window averages a model's probabilities)", p["temporal"])
    _check("predict.probabilities", not p["probabilities"] or p["model"] not in CLASSICAL_MODELS,
           f"false with predict.model {p['model']!r} (a classical segmenter gives no probabilities)", p["probabilities"])
    _check("measure.particles", isinstance(cfg["measure"]["particles"], bool), "to be true or false",
           cfg["measure"]["particles"])
    _check("measure.phase", isinstance(cfg["measure"]["phase"], str) and bool(cfg["measure"]["phase"]),
           "to be a phase name", cfg["measure"]["phase"])
    _check("measure.split", isinstance(cfg["measure"]["split"], bool), "to be true or false", cfg["measure"]["split"])
    _check("measure.particle_area", cfg["measure"]["particle_area"] in ("crofton", "marching_cubes"),
           "to be 'crofton' or 'marching_cubes'", cfg["measure"]["particle_area"])
    _check("measure.particle_labels", isinstance(cfg["measure"]["particle_labels"], bool), "to be true or false",
           cfg["measure"]["particle_labels"])
    _check("measure.max_diameter", _is_pos_int(cfg["measure"]["max_diameter"]), "to be a positive integer (voxels)",
           cfg["measure"]["max_diameter"])
    _check("measure.min_voxels", _is_pos_int(cfg["measure"]["min_voxels"]),
           "to be a positive integer (the smallest particle listed, in voxels)", cfg["measure"]["min_voxels"])
    _check("measure.interfaces", cfg["measure"]["interfaces"] in ("faces", "marching_cubes", "crofton"),
           "to be 'faces', 'marching_cubes' or 'crofton'", cfg["measure"]["interfaces"])
    if cfg["measure"]["profile"] is False:  # YAML reads a bare `off`/`no` as false
        cfg["measure"]["profile"] = None
    _check("measure.profile", cfg["measure"]["profile"] in ("z", "y", "x", None),
           "to be 'z', 'y', 'x' (volume fractions slice by slice along it) or null", cfg["measure"]["profile"])
    _check("measure.profile_step", _is_pos_int(cfg["measure"]["profile_step"]), "to be a positive integer (slices per bin)",
           cfg["measure"]["profile_step"])
    if cfg["measure"]["shells"] is not None:
        try:
            parse_shells_spec("measure.shells", cfg["measure"]["shells"])
        except InputError as e:
            raise ConfigError(str(e)) from None
    for key in ("tortuosity", "connectivity"):  # YAML reads a bare `off`/`no` as false
        if cfg["measure"][key] is False:
            cfg["measure"][key] = None
    _check("measure.rve", isinstance(cfg["measure"]["rve"], bool), "to be true or false", cfg["measure"]["rve"])
    rs = cfg["measure"]["radial_step"]
    _check("measure.radial_step", isinstance(rs, (int, float)) and not isinstance(rs, bool) and rs > 0,
           "to be a positive number of voxels (shell width of the radial profile, with fov)", rs)
    _check("measure.tortuosity", cfg["measure"]["tortuosity"] in ("z", "y", "x", None),
           "to be 'z', 'y', 'x' (the tortuosity of measure.tortuosity_phase along it, TauFactor) or null",
           cfg["measure"]["tortuosity"])
    _check("measure.tortuosity_phase", isinstance(cfg["measure"]["tortuosity_phase"], str)
           and bool(cfg["measure"]["tortuosity_phase"]),
           "to be a phase name (the conducting phase: pore for the electrolyte, active or cbd for the solid)",
           cfg["measure"]["tortuosity_phase"])
    th = cfg["measure"]["thickness"]
    if th is False:
        th = cfg["measure"]["thickness"] = None
    if isinstance(th, str):
        th = cfg["measure"]["thickness"] = [th]
    _check("measure.thickness", th is None or (isinstance(th, list) and bool(th)
                                               and all(isinstance(p, str) and p for p in th)),
           "to be a phase name or a list of them (their local thickness distributions) or null", th)
    _check("measure.connectivity", cfg["measure"]["connectivity"] in ("z", "y", "x", None),
           "to be 'z', 'y', 'x' (each phase's share spanning the volume along it) or null",
           cfg["measure"]["connectivity"])


#: ``BIGSEG_*`` variables that each process reads for itself (where the configuration file is,
#: glibc malloc tuning, CPU streams for inference, fsync of outputs): not configuration keys.
PROCESS_VARIABLES = ("BIGSEG_CONFIG", "BIGSEG_MALLOC_TUNING", "BIGSEG_CPU_STREAMS", "BIGSEG_FSYNC")


def _from_env(environ: Mapping[str, str], prefix: str = "BIGSEG_") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(prefix) or key in PROCESS_VARIABLES:
            continue
        path = key[len(prefix):].lower().split("__")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def load_deploy(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML file as a mapping (used for ``deploy/*.yaml`` and run configurations; a run
    folder's ``run.json`` gives the configuration it records).

    A bare name that is no file here (``"local"``, ``"local-cuda"``, ``"slurm"``) is the
    deployment YAML of that name shipped with bigseg."""
    p = Path(path)
    shipped = sorted(f.stem for f in DEPLOY_DIR.glob("*.yaml"))
    if not p.exists() and str(path) in shipped:
        p = DEPLOY_DIR / f"{path}.yaml"
        for here in (Path(f"{path}.yaml"), Path(f"{path}.yml")):
            if here.is_file():  # a site's own file of that name beside: not what a bare name reads
                import warnings

                warnings.warn(f"`config` {str(path)!r} is bigseg's shipped {p.name}; the {str(here)!r} here is "
                              f"not read (name it with its suffix: {str(here)!r})", UserWarning, stacklevel=2)
    if not p.exists():
        raise SourceNotFoundError(f"Expected `config` to be an existing YAML file or one of the shipped {shipped}. "
                                  f"Got {str(path)!r}, which does not exist.")
    if not p.is_file():
        raise ConfigError(f"Expected `config` to be a YAML file. Got {str(path)!r}, which is a folder.")
    try:  # YAML is UTF-8 (a `unit: µm` read in the locale's encoding failed or read 'Âµm')
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Expected `config` {str(p)!r} to be a YAML text file (UTF-8). Got bytes that are no such "
                          f"text at byte {exc.start} (a binary file, or one saved in another encoding).") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:  # one line: where, and what YAML found there (its own text spans several)
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"Expected `config` {str(p)!r} to be valid YAML. Got an error{where}: "
                          f"{problem or ' '.join(str(exc).split())}.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Expected YAML file {str(p)!r} to hold a mapping. Got {type(data).__name__}.")
    if isinstance(data.get("config"), dict) and "environment" in data:  # a run folder's run.json: its settings,
        # defaults included, run again as they were (the rest of the record says what, not how), but not where
        # it ran: this machine's (defaults, BIGSEG_CLUSTER, --cluster)
        return {k: v for k, v in data["config"].items() if k not in WHERE_KEYS}
    return data


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration (see :data:`DEFAULTS` for every key).

    Access values as attributes for top-level keys (``cfg.chunks``) and as mappings for the
    stage sections (``cfg.predict["overlap"]``).

    ``values``: the keys' values, a dict as :data:`DEFAULTS` (keys left out take their defaults;
    default all of them), validated as :meth:`load` validates them. :meth:`load` and
    :meth:`from_yaml` also read a YAML file and ``BIGSEG_*`` variables.
    """

    values: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULTS))

    def __post_init__(self) -> None:  # was unvalidated: a typo or a wrong type surfaced mid-run, or never
        _check("values", isinstance(self.values, Mapping), "to be a mapping of configuration keys", self.values)
        values = _merge(DEFAULTS, self.values)  # (a copy: the caller's dict is never changed)
        _validate(values)
        object.__setattr__(self, "values", values)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> RunConfig:
        """Defaults, then the YAML at ``path`` (or ``$BIGSEG_CONFIG``), then ``BIGSEG_*`` variables, then ``overrides``."""
        env = os.environ if environ is None else environ
        cfg = copy.deepcopy(DEFAULTS)
        path = path or env.get("BIGSEG_CONFIG")
        if path:
            cfg = _merge(cfg, load_deploy(path))
        cfg = _merge(cfg, _from_env(env))
        return cls(_merge(cfg, _given(overrides)))  # (validated by __init__)

    def updated(self, **overrides: Any) -> RunConfig:
        """This configuration with ``overrides`` (as :meth:`load`'s: ``None`` values left out) put
        over it, validated; this one is left as it is."""
        return type(self)(_merge(self.values, _given(overrides)))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> RunConfig:
        return cls.load(path, **overrides)

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "values")
        if name in values:
            return values[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.values)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.values, sort_keys=False)
