"""The installed bigseg version (package metadata), or a source tree's pyproject.toml; and the
environment a result was computed in (:func:`environment`), for the records runs and models keep."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["version", "environment", "processor_name"]

#: the libraries whose versions can change the numbers (filters, inference, labelling, metrics, files)
_PACKAGES = ("numpy", "scipy", "scikit-image", "numba", "torch", "dask", "distributed", "zarr", "xarray", "pandas")


def utc_now() -> str:
    """This moment as the records state it (run.json's, a checkpoint's and bench's ``date``):
    ``2026-12-07T12:00:00Z``."""
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def version() -> str:
    """bigseg's version string: the installed package's; from a source tree that is not installed
    (e.g. ``PYTHONPATH=.`` on a GPU node) its ``pyproject.toml``'s; else ``"unknown"``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _meta_version

    try:
        return _meta_version("bigseg")
    except PackageNotFoundError:
        return _source_version(Path(__file__).resolve().parent.parent / "pyproject.toml")


def _source_version(pyproject: Path) -> str:
    import tomllib

    try:
        with open(pyproject, "rb") as fh:
            project = tomllib.load(fh).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return "unknown"
    return str(project["version"]) if project.get("name") == "bigseg" and "version" in project else "unknown"


def environment() -> dict[str, Any]:
    """What a result was computed with, to reproduce and cite it: bigseg's version and, run from a
    git checkout (editable install, ``PYTHONPATH``), its commit (``+dirty`` with uncommitted
    changes to tracked files); Python; the versions of the libraries that make the numbers (None:
    not installed); the machine (host, platform, processor, CPUs, the GPU torch sees)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _meta_version

    packages: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            packages[name] = _meta_version(name)
        except PackageNotFoundError:
            packages[name] = None
    torch = sys.modules.get("torch")  # only when already imported (a baseline's run need not load it)
    gpu = torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else None
    return {"bigseg": version(), "git_commit": _git_commit(Path(__file__).resolve().parent.parent),
            "python": platform.python_version(), "packages": packages,
            "machine": {"host": platform.node(), "platform": platform.platform(), "processor": processor_name(),
                        "cpus": os.cpu_count(), "gpu": gpu}}


@functools.lru_cache(maxsize=4)
def _git_commit(root: Path) -> str | None:
    """The commit of the checkout bigseg is imported from (``+dirty`` when tracked files differ
    from it); None for an installed package or where git cannot tell. Asked of git once per
    process (a training run records it three times: its resume key, checkpoints, provenance)."""
    if not (root / ".git").exists() or not (root / "pyproject.toml").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def processor_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
