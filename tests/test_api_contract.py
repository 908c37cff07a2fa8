"""The public API contract (../shared/API.md): every promised name exists, takes the promised
positional arguments, everything after them keyword-only, with the promised defaults."""

from __future__ import annotations

import inspect

import pytest

import bigseg
from bigseg import baselines, filters, measure, models, synth

# name -> (function, positional parameters, {keyword: default promised by API.md})
CONTRACT = {
    "open_volume": (bigseg.open_volume, ["path"], {}),
    "save_volume": (bigseg.save_volume, ["data", "path"],
                    {"chunks": None, "voxel_size": None, "phases": None, "overwrite": False}),
    "ingest": (bigseg.ingest, ["source", "dest"], {"chunks": 128, "voxel_size": None, "dataset": None, "dtype": None,
                                                   "shape": None, "overwrite": False}),
    "connect": (bigseg.connect, ["cluster"], {}),
    "synth.electrode": (synth.electrode, ["shape"], {"seed": 0, "chunks": 128, "fractions": inspect.Parameter.empty,
                                                     "radius": inspect.Parameter.empty}),
    "synth.xct": (synth.xct, ["labels"], {"seed": 0}),
    "synth.perturb": (synth.perturb, ["labels"], {"ratio": 0.1, "iterations": 5, "seed": 0}),
    "synth.series": (synth.series, ["shape"], {"steps": inspect.Parameter.empty, "seed": 0}),
    "filters.median": (filters.median, ["vol"], {"size": 3}),
    "filters.gaussian": (filters.gaussian, ["vol"], {"sigma": 1.1}),
    "filters.unsharp": (filters.unsharp, ["vol"], {"radius": 6, "amount": 0.6}),
    "filters.normalize": (filters.normalize, ["vol"], {"low": 0.5, "high": 99.5}),
    "models.load": (models.load, ["name_or_path"], {}),
    "models.save": (models.save, ["model", "path"], {}),
    "predict": (bigseg.predict, ["vol", "model"], {"patch": None, "overlap": 0.5, "blend": "gaussian",
                                                  "sigma_scale": 0.125, "tta": False, "probabilities": False,
                                                  "batch_size": None}),
    "train": (bigseg.train, ["image", "labels"], {"arch": inspect.Parameter.empty, "epochs": inspect.Parameter.empty,
                                                  "lr": 1e-4, "lr_decay": 0.3, "batch_size": 8, "init": None}),
    "baselines.threshold": (baselines.threshold, ["vol"], {"classes": 3}),
    "baselines.kmeans": (baselines.kmeans, ["vol"], {"classes": 3}),
    "baselines.watershed": (baselines.watershed, ["vol"], {}),
    "baselines.random_forest": (baselines.random_forest, ["vol", "labels"], {}),
    "measure.volume_fractions": (measure.volume_fractions, ["labels"], {}),
    "measure.interfaces": (measure.interfaces, ["labels"], {"method": "faces"}),
    "measure.surface_area": (measure.surface_area, ["labels"], {"phase": inspect.Parameter.empty,
                                                               "method": inspect.Parameter.empty}),
    "measure.specific_surface_area": (measure.specific_surface_area, ["labels"], {}),
    "measure.confusion": (measure.confusion, ["truth", "pred"], {}),
    "measure.scores": (measure.scores, ["truth", "pred"], {}),
    "measure.agreement": (measure.agreement, ["segmentations"], {}),
    "measure.particles": (measure.particles, ["labels"], {"phase": "active", "intensity": None, "split": True}),
    "measure.shells": (measure.shells, ["labels"], {"around": inspect.Parameter.empty, "of": inspect.Parameter.empty,
                                                   "max_distance": inspect.Parameter.empty, "step": 1}),
    "measure.tortuosity": (measure.tortuosity, ["labels"], {"phase": "pore", "axis": "z"}),
    "Pipeline.run": (bigseg.Pipeline.run, ["self", "source", "dest"], {"client": None, "resume": True}),
    "Pipeline.from_yaml": (bigseg.Pipeline.from_yaml, ["path"], {}),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_public_signature_keeps_the_contract(name):
    func, positional, defaults = CONTRACT[name]
    params = inspect.signature(func).parameters
    named = [p for p in params.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    assert [p.name for p in named[:len(positional)]] == positional
    assert all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in named[:len(positional)])
    assert all(p.kind == p.KEYWORD_ONLY for p in named[len(positional):]), "keyword-only after the first arguments"
    for key, default in defaults.items():
        assert key in params, f"{name} lost `{key}`"
        if default is not inspect.Parameter.empty:  # empty: promised as a keyword, its default not fixed
            assert params[key].default == default, f"{name}({key}=...) default"


def test_electrode_default_fractions_are_the_promised_ones():
    lab = synth.electrode((40, 40, 40), radius=(4, 1), seed=3)
    frac = measure.volume_fractions(lab)
    assert list(lab.attrs["phases"]) == ["pore", "cbd", "active"] and str(lab.dtype) == "uint8"
    for phase, want in {"pore": 0.35, "cbd": 0.15, "active": 0.50}.items():
        assert float(frac.sel(phase=phase)) == pytest.approx(want, abs=0.04)


def test_bigseg_cli_has_the_promised_subcommands():
    from bigseg.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert {"demo", "ingest", "synth", "filter", "train", "segment", "measure", "report", "watch", "bench",
            "cluster"} <= set(sub.choices)


def test_default_model_is_a_torch_module_with_the_promised_metadata():
    import torch

    m = models.load("default")
    assert isinstance(m, torch.nn.Module)
    assert list(m.phases) == ["pore", "cbd", "active"] and m.ndim in (2, 3) and len(m.patch) == m.ndim
    assert m.normalization  # how grey values are scaled before the network


def test_the_pipeline_module_the_readme_names_is_an_attribute():
    """`bigseg.pipeline.run_state` (README) raised AttributeError after a bare `import bigseg`."""
    import subprocess
    import sys

    code = "import bigseg; print(bigseg.pipeline.run_state.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "run_state"


def _public_functions():
    import importlib

    seen = {}
    for module in ("bigseg", "bigseg.io", "bigseg.synth", "bigseg.filters", "bigseg.baselines", "bigseg.measure",
                   "bigseg.models", "bigseg.train", "bigseg.infer", "bigseg.runtime"):
        mod = importlib.import_module(module)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isfunction(obj) or (callable(obj) and not inspect.isclass(obj) and not inspect.ismodule(obj)):
                seen.setdefault(id(obj), (f"{module}.{name}", obj))
    return sorted(seen.values(), key=lambda item: item[0])


def test_every_public_progress_and_connect_parameter_is_documented():
    """`progress` was a keyword of 38 public functions and said in the docstring of none but
    `train` (on by default for the writers, off for the measures: a user could not tell), and
    `connect` left 5 of its keywords unsaid."""
    import re

    missing = []
    for name, func in _public_functions():
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            continue
        doc = inspect.getdoc(func) or ""
        if "besides those of :func:`bigseg.train`" in doc:  # train.synthetic: its shared keywords are train's
            continue
        wanted = [p for p in params if p == "progress" or name == "bigseg.connect"]
        missing += [f"{name}({p})" for p in wanted if not re.search(rf"\b{p}\b", doc)]
    assert not missing


def test_progress_is_true_or_false_everywhere(tmp_path):
    """``progress="no"`` (from YAML, an environment variable) drew the bars: any truthy value was on,
    in every one of the ~40 functions that take it. Now refused by name, before any output."""
    import numpy as np

    from bigseg.errors import InputError

    labels = np.random.default_rng(0).integers(0, 3, (6, 7, 8)).astype(np.uint8)
    image = labels.astype(np.float32)
    np.save(tmp_path.parent / "scan.npy", image)
    calls = {
        "measure.volume_fractions": lambda p: measure.volume_fractions(labels, progress=p),
        "ingest": lambda p: bigseg.ingest(tmp_path.parent / "scan.npy", tmp_path / "in.ome.zarr", progress=p),
        "Pipeline.run": lambda p: bigseg.Pipeline(predict={"model": "threshold"}).run(image, tmp_path / "run", progress=p),
        "train": lambda p: bigseg.train.train(image, labels, arch="unet2d", epochs=1, progress=p),
    }
    for name, call in calls.items():
        with pytest.raises(InputError, match=r"`progress` to be True or False.*'no'"):
            call("no")
        assert not list(tmp_path.iterdir()), name  # nothing written
    assert float(measure.volume_fractions(labels, progress=np.bool_(False)).sum()) == pytest.approx(1.0)


def test_paths_are_refused_by_name():
    """``open_volume(5)``, ``save_volume(v, 5)``, ``Pipeline.run(v, 5)``...: Python's TypeError
    "expected str, bytes or os.PathLike object, not int", naming no argument."""
    import numpy as np

    from bigseg.errors import InputError

    vol = bigseg.io.make_volume(np.zeros((4, 5, 6), np.float32))
    labels = bigseg.io.make_volume(np.zeros((4, 5, 6), np.uint8))
    calls = {
        "path": [lambda: bigseg.open_volume(5), lambda: bigseg.save_volume(vol, 5), lambda: bigseg.save_volume(vol, "")],
        "dest": [lambda: bigseg.ingest("scan.npy", 5), lambda: bigseg.export(vol, 5.0),
                 lambda: bigseg.Pipeline(predict={"model": "threshold"}).run(vol, None)],
        "inbox": [lambda: bigseg.Pipeline(predict={"model": "threshold"}).watch(5, "out", once=True)],
        "run": [lambda: bigseg.report.write_report(5)],
        "image_path": [lambda: bigseg.save_labels(labels, 5)],
    }
    for name, tried in calls.items():
        for call in tried:
            with pytest.raises(InputError, match=rf"Expected `{name}` to be a path \(str or os.PathLike\). Got "):
                call()


def test_help_of_pipeline_lists_every_configuration_key():
    """help(bigseg.Pipeline) said one line ("with parameters from a RunConfig"), no key a notebook
    user could pass; now an example and every key with its default, from DEFAULTS itself."""
    import inspect

    from bigseg.config import DEFAULTS

    doc = inspect.getdoc(bigseg.Pipeline)
    assert "Pipeline(chunks=96" in doc
    for key, value in DEFAULTS.items():
        line = next(row for row in doc.splitlines() if row.startswith(f"{key}: "))
        for k in value if isinstance(value, dict) else ():
            assert f"{k}=" in line, (key, k)
    assert not hasattr(bigseg.Pipeline, "_DEFAULTS")


#: every subpackage whose ``__all__`` is public API (bigseg.kernels and bigseg.cli have none to document here)
_DOCUMENTED_MODULES = ("bigseg", "bigseg.io", "bigseg.synth", "bigseg.filters", "bigseg.baselines", "bigseg.measure",
                       "bigseg.models", "bigseg.train", "bigseg.infer", "bigseg.runtime", "bigseg.report", "bigseg.ops")


def _documented(param: str, doc: str) -> bool:
    """Whether ``param`` has its own line in a docstring's Parameters (``name :``, alone or in a
    list ``truth, pred : ...``; ``*args``/``**kwargs`` with their stars) or is named in double
    backquotes in its prose (``progress``: ...). A bare word is not enough: ``phases`` in
    ``0..len(phases)-1`` says nothing of the argument."""
    import re

    entry = re.compile(rf"^\s*(?:[\w*]+,\s*)*\**{re.escape(param)}(?:,\s*[\w*]+)*\s*:", re.M)
    return bool(entry.search(doc)) or f"``{param}``" in doc


def test_every_public_parameter_is_documented():
    """help() of surface_area, scores, summary, transitions, segment, Pipeline.run and the report's
    figures (title, dpi, path) named none of some of their arguments: a notebook user could not
    find them, their units or defaults. Every parameter of every public callable (each package's
    ``__all__``, a class's with its ``__init__``, and Pipeline.run/watch) is in its docstring."""
    import importlib

    found: dict[int, tuple[str, object]] = {}
    for module in _DOCUMENTED_MODULES:
        mod = importlib.import_module(module)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj) and not (inspect.ismodule(obj) and name != "train"):
                found.setdefault(id(obj), (f"{module}.{name}", obj))
    found[id(bigseg.Pipeline.run)] = ("bigseg.Pipeline.run", bigseg.Pipeline.run)
    found[id(bigseg.Pipeline.watch)] = ("bigseg.Pipeline.watch", bigseg.Pipeline.watch)
    assert len(found) > 100  # (the lists were read)
    missing = []
    for name, obj in sorted(found.values(), key=lambda item: item[0]):
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):  # (a builtin without a signature)
            continue
        doc = inspect.getdoc(obj) or ""
        if inspect.isclass(obj):
            doc += "\n" + (inspect.getdoc(obj.__init__) or "")
        missing += [f"{name}({p})" for p, v in params.items()
                    if p not in ("self", "cls") and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)
                    and not _documented(p, doc)]
    assert not missing, f"parameters without a line in the docstring: {missing}"
