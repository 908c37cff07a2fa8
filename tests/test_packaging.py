"""What an installed bigseg (a wheel, as on a cluster's nodes) carries beside its code."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bigseg.config import DEPLOY_DIR, load_deploy
from bigseg.errors import SourceNotFoundError

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_default_model_and_the_deployment_yamls(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "bigseg", src / "bigseg", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / "deploy", src / "deploy")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
                            "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, text=True)
    # setuptools' deprecations are future build failures (a `license` table stops building in 2027)
    assert "deprecated" not in (built.stdout + built.stderr).lower()
    (wheel,) = (tmp_path / "dist").glob("bigseg-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "bigseg/models/weights/default.pt" in names
        meta = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
        assert "License-Expression: BSD-3-Clause" in meta
        assert any(n.endswith("licenses/LICENSE") for n in names)  # the text the licence asks to carry
        for yaml in sorted((ROOT / "deploy").glob("*.yaml")):
            assert z.read(f"bigseg/deploy/{yaml.name}") == yaml.read_bytes()


def test_shipped_deployments_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no deploy/ here
    assert DEPLOY_DIR.resolve() == (ROOT / "deploy").resolve()  # one home: the package links to deploy/
    assert load_deploy("slurm")["slurm"]["queue"] == "batch"
    assert load_deploy("local") == load_deploy(ROOT / "deploy" / "local.yaml")
    (tmp_path / "slurm").write_text("slurm: {queue: mine}\n")  # a file of that name here wins
    assert load_deploy("slurm")["slurm"]["queue"] == "mine"
    with pytest.raises(SourceNotFoundError, match=r"'locl'.*|shipped \['local', 'local-cuda', 'slurm'\]"):
        load_deploy("locl")


def test_version_from_a_source_tree_that_is_not_installed(tmp_path):
    from bigseg._version import _source_version

    import tomllib

    with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as fh:
        want = tomllib.load(fh)["project"]["version"]
    assert _source_version(Path(__file__).resolve().parent.parent / "pyproject.toml") == want
    other = tmp_path / "pyproject.toml"
    other.write_text('[project]\nname = "other"\nversion = "9.9"\n')
    assert _source_version(other) == "unknown"  # another project's file says nothing of bigseg
    assert _source_version(tmp_path / "missing.toml") == "unknown"
    other.write_text("not toml [")
    assert _source_version(other) == "unknown"


def test_the_kernels_load_where_numba_can_cache_neither_beside_them_nor_at_home(monkeypatch):
    """A read-only install (a container image, a site-wide environment) with a read-only or unset
    HOME: numba refused every ``cache=True`` kernel, so ``import bigseg`` failed ("cannot cache
    function: no locator available"). Neither place being writable is simulated."""
    import importlib
    import os

    import numba

    import bigseg.kernels

    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    for locator in bigseg.kernels.cache_locators():  # (numba 0.60 names them _InTreeCacheLocator, ...)
        monkeypatch.setattr(locator, "from_function", classmethod(lambda cls, func, file: None))
    importlib.reload(bigseg.kernels)  # as imported there (before any kernel is defined)

    @numba.njit(cache=True)
    def twice(x):
        return 2 * x

    assert twice(3) == 6 and os.path.isdir(numba.config.CACHE_DIR)


def test_every_module_imports_and_importing_the_main_module_runs_nothing():
    """Each bigseg module imports in a fresh interpreter (what ``pkgutil.walk_packages``, Sphinx's
    autosummary, pydoc or ``pytest --doctest-modules --pyargs bigseg`` do): ``bigseg.__main__``
    ran the command line when imported, so the walk ended in "bigseg: error: the following
    arguments are required: COMMAND" (exit 2). ``python -m bigseg`` still runs it."""
    walk = ("import importlib, pkgutil, bigseg\n"
            "names = [m.name for m in pkgutil.walk_packages(bigseg.__path__, 'bigseg.')]\n"
            "[importlib.import_module(n) for n in names]\n"
            "print(len(names), 'bigseg.__main__' in names)\n")
    out = subprocess.run([sys.executable, "-W", "error", "-c", walk], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    count, has_main = out.stdout.split()
    assert int(count) > 50 and has_main == "True" and not out.stderr
    out = subprocess.run([sys.executable, "-m", "bigseg", "--version"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("bigseg "), out.stderr
