"""Cluster factory, progress and memory budget."""

from ._bench import STAGES, benchmark
from ._cluster import connect, gpu_count
from ._progress import compute, current_client

__all__ = ["benchmark", "STAGES", "compute", "connect", "current_client", "gpu_count"]
