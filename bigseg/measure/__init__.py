"""Exact distributed measurements on label volumes (see docs/design.md).

Every metric is a sum of per-block partials (``bigseg.kernels.metrics``) computed with a halo
where faces or marching-cubes cells cross block borders, so the result equals the whole-array
computation for any chunking. Results are xarray objects with phase names, units and a ``t``
dimension for (t, z, y, x) series, ready for ``to_netcdf``.
"""

from ._connectivity import connectivity
from ._groups import size_distribution, size_groups
from ._particles import particle_labels, particles
from ._table import read_table, write_table
from ._metrics import METHODS, interfaces, specific_surface_area, surface_area, volume_fractions
from ._profile import interface_profile, profile
from ._radial import radial_profile
from ._rve import rve
from ._shells import shells
from ._thickness import thickness
from ._tortuosity import tortuosity
from ._scores import agreement, confusion, scores
from ._summary import add_to_metrics, summary
from ._evolution import evolution, transitions
from ._uncertainty import over_samples, perturbation_spread, probability_uncertainty, spread

__all__ = [
    "read_table",
    "write_table",
    "volume_fractions",
    "interfaces",
    "surface_area",
    "specific_surface_area",
    "confusion",
    "scores",
    "agreement",
    "summary",
    "add_to_metrics",
    "evolution",
    "transitions",
    "spread",
    "over_samples",
    "perturbation_spread",
    "probability_uncertainty",
    "particles",
    "shells",
    "profile",
    "interface_profile",
    "radial_profile",
    "rve",
    "tortuosity",
    "connectivity",
    "thickness",
    "particle_labels",
    "size_distribution",
    "size_groups",
    "METHODS",
]
