"""The installed bigseg version (package metadata), or a source tree's pyproject.toml."""

from __future__ import annotations

from pathlib import Path

__all__ = ["version"]


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
