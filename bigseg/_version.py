"""The installed bigseg version (package metadata)."""

from __future__ import annotations

__all__ = ["version"]


def version() -> str:
    """bigseg's version string, or ``"unknown"`` when running from a tree that is not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _meta_version

    try:
        return _meta_version("bigseg")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"
