"""Cluster factory, progress and memory budget."""

from ._cluster import connect, gpu_count
from ._progress import compute, current_client, progress_bars

__all__ = ["compute", "connect", "current_client", "gpu_count", "progress_bars"]
