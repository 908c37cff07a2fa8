"""All exceptions raised by bigseg.

Every error derives from :class:`BigsegError`; input problems also derive from the built-in
exception a Python user would expect (``ValueError``, ``FileNotFoundError``, ...), so
``except ValueError`` keeps working in user scripts.
"""

from __future__ import annotations

import types

__all__ = [
    "BigsegError",
    "InputError",
    "VolumeFormatError",
    "SourceNotFoundError",
    "OutputExistsError",
    "OutputInUseError",
    "OutputNotWritableError",
    "ConfigError",
    "MemoryBudgetError",
    "ClusterError",
    "ModelError",
    "UncalibratedWarning",
    "LabelsReplacedWarning",
]


class BigsegError(Exception):
    """Base class of every error bigseg raises on purpose."""


class InputError(BigsegError, ValueError):
    """An argument has a value bigseg cannot work with (named in the message)."""


class VolumeFormatError(InputError):
    """A file or store exists but is not a readable/consistent volume."""


class SourceNotFoundError(BigsegError, FileNotFoundError):
    """An input path does not exist or matches nothing."""


class OutputExistsError(BigsegError, FileExistsError):
    """The destination exists and ``overwrite`` was not requested."""


class OutputNotWritableError(BigsegError, PermissionError):
    """The destination lies where this process may not write (permissions, a read-only mount)."""


class OutputInUseError(BigsegError, RuntimeError):
    """Another process is writing the same output (a run into the same folder, a write of the
    same store) at this moment."""


class ConfigError(InputError):
    """A run configuration (YAML, environment or keywords) is invalid."""


class MemoryBudgetError(BigsegError, MemoryError):
    """A configuration would need more memory per task than a worker has."""


class ClusterError(BigsegError, RuntimeError):
    """A Dask cluster could not be created or reached."""


class ModelError(InputError):
    """A model or checkpoint is unusable for the requested operation."""


class UncalibratedWarning(UserWarning):
    """A source states no voxel size and ``voxel_size`` was not given: a voxel is taken as 1 of
    ``unit`` (default nm), so sizes count voxels (the command line says so itself)."""


class LabelsReplacedWarning(UserWarning):
    """``overwrite`` replaced an OME-Zarr image together with the label images saved into it
    (they described the image that was there; save them again if they still apply)."""


def outside_caller(skip: int = 0) -> tuple[types.FrameType | None, int]:
    """The first frame outside bigseg, looking up from ``skip`` frames above the function calling
    this one, and how many frames above that function it is (the user's line a call came from)."""
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    level, frame = skip, sys._getframe(skip + 1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return frame, level


#: whether :func:`warn_caller` points at the caller's line: not while the command line runs a command (its
#: warnings are bigseg's own one-liners, as its errors; pointed at runpy they read "<frozen runpy>:88: ...")
POINT_AT_CALLER = [True]


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the first line outside bigseg, however deep the call: through a
    series' per-scan wrapper a fixed ``stacklevel`` pointed into bigseg instead of the user's script."""
    import warnings

    level = outside_caller(1)[1] if POINT_AT_CALLER[0] else 1
    warnings.warn(message, category, stacklevel=level + 1)
