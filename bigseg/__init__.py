"""bigseg: segment and quantify battery-electrode X-ray CT volumes too big for one computer's memory.

Public API (see the README, "The API in a few lines"; the contract it keeps is the team's ``../shared/API.md``,
beside this repository, checked by ``tests/test_api_contract.py``)::

    bigseg.open_volume, bigseg.save_volume, bigseg.save_labels, bigseg.ingest, bigseg.export, bigseg.connect
    bigseg.predict, bigseg.train                      (inference / training, import torch lazily)
    bigseg.synth, bigseg.filters, bigseg.baselines, bigseg.measure, bigseg.models   (subpackages)
"""

from __future__ import annotations

from .runtime._malloc import limit_heap_growth as _limit_heap_growth

_limit_heap_growth()  # first: before zarr's, dask's and torch's threads allocate (see runtime/_malloc.py)

import importlib  # noqa: E402
from typing import Any

from .config import RunConfig
from .errors import BigsegError
from .io import export, ingest, open_volume, save_labels, save_volume
from .runtime import connect

__all__ = [
    "open_volume",
    "save_volume",
    "save_labels",
    "ingest",
    "export",
    "connect",
    "predict",
    "train",
    "Pipeline",
    "RunConfig",
    "BigsegError",
    "synth",
    "filters",
    "baselines",
    "measure",
    "models",
]

_LAZY = {
    "predict": ("bigseg.infer", "predict"),
    "Pipeline": ("bigseg.pipeline", "Pipeline"),
}
# bigseg.train is its callable subpackage (train(...) and train.synthetic(...)), never the bare function:
# importing the subpackage rebinds the name, so the first and later lookups must agree
_SUBPACKAGES = {"synth", "filters", "baselines", "measure", "models", "infer", "kernels", "report", "train", "pipeline"}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # from the package metadata, read when asked
        from ._version import version

        return version()
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"bigseg.{name}")
    raise AttributeError(f"module 'bigseg' has no attribute {name!r}")
